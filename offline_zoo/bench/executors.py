"""Executors: where the runs of a suite execute. Every run gets its own process.

* :class:`LocalExecutor` (``--workers N``): up to N runs at once on this machine, each in a fresh
  process started with ``multiprocessing``'s *spawn* method, so a run that crashes (even a segfault
  or an out-of-memory kill) takes down that run only. Each worker gets ``cores // N`` torch threads
  and, when GPUs exist, one GPU (round robin over ``CUDA_VISIBLE_DEVICES``). Workers die with the
  suite process (``PR_SET_PDEATHSIG`` on Linux, plus a watchdog), so a killed suite leaves nothing
  running behind it.
* :class:`RayExecutor` (``--executor ray``): the same runs as Ray tasks on a Ray cluster (an existing
  cluster via ``--ray-address`` / ``$RAY_ADDRESS``, or a local Ray instance), one CPU bundle per run
  and one GPU per run when the cluster has GPUs. When the output directory is on storage the workers
  share, runs write to it directly (and resume from checkpoints); otherwise a run writes to a
  temporary directory on its node and the driver stores the files it returns.
* :class:`InlineExecutor` (``--workers 0``): one run after the other in this process (debugging).

All of them call :func:`offline_zoo.bench.worker.execute_run` and report progress events
(``start`` / ``progress`` / ``end`` dicts) to a callback.

Examples:
    >>> from offline_zoo.bench.executors import LocalExecutor
    >>> LocalExecutor(workers=2).describe()["workers"]
    2
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Sequence

from .store import BENCH_FILE, RESULT_FILE, RUN_FILE, atomic_write_bytes, read_json, read_result, runs_dir
from .suites import RunSpec
from .worker import execute_run

__all__ = [
    "LocalExecutor", "RayExecutor", "InlineExecutor", "RayStartError", "available_cpus", "default_workers", "local_gpus",
    "loopback_problem", "make_executor", "start_ray",
]

Event = Callable[[dict], None]


def available_cpus() -> int:
    """CPU cores this process may use (its affinity mask).

    Examples:
        >>> available_cpus() == len(os.sched_getaffinity(0))
        True
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover
        return max(1, os.cpu_count() or 1)


def local_gpus() -> list[str]:
    """GPU ids visible here, without importing torch: ``$CUDA_VISIBLE_DEVICES`` or ``nvidia-smi -L``.

    (When torch is already imported, ``torch.cuda.device_count()`` is asked instead of
    ``nvidia-smi``.)

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"CUDA_VISIBLE_DEVICES": "0,2"}):
        ...     local_gpus()
        ['0', '2']
        >>> with mock.patch.dict(os.environ, {"CUDA_VISIBLE_DEVICES": "-1"}):   # GPUs hidden
        ...     local_gpus()
        []
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    torch = sys.modules.get("torch")
    if torch is not None:
        try:
            return [str(i) for i in range(torch.cuda.device_count())]
        except Exception:
            return []
    smi = shutil.which("nvidia-smi")
    if not smi:
        return []
    try:
        r = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(l for l in r.stdout.splitlines() if l.startswith("GPU "))]


def _outcome_from_disk(out: Path, spec: RunSpec, exitcode: int | None = None) -> dict[str, Any]:
    """The truth about a run after its process ended: finished iff ``result.json`` exists."""
    run_dir = runs_dir(out) / spec.dirname
    result, _ = read_result(run_dir / RESULT_FILE)
    if result is not None:
        return {"status": "finished", "run_id": spec.run_id, "score": result.get("score")}
    run = read_json(run_dir / RUN_FILE, {}) or {}
    error = run.get("error") if run.get("status") in ("failed", "interrupted") else None
    if error is None:
        if exitcode is not None and exitcode < 0:
            error = f"the run's process was killed by signal {signal.Signals(-exitcode).name}" if -exitcode in signal.Signals._value2member_map_ else f"the run's process died (exit code {exitcode})"
        else:
            error = f"the run's process exited (code {exitcode}) without a result"
    return {"status": run.get("status") if run.get("status") == "interrupted" else "failed", "run_id": spec.run_id, "error": error}


@contextlib.contextmanager
def _redirect_output(path: Path):
    """Send this process's stdout / stderr (file descriptors 1 and 2) to ``path`` for the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(path, "ab", buffering=0) as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _die_with_parent(parent_pid: int) -> None:
    """Make this worker exit when the suite process dies, however it dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)

    def watch():
        while True:
            time.sleep(1.0)
            if os.getppid() != parent_pid:
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="zoo-bench-parent-watch").start()


def _raise_interrupt(signum, frame):
    """First SIGINT / SIGTERM: stop the run (it records "interrupted"); later ones are ignored so
    that the record is written."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _local_worker(spec_dict: dict, out: str, conn, threads: int | None, gpu: str | None, parent_pid: int, device: str, keep_checkpoint: bool, loggers: tuple = ()) -> None:
    """Entry point of a local worker process (spawned): one run, then exit.

    Progress events go through ``conn``, this worker's own pipe (a worker killed mid-message
    cannot block the others).
    """
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpu)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(threads)
    spec = RunSpec.from_dict(spec_dict)

    def emit(ev: dict) -> None:
        if ev.get("type") != "end":
            with contextlib.suppress(Exception):
                conn.send(ev)

    with _redirect_output(runs_dir(out) / spec.dirname / "worker.log"):
        try:
            execute_run(spec, out, emit, device=device, threads=threads, keep_checkpoint=keep_checkpoint, loggers=loggers)
        except KeyboardInterrupt:
            os._exit(130)
    with contextlib.suppress(Exception):
        conn.close()


class LocalExecutor:
    """Up to ``workers`` runs in parallel, each in its own spawned process (see the module docstring).

    Args:
        workers: parallel runs.
        device: ``"auto"`` (a GPU when the worker has one), ``"cpu"``, ``"cuda"``.
        threads: torch threads per run (default: cores // workers, at least 1).
        keep_checkpoints: keep each finished run's ``checkpoint.zip``.
        gpus: GPU ids to spread the workers over (default: every visible GPU; none with device="cpu").
        loggers: loggers of each run besides its CSV and JSONL logs (``"tensorboard"``, ``"wandb"``).

    Examples:
        >>> from offline_zoo.bench import load_suite, run_suite
        >>> run_suite(load_suite("smoke"), "runs/smoke", executor=LocalExecutor(workers=2))  # doctest: +SKIP
        >>> LocalExecutor(workers=2, threads=1, device="cpu").describe()
        {'kind': 'local', 'workers': 2, 'threads_per_run': 1, 'device': 'cpu', 'gpus': []}
        >>> LocalExecutor(workers=0)
        Traceback (most recent call last):
        ...
        ValueError: workers=0 must be >= 1 (use InlineExecutor to run in this process)
    """

    def __init__(self, workers: int = 1, device: str = "auto", threads: int | None = None, keep_checkpoints: bool = True, gpus: Sequence[str] | None = None,
                 loggers: Sequence[str] = ()):
        if int(workers) < 1:
            raise ValueError(f"workers={workers!r} must be >= 1 (use InlineExecutor to run in this process)")
        self.workers = int(workers)
        self.device = device
        self.threads = int(threads) if threads else max(1, available_cpus() // self.workers)
        self.keep_checkpoints = keep_checkpoints
        self.gpus = list(gpus) if gpus is not None else ([] if device == "cpu" else None)
        self.loggers = _check_loggers(loggers)
        self.outcomes: dict[str, dict] = {}

    def describe(self) -> dict[str, Any]:
        """The executor's settings (recorded in ``bench.json``)."""
        return {"kind": "local", "workers": self.workers, "threads_per_run": self.threads, "device": self.device, "gpus": self.gpus, **_loggers_info(self.loggers)}

    def run(self, specs: Sequence[RunSpec], out: str | os.PathLike, on_event: Event | None = None) -> dict[str, dict]:
        """Run every spec; returns ``{run_id: outcome}`` (``status``: finished / failed)."""
        import multiprocessing as mp
        from multiprocessing.connection import wait as wait_conns

        out = Path(out).resolve()
        emit = on_event or (lambda ev: None)
        gpus = self.gpus if self.gpus is not None else local_gpus()
        ctx = mp.get_context("spawn")
        pending = deque(specs)
        running: dict[str, tuple[Any, int, RunSpec, Any]] = {}
        free = list(range(self.workers))
        self.outcomes = {}

        def drain(timeout: float) -> None:
            conns = {c: rid for rid, (_, _, _, c) in running.items() if not c.closed}
            if not conns:
                time.sleep(timeout)
                return
            for c in wait_conns(list(conns), timeout=timeout):
                try:
                    while c.poll():
                        emit(c.recv())
                except (EOFError, OSError):
                    c.close()
                except Exception:  # a message cut short by a killed worker
                    c.close()

        try:
            while pending or running:
                while pending and free:
                    spec = pending.popleft()
                    slot = free.pop(0)
                    gpu = gpus[slot % len(gpus)] if gpus else None
                    recv_end, send_end = ctx.Pipe(duplex=False)
                    p = ctx.Process(
                        target=_local_worker,
                        args=(spec.to_dict(), str(out), send_end, self.threads, gpu, os.getpid(), self.device, self.keep_checkpoints, self.loggers),
                        name=f"zoo-bench:{spec.run_id}",
                    )
                    p.start()
                    send_end.close()  # the child holds the only writer: EOF when it exits
                    running[spec.run_id] = (p, slot, spec, recv_end)
                    emit({"type": "start", "run_id": spec.run_id, "name": spec.name, "total": spec.protocol.steps})
                drain(0.2)
                for rid, (p, slot, spec, conn) in list(running.items()):
                    if p.is_alive():
                        continue
                    p.join()
                    with contextlib.suppress(Exception):
                        conn.close()
                    outcome = _outcome_from_disk(out, spec, p.exitcode)
                    self.outcomes[rid] = outcome
                    del running[rid]
                    free.append(slot)
                    emit({"type": "end", "name": spec.name, **outcome})
        except KeyboardInterrupt:
            self._stop(running)
            raise
        return self.outcomes

    def _stop(self, running: dict) -> None:
        """Ctrl-C: the workers got the SIGINT too (same process group); give them a moment to record
        "interrupted", then terminate (SIGTERM), then kill what is left."""
        procs = [p for p, _, _, _ in running.values()]
        deadline = time.monotonic() + 3
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
        for p in procs:
            with contextlib.suppress(Exception):
                p.terminate()
        deadline = time.monotonic() + 10
        for p in procs:
            p.join(max(0.0, deadline - time.monotonic()))
            if p.is_alive():
                p.kill()
                p.join()


class InlineExecutor:
    """Runs one after the other in this process (``--workers 0``): for debugging and notebooks.

    Args:
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        keep_checkpoints: keep each finished run's ``checkpoint.zip``.
        threads: torch threads (None: leave as they are).
        loggers: loggers of each run besides its CSV and JSONL logs (``"tensorboard"``, ``"wandb"``).

    Examples:
        Two runs of a stand-in algorithm (`offline_zoo.testing.StepCountAlgo`, whose score is its
        step count), one after the other, with the progress events they report:

        >>> from offline_zoo.bench.protocol import Protocol
        >>> from offline_zoo.bench.suites import RunSpec
        >>> specs = [RunSpec("demo", "", "reacher2d-medium", 1.0, "Toy", "offline_zoo.testing:StepCountAlgo", seed, {}, "generated",
        ...                  Protocol(steps=20, eval_every=10, last_steps=10)) for seed in (0, 1)]
        >>> events = []
        >>> outcomes = InlineExecutor(device="cpu").run(specs, "out", on_event=events.append)
        >>> [o["status"] for o in outcomes.values()], [e["type"] for e in events][:4]
        (['finished', 'finished'], ['start', 'progress', 'progress', 'end'])
    """

    def __init__(self, device: str = "auto", keep_checkpoints: bool = True, threads: int | None = None, loggers: Sequence[str] = ()):
        self.device = device
        self.keep_checkpoints = keep_checkpoints
        self.threads = threads
        self.loggers = _check_loggers(loggers)
        self.outcomes: dict[str, dict] = {}

    def describe(self) -> dict[str, Any]:
        """The executor's settings (recorded in ``bench.json``)."""
        return {"kind": "inline", "device": self.device, **_loggers_info(self.loggers)}

    def run(self, specs: Sequence[RunSpec], out: str | os.PathLike, on_event: Event | None = None) -> dict[str, dict]:
        """Run every spec in this process, one after the other; returns ``{run_id: outcome}``."""

        emit = on_event or (lambda ev: None)
        self.outcomes = {}
        for spec in specs:
            self.outcomes[spec.run_id] = execute_run(
                spec, out, emit, device=self.device, threads=self.threads, keep_checkpoint=self.keep_checkpoints, loggers=self.loggers,
            )
        return self.outcomes


# -- Ray -------------------------------------------------------------------------------------------
def _import_ray():
    try:
        import ray
    except ImportError:
        raise RuntimeError(
            "--executor ray needs Ray: pip install 'ray[default]' (or pip install 'offline-zoo[bench]')"
        ) from None
    return ray


class RayStartError(RuntimeError):
    """Ray could not be started or joined in time (see `start_ray`).

    Examples:
        >>> issubclass(RayStartError, RuntimeError)
        True
    """


#: seconds ``start_ray`` waits for ``ray.init`` by default ($OFFLINE_ZOO_RAY_START_TIMEOUT overrides)
RAY_START_TIMEOUT = 120.0


def loopback_problem(timeout: float = 2.0) -> str | None:
    """Why a local Ray instance cannot start here (TCP on 127.0.0.1 does not work), or None.

    Ray's processes talk to each other over loopback TCP; with loopback down (e.g. in a fresh
    network namespace) ``ray.init`` would retry its connection to the GCS forever.

    Examples:
        >>> problem = loopback_problem()   # None on a machine with a working loopback interface
        >>> problem is None or problem.startswith("TCP on the loopback interface (127.0.0.1) does not work here")
        True
    """
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
            server.bind(("127.0.0.1", 0))
            server.listen(1)
            with socket.create_connection(server.getsockname(), timeout=timeout):
                return None
    except OSError as e:
        return f"TCP on the loopback interface (127.0.0.1) does not work here: {e}"


def start_ray(ray: Any = None, address: str | None = None, timeout: float | None = None, **init_kwargs: Any) -> None:
    """``ray.init(address, **init_kwargs)`` that gives up after ``timeout`` seconds and on Ctrl-C.

    A local instance (no ``address`` and no ``$RAY_ADDRESS``) is only started when loopback TCP works
    (`loopback_problem`). ``ray.init`` runs in a helper thread while this thread waits, so SIGINT and
    SIGTERM are handled here even while Ray retries a connection; on a timeout or an interrupt the
    processes Ray started are stopped. ``timeout`` defaults to ``$OFFLINE_ZOO_RAY_START_TIMEOUT`` or
    :data:`RAY_START_TIMEOUT`.

    Raises:
        RayStartError: Ray cannot start here, or did not start / connect within ``timeout``.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch(__name__ + ".loopback_problem", return_value="loopback is down"):
        ...     start_ray(object())
        Traceback (most recent call last):
        ...
        offline_zoo.bench.executors.RayStartError: cannot start a local Ray instance: loopback is down. Bring the loopback interface up, or join a running cluster with --ray-address / $RAY_ADDRESS, or use --executor local
    """
    if timeout is None:
        raw = os.environ.get("OFFLINE_ZOO_RAY_START_TIMEOUT", "").strip()
        try:
            timeout = float(raw) if raw else RAY_START_TIMEOUT
        except ValueError:
            raise RayStartError(f"OFFLINE_ZOO_RAY_START_TIMEOUT={raw!r} is not a number of seconds") from None
    where = address or os.environ.get("RAY_ADDRESS")
    if not where:
        _check_local_ray()
    ray = ray if ray is not None else _import_ray()
    failure: list[BaseException] = []

    started = threading.Event()

    def init() -> None:
        try:
            ray.init(address=address, **init_kwargs)
        except BaseException as e:  # noqa: BLE001 - handed to the waiting thread
            failure.append(e)
            return
        started.set()
        # Ray ties the processes it starts to the life of the starting *thread* (PR_SET_PDEATHSIG):
        # this thread stays until Ray is shut down, or its GCS and raylet would die with it
        while ray.is_initialized():
            time.sleep(0.5)

    thread = threading.Thread(target=init, name="ray-init", daemon=True)
    what = f"join the Ray cluster at {where}" if where else "start a local Ray instance"
    deadline = time.monotonic() + timeout
    thread.start()
    try:
        while thread.is_alive() and not started.is_set():
            if time.monotonic() > deadline:
                _abandon_ray(ray)
                raise RayStartError(
                    f"could not {what} within {timeout:g} s (Ray kept retrying; its log is under "
                    "/tmp/ray/session_latest/logs). Check the address and the network, raise "
                    "$OFFLINE_ZOO_RAY_START_TIMEOUT, or use --executor local"
                )
            thread.join(0.2)  # short waits: a signal reaches this thread between them
    except KeyboardInterrupt:
        _abandon_ray(ray)
        raise
    if failure:
        raise RayStartError(f"could not {what}: {type(failure[0]).__name__}: {failure[0]}") from failure[0]


def _check_local_ray() -> None:
    problem = loopback_problem()
    if problem is not None:
        raise RayStartError(
            f"cannot start a local Ray instance: {problem}. Bring the loopback interface up, or join a "
            "running cluster with --ray-address / $RAY_ADDRESS, or use --executor local"
        )


def _abandon_ray(ray: Any) -> None:
    """Stop the processes of a ``ray.init`` that is being given up (best effort, never blocks long)."""
    node = getattr(getattr(getattr(ray, "_private", None), "worker", None), "_global_node", None)
    if node is not None:
        with contextlib.suppress(Exception):
            node.kill_all_processes(check_alive=False, allow_graceful=False)


def _ray_task(spec_dict: dict, out: str, progress_actor, device: str, keep_checkpoint: bool, threads: int, loggers: tuple = ()) -> dict:
    """One run inside a Ray worker (see :class:`RayExecutor`)."""
    from .worker import execute_run  # imported where the Ray task runs, not where it is defined

    spec = RunSpec.from_dict(spec_dict)

    def emit(ev: dict) -> None:
        if progress_actor is not None and ev.get("type") != "end":
            with contextlib.suppress(Exception):
                progress_actor.push.remote(ev)

    out_p = Path(out)
    if (out_p / BENCH_FILE).is_file():  # the output directory is shared with the driver
        with _redirect_output(runs_dir(out_p) / spec.dirname / "worker.log"):
            return execute_run(spec, out_p, emit, device=device, threads=threads, keep_checkpoint=keep_checkpoint, loggers=loggers)
    tmp = Path(tempfile.mkdtemp(prefix="zoo-bench-"))
    try:
        with _redirect_output(runs_dir(tmp) / spec.dirname / "worker.log"):
            outcome = execute_run(spec, tmp, emit, device=device, threads=threads, keep_checkpoint=keep_checkpoint, loggers=loggers)
        run_dir = runs_dir(tmp) / spec.dirname
        # the run directory's files, those of its subfolders too (tensorboard/), by relative path
        outcome["files"] = {
            f.relative_to(run_dir).as_posix(): f.read_bytes() for f in sorted(run_dir.rglob("*"))
            if f.is_file() and not any(part.startswith(".") for part in f.relative_to(run_dir).parts)
        }
        return outcome
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _check_loggers(loggers: Sequence[str]) -> tuple[str, ...]:
    """The extra logger names of the runs (checked now: a typo fails before any run starts)."""
    from ..loggers import check_logger

    if isinstance(loggers, str):
        loggers = [loggers]
    names = check_logger(list(loggers))
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"loggers={loggers!r}: runs take logger names (their processes make the loggers), not Logger objects")
    return tuple(n for n in dict.fromkeys(names) if n not in ("csv", "jsonl"))  # those two are always written


def _loggers_info(loggers: tuple[str, ...]) -> dict[str, Any]:
    return {"loggers": list(loggers)} if loggers else {}


def _store_returned_files(out: Path, spec: RunSpec, files: dict[str, bytes]) -> None:
    """Write the files a remote run returned; ``result.json`` last (it marks the run finished)."""
    run_dir = runs_dir(out) / spec.dirname
    for name in sorted(files, key=lambda n: n == RESULT_FILE):
        target = run_dir / name
        if run_dir.resolve() not in target.resolve().parents:
            continue  # a relative path must stay inside the run directory
        target.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(target, files[name])


class RayExecutor:
    """Runs as Ray tasks (see the module docstring).

    Args:
        address: Ray cluster address (None: ``$RAY_ADDRESS``, else a new local Ray instance).
        cpus_per_run: CPUs reserved per run (also its torch threads).
        gpus_per_run: GPUs per run (None: 1 when the cluster has GPUs, else 0; fractions allowed).
        device: device inside the task (``"auto"``: the task's GPU when it has one).
        keep_checkpoints: keep each finished run's ``checkpoint.zip``.
        init_kwargs: extra ``ray.init`` keywords when this executor starts Ray.
        loggers: loggers of each run besides its CSV and JSONL logs (``"tensorboard"``, ``"wandb"``).

    Examples:
        >>> from offline_zoo.bench import load_suite, run_suite
        >>> ray_ex = RayExecutor(address="auto", cpus_per_run=2)       # Ray is imported by run() only
        >>> run_suite(load_suite("atari"), "runs/atari", executor=ray_ex)  # doctest: +SKIP
        >>> ray_ex.describe()
        {'kind': 'ray', 'address': 'auto', 'cpus_per_run': 2, 'gpus_per_run': None, 'device': 'auto'}
    """

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float | None = None, device: str = "auto", keep_checkpoints: bool = True, init_kwargs: dict | None = None,
                 loggers: Sequence[str] = ()):
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.device = device
        self.keep_checkpoints = keep_checkpoints
        self.init_kwargs = dict(init_kwargs or {})
        self.loggers = _check_loggers(loggers)
        self.outcomes: dict[str, dict] = {}

    def describe(self) -> dict[str, Any]:
        """The executor's settings (recorded in ``bench.json``)."""
        return {"kind": "ray", "address": self.address or os.environ.get("RAY_ADDRESS"), "cpus_per_run": self.cpus_per_run, "gpus_per_run": self.gpus_per_run, "device": self.device,
                **_loggers_info(self.loggers)}

    def run(self, specs: Sequence[RunSpec], out: str | os.PathLike, on_event: Event | None = None) -> dict[str, dict]:
        """Run every spec as a Ray task (starting or joining Ray first); returns ``{run_id: outcome}``."""
        ray = _import_ray()
        out = Path(out).resolve()
        emit = on_event or (lambda ev: None)
        started = False
        if not ray.is_initialized():
            kwargs = {"include_dashboard": False, "log_to_driver": False, **self.init_kwargs}
            start_ray(ray, self.address, **kwargs)  # a timeout and Ctrl-C instead of retrying forever
            started = True
        self.outcomes = {}
        try:
            gpus = self.gpus_per_run
            if gpus is None:
                gpus = 1 if ray.cluster_resources().get("GPU", 0) >= 1 else 0
            actor = _progress_actor(ray).remote()
            task = ray.remote(_ray_task).options(num_cpus=self.cpus_per_run, num_gpus=gpus, max_retries=0)
            threads = max(1, int(self.cpus_per_run))
            refs = {task.remote(s.to_dict(), str(out), actor, self.device, self.keep_checkpoints, threads, self.loggers): s for s in specs}
            seen_start: set[str] = set()
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=0.5)
                    for ev in ray.get(actor.pop.remote()):
                        if ev.get("type") == "start":
                            seen_start.add(ev["run_id"])
                        emit(ev)
                    for ref in ready:
                        spec = refs.pop(ref)
                        try:
                            outcome = ray.get(ref)
                        except Exception as e:  # the task itself died (worker crash, node lost)
                            outcome = {"status": "failed", "run_id": spec.run_id, "error": f"Ray task failed: {type(e).__name__}: {e}"}
                        files = outcome.pop("files", None)
                        if files:
                            _store_returned_files(out, spec, files)
                        if outcome.get("status") == "finished" or files:
                            outcome = _outcome_from_disk(out, spec) if (runs_dir(out) / spec.dirname).is_dir() else outcome
                        self.outcomes[spec.run_id] = outcome
                        emit({"type": "end", "name": spec.name, **outcome})
            except KeyboardInterrupt:
                for ref in refs:
                    with contextlib.suppress(Exception):
                        ray.cancel(ref, force=True)
                raise
        finally:
            if started:
                ray.shutdown()
        return self.outcomes


def _progress_actor(ray):
    @ray.remote(num_cpus=0)
    class ProgressSink:
        """Collects progress events from the tasks; the driver pops them."""

        def __init__(self):
            self.events = []

        def push(self, ev):
            self.events.append(ev)

        def pop(self):
            out, self.events = self.events, []
            return out

    return ProgressSink


def default_workers(device: str = "auto") -> int:
    """``zoo-bench``'s default ``--workers``: one run per usable CPU core, or per visible GPU when
    the runs go to GPUs (``device`` not ``"cpu"`` and a GPU is visible).

    Examples:
        >>> default_workers("cpu") == available_cpus()
        True
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"CUDA_VISIBLE_DEVICES": "0,1,2"}):
        ...     default_workers("auto")
        3
    """
    gpus = [] if device == "cpu" else local_gpus()
    return len(gpus) if gpus else available_cpus()


def make_executor(kind: str = "local", workers: int = 1, device: str = "auto", keep_checkpoints: bool = True, ray_address: str | None = None, cpus_per_run: float | None = None, gpus_per_run: float | None = None,
                  loggers: Sequence[str] = ()):
    """The executor behind ``zoo-bench --executor KIND --workers N [--logger NAME]``.

    ``workers=0`` gives an `InlineExecutor`; ``kind="ray"`` checks that Ray is installed.
    ``loggers``: each run's loggers besides its CSV and JSONL logs (``zoo-bench --logger``).

    Examples:
        >>> make_executor("local", workers=0).describe()
        {'kind': 'inline', 'device': 'auto'}
        >>> make_executor("local", workers=4, device="cpu").describe()["workers"]
        4
        >>> make_executor("local", workers=0, loggers=["tensorboard"]).describe()
        {'kind': 'inline', 'device': 'auto', 'loggers': ['tensorboard']}
        >>> make_executor("slurm")
        Traceback (most recent call last):
        ...
        ValueError: unknown executor 'slurm': use 'local' or 'ray'
    """
    if kind == "local":
        if int(workers) == 0:
            return InlineExecutor(device=device, keep_checkpoints=keep_checkpoints, loggers=loggers)
        return LocalExecutor(workers=workers, device=device, keep_checkpoints=keep_checkpoints, loggers=loggers)
    if kind == "ray":
        _import_ray()
        if not (ray_address or os.environ.get("RAY_ADDRESS")):
            _check_local_ray()  # before any run is prepared: a local instance needs loopback TCP
        return RayExecutor(address=ray_address, cpus_per_run=cpus_per_run or 1, gpus_per_run=gpus_per_run, device=device, keep_checkpoints=keep_checkpoints, loggers=loggers)
    raise ValueError(f"unknown executor {kind!r}: use 'local' or 'ray'")
