"""Robust aggregate scores over runs and tasks, with stratified bootstrap confidence intervals.

The estimators of Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical
Precipice" (NeurIPS 2021; their library, google-research/rliable, is archived), written here with
numpy only:

* `iqm`: interquartile mean, the mean of the middle 50% of all runs of all tasks (25% trimmed from
  each end, ``scipy.stats.trim_mean(x, 0.25)``'s rule: ``int(0.25 * n)`` scores cut per end);
* `mean_score`, `median_score`: the mean and the median of all runs of all tasks;
* `optimality_gap`: the mean shortfall ``max(0, threshold - score)`` (threshold 100 on normalized
  scores: how far the runs are from expert level; lower is better);
* `probability_of_improvement`: ``P(X > Y)`` of a run of X against a run of Y on the same task
  (the Mann-Whitney U statistic over ``n * m``, ties count 1/2), averaged over tasks;
* `performance_profile`: the fraction of runs with a score above each threshold ``tau``;
* `stratified_bootstrap` / `interval_estimates` / `improvement_intervals` / `profile_intervals`:
  percentile confidence intervals from resampling the runs of each task with replacement,
  independently per task (the tasks are fixed, the runs are the random sample);
* `summarize`: all of the above for a set of algorithms, as `zoo-bench report` prints them.

Scores are ``{algo: array (runs, tasks)}`` of normalized scores, the same task in the same column
for every algorithm. ``NaN`` marks a missing run (a seed that did not finish): it is left out of
every estimate, and the bootstrap resamples only the runs a task has. Every estimator also takes a
stack ``(..., runs, tasks)`` and returns one value per leading index (that is how the bootstrap
evaluates all replicates at once).

Examples:
    >>> import numpy as np
    >>> scores = {"LaMo": np.array([[40.0, 60.0], [50.0, 70.0], [45.0, 90.0]]),
    ...           "DT": np.array([[30.0, 50.0], [40.0, 60.0], [35.0, 65.0]])}
    >>> iqm(scores["LaMo"])          # 6 runs: 40 45 50 60 70 90 -> the middle 4
    56.25
    >>> round(optimality_gap(scores["LaMo"]), 2)          # (60 + 50 + 55 + 40 + 30 + 10) / 6
    40.83
    >>> probability_of_improvement(scores["LaMo"], scores["DT"])     # (8.5/9 + 7.5/9) / 2
    0.8888888888888888
    >>> summary = summarize(scores, baseline="DT", reps=500, seed=0)
    >>> print(summary.intervals["LaMo"]["iqm"])
    56.2 [51.2, 66.2]
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Mapping, Sequence

import numpy as np

__all__ = [
    "Interval",
    "Summary",
    "METRICS",
    "METRIC_TITLES",
    "DEFAULT_REPS",
    "score_matrix",
    "iqm",
    "mean_score",
    "median_score",
    "optimality_gap",
    "probability_of_improvement",
    "performance_profile",
    "default_taus",
    "stratified_bootstrap",
    "interval_estimates",
    "improvement_intervals",
    "profile_intervals",
    "summarize",
]

#: bootstrap replicates by default (rliable used 50,000; 2,000 puts the 95% endpoints within a few
#: tenths of a normalized point for typical suites, in a fraction of a second)
DEFAULT_REPS = 2000

#: elements one bootstrap chunk may hold (bounds the memory of large suites)
_CHUNK_ELEMENTS = 1 << 22


# -- input -----------------------------------------------------------------------------------------
def score_matrix(scores: Any, name: str = "scores") -> np.ndarray:
    """``scores`` as a float array ``(..., runs, tasks)``, checked: raises ValueError otherwise.

    At least 2 dimensions (runs, tasks), at least one run and one task, no infinity, and every task
    (column) with at least one finite score; ``NaN`` is a missing run.

    Examples:
        >>> score_matrix([[1, 2], [3, float("nan")]]).tolist()
        [[1.0, 2.0], [3.0, nan]]
        >>> score_matrix([1.0, 2.0])
        Traceback (most recent call last):
        ...
        ValueError: scores has shape (2,): give an array (runs, tasks), e.g. x[:, None] for the runs of one task
        >>> score_matrix([[1.0, float("nan")]], name="scores['DT']")
        Traceback (most recent call last):
        ...
        ValueError: scores['DT'] has no finite score in task column 1 (NaN is a missing run; a task needs at least one run)
    """
    try:
        x = np.asarray(scores, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"{name} is not an array of numbers ({type(scores).__name__}): give an array (runs, tasks) of scores") from e
    if x.ndim < 2:
        raise ValueError(f"{name} has shape {x.shape}: give an array (runs, tasks), e.g. x[:, None] for the runs of one task")
    if x.shape[-2] == 0 or x.shape[-1] == 0:
        raise ValueError(f"{name} has shape {x.shape}: give at least one run and one task (runs, tasks)")
    if np.isinf(x).any():
        raise ValueError(f"{name} holds an infinite score: scores must be finite (NaN marks a missing run)")
    empty = ~np.isfinite(x).any(axis=-2)
    if empty.any():
        col = int(np.argwhere(empty)[0][-1])
        raise ValueError(f"{name} has no finite score in task column {col} (NaN is a missing run; a task needs at least one run)")
    return x


def _finite_mask(x: np.ndarray, name: str) -> np.ndarray:
    """The (runs, tasks) mask of present runs, the same in every leading slice of ``x``."""
    finite = np.isfinite(x)
    mask = finite[(0,) * (x.ndim - 2)]
    if x.ndim > 2 and not (finite == mask).all():
        raise ValueError(f"{name}: the missing runs (NaN) differ between the stacked arrays; stack arrays (..., runs, tasks) with NaN in the same places")
    return mask


def _flat(scores: Any, name: str = "scores") -> np.ndarray:
    """The present runs of every task as one axis: ``(..., runs, tasks) -> (..., n)``."""
    x = score_matrix(scores, name)
    return x[..., _finite_mask(x, name)]


def _out(v: np.ndarray) -> float | np.ndarray:
    v = np.asarray(v, dtype=float)
    return float(v) if v.ndim == 0 else v


# -- the estimators (last axis: the runs of every task, flattened) ---------------------------------
def _trim_mean(flat: np.ndarray, cut: float = 0.25) -> np.ndarray:
    n = flat.shape[-1]
    k = int(cut * n)  # scipy.stats.trim_mean's rule: the fractional part of the cut is not cut
    return np.sort(flat, axis=-1)[..., k : n - k].mean(axis=-1)


def iqm(scores: Any) -> float | np.ndarray:
    """Interquartile mean: the mean of the middle 50% of all runs of all tasks.

    Sorts the ``n`` present scores and cuts ``int(0.25 * n)`` from each end (the rule of
    ``scipy.stats.trim_mean(x, 0.25)``, which rliable uses): with 6 runs one is cut per end, with 3
    none. Robust to outlier runs like the median, yet uses half of the runs like a mean.

    Args:
        scores: array ``(runs, tasks)`` (or a stack ``(..., runs, tasks)``); NaN = missing run.

    Returns:
        A float (one per leading index for a stack).

    Examples:
        >>> iqm([[1.0], [2.0], [3.0], [4.0], [100.0]])      # n = 5: cut 1 per end -> mean(2, 3, 4)
        3.0
        >>> iqm([[0.0, 10.0], [20.0, 30.0], [40.0, 50.0], [60.0, 70.0]])   # n = 8: cut 2 per end
        35.0
        >>> iqm([[1.0, 5.0], [3.0, float("nan")]])          # n = 3: nothing cut
        3.0
    """
    return _out(_trim_mean(_flat(scores)))


def mean_score(scores: Any) -> float | np.ndarray:
    """The mean of all runs of all tasks (NaN = missing run, left out).

    Examples:
        >>> mean_score([[10.0, 20.0], [30.0, 100.0]])
        40.0
    """
    return _out(_flat(scores).mean(axis=-1))


def median_score(scores: Any) -> float | np.ndarray:
    """The median of all runs of all tasks (NaN = missing run, left out).

    Examples:
        >>> median_score([[10.0, 20.0], [30.0, 100.0]])
        25.0
    """
    return _out(np.median(_flat(scores), axis=-1))


def _gap(flat: np.ndarray, threshold: float = 100.0) -> np.ndarray:
    return np.maximum(0.0, threshold - flat).mean(axis=-1)


def optimality_gap(scores: Any, threshold: float = 100.0) -> float | np.ndarray:
    """The mean shortfall from ``threshold``: ``mean(max(0, threshold - score))``; lower is better.

    With normalized scores and ``threshold=100`` it is how far the runs fall short of expert level;
    scores above the threshold count as reaching it (no credit for exceeding it).

    Examples:
        >>> optimality_gap([[40.0, 120.0], [100.0, 90.0]])    # shortfalls 60, 0, 0, 10
        17.5
        >>> optimality_gap([[0.5, 1.0]], threshold=1.0)      # scores normalized to [0, 1]
        0.25
    """
    if not math.isfinite(threshold):
        raise ValueError(f"threshold={threshold!r}: give a finite score (100 for normalized scores)")
    return _out(_gap(_flat(scores), float(threshold)))


#: the metrics of `interval_estimates` by name: functions of an array ``(..., runs, tasks)``
METRICS: dict[str, Callable[[Any], Any]] = {
    "iqm": iqm,
    "mean": mean_score,
    "median": median_score,
    "optimality_gap": optimality_gap,
}

#: column titles of the metrics
METRIC_TITLES = {"iqm": "IQM", "mean": "Mean", "median": "Median", "optimality_gap": "Optimality gap"}

# the same metrics on flattened present runs (the bootstrap's fast path)
_FLAT = {"iqm": _trim_mean, "mean": lambda f: f.mean(axis=-1), "median": lambda f: np.median(f, axis=-1), "optimality_gap": _gap}


def probability_of_improvement(x: Any, y: Any) -> float | np.ndarray:
    """``P(X > Y)``: the chance that a run of X scores above a run of Y on the same task, averaged over tasks.

    Per task it is the Mann-Whitney U statistic divided by ``n * m``: every pair (a run of X, a run
    of Y) counts 1 when X's score is higher, 1/2 when they tie, 0 otherwise. 0.5 means no
    difference; it says how often X beats Y, not by how much.

    Args:
        x: scores of X, ``(runs_x, tasks)``.
        y: scores of Y, ``(runs_y, tasks)``: the same tasks in the same columns (the numbers of runs may differ).

    Examples:
        >>> probability_of_improvement([[3.0], [1.0]], [[2.0], [1.0]])   # pairs: 1, 1, 0, 1/2
        0.625
        >>> probability_of_improvement([[1.0, 5.0]], [[0.0, 5.0], [2.0, 5.0]])   # tasks: 1/2 and 1/2
        0.5
        >>> probability_of_improvement([[1.0, 2.0]], [[1.0]])
        Traceback (most recent call last):
        ...
        ValueError: x has 2 tasks and y has 1: P(X > Y) compares the same tasks (columns) of both
    """
    a, b = score_matrix(x, "x"), score_matrix(y, "y")
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(f"x has {a.shape[-1]} tasks and y has {b.shape[-1]}: P(X > Y) compares the same tasks (columns) of both")
    if a.shape[:-2] != b.shape[:-2]:
        raise ValueError(f"x is a stack {a.shape[:-2]} and y {b.shape[:-2]}: give both the same leading shape")
    xa, yb = a[..., :, None, :], b[..., None, :, :]
    valid = np.isfinite(xa) & np.isfinite(yb)
    with np.errstate(invalid="ignore"):
        wins = np.where(valid, (xa > yb) + 0.5 * (xa == yb), 0.0).sum(axis=(-3, -2))
    return _out((wins / valid.sum(axis=(-3, -2))).mean(axis=-1))


def performance_profile(scores: Any, taus: Any) -> np.ndarray:
    """The score distribution: for each ``tau``, the fraction of all runs of all tasks scoring above it.

    A curve that lies above another everywhere is better whatever the threshold (stochastic
    dominance); the area under it is the mean score.

    Args:
        scores: array ``(runs, tasks)`` (or a stack); NaN = missing run.
        taus: the thresholds, a 1-D array.

    Returns:
        An array ``(len(taus),)`` (``(..., len(taus))`` for a stack).

    Examples:
        >>> performance_profile([[10.0, 50.0], [50.0, 90.0]], [0, 10, 50, 100]).tolist()
        [1.0, 0.75, 0.25, 0.0]
    """
    t = np.asarray(taus, dtype=float)
    if t.ndim != 1 or t.size == 0 or not np.isfinite(t).all():
        raise ValueError(f"taus has shape {t.shape}: give a non-empty 1-D array of finite thresholds")
    flat = _flat(scores)
    return (flat[..., None, :] > t[:, None]).mean(axis=-1)


def default_taus(scores_by_algo: Mapping[str, Any], n: int = 101) -> np.ndarray:
    """``n`` thresholds from ``min(0, lowest score)`` to ``max(100, highest score)``: the x axis of a profile.

    Examples:
        >>> default_taus({"A": [[20.0], [200.0]]}, n=3).tolist()
        [0.0, 100.0, 200.0]
        >>> default_taus({"A": [[-10.0], [50.0]]}, n=3).tolist()
        [-10.0, 45.0, 100.0]
    """
    data = _check_algos(scores_by_algo)
    lo = min(0.0, *(float(np.nanmin(x)) for x in data.values()))
    hi = max(100.0, *(float(np.nanmax(x)) for x in data.values()))
    if n < 2:
        raise ValueError(f"n={n}: give at least 2 thresholds")
    return np.linspace(lo, hi, int(n))


# -- the bootstrap ---------------------------------------------------------------------------------
def _check_int(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"{name}={value!r}: give an integer >= {low}")
    return int(value)


def _rng(seed: Any, *keys: str) -> np.random.Generator:
    """A Generator for one stream: the seed and the names it is for (an algorithm's intervals do
    not depend on which other algorithms are summarized with it)."""
    return np.random.default_rng([_check_int(seed, "seed", 0), *(zlib.crc32(k.encode()) for k in keys)])


def stratified_bootstrap(scores: Any, reps: int, seed: int | np.random.Generator = 0) -> np.ndarray:
    """Bootstrap replicates of ``scores (runs, tasks)``: each task's runs resampled with replacement, independently.

    The tasks stay fixed (they are the benchmark), the runs of each task are the sample: replicate
    ``r``'s column ``j`` holds as many draws as task ``j`` has present runs, all from that column;
    missing runs (NaN) stay missing.

    Args:
        scores: array ``(runs, tasks)``; NaN = missing run.
        reps: number of replicates.
        seed: an integer seed or a ``numpy.random.Generator`` (the same seed, the same replicates).

    Returns:
        An array ``(reps, runs, tasks)``.

    Examples:
        >>> x = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, np.nan]])
        >>> b = stratified_bootstrap(x, reps=4, seed=0)
        >>> b.shape, bool(np.isin(b[:, :, 0], [1.0, 2.0, 3.0]).all()), bool(np.isnan(b[:, 2, 1]).all())
        ((4, 3, 2), True, True)
        >>> bool((b == stratified_bootstrap(x, reps=4, seed=0)).all(where=~np.isnan(b)))
        True
    """
    x = score_matrix(scores)
    if x.ndim != 2:
        raise ValueError(f"scores has shape {x.shape}: the bootstrap resamples one array (runs, tasks)")
    reps = _check_int(reps, "reps", 1)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(_check_int(seed, "seed", 0))
    out = np.full((reps, *x.shape), np.nan)
    for j in range(x.shape[1]):
        rows = np.flatnonzero(np.isfinite(x[:, j]))
        draws = rng.integers(0, rows.size, size=(reps, rows.size))
        out[:, rows, j] = x[rows[draws], j]
    return out


def _chunks(reps: int, size: int) -> Iterator[int]:
    per = max(1, _CHUNK_ELEMENTS // max(1, size))
    done = 0
    while done < reps:
        n = min(per, reps - done)
        yield n
        done += n


def _percentiles(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    alpha = 100.0 * (1.0 - confidence) / 2.0
    lo, hi = np.percentile(samples, [alpha, 100.0 - alpha], axis=0)
    return lo, hi


def _check_confidence(confidence: float) -> float:
    if not (isinstance(confidence, (int, float)) and 0.0 < confidence < 1.0):
        raise ValueError(f"confidence={confidence!r}: give a level between 0 and 1 (0.95 for 95% intervals)")
    return float(confidence)


def _check_algos(scores_by_algo: Any) -> dict[str, np.ndarray]:
    if not isinstance(scores_by_algo, Mapping):
        raise ValueError(f"scores_by_algo is a {type(scores_by_algo).__name__}: give a dict {{algorithm: array (runs, tasks)}}")
    if not scores_by_algo:
        raise ValueError("scores_by_algo is empty: give a dict {algorithm: array (runs, tasks)} with at least one algorithm")
    out = {}
    for algo, x in scores_by_algo.items():
        m = score_matrix(x, f"scores_by_algo[{algo!r}]")
        if m.ndim != 2:
            raise ValueError(f"scores_by_algo[{algo!r}] has shape {m.shape}: give an array (runs, tasks)")
        out[str(algo)] = m
    return out


def _check_metrics(metrics: Any) -> dict[str, Callable]:
    if isinstance(metrics, str):
        metrics = [metrics]
    if isinstance(metrics, Mapping):
        items = dict(metrics)
        bad = [k for k, f in items.items() if not callable(f)]
        if bad:
            raise ValueError(f"metric {bad[0]!r} is not callable: give a function of an array (..., runs, tasks)")
    else:
        items = {}
        for m in metrics:
            if callable(m):
                items[getattr(m, "__name__", repr(m))] = m
            elif m in METRICS:
                items[m] = METRICS[m]
            else:
                raise ValueError(f"metric {m!r}: use one of {', '.join(METRICS)}, or a function of an array (..., runs, tasks)")
    if not items:
        raise ValueError("metrics is empty: name at least one of " + ", ".join(METRICS))
    return items


@dataclass(frozen=True)
class Interval:
    """A point estimate and its confidence interval ``[low, high]``.

    The fields are floats; for a performance profile (`profile_intervals`) they are arrays, one
    entry per threshold.

    Examples:
        >>> iv = Interval(39.3, 35.01, 44.0)
        >>> print(iv)
        39.3 [35.0, 44.0]
        >>> iv.format(2)
        '39.30 [35.01, 44.00]'
    """

    point: Any
    low: Any
    high: Any

    def format(self, digits: int = 1) -> str:
        """``"point [low, high]"`` with ``digits`` decimals."""
        return f"{self.point:.{digits}f} [{self.low:.{digits}f}, {self.high:.{digits}f}]"

    def __str__(self) -> str:
        return self.format()


def interval_estimates(
    scores_by_algo: Mapping[str, Any],
    metrics: Sequence[str] | Mapping[str, Callable] = tuple(METRICS),
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Interval]]:
    """Point estimates and stratified-bootstrap percentile intervals of ``metrics`` per algorithm.

    Every metric of an algorithm is evaluated on the same ``reps`` replicates
    (`stratified_bootstrap`); the interval is the ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``
    percentiles of the replicates' values. The replicates of an algorithm depend only on ``seed`` and
    its name, so the same call gives the same intervals, whatever the other algorithms.

    Args:
        scores_by_algo: ``{algo: array (runs, tasks)}``; NaN = missing run.
        metrics: names from `METRICS` (``iqm``, ``mean``, ``median``, ``optimality_gap``), or
            ``{name: function}`` of functions mapping an array ``(..., runs, tasks)`` to ``(...)``.
        reps: bootstrap replicates.
        seed: seed of the bootstrap (an integer >= 0).
        confidence: the intervals' level.

    Returns:
        ``{algo: {metric: Interval}}``.

    Examples:
        >>> scores = {"A": np.array([[10.0, 30.0], [20.0, 40.0], [15.0, 80.0]])}
        >>> est = interval_estimates(scores, ["mean", "iqm"], reps=1000, seed=1)
        >>> est["A"]["mean"].point, est["A"]["iqm"].point
        (32.5, 26.25)
        >>> lo, hi = est["A"]["mean"].low, est["A"]["mean"].high
        >>> bool(15.0 < lo < 32.5 < hi < 50.0)
        True
        >>> est == interval_estimates(scores, ["mean", "iqm"], reps=1000, seed=1)      # seeded
        True
        >>> interval_estimates(scores, ["mode"])
        Traceback (most recent call last):
        ...
        ValueError: metric 'mode': use one of iqm, mean, median, optimality_gap, or a function of an array (..., runs, tasks)
    """
    data = _check_algos(scores_by_algo)
    funcs = _check_metrics(metrics)
    reps = _check_int(reps, "reps", 1)
    confidence = _check_confidence(confidence)
    out: dict[str, dict[str, Interval]] = {}
    for algo, x in data.items():
        rng = _rng(seed, algo)
        mask = np.isfinite(x)
        samples: dict[str, list[np.ndarray]] = {name: [] for name in funcs}
        for n in _chunks(reps, x.size):
            boot = stratified_bootstrap(x, n, rng)
            flat = boot[:, mask]
            for name, f in funcs.items():
                v = _FLAT[name](flat) if f is METRICS.get(name) else np.asarray(f(boot), dtype=float)
                if v.shape != (n,):
                    raise ValueError(f"metric {name!r} returned shape {v.shape} for {n} replicates: a metric maps an array (..., runs, tasks) to (...)")
                samples[name].append(v)
        out[algo] = {}
        for name, f in funcs.items():
            lo, hi = _percentiles(np.concatenate(samples[name]), confidence)
            out[algo][name] = Interval(float(f(x)), float(lo), float(hi))
    return out


def improvement_intervals(
    scores_by_algo: Mapping[str, Any], baseline: str, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = 0.95
) -> dict[str, Interval]:
    """`probability_of_improvement` of every other algorithm over ``baseline``, with bootstrap intervals.

    The runs of both algorithms are resampled independently, within each task (stratified).

    Returns:
        ``{algo: Interval of P(algo > baseline)}`` for every algorithm but the baseline.

    Examples:
        >>> scores = {"DT": np.array([[1.0, 2.0], [2.0, 3.0]]), "LaMo": np.array([[3.0, 2.0], [4.0, 5.0]])}
        >>> iv = improvement_intervals(scores, "DT", reps=500)["LaMo"]
        >>> iv.point, bool(0.5 <= iv.low <= iv.point <= iv.high <= 1.0)
        (0.8125, True)
        >>> improvement_intervals(scores, "CQL")
        Traceback (most recent call last):
        ...
        ValueError: baseline 'CQL' is not among the algorithms (DT, LaMo)
    """
    data = _check_algos(scores_by_algo)
    if baseline not in data:
        raise ValueError(f"baseline {baseline!r} is not among the algorithms ({', '.join(data)})")
    reps = _check_int(reps, "reps", 1)
    confidence = _check_confidence(confidence)
    y = data[baseline]
    out = {}
    for algo, x in data.items():
        if algo == baseline:
            continue
        point = probability_of_improvement(x, y)  # checks the tasks match
        rng = _rng(seed, algo, baseline)
        samples = []
        for n in _chunks(reps, x.shape[0] * y.shape[0] * x.shape[1]):
            samples.append(probability_of_improvement(stratified_bootstrap(x, n, rng), stratified_bootstrap(y, n, rng)))
        lo, hi = _percentiles(np.atleast_1d(np.concatenate([np.atleast_1d(s) for s in samples])), confidence)
        out[algo] = Interval(float(point), float(lo), float(hi))
    return out


def profile_intervals(
    scores_by_algo: Mapping[str, Any], taus: Any = None, reps: int = DEFAULT_REPS, seed: int = 0, confidence: float = 0.95
) -> dict[str, Interval]:
    """`performance_profile` per algorithm with pointwise bootstrap intervals (the bands of the plot).

    ``taus`` defaults to `default_taus`. Returns ``{algo: Interval}`` whose fields are arrays
    ``(len(taus),)``.

    Examples:
        >>> bands = profile_intervals({"A": np.array([[10.0], [50.0], [90.0]])}, taus=[0, 50, 100], reps=200)
        >>> bands["A"].point.tolist(), bands["A"].low.tolist()[0], bands["A"].high.tolist()[-1]
        ([1.0, 0.3333333333333333, 0.0], 1.0, 0.0)
    """
    data = _check_algos(scores_by_algo)
    t = default_taus(data) if taus is None else np.asarray(taus, dtype=float)
    reps = _check_int(reps, "reps", 1)
    confidence = _check_confidence(confidence)
    out = {}
    for algo, x in data.items():
        rng = _rng(seed, algo, "profile")
        samples = [performance_profile(stratified_bootstrap(x, n, rng), t) for n in _chunks(reps, x.size * t.size)]
        lo, hi = _percentiles(np.concatenate(samples), confidence)
        out[algo] = Interval(performance_profile(x, t), lo, hi)
    return out


@dataclass
class Summary:
    """Every aggregate of a set of algorithms (`summarize`'s result).

    ``intervals``: ``{algo: {metric: Interval}}``; ``improvement``: ``{algo: Interval of P(algo >
    baseline)}`` (empty without a baseline); ``profiles``: ``{algo: Interval of arrays}`` over
    ``taus``; ``n_runs``: present runs per algorithm; ``n_tasks``: tasks (columns).

    Examples:
        >>> s = summarize({"A": np.array([[10.0, 20.0], [30.0, 40.0]])}, reps=100)
        >>> sorted(s.intervals["A"]), s.n_runs, s.n_tasks, s.baseline, s.improvement
        (['iqm', 'mean', 'median', 'optimality_gap'], {'A': 4}, 2, None, {})
    """

    intervals: dict[str, dict[str, Interval]]
    metrics: list[str]
    taus: np.ndarray
    profiles: dict[str, Interval]
    n_runs: dict[str, int]
    n_tasks: int
    baseline: str | None = None
    improvement: dict[str, Interval] = field(default_factory=dict)
    reps: int = DEFAULT_REPS
    seed: int = 0
    confidence: float = 0.95

    @property
    def algos(self) -> list[str]:
        """The algorithms, in the order given."""
        return list(self.intervals)


def summarize(
    scores_by_algo: Mapping[str, Any],
    baseline: str | None = None,
    metrics: Sequence[str] = tuple(METRICS),
    taus: Any = None,
    reps: int = DEFAULT_REPS,
    seed: int = 0,
    confidence: float = 0.95,
) -> Summary:
    """`interval_estimates`, `improvement_intervals` over ``baseline`` (when given) and `profile_intervals`.

    Args:
        scores_by_algo: ``{algo: array (runs, tasks)}``, the same tasks in the same columns.
        baseline: the algorithm the others' probability of improvement is measured against (None: none).
        metrics: names from `METRICS`.
        taus: thresholds of the profiles (default `default_taus`).
        reps: bootstrap replicates.
        seed: seed of the bootstrap.
        confidence: the intervals' level.

    Examples:
        >>> scores = {"LaMo": np.array([[40.0, 60.0], [50.0, 70.0]]), "DT": np.array([[30.0, 50.0], [40.0, 60.0]])}
        >>> s = summarize(scores, baseline="DT", reps=200)
        >>> s.intervals["DT"]["mean"].point, s.improvement["LaMo"].point, s.profiles["LaMo"].point[0].item()
        (45.0, 0.875, 1.0)
        >>> summarize({"A": np.ones((2, 2)), "B": np.ones((2, 3))})
        Traceback (most recent call last):
        ...
        ValueError: scores_by_algo['B'] has 3 tasks and scores_by_algo['A'] 2: give every algorithm the same tasks (columns)
    """
    data = _check_algos(scores_by_algo)
    first = next(iter(data))
    for algo, x in data.items():
        if x.shape[1] != data[first].shape[1]:
            raise ValueError(
                f"scores_by_algo[{algo!r}] has {x.shape[1]} tasks and scores_by_algo[{first!r}] {data[first].shape[1]}: "
                "give every algorithm the same tasks (columns)"
            )
    names = list(_check_metrics(metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"metric {unknown[0]!r}: summarize takes names, one of {', '.join(METRICS)}")
    t = default_taus(data) if taus is None else np.asarray(taus, dtype=float)
    intervals = interval_estimates(data, names, reps, seed, confidence)
    improvement = improvement_intervals(data, baseline, reps, seed, confidence) if baseline is not None else {}
    profiles = profile_intervals(data, t, reps, seed, confidence)
    return Summary(
        intervals, names, t, profiles, {a: int(np.isfinite(x).sum()) for a, x in data.items()}, data[first].shape[1],
        baseline, improvement, reps, _check_int(seed, "seed", 0), confidence,
    )
