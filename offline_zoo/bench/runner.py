"""Running a suite: the run grid, the output directory, resume, and the executor.

:func:`run_suite` plans the runs of a suite, skips those already finished in the output directory,
prepares generated datasets if the suite asks for it, and hands the rest to an executor (local
processes or Ray, :mod:`offline_zoo.bench.executors`), which runs each with
:func:`offline_zoo.bench.worker.execute_run` in its own process (train / evaluate / checkpoint /
score; see that module for how a run resumes).

Examples:
    The smoke suite on two worker processes (a few minutes; see `run_suite` for a runnable
    example):

    >>> from offline_zoo.bench import LocalExecutor, load_suite, run_suite
    >>> run_suite(load_suite("smoke"), "runs/smoke", executor=LocalExecutor(workers=2))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .executors import InlineExecutor, LocalExecutor
from .store import (
    BENCH_FILE,
    CHECKPOINT_FILE,
    DirectoryLock,
    LockedError,
    atomic_write_json,
    jsonable,
    read_json,
    runs_dir,
    scan_runs,
)
from .suites import RunSpec, Suite, SuiteError
# one run lives below this module; its names stay importable from here as before
from .worker import _now, check_algos, check_configs, environment_info, execute_run, resolve_algo  # noqa: F401

__all__ = ["run_suite", "plan_runs", "SuiteRunResult", "prepare_datasets", "BenchSettings"]


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


def _generated_differs(task: str, kwargs: dict) -> str | None:
    """How the generated dataset on disk differs from what ``kwargs`` would generate (None: it does not)."""
    from ..data.generation import generation_request
    from ..data.loaders import generation_metadata

    try:
        meta = generation_metadata(task)
    except (OSError, ValueError):
        return None  # no readable record: nothing to compare
    have = {**(meta.get("requested") or {}), "seed": meta.get("seed"), "noise": meta.get("noise")}
    want = generation_request(task, **kwargs)
    diffs = [f"{k}={have.get(k)!r}" for k, v in want.items() if k in have and have.get(k) != v]
    return ", ".join(diffs) or None


#: rough CPU seconds per gradient step, relative (measured with the quickstart suite, 1 thread);
#: only the order in which runs are handed to the workers depends on it, never a result
_RELATIVE_STEP_COST = {"lamo": 4.0, "cql": 4.0, "wikirl": 2.5, "dt": 2.0, "bcq": 1.0, "iql": 0.6, "td3plusbc": 0.5, "nfq": 0.5, "bc": 0.3}


def _longest_first(specs: list[RunSpec]) -> list[RunSpec]:
    """The runs, the (roughly) longest first, so that workers do not idle at the end behind one long run.

    Examples:
        >>> from offline_zoo.bench.suites import Suite
        >>> suite = Suite.from_dict({"name": "o", "algos": ["BC", "DT", "LaMo"], "seeds": [0], "rows": [{"task": "reacher2d-medium"}]})
        >>> [s.label for s in _longest_first(suite.expand())]
        ['LaMo', 'DT', 'BC']
    """
    from .suites import canonical_algo

    def cost(spec: RunSpec) -> float:
        steps = spec.protocol.steps if spec.protocol else 1
        return steps * _RELATIVE_STEP_COST.get(canonical_algo(spec.algo), 1.0)

    return sorted(specs, key=cost, reverse=True)  # stable: equal costs keep the plan's order


def plan_runs(suite: Suite, algos=None, tasks=None, seeds=None, source=None, scale=None, steps=None, ratios=None, config=None) -> list[RunSpec]:
    """The runs of a suite after the command-line filters (see `Suite.expand`).

    Examples:
        >>> from offline_zoo.bench.suites import load_suite
        >>> runs = plan_runs(load_suite("sparse"), algos=["LaMo"], tasks=["reacher2d"], seeds=[0], scale=0.01)
        >>> [(r.task, r.ratio, r.label, r.protocol.steps) for r in runs]     # 1% of 37,500 steps
        [('reacher2d-medium', 1.0, 'LaMo', 375), ('reacher2d-medium', 0.1, 'LaMo', 375), ('reacher2d-medium', 0.3, 'LaMo', 375)]
    """
    return suite.expand(algos=algos, tasks=tasks, seeds=seeds, source=source, scale=scale, steps=steps, ratios=ratios, config=config)


def prepare_datasets(suite: Suite, specs: list[RunSpec], say: Callable[[str], None] = print, progress: bool | None = None) -> tuple[list[RunSpec], list[str]]:
    """Generate the missing ``generated`` datasets a suite with ``prepare: generate`` needs.

    Returns the runs to keep and notes on rows dropped because their (``optional``) data could not
    be made; a required row whose data cannot be made raises `SuiteError`. A dataset already on
    disk is used as it is; when it was generated with other settings than the suite's, ``say``
    gets a warning. ``progress``: the generation's progress bar (None: its default).

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
    from ..data.generation import generate_dataset, generated_dataset_path, generation_request

    optional = {r.task: r.optional for r in suite.rows}
    for r in suite.rows:
        optional[r.task] = optional.get(r.task, True) and r.optional
    notes: list[str] = []
    dropped: set[str] = set()
    for task in dict.fromkeys(s.task for s in specs if s.source == "generated"):
        kwargs = suite.prepare.get(task, {})
        if (generated_dataset_path(task) / "data").is_dir():
            differs = _generated_differs(task, kwargs)
            if differs:  # used as it is (runs record its hash), but never silently
                cli = {"n_transitions": "--transitions", "n_episodes": "--episodes", "seed": "--seed", "noise": "--noise"}
                asked = " ".join(f"{cli[k]} {v}" for k, v in generation_request(task, **kwargs).items() if v is not None)
                say(f"zoo-bench: warning: the generated {task!r} dataset on disk ({generated_dataset_path(task)}) has "
                    f"{differs}; this suite asks for other data. Using the one on disk (each run records its data "
                    f"hash); `zoo-data generate {task} {asked} --overwrite` would replace it for every suite")
            continue
        say(f"preparing: generating the {task!r} dataset ({', '.join(f'{k}={v}' for k, v in kwargs.items()) or 'defaults'})")
        try:
            generate_dataset(task, progress=progress, **kwargs)
        except Exception as e:  # noqa: BLE001
            if optional.get(task):
                dropped.add(task)
                notes.append(f"{task}: optional row dropped, its generated dataset could not be made ({type(e).__name__}: {e})")
                continue
            raise SuiteError(f"cannot generate the {task!r} dataset the suite needs: {type(e).__name__}: {e}") from e
    return [s for s in specs if s.task not in dropped], notes


def data_status(suite: Suite, specs: list[RunSpec]) -> list[tuple[str, str, bool, str]]:
    """``(task, source, ok, text)`` for each dataset the runs need, before anything runs.

    ``text`` says where the data is, or how to get it (`offline_zoo.data.check_data_available`).
    Generated data that the suite's ``prepare`` section will create counts as available; runs of
    plugin algorithms (``module:Class``), which may bring their own data, are not checked.

    Examples:
        >>> from unittest import mock
        >>> suite = Suite.from_dict({"name": "demo", "algos": ["BC"], "seeds": [0],
        ...     "rows": [{"task": "reacher2d-medium", "source": "generated"}, {"task": "kitchen-partial"}]})
        >>> with mock.patch.dict(os.environ, {"OFFLINE_ZOO_HOME": "home", "MINARI_DATASETS_PATH": "minari",
        ...                                   "OFFLINE_ZOO_OFFLINE": "1"}):
        ...     status = data_status(suite, suite.expand())
        >>> [(task, source, ok) for task, source, ok, _ in status]
        [('reacher2d-medium', 'generated', False), ('kitchen-partial', 'minari', False)]
        >>> status[1][3]        # doctest: +ELLIPSIS
        "Minari dataset 'D4RL/kitchen/partial-v2' (task 'kitchen-partial') is not in the local Minari cache (minari, ...) ... `minari download D4RL/kitchen/partial-v2` ..."
    """
    from ..data.dataset import DatasetError
    from ..data.generation import generatable_tasks
    from ..data.loaders import check_data_available
    from .suites import BUILTIN_ALGOS

    out = []
    # a plugin algorithm (module:Class) may bring its own data; the built-in ones load by task name
    needs = [s for s in specs if s.algo in BUILTIN_ALGOS.values()]
    for task, source in dict.fromkeys((s.task, s.source) for s in needs):
        try:
            ok, text = check_data_available(task, source)
        except (DatasetError, KeyError) as e:  # a task or source the loaders do not know
            ok, text = False, str(e)
        if not ok and source == "generated" and suite.prepare is not None and task in generatable_tasks():
            ok, text = True, "will be generated by the suite's prepare step"
        out.append((task, source, ok, text))
    return out


#: what each source's data is, said before a suite runs
_SOURCE_WORDS = {
    "generated": "made here by offline-zoo's behaviour policies (zoo-data generate), not the paper's D4RL data",
    "minari": "Minari's datasets",
    "d4rl": "D4RL's files (the paper's data)",
    "d4rl-atari": "d4rl-atari's DQN-Replay files (the paper's data)",
}


def plan_summary(specs: list[RunSpec]) -> list[str]:
    """Lines that say, before a suite runs, which data, which language models and which budget its
    runs use (the numbers that come out mean nothing without them).

    Examples:
        >>> from offline_zoo.bench.suites import load_suite
        >>> for line in plan_summary(load_suite("smoke").expand()):
        ...     print(line)     # doctest: +ELLIPSIS
        data: generated for reacher2d-medium, hopper-medium (made here by offline-zoo's behaviour policies (zoo-data generate), not the paper's D4RL data)
        language models: LaMo, Wiki-RL: lm=embedded (ChibiT: GPT-2 of ... layers x ... dim pre-trained on WikiText-2, shipped with offline-zoo; not GPT-2)
        budget: 300 gradient steps per run (7 algorithms), evaluated every 100 steps
    """
    from ..algos.config import resolve_config
    from ..tasks import get_task

    lines = []
    by_source: dict[str, list[str]] = {}
    for s in specs:
        by_source.setdefault(s.source, [])
        if s.task not in by_source[s.source]:
            by_source[s.source].append(s.task)
    for source, tasks in by_source.items():
        lines.append(f"data: {source} for {', '.join(tasks)} ({_SOURCE_WORDS.get(source, source)})")
    lms: dict[str, str] = {}  # label -> its LM, said once per LM
    for s in specs:
        if s.label in lms:
            continue
        klass = resolve_algo(s.algo, s.imports)
        config_class = getattr(klass, "config_class", None)
        if config_class is None or not hasattr(klass, "name") or "lm" not in getattr(config_class, "__dataclass_fields__", {}):
            continue
        overrides = {k: v for k, v in s.config.items() if k != "config_file"}
        c = resolve_config(config_class, klass.name, get_task(s.task), overrides, s.config.get("config_file"))
        lms[s.label] = f"lm={c.lm} ({_lm_words(c.lm)})" if c.pretrained else f"lm={c.lm}, pretrained=False (its architecture with random weights)"
    by_lm: dict[str, list[str]] = {}
    for label, lm in lms.items():
        by_lm.setdefault(lm, []).append(label)
    if by_lm:
        lines.append("language models: " + "; ".join(f"{', '.join(labels)}: {lm}" for lm, labels in by_lm.items()))
    steps = sorted({s.protocol.steps for s in specs if s.protocol is not None})
    every = sorted({s.protocol.eval_every for s in specs if s.protocol is not None})
    if steps:
        n_algos = len({s.label for s in specs})
        lines.append(f"budget: {'/'.join(map(str, steps))} gradient steps per run ({n_algos} algorithms), "
                     f"evaluated every {'/'.join(map(str, every))} steps")
    return lines


def _lm_words(lm: str) -> str:
    from ..lm.loading import EMBEDDED_LM, resolve_lm_dir

    if lm == "embedded" or resolve_lm_dir(lm) == Path(EMBEDDED_LM):
        import json

        cfg = json.loads((Path(EMBEDDED_LM) / "config.json").read_text())
        return f"ChibiT: GPT-2 of {cfg['n_layer']} layers x {cfg['n_embd']} dim pre-trained on WikiText-2, shipped with offline-zoo; not GPT-2"
    return "a local model directory" if resolve_lm_dir(lm) is not None else "from the Hugging Face hub or its cache"


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
        specs, notes = prepare_datasets(suite, specs, say, progress=False if progress is False else None)
        result.planned, result.dropped = specs, notes
        for n in notes:
            say(f"note: {n}")
        for task, src, ok, text in data_status(suite, specs):
            if not ok:  # said before the runs start, not after the first one fails
                say(f"warning: the {task} ({src}) runs will fail: {text}")
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
        todo = _longest_first([s for s in specs if not (s.run_id in records and records[s.run_id].finished)])
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
