"""``zoo-bench report DIR``: a suite's table beside the paper's, in the terminal, Markdown and CSV.

A table has one row per (task, ratio) and one column per algorithm; a cell is the mean +- std over
seeds of the runs' protocol scores (:mod:`offline_zoo.bench.protocol`), with the paper's value
(``benchmarks/paper_results.yaml``) and our difference beside it. Each group of rows ends with an
"Average" row, as in the paper, and a "LaMo vs DT" column gives LaMo's relative improvement over DT
(ours and the paper's). The caption states the protocol, the budget, the data source of the runs
(generated / Minari / D4RL), the hardware and the versions. A second table gives the final and
best evaluation scores (CORL reports both). An "Aggregate" table gives, per algorithm, robust aggregates over the runs of
every cell (IQM, mean, median, optimality gap, with 95% stratified bootstrap intervals; the
probability of improvement over DT), see :mod:`offline_zoo.bench.aggregate`.

Examples:
    After ``zoo-bench --suite smoke`` (see `build_report` for a runnable example):

    >>> rep = build_report("runs/smoke")                               # doctest: +SKIP
    >>> print(rep.markdown())                                          # doctest: +SKIP
    >>> rep.write_csv("smoke.csv")                                     # doctest: +SKIP
"""

from __future__ import annotations

import csv
import io
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from .aggregate import DEFAULT_REPS, METRIC_TITLES, Summary, summarize
from .protocol import TARGET_SELECTIONS, CellScore, Protocol, aggregate_runs
from .store import BENCH_FILE, RunRecord, read_json, scan_runs
from .suites import SuiteError, canonical_algo, find_reference

__all__ = ["Report", "build_report", "keep_other_blocks", "load_reference", "render_document", "SOURCE_NOTES"]

DASH = "—"

#: what the caption says about each dataset source
SOURCE_NOTES = {
    "generated": "generated locally by offline-zoo (`zoo-data generate`), NOT the paper's D4RL data: absolute scores are not comparable to the paper",
    "minari": "Minari (re-collected on the v5 environments, not the paper's D4RL v2 files)",
    "d4rl": "D4RL hdf5 files, as the paper",
    "d4rl-atari": "d4rl-atari DQN-Replay (run 1, epoch 10), as the paper",
    "synthetic": "synthetic data (tests)",
}


# -- reference values ------------------------------------------------------------------------------
def load_reference(path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The published tables: ``{table_key: {"title", "algos", "values": {(task, ratio, algo_canon): (mean, std)}}}``.

    ``path``: a YAML file in the format of ``benchmarks/paper_results.yaml`` (default: that file,
    found next to the suites); returns ``{}`` when there is none.

    Examples:
        >>> tables = load_reference()
        >>> sorted(tables)
        ['table15_16_pretraining', 'table1_sparse', 'table2_atari', 'table3_mujoco']
        >>> t = tables["table1_sparse"]
        >>> t["algos"][:3], t["values"][("reacher2d-medium", 1.0, "lamo")]     # (mean, std)
        (['LaMo', 'DT', 'Wiki-RL'], (33.0, 8.3))
    """
    p = find_reference(path)
    if p is None:
        return {}
    data = yaml.safe_load(Path(p).read_text()) or {}
    tables = data.get("tables") or {}
    out: dict[str, Any] = {}
    for key, t in tables.items():
        algos = list(t.get("algos") or [])
        values: dict[tuple, tuple[float, float]] = {}
        for row in t.get("rows") or []:
            domain, dataset, ratio, *cells = row
            if len(cells) != len(algos):
                raise SuiteError(f"{p}: table {key} row {row[:3]} has {len(cells)} values for {len(algos)} algorithms")
            for a, v in zip(algos, cells):
                if v is not None:
                    values[(f"{domain}-{dataset}", float(ratio), canonical_algo(a))] = (float(v[0]), float(v[1]))
        out[key] = {"title": t.get("title", key), "algos": algos, "values": values, "source": data.get("paper"), "path": str(p)}
    return out


# -- formatting ------------------------------------------------------------------------------------
def _f(x: float | None, signed: bool = False) -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return DASH
    return f"{x:+.1f}" if signed else f"{x:.1f}"


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return DASH
    return f"{mean:.1f} ± {std:.1f}" if std is not None else f"{mean:.1f}"


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or abs(b) < 1e-12:
        return None
    return 100.0 * (a - b) / abs(b)


def _pct_s(x: float | None) -> str:
    return DASH if x is None else f"{x:+.0f}%"


def _ratio_s(r: float) -> str:
    return f"{r:g}"


# -- the report ------------------------------------------------------------------------------------
@dataclass
class Row:
    group: str
    task: str
    ratio: float

    @property
    def key(self) -> tuple[str, float]:
        """``(task, ratio)``: the row's key in `Report.cells`."""
        return (self.task, self.ratio)


@dataclass
class Report:
    """A suite's results in one output directory, aggregated (see the module docstring).

    Made by `build_report`; ``cells`` maps ``(task, ratio, algo label)`` to a
    `CellScore`, ``paper`` the same keys to the published
    ``(mean, std)``.

    Examples:
        An output directory with made-up results (two algorithms, two ratios, two seeds):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> report = build_report("out")
        >>> cell = report.cells[("reacher2d-medium", 0.1, "DT")]     # best target per cell
        >>> cell.target, cell.mean, cell.std, report.counts()["finished"]
        ('40', 12.5, 0.0, 8)
        >>> report.table_rows()      # doctest: +NORMALIZE_WHITESPACE
        [['reacher2d-medium', '0.1', '12.5 ± 0.0', '2.5 ± 0.0'],
         ['reacher2d-medium', '1', '25.5 ± 0.5', '25.0 ± 0.0'],
         ['**Average**', '', '19.0', '13.8']]
        >>> print(report.csv().splitlines()[1])
        demo,,reacher2d-medium,0.1,DT,2,0 1,40,12.5,0.0,15.0,0.0,15.0,0.0,,,

        The Aggregate table: over the 2 cells x 2 seeds, with 95% bootstrap intervals (DT's IQM: the
        middle two of 12.5, 12.5, 25, 26):

        >>> report.aggregate_header()
        ['Algorithm', 'Runs', 'IQM', 'Mean', 'Median', 'Optimality gap', 'P(X > DT)']
        >>> report.aggregate_rows()[0][:3], report.aggregate_rows()[1][-1]     # DT's IQM; P(CQL > DT)
        (['DT', '4', '18.8 [18.8, 19.2]'], '0.12 [0.00, 0.25]')
    """

    out: Path
    bench: dict
    records: list[RunRecord]
    reference: dict | None = None
    target_selection: str = "cell"
    rows: list[Row] = field(default_factory=list)
    algos: list[str] = field(default_factory=list)
    cells: dict[tuple, CellScore] = field(default_factory=dict)
    paper: dict[tuple, tuple[float, float]] = field(default_factory=dict)
    bootstrap_reps: int = DEFAULT_REPS
    bootstrap_seed: int = 0
    _summary: Any = field(default=None, init=False, repr=False, compare=False)

    # -- basic facts -------------------------------------------------------------------------------
    @property
    def suite(self) -> dict:
        """The suite's description as recorded in ``bench.json``."""
        return self.bench.get("suite") or {}

    @property
    def title(self) -> str:
        """The suite's title (its name, or the directory, when it has none)."""
        return self.suite.get("title") or self.suite.get("name") or str(self.out)

    @property
    def finished(self) -> list[RunRecord]:
        """The runs that wrote their ``result.json``."""
        return [r for r in self.records if r.finished]

    @property
    def planned(self) -> dict[str, dict]:
        """Every planned run: ``{run_id: spec}`` from ``bench.json``."""
        return self.bench.get("planned") or {}

    @property
    def seeds(self) -> list[int]:
        """The seeds of the planned runs (of the finished ones without ``bench.json``)."""
        seeds = sorted({int(s["seed"]) for s in self.planned.values()}) or sorted({int(r.result["seed"]) for r in self.finished})
        return seeds

    def counts(self) -> dict[str, int]:
        """Runs planned, finished, failed and not finished (yet)."""
        by_id = {r.run_id: r for r in self.records}
        finished = sum(1 for r in self.finished)
        failed = sum(1 for rid in self.planned if rid in by_id and not by_id[rid].finished and by_id[rid].status == "failed")
        missing = sum(1 for rid in self.planned if rid not in by_id or not by_id[rid].finished) - failed
        damaged = sum(1 for r in self.records if r.damage)
        return {"planned": len(self.planned), "finished": finished, "failed": failed, "unfinished": max(0, missing), "damaged": damaged}

    def sources(self) -> list[str]:
        """The dataset sources of the results (of the planned runs when none finished)."""
        return sorted({str(r.result.get("source")) for r in self.finished if r.result.get("source")}) or sorted({str(s.get("source")) for s in self.planned.values()})

    def env_ids(self) -> list[str]:
        """The environments the finished runs were evaluated in (their gymnasium ids)."""
        return sorted({str(r.result["env_id"]) for r in self.finished if r.result.get("env_id")})

    def protocols(self) -> dict[tuple, list[str]]:
        """Distinct protocols -> the tasks that use them."""
        out: dict[tuple, list[str]] = {}
        specs = list(self.planned.values()) or [r.result for r in self.finished]
        for s in specs:
            p = Protocol.from_dict(s["protocol"])
            key = (p.steps, p.eval_every, p.last_steps, p.eval_episodes)
            if s["task"] not in out.setdefault(key, []):
                out[key].append(s["task"])
        return out

    # -- aggregation -------------------------------------------------------------------------------
    def _aggregate(self) -> None:
        suite = self.suite
        self._summary = None
        planned_keys = {(s["task"], float(s["ratio"]), s["label"]) for s in self.planned.values()}
        done: dict[tuple, list[dict]] = {}
        for r in self.finished:
            res = r.result
            done.setdefault((res["task"], float(res["ratio"]), res["label"]), []).append(res)
        present = planned_keys | set(done)
        rows: list[Row] = []
        for row in suite.get("rows") or []:
            key = (row["task"], float(row["ratio"]))
            if any(k[:2] == key for k in present):
                rows.append(Row(row.get("group", ""), key[0], key[1]))
        known = {r.key for r in rows}
        for task, ratio, _ in sorted(present):
            if (task, ratio) not in known:
                rows.append(Row("other", task, ratio))
                known.add((task, ratio))
        self.rows = rows
        labels = [a["label"] for a in suite.get("algos", [])]
        labels += sorted({k[2] for k in present} - set(labels))
        self.algos = [a for a in labels if any(k[2] == a for k in present)]
        self.cells = {}
        for key, results in done.items():
            results = sorted(results, key=lambda r: int(r["seed"]))
            self.cells[key] = aggregate_runs(results, seeds=[int(r["seed"]) for r in results], target_selection=self.target_selection)
        self.paper = {}
        if self.reference:
            vals = self.reference["values"]
            for row in self.rows:
                for a in self.algos:
                    v = vals.get((row.task, row.ratio, canonical_algo(a)))
                    if v is not None:
                        self.paper[(row.task, row.ratio, a)] = v

    def groups(self) -> list[tuple[str, list[Row]]]:
        """The table's rows by group, in the suite's order: ``[(group, rows)]``."""
        out: dict[str, list[Row]] = {}
        for r in self.rows:
            out.setdefault(r.group, []).append(r)
        return list(out.items())

    def average(self, rows: Sequence[Row], algo: str) -> dict[str, Any]:
        """Average row entry: ours over the rows that have a result, the paper's over the same rows
        (over all rows with a published value when we have none)."""
        ours = [(r, self.cells[(r.task, r.ratio, algo)].mean) for r in rows if (r.task, r.ratio, algo) in self.cells]
        basis = [r for r, _ in ours] or list(rows)
        paper = [self.paper[(r.task, r.ratio, algo)][0] for r in basis if (r.task, r.ratio, algo) in self.paper]
        return {
            "ours": float(np.mean([m for _, m in ours])) if ours else None,
            "paper": float(np.mean(paper)) if paper and (not ours or len(paper) == len(basis)) else None,
            "k": len(ours),
            "n": len(rows),
        }

    def _lamo_dt(self) -> tuple[str, str] | None:
        canon = {canonical_algo(a): a for a in self.algos}
        if "lamo" in canon and "dt" in canon:
            return canon["lamo"], canon["dt"]
        return None

    # -- cells as text -----------------------------------------------------------------------------
    def _n_note(self, cell: CellScore) -> str:
        n_planned = len(self.seeds)
        return f" [n={cell.n}]" if n_planned and cell.n < n_planned else ""

    def cell_text(self, row: Row, algo: str) -> str:
        """A cell as text: ``mean +- std`` (``[n=k]`` when seeds are missing), then the paper's value and our difference."""
        cell = self.cells.get((row.task, row.ratio, algo))
        paper = self.paper.get((row.task, row.ratio, algo))
        if cell is None:
            return DASH if paper is None else f"{DASH} ({_f(paper[0])})"
        text = _pm(cell.mean, cell.std) + self._n_note(cell)
        if paper is not None:
            text += f" ({_f(paper[0])}; {_f(cell.mean - paper[0], signed=True)})"
        return text

    def average_text(self, rows: Sequence[Row], algo: str) -> str:
        """An "Average" cell as text: ours over the rows with a result, then the paper's and the difference."""
        a = self.average(rows, algo)
        if a["ours"] is None:
            return DASH if a["paper"] is None else f"{DASH} ({_f(a['paper'])})"
        text = _f(a["ours"]) + (f" [{a['k']}/{a['n']} rows]" if a["k"] < a["n"] else "")
        if a["paper"] is not None:
            text += f" ({_f(a['paper'])}; {_f(a['ours'] - a['paper'], signed=True)})"
        return text

    def lamo_dt_row(self, row: Row) -> tuple[float | None, float | None]:
        """LaMo's relative improvement over DT in percent on one row: ``(ours, paper's)``, None where missing."""
        pair = self._lamo_dt()
        if pair is None:
            return None, None
        lam, dt = pair
        c_l, c_d = self.cells.get((row.task, row.ratio, lam)), self.cells.get((row.task, row.ratio, dt))
        p_l, p_d = self.paper.get((row.task, row.ratio, lam)), self.paper.get((row.task, row.ratio, dt))
        ours = _pct(c_l.mean, c_d.mean) if c_l and c_d else None
        paper = _pct(p_l[0], p_d[0]) if p_l and p_d else None
        return ours, paper

    def lamo_dt_average(self, rows: Sequence[Row]) -> tuple[float | None, float | None]:
        """LaMo's relative improvement over DT in percent on the rows' averages: ``(ours, paper's)``."""
        pair = self._lamo_dt()
        if pair is None:
            return None, None
        lam, dt = pair
        both = [r for r in rows if (r.task, r.ratio, lam) in self.cells and (r.task, r.ratio, dt) in self.cells]
        ours = _pct(self.average(both, lam)["ours"], self.average(both, dt)["ours"]) if both else None
        pb = [r for r in rows if (r.task, r.ratio, lam) in self.paper and (r.task, r.ratio, dt) in self.paper]
        paper = _pct(np.mean([self.paper[(r.task, r.ratio, lam)][0] for r in pb]), np.mean([self.paper[(r.task, r.ratio, dt)][0] for r in pb])) if pb else None
        return ours, paper

    # -- the paper's orderings ---------------------------------------------------------------------
    def orderings(self) -> list[dict[str, Any]]:
        """The LaMo paper's qualitative claims checked on these cells, where the columns exist.

        * "LaMo > DT at ratio <= 0.01" (the low-data claim, Tables 1 and 3);
        * "best value-based >= DT at ratio 1" (CQL / IQL / TD3+BC when data is abundant);
        * "LaMo > LaMo w/o PT" (the pre-training ablation, Tables 15-16).

        Each entry: ``claim``, ``rows`` (per row: task, ratio, the two sides' labels and scores
        with their std, ``holds``), ``holds`` / ``of`` (how many rows). Means over seeds, so with few
        seeds a difference within one std is not resolved; the entry says so in words only.

        Examples:
            >>> from offline_zoo.testing import write_demo_results
            >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1
            >>> [(o["claim"], o["holds"], o["of"]) for o in build_report("out").orderings()]
            [('best value-based (CQL) >= DT at ratio 1', 0, 1)]
        """
        canon = {canonical_algo(a): a for a in self.algos}
        value_based = [canon[k] for k in ("cql", "iql", "td3plusbc") if k in canon]
        no_pt = next((a for a in self.algos if canonical_algo(a) in ("lamowopt", "lamowithoutpt", "lamonopt")), None)
        claims = []
        if "lamo" in canon and "dt" in canon:
            claims.append(("LaMo > DT at ratio <= 0.01", lambda r: r.ratio <= 0.01, [canon["lamo"]], canon["dt"], False))
        if value_based and "dt" in canon:
            claims.append((f"best value-based ({', '.join(value_based)}) >= DT at ratio 1", lambda r: r.ratio == 1.0, value_based, canon["dt"], True))
        if "lamo" in canon and no_pt:
            claims.append((f"LaMo > {no_pt}", lambda r: True, [canon["lamo"]], no_pt, False))
        out = []
        for claim, applies, left, right, or_equal in claims:
            rows = []
            seen = set()
            for r in (r for _, rs in self.groups() for r in rs):
                if r.key in seen or not applies(r):
                    continue
                seen.add(r.key)
                lefts = [(a, self.cells[(r.task, r.ratio, a)]) for a in left if (r.task, r.ratio, a) in self.cells]
                other = self.cells.get((r.task, r.ratio, right))
                if not lefts or other is None:
                    continue
                name, best = max(lefts, key=lambda x: x[1].mean)
                holds = best.mean >= other.mean if or_equal else best.mean > other.mean
                rows.append({"task": r.task, "ratio": r.ratio, "left": name, "left_mean": best.mean, "left_std": best.std,
                             "right": right, "right_mean": other.mean, "right_std": other.std, "holds": bool(holds),
                             "within_std": abs(best.mean - other.mean) <= max(best.std or 0.0, other.std or 0.0)})
            if rows:
                out.append({"claim": claim, "rows": rows, "holds": sum(x["holds"] for x in rows), "of": len(rows)})
        return out

    def orderings_markdown(self, level: int = 3) -> str:
        """`orderings` as a Markdown section (empty when no claim applies)."""
        found = self.orderings()
        if not found:
            return ""
        h = "#" * level
        lines = [f"{h} The paper's orderings on these runs", "",
                 "Each claim checked row by row on the table's means; \"within one std\": the two means differ by less "
                 "than the larger of their standard deviations over seeds, so the seeds do not settle the order.", ""]
        for o in found:
            lines.append(f"- **{o['claim']}**: holds on {o['holds']} of {o['of']} rows.")
            for x in o["rows"]:
                verdict = "holds" if x["holds"] else "does not hold"
                lines.append(f"    - {x['task']} {_ratio_s(x['ratio'])}: {x['left']} {_pm(x['left_mean'], x['left_std'])} vs "
                             f"{x['right']} {_pm(x['right_mean'], x['right_std'])}: {verdict}" + (" (within one std)" if x["within_std"] else ""))
        return "\n".join(lines) + "\n"

    @staticmethod
    def _vs_text(ours: float | None, paper: float | None) -> str:
        if ours is None and paper is None:
            return DASH
        return _pct_s(ours) + (f" (paper {_pct_s(paper)})" if paper is not None else "")

    # -- robust aggregates over cells and seeds ----------------------------------------------------
    def aggregate_inputs(self) -> dict[str, Any]:
        """The scores the Aggregate table is computed from.

        ``{"scores": {algo: array (seeds, cells)}, "cells": [(task, ratio)], "seeds": [...],
        "left_out": [(task, ratio)], "algos_left_out": [algo]}``: the algorithms with a result, the
        cells (in table order) where every one of them has one (comparable aggregates need the same
        cells), one row per seed with NaN where a seed did not finish. ``left_out``: cells missing
        some algorithm's result; ``algos_left_out``: algorithms without any result.
        """
        algos = [a for a in self.algos if any(k[2] == a for k in self.cells)]
        cells = [r.key for r in self.rows if algos and all((*r.key, a) in self.cells for a in algos)]
        left_out = [r.key for r in self.rows if r.key not in cells and any((*r.key, a) in self.cells for a in self.algos)]
        seeds = sorted({s for (t, x, a), c in self.cells.items() if (t, x) in cells and a in algos for s in c.seeds})
        row = {s: i for i, s in enumerate(seeds)}
        scores = {}
        for a in algos:
            m = np.full((len(seeds), len(cells)), np.nan)
            for j, key in enumerate(cells):
                c = self.cells[(*key, a)]
                for s, v in zip(c.seeds, c.per_seed or []):
                    m[row[s], j] = v
            scores[a] = m
        return {"scores": scores if cells else {}, "cells": cells, "seeds": seeds, "left_out": left_out,
                "algos_left_out": [a for a in self.algos if a not in algos]}

    def aggregate_baseline(self) -> str | None:
        """The algorithm the others' probability of improvement is measured against: DT, when it has results."""
        return next((a for a in self.aggregate_inputs()["scores"] if canonical_algo(a) == "dt"), None)

    def aggregate(self) -> Summary | None:
        """Robust aggregates of `aggregate_inputs` (`offline_zoo.bench.aggregate.summarize`, seeded by
        ``bootstrap_seed``, ``bootstrap_reps`` replicates); None when no cell has every algorithm's result."""
        if self._summary is None:
            inputs = self.aggregate_inputs()
            if not inputs["scores"]:
                return None
            self._summary = summarize(inputs["scores"], baseline=self.aggregate_baseline(), reps=self.bootstrap_reps, seed=self.bootstrap_seed)
        return self._summary

    def aggregate_header(self) -> list[str]:
        """Columns of the Aggregate table."""
        s = self.aggregate()
        cols = ["Algorithm", "Runs", *(METRIC_TITLES[m] for m in (s.metrics if s else ()))]
        if s is not None and s.improvement:
            cols.append(f"P(X > {s.baseline})")
        return cols

    def aggregate_rows(self) -> list[list[str]]:
        """The Aggregate table as text cells: ``point [low, high]`` per metric, one row per algorithm."""
        s = self.aggregate()
        if s is None:
            return []
        out = []
        for a in s.algos:
            line = [a, str(s.n_runs[a])] + [s.intervals[a][m].format(1) for m in s.metrics]
            if s.improvement:
                line.append(s.improvement[a].format(2) if a in s.improvement else DASH)
            out.append(line)
        return out

    def aggregate_caption(self) -> str:
        """What the Aggregate table shows, over which cells, and what it leaves out."""
        inputs = self.aggregate_inputs()
        s = self.aggregate()
        if s is None:
            return "No cell has a result of every algorithm: no aggregate."
        cells = ", ".join(f"{t} {_ratio_s(x)}" for t, x in inputs["cells"])
        text = (
            f"Over the normalized scores of every seed of {_count(len(inputs['cells']), 'cell')} ({cells}); "
            f"Runs: how many (cell, seed) scores. Point estimate [{s.confidence:.0%} interval]: percentile "
            f"stratified bootstrap, each cell's seeds resampled with replacement ({s.reps} replicates, seed {s.seed}). "
            "IQM: mean of the middle 50% of the runs; optimality gap: mean shortfall from 100 (lower is better)."
        )
        if s.improvement:
            text += (f" P(X > {s.baseline}): probability that a run of the algorithm scores above a run of {s.baseline} "
                     "on the same cell, averaged over cells (0.5: no difference).")
        if inputs["left_out"]:
            text += " Left out (not every algorithm has a result there): " + ", ".join(f"{t} {_ratio_s(x)}" for t, x in inputs["left_out"]) + "."
        if inputs["algos_left_out"]:
            text += " No result, left out: " + ", ".join(inputs["algos_left_out"]) + "."
        return text

    def aggregate_markdown(self, level: int = 3) -> str:
        """The Aggregate section in Markdown (heading, table, caption)."""
        h = "#" * level
        lines = [f"{h} Aggregate", ""]
        if self.aggregate() is not None:
            header = self.aggregate_header()
            lines.append("| " + " | ".join(header) + " |")
            lines.append("| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |")
            for row in self.aggregate_rows():
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        lines += [self.aggregate_caption(), ""]
        return "\n".join(lines)

    def aggregate_rich_table(self):
        """The Aggregate table for the terminal (rich), or None when there is no aggregate."""
        if self.aggregate() is None:
            return None
        from rich.markup import escape
        from rich.table import Table

        t = Table(title=escape(f"{self.title}: aggregate over cells and seeds"), caption=escape(self.aggregate_caption()), caption_justify="left")
        for i, h in enumerate(self.aggregate_header()):
            t.add_column(escape(h), justify="left" if i == 0 else "right", no_wrap=i == 0)
        for row in self.aggregate_rows():
            t.add_row(*(escape(c) for c in row))
        return t

    # -- caption -----------------------------------------------------------------------------------
    def caption_lines(self) -> list[str]:
        """The caption: protocol, budget, data source, hardware, versions, run counts."""
        lines = []
        seeds = self.seeds
        proto_parts = []
        for (steps, every, last, episodes), tasks in self.protocols().items():
            ep = f", {episodes} episodes per target" if episodes else ""
            proto_parts.append(f"{', '.join(tasks)}: {steps} steps, evaluated every {every}, score = mean of the evaluations in the last {last} steps{ep}")
        sel = "best return-to-go target per cell (highest seed-averaged score)" if self.target_selection == "cell" else "each run's best return-to-go target"
        lines.append(
            f"Normalized score (0 = random, 100 = expert), mean ± std (population) over seeds {', '.join(map(str, seeds))}; "
            f"sequence models: {sel}. " + "; ".join(proto_parts) + "."
        )
        settings = self.bench.get("settings") or {}
        if settings.get("steps"):
            lines.append(f"Budget: --steps {settings['steps']} (the paper: 100k steps; evaluation interval and window scaled alike).")
        elif settings.get("scale") not in (None, 1, 1.0):
            lines.append(f"Budget: --scale {settings['scale']:g} of the suite's protocol (steps, evaluation interval and window scaled alike).")
        else:
            lines.append("Budget: the suite's full protocol.")
        if self.reference:
            lines.append(f"In parentheses: the paper's value ({self.reference.get('title')}) and ours minus the paper's; [n=k]: only k seeds finished.")
        srcs = self.sources()
        lines.append("Data source: " + "; ".join(f"`{s}`: {SOURCE_NOTES.get(s, s)}" for s in srcs) + "." if srcs else "Data source: unknown.")
        if self.env_ids():
            lines.append("Evaluated in: " + ", ".join(f"`{e}`" for e in self.env_ids()) + ".")
        hw = sorted({self._hardware(r.run) for r in self.finished if r.run})
        if hw:
            lines.append("Hardware: " + "; ".join(hw) + ".")
        ex = [i.get("executor") or {} for i in self.bench.get("invocations") or []]
        if ex:
            e = ex[-1]
            desc = f"{e.get('kind', '?')}" + (f", {_count(e['workers'], 'worker')} x {_count(e.get('threads_per_run'), 'thread')}" if e.get("workers") else "")
            lines.append(f"Executor: {desc}.")
        vers = sorted({self._versions(r.run) for r in self.finished if r.run})
        if vers:
            lines.append("Versions: " + "; ".join(vers) + ".")
        walls = [i for i in self.bench.get("invocations") or [] if i.get("wall_s") is not None]
        if walls:
            total = sum(float(i["wall_s"]) for i in walls)
            lines.append(f"Wall time: {_duration(total)} over {len(walls)} invocation{'s' if len(walls) > 1 else ''} of zoo-bench.")
        for note in self.bench.get("dropped") or []:
            lines.append(f"Dropped: {note}.")
        c = self.counts()
        lines.append(f"Runs: {c['finished']} finished, {c['failed']} failed, {c['unfinished']} not finished, of {c['planned']} planned.")
        for r in self.records:
            if r.damage:  # counted as not finished: say so, and how to fix it
                lines.append(f"Damaged: {r.damage}; the run counts as not finished (`zoo-bench --resume` runs it again).")
        return lines

    @staticmethod
    def _hardware(run: Mapping) -> str:
        h = run.get("host") or {}
        s = f"{h.get('cpu', '?')} ({_count(h.get('cpus'), 'core')}"
        if h.get("torch_threads"):
            s += f", {_count(h['torch_threads'], 'torch thread')} per run"
        s += ")"
        if h.get("gpu") and run.get("device") != "cpu":
            s += f", GPU {h['gpu']}"
        return s

    @staticmethod
    def _versions(run: Mapping) -> str:
        v = run.get("versions") or {}
        parts = [f"{k} {v[k]}" for k in ("offline-zoo", "torch", "d3rlpy", "transformers", "mujoco", "gymnasium-robotics") if v.get(k)]
        if v.get("git_commit"):
            commit = str(v["git_commit"])
            parts.append(f"commit {commit[:12]}" + (" (uncommitted changes)" if commit.endswith("+dirty") else ""))
        return ", ".join(parts)

    # -- renderers ---------------------------------------------------------------------------------
    def _header(self) -> list[str]:
        cols = ["Task", "Ratio", *self.algos]
        if self._lamo_dt():
            cols.append("LaMo vs DT")
        return cols

    def table_rows(self) -> list[list[str]]:
        """The main table as text cells, Average rows included."""
        out = []
        pair = self._lamo_dt()
        for gname, rows in self.groups():
            for r in rows:
                line = [r.task, _ratio_s(r.ratio)] + [self.cell_text(r, a) for a in self.algos]
                if pair:
                    line.append(self._vs_text(*self.lamo_dt_row(r)))
                out.append(line)
            label = "**Average**" + (f" ({gname})" if gname else "")
            line = [label, ""] + [self.average_text(rows, a) for a in self.algos]
            if pair:
                line.append(self._vs_text(*self.lamo_dt_average(rows)))
            out.append(line)
        return out

    def extra_rows(self) -> list[list[str]]:
        """Final and best evaluation per cell: ``final ± std / best ± std``."""
        out = []
        for _, rows in self.groups():
            for r in rows:
                line = [r.task, _ratio_s(r.ratio)]
                for a in self.algos:
                    c = self.cells.get((r.task, r.ratio, a))
                    line.append(DASH if c is None else f"{_pm(c.final_mean, c.final_std)} / {_pm(c.best_mean, c.best_std)}")
                out.append(line)
        return out

    def markdown(self, level: int = 2) -> str:
        """The suite's section: title, main table, caption, final / best table, commands."""
        h = "#" * level
        lines = [f"{h} {self.title} (suite `{self.suite.get('name', '?')}`)", ""]
        if self.suite.get("description"):
            lines += [self.suite["description"].strip(), ""]
        header = self._header()
        lines.append("| " + " | ".join(header) + " |")
        lines.append("| " + " | ".join(["---", "---:"] + ["---:"] * (len(header) - 2)) + " |")
        for row in self.table_rows():
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        lines += [" ".join(self.caption_lines()), ""]
        lines.append(self.aggregate_markdown(level + 1))
        orderings = self.orderings_markdown(level + 1)
        if orderings:
            lines.append(orderings)
        lines += [f"{h}# Final and best evaluation", "", "Final evaluation ± std / best evaluation ± std over seeds (CORL's \"last\" and \"best checkpoint\"), same target as above.", ""]
        lines.append("| " + " | ".join(["Task", "Ratio", *self.algos]) + " |")
        lines.append("| " + " | ".join(["---", "---:"] + ["---:"] * len(self.algos)) + " |")
        for row in self.extra_rows():
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
        cmds = [i.get("argv") for i in self.bench.get("invocations") or [] if i.get("argv")]
        if cmds:
            lines += ["Commands that produced these runs:", "", "```"] + [_command(c) for c in cmds] + ["```", ""]
        return "\n".join(lines)

    def csv_rows(self) -> list[dict[str, Any]]:
        """Long format: one line per cell and per Average entry."""
        out = []
        suite = self.suite.get("name", "")
        for gname, rows in self.groups():
            for r in rows:
                for a in self.algos:
                    c = self.cells.get((r.task, r.ratio, a))
                    p = self.paper.get((r.task, r.ratio, a))
                    if c is None and p is None:
                        continue
                    out.append({
                        "suite": suite, "group": gname, "task": r.task, "ratio": r.ratio, "algo": a,
                        "n_seeds": c.n if c else 0, "seeds": " ".join(map(str, c.seeds)) if c else "", "target": c.target if c else "",
                        "mean": _r(c.mean if c else None), "std": _r(c.std if c else None),
                        "final_mean": _r(c.final_mean if c else None), "final_std": _r(c.final_std if c else None),
                        "best_mean": _r(c.best_mean if c else None), "best_std": _r(c.best_std if c else None),
                        "paper_mean": _r(p[0] if p else None), "paper_std": _r(p[1] if p else None),
                        "diff": _r(c.mean - p[0] if c and p else None),
                    })
            for a in self.algos:
                av = self.average(rows, a)
                out.append({
                    "suite": suite, "group": gname, "task": "Average", "ratio": "", "algo": a, "n_seeds": "", "seeds": "",
                    "target": f"{av['k']}/{av['n']} rows", "mean": _r(av["ours"]), "std": "", "final_mean": "", "final_std": "",
                    "best_mean": "", "best_std": "", "paper_mean": _r(av["paper"]), "paper_std": "",
                    "diff": _r(av["ours"] - av["paper"] if av["ours"] is not None and av["paper"] is not None else None),
                })
        return out

    def csv(self) -> str:
        """The table in long format as CSV text (one line per cell, see `csv_rows`)."""
        rows = self.csv_rows()
        buf = io.StringIO()
        fields = ["suite", "group", "task", "ratio", "algo", "n_seeds", "seeds", "target", "mean", "std", "final_mean", "final_std", "best_mean", "best_std", "paper_mean", "paper_std", "diff"]
        w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
        return buf.getvalue()

    def rich_table(self, compact: bool = False):
        """A rich Table for the terminal (ours, the paper's value and the difference per cell).

        ``compact=True`` is the layout for narrow terminals (about 100 columns with 7 algorithms):
        no vertical rules, the std on its own line, "p" for "paper", task names broken after
        their first hyphen. `print_table` picks it when the full layout does not fit.
        """
        from rich import box
        from rich.table import Table

        from rich.markup import escape

        layout = {"box": box.SIMPLE_HEAD, "pad_edge": False} if compact else {}
        t = Table(title=escape(f"{self.title} (suite {self.suite.get('name', '?')})"), caption=escape("\n".join(self.caption_lines())),
                  caption_justify="left", show_lines=True, **layout)
        for i, h in enumerate(self._header()):
            t.add_column(h, justify="left" if i == 0 else "right", no_wrap=i < 2 and not compact)
        pair = self._lamo_dt()
        paper_word = "p" if compact else "paper"

        def vs(ours, paper):
            text = self._vs_text(ours, paper)
            return text.replace(" (paper ", "\n(p ") if compact else text

        for gname, rows in self.groups():
            for r in rows:
                task = r.task.replace("-", "-\n", 1) if compact else r.task
                cells = [task, _ratio_s(r.ratio)] + [self._rich_cell(self.cells.get((r.task, r.ratio, a)), self.paper.get((r.task, r.ratio, a)), compact) for a in self.algos]
                if pair:
                    cells.append(vs(*self.lamo_dt_row(r)))
                t.add_row(*cells)
            avg = []
            for a in self.algos:
                av = self.average(rows, a)
                s = _f(av["ours"]) + (f" [{av['k']}/{av['n']}]" if av["ours"] is not None and av["k"] < av["n"] else "")
                if av["paper"] is not None:
                    s += f"\n[dim]{paper_word} {_f(av['paper'])}[/dim]"
                avg.append(s)
            cells = [f"[bold]Average[/bold]{f' ({gname})' if gname else ''}", ""] + avg
            if pair:
                cells.append(vs(*self.lamo_dt_average(rows)))
            t.add_row(*cells)
        return t

    def _rich_cell(self, cell: CellScore | None, paper, compact: bool = False) -> str:
        from rich.markup import escape

        paper_word = "p" if compact else "paper"
        if cell is None:
            return DASH if paper is None else f"{DASH}\n[dim]{paper_word} {_f(paper[0])}[/dim]"
        score = _pm(cell.mean, cell.std)
        s = escape((score.replace(" ± ", "\n±") if compact else score) + self._n_note(cell))
        if paper is not None:
            d = cell.mean - paper[0]
            s += f"\n[dim]{paper_word} {_f(paper[0])}[/dim]\n[{'green' if d >= 0 else 'red'}]{_f(d, signed=True)}[/]"
        return s

    def print_table(self, console) -> None:
        """Print `rich_table` on a rich ``console``, compact when the full layout is wider than it."""
        table = self.rich_table()
        if console.measure(table, options=console.options.update_width(10_000)).maximum > console.width:
            table = self.rich_table(compact=True)
        console.print(table)

    # -- files -------------------------------------------------------------------------------------
    def write_csv(self, path: str | os.PathLike) -> Path:
        """Write `csv` to ``path`` atomically; returns the path."""
        from .store import atomic_write_text

        return atomic_write_text(path, self.csv())

    def curves(self, task: str, ratio: float, algo: str) -> list[tuple[int, list[dict]]]:
        """``[(seed, evaluations)]`` of a cell's finished runs (for plots)."""
        out = []
        for r in self.finished:
            res = r.result
            if res["task"] == task and float(res["ratio"]) == float(ratio) and res["label"] == algo:
                out.append((int(res["seed"]), r.curve()))
        return sorted(out, key=lambda x: x[0])


def _count(n: Any, word: str) -> str:
    """``"1 worker"``, ``"2 workers"`` (an unknown count: ``"? workers"``).

    >>> _count(1, "worker"), _count(2, "worker"), _count(None, "core")
    ('1 worker', '2 workers', '? cores')
    """
    return f"{n} {word}" if n == 1 else f"{'?' if n is None else n} {word}s"


def _duration(seconds: float) -> str:
    """``75 s``, ``12 min``, ``3.5 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _r(x: float | None) -> str | float:
    return "" if x is None else round(float(x), 3)


def _command(argv: Sequence[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


def build_report(
    out: str | os.PathLike, reference: str | os.PathLike | None = None, target_selection: str | None = None, use_reference: bool = True,
    bootstrap_reps: int = DEFAULT_REPS, bootstrap_seed: int = 0,
) -> Report:
    """Read ``OUT`` (a ``zoo-bench`` output directory) and aggregate it into a :class:`Report`.

    ``reference``: the YAML with the published tables (default ``benchmarks/paper_results.yaml``);
    the suite's ``reference`` key picks the table. ``target_selection``: ``cell`` / ``run`` (default:
    the suite's). ``use_reference=False`` leaves the published values out. ``bootstrap_reps`` /
``bootstrap_seed``: of the Aggregate table's intervals (`Report.aggregate`).

    Examples:
        An output directory with made-up results (what ``zoo-bench`` writes, without training):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> print(build_report("out").markdown())      # doctest: +ELLIPSIS
        ## demo (suite `demo`)
        <BLANKLINE>
        | Task | Ratio | DT | CQL |
        | --- | ---: | ---: | ---: |
        | reacher2d-medium | 0.1 | 12.5 ± 0.0 | 2.5 ± 0.0 |
        | reacher2d-medium | 1 | 25.5 ± 0.5 | 25.0 ± 0.0 |
        | **Average** |  | 19.0 | 13.8 |
        <BLANKLINE>
        Normalized score (0 = random, 100 = expert), mean ± std (population) over seeds 0, 1; ...
        >>> build_report("out", target_selection="run").cells[("reacher2d-medium", 0.1, "DT")].mean
        12.5
        >>> build_report("elsewhere")
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: elsewhere does not exist: give the --out directory of a zoo-bench run
    """
    out = Path(out)
    bench = read_json(out / BENCH_FILE)
    if bench is None:
        if not out.exists():
            raise SuiteError(f"{out} does not exist: give the --out directory of a zoo-bench run")
        if (out / BENCH_FILE).exists():
            raise SuiteError(f"{out / BENCH_FILE} is damaged (not valid JSON): restore it to report {out}")
        raise SuiteError(f"{out} is not a zoo-bench output directory (no {BENCH_FILE})")
    ts = target_selection or (bench.get("suite") or {}).get("target_selection") or "cell"
    if ts not in TARGET_SELECTIONS:
        raise SuiteError(f"target selection {ts!r}; use one of {', '.join(TARGET_SELECTIONS)}")
    ref = None
    keys = (bench.get("suite") or {}).get("reference")
    keys = [keys] if isinstance(keys, str) else list(keys or [])
    if use_reference and keys:
        tables = load_reference(reference)
        found = [tables[k] for k in keys if k in tables]
        if found:
            ref = {
                "title": ", ".join(t["title"] for t in found),
                "values": {k: v for t in found for k, v in t["values"].items()},
            }
    rep = Report(out, bench, list(scan_runs(out).values()), ref, ts, bootstrap_reps=bootstrap_reps, bootstrap_seed=bootstrap_seed)
    rep._aggregate()
    return rep


GUIDE = """\
Every number below was produced by `zoo-bench` and written into this file by `zoo-bench report`;
nothing here is typed by hand. To reproduce a table (see docs/tutorials/reproducing-the-paper.md):

```
zoo-bench --suite quickstart --out runs/quickstart                       # offline, ~15 min on 2 CPU cores
zoo-bench --suite cpu-paper --out runs/cpu-paper                         # Tables 1 and 3 at CPU scale, ~2 h
zoo-bench --suite sparse --out runs/sparse --workers 4                   # Table 1
zoo-bench --suite atari  --out runs/atari  --executor ray                # Table 2 (GPU cluster)
zoo-bench --suite mujoco --out runs/mujoco --workers 8 --scale 0.1       # Table 3 at a tenth of the budget
zoo-bench report runs/quickstart --markdown benchmarks/README.md --csv quickstart.csv --plots plots/
```
"""


_KEPT_BLOCK = re.compile(r"^<!-- (?P<name>[\w-]+):start -->$.*?^<!-- (?P=name):end -->$", re.MULTILINE | re.DOTALL)


def keep_other_blocks(old_text: str, new_text: str) -> str:
    """``new_text`` plus the ``<!-- NAME:start --> ... <!-- NAME:end -->`` blocks of ``old_text``
    that it lacks: sections other tools maintain in the same file (``benchmarks/perf.py
    --write-readme`` writes the ``perf`` block of ``benchmarks/README.md``) survive a new report.

    Examples:
        >>> old = "# old report\\n\\n<!-- perf:start -->\\n## Performance\\n<!-- perf:end -->\\n"
        >>> print(keep_other_blocks(old, "# new report\\n"))
        # new report
        <BLANKLINE>
        <!-- perf:start -->
        ## Performance
        <!-- perf:end -->
        <BLANKLINE>
    """
    present = {m["name"] for m in _KEPT_BLOCK.finditer(new_text)}
    kept = [m.group(0) for m in _KEPT_BLOCK.finditer(old_text) if m["name"] not in present]
    return new_text if not kept else new_text.rstrip("\n") + "\n\n" + "\n\n".join(kept) + "\n"


def render_document(reports: Sequence[Report], command: Sequence[str] | None = None, images: Sequence[Sequence[str]] | None = None, title: str = "offline-zoo benchmarks") -> str:
    """A whole Markdown document (e.g. ``benchmarks/README.md``): a guide, then each report's section
    (with its figures when ``images[i]`` lists image paths relative to the document).

    Examples:
        An output directory with made-up results (see `build_report`):

        >>> from offline_zoo.testing import write_demo_results
        >>> specs = write_demo_results("out")     # DT and CQL, ratios 0.1 and 1, seeds 0 and 1
        >>> doc = render_document([build_report("out")], command=["zoo-bench", "report", "out"],
        ...                       images=[["plots/score_vs_ratio.png"]])
        >>> [line for line in doc.splitlines() if line.startswith(("# ", "## ", "zoo-bench report out", "!["))]
        ['# offline-zoo benchmarks', 'zoo-bench report out', '## demo (suite `demo`)', '![score_vs_ratio](plots/score_vs_ratio.png)']
    """
    lines = [f"# {title}", "", "<!-- generated by zoo-bench report; do not edit by hand -->", "", GUIDE]
    if command:
        lines += ["This file was generated with:", "", "```", _command(command), "```", ""]
    for i, rep in enumerate(reports):
        lines.append(rep.markdown(level=2))
        for img in (images[i] if images and i < len(images) else []):
            lines += [f"![{Path(img).stem}]({img})", ""]
    return "\n".join(lines).rstrip() + "\n"
