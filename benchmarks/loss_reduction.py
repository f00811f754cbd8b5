"""The action loss's reduction, measured on each sequence agent: DT, Wiki-RL and LaMo.

The released DT/LaMo/Wiki-RL code averages the squared action error over the action dimensions
(``action_loss_reduction="mean"``); d3rlpy's DecisionTransformer sums it over them
(``"sum_dims"``): ``act_dim`` times the gradient, so that the 0.25 gradient clip keeps binding for
the whole run, where with the mean it stops binding after some 700 steps (see
docs/learning-parity.md). For LaMo the choice also moves the balance between the action loss and
the language loss (weight ``lm_weight``). This script trains each agent with both reductions from the
same seed (same initial weights, batches and dropout masks: only the reduction differs), on the
generated ``hopper-medium`` data, one torch thread, LaMo and Wiki-RL on the embedded LM, and records:

* the per-dimension action MSE (the summed loss divided by ``act_dim``), averaged over windows of
  ``--window`` steps (logged every 10 steps), and every other loss term the agent reports;
* the normalized score at each ``--eval-every`` checkpoint (10 episodes at target 3600, reset
  seeds 10000+i, as `benchmarks/learning_parity.py`).

Each finished run is appended to ``--out`` (JSON lines; ``--resume`` skips runs already there); the
last lines printed compare the two reductions per agent and seed.

    python benchmarks/loss_reduction.py --algos wikirl lamo --seeds 0 --steps 2000 --eval-every 2000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from _protocol import (add_windowed_run_arguments, append_jsonl, check_windowed_run_arguments, evaluate_checkpoint,
                       learn_logging_windows, read_jsonl)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "experiments" / "loss_reduction.jsonl"
REDUCTIONS = ("mean", "sum_dims")
#: CPU-scale fields per agent (the embedded LM; LaMo's language blocks shortened as in timestep_init.py)
AGENT_FIELDS = {"dt": {}, "wikirl": {"lm": "embedded"}, "lamo": {"lm": "embedded", "lm_block_size": 128}}


def run(job: dict) -> dict:
    import torch

    from offline_zoo import load_dataset
    from offline_zoo.algos.registry import get_algo

    torch.set_num_threads(1)
    ds = load_dataset(job["task"], source="generated", seed=0)
    fields = {**AGENT_FIELDS[job["algo"]], "action_loss_reduction": job["reduction"]}
    algo = get_algo(job["algo"])(ds, seed=job["seed"], device="cpu", **fields)
    windows, checkpoints, t_train = [], [], 0.0
    while algo.num_steps < job["steps"]:
        t0 = time.perf_counter()
        windows += learn_logging_windows(algo, job["eval_every"], job["window"])
        t_train += time.perf_counter() - t0
        checkpoints.append(evaluate_checkpoint(algo, job["episodes"]))
        print(f"[{job['algo']}/{job['reduction']}/seed{job['seed']}] step {algo.num_steps}: score {checkpoints[-1]['score']:.1f}, "
              f"action MSE/dim {windows[-1]['action_mse_per_dim']:.4f}", flush=True)
    return {**{k: job[k] for k in ("algo", "reduction", "seed", "steps", "eval_every", "episodes", "window", "task")},
            "fields": fields, "windows": windows, "checkpoints": checkpoints,
            "seconds_per_step": round(t_train / job["steps"], 4), "date": time.strftime("%Y-%m-%d"),
            "data_hash": ds.selection_hash, "n_steps_data": int(ds.n_steps)}


def _key(r: dict) -> tuple:
    return tuple(r[k] for k in ("algo", "reduction", "seed", "steps", "eval_every", "episodes", "window", "task"))


def compare(records: list[dict]) -> list[str]:
    """Per agent and seed: the last window's losses and every checkpoint's score, mean vs sum_dims."""
    lines = []
    by_key = {(r["algo"], r["seed"], r["reduction"]): r for r in records}
    for algo, seed in sorted({(a, s) for a, s, _ in by_key}):
        for red in REDUCTIONS:
            r = by_key.get((algo, seed, red))
            if r is None:
                continue
            last = r["windows"][-1]
            terms = ", ".join(f"{k} {v:.4f}" for k, v in last.items() if k not in ("step",))
            scores = ", ".join(f"{c['step']}: {c['score']:.1f}" for c in r["checkpoints"])
            lines.append(f"{algo:7s} seed {seed} {red:8s} | last {r['window']} steps to {last['step']}: {terms} | scores {scores}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", nargs="+", default=list(AGENT_FIELDS), choices=list(AGENT_FIELDS))
    p.add_argument("--reductions", nargs="+", default=list(REDUCTIONS), choices=REDUCTIONS)
    add_windowed_run_arguments(p, OUT)
    args = p.parse_args(argv)
    check_windowed_run_arguments(p, args)
    done = {_key(r) for r in read_jsonl(args.out)} if args.resume else set()
    jobs = [dict(algo=a, reduction=red, seed=s, steps=args.steps, eval_every=args.eval_every, episodes=args.episodes,
                 window=args.window, task=args.task)
            for a in args.algos for s in args.seeds for red in args.reductions]
    jobs = [j for j in jobs if _key(j) not in done]
    print(f"{len(jobs)} runs to do", flush=True)
    for job in jobs:  # one process, one run at a time: the machine's other core is left to other work
        append_jsonl(args.out, run(job))  # one line per finished run: a crash loses only the run in flight
    records = read_jsonl(args.out)
    print("\n".join(compare([r for r in records if r["steps"] == args.steps and r["task"] == args.task])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
