"""Compare two runs of `learning_parity.py` for DT that differ only in our DT's config.

`learning_parity.py --dt-override FIELD=VALUE --out DIR` trains our DT with one config change, next to
the same d3rlpy runs. Its own summary gives that variant's ratio to d3rlpy; this script adds the
*paired* comparison of the variant with our default, seed by seed. Seed k of both of ours draws
the same initial weights (up to the change), the same batches and the same dropout masks, and is
evaluated on the same episodes, so the per-seed difference removes most of the seed-to-seed noise
that dominates the unpaired ratio to d3rlpy.

    python benchmarks/dt_variant_compare.py \
        --base benchmarks/results \
        --variant benchmarks/results/learning_parity_d3rlpy_init \
        --out benchmarks/results/experiments/dt_d3rlpy_init_compare.json

Only seeds finished in both folders (and on the same data) count. It prints, per checkpoint, the
mean scores of d3rlpy, our default and the variant, the two ratios to d3rlpy, and the mean paired
difference (variant - default) with a 95% bootstrap interval over seeds; then the same for each
run's mean over the checkpoints from 4,000 steps on. The last printed line is the JSON summary.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import numpy as np

REPS = 10_000
FROM_STEP = 4_000


def load_runs(folder: Path, impl: str) -> dict[int, dict]:
    """Finished DT runs of ``impl`` in ``folder/learning_parity/``, by seed."""
    runs = {}
    for path in sorted((folder / "learning_parity").glob(f"dt-{impl}-seed*.json")):
        run = json.loads(path.read_text())
        if run.get("done"):
            runs[int(run["seed"])] = run
    return runs


def scores(run: dict) -> dict[int, float]:
    """A run's normalized score by checkpoint step."""
    return {int(c["step"]): float(c["score"]) for c in run["checkpoints"]}


def paired_interval(diffs: list[float], seed: int = 0) -> list[float] | None:
    """95% bootstrap interval of the mean of per-seed differences (seeds resampled with replacement)."""
    if len(diffs) < 2:
        return None
    x = np.asarray(diffs, float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(REPS, len(x)))
    lo, hi = np.percentile(x[idx].mean(axis=1), [2.5, 97.5])
    return [round(float(lo), 2), round(float(hi), 2)]


def compare(base: Path, variant: Path) -> dict:
    """Per-checkpoint means, ratios to d3rlpy and paired differences over the seeds finished in both folders."""
    ours_base, ours_var = load_runs(base, "offline_zoo"), load_runs(variant, "offline_zoo")
    ref = load_runs(variant, "d3rlpy")
    seeds = sorted(s for s in set(ours_base) & set(ours_var) & set(ref)
                   if ours_base[s].get("data_hash") == ours_var[s].get("data_hash") == ref[s].get("data_hash")
                   and ours_base[s]["steps"] == ours_var[s]["steps"] == ref[s]["steps"])
    if not seeds:
        raise SystemExit(f"no seed is finished on the same data in both {base} and {variant} (and d3rlpy's in {variant})")
    changed = {k: v for k, v in ours_var[seeds[0]].get("config", {}).items()
               if ours_base[seeds[0]].get("config", {}).get(k) != v}
    per_seed = {s: {"d3rlpy": scores(ref[s]), "default": scores(ours_base[s]), "variant": scores(ours_var[s])} for s in seeds}
    steps = sorted(set.intersection(*(set(v[k]) for v in per_seed.values() for k in v)))
    rows = []
    for step in steps + ["mean_from_4k"]:
        def value(s, k):
            curve = per_seed[s][k]
            return curve[step] if step != "mean_from_4k" else statistics.fmean(v for st, v in curve.items() if st >= FROM_STEP)
        means = {k: statistics.fmean(value(s, k) for s in seeds) for k in ("d3rlpy", "default", "variant")}
        diffs = [value(s, "variant") - value(s, "default") for s in seeds]
        rows.append({"step": step, **{k: round(v, 2) for k, v in means.items()},
                     "ratio_default": round(means["default"] / means["d3rlpy"], 4),
                     "ratio_variant": round(means["variant"] / means["d3rlpy"], 4),
                     "paired_diff": round(statistics.fmean(diffs), 2), "paired_diff_ci95": paired_interval(diffs),
                     "variant_higher_in": sum(d > 0 for d in diffs)})
    return {"base": str(base), "variant": str(variant), "config_changes": changed, "seeds": seeds,
            "rows": rows, "per_seed": {str(s): v for s, v in per_seed.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--base", type=Path, required=True, help="learning_parity --out folder of our default DT (the committed run: benchmarks/results)")
    p.add_argument("--variant", type=Path, required=True, help="learning_parity --out folder of the variant (with d3rlpy's runs)")
    p.add_argument("--out", type=Path, default=None, help="write the comparison here (JSON)")
    args = p.parse_args(argv)
    result = compare(args.base, args.variant)
    n = len(result["seeds"])
    print(f"variant: {result['config_changes']}  seeds {result['seeds']}")
    print(f"{'step':>12} {'d3rlpy':>7} {'default':>7} {'variant':>7} {'def/d3':>6} {'var/d3':>6}  variant - default (95% CI), higher in")
    for r in result["rows"]:
        ci = r["paired_diff_ci95"]
        ci_text = f"({ci[0]:+.1f}, {ci[1]:+.1f})" if ci else ""
        print(f"{r['step']!s:>12} {r['d3rlpy']:7.1f} {r['default']:7.1f} {r['variant']:7.1f} {r['ratio_default']:6.2f} "
              f"{r['ratio_variant']:6.2f}  {r['paired_diff']:+6.1f} {ci_text} {r['variant_higher_in']}/{n}")
    summary = {"seeds": result["seeds"], **{f"{k}_{r['step']}": r[k] for r in result["rows"]
                                             for k in ("ratio_default", "ratio_variant", "paired_diff")}}
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, **result}, indent=1))
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
