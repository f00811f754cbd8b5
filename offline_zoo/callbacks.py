"""Training callbacks in the Stable-Baselines3 spirit.

A callback sees the algorithm after every gradient step and may stop training by returning False
from `Callback.on_step`.

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
    """Base class: override any of the hooks. ``on_step`` returning False stops training.

    Examples:
        A callback that records the loss and stops after three steps:

        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> class LossLog(Callback):
        ...     def on_training_start(self, algo, n_steps):
        ...         self.losses = []
        ...     def on_step(self, algo):
        ...         self.losses.append(algo.last_metrics["loss"])
        ...         return algo.num_steps < 3
        >>> log = LossLog()
        >>> algo.learn(10, callback=log, progress_bar=False).num_steps, len(log.losses)
        (3, 3)
    """

    def on_training_start(self, algo: "OfflineAlgo", n_steps: int) -> None:
        """Called once when ``learn`` starts (``n_steps`` = steps of this call)."""

    def on_step(self, algo: "OfflineAlgo") -> bool:
        """Called after every gradient step; ``algo.num_steps`` counts steps so far."""
        return True

    def on_training_end(self, algo: "OfflineAlgo") -> None:
        """Called once when ``learn`` returns (also after an early stop)."""


class CallbackList(Callback):
    """Runs several callbacks in order; training stops when any of them asks.

    Every callback still sees the step on which one of them asks to stop. ``learn`` builds one
    from a list of callbacks.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> steps = []
        >>> both = CallbackList([LambdaCallback(lambda a: steps.append(a.num_steps)), LambdaCallback(lambda a: a.num_steps < 2)])
        >>> algo.learn(5, callback=both, progress_bar=False).num_steps, steps
        (2, [1, 2])
    """

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
    """Wraps a plain function ``f(algo) -> bool | None`` called after every step.

    Returning False stops training; None (no return value) or anything else continues. ``learn``
    wraps a plain function passed as ``callback`` in one.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> algo.learn(5, callback=LambdaCallback(lambda a: a.num_steps < 3), progress_bar=False).num_steps
        3
        >>> algo.learn(2, callback=lambda a: None, progress_bar=False).num_steps  # None: continue
        5
    """

    def __init__(self, fn: Callable[["OfflineAlgo"], Any]):
        self.fn = fn

    def on_step(self, algo):
        return self.fn(algo) is not False


def as_callback(callback) -> Callback:
    """None, a Callback, a function or a list of those -> one Callback.

    Examples:
        >>> [type(as_callback(c)).__name__ for c in (None, print, [None, print])]
        ['CallbackList', 'LambdaCallback', 'CallbackList']
        >>> ev = EvalCallback(100)
        >>> as_callback(ev) is ev
        True
    """
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

    Args:
        eval_every: evaluate after every ``eval_every`` gradient steps.
        n_episodes: episodes per target (None: ``config.eval_episodes``).
        target_returns (float | Sequence[float] | None): return-to-go targets (None: the algorithm's defaults).
        seed: reset seed of the first episode (the same initial states at every evaluation).
        best_model_path: where to save the best algorithm so far (None: not saved).
        verbose: accepted as in Stable-Baselines3; currently has no effect.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> ev = EvalCallback(2, n_episodes=1, best_model_path="best.zip")
        >>> _ = algo.learn(4, callback=ev, progress_bar=False)
        >>> [entry["step"] for entry in ev.history], sorted(ev.history[0]["scores"])
        ([2, 4], ['1800', '3600'])
        >>> import pathlib
        >>> pathlib.Path("best.zip").is_file()
        True
        >>> EvalCallback(0)
        Traceback (most recent call last):
        ...
        ValueError: eval_every=0 must be a positive number of steps
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
    """Save the algorithm every ``save_every`` steps to ``directory/<prefix>_<step>.zip`` (atomically).

    Args:
        save_every: save after every ``save_every`` gradient steps.
        directory: folder of the checkpoints (created when needed).
        prefix: start of the file names.
        keep_last: keep only this many most recent checkpoints (None: keep all).

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> from pathlib import Path
        >>> ckpt = CheckpointCallback(2, "ckpt", keep_last=1)
        >>> _ = algo.learn(4, callback=ckpt, progress_bar=False)
        >>> [p.name for p in ckpt.saved], sorted(p.name for p in Path("ckpt").iterdir())
        (['checkpoint_4.zip'], ['checkpoint_4.zip'])
        >>> DT.load("ckpt/checkpoint_4.zip").num_steps
        4
    """

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
    """Early stop: after ``patience`` evaluations of an `EvalCallback` without a new best.

    Put it after its `EvalCallback` in the callback list, so that it sees the evaluation of the
    same step.

    Args:
        eval_callback: the callback whose ``history`` is watched.
        patience: evaluations without improvement before training stops.
        min_delta: a score must beat the best one by more than this to count as an improvement.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> ev = EvalCallback(2, n_episodes=1)
        >>> stop = StopTrainingOnNoImprovement(ev, patience=1, min_delta=1e9)  # nothing improves by 1e9
        >>> algo.learn(100, callback=[ev, stop], progress_bar=False).num_steps  # the 2nd evaluation stops it
        4
    """

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
