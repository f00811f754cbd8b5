"""Does our DT's gap to d3rlpy's follow the initial weights or the training pipeline?

Three 2,000-step DT runs per seed k on the generated ``hopper-medium`` data, 10 episodes at target
3600 (reset seeds 10000+i), one torch thread each:

* d3rlpy's DT from its own seed-k draw and ours from our seed-k draw (`learning_parity.py`):
      python benchmarks/learning_parity.py --algos dt --steps 2000 --eval-every 1000 --dt-seeds 0 1 2 3 \\
          --out benchmarks/results/dt_init_swap --no-readme --resume
* d3rlpy's DT from *our* seed-k draw (`dt_transplant.py --init offline_zoo`):
      python benchmarks/dt_transplant.py --train d3rlpy --init offline_zoo --seeds 0 1 2 3 --steps 2000 \\
          --out benchmarks/results/dt_init_swap/d3rlpy_from_our_init.jsonl

If d3rlpy trained from our weights scores like d3rlpy, the difference is in the pipeline (sampler,
loss, optimiser); if it scores like ours, it is in the draw. This script only reads the runs'
files, prints the per-seed table (markdown) and writes ``summary.json`` beside them.

    python benchmarks/dt_init_swap.py [--dir benchmarks/results/dt_init_swap]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIR = ROOT / "benchmarks" / "results" / "dt_init_swap"
COLUMNS = ("d3rlpy, own init", "offline-zoo, own init", "d3rlpy, our init")


def _final(path: Path) -> tuple[float, float | None, str | None] | None:
    """(score, per-dimension training loss, data hash) at the last checkpoint of a finished run."""
    if not path.exists():
        return None
    rec = json.loads(path.read_text())
    if not rec.get("done"):
        return None
    last = rec["checkpoints"][-1]
    loss = last["train_loss"]
    summed = rec["impl"] == "d3rlpy" or (rec.get("config") or {}).get("action_loss_reduction") == "sum_dims"
    if loss is not None and summed:  # a summed loss (d3rlpy's, or ours with sum_dims): per action dimension
        from offline_zoo.envs import env_spaces

        loss = loss / env_spaces(rec["task"])[1]
    return last["score"], loss, rec.get("data_hash")


def collect(folder: Path) -> dict:
    rows: dict[int, dict] = {}
    for impl, col in (("d3rlpy", COLUMNS[0]), ("offline_zoo", COLUMNS[1])):
        for path in sorted((folder / "learning_parity").glob(f"dt-{impl}-seed*.json")):
            got = _final(path)
            if got:
                seed = int(path.stem.rsplit("seed", 1)[1])
                rows.setdefault(seed, {})[col] = got[0]
                rows[seed][f"{impl} loss/dim"] = got[1]
                rows[seed]["data_hash"] = got[2]
    swap = folder / "d3rlpy_from_our_init.jsonl"
    if swap.exists():
        for line in swap.read_text().splitlines():
            rec = json.loads(line)
            rows.setdefault(rec["seed"], {})[COLUMNS[2]] = rec["d3rlpy_loop"]["score"]
            rows[rec["seed"]]["swap data_hash"] = rec.get("data_hash")
    return rows


def markdown(rows: dict) -> str:
    out = ["| seed | " + " | ".join(COLUMNS) + " |", "|---:|" + "---:|" * len(COLUMNS)]
    for seed in sorted(rows):
        out.append(f"| {seed} | " + " | ".join(f"{rows[seed][c]:.1f}" if c in rows[seed] else "-" for c in COLUMNS) + " |")
    means = []
    for c in COLUMNS:
        vals = [r[c] for r in rows.values() if c in r]
        means.append(f"{statistics.fmean(vals):.1f} (n={len(vals)})" if vals else "-")
    out.append("| mean | " + " | ".join(means) + " |")
    return "\n".join(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, default=DIR)
    args = p.parse_args(argv)
    rows = collect(args.dir)
    if not rows:
        print(f"no finished runs under {args.dir}", file=sys.stderr)
        return 1
    hashes = {r.get(k) for r in rows.values() for k in ("data_hash", "swap data_hash") if r.get(k)}
    if len(hashes) > 1:
        print(f"runs were trained on different data: {sorted(hashes)}", file=sys.stderr)
        return 1
    table = markdown(rows)
    print(table)
    summary = {"columns": list(COLUMNS), "rows": {str(k): v for k, v in sorted(rows.items())}, "data_hash": next(iter(hashes), None),
               "markdown": table}
    (args.dir / "summary.json").write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
