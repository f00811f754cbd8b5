"""Learning parity: offline-zoo's agents and the reference implementations, trained side by side.

Every run trains one implementation of one algorithm on the same generated ``hopper-medium`` data
(`zoo-data generate hopper-medium --seed 0`) with the same hyperparameters and seed, and evaluates it
every ``--eval-every`` gradient steps on the same environment seeds (10 episodes, DT at target 3600):

* ``dt``: `offline_zoo.DT` with its defaults vs d3rlpy 2.8.1's ``DecisionTransformer`` built with the
  paper's DT settings (linear state encoder ``VectorEncoderFactory([128], exclude_last_activation=True)``,
  128 dim, 3 layers, 1 head, K = 20, batch 64, AdamW 1e-4 / wd 1e-4, 10k warmup, clip 0.25, state
  standardisation, rewards x 0.001) and trained by d3rlpy's own ``fit`` on a d3rlpy ``MDPDataset``;
* ``td3bc``, ``iql``, ``bc``: offline-zoo's adapters vs raw d3rlpy: the d3rlpy config the adapter
  resolved, rebuilt as a fresh algorithm and trained by d3rlpy's ``fit`` on an ``MDPDataset`` of the
  same arrays (d3rlpy's buffer, sampling and training loop instead of ours).

Runs go to ``--workers`` processes (one torch thread each); each finished run is written to
``<out dir>/learning_parity/<algo>-<impl>-seed<k>.json`` as it ends and every checkpoint is
appended as it is measured, so ``--resume`` skips finished runs after a crash. When all runs are in,
the script writes ``learning_parity.json`` (per implementation, seed and checkpoint: step, normalized
scores, training loss, seconds per step; versions, data hash, machine; the summary ratios at the top
level), a learning-curve PNG, the "Learning parity" section of ``benchmarks/README.md``, and prints
the summary as one JSON object on its last line.

    python benchmarks/learning_parity.py --seeds 0 1 2 3 4 --dt-seeds 0 1 2 3 4 5 6 --workers 2 --resume   # the committed run (~6 h, 2 cores)
    python benchmarks/learning_parity.py --steps 200 --eval-every 100 --episodes 2 --seeds 0 \\
        --out /tmp/lp --no-readme                                       # a smoke run
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # _protocol, when imported from another folder
from _protocol import EVAL_SEED, TARGET, check_checkpoint_steps  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "benchmarks" / "README.md"
DOCS_PAGE = ROOT / "docs" / "learning-parity.md"
DOCS_PLOT = ROOT / "docs" / "assets" / "learning_parity.png"
START, END = "<!-- learning-parity:start -->", "<!-- learning-parity:end -->"
ALGOS = ("dt", "td3bc", "iql", "bc")
IMPLS = ("offline_zoo", "d3rlpy")
ZOO_NAMES = {"dt": "dt", "td3bc": "td3+bc", "iql": "iql", "bc": "bc"}
LABELS = {"dt": "DT", "td3bc": "TD3+BC", "iql": "IQL", "bc": "BC"}


# ------------------------------------------------------------------------------------------------
# one run


def _load(task: str, ratio: float):
    from offline_zoo import load_dataset

    return load_dataset(task, source="generated", ratio=ratio, seed=0)


def _zoo_algo(algo: str, dataset, seed: int, overrides: dict):
    from offline_zoo.algos.registry import get_algo

    return get_algo(ZOO_NAMES[algo])(dataset, seed=seed, device="cpu", **overrides)


def _config_fields(model) -> dict:
    """The scalar fields of an offline-zoo algorithm's config, as a run record stores them."""
    return {k: v for k, v in vars(model.config).items() if isinstance(v, (int, float, str, bool, type(None)))}


def _mdp_dataset(dataset):
    """A d3rlpy MDPDataset of the same arrays (d3rlpy splits episodes at terminals | timeouts)."""
    import d3rlpy

    return d3rlpy.dataset.MDPDataset(
        observations=np.asarray(dataset.observations, dtype=np.float32),
        actions=np.asarray(dataset.actions, dtype=np.float32),
        rewards=np.asarray(dataset.rewards, dtype=np.float32).reshape(-1, 1),
        terminals=np.asarray(dataset.terminals, dtype=np.float32),
        timeouts=np.asarray(dataset.timeouts, dtype=np.float32),
        action_space=d3rlpy.ActionSpace.CONTINUOUS,
    )


def _d3rlpy_dt(cfg) -> object:
    """d3rlpy's DecisionTransformer with the settings of offline-zoo's DT config ``cfg``."""
    import d3rlpy

    return d3rlpy.algos.DecisionTransformerConfig(
        batch_size=cfg.batch_size,
        learning_rate=cfg.learning_rate,
        optim_factory=d3rlpy.optimizers.AdamWFactory(
            weight_decay=cfg.weight_decay,
            clip_grad_norm=cfg.grad_clip,
            lr_scheduler_factory=d3rlpy.optimizers.WarmupSchedulerFactory(warmup_steps=cfg.warmup_steps),
        ),
        encoder_factory=d3rlpy.models.VectorEncoderFactory([cfg.hidden_size], exclude_last_activation=True),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler(),
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(0.001),
        context_size=cfg.context_len,
        num_heads=cfg.n_head,
        num_layers=cfg.n_layer,
        max_timestep=1000,
        attn_dropout=cfg.dropout,
        resid_dropout=cfg.dropout,
        embed_dropout=cfg.dropout,
        activation_type=cfg.activation,
    ).create(device="cpu:0")


class _D3rlpyDTRollouts:
    """`run_episodes` driver for d3rlpy's DT: one ``StatefulTransformerWrapper`` per episode."""

    def __init__(self, wrappers):
        self.wrappers = list(wrappers)
        self.rewards = np.zeros(len(self.wrappers))

    def record_reward(self, rewards) -> None:
        self.rewards = np.asarray(rewards, dtype=np.float64)

    def subset(self, idx):
        new = _D3rlpyDTRollouts([self.wrappers[i] for i in idx])
        new.rewards = self.rewards[np.asarray(idx)]
        return new


class _D3rlpyPolicy:
    """Enough of the `OfflineAlgo` protocol for `offline_zoo.evaluation.run_episodes`."""

    def __init__(self, algo, is_dt: bool):
        self.algo, self.is_dt = algo, is_dt

    def new_rollout_state(self, n, targets):
        if not self.is_dt:
            return None
        return _D3rlpyDTRollouts(self.algo.as_stateful_wrapper(target_return=float(t)) for t in np.broadcast_to(targets, (n,)))

    def predict(self, obs, state=None):
        if not self.is_dt:
            return self.algo.predict(np.asarray(obs, dtype=np.float32)), None
        actions = np.stack([w.predict(np.asarray(o, dtype=np.float32), float(r)) for w, o, r in zip(state.wrappers, obs, state.rewards)])
        return actions, state


def _evaluate(policy, task, episodes: int, target: float | None, eval_seed: int) -> dict:
    from offline_zoo.envs import make_env
    from offline_zoo.evaluation import run_episodes

    t0 = time.perf_counter()
    res = run_episodes(policy, lambda: make_env(task), episodes, None if target is None else [target], seed=eval_seed, task=task)
    key = next(iter(res.normalized))
    return {
        "normalized": [round(float(x), 3) for x in res.normalized[key]],
        "score": round(float(np.mean(res.normalized[key])), 3),
        "lengths": [int(x) for x in res.lengths[key]],
        "eval_seconds": round(time.perf_counter() - t0, 2),
    }


def run_one(job: dict) -> dict:
    """Train one (algo, impl, seed) and evaluate it at every checkpoint; appends to ``job['path']``."""
    import logging

    import torch

    from offline_zoo.algos.d3rlpy_baselines import set_d3rlpy_log_level

    torch.set_num_threads(1)
    set_d3rlpy_log_level(logging.WARNING)  # no "signatures determined" lines per run
    algo, impl, seed = job["algo"], job["impl"], job["seed"]
    steps, every, episodes = job["steps"], job["eval_every"], job["episodes"]
    target = job["target"] if algo == "dt" else None
    dataset = _load(job["task"], job["ratio"])
    task = dataset.task
    record = {**{k: job[k] for k in ("algo", "impl", "seed", "steps", "eval_every", "episodes", "task", "ratio")}, "target": target,
              "data_hash": data_hash(dataset), "checkpoints": []}
    path = Path(job["path"])

    def checkpoint(step: int, loss: float | None, sec_per_step: float, policy) -> None:
        entry = {"step": step, "train_loss": None if loss is None else round(float(loss), 6), "seconds_per_step": round(sec_per_step, 5)}
        entry.update(_evaluate(policy, task, episodes, target, job["eval_seed"]))
        record["checkpoints"].append(entry)
        path.with_suffix(".partial").write_text(json.dumps(record, indent=1))
        print(f"[{algo}/{impl}/seed{seed}] step {step}: score {entry['score']:.1f}, loss {entry['train_loss']}, "
              f"{sec_per_step * 1e3:.0f} ms/step", flush=True)

    if impl == "offline_zoo":
        model = _zoo_algo(algo, dataset, seed, job["overrides"])
        record["config"] = _config_fields(model)
        loss_key = "action_loss" if algo == "dt" else "loss"
        for _ in range(steps // every):
            n_hist = len(model.history["train"])
            t0 = time.perf_counter()
            # every step's loss, as d3rlpy's side averages it (a 1-in-100 sample of a heavy-tailed
            # critic loss reads low: records without "loss_logged_every" sampled every 100th step)
            model.learn(every, progress_bar=False, log_every=1)
            dt = (time.perf_counter() - t0) / every
            losses = [h[loss_key] for h in model.history["train"][n_hist:] if loss_key in h]
            checkpoint(model.num_steps, statistics.fmean(losses) if losses else None, dt, model)
        if algo != "dt":
            record["loss_definition"] = "d3rlpy's loss as reported by its update()"
        elif model.config.action_loss_reduction == "sum_dims":
            record["loss_definition"] = "squared error summed over action dims, mean over real positions"
        else:
            record["loss_definition"] = "per-dimension MSE over real positions"
    else:
        import d3rlpy

        d3rlpy.seed(seed)
        mdp = _mdp_dataset(dataset)
        if algo == "dt":
            ref = _d3rlpy_dt(_zoo_algo("dt", dataset, seed, job["overrides"]).config)
            loss_key = "loss"
        else:
            zoo_cfg = _zoo_algo(algo, dataset, seed, {}).d3rlpy_algo.config
            d3rlpy.seed(seed)  # building our adapter drew from torch's global generator
            ref = copy.deepcopy(zoo_cfg).create(device="cpu:0")  # same hyperparameters, a fresh algorithm
            loss_key = None  # d3rlpy's "loss" when it reports one, else its critic loss
        policy = _D3rlpyPolicy(ref, algo == "dt")
        losses: list[dict] = []
        update = ref.update

        def recording_update(batch):  # d3rlpy's fit calls self.update once per step
            out = update(batch)
            losses.append(out)
            return out

        ref.update = recording_update
        clock = {"t0": time.perf_counter()}

        def callback(a, epoch: int, total_step: int) -> None:
            if total_step % every:
                return
            sec = (time.perf_counter() - clock["t0"]) / every
            recent = losses[-every:]
            key = loss_key or next(k for k in ("loss", "critic_loss", "actor_loss") if any(k in x for x in recent))
            checkpoint(total_step, statistics.fmean(float(x[key]) for x in recent if key in x), sec, policy)
            clock["t0"] = time.perf_counter()

        ref.fit(mdp, n_steps=steps, n_steps_per_epoch=every, show_progress=False, save_interval=10**9,
                logger_adapter=d3rlpy.logging.NoopAdapterFactory(), with_timestamp=False, callback=callback)
        record["config"] = json.loads(ref.config.serialize())  # after fit: the scalers are fitted
        record["loss_definition"] = "d3rlpy's epoch-mean loss (DT: squared error summed over action dims, mean over all B*K positions)"
    record["loss_logged_every"] = 1
    record["done"] = True
    path.write_text(json.dumps(record, indent=1))
    path.with_suffix(".partial").unlink(missing_ok=True)
    return record


# ------------------------------------------------------------------------------------------------
# summary, plot, README


def data_hash(dataset) -> str:
    """sha256 (16 hex digits) of the arrays every run trains on."""
    import hashlib

    h = hashlib.sha256()
    for name in ("observations", "actions", "rewards", "terminals", "timeouts"):
        h.update(np.ascontiguousarray(getattr(dataset, name)).tobytes())
    return h.hexdigest()[:16]


def _versions() -> dict:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for pkg in ("offline-zoo", "torch", "d3rlpy", "gymnasium", "mujoco", "gymnasium-robotics", "numpy", "transformers"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            out[pkg] = None
    return out


def _machine() -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "platform": platform.platform(), "torch_threads_per_run": 1}


def _curve(runs: list[dict]) -> dict[int, list[float]]:
    by_step: dict[int, list[float]] = {}
    for r in runs:
        for c in r["checkpoints"]:
            by_step.setdefault(c["step"], []).append(c["score"])
    return dict(sorted(by_step.items()))


def ratio_interval(ours: list[float], ref: list[float], reps: int = 10_000,
                   confidence: float = 0.95, seed: int = 0) -> list[float] | None:
    """Bootstrap interval of the ratio of mean scores (ours / reference) at one checkpoint.

    ``ours`` and ``ref`` are the two implementations' scores over seeds. Each side's seeds are
    resampled with replacement, independently (seed k of ours and seed k of d3rlpy share a number,
    not their initial weights or batches), and the ratio of the resampled means is taken per
    replicate: how far the ratio can move with this many seeds. None when a side has fewer than 2
    seeds or a replicate's reference mean can be 0.
    """
    from offline_zoo.bench.aggregate import stratified_bootstrap

    if len(ours) < 2 or len(ref) < 2:
        return None
    rng = np.random.default_rng(seed)
    num = stratified_bootstrap(np.asarray(ours, float)[:, None], reps, rng).mean(axis=(1, 2))
    den = stratified_bootstrap(np.asarray(ref, float)[:, None], reps, rng).mean(axis=(1, 2))
    if (den <= 0).any():
        return None
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(num / den, [alpha, 100.0 - alpha])
    return [float(lo), float(hi)]


def summarize(records: list[dict], args) -> dict:
    """Per-algorithm curves and the ours / d3rlpy ratios of the mean score over seeds."""
    algos: dict = {}
    summary: dict = {}
    for algo in sorted({r["algo"] for r in records}, key=ALGOS.index):
        entry: dict = {}
        curves: dict[str, dict[int, list[float]]] = {}
        for impl in IMPLS:
            runs = sorted((r for r in records if r["algo"] == algo and r["impl"] == impl), key=lambda r: r["seed"])
            curve = _curve(runs)
            entry[impl] = {"runs": runs, "mean": {s: statistics.fmean(v) for s, v in curve.items()},
                           "std": {s: float(np.std(v)) for s, v in curve.items()}}
            curves[impl] = curve
        ratio, per_seed = {}, {}
        for step, ours in entry["offline_zoo"]["mean"].items():
            ref = entry["d3rlpy"]["mean"].get(step)
            if ref:
                ratio[step] = ours / ref
        seeds = sorted({r["seed"] for r in entry["offline_zoo"]["runs"]} & {r["seed"] for r in entry["d3rlpy"]["runs"]})
        for seed in seeds:
            o = {c["step"]: c["score"] for r in entry["offline_zoo"]["runs"] if r["seed"] == seed for c in r["checkpoints"]}
            d = {c["step"]: c["score"] for r in entry["d3rlpy"]["runs"] if r["seed"] == seed for c in r["checkpoints"]}
            per_seed[seed] = {s: (o[s] / d[s] if d[s] else None) for s in o if s in d}
        entry["score_ratio"] = ratio
        entry["score_ratio_ci95"] = {step: ratio_interval(curves["offline_zoo"][step], curves["d3rlpy"][step]) for step in ratio}
        entry["score_ratio_per_seed"] = per_seed
        algos[algo] = entry
        summary[f"{algo}_seeds"] = seeds
        if ratio:
            summary[f"{algo}_score_ratio_final"] = round(ratio[max(ratio)], 4)
            ci = entry["score_ratio_ci95"][max(ratio)]
            summary[f"{algo}_score_ratio_final_ci95"] = [round(v, 4) for v in ci] if ci else None
            if algo == "dt":
                late = [v for s, v in ratio.items() if s >= 4000]
                summary["dt_score_ratio_min_from_4k"] = round(min(late), 4) if late else None
                # one checkpoint of 10 episodes is noisy (a run's score moves by 20+ points between
                # checkpoints); the mean over every checkpoint from 4k on is the steadier comparison
                plateau = {impl: [m for st, m in entry[impl]["mean"].items() if st >= 4000] for impl in IMPLS}
                if all(plateau.values()):
                    summary["dt_score_ratio_mean_from_4k"] = round(statistics.fmean(plateau["offline_zoo"]) / statistics.fmean(plateau["d3rlpy"]), 4)
                    # its interval: each run's mean over those checkpoints is one sample per seed
                    run_means = {impl: [statistics.fmean(c["score"] for c in r["checkpoints"] if c["step"] >= 4000)
                                        for r in entry[impl]["runs"]] for impl in IMPLS}
                    entry["run_mean_from_4k"] = run_means
                    ci = ratio_interval(run_means["offline_zoo"], run_means["d3rlpy"])
                    summary["dt_score_ratio_mean_from_4k_ci95"] = [round(v, 4) for v in ci] if ci else None
    summary["steps"] = args.steps
    summary["seeds"] = sorted({r["seed"] for r in records})
    return {"summary": summary, "algos": algos}


def _fmt_ratio(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def markdown(result: dict) -> str:
    s = result["summary"]
    lines = [
        START,
        "## Learning parity (offline-zoo vs d3rlpy, same data and seeds)",
        "",
        "<!-- generated by benchmarks/learning_parity.py; do not edit by hand -->",
    ]
    if not result["complete"]:
        lines += [
            f"**Partial result**: runs still missing for {', '.join(result['missing_runs'])} "
            "(`python benchmarks/learning_parity.py --resume` completes it).",
            "",
        ]
    lines += [
        f"`python benchmarks/learning_parity.py` on generated `{result['task']}` (dataset hash "
        f"`{result['data_hash']}`), seeds {s['seeds']}, {s['steps']:,} gradient steps, "
        f"{result['episodes']} evaluation episodes per checkpoint (DT at target {result['target']:g}); "
        f"{result['machine']['cpu']}, one torch thread per run. Mean normalized score over seeds "
        "(std in brackets), the ratio offline-zoo / d3rlpy of the means and its 95% bootstrap interval "
        "(each side's seeds resampled with replacement: how far the ratio can move with this many seeds); "
        "full data in `benchmarks/results/learning_parity.json`, curves in "
        "`benchmarks/results/learning_parity.png`.",
        "",
    ]
    for algo, entry in result["algos"].items():
        steps = sorted(entry["offline_zoo"]["mean"])
        lines.append(f"**{LABELS[algo]}** (seeds {s.get(f'{algo}_seeds', [])})")
        lines.append("")
        lines.append("| step | " + " | ".join(f"{st:,}" for st in steps) + " |")
        lines.append("|---|" + "---|" * len(steps))
        for impl in IMPLS:
            m, sd = entry[impl]["mean"], entry[impl]["std"]
            cells = [f"{m[st]:.1f} ({sd[st]:.1f})" if st in m else "-" for st in steps]
            lines.append(f"| {impl} | " + " | ".join(cells) + " |")
        lines.append("| ratio | " + " | ".join(_fmt_ratio(entry["score_ratio"].get(st)) for st in steps) + " |")
        cis = [entry.get("score_ratio_ci95", {}).get(st) for st in steps]
        if any(cis):
            lines.append("| ratio, 95% CI | " + " | ".join(f"{ci[0]:.2f}-{ci[1]:.2f}" if ci else "-" for ci in cis) + " |")
        sps = {impl: statistics.fmean(c["seconds_per_step"] for r in entry[impl]["runs"] for c in r["checkpoints"]) for impl in IMPLS if entry[impl]["runs"]}
        if algo == "dt" and s.get("dt_score_ratio_mean_from_4k_ci95"):
            lines.append("")
            per_run = "; ".join(f"{impl} " + " / ".join(f"{m:.1f}" for m in entry["run_mean_from_4k"][impl]) for impl in IMPLS)
            lo, hi = s["dt_score_ratio_mean_from_4k_ci95"]
            lines.append(f"Mean over the checkpoints from 4,000 steps on, per seed: {per_run}. Ratio of the means "
                         f"{s['dt_score_ratio_mean_from_4k']:.2f}, 95% bootstrap interval {lo:.2f}-{hi:.2f}.")
        if algo == "dt" and entry["offline_zoo"]["runs"]:
            cfg = entry["offline_zoo"]["runs"][0].get("config", {})
            lines.append("")
            from offline_zoo.algos.dt import DTConfig

            # DT's fields that deviate from the released code record its values as their "before" values
            differ = [f"`{k}={cfg[k]!r}`" for k, released in DTConfig.values_before_field.items() if k in cfg and cfg[k] != released]
            lines.append("offline-zoo DT settings that differ from the released code (docs/deviations.md): "
                         + (", ".join(differ) or "none") + ".")
        if len(sps) == 2:
            lines.append("")
            lines.append(f"Seconds per step: offline-zoo {sps['offline_zoo']:.4f}, d3rlpy {sps['d3rlpy']:.4f} "
                         f"(ratio {sps['offline_zoo'] / sps['d3rlpy']:.2f}; wall clock of runs that may have shared "
                         "the cores with other jobs: `benchmarks/perf.py` measures speed).")
        lines.append("")
    lines.append("Summary: `" + json.dumps(s) + "`")
    lines.append(END)
    return "\n".join(lines) + "\n"


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    algos = list(result["algos"])
    fig, axes = plt.subplots(1, len(algos), figsize=(4 * len(algos), 3.4), squeeze=False)
    for ax, algo in zip(axes[0], algos):
        entry = result["algos"][algo]
        for impl, color in zip(IMPLS, ("tab:blue", "tab:orange")):
            m, sd = entry[impl]["mean"], entry[impl]["std"]
            if not m:
                continue
            x = np.array(sorted(m))
            y, e = np.array([m[s] for s in x]), np.array([sd[s] for s in x])
            ax.plot(x, y, marker="o", color=color, label=impl)
            ax.fill_between(x, y - e, y + e, color=color, alpha=0.2)
        ax.set_title(f"{LABELS[algo]} (seeds {sorted({r['seed'] for r in entry['offline_zoo']['runs']})})")
        ax.set_xlabel("gradient steps")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"normalized score ({result['task']})")
    axes[0][0].legend()
    partial = "" if result["complete"] else " (partial)"
    fig.suptitle(f"Learning parity on {result['task']}: offline-zoo vs d3rlpy, mean +- std over seeds{partial}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_readme(block: str, path: Path = README) -> None:
    """Replace the learning-parity block of ``path`` (appended when it has none)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        text = head + block + rest.split(END, 1)[1].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text)


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--task", default="hopper-medium", help="a generatable task (default hopper-medium)")
    p.add_argument("--ratio", type=float, default=1.0, help="trajectory ratio of the data (default 1.0)")
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--impls", nargs="+", default=list(IMPLS), choices=IMPLS,
                   help="train only these implementations (the summary still needs both)")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--dt-seeds", nargs="+", type=int, default=None,
                   help="DT's seeds when they differ from --seeds (more seeds where d3rlpy's DT is noisy)")
    p.add_argument("--steps", type=int, default=10_000)
    p.add_argument("--eval-every", type=int, default=2_000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--target", type=float, default=TARGET, help="DT's return-to-go target")
    p.add_argument("--eval-seed", type=int, default=EVAL_SEED, help="episode i starts from reset seed eval_seed + i")
    p.add_argument("--dt-override", action="append", default=[], metavar="FIELD=VALUE",
                   help="a field of our DT config for this run (e.g. timestep_init=released); JSON values")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results", help="results directory")
    p.add_argument("--resume", action="store_true", help="keep finished runs in <out>/learning_parity/")
    p.add_argument("--no-readme", action="store_true", help="do not touch benchmarks/README.md, docs/learning-parity.md or its plot")
    p.add_argument("--summarize-only", action="store_true",
                   help="train nothing: summarize the finished runs in <out>/learning_parity/ (a partial result "
                        "says so: complete=false and the missing runs are listed)")
    args = p.parse_args(argv)
    if args.dt_seeds is None:
        args.dt_seeds = list(args.seeds)
    check_checkpoint_steps(p, args)
    overrides = {}
    for item in args.dt_override:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--dt-override {item!r}: expected FIELD=VALUE")
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value

    dataset = _load(args.task, args.ratio)  # fail fast (and clearly) when the data is missing
    current_hash = data_hash(dataset)
    runs_dir = args.out / "learning_parity"
    runs_dir.mkdir(parents=True, exist_ok=True)
    jobs = []
    # the short MLP baselines first, then DT seed by seed with both implementations side by side,
    # so that an interrupted run leaves complete (ours, d3rlpy) pairs behind
    order = [(a, impl, seed) for a in ("td3bc", "iql", "bc") for seed in args.seeds for impl in IMPLS]
    order += [("dt", impl, seed) for seed in args.dt_seeds for impl in ("d3rlpy", "offline_zoo")]
    for algo, impl, seed in order:
        if algo not in args.algos or impl not in args.impls:
            continue
        path = runs_dir / f"{algo}-{impl}-seed{seed}.json"
        job = dict(algo=algo, impl=impl, seed=seed, steps=args.steps, eval_every=args.eval_every,
                   episodes=args.episodes, target=args.target, eval_seed=args.eval_seed, task=args.task,
                   ratio=args.ratio, overrides=overrides if algo == "dt" and impl == "offline_zoo" else {},
                   path=str(path))
        if args.summarize_only:
            continue
        if args.resume and path.exists():
            old = json.loads(path.read_text())
            same = all(old.get(k) == job[k] for k in ("steps", "eval_every", "episodes", "task", "ratio"))
            if same and old.get("data_hash") != current_hash:  # regenerated data (other physics, other size)
                same = False
                print(f"re-running {path.name}: trained on data {old.get('data_hash') or '(hash not recorded)'}, "
                      f"the data on disk is {current_hash}", flush=True)
            if same and impl == "offline_zoo":  # a changed default or --dt-override must re-run ours
                model = _zoo_algo(algo, dataset, seed, job["overrides"])
                current = json.loads(json.dumps(_config_fields(model)))
                recorded = old.get("config") or {}
                # a field added to the config after the run was recorded did not exist then: the run had the
                # behaviour the config class records for its absence (`values_before_field`), or else the
                # new field's default (say so)
                stored = json.loads(json.dumps(model.config_class.complete_record(recorded))) if recorded else {}
                added = sorted(set(current) - set(stored))
                same = bool(stored) and all(stored[k] == current.get(k) for k in stored)
                if same and added and old.get("done"):
                    print(f"keeping {path.name}: recorded before the config fields {added} existed", flush=True)
                if not same and old.get("done"):
                    print(f"re-running {path.name}: its config differs from the current one", flush=True)
            if same and old.get("done"):
                continue
        jobs.append(job)
    print(f"{len(jobs)} runs to do on {args.workers} worker(s)", flush=True)
    if jobs:
        with ProcessPoolExecutor(max_workers=args.workers) as pool:
            futures = {pool.submit(run_one, j): j for j in jobs}
            for fut in as_completed(futures):
                j = futures[fut]
                fut.result()
                print(f"done: {j['algo']}/{j['impl']}/seed{j['seed']}", flush=True)

    records, missing = [], []
    for algo in args.algos:
        for seed in (args.dt_seeds if algo == "dt" else args.seeds):
            paths = [runs_dir / f"{algo}-{impl}-seed{seed}.json" for impl in IMPLS]
            done = [json.loads(p.read_text()) for p in paths if p.exists()]
            # a seed counts only with both implementations finished on the data on disk
            if len(done) == len(IMPLS) and all(r.get("done") and r["steps"] == args.steps and r.get("data_hash") == current_hash
                                               for r in done):
                records.extend(done)
            else:
                missing.append(f"{algo}/seed{seed}")
                stale = [r for r in done if r.get("done") and r.get("data_hash") != current_hash]
                for r in stale:
                    print(f"not counted: {algo}/{r['impl']}/seed{seed} was trained on data "
                          f"{r.get('data_hash') or '(hash not recorded)'}, the data on disk is {current_hash}", file=sys.stderr)
    if not records:
        print("no finished (offline_zoo, d3rlpy) pair of runs to summarize", file=sys.stderr)
        return 1
    result = summarize(records, args)
    result["complete"] = not missing
    result["missing_runs"] = missing
    result["summary"]["complete"] = not missing
    result.update(task=args.task, ratio=args.ratio, target=args.target, episodes=args.episodes, eval_every=args.eval_every,
                  eval_seed=args.eval_seed, dt_overrides=overrides, data_hash=current_hash,
                  data_steps=int(dataset.n_steps), data_episodes=int(dataset.n_episodes),
                  versions=_versions(), machine=_machine(), date=time.strftime("%Y-%m-%d"))
    out = {**result["summary"], **{k: v for k, v in result.items() if k != "summary"}}
    (args.out / "learning_parity.json").write_text(json.dumps(out, indent=1, default=str))
    plot(result, args.out / "learning_parity.png")
    block = markdown(result)
    if not args.no_readme:  # benchmarks/README.md and the docs page (with its own copy of the plot)
        write_readme(block)
        write_readme(block.replace("## Learning parity", "## Results", 1), DOCS_PAGE)
        DOCS_PLOT.parent.mkdir(parents=True, exist_ok=True)
        DOCS_PLOT.write_bytes((args.out / "learning_parity.png").read_bytes())
    for algo, entry in result["algos"].items():
        print(f"{LABELS[algo]:7s} ratio ours/d3rlpy by step: " + ", ".join(f"{s}: {_fmt_ratio(v)}" for s, v in entry["score_ratio"].items()))
        for seed, per in entry["score_ratio_per_seed"].items():
            print(f"        seed {seed}: " + ", ".join(f"{s}: {_fmt_ratio(v)}" for s, v in per.items()))
        cis = entry["score_ratio_ci95"]
        if any(cis.values()):
            print("        95% CI: " + ", ".join(f"{s}: {ci[0]:.2f}-{ci[1]:.2f}" for s, ci in cis.items() if ci))
    print(json.dumps(result["summary"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
