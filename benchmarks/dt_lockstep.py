"""Is one training step of our DT the same update as one of d3rlpy's? Train both in lockstep and see.

`dt_transplant.py` showed that the two forwards agree on the same weights and that the two
evaluation loops agree. This script checks the rest of the training pipeline, one part at a time,
without any evaluation noise:

1. **The update** (loss, AdamW, warm-up schedule, gradient clip). Both models start from d3rlpy's
   seed-k initial weights (copied into ours as in `dt_transplant.py`, with d3rlpy's LayerNorm eps
   and observation-scaler eps), dropout off, and take ``--steps`` gradient steps on the *same*
   batches: each batch is drawn by d3rlpy's sampler and handed to d3rlpy's ``update`` and,
   converted to our layout, to our ``_train_step``. The script records both losses every step and,
   at a few steps, the *update gap*: the largest ||ours - d3rlpy|| / ||d3rlpy - its start|| over the
   parameters (0 when the two accumulated updates are identical). Three settings: d3rlpy's loss
   denominator (all B*K positions, padding included) with our standard and with our fast CPU
   kernels, which should both be d3rlpy's update up to float rounding, and our default loss (summed
   over the action dimensions, divided by the real positions).
2. **The sampler** (which windows a batch holds). ``--windows`` windows from each sampler, compared
   by the statistics that decide what the model is trained on: share of padded positions, share of
   windows that start an episode, the distribution of the last step's timestep and return-to-go.

Results go to ``benchmarks/results/experiments/dt_lockstep.json``; the script prints a table.

    python benchmarks/dt_lockstep.py --seed 0 --steps 1000   # about 25 minutes on one core
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dt_ablation  # noqa: E402
import dt_transplant as tp  # noqa: E402
import learning_parity as lp  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "experiments" / "dt_lockstep.json"
CHECK_STEPS = (1, 10, 100, 300, 1000, 3000)
# (loss denominator, our fast CPU kernels): d3rlpy's denominator on both our kernel paths, then ours
SETTINGS = (("all_positions", False), ("all_positions", True), ("real_positions", False))


def _our_batch(tb, mean: np.ndarray, std: np.ndarray) -> dict[str, np.ndarray]:
    """d3rlpy's ``TrajectoryMiniBatch`` in our sampler's layout (states standardised, RTG / 1000, 0-based timesteps)."""
    mask = np.asarray(tb.masks, np.float32).reshape(tb.masks.shape[0], -1)
    real = mask > 0
    states = (np.asarray(tb.observations, np.float32) - mean) / std
    return {
        "states": np.where(real[..., None], states, 0.0).astype(np.float32),
        "actions": np.where(real[..., None], tb.actions, 0.0).astype(np.float32),
        "rewards": np.asarray(tb.rewards, np.float32),
        # raw returns-to-go: d3rlpy scales them in update() (learning_parity's MultiplyRewardScaler(0.001))
        "returns_to_go": (np.asarray(tb.returns_to_go, np.float32) * 0.001).astype(np.float32),
        "timesteps": np.maximum(np.asarray(tb.timesteps, np.int64).reshape(mask.shape) - 1, 0),
        "mask": mask,
    }


def _param_pairs(ours, ref) -> list[tuple[str, torch.Tensor, torch.Tensor]]:
    """(name, our tensor, d3rlpy's tensor in our layout) for every parameter; the timestep table row-aligned."""
    net = ref.impl.modules.transformer
    out = [(f"p{i}", o, t.T if transpose else t) for i, (o, t, transpose) in enumerate(tp._pairs(ours.model, net))]
    for i, (ob, tb) in enumerate(zip(ours.model.body.h, net._gpt2._transformer)):
        weight, bias = tp.fused_qkv(tb._attention)
        out += [(f"h{i}.c_attn.weight", ob.attn.c_attn.weight, weight), (f"h{i}.c_attn.bias", ob.attn.c_attn.bias, bias)]
    out.append(("timestep_table", *tp.timestep_rows(ours.model.embed_timestep.weight, net._position_encoding._embed.weight)))
    return out


@torch.no_grad()
def _update_gap(ours, ref, initial: dict[str, torch.Tensor]) -> float:
    """Largest ||ours - d3rlpy|| / ||d3rlpy - start|| over the parameters: how far apart the two
    accumulated updates are, relative to the update itself (0: the same update)."""
    gaps = []
    for name, o, t in _param_pairs(ours, ref):
        moved = (t - initial[name]).norm()
        if moved > 0:
            gaps.append(float((o - t).norm() / moved))
    return max(gaps)


def lockstep(dataset, seed: int, steps: int, denominator: str, check_steps=CHECK_STEPS, verbose: bool = True,
             **dt_overrides) -> dict:
    """Both implementations from d3rlpy's seed-``seed`` weights, dropout off, on the same batches.

    ``denominator``: ``"real_positions"`` (our loss) or ``"all_positions"`` (d3rlpy's);
    ``dt_overrides`` change our DT's config (and so d3rlpy's), e.g. a tiny model in the tests.
    """
    import d3rlpy

    ours, ref = tp.make_pair(dataset, seed, **{"dropout": 0.0, **dt_overrides})
    tp.copy_weights(ours.model, ref.impl.modules.transformer, "to_ours")
    sc = ref.config.observation_scaler
    mean = np.asarray(sc.mean, np.float32)
    std = (np.asarray(sc.std, np.float32) + tp.D3RLPY_OBS_EPS).astype(np.float32)
    ours._before_learn()
    if denominator == "all_positions":  # d3rlpy's: sum over action dims, mean over all B*K positions
        ours.action_loss = dt_ablation.d3rlpy_action_loss
    buffer = lp._mdp_dataset(dataset)
    np.random.seed(seed)  # d3rlpy's sampler draws from numpy's global generator
    d3rlpy.seed(seed)
    K, B = ours.config.context_len, ours.config.batch_size
    with torch.no_grad():
        pairs = _param_pairs(ours, ref)
        initial = {name: t.clone() for name, _, t in pairs}
        copy_gap = max(float((o - t).abs().max()) for _, o, t in pairs)
    rec = {"seed": seed, "steps": steps, "loss_denominator": denominator, "fast_kernels": ours.config.fast_kernels,
           "initial_param_gap": copy_gap,
           "losses_ours": [], "losses_d3rlpy": [], "update_gap": {}}
    t0 = time.perf_counter()
    for step in range(1, steps + 1):
        tb = buffer.sample_trajectory_batch(B, K)
        batch = _our_batch(tb, mean, std)
        ours._sampler.sample = lambda n, batch=batch: batch
        m = ours._train_step()
        r = ref.update(tb)
        rec["losses_ours"].append(float(m["action_loss"]))
        rec["losses_d3rlpy"].append(float(r["loss"]))
        if step in check_steps:
            rec["update_gap"][str(step)] = _update_gap(ours, ref, initial)
            if verbose:
                print(f"[lockstep {denominator} fast_kernels={ours.config.fast_kernels} seed {seed}] step {step}: loss {rec['losses_ours'][-1]:.5f} vs "
                      f"{rec['losses_d3rlpy'][-1]:.5f}, update gap {rec['update_gap'][str(step)]:.2e}", flush=True)
    lo, ld = np.array(rec["losses_ours"]), np.array(rec["losses_d3rlpy"])
    rec["max_rel_loss_gap"] = float(np.max(np.abs(lo - ld) / ld))
    rec["mean_loss_last_100"] = {"ours": float(lo[-100:].mean()), "d3rlpy": float(ld[-100:].mean())}
    rec["seconds"] = round(time.perf_counter() - t0, 1)
    return rec


def window_statistics(dataset, n: int, seed: int) -> dict:
    """The same statistics of ``n`` windows from our (end-anchored) sampler and from d3rlpy's."""
    from offline_zoo.data.samplers import WindowSampler

    K = 20
    ours = WindowSampler(dataset, K, 1000.0, 1000, np.zeros(dataset.observations.shape[1], np.float32),
                         np.ones(dataset.observations.shape[1], np.float32), seed=seed, anchor="end")
    buffer = lp._mdp_dataset(dataset)
    np.random.seed(seed)
    sides = {"ours": [], "d3rlpy": []}
    for _ in range(n // 1000):
        b = ours.sample(1000)
        sides["ours"].append((b["mask"], b["timesteps"][:, -1], b["returns_to_go"][:, -1, 0] * 1000.0, b["timesteps"][:, 0]))
        tb = buffer.sample_trajectory_batch(1000, K)
        m = np.asarray(tb.masks, np.float32).reshape(1000, K)
        ts = np.asarray(tb.timesteps).reshape(1000, K) - 1
        first = np.where(m[:, 0] > 0, ts[:, 0], 0)
        sides["d3rlpy"].append((m, ts[:, -1], np.asarray(tb.returns_to_go)[:, -1, 0], first))
    # what a uniform draw of the window's last step gives: d3rlpy never draws the last step of an
    # episode cut by a time-out (its transition_count is size - 1 there)
    sizes = {"ours": dataset.episode_lengths}
    sizes["d3rlpy"] = np.array([e.transition_count for e in buffer.episodes])
    out = {}
    for side, parts in sides.items():
        mask = np.concatenate([p[0] for p in parts])
        last_t = np.concatenate([p[1] for p in parts])
        last_rtg = np.concatenate([p[2] for p in parts])
        first_t = np.concatenate([p[3] for p in parts])
        out[side] = {
            "windows": int(mask.shape[0]),
            "padded_share": float(1.0 - mask.mean()),
            "padded_share_expected": float(sum(((K - 1 - t) for n in sizes[side] for t in range(min(K - 1, n)))) / (K * sizes[side].sum())),
            "episode_start_share": float((first_t == 0).mean()),
            "episode_start_share_expected": float(np.minimum(K, sizes[side]).sum() / sizes[side].sum()),
            "last_timestep_mean": float(last_t.mean()),
            "last_timestep_quartiles": [float(q) for q in np.percentile(last_t, [25, 50, 75])],
            "last_rtg_mean": float(last_rtg.mean()),
            "last_rtg_quartiles": [float(q) for q in np.percentile(last_rtg, [25, 50, 75])],
        }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--windows", type=int, default=200_000, help="windows per sampler for the sampler statistics")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--windows-only", action="store_true",
                   help="recompute only the sampler statistics (a minute) and keep the lockstep runs already in --out")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    dataset = lp._load("hopper-medium", 1.0)
    if args.windows_only:
        result = json.loads(args.out.read_text())
        if result["data_hash"] != lp.data_hash(dataset):
            p.error(f"{args.out} was made on data {result['data_hash']}, the data on disk is {lp.data_hash(dataset)}")
    else:
        result = {"data_hash": lp.data_hash(dataset), "date": time.strftime("%Y-%m-%d"), "versions": lp._versions(),
                  "lockstep": [lockstep(dataset, args.seed, args.steps, d, fast_kernels=f) for d, f in SETTINGS]}
    result["windows"] = window_statistics(dataset, args.windows, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print("| loss denominator | our kernels | max rel. loss gap | update gap at step " + " / ".join(result["lockstep"][0]["update_gap"]) + " |")
    print("|---|---|---|---|")
    for r in result["lockstep"]:
        print(f"| {r['loss_denominator']} | {'fast' if r['fast_kernels'] else 'standard'} | {r['max_rel_loss_gap']:.1e} | " + " / ".join(f"{v:.1e}" for v in r["update_gap"].values()) + " |")
    w = result["windows"]
    print()
    print("| windows | " + " | ".join(w) + " |")
    print("|---|" + "---|" * len(w))
    print("| padded positions (expected) | " + " | ".join(f"{v['padded_share']:.2%} ({v['padded_share_expected']:.2%})" for v in w.values()) + " |")
    print("| windows with an episode start (expected) | "
          + " | ".join(f"{v['episode_start_share']:.2%} ({v['episode_start_share_expected']:.2%})" for v in w.values()) + " |")
    print("| last step's timestep, quartiles | " + " | ".join(" / ".join(f"{q:.0f}" for q in v["last_timestep_quartiles"]) for v in w.values()) + " |")
    print("| last step's return-to-go, quartiles | " + " | ".join(" / ".join(f"{q:.0f}" for q in v["last_rtg_quartiles"]) for v in w.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
