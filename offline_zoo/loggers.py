"""Experiment logging in the Stable-Baselines3 / d3rlpy style: CSV, JSONL, TensorBoard, Weights & Biases.

A `Logger` receives ``log(step, {name: value})`` calls and writes them somewhere. ``learn`` takes
one (or a name, or a list) as ``logger=``: it wraps it in a `LoggerCallback`, which logs the
training metrics every ``log_every`` steps, and every evaluation of an `EvalCallback`.

    >>> from offline_zoo import DT
    >>> from offline_zoo.testing import tiny_dataset
    >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
    >>> _ = algo.learn(4, progress_bar=False, log_every=2, logger=["csv", "jsonl"], log_dir="logs")
    >>> import pathlib
    >>> sorted(p.name for p in pathlib.Path("logs").iterdir())
    ['metrics.csv', 'metrics.jsonl']

Every algorithm logs the same names (see ``docs/logging.md``): ``train/loss`` and each loss term
(``train/action_loss``, ``train/critic_loss``...), ``train/learning_rate``, ``train/grad_norm``
(native agents), ``time/steps_per_second``, and from evaluations ``eval/score_<target>`` (mean
return) and ``eval/normalized_<target>`` (mean normalized score).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Iterable, Mapping

from .callbacks import Callback
from .files import atomic_write_text

__all__ = [
    "Logger", "CSVLogger", "JSONLLogger", "TensorBoardLogger", "WandbLogger", "LoggerList", "LoggerCallback",
    "make_logger", "check_logger", "evaluation_metrics", "training_metrics", "read_jsonl", "LOGGER_NAMES",
]

#: the names `make_logger` knows
LOGGER_NAMES = ("csv", "jsonl", "tensorboard", "wandb")
#: file names of the file loggers inside a ``log_dir``
CSV_FILE = "metrics.csv"
JSONL_FILE = "metrics.jsonl"
TENSORBOARD_DIR = "tensorboard"


def _float(value: Any) -> float:
    """A metric as a Python float (tensors, NumPy scalars and ints included)."""
    return float(value.item() if hasattr(value, "item") else value)


class Logger:
    """Base class of the loggers: override `log` (and `close`, `flush` if they hold resources).

    ``purge_step`` (where an adapter supports it): entries at this step or later, left by an
    earlier process in the same place, are dropped when the logger opens (a run resumed from the
    checkpoint of that step writes them again), as TensorBoard's ``purge_step``.

    Examples:
        A logger that keeps the entries in a list:

        >>> class ListLogger(Logger):
        ...     def __init__(self):
        ...         self.entries = []
        ...     def log(self, step, metrics):
        ...         self.entries.append((step, dict(metrics)))
        >>> with ListLogger() as lg:
        ...     lg.log(1, {"train/loss": 0.5})
        >>> lg.entries
        [(1, {'train/loss': 0.5})]
    """

    def log(self, step: int, metrics: Mapping[str, float]) -> None:
        """Record ``metrics`` (name -> number) at training step ``step``."""
        raise NotImplementedError

    def flush(self) -> None:
        """Push what is buffered to its destination (a no-op where every `log` already does)."""

    def close(self) -> None:
        """Flush and release the logger's files or connections; further `log` calls are errors."""

    def __enter__(self) -> "Logger":
        return self

    def __exit__(self, *exc) -> bool:
        self.close()
        return False


class LoggerList(Logger):
    """Several loggers as one: every call goes to each of them in order.

    `make_logger` builds one from a list.

    Examples:
        >>> both = LoggerList([CSVLogger("a.csv"), JSONLLogger("a.jsonl")])
        >>> both.log(1, {"train/loss": 0.5}); both.close()
        >>> open("a.jsonl").read()
        '{"step": 1, "train/loss": 0.5}\\n'
    """

    def __init__(self, loggers: Iterable[Logger]):
        self.loggers = list(loggers)

    def log(self, step, metrics):
        for lg in self.loggers:
            lg.log(step, metrics)

    def flush(self):
        for lg in self.loggers:
            lg.flush()

    def close(self):
        for lg in self.loggers:
            lg.close()


class _AppendedFile(Logger):
    """A logger appending to one open text file ``self._file`` (flushed by every `log`)."""

    def flush(self):
        if not self._file.closed:
            self._file.flush()

    def close(self):
        self._file.close()


class JSONLLogger(_AppendedFile):
    """One JSON object per `log` call, ``{"step": ..., name: value, ...}``, appended and flushed at once.

    A crash loses nothing already logged; a line cut by a crash is skipped by `read_jsonl`.
    Non-finite values are written as ``null`` (strict JSON).

    Args:
        path: the ``.jsonl`` file (its folder is created; an existing file is appended to).
        purge_step: drop the file's entries at this step or later first (see `Logger`).

    Examples:
        >>> lg = JSONLLogger("logs/metrics.jsonl")
        >>> lg.log(1, {"train/loss": 0.5}); lg.log(2, {"train/loss": float("nan")}); lg.close()
        >>> read_jsonl("logs/metrics.jsonl")
        [{'step': 1, 'train/loss': 0.5}, {'step': 2, 'train/loss': None}]
        >>> JSONLLogger("logs/metrics.jsonl", purge_step=2).close()   # a run resumed at step 1
        >>> read_jsonl("logs/metrics.jsonl")
        [{'step': 1, 'train/loss': 0.5}]
    """

    def __init__(self, path: str | os.PathLike, purge_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if purge_step is not None and self.path.is_file():
            kept = [e for e in read_jsonl(self.path) if int(e.get("step", 0)) < purge_step]
            atomic_write_text(self.path, "".join(json.dumps(e) + "\n" for e in kept))
        self._file = open(self.path, "a", encoding="utf-8")

    def log(self, step, metrics):
        entry = {"step": int(step)}
        for k, v in metrics.items():
            v = _float(v)
            entry[k] = v if math.isfinite(v) else None
        self._file.write(json.dumps(entry) + "\n")
        self._file.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The entries of a `JSONLLogger` file (lines that do not parse, e.g. cut by a crash, skipped).

    Examples:
        >>> _ = open("m.jsonl", "w").write('{"step": 1, "train/loss": 0.5}\\n{"step": 2, "tr')
        >>> read_jsonl("m.jsonl")
        [{'step': 1, 'train/loss': 0.5}]
    """
    out = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict):
            out.append(entry)
    return out


class CSVLogger(_AppendedFile):
    """A CSV table, one row per `log` call: ``step`` then one column per metric, appended and flushed at once.

    A metric seen for the first time adds a column: the file is rewritten with the wider header
    (atomically, as Stable-Baselines3's CSV output does); cells of metrics a row does not hold
    are empty. A crash loses nothing already logged.

    Args:
        path: the ``.csv`` file (its folder is created; an existing file is appended to).
        purge_step: drop the file's rows at this step or later first (see `Logger`).

    Examples:
        >>> lg = CSVLogger("logs/metrics.csv")
        >>> lg.log(1, {"train/loss": 0.5}); lg.log(2, {"train/loss": 0.25, "eval/normalized": 7.0}); lg.close()
        >>> print(open("logs/metrics.csv").read().strip())
        step,train/loss,eval/normalized
        1,0.5,
        2,0.25,7.0
    """

    def __init__(self, path: str | os.PathLike, purge_step: int | None = None):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._columns: list[str] = ["step"]
        rows: list[dict[str, str]] = []
        if self.path.is_file() and self.path.stat().st_size:
            with open(self.path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                self._columns = list(reader.fieldnames or ["step"])
                rows = [r for r in reader if r.get("step") not in (None, "")]
            if purge_step is not None:
                self._rewrite([r for r in rows if int(float(r["step"])) < purge_step])
        self._file = open(self.path, "a", newline="", encoding="utf-8")
        if self.path.stat().st_size == 0:
            self._file.write(",".join(self._columns) + "\n")
            self._file.flush()

    def _rewrite(self, rows: list[dict[str, Any]]) -> None:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=self._columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(self.path, buf.getvalue())

    def log(self, step, metrics):
        row = {"step": int(step), **{k: _float(v) for k, v in metrics.items()}}
        new = [k for k in row if k not in self._columns]
        if new:
            self._file.close()
            with open(self.path, newline="", encoding="utf-8") as f:
                old = list(csv.DictReader(f))
            self._columns += new
            self._rewrite(old)
            self._file = open(self.path, "a", newline="", encoding="utf-8")
        csv.DictWriter(self._file, fieldnames=self._columns, lineterminator="\n").writerow(row)
        self._file.flush()


class TensorBoardLogger(Logger):
    """Scalars in TensorBoard event files, through ``torch.utils.tensorboard.SummaryWriter``.

    Needs ``tensorboard`` (``pip install offline-zoo[tensorboard]``); view with
    ``tensorboard --logdir DIR``. Every `log` call is flushed to disk.

    Args:
        log_dir: the folder of the event files (one TensorBoard run).
        purge_step: events at this step or later, left by an earlier writer, are hidden (see `Logger`).

    Examples:
        >>> lg = TensorBoardLogger("logs/tb")
        >>> lg.log(1, {"train/loss": 0.5}); lg.close()
        >>> from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
        >>> acc = EventAccumulator("logs/tb"); _ = acc.Reload()
        >>> [(e.step, e.value) for e in acc.Scalars("train/loss")]
        [(1, 0.5)]
    """

    def __init__(self, log_dir: str | os.PathLike, purge_step: int | None = None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as e:  # torch present, tensorboard missing
            raise ImportError(f"TensorBoardLogger needs tensorboard: pip install 'offline-zoo[tensorboard]' ({e})") from None
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir), purge_step=purge_step)

    def log(self, step, metrics):
        for k, v in metrics.items():
            self.writer.add_scalar(k, _float(v), global_step=int(step))
        self.writer.flush()

    def flush(self):
        self.writer.flush()

    def close(self):
        self.writer.close()


class WandbLogger(Logger):
    """Weights & Biases: ``wandb.init`` when made, ``run.log(metrics, step=step)`` per call, ``run.finish()`` on close.

    Needs ``wandb`` (``pip install offline-zoo[wandb]``), imported only when a `WandbLogger` is
    made. ``mode="offline"`` writes the run under ``dir`` without an account or network
    (``wandb sync`` uploads it later). No entity is assumed: W&B's default (your account) is used.

    Args:
        project: the W&B project.
        name: the run's display name (None: W&B picks one).
        dir: where W&B writes its files (None: W&B's default, ``./wandb``).
        mode: ``"online"``, ``"offline"`` or ``"disabled"`` (None: W&B's default / ``$WANDB_MODE``).
        config: the run's configuration (hyperparameters) shown in W&B.
        **init_kwargs: more ``wandb.init`` keywords (``entity``, ``group``, ``tags``...).

    Examples:
        An offline run (``wandb sync logs/wandb/offline-run-*`` uploads it), or through ``learn``:

        >>> lg = WandbLogger(project="my-project", mode="offline", dir="logs")  # doctest: +SKIP
        >>> lg.log(1, {"train/loss": 0.5}); lg.close()  # doctest: +SKIP
        >>> algo.learn(10_000, logger="wandb", log_dir="logs")  # doctest: +SKIP
    """

    def __init__(self, project: str = "offline-zoo", name: str | None = None, dir: str | os.PathLike | None = None,
                 mode: str | None = None, config: Mapping[str, Any] | None = None, **init_kwargs: Any):
        try:
            import wandb
        except ImportError:
            raise ImportError("WandbLogger needs wandb: pip install 'offline-zoo[wandb]' (or pip install wandb)") from None
        kwargs = dict(project=project, name=name, mode=mode, config=dict(config) if config is not None else None, **init_kwargs)
        if dir is not None:
            Path(dir).mkdir(parents=True, exist_ok=True)
            kwargs["dir"] = str(dir)
        self.run = wandb.init(**{k: v for k, v in kwargs.items() if v is not None})

    def log(self, step, metrics):
        self.run.log({k: _float(v) for k, v in metrics.items()}, step=int(step))

    def close(self):
        if self.run is not None:
            self.run.finish()
            self.run = None


def make_logger(logger: "str | Logger | Iterable[str | Logger]", log_dir: str | os.PathLike = "logs", purge_step: int | None = None, **wandb_kwargs: Any) -> Logger:
    """A `Logger` from a name (``"csv"``, ``"jsonl"``, ``"tensorboard"``, ``"wandb"``), a `Logger`
    (returned as it is) or a list of those (a `LoggerList`).

    Files go into ``log_dir``: ``metrics.csv``, ``metrics.jsonl``, ``tensorboard/``; W&B writes
    under ``log_dir`` too (``wandb_kwargs`` go to `WandbLogger`). ``purge_step``: see `Logger`.

    Examples:
        >>> make_logger("csv", "logs").path.as_posix()
        'logs/metrics.csv'
        >>> [type(lg).__name__ for lg in make_logger(["csv", "jsonl"], "logs").loggers]
        ['CSVLogger', 'JSONLLogger']
        >>> make_logger("mlflow")
        Traceback (most recent call last):
        ...
        ValueError: unknown logger 'mlflow': use one of 'csv', 'jsonl', 'tensorboard', 'wandb', a Logger, or a list of those
    """
    if isinstance(logger, Logger):
        return logger
    if isinstance(logger, str):
        name = check_logger(logger)[0]
        log_dir = Path(log_dir)
        if name == "csv":
            return CSVLogger(log_dir / CSV_FILE, purge_step=purge_step)
        if name == "jsonl":
            return JSONLLogger(log_dir / JSONL_FILE, purge_step=purge_step)
        if name == "tensorboard":
            return TensorBoardLogger(log_dir / TENSORBOARD_DIR, purge_step=purge_step)
        return WandbLogger(**{"dir": log_dir, **wandb_kwargs})
    items = check_logger(logger)
    made: list[Logger] = []
    try:
        for item in items:
            made.append(make_logger(item, log_dir, purge_step, **wandb_kwargs))
    except BaseException:
        for lg in made:  # the ones made so far hold open files
            if not any(lg is i for i in items):
                lg.close()
        raise
    return LoggerList(made)


def check_logger(logger: Any) -> list:
    """Check a ``logger=`` value without opening anything: a name, a `Logger` or a list of those.

    Returns the normalized items (names lower-cased); raises ValueError naming the bad value and
    the allowed names.

    Examples:
        >>> check_logger(["CSV", "tensorboard"])
        ['csv', 'tensorboard']
        >>> check_logger(["csv", "tensorbord"])
        Traceback (most recent call last):
        ...
        ValueError: unknown logger 'tensorbord': use one of 'csv', 'jsonl', 'tensorboard', 'wandb', a Logger, or a list of those
        >>> check_logger(3)
        Traceback (most recent call last):
        ...
        ValueError: logger=3 is not a logger: use one of 'csv', 'jsonl', 'tensorboard', 'wandb', a Logger, or a list of those
    """
    allowed = f"use one of {', '.join(map(repr, LOGGER_NAMES))}, a Logger, or a list of those"
    if isinstance(logger, Logger):
        return [logger]
    if isinstance(logger, str):
        name = logger.strip().lower()
        name = "tensorboard" if name == "tb" else name
        if name not in LOGGER_NAMES:
            raise ValueError(f"unknown logger {logger!r}: {allowed}")
        return [name]
    if isinstance(logger, (bytes, Mapping)):
        raise ValueError(f"logger={logger!r} is not a logger: {allowed}")
    try:
        items = list(logger)
    except TypeError:
        raise ValueError(f"logger={logger!r} is not a logger: {allowed}") from None
    out = []
    for item in items:
        if not isinstance(item, (str, Logger)):
            raise ValueError(f"logger list item {item!r} is not a logger: {allowed}")
        out += check_logger(item)
    return out


def evaluation_metrics(entry: Mapping[str, Any]) -> dict[str, float]:
    """The logged names of an evaluation (`EvaluationResult.to_dict` form, as `EvalCallback` records it).

    ``eval/score_<target>``: mean return per return-to-go target; ``eval/normalized_<target>``:
    mean normalized score; ``eval/normalized``: the headline score (best target). Policies
    without targets log ``eval/score`` and ``eval/normalized``.

    Examples:
        >>> evaluation_metrics({"score": 60.0, "scores": {"3600": 60.0, "1800": 40.0},
        ...                     "mean_returns": {"3600": 2000.0, "1800": 1300.0}})
        {'eval/score_3600': 2000.0, 'eval/score_1800': 1300.0, 'eval/normalized_3600': 60.0, 'eval/normalized_1800': 40.0, 'eval/normalized': 60.0}
        >>> evaluation_metrics({"scores": {"none": 12.5}, "mean_returns": {"none": 30.0}})
        {'eval/score': 30.0, 'eval/normalized': 12.5}
    """
    def tag(prefix: str, target: str) -> str:
        return prefix if target in ("none", "None") else f"{prefix}_{target}"

    out: dict[str, float] = {}
    for target, value in (entry.get("mean_returns") or {}).items():
        if value is not None:
            out[tag("eval/score", target)] = float(value)
    for target, value in (entry.get("scores") or {}).items():
        if value is not None:
            out[tag("eval/normalized", target)] = float(value)
    if entry.get("score") is not None:
        out["eval/normalized"] = float(entry["score"])
    return out


def training_metrics(algo: Any) -> dict[str, float]:
    """The logged names of an algorithm's training state: ``train/<metric>`` of its latest metrics
    (``latest_metrics``, else ``last_metrics``) and ``train/<name>`` of its ``learning_rates()``.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> sorted(training_metrics(algo.learn(1, progress_bar=False)))
        ['train/action_loss', 'train/grad_norm', 'train/learning_rate', 'train/loss']
    """
    metrics = getattr(algo, "latest_metrics", None)
    if metrics is None:
        metrics = getattr(algo, "last_metrics", None) or {}
    out = {f"train/{k}": _float(v) for k, v in dict(metrics).items()}
    rates = getattr(algo, "learning_rates", None)
    if callable(rates):
        out.update({f"train/{k}": float(v) for k, v in rates().items()})
    return out


class LoggerCallback(Callback):
    """Logs training metrics every ``log_every`` steps and every evaluation to a `Logger`.

    ``learn(logger=...)`` adds one; it can also be passed as a callback. Each logged step gets
    ``train/...`` (loss terms, learning rates, gradient norm), ``time/steps_per_second`` (since
    the previous log); evaluations recorded by an `EvalCallback` (``algo.log_evaluation``) get
    ``eval/...`` (`evaluation_metrics`). Any algorithm with ``num_steps`` and ``last_metrics``
    works (the benchmark's stand-ins too).

    Args:
        logger: a `Logger`, a name or a list (`make_logger`, files in ``log_dir``).
        log_every: log after every ``log_every`` gradient steps.
        log_dir: folder of the files of loggers given by name (opened when training starts).
        close: close the logger when training ends (default: only loggers this callback made;
            a `Logger` passed in is flushed, and stays open for the next ``learn``).

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.callbacks import EvalCallback
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> cb = LoggerCallback("jsonl", log_every=2, log_dir="logs")
        >>> _ = algo.learn(2, progress_bar=False, callback=[cb, EvalCallback(2, n_episodes=1)])
        >>> [sorted(k for k in e if k.startswith(("train/loss", "eval/normalized"))) for e in read_jsonl("logs/metrics.jsonl")]
        [['train/loss'], ['eval/normalized', 'eval/normalized_1800', 'eval/normalized_3600']]
    """

    def __init__(self, logger: "str | Logger | Iterable[str | Logger]", log_every: int = 100, log_dir: str | os.PathLike = "logs", close: bool | None = None):
        if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 1:
            raise ValueError(f"log_every={log_every!r} must be a whole number >= 1")
        check_logger(logger)  # a bad name fails here, not when training starts
        self._spec, self.log_dir = logger, log_dir
        self.logger: Logger | None = logger if isinstance(logger, Logger) else None
        self.log_every = log_every
        self.close_at_end = (not isinstance(logger, Logger)) if close is None else bool(close)
        self._t = self._step = None

    def on_training_start(self, algo, n_steps):
        if self.logger is None:  # loggers given by name are opened here and closed at the end
            self.logger = make_logger(self._spec, self.log_dir)
        self._t, self._step = time.perf_counter(), int(algo.num_steps)
        listeners = getattr(algo, "_eval_listeners", None)
        if isinstance(listeners, list) and self not in listeners:
            listeners.append(self)

    def on_step(self, algo):
        step = int(algo.num_steps)
        if step % self.log_every == 0:
            metrics = training_metrics(algo)
            now = time.perf_counter()
            if self._t is not None and now > self._t and step > self._step:
                metrics["time/steps_per_second"] = (step - self._step) / (now - self._t)
            self._t, self._step = now, step
            self.logger.log(step, metrics)
        return True

    def log_evaluation(self, step: int, entry: Mapping[str, Any]) -> None:
        """Log one evaluation entry (called through ``algo.log_evaluation``)."""
        metrics = evaluation_metrics(entry)
        if metrics and self.logger is not None:
            self.logger.log(int(step), metrics)
        self._t = time.perf_counter()  # time/steps_per_second measures training, not evaluation

    def on_training_end(self, algo):
        listeners = getattr(algo, "_eval_listeners", None)
        if isinstance(listeners, list) and self in listeners:
            listeners.remove(self)
        if self.logger is None:
            return
        if self.close_at_end:
            self.logger.close()
            if not isinstance(self._spec, Logger):
                self.logger = None  # a next learn() opens the files again (appending)
        else:
            self.logger.flush()
