"""``zoo-bench``: reproduce the LaMo paper's tables with every algorithm of offline-zoo.

* :mod:`~offline_zoo.bench.suites` - suite files (``benchmarks/suites/*.yaml``) and the run grid;
* :mod:`~offline_zoo.bench.protocol` - the paper's protocol and score aggregation;
* :mod:`~offline_zoo.bench.worker` - one run (train / evaluate / checkpoint / score);
* :mod:`~offline_zoo.bench.runner` - a suite with resume;
* :mod:`~offline_zoo.bench.executors` - local worker processes or Ray tasks;
* :mod:`~offline_zoo.bench.report` / :mod:`~offline_zoo.bench.plots` - tables (terminal, Markdown,
  CSV) beside the paper's values, and figures;
* :mod:`~offline_zoo.bench.aggregate` - robust aggregates over runs and tasks (IQM, optimality gap,
  probability of improvement, performance profiles) with stratified bootstrap intervals.

Heavy libraries (torch, the algorithms, Ray, matplotlib) are imported only where needed.

Examples:
    >>> from offline_zoo.bench import load_suite, run_suite, LocalExecutor, build_report
    >>> suite = load_suite("smoke")
    >>> len(suite.expand())                    # 2 rows x 7 algorithms x 1 seed
    14
    >>> run_suite(suite, "runs/smoke", executor=LocalExecutor(workers=2))  # doctest: +SKIP
    >>> print(build_report("runs/smoke").markdown())                       # doctest: +SKIP
"""

from __future__ import annotations

from .protocol import CellScore, Protocol, aggregate_runs, score_run
from .suites import RunSpec, Suite, SuiteError, list_suites, load_suite

__all__ = [
    "Protocol",
    "CellScore",
    "score_run",
    "aggregate_runs",
    "Suite",
    "SuiteError",
    "RunSpec",
    "load_suite",
    "list_suites",
    "run_suite",
    "execute_run",
    "LocalExecutor",
    "RayExecutor",
    "InlineExecutor",
    "build_report",
    "Report",
]

_LAZY = {
    "run_suite": ".runner",
    "execute_run": ".worker",
    "LocalExecutor": ".executors",
    "RayExecutor": ".executors",
    "InlineExecutor": ".executors",
    "build_report": ".report",
    "Report": ".report",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'offline_zoo.bench' has no attribute {name!r}")
