"""One-change-at-a-time experiments on our DT, to find what separates its learning curve from d3rlpy's.

Each variant changes exactly one thing of `offline_zoo.DT` towards d3rlpy's DecisionTransformer,
trains it on the generated ``hopper-medium`` data (one torch thread) and evaluates it like
``benchmarks/learning_parity.py`` does (10 episodes, target 3600, reset seeds 10000+i). Results are
appended to ``benchmarks/results/dt_ablation.jsonl`` as each run ends (``--resume`` skips runs
already there), so the file is the record of every experiment, disappointing ones included.
"default" is the library's default at the time of the run: the rows written before 2026-12-02 are
start-anchored windows (the default then), later ones end-anchored. From 2026-12-06 the default
action loss is summed over the action dimensions (``action_loss_reduction="sum_dims"``; a row's
``action_loss_reduction`` field says which, rows without it used the mean), so "default" and
``loss_sum_dims`` now differ only in what the loss divides by (real positions vs all B*K).

    python benchmarks/dt_ablation.py --variants default loss_sum_dims --steps 2000 --seeds 0
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from _protocol import append_jsonl, evaluate_checkpoint, read_jsonl

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results" / "dt_ablation.jsonl"


def d3rlpy_action_loss(preds, b):
    """d3rlpy's DT loss: squared error summed over action dims, mean over all B*K positions."""
    sq = ((preds.float() - b["actions"]) ** 2).sum(-1)
    return torch.where(b["mask"] > 0, sq, 0.0).mean()


def _dt_class():
    from offline_zoo import DT

    class SummedLossDT(DT):
        """Our DT with `d3rlpy_action_loss`."""

        name = "dt-summed-loss"

        def action_loss(self, preds, b):
            return d3rlpy_action_loss(preds, b)

    return DT, SummedLossDT


def _set_ln_eps(model, eps: float) -> None:
    for m in model.body.modules():
        if isinstance(m, torch.nn.LayerNorm):
            m.eps = eps


def _d3rlpy_body_init(model) -> None:
    """d3rlpy's ``_init_weights`` on the GPT-2 body: every projection N(0, 0.02) (GPT-2 scales c_proj down)."""
    for name, p in model.body.named_parameters():
        if name.endswith("c_proj.weight"):
            with torch.no_grad():
                p.normal_(0.0, 0.02)


VARIANTS = {
    "default": ({}, None),
    "released_timestep_init": ({"timestep_init": "released"}, None),
    "fast_kernels_off": ({"fast_kernels": False}, None),
    "loss_sum_dims": ({}, "summed"),
    "ln_eps_3e-3": ({}, lambda m: _set_ln_eps(m, 3e-3)),
    "c_proj_std_0.02": ({}, _d3rlpy_body_init),
    "end_anchored_windows": ({"window_anchor": "end"}, None),  # the default since 2026-12-02
    "start_anchored_windows": ({"window_anchor": "start"}, None),  # the released sampling
    # every remaining difference to d3rlpy's DT at once (its loss, LayerNorm eps, body init)
    "d3rlpy_like": ({}, "d3rlpy_like"),
    # benchmarks/dt_transplant.py's "ours trained from d3rlpy's initial weights" minus those weights:
    # our own draw, with the transplant's LayerNorm eps, c_proj init and standard kernels, our loss
    "transplant_control": ({"fast_kernels": False}, "transplant_control"),
}


def _d3rlpy_like(model) -> None:
    _set_ln_eps(model, 3e-3)
    _d3rlpy_body_init(model)


def _anchor(record: dict) -> str:
    """The window anchoring a row was trained with (rows before 2026-12-02 did not record it)."""
    return record.get("window_anchor", "end" if record["variant"] == "end_anchored_windows" else "start")


def run(variant: str, seed: int, steps: int, episodes: int) -> dict:
    from offline_zoo import load_dataset

    torch.set_num_threads(1)
    DT, SummedLossDT = _dt_class()
    overrides, change = VARIANTS[variant]
    cls = SummedLossDT if change in ("summed", "d3rlpy_like") else DT
    if change == "d3rlpy_like":
        change = _d3rlpy_like
    elif change == "transplant_control":
        cls, change = DT, _d3rlpy_like
    ds = load_dataset("hopper-medium", source="generated")
    algo = cls(ds, seed=seed, device="cpu", **overrides)
    if callable(change):
        change(algo.model)
    t0 = time.perf_counter()
    algo.learn(steps, progress_bar=False, log_every=min(100, steps))  # the loss of the last 1k steps: 10 logs
    sec = (time.perf_counter() - t0) / steps
    losses = [h["action_loss"] for h in algo.history["train"][-10:]]
    checkpoint = evaluate_checkpoint(algo, episodes)
    return {
        "variant": variant, "seed": seed, "steps": steps, "episodes": episodes,
        "window_anchor": algo.config.window_anchor,
        "action_loss_reduction": "d3rlpy" if cls is not DT else algo.config.action_loss_reduction,
        "score": checkpoint["score"],
        "lengths": checkpoint["lengths"],
        "action_mse_last_1k": round(statistics.fmean(losses), 5),
        "seconds_per_step": round(sec, 4),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--resume", action="store_true")
    args = p.parse_args(argv)
    done = {(r["variant"], r["seed"], r["steps"], r["episodes"], _anchor(r)) for r in read_jsonl(args.out)} if args.resume else set()
    from offline_zoo import DT

    for seed in args.seeds:
        for v in args.variants:
            anchor = VARIANTS[v][0].get("window_anchor", DT.config_class().window_anchor)
            if (v, seed, args.steps, args.episodes, anchor) in done:
                continue
            r = run(v, seed, args.steps, args.episodes)
            append_jsonl(args.out, r)
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
