"""Running a suite: the run grid, the output directory, resume, and one run from start to result.

:func:`run_suite` plans the runs of a suite, skips those already finished in the output directory,
prepares generated datasets if the suite asks for it, and hands the rest to an executor (local
processes or Ray, :mod:`offline_zoo.bench.executors`). :func:`execute_run` is what an executor calls
for one run, in its own process.

A run trains in chunks of ``eval_every`` steps; after each chunk it evaluates on every return-to-go
target, appends the evaluation to ``curve.json`` and saves ``checkpoint.zip`` (both atomically, in
that order). A run is finished only when ``result.json`` exists (written last). A resumed run restarts
from its last checkpoint (training continues exactly: the algorithms' save/load round trip keeps
weights, optimizer, schedulers and every random generator) and drops any evaluation recorded after
that checkpoint, so the finished curve is the one an uninterrupted run would have written.

Examples:
    The smoke suite on two worker processes (a few minutes; see `run_suite` for a runnable
    example):

    >>> from offline_zoo.bench import LocalExecutor, load_suite, run_suite
    >>> run_suite(load_suite("smoke"), "runs/smoke", executor=LocalExecutor(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import os
import platform
import shutil
import socket
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .protocol import score_run
from .store import (
    BENCH_FILE,
    CHECKPOINT_FILE,
    CURVE_FILE,
    RESULT_FILE,
    RUN_FILE,
    DirectoryLock,
    LockedError,
    atomic_write_json,
    iter_tmp_files,
    jsonable,
    read_json,
    read_result,
    runs_dir,
    scan_runs,
)
from .suites import BUILTIN_ALGOS, RunSpec, Suite, SuiteError, canonical_algo

__all__ = [
    "execute_run",
    "resolve_algo",
    "check_configs",
    "run_suite",
    "plan_runs",
    "SuiteRunResult",
    "environment_info",
    "prepare_datasets",
    "BenchSettings",
]

Event = Callable[[dict], None]


# -- environment -----------------------------------------------------------------------------------
def _git_commit() -> str | None:
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        r = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5)
        commit = r.stdout.strip() or None
        if commit:
            d = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5)
            if d.stdout.strip():
                commit += "+dirty"
        return commit
    except Exception:
        return None


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
    import importlib.metadata as md

    versions: dict[str, Any] = {"python": platform.python_version()}
    for pkg in ("offline-zoo", "torch", "transformers", "peft", "d3rlpy", "gymnasium", "numpy", "minari", "ray"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    versions["git_commit"] = _git_commit()
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
) -> dict[str, Any]:
    """Train, evaluate and score one run in this process; returns ``{"status", "run_id", ...}``.

    Writes ``OUT/runs/<dirname>/`` (see :mod:`offline_zoo.bench.store`). A run whose ``result.json``
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
        ['.lock', 'checkpoint.zip', 'curve.json', 'result.json', 'run.json']
        >>> [e["step"] for e in read_json(runs_dir("out") / spec.dirname / "curve.json")["evaluations"]]
        [10, 20]
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
            result = _train_and_score(spec, run_dir, info, emit, device, threads, keep_checkpoint, t0)
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


def _train_and_score(spec: RunSpec, run_dir: Path, info: dict, emit: Event, device: str, threads: int | None, keep_checkpoint: bool, t0: float) -> dict:
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
    info.update(config=_config_dict(getattr(algo, "config", config)), data=data_info, host=environment_info()["host"])
    atomic_write_json(run_dir / RUN_FILE, info)

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
        algo.learn(target - int(algo.num_steps), callback=on_step, progress_bar=False)
        train_s += time.time() - ts
        if int(algo.num_steps) != target:
            raise RuntimeError(f"{type(algo).__name__}.learn stopped at step {algo.num_steps} instead of {target}")
        te = time.time()
        entry = _evaluate(algo, protocol, protocol.eval_seed(spec.seed, target))
        eval_s += time.time() - te
        curve.append({"step": target, **entry, "eval_s": round(time.time() - te, 3)})
        atomic_write_json(run_dir / CURVE_FILE, _curve_file(spec, curve))
        algo.save(ckpt)
        emit({"type": "progress", "run_id": spec.run_id, "step": target, "total": protocol.steps, "score": entry.get("score")})

    if not curve or int(curve[-1]["step"]) != protocol.steps:  # resumed after the last evaluation was dropped
        entry = _evaluate(algo, protocol, protocol.eval_seed(spec.seed, protocol.steps))
        curve.append({"step": protocol.steps, **entry})
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


# -- a suite ---------------------------------------------------------------------------------------
@dataclass
class BenchSettings:
    """What must match when a suite is resumed in the same directory (different budgets, data
    sources or protocols would mix incomparable runs in one table).

    Examples:
        >>> BenchSettings("smoke", scale=0.01).to_dict()       # stored in OUT/bench.json
        {'suite': 'smoke', 'scale': 0.01, 'steps': None, 'source': None}
        >>> BenchSettings("sparse", config={"LaMo": {"lm": "embedded"}}).to_dict()["config"]
        {'LaMo': {'lm': 'embedded'}}
    """

    suite: str
    scale: float | None = None
    steps: int | None = None
    source: str | None = None
    #: ``zoo-bench --config`` overrides (``{algo: {field: value}}``); None when there are none
    config: dict | None = None

    def to_dict(self) -> dict[str, Any]:
        """The settings as stored in ``bench.json`` (``config`` only when overrides were given)."""
        out = {"suite": self.suite, "scale": self.scale, "steps": self.steps, "source": self.source}
        if self.config:
            out["config"] = jsonable(self.config)
        return out


@dataclass
class SuiteRunResult:
    """What `run_suite` did: counts per status and the runs' outcomes.

    Examples:
        >>> res = SuiteRunResult(Path("out"), planned=[], already_finished=["a"],
        ...                      outcomes={"b": {"status": "finished"}, "c": {"status": "failed"}})
        >>> res.finished, res.failed, res.ok
        (['a', 'b'], ['c'], False)
    """

    out: Path
    planned: list[RunSpec]
    already_finished: list[str] = field(default_factory=list)
    outcomes: dict[str, dict] = field(default_factory=dict)
    dropped: list[str] = field(default_factory=list)
    interrupted: bool = False

    @property
    def failed(self) -> list[str]:
        """Run ids that ran in this call and did not finish."""
        return [k for k, v in self.outcomes.items() if v.get("status") != "finished"]

    @property
    def finished(self) -> list[str]:
        """Run ids finished, before this call or by it."""
        return self.already_finished + [k for k, v in self.outcomes.items() if v.get("status") == "finished"]

    @property
    def ok(self) -> bool:
        """Every planned run finished and nothing was interrupted."""
        return not self.failed and not self.interrupted


def plan_runs(suite: Suite, algos=None, tasks=None, seeds=None, source=None, scale=None, steps=None, ratios=None, config=None) -> list[RunSpec]:
    """The runs of a suite after the command-line filters (see `Suite.expand`).

    Examples:
        >>> from offline_zoo.bench.suites import load_suite
        >>> runs = plan_runs(load_suite("sparse"), algos=["LaMo"], tasks=["reacher2d"], seeds=[0], scale=0.01)
        >>> [(r.task, r.ratio, r.label, r.protocol.steps) for r in runs]     # 1% of 37,500 steps
        [('reacher2d-medium', 1.0, 'LaMo', 375), ('reacher2d-medium', 0.1, 'LaMo', 375), ('reacher2d-medium', 0.3, 'LaMo', 375)]
    """
    return suite.expand(algos=algos, tasks=tasks, seeds=seeds, source=source, scale=scale, steps=steps, ratios=ratios, config=config)


def prepare_datasets(suite: Suite, specs: list[RunSpec], say: Callable[[str], None] = print) -> tuple[list[RunSpec], list[str]]:
    """Generate the missing ``generated`` datasets a suite with ``prepare: generate`` needs.

    Returns the runs to keep and notes on rows dropped because their (``optional``) data could not
    be made; a required row whose data cannot be made raises `SuiteError`.

    Examples:
        Reacher2d's data can be generated; Hopper medium-replay's cannot (only the medium level is
        generated), so its optional row is dropped (datasets go to ``$OFFLINE_ZOO_HOME/datasets``,
        here ``./home``):

        >>> from unittest import mock
        >>> suite = Suite.from_dict({"name": "demo", "algos": ["DT"], "source": "generated", "seeds": [0],
        ...     "prepare": {"generate": {"reacher2d-medium": {"n_episodes": 2}}},
        ...     "rows": [{"task": "reacher2d-medium"}, {"task": "hopper-medium-replay", "optional": True}]})
        >>> with mock.patch.dict(os.environ, {"OFFLINE_ZOO_HOME": "home"}):
        ...     runs, notes = prepare_datasets(suite, suite.expand(), say=lambda line: None)
        >>> [r.task for r in runs], notes       # doctest: +ELLIPSIS
        (['reacher2d-medium'], ["hopper-medium-replay: optional row dropped, its generated dataset could not be made (GenerationError: cannot generate 'hopper-medium-replay': only the medium level is generated for now ...)"])
        >>> Path("home/datasets/offline-zoo/reacher2d-medium-v0/data").is_dir()
        True
    """
    if suite.prepare is None:
        return specs, []
    from ..data.generation import generate_dataset, generated_dataset_path

    optional = {r.task: r.optional for r in suite.rows}
    for r in suite.rows:
        optional[r.task] = optional.get(r.task, True) and r.optional
    notes: list[str] = []
    dropped: set[str] = set()
    for task in dict.fromkeys(s.task for s in specs if s.source == "generated"):
        if (generated_dataset_path(task) / "data").is_dir():
            continue
        kwargs = suite.prepare.get(task, {})
        say(f"preparing: generating the {task!r} dataset ({', '.join(f'{k}={v}' for k, v in kwargs.items()) or 'defaults'})")
        try:
            generate_dataset(task, **kwargs)
        except Exception as e:  # noqa: BLE001
            if optional.get(task):
                dropped.add(task)
                notes.append(f"{task}: optional row dropped, its generated dataset could not be made ({type(e).__name__}: {e})")
                continue
            raise SuiteError(f"cannot generate the {task!r} dataset the suite needs: {type(e).__name__}: {e}") from e
    return [s for s in specs if s.task not in dropped], notes


def _check_settings(out: Path, settings: BenchSettings, resume: bool) -> dict:
    bench = read_json(out / BENCH_FILE)
    existing = scan_runs(out)
    if bench is None and (out / BENCH_FILE).exists():
        raise SuiteError(
            f"{out / BENCH_FILE} is damaged (not valid JSON), so the settings the runs in {out} were made with cannot be "
            f"checked and runs of different settings could be mixed: restore the file, or choose another --out"
        )
    if bench is None:
        if existing and not resume:
            raise SuiteError(f"{out} already holds {len(existing)} run directories: pass --resume to continue, or choose another --out")
        return {}
    if not resume:
        raise SuiteError(f"{out} already holds suite {bench.get('settings', {}).get('suite')!r}: pass --resume to continue it, or choose another --out")
    old = bench.get("settings") or {}
    now = settings.to_dict()
    diff = {k: (old.get(k), now.get(k)) for k in dict.fromkeys([*now, *old]) if old.get(k) != now.get(k)}
    if diff:
        parts = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise SuiteError(f"cannot resume {out} with different settings ({parts}); use the same options or another --out")
    return bench


def run_suite(
    suite: Suite,
    out: str | os.PathLike,
    *,
    resume: bool = False,
    executor: Any = None,
    algos: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    seeds: Sequence[int] | None = None,
    ratios: Sequence[float] | None = None,
    source: str | None = None,
    scale: float | None = None,
    steps: int | None = None,
    config: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool | None = None,
    say: Callable[[str], None] | None = None,
    argv: Sequence[str] | None = None,
) -> SuiteRunResult:
    """Run (or resume) a suite into ``out``; returns a :class:`SuiteRunResult`.

    Without ``resume`` the directory must not hold a suite yet. With ``resume`` the finished runs
    (``result.json`` present) are kept and everything else runs (unfinished runs continue from
    their last checkpoint). ``executor``: a :class:`~offline_zoo.bench.executors.LocalExecutor`
    (default: 1 worker), :class:`~offline_zoo.bench.executors.RayExecutor` or
    :class:`~offline_zoo.bench.executors.InlineExecutor`. ``algos`` ... ``config`` select and adjust
    the runs as in `Suite.expand`; a resumed directory must be given the same budget, source and
    ``config``.

    Examples:
        A suite of two runs of a stand-in algorithm (`StepCountAlgo`, whose score is its step
        count), run in this process:

        >>> from offline_zoo.bench.executors import InlineExecutor
        >>> suite = Suite.from_dict({"name": "demo", "algos": [{"label": "Toy", "algo": "offline_zoo.testing:StepCountAlgo"}],
        ...                          "seeds": [0, 1], "protocol": {"steps": 20, "eval_every": 10, "last_steps": 10},
        ...                          "rows": [{"task": "reacher2d-medium", "ratio": 1.0}]})
        >>> res = run_suite(suite, "out", executor=InlineExecutor(), progress=False)
        [1/2] finished  reacher2d-medium 1 Toy s0  score 20.0
        [2/2] finished  reacher2d-medium 1 Toy s1  score 20.0
        >>> res.ok, len(res.finished)
        (True, 2)

        Running it again needs ``resume=True``; finished runs are kept:

        >>> res = run_suite(suite, "out", executor=InlineExecutor(), progress=False, resume=True)
        resume: 2 of 2 runs already finished, 0 to run
        >>> len(res.already_finished), res.outcomes
        (2, {})
    """
    from .executors import InlineExecutor, LocalExecutor
    from .progress import ProgressView

    out = Path(out)
    say = say or print
    executor = executor or LocalExecutor(workers=1)
    specs = plan_runs(suite, algos, tasks, seeds, source, scale, steps, ratios, config)
    check_algos(specs, in_process=isinstance(executor, InlineExecutor))
    check_configs(specs)
    settings = BenchSettings(suite.name, scale, steps, source, dict(config) if config else None)
    out.mkdir(parents=True, exist_ok=True)
    result = SuiteRunResult(out, specs)
    try:
        lock = DirectoryLock(out, wait=0, what="benchmark directory").__enter__()
    except LockedError as e:
        raise SuiteError(str(e)) from None
    try:
        bench = _check_settings(out, settings, resume)
        specs, notes = prepare_datasets(suite, specs, say)
        result.planned, result.dropped = specs, notes
        for n in notes:
            say(f"note: {n}")
        planned = {**(bench.get("planned") or {}), **{s.run_id: s.to_dict() for s in specs}}
        invocation = {"at": _now(), "argv": list(argv) if argv is not None else None, "executor": getattr(executor, "describe", lambda: {})(), **environment_info()}
        atomic_write_json(out / BENCH_FILE, {
            "settings": settings.to_dict(),
            "suite": suite.describe(),
            "planned": planned,
            "dropped": notes,
            "invocations": (bench.get("invocations") or []) + [invocation],
        })
        records = scan_runs(out)
        todo = [s for s in specs if not (s.run_id in records and records[s.run_id].finished)]
        result.already_finished = [s.run_id for s in specs if s not in todo]
        if result.already_finished:
            say(f"resume: {len(result.already_finished)} of {len(specs)} runs already finished, {len(todo)} to run")
        view = ProgressView(len(specs), len(result.already_finished), suite.name, enabled=progress, say=say)
        t0 = time.time()
        with view:
            try:
                result.outcomes = executor.run(todo, out, view.handle)
            except KeyboardInterrupt:
                result.interrupted = True
                result.outcomes = dict(getattr(executor, "outcomes", {}) or {})
        bench_now = read_json(out / BENCH_FILE) or {}
        if bench_now.get("invocations"):
            bench_now["invocations"][-1].update(
                ended_at=_now(), wall_s=round(time.time() - t0, 1), ran=len(todo), interrupted=result.interrupted,
                finished=sum(1 for o in result.outcomes.values() if o.get("status") == "finished"),
            )
            atomic_write_json(out / BENCH_FILE, bench_now)
    finally:
        lock.__exit__(None, None, None)
    return result


def remove_checkpoints(out: str | os.PathLike) -> int:
    """Delete the checkpoints of finished runs (they can be large); returns how many were removed."""
    n = 0
    for rec in scan_runs(out).values():
        if rec.finished and (rec.path / CHECKPOINT_FILE).is_file():
            (rec.path / CHECKPOINT_FILE).unlink()
            n += 1
    return n


def clear_run(out: str | os.PathLike, spec: RunSpec) -> None:
    """Forget a run entirely (its directory is removed), e.g. to re-run it after a code change."""
    shutil.rmtree(runs_dir(out) / spec.dirname, ignore_errors=True)
