"""Why Wiki-RL fits its actions slowly at CPU scale: one change at a time from its defaults.

At 2,000 steps on the embedded LM, Wiki-RL's per-dimension action MSE is about 0.41, against 0.13
for LaMo and about 0.1 for DT (`benchmarks/results/experiments/loss_reduction.jsonl`). Each variant
below changes one field of `offline_zoo.WikiRL`'s defaults (the released MuJoCo run script):

* ``linear_head``: DT's untied ``Linear + Tanh`` action head instead of the released tied one
  (``tanh(x @ W_embed_action)``, no bias);
* ``warmup_2500``: LaMo's 2,500 warm-up steps instead of 10,000 (the learning rate at step 2,000 is
  then 0.8x the peak instead of 0.2x);
* ``no_alignment``: without the embedding-alignment loss L_cos;
* ``resid_dropout_0.1``: DT's and LaMo's residual dropout instead of the released 0.2;
* ``fresh_timesteps``: a fresh N(0, 0.02) timestep table instead of the LM's position table.

Every run trains from the same seed on the generated ``hopper-medium`` data with one torch thread,
records the loss terms and the fraction of predicted actions on tanh's flat tails (``|a| > tanh 2``)
averaged over windows of ``--window`` steps, and the normalized score at each
``--eval-every`` checkpoint (the protocol of `benchmarks/_protocol.py`), and is appended to ``--out``
(JSON lines; ``--resume`` skips runs already there). The last lines printed compare the variants.

    python benchmarks/wikirl_fit.py --seeds 0 --steps 2000
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

from _protocol import (add_windowed_run_arguments, append_jsonl, check_windowed_run_arguments, evaluate_checkpoint,
                       learn_logging_windows, read_jsonl)

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "experiments" / "wikirl_fit.jsonl"
BASE = {"lm": "embedded"}  # offline, CPU scale
VARIANTS = {
    "default": {},
    "linear_head": {"action_head": "linear_tanh"},
    "warmup_2500": {"warmup_steps": 2500},
    "no_alignment": {"alignment_coef": 0.0},
    "resid_dropout_0.1": {"resid_dropout": 0.1},
    "fresh_timesteps": {"extend_positions": False},
}
SATURATED = math.tanh(2.0)
KEY = ("variant", "seed", "steps", "eval_every", "episodes", "window", "task")


def run(job: dict) -> dict:
    import torch

    from offline_zoo import WikiRL, load_dataset

    torch.set_num_threads(1)
    ds = load_dataset(job["task"], source="generated", seed=0)
    fields = {**BASE, **VARIANTS[job["variant"]]}
    algo = WikiRL(ds, seed=job["seed"], device="cpu", **fields)
    # how many predicted actions sit on tanh's flat tails (|a| > tanh(2), where the gradient is < 0.07
    # of its value at 0), per training forward (left-padded positions included, ~2%): its step and the fraction
    saturation: list[tuple[int, float]] = []
    hook = algo.model.predict_action.register_forward_hook(
        lambda mod, inp, out: saturation.append((algo.num_steps, float((out.abs() > SATURATED).float().mean()))) if mod.training else None)
    windows, checkpoints, t_train = [], [], 0.0
    while algo.num_steps < job["steps"]:
        t0 = time.perf_counter()
        new = learn_logging_windows(algo, job["eval_every"], job["window"])
        t_train += time.perf_counter() - t0
        for w in new:  # the window's mean saturated fraction
            inside = [f for step, f in saturation if w["step"] - job["window"] <= step < w["step"]]
            w["saturated_fraction"] = round(sum(inside) / len(inside), 4) if inside else None
        windows += new
        checkpoints.append(evaluate_checkpoint(algo, job["episodes"]))
        print(f"[{job['variant']}/seed{job['seed']}] step {algo.num_steps}: score {checkpoints[-1]['score']:.1f}, "
              f"action MSE/dim {windows[-1]['action_mse_per_dim']:.4f}", flush=True)
    hook.remove()
    return {**{k: job[k] for k in KEY}, "fields": fields, "windows": windows, "checkpoints": checkpoints,
            "seconds_per_step": round(t_train / job["steps"], 4), "date": time.strftime("%Y-%m-%d"),
            "data_hash": ds.selection_hash}


def compare(records: list[dict]) -> list[str]:
    """Per seed and variant: the action MSE of every window and the score of every checkpoint."""
    lines = []
    for r in sorted(records, key=lambda r: (r["seed"], list(VARIANTS).index(r["variant"]) if r["variant"] in VARIANTS else 99)):
        mse = ", ".join(f"{w['step']}: {w['action_mse_per_dim']:.3f}" for w in r["windows"])
        sat = ", ".join(f"{w.get('saturated_fraction')}" for w in r["windows"])
        norm = r["windows"][-1].get("grad_norm")
        scores = ", ".join(f"{c['step']}: {c['score']:.1f}" for c in r["checkpoints"])
        lines.append(f"seed {r['seed']} {r['variant']:18s} | action MSE/dim {mse} | saturated {sat} | last grad norm "
                     f"{norm if norm is None else round(norm, 3)} | scores {scores}")
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    add_windowed_run_arguments(p, OUT)
    args = p.parse_args(argv)
    check_windowed_run_arguments(p, args)
    done = {tuple(r[k] for k in KEY) for r in read_jsonl(args.out)} if args.resume else set()
    jobs = [dict(variant=v, seed=s, steps=args.steps, eval_every=args.eval_every, episodes=args.episodes,
                 window=args.window, task=args.task) for s in args.seeds for v in args.variants]
    jobs = [j for j in jobs if tuple(j[k] for k in KEY) not in done]
    print(f"{len(jobs)} runs to do", flush=True)
    for job in jobs:  # one run at a time, one thread: the other core is left to other work
        append_jsonl(args.out, run(job))  # a crash loses only the run in flight
    records = [r for r in read_jsonl(args.out) if r["steps"] == args.steps and r["task"] == args.task]
    print("\n".join(compare(records)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
