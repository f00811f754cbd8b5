"""The analysis in `benchmarks/` scripts that turn finished runs into the numbers the docs quote."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
import dt_variant_compare  # noqa: E402


def _write_run(folder: Path, impl: str, seed: int, scores: list[float], data_hash="h", config=None, done=True):
    runs = folder / "learning_parity"
    runs.mkdir(parents=True, exist_ok=True)
    run = {"algo": "dt", "impl": impl, "seed": seed, "steps": 2000 * len(scores), "data_hash": data_hash, "done": done,
           "config": config or {}, "checkpoints": [{"step": 2000 * (i + 1), "score": s} for i, s in enumerate(scores)]}
    (runs / f"dt-{impl}-seed{seed}.json").write_text(json.dumps(run))


def test_variant_compare_pairs_seeds_and_skips_runs_on_other_data(tmp_path):
    base, variant = tmp_path / "base", tmp_path / "variant"
    for seed, (default, changed, ref) in enumerate([([40, 50, 60], [50, 60, 60], [60, 60, 60]),
                                                    ([30, 40, 50], [30, 50, 70], [60, 60, 60])]):
        _write_run(base, "offline_zoo", seed, default, config={"residual_init": "gpt2", "n_layer": 3})
        _write_run(variant, "offline_zoo", seed, changed, config={"residual_init": "unscaled", "n_layer": 3})
        _write_run(variant, "d3rlpy", seed, ref)
    # seed 2 of the variant was trained on other data, seed 3's is unfinished: neither counts
    _write_run(base, "offline_zoo", 2, [0, 0, 0])
    _write_run(variant, "offline_zoo", 2, [99, 99, 99], data_hash="other")
    _write_run(variant, "d3rlpy", 2, [60, 60, 60])
    _write_run(base, "offline_zoo", 3, [0, 0, 0])
    _write_run(variant, "offline_zoo", 3, [99, 99, 99], done=False)
    _write_run(variant, "d3rlpy", 3, [60, 60, 60])

    result = dt_variant_compare.compare(base, variant)
    assert result["seeds"] == [0, 1]
    assert result["config_changes"] == {"residual_init": "unscaled"}
    rows = {r["step"]: r for r in result["rows"]}
    assert rows[2000]["paired_diff"] == pytest.approx(5.0) and rows[2000]["variant_higher_in"] == 1
    assert rows[6000]["ratio_default"] == pytest.approx(55 / 60, abs=1e-4)
    assert rows[6000]["ratio_variant"] == pytest.approx(65 / 60, abs=1e-4)
    # each run's mean over the checkpoints from 4,000 steps on: default 55 / 45, variant 60 / 60
    assert rows["mean_from_4k"]["paired_diff"] == pytest.approx(10.0)
    lo, hi = rows["mean_from_4k"]["paired_diff_ci95"]
    assert lo == pytest.approx(5.0) and hi == pytest.approx(15.0)  # the two per-seed differences bound it


def test_variant_compare_says_when_nothing_matches(tmp_path):
    _write_run(tmp_path / "base", "offline_zoo", 0, [1, 2])
    with pytest.raises(SystemExit, match="no seed is finished"):
        dt_variant_compare.compare(tmp_path / "base", tmp_path / "variant")
