"""One run from start to result: what an executor calls, in its own process.

:func:`execute_run` trains one `RunSpec` in chunks of ``eval_every`` steps; after each chunk it
evaluates on every return-to-go target, appends the evaluation to ``curve.json`` and saves
``checkpoint.zip`` (both atomically, in that order). A run is finished only when ``result.json``
exists (written last). A resumed run restarts from its last checkpoint (training continues exactly:
the algorithms' save/load round trip keeps weights, optimizer, schedulers and every random
generator) and drops any evaluation recorded after that checkpoint, so the finished curve is the one
an uninterrupted run would have written. :func:`resolve_algo`, :func:`check_algos` and
:func:`check_configs` find and validate a run's algorithm before anything trains.

This module sits below the executors (:mod:`offline_zoo.bench.executors`) and the suite runner
(:mod:`offline_zoo.bench.runner`), which both import it; it imports neither.

Examples:
    >>> from offline_zoo.bench.worker import resolve_algo
    >>> resolve_algo("dt").__name__
    'DT'
"""

from __future__ import annotations

import importlib
import os
import platform
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from ..callbacks import CallbackList, LambdaCallback
from .protocol import score_run
from .store import (
    CHECKPOINT_FILE,
    CURVE_FILE,
    RESULT_FILE,
    RUN_FILE,
    DirectoryLock,
    atomic_write_json,
    iter_tmp_files,
    jsonable,
    read_json,
    read_result,
    runs_dir,
)
from .suites import BUILTIN_ALGOS, RunSpec, SuiteError, canonical_algo

__all__ = ["execute_run", "resolve_algo", "check_algos", "check_configs", "environment_info"]

Event = Callable[[dict], None]


# -- environment -----------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment_info() -> dict[str, Any]:
    """Versions (python, offline-zoo, torch, d3rlpy, ...), git commit and the machine of this process.

    Recorded in every ``run.json`` and in the invocations of ``bench.json``; the report's caption
    quotes it.

    Examples:
        >>> info = environment_info()
        >>> sorted(info), info["versions"]["python"] == platform.python_version()
        (['host', 'versions'], True)
        >>> sorted(info["host"])
        ['cpu', 'cpus', 'gpu', 'hostname', 'platform', 'torch_threads']
    """
    from ..versions import RESULT_PACKAGES, versions as package_versions

    versions = package_versions((*RESULT_PACKAGES, "ray"))
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cpus = os.cpu_count() or 1
    host = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
        "cpus": cpus,
        "gpu": None,
        "torch_threads": None,
    }
    torch = sys.modules.get("torch")
    if torch is not None:
        host["torch_threads"] = torch.get_num_threads()
        try:
            if torch.cuda.is_available():
                host["gpu"] = torch.cuda.get_device_name(torch.cuda.current_device())
        except Exception:
            pass
    return {"versions": versions, "host": host}


# -- algorithms ------------------------------------------------------------------------------------
def _cwd_hint(module: str) -> str:
    top = module.split(".")[0]
    here = Path.cwd()
    if (here / f"{top}.py").is_file() or (here / top / "__init__.py").is_file():
        return f"; {top} is in the current directory, which is not searched: pass --import-path . if you trust it"
    return ""


def resolve_algo(name: str, imports: Sequence[str] = ()) -> type:
    """The algorithm class of a suite's algorithm name.

    ``"module:Class"`` imports the class directly (no registration needed); any other name goes
    through :func:`offline_zoo.algos.get_algo` (after importing ``imports``, which may register
    algorithms). Modules are found on ``sys.path`` only: the current directory is not searched
    unless asked (``zoo-bench --import-path .``), because importing a module runs its code.
    Unknown names raise ``KeyError`` with suggestions.

    Examples:
        >>> resolve_algo("dt").__name__             # imports torch and the algorithms  # doctest: +SKIP
        'DT'
        >>> resolve_algo("my_plugin:MyAlgo")
        Traceback (most recent call last):
        ...
        KeyError: "algorithm 'my_plugin:MyAlgo': cannot import module 'my_plugin' (No module named 'my_plugin')"
    """
    for module in imports:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise KeyError(f"imports: cannot import module {module!r} ({e}){_cwd_hint(module)}") from None
    if ":" in name:
        module, _, attr = name.partition(":")
        try:
            obj = importlib.import_module(module)
        except ImportError as e:
            raise KeyError(f"algorithm {name!r}: cannot import module {module!r} ({e}){_cwd_hint(module)}") from None
        for part in attr.split("."):
            if not hasattr(obj, part):
                raise KeyError(f"algorithm {name!r}: module {module!r} has no {attr!r}")
            obj = getattr(obj, part)
        return obj
    from ..algos.registry import get_algo

    return get_algo(name)


def check_algos(specs: Sequence[RunSpec], in_process: bool = True) -> None:
    """Fail early (with suggestions) on algorithm names that no run could resolve.

    Built-in names are known without importing torch; others are imported / looked up here. With
    ``in_process=False`` (runs in worker processes) a class defined in ``__main__`` (a script or a
    notebook) is refused too: a worker cannot import it.

    Examples:
        >>> from offline_zoo.bench.suites import load_suite
        >>> check_algos(load_suite("smoke").expand())          # built-in names: nothing imported
        >>> check_algos([RunSpec("x", "", "reacher2d-medium", 1.0, "Mine", "my_plugin:MyAlgo", 0, {}, "generated", None)])
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: algorithm 'my_plugin:MyAlgo': cannot import module 'my_plugin' (No module named 'my_plugin')
    """
    seen = set()
    for s in specs:
        key = (s.algo, s.imports)
        if key in seen or canonical_algo(s.algo) in BUILTIN_ALGOS:
            continue
        seen.add(key)
        try:
            klass = resolve_algo(s.algo, s.imports)
        except KeyError as e:
            raise SuiteError(e.args[0] if e.args else str(e)) from None
        except ImportError as e:
            raise SuiteError(f"suite imports: {e}") from None
        if not in_process and getattr(klass, "__module__", None) == "__main__":
            raise SuiteError(
                f"algorithm {s.algo!r} ({getattr(klass, '__qualname__', klass)}) is defined in __main__ (a script or a notebook), "
                "which worker processes cannot import: move it into a module and list that module under the suite's "
                "'imports:' (or name it 'module:Class'), or run in this process (InlineExecutor, zoo-bench --workers 0)"
            )


def check_configs(specs: Sequence[RunSpec]) -> None:
    """Build every distinct run config (algorithm, task, suite config and overrides) before anything
    runs, so that an unknown field, a wrong type or a value out of range fails at once (in dry runs
    too) instead of when each run starts; raises :class:`SuiteError` naming the run's column and task.

    Examples:
        >>> from offline_zoo.bench.suites import load_suite, parse_config_overrides
        >>> suite = load_suite("smoke")
        >>> check_configs(suite.expand())      # the shipped suite is fine
        >>> check_configs(suite.expand(config=parse_config_overrides(["DT.n_layer=two"])))
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: config of DT on reacher2d-medium: DTConfig.n_layer='two' has the wrong type (str): it must be an integer
    """
    from ..algos.config import ConfigError, resolve_config
    from ..tasks import get_task

    seen: set[str] = set()
    for s in specs:
        key = repr((s.algo, s.imports, s.task, sorted(s.config.items(), key=lambda kv: kv[0]), s.protocol.steps if s.protocol else None))
        if key in seen:
            continue
        seen.add(key)
        klass = resolve_algo(s.algo, s.imports)
        config_class = getattr(klass, "config_class", None)
        if config_class is None or not hasattr(klass, "name"):
            continue  # not an OfflineAlgo: its constructor checks its own arguments
        overrides = {k: v for k, v in s.config.items() if k != "config_file"}
        if s.protocol is not None:
            overrides["n_steps"] = s.protocol.steps
        try:
            resolve_config(config_class, klass.name, get_task(s.task), overrides, s.config.get("config_file"))
        except (ConfigError, ValueError, KeyError, OSError) as e:
            msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
            raise SuiteError(f"config of {s.label} on {s.task}: {msg}") from None


# -- one run ---------------------------------------------------------------------------------------
def _set_threads(threads: int | None) -> None:
    if not threads:
        return
    torch = sys.modules.get("torch")
    if torch is not None:
        with _suppress():
            torch.set_num_threads(int(threads))


class _suppress:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], Exception)


def _config_dict(config: Any) -> Any:
    if hasattr(config, "to_dict"):
        return config.to_dict()
    import dataclasses

    if dataclasses.is_dataclass(config):
        return dataclasses.asdict(config)
    return config


def execute_run(
    spec: RunSpec,
    out: str | os.PathLike,
    progress: Event | None = None,
    device: str = "auto",
    threads: int | None = None,
    keep_checkpoint: bool = True,
    lock_wait: float = 60.0,
    loggers: Sequence[str] = (),
) -> dict[str, Any]:
    """Train, evaluate and score one run in this process; returns ``{"status", "run_id", ...}``.

    Writes ``OUT/runs/<dirname>/`` (see :mod:`offline_zoo.bench.store`), with the training and
    evaluation metrics in ``metrics.csv`` and ``metrics.jsonl`` (always; `offline_zoo.loggers`)
    and in the ``loggers`` named besides (``"tensorboard"``: ``tensorboard/``; ``"wandb"``: a W&B
    run). A resumed run's logs drop what was logged after its checkpoint. A run whose ``result.json``
    exists is not run again (status ``"finished"``, ``"skipped": True``). An exception inside the
    run is recorded in ``run.json`` (status ``"failed"`` with the traceback) and returned, not
    raised; ``KeyboardInterrupt`` marks it ``"interrupted"`` and propagates.

    Examples:
        One run of a stand-in algorithm whose score is its step count (`StepCountAlgo`; any
        importable class with its interface can be named in a suite as ``"module:Class"``): 20
        steps, evaluated every 10, scored on the last 10:

        >>> from offline_zoo.bench.protocol import Protocol
        >>> spec = RunSpec("demo", "", "reacher2d-medium", 1.0, "Toy", "offline_zoo.testing:StepCountAlgo", 0, {}, "generated",
        ...                Protocol(steps=20, eval_every=10, last_steps=10))
        >>> execute_run(spec, "out")                                    # doctest: +ELLIPSIS
        {'status': 'finished', 'run_id': '...', 'score': 20.0}
        >>> sorted(p.name for p in (runs_dir("out") / spec.dirname).iterdir())
        ['.lock', 'checkpoint.zip', 'curve.json', 'metrics.csv', 'metrics.jsonl', 'result.json', 'run.json']
        >>> [e["step"] for e in read_json(runs_dir("out") / spec.dirname / "curve.json")["evaluations"]]
        [10, 20]
        >>> from offline_zoo.loggers import read_jsonl
        >>> [(e["step"], e["eval/normalized"]) for e in read_jsonl(runs_dir("out") / spec.dirname / "metrics.jsonl") if "eval/normalized" in e]
        [(10, 10.0), (20, 20.0)]
        >>> execute_run(spec, "out")["skipped"]                         # finished runs are not redone
        True
    """
    run_dir = runs_dir(out) / spec.dirname
    run_dir.mkdir(parents=True, exist_ok=True)
    emit = progress or (lambda ev: None)
    with DirectoryLock(run_dir, wait=lock_wait, what="run directory"):
        done, damage = read_result(run_dir / RESULT_FILE)
        if done is not None:
            return {"status": "finished", "run_id": spec.run_id, "skipped": True, "score": done.get("score")}
        if damage:  # kept for inspection, and the run is done again
            os.replace(run_dir / RESULT_FILE, run_dir / f"{RESULT_FILE}.damaged")
            emit({"type": "note", "run_id": spec.run_id, "message": f"{damage}: moved to {RESULT_FILE}.damaged, running again"})
        for tmp in iter_tmp_files(run_dir):
            tmp.unlink(missing_ok=True)
        previous = read_json(run_dir / RUN_FILE, {}) or {}
        t0 = time.time()
        info: dict[str, Any] = {
            "run_id": spec.run_id,
            "name": spec.name,
            "status": "running",
            "attempts": int(previous.get("attempts", 0)) + 1,
            "spec": spec.to_dict(),
            "started_at": _now(),
            "pid": os.getpid(),
            "device": device,
            **environment_info(),
            "previous_attempts": previous.get("previous_attempts", []) + ([_attempt_summary(previous)] if previous else []),
        }
        atomic_write_json(run_dir / RUN_FILE, info)
        emit({"type": "start", "run_id": spec.run_id, "name": spec.name, "total": spec.protocol.steps})
        try:
            result = _train_and_score(spec, run_dir, info, emit, device, threads, keep_checkpoint, t0, tuple(loggers))
        except KeyboardInterrupt:
            info.update(status="interrupted", ended_at=_now(), wall_s=time.time() - t0)
            atomic_write_json(run_dir / RUN_FILE, info)
            raise
        except BaseException as e:  # noqa: BLE001 - a run's failure must not stop the suite
            info.update(status="failed", ended_at=_now(), wall_s=time.time() - t0, error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc())
            atomic_write_json(run_dir / RUN_FILE, info)
            emit({"type": "end", "run_id": spec.run_id, "name": spec.name, "status": "failed", "error": info["error"]})
            return {"status": "failed", "run_id": spec.run_id, "error": info["error"]}
        emit({"type": "end", "run_id": spec.run_id, "name": spec.name, "status": "finished", "score": result["score"], "wall_s": info.get("wall_s")})
        return {"status": "finished", "run_id": spec.run_id, "score": result["score"]}


def _accepts(cls: type, name: str) -> bool:
    import inspect

    try:
        return name in inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def _attempt_summary(run: Mapping[str, Any]) -> dict[str, Any]:
    return {k: run.get(k) for k in ("attempts", "status", "started_at", "ended_at", "error", "resumed_from_step") if k in run}


def _run_logger(spec: RunSpec, run_dir: Path, loggers: Sequence[str], resumed_step: int | None):
    """The run's logger: CSV and JSONL always, plus ``loggers``; a fresh run starts them empty, a
    resumed one drops what was logged after its checkpoint (``purge_step``)."""
    import shutil

    from ..loggers import CSV_FILE, JSONL_FILE, TENSORBOARD_DIR, check_logger, make_logger

    names = list(dict.fromkeys(["csv", "jsonl", *check_logger(list(loggers))]))
    if resumed_step is None:
        for name in (CSV_FILE, JSONL_FILE):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / TENSORBOARD_DIR, ignore_errors=True)
    wandb = {"name": spec.name, "group": spec.suite, "config": jsonable(spec.to_dict())} if "wandb" in names else {}
    return make_logger(names, run_dir, purge_step=None if resumed_step is None else resumed_step + 1, **wandb), names


def _train_and_score(
    spec: RunSpec, run_dir: Path, info: dict, emit: Event, device: str, threads: int | None, keep_checkpoint: bool, t0: float,
    loggers: Sequence[str] = (),
) -> dict:
    protocol = spec.protocol
    cls = resolve_algo(spec.algo, spec.imports)
    _set_threads(threads)
    config = {**spec.config, "n_steps": protocol.steps}
    if spec.subset_seed is not None and _accepts(cls, "subset_seed"):  # a plugin may draw its own data
        config["subset_seed"] = spec.subset_seed
    algo = cls(spec.task, ratio=spec.ratio, seed=spec.seed, source=spec.source, device=device, **config)
    _set_threads(threads)  # torch may only have been imported by the constructor
    curve: list[dict] = []
    ckpt = run_dir / CHECKPOINT_FILE
    resumed = None
    if ckpt.is_file():
        try:
            resumed = cls.load(ckpt, dataset=getattr(algo, "dataset", None), device=device)
        except ValueError as e:  # a damaged checkpoint (e.g. cut by a full disk): start the run again
            os.replace(ckpt, run_dir / f"{CHECKPOINT_FILE}.damaged")
            info.setdefault("notes", []).append(f"{e}; moved to {CHECKPOINT_FILE}.damaged, the run started again from step 0")
            emit({"type": "note", "run_id": spec.run_id, "message": info["notes"][-1]})
    if resumed is not None:
        algo = resumed
        step = int(algo.num_steps)
        curve = [e for e in (read_json(run_dir / CURVE_FILE) or {}).get("evaluations", []) if int(e["step"]) <= step]
        info["resumed_from_step"] = step
    else:
        (run_dir / CURVE_FILE).unlink(missing_ok=True)
    data_info = dict(getattr(algo, "data_info", {}) or {})
    run_logger, logger_names = _run_logger(spec, run_dir, loggers, None if resumed is None else int(algo.num_steps))
    info.update(config=_config_dict(getattr(algo, "config", config)), data=data_info, host=environment_info()["host"], loggers=logger_names)
    try:
        atomic_write_json(run_dir / RUN_FILE, info)
        return _train_loop(spec, run_dir, info, emit, algo, curve, protocol, config, data_info, run_logger, keep_checkpoint, t0)
    finally:
        run_logger.close()


class _StepCallbacks(CallbackList):
    """The run's callbacks, also callable as ``f(algo)`` after each step (a plugin's ``learn`` may
    call its callback as a plain function)."""

    def __call__(self, algo) -> bool:
        return self.on_step(algo)


def _train_loop(spec, run_dir, info, emit, algo, curve, protocol, config, data_info, run_logger, keep_checkpoint, t0) -> dict:
    from ..loggers import LoggerCallback

    ckpt = run_dir / CHECKPOINT_FILE
    # every 100 steps, and at each evaluation step at least (short protocols)
    log_cb = LoggerCallback(run_logger, log_every=max(1, min(100, protocol.eval_every)), close=False)

    train_s = float(info.get("train_s", 0.0))
    eval_s = 0.0
    last_emit = [0.0]

    def on_step(a) -> None:
        now = time.monotonic()
        if now - last_emit[0] >= 0.5:
            last_emit[0] = now
            emit({"type": "progress", "run_id": spec.run_id, "step": int(a.num_steps), "total": protocol.steps,
                  "score": curve[-1].get("score") if curve else None})

    for target in protocol.eval_steps:
        if target <= algo.num_steps:
            continue
        ts = time.time()
        algo.learn(target - int(algo.num_steps), callback=_StepCallbacks([log_cb, LambdaCallback(on_step)]), progress_bar=False)
        train_s += time.time() - ts
        if int(algo.num_steps) != target:
            raise RuntimeError(f"{type(algo).__name__}.learn stopped at step {algo.num_steps} instead of {target}")
        te = time.time()
        entry = _evaluate(algo, protocol, protocol.eval_seed(spec.seed, target))
        eval_s += time.time() - te
        curve.append({"step": target, **entry, "eval_s": round(time.time() - te, 3)})
        log_cb.log_evaluation(target, entry)
        atomic_write_json(run_dir / CURVE_FILE, _curve_file(spec, curve))
        algo.save(ckpt)
        emit({"type": "progress", "run_id": spec.run_id, "step": target, "total": protocol.steps, "score": entry.get("score")})

    if not curve or int(curve[-1]["step"]) != protocol.steps:  # resumed after the last evaluation was dropped
        entry = _evaluate(algo, protocol, protocol.eval_seed(spec.seed, protocol.steps))
        curve.append({"step": protocol.steps, **entry})
        log_cb.log_evaluation(protocol.steps, entry)
        atomic_write_json(run_dir / CURVE_FILE, _curve_file(spec, curve))
    scores = score_run(curve, protocol)
    result = {
        "run_id": spec.run_id,
        "suite": spec.suite,
        "task": spec.task,
        "ratio": spec.ratio,
        "label": spec.label,
        "algo": spec.algo,
        "seed": spec.seed,
        **scores,
        "protocol": protocol.to_dict(),
        "source": data_info.get("source", spec.source),
        "env_id": curve[-1].get("env_id"),  # the evaluation env version (closest to the source's)
        "subset_seed": data_info.get("subsample_seed", config.get("subset_seed")),
        "selection_hash": data_info.get("selection_hash"),
        "steps_trained": int(algo.num_steps),
    }
    if not keep_checkpoint:
        ckpt.unlink(missing_ok=True)
    info.update(
        status="finished", ended_at=_now(), wall_s=round(time.time() - t0, 3), train_s=round(train_s, 3), eval_s=round(eval_s, 3),
        checkpoint=CHECKPOINT_FILE if keep_checkpoint else None, score=scores["score"],
    )
    atomic_write_json(run_dir / RUN_FILE, info)
    atomic_write_json(run_dir / RESULT_FILE, result)  # last: its presence means "finished"
    return result


def _evaluate(algo, protocol, eval_seed: int) -> dict[str, Any]:
    result = algo.evaluate(n_episodes=protocol.eval_episodes, seed=eval_seed)
    d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    d.pop("task", None)
    d.pop("seed", None)
    # episode i of every target was reset with eval_seed + i (Protocol.eval_seed)
    return jsonable({"eval_seed": eval_seed, **d})


def _curve_file(spec: RunSpec, curve: list[dict]) -> dict[str, Any]:
    return {"run_id": spec.run_id, "protocol": spec.protocol.to_dict(), "evaluations": curve}
