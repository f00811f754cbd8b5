"""The timestep table's initialisation, measured on each sequence agent: DT, LaMo and Wiki-RL.

The released DT/LaMo/Wiki-RL code leaves ``nn.Embedding(max_ep_len, d)`` at torch's N(0, 1);
offline-zoo's default is GPT-2's N(0, 0.02) (``timestep_init="gpt2"``), and ``"released"`` restores
the released one (docs/deviations.md). This script trains each agent with both on the same generated
``hopper-medium`` data, seeds and evaluation protocol as ``benchmarks/learning_parity.py`` (10
episodes at target 3600, reset seeds 10000+i, one torch thread), evaluating every ``--eval-every``
steps. LaMo and Wiki-RL run on the embedded LM (``lm="embedded"``, offline, CPU scale). Wiki-RL's
default copies GPT-2's position table into the timestep table (``extend_positions=True``, the
released run script); its ``gpt2``/``released`` variants use a fresh table (``extend_positions=False``).

Every finished run is appended to ``benchmarks/results/timestep_init.jsonl`` (``--resume`` skips runs
already there); the last lines printed are the per-agent means by checkpoint.

    python benchmarks/timestep_init.py --algos lamo wikirl --seeds 0 1 2 --steps 4000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from _protocol import TARGET, append_jsonl, check_checkpoint_steps, evaluate_checkpoint, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "timestep_init.jsonl"
VARIANTS = {
    "dt": {"gpt2": {"timestep_init": "gpt2"}, "released": {"timestep_init": "released"}},
    "lamo": {"gpt2": {"lm": "embedded", "timestep_init": "gpt2"},
             "released": {"lm": "embedded", "timestep_init": "released"}},
    "wikirl": {"extend_positions": {"lm": "embedded", "extend_positions": True},
               "gpt2": {"lm": "embedded", "extend_positions": False, "timestep_init": "gpt2"},
               "released": {"lm": "embedded", "extend_positions": False, "timestep_init": "released"}},
}


def _overrides(job: dict) -> dict:
    """The variant's fields, then the CPU-scale fields of ``--override`` for this agent."""
    return {**VARIANTS[job["algo"]][job["variant"]], **job["extra"].get(job["algo"], {})}


def run(job: dict) -> dict:
    import torch

    from offline_zoo import load_dataset
    from offline_zoo.algos.registry import get_algo

    torch.set_num_threads(1)
    ds = load_dataset(job["task"], source="generated", ratio=job["ratio"], seed=0)
    algo = get_algo(job["algo"])(ds, seed=job["seed"], device="cpu", **_overrides(job))
    checkpoints = []
    t_train = 0.0
    while algo.num_steps < job["steps"]:
        t0 = time.perf_counter()
        algo.learn(job["eval_every"], progress_bar=False, log_every=min(100, job["eval_every"]))
        t_train += time.perf_counter() - t0
        last = algo.history["train"][-1] if algo.history["train"] else {}
        checkpoints.append({
            **evaluate_checkpoint(algo, job["episodes"]),
            "action_loss": round(float(last["action_loss"]), 5) if "action_loss" in last else None,
        })
    return {**{k: job[k] for k in ("algo", "variant", "seed", "steps", "eval_every", "episodes", "task", "ratio")},
            "overrides": _overrides(job), "checkpoints": checkpoints,
            "seconds_per_step": round(t_train / job["steps"], 4), "date": time.strftime("%Y-%m-%d"),
            # generated data depends on the physics version: the hash and mujoco say which data this was
            "data_hash": ds.selection_hash, "mujoco": _mujoco_version()}


def _mujoco_version() -> str:
    import mujoco

    return mujoco.__version__


def _key(r: dict) -> tuple:
    over = r["overrides"] if "overrides" in r else _overrides(r)
    return (r["algo"], r["variant"], r["seed"], r["steps"], r["eval_every"], r["episodes"], r["task"], r["ratio"],
            json.dumps(over, sort_keys=True))


def summary(records: list[dict]) -> list[str]:
    """One line per (agent, variant): mean score over seeds at every checkpoint."""
    lines = []
    for algo in VARIANTS:
        for variant in VARIANTS[algo]:
            rs = [r for r in records if r["algo"] == algo and r["variant"] == variant]
            if not rs:
                continue
            by_step: dict[int, list[float]] = {}
            for r in rs:
                for c in r["checkpoints"]:
                    by_step.setdefault(c["step"], []).append(c["score"])
            cells = ", ".join(f"{s}: {statistics.fmean(v):.1f} (n={len(v)})" for s, v in sorted(by_step.items()))
            lines.append(f"{algo:7s} {variant:17s} {cells}")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--variants", nargs="+", default=None, help="default: every variant of each agent")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--eval-every", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--task", default="hopper-medium")
    p.add_argument("--ratio", type=float, default=1.0)
    p.add_argument("--override", action="append", default=[], metavar="ALGO.FIELD=VALUE",
                   help="a config field of one agent for every run (e.g. lamo.lm_block_size=128: CPU scale); JSON values")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--resume", action="store_true", help="skip runs already in --out")
    args = p.parse_args(argv)
    check_checkpoint_steps(p, args)
    for v in args.variants or []:
        if not any(v in VARIANTS[a] for a in args.algos):
            p.error(f"--variants {v!r}: not a variant of {args.algos}; allowed: {sorted({x for a in args.algos for x in VARIANTS[a]})}")
    extra: dict = {}
    for item in args.override:
        name, sep, value = item.partition("=")
        algo, dot, field = name.partition(".")
        if not sep or not dot or algo not in VARIANTS:
            p.error(f"--override {item!r}: expected ALGO.FIELD=VALUE with ALGO one of {list(VARIANTS)}")
        try:
            extra.setdefault(algo, {})[field] = json.loads(value)
        except json.JSONDecodeError:
            extra.setdefault(algo, {})[field] = value
    done = {_key(r) for r in read_jsonl(args.out)} if args.resume else set()
    jobs = [dict(algo=a, variant=v, seed=s, steps=args.steps, eval_every=args.eval_every, episodes=args.episodes,
                 task=args.task, ratio=args.ratio, extra=extra)
            for s in args.seeds for a in args.algos for v in VARIANTS[a] if args.variants is None or v in args.variants]
    jobs = [j for j in jobs if _key(j) not in done]
    print(f"{len(jobs)} runs to do on {args.workers} worker(s)", flush=True)
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for fut in as_completed([pool.submit(run, j) for j in jobs]):
            r = fut.result()
            append_jsonl(args.out, r)  # one line per finished run: a crash loses only runs in flight
            print(json.dumps(r), flush=True)
    records = read_jsonl(args.out)
    records = [r for r in records if r["steps"] == args.steps and r["task"] == args.task and r["ratio"] == args.ratio
               and all(r["overrides"].get(k) == v for k, v in extra.get(r["algo"], {}).items())]
    print("\n".join(summary(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
