"""Robust aggregates (offline_zoo.bench.aggregate): the estimators against hand-computed values, the
stratified bootstrap (seeded, stratified, ~95% coverage), the errors, and the Aggregate section of
``zoo-bench report`` (table, terminal, plots)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from offline_zoo.bench.aggregate import (
    Interval,
    default_taus,
    improvement_intervals,
    interval_estimates,
    iqm,
    mean_score,
    median_score,
    optimality_gap,
    performance_profile,
    probability_of_improvement,
    profile_intervals,
    score_matrix,
    stratified_bootstrap,
    summarize,
)

NAN = float("nan")


# -- estimators ------------------------------------------------------------------------------------
def test_iqm_trims_a_quarter_from_each_end_with_scipys_rounding():
    assert iqm([[1.0], [2.0], [3.0], [4.0]]) == 2.5                  # n = 4: cut 1 per end
    assert iqm([[1.0], [2.0], [3.0], [4.0], [100.0]]) == 3.0         # n = 5: int(1.25) = 1 per end
    assert iqm([[5.0], [1.0], [3.0]]) == 3.0                         # n = 3: int(0.75) = 0, plain mean
    assert iqm([[7.0]]) == 7.0
    # runs x tasks are pooled: 8 scores 0..70, cut 2 per end -> mean(20, 30, 40, 50)
    assert iqm([[0.0, 10.0], [20.0, 30.0], [40.0, 50.0], [60.0, 70.0]]) == 35.0
    # n = 7 with an outlier: int(1.75) = 1 per end -> mean(2, 3, 4, 5, 6)
    assert iqm(np.array([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [1000.0]])) == 4.0
    # a missing run (NaN) is left out: 1, 3, 5 -> nothing cut
    assert iqm([[1.0, 5.0], [3.0, NAN]]) == 3.0


def test_iqm_matches_scipy_trim_mean():
    stats = pytest.importorskip("scipy.stats")  # a cross-check only; the package does not use scipy
    rng = np.random.default_rng(0)
    for n_runs in range(1, 12):
        for n_tasks in (1, 3):
            x = rng.normal(50, 20, size=(n_runs, n_tasks))
            assert iqm(x) == pytest.approx(stats.trim_mean(x, 0.25, axis=None))


def test_mean_median_and_optimality_gap():
    x = [[10.0, 20.0], [30.0, 100.0]]
    assert mean_score(x) == 40.0 and median_score(x) == 25.0
    assert optimality_gap([[40.0, 120.0], [100.0, 90.0]]) == 17.5    # 60 + 0 + 0 + 10, no credit above 100
    assert optimality_gap([[0.2], [1.5]], threshold=1.0) == pytest.approx(0.4)
    assert optimality_gap([[100.0, 150.0]]) == 0.0
    assert mean_score([[1.0, NAN], [3.0, 8.0]]) == 4.0


def test_estimators_take_a_stack_of_arrays():
    stack = np.array([[[1.0], [2.0], [3.0], [4.0]], [[10.0], [20.0], [30.0], [40.0]]])
    assert iqm(stack).tolist() == [2.5, 25.0]
    assert mean_score(stack).tolist() == [2.5, 25.0]
    assert performance_profile(stack, [2.0]).tolist() == [[0.5], [1.0]]
    bad = stack.copy()
    bad[0, 0, 0] = NAN
    with pytest.raises(ValueError, match="missing runs .NaN. differ"):
        iqm(bad)


def test_probability_of_improvement_counts_ties_as_half():
    assert probability_of_improvement([[3.0], [1.0]], [[2.0], [1.0]]) == 0.625     # 1 + 1 + 0 + 1/2 of 4
    assert probability_of_improvement([[5.0], [5.0]], [[5.0]]) == 0.5              # all ties
    # X = 1, 2, 2; Y = 2, 1: pairs 0, 1/2, 1/2, 1, 1/2, 1 -> 3.5 / 6
    assert probability_of_improvement([[1.0], [2.0], [2.0]], [[2.0], [1.0]]) == pytest.approx(3.5 / 6)
    # averaged over tasks: task 0 X always ahead (1), task 1 X always behind (0)
    assert probability_of_improvement([[9.0, 0.0], [8.0, 1.0]], [[1.0, 5.0], [2.0, 6.0]]) == 0.5
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 4, size=(5, 3)).astype(float), rng.integers(0, 4, size=(4, 3)).astype(float)
    assert probability_of_improvement(x, y) + probability_of_improvement(y, x) == pytest.approx(1.0)
    # a missing run of Y is left out of its task's pairs
    assert probability_of_improvement([[3.0], [1.0]], [[2.0], [NAN]]) == 0.5


def test_performance_profile_counts_scores_strictly_above_tau():
    x = [[10.0, 50.0], [50.0, 90.0]]
    assert performance_profile(x, [0, 10, 50, 89.9, 90, 100]).tolist() == [1.0, 0.75, 0.25, 0.25, 0.0, 0.0]
    assert performance_profile([[10.0, NAN], [50.0, 90.0]], [20.0]).tolist() == [pytest.approx(2 / 3)]
    assert default_taus({"A": [[-5.0], [50.0]], "B": [[120.0]]}, n=3).tolist() == [-5.0, 57.5, 120.0]


# -- bootstrap -------------------------------------------------------------------------------------
def test_stratified_bootstrap_resamples_within_each_task_and_keeps_missing_runs():
    x = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, NAN], [3.0, 30.0, NAN]])
    b = stratified_bootstrap(x, reps=500, seed=3)
    assert b.shape == (500, 3, 3)
    for j in range(3):
        present = x[np.isfinite(x[:, j]), j]
        assert np.isin(b[:, np.isfinite(x[:, j]), j], present).all()  # draws come from the task's own runs
    assert np.isnan(b[:, 1:, 2]).all() and (b[:, 0, 2] == 100.0).all()
    assert len(np.unique(b[:, :, 0].mean(axis=1))) > 3                 # replicates differ
    assert np.array_equal(b, stratified_bootstrap(x, reps=500, seed=3), equal_nan=True)
    assert not np.array_equal(b, stratified_bootstrap(x, reps=500, seed=4), equal_nan=True)


def test_intervals_are_reproducible_and_do_not_depend_on_the_other_algorithms():
    rng = np.random.default_rng(0)
    scores = {"A": rng.normal(50, 10, (5, 4)), "B": rng.normal(40, 10, (5, 4))}
    one = interval_estimates(scores, reps=300, seed=7)
    assert one == interval_estimates(scores, reps=300, seed=7)
    assert one["A"] == interval_estimates({"A": scores["A"]}, reps=300, seed=7)["A"]
    assert one["A"]["mean"] != interval_estimates(scores, reps=300, seed=8)["A"]["mean"]
    for algo, by_metric in one.items():
        for metric, iv in by_metric.items():
            assert iv.low <= iv.point <= iv.high, (algo, metric, iv)
    assert one["A"]["mean"].point == pytest.approx(scores["A"].mean())
    # custom metrics: a function of (..., runs, tasks)
    custom = interval_estimates(scores, {"max": lambda x: np.nanmax(x, axis=(-2, -1))}, reps=100, seed=0)
    assert custom["A"]["max"].point == pytest.approx(scores["A"].max()) and custom["A"]["max"].high <= scores["A"].max()
    pi = improvement_intervals(scores, "B", reps=300, seed=7)
    assert set(pi) == {"A"} and pi == improvement_intervals(scores, "B", reps=300, seed=7)
    assert 0.0 <= pi["A"].low <= pi["A"].point <= pi["A"].high <= 1.0
    bands = profile_intervals(scores, taus=np.linspace(0, 100, 11), reps=200, seed=0)
    assert bands["A"].point.shape == (11,) and (bands["A"].low <= bands["A"].point + 1e-12).all()


def test_bootstrap_intervals_cover_the_true_value_about_95_percent_of_the_time():
    # 10 runs on each of 4 tasks, N(mu_j, 8) with mu symmetric around 15: the pooled distribution is
    # symmetric about 15, so the mean and the IQM of the population are both 15
    mus = np.array([0.0, 10.0, 20.0, 30.0])
    data_rng = np.random.default_rng(2021)
    trials, hits = 300, {"mean": 0, "iqm": 0}
    for t in range(trials):
        x = mus + data_rng.normal(0.0, 8.0, size=(10, 4))
        est = interval_estimates({"A": x}, ["mean", "iqm"], reps=200, seed=t)["A"]
        for m in hits:
            hits[m] += est[m].low <= 15.0 <= est[m].high
    for m, h in hits.items():
        assert 0.89 <= h / trials <= 0.99, f"{m}: {h}/{trials} intervals cover the true value"


def test_summarize_collects_everything():
    scores = {"LaMo": np.array([[40.0, 60.0], [50.0, 70.0]]), "DT": np.array([[30.0, 50.0], [40.0, NAN]])}
    s = summarize(scores, baseline="DT", reps=200, seed=0)
    assert s.algos == ["LaMo", "DT"] and s.n_runs == {"LaMo": 4, "DT": 3} and s.n_tasks == 2
    assert s.metrics == ["iqm", "mean", "median", "optimality_gap"]
    assert s.intervals["DT"]["mean"].point == 40.0 and s.improvement["LaMo"].point == pytest.approx((0.875 + 1.0) / 2)
    assert s.taus[0] == 0.0 and s.taus[-1] == 100.0 and s.profiles["DT"].point[0] == 1.0
    assert str(Interval(1.25, 0.5, 2.0)) == "1.2 [0.5, 2.0]"


# -- errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("call, message", [
    (lambda: iqm([1.0, 2.0]), r"scores has shape \(2,\): give an array \(runs, tasks\)"),
    (lambda: iqm(np.zeros((0, 3))), r"shape \(0, 3\): give at least one run and one task"),
    (lambda: iqm([[1.0, float("inf")]]), "infinite score"),
    (lambda: score_matrix([[1.0, NAN]], name="x"), "x has no finite score in task column 1"),
    (lambda: score_matrix("abc"), "not an array of numbers"),
    (lambda: probability_of_improvement([[1.0, 2.0]], [[1.0]]), "x has 2 tasks and y has 1"),
    (lambda: performance_profile([[1.0]], [[0.0, 1.0]]), r"taus has shape \(1, 2\): give a non-empty 1-D array"),
    (lambda: interval_estimates([[1.0]]), "scores_by_algo is a list: give a dict"),
    (lambda: interval_estimates({}), "scores_by_algo is empty"),
    (lambda: interval_estimates({"A": [3.0]}), r"scores_by_algo\['A'\] has shape \(1,\)"),
    (lambda: interval_estimates({"A": [[1.0]]}, ["mode"]), "metric 'mode': use one of iqm, mean, median, optimality_gap"),
    (lambda: interval_estimates({"A": [[1.0]]}, []), "metrics is empty"),
    (lambda: interval_estimates({"A": [[1.0]]}, {"m": 3}), "metric 'm' is not callable"),
    (lambda: interval_estimates({"A": [[1.0]]}, {"m": lambda x: 1.0}, reps=5), r"metric 'm' returned shape \(\) for 5 replicates"),
    (lambda: interval_estimates({"A": [[1.0]]}, reps=0), "reps=0: give an integer >= 1"),
    (lambda: interval_estimates({"A": [[1.0]]}, reps=2.5), r"reps=2.5: give an integer >= 1"),
    (lambda: interval_estimates({"A": [[1.0]]}, seed=-1), "seed=-1: give an integer >= 0"),
    (lambda: interval_estimates({"A": [[1.0]]}, confidence=95), "confidence=95: give a level between 0 and 1"),
    (lambda: improvement_intervals({"A": [[1.0]]}, "DT"), r"baseline 'DT' is not among the algorithms \(A\)"),
    (lambda: summarize({"A": np.ones((2, 2)), "B": np.ones((2, 3))}), r"scores_by_algo\['B'\] has 3 tasks and scores_by_algo\['A'\] 2"),
    (lambda: stratified_bootstrap(np.ones((2, 2, 2)), 3), "the bootstrap resamples one array"),
    (lambda: optimality_gap([[1.0]], threshold=float("nan")), "threshold=nan: give a finite score"),
])
def test_bad_input_is_named_with_what_is_allowed(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# -- the report ------------------------------------------------------------------------------------
def test_report_has_an_aggregate_table_over_cells_and_seeds(tmp_path):
    from offline_zoo.bench.report import build_report
    from offline_zoo.testing import write_demo_results

    write_demo_results(tmp_path / "out")       # DT and CQL, reacher2d-medium at ratios 0.1 and 1, seeds 0 and 1
    rep = build_report(tmp_path / "out")
    inputs = rep.aggregate_inputs()
    assert inputs["cells"] == [("reacher2d-medium", 0.1), ("reacher2d-medium", 1.0)] and inputs["seeds"] == [0, 1]
    # DT's per-seed scores (the cell's target "40"): 12.5, 12.5 at ratio 0.1; 25, 26 at ratio 1
    assert inputs["scores"]["DT"].tolist() == [[12.5, 25.0], [12.5, 26.0]]
    s = rep.aggregate()
    assert s.baseline == "DT" and s.intervals["DT"]["iqm"].point == 18.75 and s.intervals["CQL"]["mean"].point == 13.75
    # P(CQL > DT), CQL 2.5, 2.5 | 25, 25: ratio 0.1 always behind (0); ratio 1 a tie and a loss per run (1/4)
    assert s.improvement["CQL"].point == 0.125
    md = rep.markdown()
    assert "### Aggregate" in md and "| Algorithm | Runs | IQM | Mean | Median | Optimality gap | P(X > DT) |" in md
    assert "| DT | 4 | 18.8 [" in md and "| CQL | 4 | 13.8 [" in md and "| 0.12 [" in md
    assert md.index("### Aggregate") < md.index("### Final and best evaluation")
    assert build_report(tmp_path / "out").aggregate_rows() == rep.aggregate_rows()  # seeded: the same table again
    assert build_report(tmp_path / "out", bootstrap_seed=1, bootstrap_reps=50).aggregate().reps == 50


def test_report_aggregate_with_missing_seeds_and_cells(tmp_path):
    from offline_zoo.bench.report import build_report
    from offline_zoo.testing import write_demo_results

    specs = write_demo_results(tmp_path / "out")
    for s in specs:  # CQL seed 1 at ratio 1 and every DT run at ratio 0.1 did not finish
        if (s.label, s.ratio, s.seed) == ("CQL", 1.0, 1) or (s.label, s.ratio) == ("DT", 0.1):
            (tmp_path / "out" / "runs" / s.dirname / "result.json").unlink()
    rep = build_report(tmp_path / "out")
    inputs = rep.aggregate_inputs()
    assert inputs["cells"] == [("reacher2d-medium", 1.0)] and inputs["left_out"] == [("reacher2d-medium", 0.1)]
    assert np.array_equal(inputs["scores"]["CQL"], [[25.0], [NAN]], equal_nan=True)
    assert rep.aggregate().n_runs == {"DT": 2, "CQL": 1}
    assert "Left out (not every algorithm has a result there): reacher2d-medium 0.1." in rep.aggregate_caption()


def test_report_cli_prints_the_aggregate_and_writes_its_plots(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    from offline_zoo.cli import bench_main
    from offline_zoo.testing import write_demo_results

    write_demo_results(tmp_path / "out")
    md, plots = tmp_path / "README.md", tmp_path / "plots"
    assert bench_main(["report", str(tmp_path / "out"), "--markdown", str(md), "--plots", str(plots), "--bootstrap-reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "aggregate over cells and seeds" in out and "P(X > DT)" in out and "Optimality gap" in out
    for name in ("aggregate_intervals.png", "performance_profiles.png"):
        assert (plots / name).stat().st_size > 1000
        assert Path(plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"![{name[:-4]}](plots/{name})" in md.read_text()
    assert "(200 replicates, seed 0)" in md.read_text()
    assert bench_main(["report", str(tmp_path / "out"), "--bootstrap-reps", "0", "--quiet"]) == 2
    assert "--bootstrap-reps 0: give at least 1 replicate" in capsys.readouterr().err
