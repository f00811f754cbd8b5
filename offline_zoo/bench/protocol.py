"""The LaMo paper's evaluation protocol and how a run's curve becomes a score.

Protocol (Section 5.1 and Appendix C of the paper): train ``steps`` gradient steps (100k; Reacher2d
37.5k, Breakout 50k), evaluate every ``eval_every`` steps (2500) on every return-to-go target, and
score a run by the mean normalized score of the evaluations in the last ``last_steps`` steps (20k;
Reacher2d 12.5k, Breakout 10k) — the evaluations at steps ``s`` with ``steps - last_steps < s <=
steps``: the last 8 of 40 for the default protocol.

Return-conditioned models are evaluated on several targets. Every target keeps its own curve and its
own window score; the table reports the best target. By default the target is chosen per table cell
(the target whose window score, averaged over the seeds, is highest; then mean +- std over seeds of
that target), which is how the authors report "the best target". ``target_selection="run"`` lets
each run use its own best target instead.

Besides the protocol score, every run records the final evaluation and the best evaluation (CORL
reports both "last" and "best checkpoint" scores).

Examples:
    >>> p = Protocol(steps=100_000, eval_every=2_500, last_steps=20_000)
    >>> p.window
    (80000, 100000)
    >>> len([s for s in p.eval_steps if p.in_window(s)])
    8
    >>> p.scaled(0.01)
    Protocol(steps=1000, eval_every=25, last_steps=200, eval_episodes=None)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

__all__ = [
    "Protocol",
    "TARGET_SELECTIONS",
    "target_key",
    "score_run",
    "aggregate_runs",
    "CellScore",
]

#: how the return-to-go target of a table cell is chosen (see the module docstring)
TARGET_SELECTIONS = ("cell", "run")


def target_key(target: Any) -> str:
    """The string a return-to-go target is stored under in ``curve.json`` ("none" without targets).

    Examples:
        >>> target_key(3600.0), target_key(None), target_key("76")
        ('3600', 'none', '76')
    """
    if target is None:
        return "none"
    if isinstance(target, str):
        return target
    return f"{float(target):g}"


@dataclass(frozen=True)
class Protocol:
    """Budget and evaluation schedule of one run.

    Attributes:
        steps: gradient steps of the run.
        eval_every: an evaluation every this many steps (and always one at ``steps``).
        last_steps: the score averages the evaluations of the last ``last_steps`` steps.
        eval_episodes: episodes per return-to-go target and evaluation (None: the algorithm's
            ``config.eval_episodes``).

    Examples:
        >>> Protocol(37_500, 2_500, 12_500).eval_steps[-5:]
        [27500, 30000, 32500, 35000, 37500]
    """

    steps: int = 100_000
    eval_every: int = 2_500
    last_steps: int = 20_000
    eval_episodes: int | None = None

    def __post_init__(self):
        for name in ("steps", "eval_every", "last_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"protocol {name}={v!r} must be a positive integer number of steps")
        if self.eval_episodes is not None and (isinstance(self.eval_episodes, bool) or int(self.eval_episodes) < 1):
            raise ValueError(f"protocol eval_episodes={self.eval_episodes!r} must be a positive integer or null")

    # -- schedule ------------------------------------------------------------------------------
    @property
    def eval_steps(self) -> list[int]:
        """Steps after which the run is evaluated: every ``eval_every`` steps, plus the last step."""
        out = list(range(self.eval_every, self.steps + 1, self.eval_every))
        if not out or out[-1] != self.steps:
            out.append(self.steps)
        return out

    def is_eval_step(self, step: int) -> bool:
        """True when an evaluation happens after gradient step ``step``."""
        return step == self.steps or (0 < step < self.steps and step % self.eval_every == 0)

    def eval_seed(self, run_seed: int, step: int) -> int:
        """Reset seed of the evaluation after gradient step ``step`` of a run seeded ``run_seed``.

        Episode ``i`` of every target resets with ``eval_seed + i``. Each evaluation of a run gets
        its own seed (fresh start states, as the released code draws them, so the evaluations
        averaged for the score are not all on the same starts), derived from the run seed and the
        evaluation's index in `eval_steps` only: a resumed run evaluates on the same starts.

        Examples:
            >>> p = Protocol(steps=30, eval_every=10, last_steps=20)
            >>> seeds = [p.eval_seed(0, s) for s in p.eval_steps]
            >>> len(set(seeds)), seeds == [p.eval_seed(0, s) for s in (10, 20, 30)]
            (3, True)
            >>> p.eval_seed(1, 10) != p.eval_seed(0, 10)
            True
            >>> p.eval_seed(0, 15)
            Traceback (most recent call last):
            ...
            ValueError: step 15 is not an evaluation step of this protocol (10, 20, 30)
        """
        steps = self.eval_steps
        if step not in steps:
            shown = ", ".join(map(str, steps[:5])) + (", ..." if len(steps) > 5 else "")
            raise ValueError(f"step {step!r} is not an evaluation step of this protocol ({shown})")
        if isinstance(run_seed, bool) or not isinstance(run_seed, (int, np.integer)) or run_seed < 0:
            raise ValueError(f"run_seed={run_seed!r} must be a non-negative integer")
        # 31 bits, so that eval_seed + i stays a valid seed for every environment
        return int(np.random.SeedSequence([int(run_seed), steps.index(step)]).generate_state(1)[0] >> 1)

    @property
    def window(self) -> tuple[int, int]:
        """``(lo, hi)``: evaluations at steps ``lo < step <= hi`` make the score."""
        return (max(0, self.steps - self.last_steps), self.steps)

    def in_window(self, step: int) -> bool:
        """Whether an evaluation at ``step`` counts towards the run's score (see `window`)."""
        lo, hi = self.window
        return lo < step <= hi

    # -- budgets -------------------------------------------------------------------------------
    def scaled(self, factor: float) -> "Protocol":
        """Multiply steps, evaluation interval and window length by ``factor`` (CPU-sized runs).

        Each is rounded and kept >= 1; the window keeps at least one evaluation interval (so it
        always holds the final evaluation) and never exceeds the run.

        Examples:
            >>> Protocol(37_500, 2_500, 12_500).scaled(0.01)
            Protocol(steps=375, eval_every=25, last_steps=125, eval_episodes=None)
        """
        f = float(factor)
        if not math.isfinite(f) or f <= 0:
            raise ValueError(f"scale={factor!r} must be a positive number (e.g. 0.01 for a CPU-sized run)")
        if f == 1.0:
            return self
        steps = max(1, int(round(self.steps * f)))
        return self._fit(steps, max(1, int(round(self.eval_every * f))), max(1, int(round(self.last_steps * f))))

    def with_steps(self, steps: int) -> "Protocol":
        """Exactly ``steps`` training steps; the evaluation interval and window scale along.

        Examples:
            >>> Protocol(100_000, 2_500, 20_000).with_steps(400)
            Protocol(steps=400, eval_every=10, last_steps=80, eval_episodes=None)
        """
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps={steps!r} must be a positive integer")
        f = steps / self.steps
        return self._fit(int(steps), max(1, int(round(self.eval_every * f))), max(1, int(round(self.last_steps * f))))

    def _fit(self, steps: int, eval_every: int, last_steps: int) -> "Protocol":
        eval_every = min(eval_every, steps)
        last_steps = min(max(last_steps, eval_every), steps)
        return replace(self, steps=steps, eval_every=eval_every, last_steps=last_steps)

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (as stored in ``run.json``)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "Protocol":
        """Build from a mapping; unknown keys are an error that lists the valid ones."""
        valid = {"steps", "eval_every", "last_steps", "eval_episodes"}
        unknown = sorted(set(d) - valid)
        if unknown:
            raise ValueError(f"unknown protocol field(s) {', '.join(map(repr, unknown))}; valid: {', '.join(sorted(valid))}")
        return cls(**dict(d))


# -- one run ---------------------------------------------------------------------------------------
def _evaluations(curve: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Evaluations sorted by step, one per step (a later record of the same step wins)."""
    by_step: dict[int, Mapping[str, Any]] = {}
    for e in curve:
        by_step[int(e["step"])] = e
    return [by_step[s] for s in sorted(by_step)]


def _scores(entry: Mapping[str, Any]) -> dict[str, float]:
    scores = entry.get("scores") or {}
    return {target_key(t): float(v) for t, v in scores.items()}


def score_run(curve: Sequence[Mapping[str, Any]], protocol: Protocol) -> dict[str, Any]:
    """Score one run from its evaluation curve (``curve.json``'s ``evaluations``).

    Each entry needs ``step`` and ``scores`` (``{target: mean normalized score}``; one key
    ``"none"`` for policies without return conditioning). Returns a JSON-friendly dict:

    - ``score``: window score of the run's best target (``best_target``);
    - ``target_scores``: every target's window score (mean over the window's evaluations);
    - ``final_score`` / ``final_scores``: the last evaluation (best target / every target);
    - ``best_score`` / ``best_scores`` / ``best_steps``: the best evaluation of each target;
    - ``window``, ``n_window_evals``, ``n_evals``, ``last_step``.

    Examples:
        >>> curve = [{"step": s, "scores": {"76": s / 10, "40": 5.0}} for s in (10, 20, 30, 40)]
        >>> r = score_run(curve, Protocol(steps=40, eval_every=10, last_steps=20))
        >>> r["target_scores"], r["score"], r["best_target"], r["final_score"]
        ({'76': 3.5, '40': 5.0}, 5.0, '40', 5.0)
    """
    evals = _evaluations(curve)
    if not evals:
        raise ValueError("the run has no evaluation: nothing to score")
    window = [e for e in evals if protocol.in_window(int(e["step"]))]
    if not window:
        lo, hi = protocol.window
        raise ValueError(f"no evaluation in the scoring window ({lo}, {hi}]: the run is unfinished or its protocol differs")
    targets = list(_scores(window[0]))
    for e in window[1:]:
        keys = set(_scores(e))
        targets = [t for t in targets if t in keys]
    if not targets:
        raise ValueError("the evaluations in the window share no return-to-go target with normalized scores")
    target_scores = {t: float(np.mean([_scores(e)[t] for e in window])) for t in targets}
    best_target = max(targets, key=lambda t: target_scores[t])
    final = _scores(evals[-1])
    best_scores: dict[str, float] = {}
    best_steps: dict[str, int] = {}
    for e in evals:
        for t, v in _scores(e).items():
            if t not in best_scores or v > best_scores[t]:
                best_scores[t], best_steps[t] = v, int(e["step"])
    return {
        "score": target_scores[best_target],
        "best_target": best_target,
        "target_scores": target_scores,
        "final_score": final.get(best_target, max(final.values()) if final else None),
        "final_scores": final,
        "best_score": best_scores.get(best_target),
        "best_scores": best_scores,
        "best_steps": best_steps,
        "window": list(protocol.window),
        "n_window_evals": len(window),
        "n_evals": len(evals),
        "last_step": int(evals[-1]["step"]),
    }


# -- a table cell ----------------------------------------------------------------------------------
@dataclass
class CellScore:
    """Mean +- std over seeds of one (task, ratio, algorithm) cell.

    ``std`` is the population standard deviation (``numpy.std``, ddof 0) over seeds; ``target`` is
    the return-to-go target the cell reports ("none" for Markov policies; "per-run" when each run
    chose its own); ``final_*`` / ``best_*`` are the final and best-evaluation scores of that target.

    Examples:
        >>> runs = [{"target_scores": {"76": 30.0}, "final_scores": {"76": 31.0}},
        ...         {"target_scores": {"76": 34.0}, "final_scores": {"76": 29.0}}]
        >>> cell = aggregate_runs(runs, seeds=[0, 1])        # what a table cell shows
        >>> cell.mean, cell.std, cell.n, cell.target, cell.final_mean, cell.best_mean
        (32.0, 2.0, 2, '76', 30.0, None)
        >>> cell.to_dict()["per_seed"]
        [30.0, 34.0]
    """

    mean: float
    std: float
    n: int
    target: str
    seeds: list[int]
    final_mean: float | None = None
    final_std: float | None = None
    best_mean: float | None = None
    best_std: float | None = None
    per_seed: list[float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict (a cell of the CSV report)."""
        return asdict(self)


def _mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    return float(np.mean(vals)), float(np.std(vals))


def aggregate_runs(results: Sequence[Mapping[str, Any]], seeds: Sequence[int] | None = None, target_selection: str = "cell") -> CellScore:
    """Combine the ``result.json`` of the seeds of one cell into a :class:`CellScore`.

    ``target_selection="cell"`` (default): pick the target with the highest seed-averaged window
    score among the targets every run has, then report that target for every seed.
    ``"run"``: each run contributes its own best target's score.

    Examples:
        >>> a = {"target_scores": {"76": 30.0, "40": 20.0}, "final_scores": {"76": 31.0, "40": 19.0}, "best_scores": {"76": 40.0, "40": 25.0}}
        >>> b = {"target_scores": {"76": 10.0, "40": 24.0}, "final_scores": {"76": 11.0, "40": 23.0}, "best_scores": {"76": 12.0, "40": 30.0}}
        >>> c = aggregate_runs([a, b], seeds=[0, 1])
        >>> c.target, c.mean, c.std   # "76": mean 20.0 < "40": mean 22.0
        ('40', 22.0, 2.0)
        >>> aggregate_runs([a, b], target_selection="run").mean  # 30 and 24
        27.0
    """
    if target_selection not in TARGET_SELECTIONS:
        raise ValueError(f"target_selection={target_selection!r}; use one of {', '.join(TARGET_SELECTIONS)}")
    if not results:
        raise ValueError("no finished run in this cell")
    seeds = list(seeds) if seeds is not None else list(range(len(results)))
    if target_selection == "run":
        chosen = [max(r["target_scores"], key=r["target_scores"].get) for r in results]
        target = chosen[0] if len(set(chosen)) == 1 else "per-run"
    else:
        common = [t for t in results[0]["target_scores"] if all(t in r["target_scores"] for r in results)]
        if not common:
            raise ValueError("the runs of this cell share no return-to-go target")
        target = max(common, key=lambda t: float(np.mean([r["target_scores"][t] for r in results])))
        chosen = [target] * len(results)
    scores = [float(r["target_scores"][t]) for r, t in zip(results, chosen)]
    mean, std = _mean_std(scores)
    fm, fs = _mean_std([(r.get("final_scores") or {}).get(t) for r, t in zip(results, chosen)])
    bm, bs = _mean_std([(r.get("best_scores") or {}).get(t) for r, t in zip(results, chosen)])
    return CellScore(mean, std, len(results), target, [int(s) for s in seeds], fm, fs, bm, bs, scores)
