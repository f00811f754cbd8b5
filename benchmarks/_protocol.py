"""The evaluation protocol and result files shared by the sequence-agent learning experiments.

``learning_parity.py``, ``timestep_init.py``, ``loss_reduction.py``, ``dt_ablation.py`` and
``dt_transplant.py`` compare runs with one another, so they must score a checkpoint the same way:
10 episodes (``--episodes``) at return-to-go target 3600, episode ``i`` starting from reset seed
``10000 + i``. Their finished runs are JSON lines appended one per run, so that a crash loses only
the run in flight and ``--resume`` can skip what is already there.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

TARGET = 3600.0  # the return-to-go target of every checkpoint (hopper's expert level is ~3234)
EVAL_SEED = 10_000  # episode i starts from reset seed EVAL_SEED + i
LOG_EVERY = 10  # steps between the logged losses that `learn_logging_windows` averages


def evaluate_checkpoint(algo, episodes: int) -> dict:
    """Score an offline-zoo agent on the protocol: its step, mean normalized score and episode lengths."""
    res = algo.evaluate(n_episodes=episodes, target_returns=[TARGET], seed=EVAL_SEED)
    return {"step": int(algo.num_steps), "score": round(float(res.normalized[TARGET].mean()), 3),
            "lengths": [int(x) for x in res.lengths[TARGET]]}


def read_jsonl(path: Path) -> list[dict]:
    """Every record of a JSON-lines result file; none when it does not exist yet."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def append_jsonl(path: Path, record: dict) -> None:
    """Append one finished run (creating the file and its folder on the first)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def learn_logging_windows(algo, steps: int, window: int) -> list[dict]:
    """Train ``steps`` more steps; return the loss terms averaged over windows of ``window`` steps.

    Each window holds the per-dimension action MSE (``action_loss`` divided by the action dimension
    when the agent sums it over the dimensions), every other ``*_loss`` term the agent logs, and the
    pre-clip gradient norm, each averaged over the losses logged every `LOG_EVERY` steps.
    """
    if window < LOG_EVERY or window % LOG_EVERY or steps % window:
        raise ValueError(f"window={window}: give a multiple of {LOG_EVERY} that divides steps={steps}")
    summed = getattr(algo.config, "action_loss_reduction", "mean") == "sum_dims"
    per_dim = algo.dataset.actions.shape[-1] if summed else 1
    n_before = len(algo.history["train"])
    algo.learn(steps, progress_bar=False, log_every=LOG_EVERY)
    logged = algo.history["train"][n_before:]
    windows = []
    for start in range(0, len(logged), window // LOG_EVERY):
        chunk = logged[start:start + window // LOG_EVERY]
        entry = {"step": chunk[-1]["step"], "action_mse_per_dim": statistics.fmean(h["action_loss"] for h in chunk) / per_dim}
        for key in chunk[-1]:
            if key.endswith("_loss") and key != "action_loss" or key == "grad_norm":
                entry[key] = statistics.fmean(h[key] for h in chunk)
        windows.append({k: round(v, 6) if isinstance(v, float) else v for k, v in entry.items()})
    return windows


def add_windowed_run_arguments(parser, out: Path) -> None:
    """The options of a one-change experiment that logs loss windows (`learn_logging_windows`)."""
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=2000)
    parser.add_argument("--episodes", type=int, default=10)
    parser.add_argument("--window", type=int, default=500, help=f"steps per loss average (a multiple of {LOG_EVERY})")
    parser.add_argument("--task", default="hopper-medium")
    parser.add_argument("--out", type=Path, default=out)
    parser.add_argument("--resume", action="store_true", help="skip runs already in --out")


def check_checkpoint_steps(parser, args) -> None:
    """Stop with a clear message unless ``--steps`` is a positive multiple of ``--eval-every``."""
    if args.steps < args.eval_every or args.steps % args.eval_every:
        parser.error(f"--steps {args.steps} must be a positive multiple of --eval-every {args.eval_every}")


def check_windowed_run_arguments(parser, args) -> None:
    """Stop with a clear message when the step counts of `add_windowed_run_arguments` do not fit together."""
    check_checkpoint_steps(parser, args)
    if args.window < LOG_EVERY or args.window % LOG_EVERY or args.eval_every % args.window:
        parser.error(f"--window {args.window} must be a multiple of {LOG_EVERY} that divides --eval-every {args.eval_every}")
