"""Per-step overhead of the d3rlpy baselines' wrapper against a raw d3rlpy ``update`` loop (goal: < 3%).

Both sides train the same d3rlpy algorithm (the task's default configuration: for hopper-medium CQL
with 3x256 networks and batch 256, IQL with 2x256) on the same episodes, converted once from a
synthetic dataset with Hopper's shapes:

* **wrapper**: ``algo.learn(steps)`` — the base training loop, callbacks, metric bookkeeping, the
  algorithm's own torch RNG stream and its seeded batch sampling;
* **raw**: ``for _ in range(steps): d3.update(buffer.sample_transition_batch(batch_size))`` on a plain
  d3rlpy ``ReplayBuffer`` (global NumPy sampling).

Timings are interleaved (wrapper, raw, raw, wrapper, ...) and repeated; the table reports the
median of the paired wrapper/raw ratios. A second measurement replaces d3rlpy's batch sampling and
``update`` by no-ops on both sides, which isolates the wrapper's own cost per step in microseconds
(minimum over repeats), free of the noise of d3rlpy's work; "share" relates it to a real step.

    python benchmarks/baseline_overhead.py                       # CQL and IQL on the CPU
    python benchmarks/baseline_overhead.py --algos iql --steps 200 --repeats 7 --device cuda

The last printed line is a JSON object with every number.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time


def _dataset(n_steps: int, seed: int):
    import numpy as np

    from offline_zoo.data import Dataset

    rng = np.random.default_rng(seed)
    ends = np.zeros(n_steps, dtype=bool)
    ends[999::1000] = True
    ends[-1] = True
    return Dataset.from_arrays(
        rng.normal(size=(n_steps, 11)).astype(np.float32), rng.uniform(-1, 1, (n_steps, 3)).astype(np.float32),
        rng.normal(1.0, 0.5, n_steps), np.zeros(n_steps, dtype=bool), ends, task="hopper-medium", source="synthetic",
    )


def _time(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(name: str, dataset, steps: int, repeats: int, device: str, batch_size: int | None, noop: bool) -> dict:
    import offline_zoo as oz

    overrides = {} if batch_size is None else {"batch_size": batch_size}
    wrapped = oz.get_algo(name)(dataset, seed=0, device=device, **overrides)
    raw_owner = oz.get_algo(name)(dataset, seed=0, device=device, **overrides)
    from offline_zoo.algos.d3rlpy_baselines import to_d3rlpy_buffer

    wrapped._prepare_data()
    raw_owner._prepare_data()  # fits its scalers; the raw loop samples from a plain d3rlpy ReplayBuffer
    raw, buffer, bs = raw_owner.d3rlpy_algo, to_d3rlpy_buffer(dataset), raw_owner.d3rlpy_config.batch_size
    if noop:  # instance attributes shadow the methods: neither side does d3rlpy's work
        for d3, buf in ((wrapped.d3rlpy_algo, wrapped._buffer), (raw, buffer)):
            d3.update = lambda batch: {"critic_loss": 0.0}
            buf.sample_transition_batch = lambda size: None

    def run_wrapper():
        wrapped.learn(steps, progress_bar=False)

    def run_raw():
        for _ in range(steps):
            raw.update(buffer.sample_transition_batch(bs))

    run_wrapper(), run_raw()  # warm-up (allocator, lazy CUDA/cuDNN init)
    wrapper_t, raw_t = [], []
    for r in range(repeats):
        order = (run_wrapper, run_raw) if r % 2 == 0 else (run_raw, run_wrapper)
        for fn in order:
            (wrapper_t if fn is run_wrapper else raw_t).append(_time(fn) / steps)
    return {"wrapper_s": statistics.median(wrapper_t), "raw_s": statistics.median(raw_t), "wrapper_min_s": min(wrapper_t),
            "raw_min_s": min(raw_t), "ratios": [w / r for w, r in zip(wrapper_t, raw_t)], "batch_size": bs}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--algos", nargs="+", default=["cql", "iql"])
    p.add_argument("--steps", type=int, default=20, help="gradient steps per timing")
    p.add_argument("--repeats", type=int, default=5, help="interleaved timings per side")
    p.add_argument("--noop-steps", type=int, default=20_000, help="steps per timing of the no-op measurement")
    p.add_argument("--transitions", type=int, default=20_000, help="size of the synthetic dataset")
    p.add_argument("--batch-size", type=int, default=None, help="default: the task's configuration")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    args = p.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    dataset = _dataset(args.transitions, seed=0)
    results = {}
    print(f"{'algo':<6} {'batch':>5} {'raw ms/step':>12} {'wrapper ms/step':>16} {'ratio':>7} {'overhead':>9} "
          f"{'fixed us/step':>14} {'fixed share':>12}")
    for name in args.algos:
        real = measure(name, dataset, args.steps, args.repeats, args.device, args.batch_size, noop=False)
        fixed = measure(name, dataset, args.noop_steps, args.repeats, args.device, args.batch_size, noop=True)
        ratio = statistics.median(real["ratios"])
        fixed_us = (fixed["wrapper_min_s"] - fixed["raw_min_s"]) * 1e6
        share = fixed_us / (real["raw_s"] * 1e6)
        results[name] = {
            "batch_size": real["batch_size"], "raw_ms": real["raw_s"] * 1e3, "wrapper_ms": real["wrapper_s"] * 1e3,
            "ratio_median": ratio, "ratios": real["ratios"], "fixed_overhead_us": fixed_us,
            "noop_raw_us": fixed["raw_min_s"] * 1e6, "noop_wrapper_us": fixed["wrapper_min_s"] * 1e6, "fixed_overhead_share": share,
        }
        print(f"{name:<6} {real['batch_size']:>5} {real['raw_s'] * 1e3:>12.2f} {real['wrapper_s'] * 1e3:>16.2f} {ratio:>7.3f} "
              f"{(ratio - 1) * 100:>8.2f}% {fixed_us:>14.1f} {share * 100:>11.3f}%")
    print("ratio: median over repeats of wrapper/raw time per step (noisy on a busy machine); fixed: wrapper minus raw "
          "time per step with d3rlpy's sampling and update replaced by no-ops (min over repeats); share: fixed / raw step")
    summary = {"device": args.device, "threads": torch.get_num_threads(), "steps": args.steps, "repeats": args.repeats,
               "transitions": args.transitions, "results": results}
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
