"""Training callbacks in the Stable-Baselines3 spirit.

A callback sees the algorithm after every gradient step and may stop training by returning False
from :meth:`Callback.on_step`.

    >>> from offline_zoo import DT
    >>> from offline_zoo.callbacks import EvalCallback, CheckpointCallback  # doctest: +SKIP
    >>> DT(ds).learn(5000, callback=[EvalCallback(2500), CheckpointCallback(2500, "ckpt")])  # doctest: +SKIP
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

if TYPE_CHECKING:  # pragma: no cover
    from .algos.base import OfflineAlgo

__all__ = ["Callback", "CallbackList", "EvalCallback", "CheckpointCallback", "StopTrainingOnNoImprovement", "LambdaCallback", "as_callback"]


class Callback:
    """Base class: override any of the hooks. ``on_step`` returning False stops training."""

    def on_training_start(self, algo: "OfflineAlgo", n_steps: int) -> None:
        """Called once when ``learn`` starts (``n_steps`` = steps of this call)."""

    def on_step(self, algo: "OfflineAlgo") -> bool:
        """Called after every gradient step; ``algo.num_steps`` counts steps so far."""
        return True

    def on_training_end(self, algo: "OfflineAlgo") -> None:
        """Called once when ``learn`` returns (also after an early stop)."""


class CallbackList(Callback):
    """Runs several callbacks in order; training stops when any of them asks."""

    def __init__(self, callbacks: Iterable[Callback]):
        self.callbacks = list(callbacks)

    def on_training_start(self, algo, n_steps):
        for c in self.callbacks:
            c.on_training_start(algo, n_steps)

    def on_step(self, algo):
        keep_going = True
        for c in self.callbacks:
            keep_going = c.on_step(algo) is not False and keep_going
        return keep_going

    def on_training_end(self, algo):
        for c in self.callbacks:
            c.on_training_end(algo)


class LambdaCallback(Callback):
    """Wraps a plain function ``f(algo) -> bool | None`` called after every step."""

    def __init__(self, fn: Callable[["OfflineAlgo"], Any]):
        self.fn = fn

    def on_step(self, algo):
        return self.fn(algo) is not False


def as_callback(callback) -> Callback:
    """None, a Callback, a function or a list of those -> one Callback."""
    if callback is None:
        return CallbackList([])
    if isinstance(callback, Callback):
        return callback
    if callable(callback):
        return LambdaCallback(callback)
    return CallbackList([as_callback(c) for c in callback])


class EvalCallback(Callback):
    """Evaluate every ``eval_every`` steps on every return-to-go target; keeps the whole curve.

    ``history`` is a list of ``{"step", "scores": {target: mean normalized}, "returns": {...}}``;
    the latest score is also shown by the progress bar. With ``best_model_path`` the best
    checkpoint (by ``result.score``) is saved.
    """

    def __init__(self, eval_every: int, n_episodes: int | None = None, target_returns=None, seed: int = 0, best_model_path: str | Path | None = None, verbose: bool = False):
        if int(eval_every) < 1:
            raise ValueError(f"eval_every={eval_every!r} must be a positive number of steps")
        self.eval_every = int(eval_every)
        self.n_episodes = n_episodes
        self.target_returns = target_returns
        self.seed = seed
        self.best_model_path = best_model_path
        self.verbose = verbose
        self.history: list[dict[str, Any]] = []
        self.best_score = -math.inf

    def on_step(self, algo):
        if algo.num_steps % self.eval_every == 0:
            result = algo.evaluate(n_episodes=self.n_episodes, target_returns=self.target_returns, seed=self.seed)
            entry = {"step": algo.num_steps, **result.to_dict()}
            self.history.append(entry)
            algo.log_evaluation(entry)
            if result.score is not None and result.score > self.best_score:
                self.best_score = result.score
                if self.best_model_path is not None:
                    algo.save(self.best_model_path)
        return True


class CheckpointCallback(Callback):
    """Save the algorithm every ``save_every`` steps to ``directory/<prefix>_<step>.zip`` (atomically)."""

    def __init__(self, save_every: int, directory: str | Path, prefix: str = "checkpoint", keep_last: int | None = None):
        if int(save_every) < 1:
            raise ValueError(f"save_every={save_every!r} must be a positive number of steps")
        self.save_every = int(save_every)
        self.directory = Path(directory)
        self.prefix = prefix
        self.keep_last = keep_last
        self.saved: list[Path] = []

    def on_step(self, algo):
        if algo.num_steps % self.save_every == 0:
            path = self.directory / f"{self.prefix}_{algo.num_steps}.zip"
            algo.save(path)
            self.saved.append(path)
            if self.keep_last is not None:
                while len(self.saved) > self.keep_last:
                    self.saved.pop(0).unlink(missing_ok=True)
        return True


class StopTrainingOnNoImprovement(Callback):
    """Early stop: after ``patience`` evaluations of an :class:`EvalCallback` without a new best."""

    def __init__(self, eval_callback: EvalCallback, patience: int = 5, min_delta: float = 0.0):
        self.eval_callback = eval_callback
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self._seen = 0
        self._best = -math.inf
        self._bad = 0

    def on_step(self, algo):
        hist = self.eval_callback.history
        while self._seen < len(hist):
            score = hist[self._seen]["score"]
            self._seen += 1
            if score is not None and score > self._best + self.min_delta:
                self._best, self._bad = score, 0
            else:
                self._bad += 1
        return self._bad < self.patience
