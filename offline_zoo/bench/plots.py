"""Figures of a report (matplotlib, PNG), in the style of the LaMo paper.

* ``score_vs_ratio.png``: normalized score against the sample ratio (log scale), one panel per
  task, one line per algorithm, shaded mean +- 0.5 std over seeds (no band for one seed; the
  paper's Figure 3); the paper's values dashed when known.
* ``aggregate_intervals.png``: the Aggregate table as a figure, one panel per metric (IQM, mean,
  median, optimality gap, and P(X > DT) when DT has results): each algorithm's point estimate and
  95% bootstrap interval (rliable's interval plot; :mod:`offline_zoo.bench.aggregate`).
* ``performance_profiles.png``: the fraction of runs (cell, seed) scoring above each threshold tau,
  one curve per algorithm with a pointwise 95% bootstrap band.
* ``curves_<task>.png``: learning curves, one panel per ratio: mean over seeds of every evaluation
  at the cell's return-to-go target, shaded +- 0.5 std (no band for one seed; Figures 4-7).
* ``targets_<task>_r<ratio>.png``: every return-to-go target's curve of the return-conditioned
  algorithms (the curves behind "the best target").

Examples:
    After ``zoo-bench --suite smoke`` (``zoo-bench report runs/smoke --plots plots/`` does the same):

    >>> from offline_zoo.bench.report import build_report
    >>> plot_report(build_report("runs/smoke"), "plots/")                # doctest: +SKIP
    [PosixPath('plots/score_vs_ratio.png'), PosixPath('plots/aggregate_intervals.png'), ...]
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..files import atomic_writer

if TYPE_CHECKING:  # pragma: no cover
    from .report import Report

__all__ = ["plot_report", "plot_score_vs_ratio", "plot_scores", "plot_aggregate_intervals", "plot_performance_profiles", "plot_learning_curves", "plot_target_curves"]


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(algos):
    cmap = _plt().get_cmap("tab10")
    return {a: cmap(i % 10) for i, a in enumerate(algos)}


def _grid(n: int):
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    return rows, cols


def _save(fig, path: Path) -> Path:
    try:
        with atomic_writer(path) as f:
            fig.savefig(f, format="png", dpi=110, bbox_inches="tight")
    finally:
        _plt().close(fig)
    return path


def plot_score_vs_ratio(report: "Report", path: str | os.PathLike) -> Path | None:
    """Figure 3 style: score against sample ratio per task; returns the file (None: nothing to plot).

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> report = build_report("out")
        >>> plot_score_vs_ratio(report, "plots/score_vs_ratio.png").stat().st_size > 0
        True
    """
    plt = _plt()
    tasks = list(dict.fromkeys(r.task for r in report.rows))
    tasks = [t for t in tasks if any((t, r.ratio, a) in report.cells for r in report.rows if r.task == t for a in report.algos)]
    if not tasks:
        return None
    colors = _colors(report.algos)
    nr, nc = _grid(len(tasks))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.3 * nr), squeeze=False)
    for ax, task in zip(axes.flat, tasks):
        ratios = sorted({r.ratio for r in report.rows if r.task == task})
        for a in report.algos:
            pts = [(x, report.cells[(task, x, a)]) for x in ratios if (task, x, a) in report.cells]
            if pts:
                xs = np.array([p[0] for p in pts])
                m = np.array([p[1].mean for p in pts])
                s = np.array([p[1].std for p in pts])
                ax.plot(xs, m, marker="o", color=colors[a], label=a)
                if max(p[1].n for p in pts) > 1:  # one seed has no spread to shade
                    ax.fill_between(xs, m - 0.5 * s, m + 0.5 * s, color=colors[a], alpha=0.2)
            paper = [(x, report.paper[(task, x, a)][0]) for x in ratios if (task, x, a) in report.paper]
            if paper:
                ax.plot([p[0] for p in paper], [p[1] for p in paper], ls="--", marker=".", color=colors[a], alpha=0.6)
        if len(ratios) > 1:
            ax.set_xscale("log")
        ax.set_title(task)
        ax.set_xlabel("sample ratio")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(tasks):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if report.paper:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], ls="--", color="gray"))
        labels.append("paper")
    fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), bbox_to_anchor=(0.5, -0.02))
    n_seeds = max(report.cells[k].n for k in report.cells if k[0] in tasks)
    fig.suptitle(f"{report.title}: score vs sample ratio ({_spread(n_seeds)})")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _save(fig, Path(path))


def _multi_ratio(report: "Report") -> bool:
    ratios: dict[str, set] = {}
    for r in report.rows:
        ratios.setdefault(r.task, set()).add(r.ratio)
    return any(len(v) > 1 for v in ratios.values())


def plot_scores(report: "Report", path: str | os.PathLike) -> Path | None:
    """Grouped bars: one group per (task, ratio) cell, one bar per algorithm; None: nothing to plot.

    The figure for suites with one ratio per task, where a score-vs-ratio line has a single point.

    Examples:
        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> plot_scores(build_report("out"), "plots/scores.png").stat().st_size > 0
        True
    """
    plt = _plt()
    cells = [(r.task, r.ratio) for r in report.rows if any((r.task, r.ratio, a) in report.cells for a in report.algos)]
    cells = list(dict.fromkeys(cells))
    if not cells:
        return None
    colors = _colors(report.algos)
    n = len(report.algos)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(max(6.5, 1.5 + 0.45 * n * len(cells)), 4.2))
    for i, a in enumerate(report.algos):
        xs, means, stds = [], [], []
        for j, (task, ratio) in enumerate(cells):
            c = report.cells.get((task, ratio, a))
            if c is not None:
                xs.append(j + (i - (n - 1) / 2) * width)
                means.append(c.mean)
                stds.append(c.std if c.n > 1 else 0.0)
        if xs:
            ax.bar(xs, means, width * 0.92, yerr=stds if any(stds) else None, capsize=2, color=colors[a], label=a)
        for j, (task, ratio) in enumerate(cells):
            p = report.paper.get((task, ratio, a))
            if p is not None:
                x = j + (i - (n - 1) / 2) * width
                ax.plot([x - width * 0.4, x + width * 0.4], [p[0], p[0]], color="black", lw=1.5)
    ax.set_xticks(range(len(cells)), [f"{t}\nratio {_ratio(r)}" for t, r in cells], fontsize=8)
    ax.set_ylabel("normalized score")
    ax.grid(axis="y", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if report.paper:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", lw=1.5))
        labels.append("paper")
    ax.legend(handles, labels, fontsize=8, ncol=min(len(labels), 8), loc="upper center", bbox_to_anchor=(0.5, -0.16))
    n_seeds = max(report.cells[k].n for k in report.cells)
    spread = f"mean, error bar = std over {n_seeds} seeds" if n_seeds > 1 else "1 seed, no spread shown"
    ax.set_title(f"{report.title}\nnormalized score ({spread})", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))


def plot_aggregate_intervals(report: "Report", path: str | os.PathLike) -> Path | None:
    """The Aggregate table as interval plots, a panel per metric; returns the file (None: no aggregate).

    Each algorithm is a row: its point estimate (a tick) and 95% stratified bootstrap interval (a
    bar). The probability of improvement over DT gets its own panel, with 0.5 (no difference) marked.

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> plot_aggregate_intervals(build_report("out"), "plots/aggregate_intervals.png").name
        'aggregate_intervals.png'
    """
    from .aggregate import METRIC_TITLES

    summary = report.aggregate()
    if summary is None:
        return None
    plt = _plt()
    colors = _colors(report.algos)
    panels = [(METRIC_TITLES[m], {a: summary.intervals[a][m] for a in summary.algos}) for m in summary.metrics]
    if summary.improvement:
        panels.append((f"P(X > {summary.baseline})", dict(summary.improvement)))
    algos = summary.algos
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 1.4 + 0.45 * len(algos)), squeeze=False)
    for k, (ax, (title, ivs)) in enumerate(zip(axes.flat, panels)):
        for i, a in enumerate(algos):
            iv = ivs.get(a)
            if iv is None:
                continue
            y = len(algos) - 1 - i
            ax.barh(y, iv.high - iv.low, left=iv.low, height=0.6, color=colors[a], alpha=0.75)
            ax.vlines(iv.point, y - 0.3, y + 0.3, color="black", lw=1.5)
        if title.startswith("P("):
            ax.axvline(0.5, color="gray", ls="--", lw=1)
            ax.set_xlim(-0.03, 1.03)  # 0 and 1 (one algorithm always ahead) stay visible
        ax.set_yticks(range(len(algos)))
        ax.set_yticklabels(list(reversed(algos)) if k == 0 else [""] * len(algos))
        ax.set_title(title)
        ax.grid(axis="x", alpha=0.3)
    axes.flat[0].set_ylim(-0.6, len(algos) - 0.4)
    fig.supxlabel("normalized score (P: probability)", fontsize=9)
    fig.suptitle(f"{report.title}: aggregates over {summary.n_tasks} cells and their seeds ({summary.confidence:.0%} stratified bootstrap intervals)", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, Path(path))


def plot_performance_profiles(report: "Report", path: str | os.PathLike) -> Path | None:
    """Performance profiles: fraction of runs above each score threshold, a pointwise 95% band each; None: no aggregate.

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> plot_performance_profiles(build_report("out"), "plots/performance_profiles.png").name
        'performance_profiles.png'
    """
    summary = report.aggregate()
    if summary is None:
        return None
    plt = _plt()
    colors = _colors(report.algos)
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for a in summary.algos:
        band = summary.profiles[a]
        ax.plot(summary.taus, band.point, color=colors[a], label=a)
        ax.fill_between(summary.taus, band.low, band.high, color=colors[a], alpha=0.2)
    ax.set_xlabel(r"normalized score threshold $\tau$")
    ax.set_ylabel(r"fraction of runs with score > $\tau$")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title(f"{report.title}: performance profiles ({summary.n_tasks} cells, {summary.confidence:.0%} bands)", fontsize=10)
    fig.tight_layout()
    return _save(fig, Path(path))


def _spread(n_seeds: int) -> str:
    """What the shading shows: ``"mean ± 0.5 std over 3 seeds"``; one seed: no band, ``"1 seed"``.

    >>> _spread(3), _spread(1)
    ('mean ± 0.5 std over 3 seeds', '1 seed, no spread shown')
    """
    return f"mean ± 0.5 std over {n_seeds} seeds" if n_seeds > 1 else "1 seed, no spread shown"


def _ratio(ratio: float) -> str:
    """A sample ratio as a panel title writes it: ``1.0``, ``0.1``, ``0.005``.

    >>> _ratio(1), _ratio(0.1), _ratio(0.005)
    ('1.0', '0.1', '0.005')
    """
    return str(float(ratio))


def _cell_curve(report: "Report", task: str, ratio: float, algo: str, target: str):
    """Steps and per-seed scores of one target (only steps every seed evaluated)."""
    curves = report.curves(task, ratio, algo)
    per_seed = []
    for _, evals in curves:
        per_seed.append({int(e["step"]): float(e["scores"][target]) for e in evals if target in (e.get("scores") or {})})
    if not per_seed:
        return None, None
    steps = sorted(set.intersection(*(set(d) for d in per_seed)))
    if not steps:
        return None, None
    return np.array(steps), np.array([[d[s] for s in steps] for d in per_seed])


def plot_learning_curves(report: "Report", task: str, path: str | os.PathLike) -> Path | None:
    """Learning curves of one task, a panel per ratio (the cell's target; mean ± 0.5 std over seeds).

    Returns the file, or None when the task has no finished run.

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> report = build_report("out")
        >>> plot_learning_curves(report, "reacher2d-medium", "plots/curves.png").name
        'curves.png'
        >>> plot_learning_curves(report, "hopper-medium", "plots/none.png") is None
        True
    """
    plt = _plt()
    ratios = sorted({r.ratio for r in report.rows if r.task == task})
    ratios = [x for x in ratios if any((task, x, a) in report.cells for a in report.algos)]
    if not ratios:
        return None
    colors = _colors(report.algos)
    nr, nc = _grid(len(ratios))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.3 * nr), squeeze=False)
    n_seeds = 0
    for ax, ratio in zip(axes.flat, ratios):
        for a in report.algos:
            cell = report.cells.get((task, ratio, a))
            if cell is None:
                continue
            target = cell.target if cell.target != "per-run" else None
            if target is None:
                continue
            steps, scores = _cell_curve(report, task, ratio, a, target)
            if steps is None:
                continue
            m, s = scores.mean(0), scores.std(0)
            n_seeds = max(n_seeds, len(scores))
            ax.plot(steps, m, color=colors[a], label=a)
            if len(scores) > 1:  # one seed has no spread to shade
                ax.fill_between(steps, m - 0.5 * s, m + 0.5 * s, color=colors[a], alpha=0.2)
        ax.set_title(f"{task}, ratio {_ratio(ratio)}")
        ax.set_xlabel("training steps")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(ratios):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(max(len(labels), 1), 8), bbox_to_anchor=(0.5, -0.02))
    fig.suptitle(f"{task}: learning curves ({_spread(n_seeds)})")
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return _save(fig, Path(path))


def plot_target_curves(report: "Report", task: str, ratio: float, path: str | os.PathLike) -> Path | None:
    """Every return-to-go target's learning curve, a panel per return-conditioned algorithm.

    Returns the file, or None when no algorithm of the cell has return-to-go targets.

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> report = build_report("out")
        >>> plot_target_curves(report, "reacher2d-medium", 1.0, "plots/targets.png").name   # DT's 2 targets
        'targets.png'
    """
    plt = _plt()
    algos = []
    for a in report.algos:
        curves = report.curves(task, ratio, a)
        targets = sorted({t for _, ev in curves for e in ev for t in (e.get("scores") or {})} - {"none"}, key=lambda t: -float(t))
        if len(targets) > 1:
            algos.append((a, targets))
    if not algos:
        return None
    nr, nc = _grid(len(algos))
    fig, axes = plt.subplots(nr, nc, figsize=(4.2 * nc, 3.3 * nr), squeeze=False)
    for ax, (a, targets) in zip(axes.flat, algos):
        chosen = report.cells.get((task, ratio, a))
        for t in targets:
            steps, scores = _cell_curve(report, task, ratio, a, t)
            if steps is None:
                continue
            m = scores.mean(0)
            lw = 2.2 if chosen is not None and chosen.target == t else 1.0
            ax.plot(steps, m, lw=lw, label=f"target {t}" + (" (reported)" if lw > 1 else ""))
        ax.set_title(f"{a}")
        ax.set_xlabel("training steps")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(algos):]:
        ax.axis("off")
    fig.suptitle(f"{task}, ratio {_ratio(ratio)}: every return-to-go target (mean over seeds)")
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return _save(fig, Path(path))


def plot_report(report: "Report", directory: str | os.PathLike) -> list[Path]:
    """Every figure of a report into ``directory``; returns the files written.

    Examples:
        A report of made-up results (see `offline_zoo.bench.report.build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> from offline_zoo.bench.report import build_report
        >>> report = build_report("out")
        >>> [f.name for f in plot_report(report, "plots")]    # doctest: +NORMALIZE_WHITESPACE
        ['score_vs_ratio.png', 'aggregate_intervals.png', 'performance_profiles.png',
         'curves_reacher2d-medium.png', 'targets_reacher2d-medium_r0.1.png', 'targets_reacher2d-medium_r1.png']
    """
    d = Path(directory)
    files = []
    # a line over one ratio is a single point: suites without a ratio sweep get bars instead
    f = plot_score_vs_ratio(report, d / "score_vs_ratio.png") if _multi_ratio(report) else plot_scores(report, d / "scores.png")
    if f:
        files.append(f)
    for name, plot in (("aggregate_intervals.png", plot_aggregate_intervals), ("performance_profiles.png", plot_performance_profiles)):
        f = plot(report, d / name)
        if f:
            files.append(f)
    for task in dict.fromkeys(r.task for r in report.rows):
        f = plot_learning_curves(report, task, d / f"curves_{task}.png")
        if f:
            files.append(f)
    for r in report.rows:
        f = plot_target_curves(report, r.task, r.ratio, d / f"targets_{r.task}_r{r.ratio:g}.png")
        if f:
            files.append(f)
    return files
