"""The on-disk layout of a benchmark output directory, with atomic writes.

::

    OUT/
      bench.json                 suite, settings (scale/steps/source), planned runs, invocations
      .lock                      held (flock) by the zoo-bench process working on OUT
      runs/<task>__r<ratio>__<algo>__s<seed>__<run id>/
        run.json                 status, resolved config, data provenance, versions, host, timings
        curve.json               every evaluation (step, reset seed, per-target normalized scores and returns)
        checkpoint.zip           the algorithm at the last evaluation (algo.save)
        result.json              the run's scores; its presence means "finished"
        worker.log               the run's stdout/stderr

Every file is written through :mod:`offline_zoo.files` (temporary file in the same directory,
fsync, ``os.replace``): a reader (or a resumed suite) sees either the old or the new content, never a
half-written file, whatever moment the process is killed at.

Examples:
    >>> _ = atomic_write_json("out/runs/demo/result.json", {"score": 12.5})
    >>> read_json("out/runs/demo/result.json")
    {'score': 12.5}
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Mapping

from ..files import atomic_write_bytes, atomic_write_text

__all__ = [
    "BENCH_FILE",
    "RUN_FILE",
    "CURVE_FILE",
    "RESULT_FILE",
    "CHECKPOINT_FILE",
    "LOG_FILE",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "read_json",
    "read_result",
    "jsonable",
    "runs_dir",
    "RunRecord",
    "scan_runs",
    "DirectoryLock",
    "LockedError",
]

BENCH_FILE = "bench.json"
RUN_FILE = "run.json"
CURVE_FILE = "curve.json"
RESULT_FILE = "result.json"
CHECKPOINT_FILE = "checkpoint.zip"
LOG_FILE = "worker.log"
LOCK_FILE = ".lock"


def jsonable(x: Any) -> Any:
    """Make numpy / tuple / Path / dataclass values JSON-friendly (NaN and inf become None).

    Examples:
        >>> import numpy as np
        >>> jsonable({"x": np.arange(3), "path": Path("runs/a"), 7: (np.float32(0.5), float("nan"))})
        {'x': [0, 1, 2], 'path': 'runs/a', '7': [0.5, None]}
    """
    import dataclasses

    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return jsonable(dataclasses.asdict(x))
    if isinstance(x, Mapping):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, set)):
        return [jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if hasattr(x, "tolist") and not isinstance(x, (str, bytes)):  # numpy arrays / scalars, tensors
        return jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if x is None or isinstance(x, (str, int, float, bool)):
        return x
    return str(x)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON atomically (through :func:`jsonable`).

    Examples:
        >>> import numpy as np
        >>> p = atomic_write_json("out/result.json", {"score": np.float64(12.5), "steps": (10, 20)})
        >>> print(p.read_text())
        {
          "score": 12.5,
          "steps": [
            10,
            20
          ]
        }
        <BLANKLINE>
    """
    return atomic_write_text(path, json.dumps(jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """The JSON content of ``path``, or ``default`` when it does not exist or cannot be parsed.

    Examples:
        >>> _ = atomic_write_json("out/run.json", {"status": "running"})
        >>> read_json("out/run.json")
        {'status': 'running'}
        >>> _ = atomic_write_text("out/torn.json", '{"status": "runn')
        >>> read_json("out/missing.json", default={}), read_json("out/torn.json") is None
        ({}, True)
    """
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, NotADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return default


# what a finished run's result.json must hold for the run to count (worker._train_and_score writes it)
RESULT_KEYS = ("run_id", "task", "ratio", "label", "algo", "seed", "score")


def read_result(path: str | os.PathLike) -> tuple[dict | None, str | None]:
    """``(result, damage)`` of a run's ``result.json``: the result when it is complete, else None
    and, when the file exists but is unreadable or incomplete, why (``damage``).

    Examples:
        >>> _ = atomic_write_text("out/r1.json", '{"score": 1')
        >>> read_result("out/r1.json")
        (None, 'out/r1.json is damaged (not valid JSON)')
        >>> _ = atomic_write_json("out/r2.json", {})
        >>> read_result("out/r2.json")[1]
        'out/r2.json is incomplete (no run_id, task, ratio, label, algo, seed, score)'
        >>> read_result("out/none.json")
        (None, None)
    """
    path = Path(path)
    if not path.exists():
        return None, None
    data = read_json(path)
    if data is None:
        return None, f"{path} is damaged (not valid JSON)"
    if not isinstance(data, dict):
        return None, f"{path} is damaged (not a JSON object)"
    missing = [k for k in RESULT_KEYS if k not in data]
    if missing:
        return None, f"{path} is incomplete (no {', '.join(missing)})"
    return data, None


def runs_dir(out: str | os.PathLike) -> Path:
    """The directory holding one sub-directory per run: ``OUT/runs``.

    Examples:
        >>> runs_dir("runs/smoke").as_posix()
        'runs/smoke/runs'
    """
    return Path(out) / "runs"


@dataclass
class RunRecord:
    """What a run directory holds: its spec (from run.json), status, result and curve paths.

    Attributes:
        path: the run directory.
        run: the content of ``run.json`` (``{}`` when absent).
        result: the content of ``result.json``, None while the run is not finished.

    Examples:
        >>> d = runs_dir("out") / "reacher2d-medium__r1__DT__s0__0123456789ab"
        >>> _ = atomic_write_json(d / RUN_FILE, {"status": "running", "spec": {"run_id": "0123456789ab"}})
        >>> _ = atomic_write_json(d / CURVE_FILE, {"evaluations": [{"step": 100, "scores": {"none": 3.0}}]})
        >>> rec = RunRecord(d, read_json(d / RUN_FILE), read_json(d / RESULT_FILE))
        >>> rec.run_id, rec.status, rec.finished, rec.curve()
        ('0123456789ab', 'running', False, [{'step': 100, 'scores': {'none': 3.0}}])
    """

    path: Path
    run: dict
    result: dict | None
    #: why the run's result.json does not count (damaged or incomplete), None when it is fine or absent
    damage: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run wrote a complete ``result.json`` (written last)."""
        return self.result is not None

    @property
    def status(self) -> str:
        """``finished``, ``damaged`` (result.json unreadable), or the status in ``run.json``."""
        if self.result is not None:
            return "finished"
        if self.damage:
            return "damaged"
        return str(self.run.get("status") or "unknown") if self.run else "unknown"

    @property
    def spec(self) -> dict:
        """The run's spec (`RunSpec.to_dict`) from ``run.json``, else from ``result.json``."""
        return self.run.get("spec") or {}

    @property
    def run_id(self) -> str:
        """The run's id: the spec's, else the last ``__``-separated part of the directory name."""
        return self.spec.get("run_id") or self.path.name.rsplit("__", 1)[-1]

    def curve(self) -> list[dict]:
        """The run's evaluations from ``curve.json`` (``[]`` when there are none yet)."""
        return (read_json(self.path / CURVE_FILE) or {}).get("evaluations", [])


def scan_runs(out: str | os.PathLike) -> dict[str, RunRecord]:
    """Every run directory under ``OUT/runs``: ``{run_id: RunRecord}`` (finished or not).

    A run is finished when its ``result.json`` is complete (see :func:`read_result`); a damaged one
    makes the run ``damaged`` (not finished: a resume runs it again). The run id is the spec's, else
    the last ``__``-separated part of the directory name.

    Examples:
        >>> _ = atomic_write_json("out/runs/a__s0__aaa/run.json", {"status": "failed", "error": "boom"})
        >>> done = dict.fromkeys(RESULT_KEYS, 0) | {"score": 12.5}
        >>> _ = atomic_write_json("out/runs/b__s0__bbb/result.json", done)
        >>> _ = atomic_write_text("out/runs/c__s0__ccc/result.json", '{"score": 1')
        >>> {rid: (rec.status, rec.finished) for rid, rec in scan_runs("out").items()}
        {'aaa': ('failed', False), 'bbb': ('finished', True), 'ccc': ('damaged', False)}
        >>> scan_runs("nowhere")
        {}
    """
    out_runs = runs_dir(out)
    records: dict[str, RunRecord] = {}
    if not out_runs.is_dir():
        return records
    for d in sorted(out_runs.iterdir()):
        if not d.is_dir():
            continue
        run = read_json(d / RUN_FILE, {}) or {}
        result, damage = read_result(d / RESULT_FILE)
        rec = RunRecord(d, run if isinstance(run, dict) else {}, result, damage)
        records[rec.run_id] = rec
    return records


class LockedError(RuntimeError):
    """Another process holds the lock of this directory.

    Examples:
        >>> with DirectoryLock("out"):
        ...     DirectoryLock("out", what="benchmark directory").__enter__()  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        offline_zoo.bench.store.LockedError: benchmark directory out is in use by another process (pid ...); wait for it to finish or stop it first
    """


class DirectoryLock:
    """An exclusive ``flock`` on ``DIR/.lock``: released by the kernel when the holder dies (even by
    SIGKILL), so a stale lock can never block a resume.

    ``wait``: seconds to wait for the lock (0: fail at once with `LockedError`); ``what`` names
    the directory in that error.

    Examples:
        >>> with DirectoryLock("out") as lock:      # zoo-bench holds OUT/.lock while it works
        ...     int(lock.path.read_text()) == os.getpid()
        True
        >>> with DirectoryLock("out"):              # free again once released
        ...     pass
    """

    def __init__(self, directory: str | os.PathLike, wait: float = 0.0, what: str = "directory"):
        self.path = Path(directory) / LOCK_FILE
        self.wait = float(wait)
        self.what = what
        self._fd: int | None = None

    def __enter__(self) -> "DirectoryLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no locking
            self._fd = fd
            return self
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    holder = ""
                    with contextlib.suppress(OSError):
                        holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                    os.close(fd)
                    raise LockedError(
                        f"{self.what} {self.path.parent} is in use by another process{f' (pid {holder})' if holder else ''}; "
                        "wait for it to finish or stop it first"
                    ) from None
                time.sleep(0.1)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)  # closing releases the flock
            self._fd = None


def iter_tmp_files(directory: Path) -> Iterator[Path]:
    """Leftover temporary files of interrupted atomic writes."""
    if directory.is_dir():
        yield from directory.glob(".*.tmp")
        yield from directory.glob("*.tmp")
