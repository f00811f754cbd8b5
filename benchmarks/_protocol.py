"""The evaluation protocol and result files shared by the sequence-agent learning experiments.

``learning_parity.py``, ``timestep_init.py``, ``loss_reduction.py``, ``dt_ablation.py`` and
``dt_transplant.py`` compare runs with one another, so they must score a checkpoint the same way:
10 episodes (``--episodes``) at return-to-go target 3600, episode ``i`` starting from reset seed
``10000 + i``. Their finished runs are JSON lines appended one per run, so that a crash loses only
the run in flight and ``--resume`` can skip what is already there.
"""

from __future__ import annotations

import json
from pathlib import Path

TARGET = 3600.0  # the return-to-go target of every checkpoint (hopper's expert level is ~3234)
EVAL_SEED = 10_000  # episode i starts from reset seed EVAL_SEED + i


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
