"""Benchmark suites: YAML files that say which runs make a table, expanded into a grid of runs.

A suite is data, not code (``benchmarks/suites/<name>.yaml``); adding one needs no Python::

    name: sparse
    title: "Table 1: sparse-reward tasks"
    reference: table1_sparse          # table of benchmarks/paper_results.yaml shown beside ours
    seeds: [0, 1, 2]
    source: null                      # dataset source of every row (null: each task's default)
    protocol:                         # see offline_zoo.bench.protocol
      steps: 100000
      eval_every: 2500
      last_steps: 20000
      by_task:                        # overrides keyed by family, domain or task name
        reacher2d: {steps: 37500, last_steps: 12500}
    algos: [LaMo, DT, Wiki-RL, CQL]   # or {label: "LaMo w/o MLP", algo: lamo, config: {...}}
    config:                           # per-algorithm config for every row ("*": every algorithm)
      LaMo: {eval_episodes: 20}
    groups:                           # table sections, each with its own Average row
      - name: Full data
        rows:
          - {task: kitchen-partial, ratio: 1.0, config: {LaMo: {lm: gpt2-medium}}}
          - {task: reacher2d-medium, ratios: [0.1, 0.3]}

Other keys: ``description``, ``rows`` (instead of ``groups``: one section), ``imports`` (Python
modules imported before the algorithms are looked up: they may register algorithms),
``prepare: generate`` (make missing ``generated`` datasets first; or a mapping task ->
``generate_dataset`` keywords), ``target_selection`` (``cell`` or ``run``), and per row
``optional: true`` (drop the row when its data cannot be prepared), ``algos`` (a subset of the
suite's algorithms for this row), ``source``.

String config values may use ``${VAR}``, ``${VAR:-default}`` and ``~``.

Suites are found by name in ``$OFFLINE_ZOO_SUITES`` (directories, ``os.pathsep``-separated), then
``./benchmarks/suites``, then the ``benchmarks/suites`` of the offline-zoo checkout; a path to a
YAML file works too.

Examples:
    >>> suite = load_suite("sparse")          # Table 1 of the paper
    >>> len(suite.expand())                   # rows x algorithms x seeds
    189
    >>> len(suite.expand(algos=["LaMo", "DT"], tasks=["kitchen"], seeds=[0]))   # 6 Kitchen rows
    12
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import yaml

from ..data.dataset import default_subset_seed
from ..tasks import get_task
from .protocol import TARGET_SELECTIONS, Protocol

__all__ = [
    "SuiteError",
    "Suite",
    "SuiteAlgo",
    "SuiteRow",
    "RunSpec",
    "suite_dirs",
    "list_suites",
    "find_suite",
    "load_suite",
    "find_reference",
    "canonical_algo",
    "parse_config_overrides",
    "BUILTIN_ALGOS",
    "BUILTIN_ACTION_SPACES",
]


class SuiteError(ValueError):
    """A suite file or a run selection that cannot be used (the message says why and how to fix it).

    A ``ValueError``; ``zoo-bench`` prints the message and exits with status 2.

    Examples:
        >>> Suite.from_dict({"name": "x", "algos": ["DT"], "rows": [{"task": "reacher2d-medium", "ratoi": 0.5}]})
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: suite x group 1 row #1: unknown key(s) 'ratoi'. ('ratoi': did you mean 'ratio'?) Valid: algos, config, optional, ratio, ratios, source, task
    """


# Built-in algorithm names and aliases, canonicalized as offline_zoo.algos.registry does; known here so
# that expanding a suite needs no import of torch / d3rlpy. Other names are checked with the registry.
BUILTIN_ALGOS: dict[str, str] = {
    "lamo": "lamo",
    "dt": "dt",
    "decisiontransformer": "dt",
    "wikirl": "wikirl",
    "wikipediarl": "wikirl",
    "cql": "cql",
    "iql": "iql",
    "td3plusbc": "td3+bc",
    "td3bc": "td3+bc",
    "bcq": "bcq",
    "nfq": "nfq",
    "bc": "bc",
}


# action spaces of the built-in algorithms (a mismatch is reported before anything runs)
BUILTIN_ACTION_SPACES: dict[str, frozenset[str]] = {
    "iql": frozenset({"continuous"}),
    "td3+bc": frozenset({"continuous"}),
    "nfq": frozenset({"discrete"}),
}


def parse_config_overrides(items: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Parse ``zoo-bench --config`` items, ``ALGO.FIELD=VALUE``, into ``{ALGO: {FIELD: VALUE}}``.

    ``ALGO`` is a label or algorithm name of the suite (any spelling) or ``*`` for every algorithm;
    ``VALUE`` is read as YAML (``4`` is an int, ``[64, 64]`` a list, ``embedded`` a string).

    Examples:
        >>> parse_config_overrides(["LaMo.lm=embedded", "*.batch_size=16", "cql.hidden_units=[64, 64]"])
        {'LaMo': {'lm': 'embedded'}, '*': {'batch_size': 16}, 'cql': {'hidden_units': [64, 64]}}
        >>> parse_config_overrides(["lm=embedded"])
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: --config 'lm=embedded': write ALGO.FIELD=VALUE, e.g. LaMo.lm=embedded (ALGO '*' means every algorithm)
    """
    out: dict[str, dict[str, Any]] = {}
    for item in items:
        key, eq, raw = str(item).partition("=")
        algo, dot, fld = key.strip().rpartition(".")
        if not eq or not dot or not algo or not fld.isidentifier():
            raise SuiteError(f"--config {item!r}: write ALGO.FIELD=VALUE, e.g. LaMo.lm=embedded (ALGO '*' means every algorithm)")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as e:
            raise SuiteError(f"--config {item!r}: the value is not valid YAML ({e.__class__.__name__})") from None
        out.setdefault(algo, {})[fld] = value
    return out


def canonical_algo(name: str) -> str:
    """Lower-case, '+' -> 'plus', punctuation dropped (the registry's rule).

    Examples:
        >>> canonical_algo("TD3+BC"), canonical_algo("Wiki-RL")
        ('td3plusbc', 'wikirl')
    """
    return re.sub(r"[^a-z0-9]", "", str(name).lower().replace("+", "plus"))


# -- where suites live -----------------------------------------------------------------------------
def _checkout_benchmarks() -> Path:
    return Path(__file__).resolve().parents[2] / "benchmarks"


def suite_dirs() -> list[Path]:
    """Directories searched for ``<name>.yaml``, first match wins.

    ``$OFFLINE_ZOO_SUITES`` (``os.pathsep``-separated), then ``./benchmarks/suites``, then the
    ``benchmarks/suites`` of the offline-zoo checkout; only existing directories are listed.

    Examples:
        >>> from unittest import mock
        >>> Path("my_suites").mkdir()
        >>> with mock.patch.dict(os.environ, {"OFFLINE_ZOO_SUITES": "my_suites"}):
        ...     dirs = suite_dirs()
        >>> dirs[0], dirs[-1].parts[-2:]
        (PosixPath('my_suites'), ('benchmarks', 'suites'))
    """
    dirs = [Path(p).expanduser() for p in os.environ.get("OFFLINE_ZOO_SUITES", "").split(os.pathsep) if p]
    dirs += [Path.cwd() / "benchmarks" / "suites", _checkout_benchmarks() / "suites"]
    out: list[Path] = []
    for d in dirs:
        if d.is_dir() and d.resolve() not in [o.resolve() for o in out]:
            out.append(d)
    return out


def list_suites() -> dict[str, Path]:
    """Every suite that can be named: ``{name: file}``.

    Examples:
        >>> suites = list_suites()
        >>> "smoke" in suites, suites["sparse"].name
        (True, 'sparse.yaml')
    """
    found: dict[str, Path] = {}
    for d in suite_dirs():
        for f in sorted(d.glob("*.y*ml")):
            found.setdefault(f.stem, f)
    return found


def find_suite(name: str | os.PathLike) -> Path:
    """The YAML file of a suite name (or a path); unknown names raise with suggestions.

    Examples:
        >>> find_suite("smoke").name
        'smoke.yaml'
        >>> find_suite("smok")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: unknown suite 'smok'. Did you mean 'smoke', ...? Available: ...
    """
    p = Path(name).expanduser()
    if p.suffix in (".yaml", ".yml") or p.is_file():
        if not p.is_file():
            raise SuiteError(f"suite file {str(p)!r} does not exist")
        return p
    suites = list_suites()
    if str(name) in suites:
        return suites[str(name)]
    close = difflib.get_close_matches(str(name), list(suites), n=3, cutoff=0.4)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    where = ", ".join(str(d) for d in suite_dirs()) or "(no suite directory found: set $OFFLINE_ZOO_SUITES)"
    raise SuiteError(f"unknown suite {str(name)!r}.{hint} Available: {', '.join(suites) or 'none'} (searched {where})")


def find_reference(path: str | os.PathLike | None = None) -> Path | None:
    """``benchmarks/paper_results.yaml`` (published values shown beside ours), or None if absent.

    ``path`` names another file (which must exist).

    Examples:
        >>> find_reference().name
        'paper_results.yaml'
        >>> find_reference("mine.yaml")
        Traceback (most recent call last):
        ...
        offline_zoo.bench.suites.SuiteError: reference file 'mine.yaml' does not exist
    """
    if path is not None:
        p = Path(path).expanduser()
        if not p.is_file():
            raise SuiteError(f"reference file {str(p)!r} does not exist")
        return p
    for d in suite_dirs():
        f = d.parent / "paper_results.yaml"
        if f.is_file():
            return f
    f = _checkout_benchmarks() / "paper_results.yaml"
    return f if f.is_file() else None


# -- values ----------------------------------------------------------------------------------------
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def _expand(value: Any) -> Any:
    """``${VAR}``, ``${VAR:-default}`` and a leading ``~`` in strings, recursively."""
    if isinstance(value, str):
        def sub(m):
            v = os.environ.get(m.group(1))
            if v is None or v == "":
                if m.group(2) is None:
                    raise SuiteError(f"environment variable ${{{m.group(1)}}} used in the suite is not set (write ${{{m.group(1)}:-default}} for a default)")
                return m.group(2)
            return v

        out = _VAR.sub(sub, value)
        return os.path.expanduser(out) if out.startswith("~") else out
    if isinstance(value, Mapping):
        return {k: _expand(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_expand(v) for v in value]
    return value


def _ratio(value: Any, where: str) -> float:
    try:
        r = float(value)
    except (TypeError, ValueError):
        raise SuiteError(f"{where}: ratio {value!r} is not a number") from None
    if not 0.0 < r <= 1.0:
        raise SuiteError(f"{where}: ratio {value!r} is outside (0, 1] (the fraction of trajectories kept)")
    return r


def _check_keys(d: Mapping, valid: Iterable[str], where: str) -> None:
    valid = set(valid)
    unknown = [k for k in d if k not in valid]
    if unknown:
        hints = "".join(f" ({u!r}: did you mean {m[0]!r}?)" for u in unknown if (m := difflib.get_close_matches(str(u), valid, n=1)))
        raise SuiteError(f"{where}: unknown key(s) {', '.join(map(repr, unknown))}.{hints} Valid: {', '.join(sorted(valid))}")


def _task(name: Any, where: str) -> str:
    try:
        return get_task(str(name)).name
    except KeyError as e:
        raise SuiteError(f"{where}: {e.args[0]}") from None


# -- the suite -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class SuiteAlgo:
    """A column of the table: a display ``label``, the algorithm (registry name or ``module:Class``)
    and config overrides applied to every row.

    Examples:
        >>> suite = Suite.from_dict({"name": "x", "rows": [{"task": "reacher2d-medium"}],
        ...     "algos": ["TD3+BC", {"label": "LaMo (tiny LM)", "algo": "lamo", "config": {"lm": "embedded"}}]})
        >>> suite.algos
        [SuiteAlgo(label='TD3+BC', algo='td3+bc', config={}), SuiteAlgo(label='LaMo (tiny LM)', algo='lamo', config={'lm': 'embedded'})]
    """

    label: str
    algo: str
    config: dict = field(default_factory=dict)


@dataclass(frozen=True)
class SuiteRow:
    """A (task, ratio) row of one group, with per-algorithm config overrides.

    Examples:
        >>> suite = Suite.from_dict({"name": "x", "algos": ["DT", "CQL"], "groups": [
        ...     {"name": "low data", "rows": [{"task": "reacher2d-medium", "ratios": [0.1, 0.3],
        ...                                    "algos": ["DT"], "config": {"DT": {"context_len": 5}}}]}]})
        >>> [(r.group, r.task, r.ratio, r.algos, r.config) for r in suite.rows]
        [('low data', 'reacher2d-medium', 0.1, ('DT',), {'DT': {'context_len': 5}}), ('low data', 'reacher2d-medium', 0.3, ('DT',), {'DT': {'context_len': 5}})]
    """

    group: str
    task: str
    ratio: float
    config: dict = field(default_factory=dict)  # label (or "*") -> overrides
    algos: tuple[str, ...] | None = None  # labels; None = every algorithm of the suite
    optional: bool = False
    source: str | None = None

    @property
    def key(self) -> tuple[str, float]:
        """``(task, ratio)``: what identifies a row of the table."""
        return (self.task, self.ratio)


_SUITE_KEYS = {
    "name", "title", "description", "reference", "seeds", "source", "protocol", "algos", "config",
    "groups", "rows", "imports", "prepare", "target_selection", "notes",
}
_ROW_KEYS = {"task", "ratio", "ratios", "config", "algos", "optional", "source"}
_ALGO_KEYS = {"label", "algo", "config"}
_PROTOCOL_KEYS = {"steps", "eval_every", "last_steps", "eval_episodes", "by_task"}


@dataclass
class Suite:
    """A parsed suite file. `expand` gives the runs; see the module docstring for the format.

    Examples:
        >>> suite = Suite.from_dict({
        ...     "name": "demo", "algos": ["DT", "CQL"], "seeds": [0, 1],
        ...     "protocol": {"steps": 1000, "eval_every": 100, "last_steps": 200,
        ...                  "by_task": {"reacher2d": {"steps": 500}}},
        ...     "rows": [{"task": "reacher2d-medium", "ratios": [0.1, 1.0]}, {"task": "hopper-medium"}]})
        >>> len(suite.expand()), suite.groups
        (12, [''])
        >>> suite.protocol_for("reacher2d-medium")
        Protocol(steps=500, eval_every=100, last_steps=200, eval_episodes=None)
        >>> suite.expand(algos=["cql"], tasks=["hopper"], seeds=[0], scale=0.1)  # doctest: +ELLIPSIS
        [RunSpec(hopper-medium 1 CQL s0, steps=100, id=...)]
    """

    name: str
    title: str
    algos: list[SuiteAlgo]
    rows: list[SuiteRow]
    seeds: list[int]
    protocol: dict[str, Any]
    source: str | None = None
    reference: str | None = None
    description: str = ""
    imports: list[str] = field(default_factory=list)
    prepare: dict[str, dict] | None = None
    target_selection: str = "cell"
    path: str | None = None
    raw: dict = field(default_factory=dict)

    # -- parsing ---------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None, path: str | None = None) -> "Suite":
        """Validate a suite mapping (as read from YAML)."""
        if not isinstance(data, Mapping):
            raise SuiteError(f"suite {name or path}: the file must hold a mapping (name, algos, groups, ...)")
        where = f"suite {data.get('name') or name or path}"
        _check_keys(data, _SUITE_KEYS, where)
        name = str(data.get("name") or name or "suite")
        algos = cls._parse_algos(data.get("algos"), where)
        labels = [a.label for a in algos]
        seeds = data.get("seeds", [0, 1, 2])
        if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise SuiteError(f"{where}: seeds must be a non-empty list of integers, got {seeds!r}")
        proto = dict(data.get("protocol") or {})
        _check_keys(proto, _PROTOCOL_KEYS, f"{where} protocol")
        by_task = proto.get("by_task") or {}
        if not isinstance(by_task, Mapping):
            raise SuiteError(f"{where} protocol.by_task must map a family, domain or task name to protocol fields")
        try:
            Protocol.from_dict({k: v for k, v in proto.items() if k != "by_task"})
            for k, v in by_task.items():
                Protocol.from_dict({**{k2: v2 for k2, v2 in proto.items() if k2 != "by_task"}, **(v or {})})
        except (ValueError, TypeError) as e:
            raise SuiteError(f"{where} protocol: {e}") from None
        config = _expand(dict(data.get("config") or {}))
        cls._check_config_keys(config, labels, f"{where} config")
        algos = [SuiteAlgo(a.label, a.algo, {**config.get("*", {}), **a.config, **config.get(a.label, {})}) for a in algos]
        rows = cls._parse_rows(data, labels, where)
        if not rows:
            raise SuiteError(f"{where}: no rows (give 'groups: [{{name, rows: [...]}}]' or 'rows: [...]')")
        seen: dict[tuple, str] = {}
        for r in rows:
            if r.key in seen:
                raise SuiteError(f"{where}: row {r.task} ratio {r.ratio:g} appears twice (groups {seen[r.key]!r} and {r.group!r})")
            seen[r.key] = r.group
        ts = data.get("target_selection", "cell")
        if ts not in TARGET_SELECTIONS:
            raise SuiteError(f"{where}: target_selection={ts!r}; use one of {', '.join(TARGET_SELECTIONS)}")
        imports = data.get("imports") or []
        if isinstance(imports, str):
            imports = [imports]
        return cls(
            name=name,
            title=str(data.get("title") or name),
            algos=algos,
            rows=rows,
            seeds=[int(s) for s in seeds],
            protocol=proto,
            source=data.get("source"),
            reference=data.get("reference"),
            description=str(data.get("description") or ""),
            imports=[str(m) for m in imports],
            prepare=cls._parse_prepare(data.get("prepare"), where),
            target_selection=ts,
            path=path,
            raw=dict(data),
        )

    @staticmethod
    def _parse_algos(value, where) -> list[SuiteAlgo]:
        if not value or not isinstance(value, list):
            raise SuiteError(f"{where}: 'algos' must be a non-empty list (names, or {{label, algo, config}})")
        out: list[SuiteAlgo] = []
        for a in value:
            if isinstance(a, str):
                out.append(SuiteAlgo(a, _algo_name(a), {}))
            elif isinstance(a, Mapping):
                _check_keys(a, _ALGO_KEYS, f"{where} algo {a.get('label', a)}")
                if "label" not in a and "algo" not in a:
                    raise SuiteError(f"{where}: algorithm entry {dict(a)!r} needs 'algo' (and optionally 'label', 'config')")
                label = str(a.get("label") or a["algo"])
                out.append(SuiteAlgo(label, _algo_name(str(a.get("algo") or label)), _expand(dict(a.get("config") or {}))))
            else:
                raise SuiteError(f"{where}: algorithm entry {a!r} must be a name or a mapping")
        labels = [a.label for a in out]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise SuiteError(f"{where}: algorithm label(s) {', '.join(dup)} appear twice; give variants distinct 'label's")
        return out

    @staticmethod
    def _check_config_keys(config: Mapping, labels: Sequence[str], where: str) -> None:
        for k, v in config.items():
            if k != "*" and k not in labels:
                close = difflib.get_close_matches(str(k), labels, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise SuiteError(f"{where}: {k!r} is not one of the suite's algorithms.{hint} Algorithms: {', '.join(labels)} (or '*' for all)")
            if not isinstance(v, Mapping):
                raise SuiteError(f"{where}: the config of {k!r} must be a mapping of config fields")

    @classmethod
    def _parse_rows(cls, data, labels, where) -> list[SuiteRow]:
        if "groups" in data and "rows" in data:
            raise SuiteError(f"{where}: give 'groups' or 'rows', not both")
        if "groups" in data:
            groups = data["groups"]
            if not isinstance(groups, list):
                raise SuiteError(f"{where}: 'groups' must be a list of {{name, rows}}")
        else:
            groups = [{"name": "", "rows": data.get("rows") or []}]
        rows: list[SuiteRow] = []
        for gi, g in enumerate(groups):
            if not isinstance(g, Mapping) or not isinstance(g.get("rows"), list):
                raise SuiteError(f"{where}: group #{gi + 1} must be {{name: ..., rows: [...]}}")
            _check_keys(g, {"name", "rows"}, f"{where} group #{gi + 1}")
            gname = str(g.get("name") or "")
            for ri, r in enumerate(g["rows"]):
                rw = f"{where} group {gname or gi + 1} row #{ri + 1}"
                if not isinstance(r, Mapping):
                    raise SuiteError(f"{rw}: a row is a mapping {{task, ratio, ...}}")
                _check_keys(r, _ROW_KEYS, rw)
                if "task" not in r:
                    raise SuiteError(f"{rw}: missing 'task'")
                task = _task(r["task"], rw)
                if "ratio" in r and "ratios" in r:
                    raise SuiteError(f"{rw}: give 'ratio' or 'ratios', not both")
                ratios = r.get("ratios", [r.get("ratio", 1.0)])
                if not isinstance(ratios, list) or not ratios:
                    raise SuiteError(f"{rw}: 'ratios' must be a non-empty list")
                config = _expand(dict(r.get("config") or {}))
                cls._check_config_keys(config, labels, f"{rw} config")
                row_algos = r.get("algos")
                if row_algos is not None:
                    bad = [a for a in row_algos if a not in labels]
                    if bad:
                        raise SuiteError(f"{rw}: algos {bad} are not in the suite's algorithms {labels}")
                    row_algos = tuple(row_algos)
                for ratio in ratios:
                    rows.append(SuiteRow(gname, task, _ratio(ratio, rw), config, row_algos, bool(r.get("optional", False)), r.get("source")))
        return rows

    @staticmethod
    def _parse_prepare(value, where) -> dict[str, dict] | None:
        if value in (None, False):
            return None
        if value == "generate" or value is True:
            return {}
        if isinstance(value, Mapping) and set(value) == {"generate"}:
            per_task = value["generate"] or {}
            if not isinstance(per_task, Mapping):
                raise SuiteError(f"{where}: prepare.generate must map task names to generate_dataset keywords")
            return {_task(t, f"{where} prepare"): dict(kw or {}) for t, kw in per_task.items()}
        raise SuiteError(f"{where}: prepare must be 'generate' or {{generate: {{task: {{n_episodes: ...}}}}}}, got {value!r}")

    # -- protocol ----------------------------------------------------------------------------------
    def protocol_for(self, task: str, scale: float | None = None, steps: int | None = None) -> Protocol:
        """The protocol of a task: suite protocol < by_task (family < domain < task), then the budget.

        ``steps`` (exact step count) wins over ``scale`` (a factor on steps, interval and window).
        """
        t = get_task(task)
        base = {k: v for k, v in self.protocol.items() if k != "by_task"}
        by_task = self.protocol.get("by_task") or {}
        for key in (t.family, t.domain, t.name):
            base.update(by_task.get(key) or {})
        try:
            p = Protocol.from_dict(base)
            if steps is not None:
                return p.with_steps(steps)
            if scale is not None:
                return p.scaled(scale)
        except ValueError as e:
            raise SuiteError(str(e)) from None
        return p

    # -- the grid ----------------------------------------------------------------------------------
    def expand(
        self,
        algos: Sequence[str] | None = None,
        tasks: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        source: str | None = None,
        scale: float | None = None,
        steps: int | None = None,
        ratios: Sequence[float] | None = None,
        config: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> list["RunSpec"]:
        """Every run of the suite (rows x algorithms x seeds), optionally filtered.

        ``algos``: labels or algorithm names (``td3+bc``, ``TD3PlusBC``); ``tasks``: task names,
        domains (``hopper``) or families (``mujoco``); ``seeds``: seeds to run (any integers);
        ``source``: dataset source for every row; ``scale`` / ``steps``: budget (see
        :meth:`protocol_for`); ``config``: ``{label or name or "*": {field: value}}`` applied on
        top of the suite's and the rows' config (``zoo-bench --config``, see `parse_config_overrides`).

        Examples:
            >>> suite = load_suite("sparse")
            >>> runs = suite.expand(algos=["LaMo"], tasks=["kitchen-partial"], ratios=[1.0], seeds=[0],
            ...                     config={"lamo": {"lora_rank": 4}})
            >>> runs[0].config      # the suite's corpus, the row's GPT-2 medium, and the override
            {'corpus': 'wikitext-103', 'lm': 'gpt2-medium', 'lora_rank': 4}
        """
        if scale is not None and steps is not None:
            raise SuiteError("give --steps or --scale, not both")
        labels = self._select_algos(algos)
        overrides = self._resolve_overrides(config or {})
        rows = self._select_rows(tasks, ratios)
        seeds = list(self.seeds) if seeds is None else [int(s) for s in seeds]
        if not seeds:
            raise SuiteError("no seeds selected")
        by_label = {a.label: a for a in self.algos}
        runs: list[RunSpec] = []
        for row in rows:
            protocol = self.protocol_for(row.task, scale=scale, steps=steps)
            src = source or row.source or self.source or get_task(row.task).default_source
            task = get_task(row.task)
            if src not in task.sources:
                raise SuiteError(task.missing_source_message(src))
            space = "discrete" if task.discrete else "continuous"
            for label in labels:
                if row.algos is not None and label not in row.algos:
                    continue
                a = by_label[label]
                if space not in BUILTIN_ACTION_SPACES.get(a.algo, frozenset({space})):
                    raise SuiteError(
                        f"{label} does not support {space} actions (task {row.task!r}); give the row an 'algos' list "
                        f"without it, or filter with --algos / --tasks"
                    )
                config = {**a.config, **row.config.get("*", {}), **row.config.get(label, {}), **overrides.get(label, {})}
                for seed in seeds:
                    runs.append(RunSpec(self.name, row.group, row.task, row.ratio, label, a.algo, int(seed), config, src, protocol,
                                        tuple(self.imports), default_subset_seed(task, int(seed))))
        return runs

    def _labels_of(self, want: str) -> list[str]:
        """The suite's algorithm labels that ``want`` names (a label, or an algorithm in any spelling)."""
        labels = [a.label for a in self.algos]
        matches = [a.label for a in self.algos if want == a.label or canonical_algo(want) in (canonical_algo(a.label), canonical_algo(a.algo))]
        if not matches:
            close = difflib.get_close_matches(str(want), labels, n=3, cutoff=0.3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise SuiteError(f"algorithm {want!r} is not in suite {self.name!r}.{hint} Its algorithms: {', '.join(labels)}")
        return matches

    def _select_algos(self, algos: Sequence[str] | None) -> list[str]:
        labels = [a.label for a in self.algos]
        if not algos:
            return labels
        chosen: list[str] = []
        for want in algos:
            chosen += [m for m in self._labels_of(want) if m not in chosen]
        return [l for l in labels if l in chosen]

    def _resolve_overrides(self, config: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
        """``{label or name or "*": fields}`` -> ``{label: fields}``; ``"*"`` first, named algorithms win."""
        out: dict[str, dict[str, Any]] = {}
        for want in sorted(config, key=lambda k: k != "*"):
            for label in ([a.label for a in self.algos] if want == "*" else self._labels_of(want)):
                out.setdefault(label, {}).update(config[want])
        return out

    def _select_rows(self, tasks: Sequence[str] | None, ratios: Sequence[float] | None) -> list[SuiteRow]:
        rows = list(self.rows)
        if tasks:
            keep: set[str] = set()
            names = sorted({r.task for r in rows})
            for want in tasks:
                hit = [r.task for r in rows if want in (r.task, get_task(r.task).domain, get_task(r.task).family)]
                if not hit:
                    vocab = names + sorted({get_task(n).domain for n in names} | {get_task(n).family for n in names})
                    close = difflib.get_close_matches(str(want), vocab, n=3, cutoff=0.4)
                    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
                    raise SuiteError(f"task {want!r} is not in suite {self.name!r}.{hint} Its tasks: {', '.join(names)}")
                keep.update(hit)
            rows = [r for r in rows if r.task in keep]
        if ratios:
            want_r = [float(x) for x in ratios]
            rows = [r for r in rows if any(abs(r.ratio - x) < 1e-12 for x in want_r)]
            if not rows:
                raise SuiteError(f"no row of suite {self.name!r} has ratio in {want_r}")
        return rows

    @property
    def groups(self) -> list[str]:
        """Group names in file order."""
        return list(dict.fromkeys(r.group for r in self.rows))

    def describe(self) -> dict[str, Any]:
        """What the report needs from the suite (stored in the output directory's ``bench.json``)."""
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "reference": self.reference,
            "target_selection": self.target_selection,
            "seeds": self.seeds,
            "algos": [{"label": a.label, "algo": a.algo} for a in self.algos],
            "rows": [{"group": r.group, "task": r.task, "ratio": r.ratio, "algos": list(r.algos) if r.algos else None} for r in self.rows],
            "path": self.path,
        }


def _algo_name(name: str) -> str:
    """Registry name for a built-in (any spelling), the name unchanged otherwise (checked at run time)."""
    return BUILTIN_ALGOS.get(canonical_algo(name), name)


def load_suite(name_or_path: str | os.PathLike) -> Suite:
    """Read and validate a suite by name (``"sparse"``) or path; see the module docstring.

    Examples:
        >>> smoke = load_suite("smoke")
        >>> smoke.name, [a.label for a in smoke.algos][:3], smoke.seeds
        ('smoke', ['LaMo', 'DT', 'Wiki-RL'], [0])

        A file of your own (here a minimal one):

        >>> _ = Path("mine.yaml").write_text(
        ...     "name: mine\\nalgos: [DT]\\nrows: [{task: reacher2d-medium, ratio: 0.1}]\\n")
        >>> [run.name for run in load_suite("mine.yaml").expand()]
        ['reacher2d-medium 0.1 DT s0', 'reacher2d-medium 0.1 DT s1', 'reacher2d-medium 0.1 DT s2']
    """
    path = find_suite(name_or_path)
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise SuiteError(f"suite file {path} is not valid YAML: {e}") from None
    return Suite.from_dict(data or {}, name=path.stem, path=str(path))


# -- one run ---------------------------------------------------------------------------------------
def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9.+-]+", "-", text).strip("-")
    return s or "run"


@dataclass(frozen=True, eq=False)
class RunSpec:
    """One run: (suite, task, ratio, algorithm, seed, config overrides) plus its source and protocol.

    ``run_id`` is a hash of everything that changes the result (not of the group or display
    details), so the same run always gets the same id and directory.

    Examples:
        >>> from offline_zoo.bench.protocol import Protocol
        >>> r = RunSpec("smoke", "", "reacher2d-medium", 1.0, "DT", "dt", 0, {}, "generated", Protocol(300, 100, 200))
        >>> r.dirname
        'reacher2d-medium__r1__DT__s0__568afb648eb7'
    """

    suite: str
    group: str
    task: str
    ratio: float
    label: str
    algo: str
    seed: int
    config: dict
    source: str
    protocol: Protocol
    imports: tuple[str, ...] = ()
    #: seed of the trajectory subset (`default_subset_seed` in suites: shared by the training
    #: seeds except on Atari); None: the algorithm's own default
    subset_seed: int | None = None

    def identity(self) -> dict[str, Any]:
        """The fields hashed into ``run_id``."""
        out = {
            "suite": self.suite,
            "task": self.task,
            "ratio": float(self.ratio),
            "label": self.label,
            "algo": self.algo,
            "seed": int(self.seed),
            "config": self.config,
            "source": self.source,
            "protocol": self.protocol.to_dict(),
        }
        if self.subset_seed is not None:  # runs on another subset are other runs
            out["subset_seed"] = int(self.subset_seed)
        return out

    @property
    def run_id(self) -> str:
        """A 12-hex-digit hash of everything that defines the run (suite, task, ratio, algorithm, seed, config, source, protocol)."""
        blob = json.dumps(self.identity(), sort_keys=True, default=str, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    @property
    def dirname(self) -> str:
        """The run's directory name under ``OUT/runs``: ``<task>__r<ratio>__<label>__s<seed>__<run_id>``."""
        return f"{self.task}__r{self.ratio:g}__{_slug(self.label)}__s{self.seed}__{self.run_id}"

    @property
    def name(self) -> str:
        """Short human-readable name: ``reacher2d-medium 0.1 DT s0``."""
        return f"{self.task} {self.ratio:g} {self.label} s{self.seed}"

    def to_dict(self) -> dict[str, Any]:
        """The spec as plain JSON-friendly values (`from_dict` reads it back)."""
        return {**self.identity(), "group": self.group, "imports": list(self.imports), "run_id": self.run_id}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "RunSpec":
        """The spec that `to_dict` wrote."""
        return cls(
            d["suite"], d.get("group", ""), d["task"], float(d["ratio"]), d["label"], d["algo"], int(d["seed"]),
            dict(d.get("config") or {}), d["source"], Protocol.from_dict(d["protocol"]), tuple(d.get("imports") or ()),
            None if d.get("subset_seed") is None else int(d["subset_seed"]),
        )

    def __eq__(self, other) -> bool:
        return isinstance(other, RunSpec) and other.run_id == self.run_id

    def __hash__(self) -> int:
        return hash(self.run_id)

    def __repr__(self) -> str:
        return f"RunSpec({self.name}, steps={self.protocol.steps}, id={self.run_id})"

