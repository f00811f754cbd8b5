"""Task registry: every task of the LaMo paper's Tables 1-3, plus MuJoCo medium-replay/medium-expert.

A task bundles what an algorithm needs to know besides the data: which environment evaluates it,
how long episodes are, how returns-to-go are scaled, which targets the paper evaluates, and the
reference scores that turn a raw return into a normalized score (0 = random, 100 = expert).

    >>> from offline_zoo import get_task
    >>> get_task("hopper-medium").rtg_scale
    1000.0
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["Task", "register_task", "get_task", "list_tasks", "normalized_score"]


@dataclass(frozen=True)
class Task:
    """Everything offline-zoo knows about one offline-RL task.

    Attributes:
        name: D4RL-style name, e.g. ``"hopper-medium"``.
        domain: ``"hopper"``, ``"kitchen"``, ``"breakout"``... (the key of per-domain defaults).
        env_id: gymnasium id used for evaluation.
        max_episode_steps: evaluation episode length (agent steps).
        max_ep_len: size of the sequence models' timestep table (timesteps are clipped to it).
        rtg_scale: returns-to-go are divided by this before entering a sequence model.
        target_returns: the paper's evaluation targets (raw, unscaled returns), best first.
        ref_min_score: return of a random policy (normalized score 0).
        ref_max_score: return of an expert policy (normalized score 100).
        discrete: discrete (Atari) or continuous actions.
        sources: dataset sources that can provide this task, default first, mapped to the
            name of the dataset in that source (Minari id, D4RL file stem, d4rl-atari name...).
        family: ``"mujoco"``, ``"kitchen"``, ``"reacher2d"``, ``"atari"``, or ``"gymnasium"``
            for any other gymnasium environment (a task of your own).
        env_kwargs: extra keyword arguments of ``gymnasium.make`` for the evaluation environment.

    Examples:
        >>> task = get_task("hopper-medium")
        >>> task.family, task.env_id, task.target_returns, task.default_source
        ('mujoco', 'Hopper-v5', (3600.0, 2600.0, 2200.0, 1800.0), 'minari')
        >>> round(task.normalized_score(1600.0), 1)
        49.8
        >>> task.normalized_score([-20.272305, 3234.3]).round(1).tolist()
        [0.0, 100.0]
    """

    name: str
    domain: str
    family: str
    env_id: str
    max_episode_steps: int
    max_ep_len: int
    rtg_scale: float
    target_returns: tuple[float, ...]
    ref_min_score: float
    ref_max_score: float
    discrete: bool = False
    sources: dict[str, str] = field(default_factory=dict)
    env_kwargs: dict = field(default_factory=dict)
    #: evaluation env id per data source where it differs from ``env_id``: D4RL's MuJoCo -v2 data
    #: was collected on the v3 environments; gymnasium 1.0 has v4 (same dynamics, new bindings), not
    #: v3, while ``env_id`` (v5) has other dynamics (Walker2d's foot friction, Hopper's healthy reward)
    source_env_ids: dict[str, str] = field(default_factory=dict)

    def env_id_for(self, source: str | None) -> str:
        """The gymnasium id an agent trained on ``source`` data is evaluated on (None: ``env_id``).

        Examples:
            >>> task = get_task("hopper-medium")
            >>> task.env_id_for("d4rl"), task.env_id_for("minari"), task.env_id_for(None)
            ('Hopper-v4', 'Hopper-v5', 'Hopper-v5')
        """
        return self.source_env_ids.get(source, self.env_id) if source is not None else self.env_id

    @property
    def default_source(self) -> str:
        """The first of ``sources``: where ``load_dataset(name)`` looks without ``source=``.

        Examples:
            >>> from dataclasses import replace
            >>> replace(get_task("hopper-medium"), name="my-task", sources={}).default_source
            Traceback (most recent call last):
            ...
            ValueError: task 'my-task' has no dataset sources, so its data cannot be loaded by name: pass a Dataset (Dataset.from_arrays(..., task='my-task')) instead of the name, or register the task with sources={'minari': '<dataset id>'}
        """
        if not self.sources:
            raise ValueError(
                f"task {self.name!r} has no dataset sources, so its data cannot be loaded by name: pass a Dataset "
                f"(Dataset.from_arrays(..., task={self.name!r})) instead of the name, or register the task with "
                "sources={'minari': '<dataset id>'}"
            )
        return next(iter(self.sources))

    def missing_source_message(self, source: str) -> str:
        """The error text for a source this task does not have: its sources, and the tasks of the
        same environment that do have it (a different dataset gets a different task name: a source
        is never substituted silently).

        Examples:
            >>> get_task("breakout-medium").missing_source_message("minari")
            "task 'breakout-medium' has no 'minari' source; it can be loaded from: d4rl-atari. Tasks of the same environment with a 'minari' source: 'breakout-expert' (atari/breakout/expert-v0)"
        """
        msg = f"task {self.name!r} has no {source!r} source; it can be loaded from: " + (
            ", ".join(self.sources) or "nowhere (it has no sources: pass its data as a Dataset)"
        )
        others = [t for t in _TASKS.values() if t.name != self.name and t.env_id == self.env_id and source in t.sources]
        if others:
            msg += f". Tasks of the same environment with a {source!r} source: " + ", ".join(
                f"{t.name!r} ({t.sources[source]})" for t in sorted(others, key=lambda t: t.name)
            )
        return msg

    def normalized_score(self, returns) -> np.ndarray | float:
        """100 * (return - random) / (expert - random), elementwise; returns must be finite numbers."""
        raw = np.asarray(returns)
        if raw.dtype.kind not in "iuf" or raw.size == 0:
            raise ValueError(f"returns={returns!r} must be a number or an array of numbers (got {raw.dtype.name if raw.size else 'nothing'})")
        r = raw.astype(np.float64)
        if not np.isfinite(r).all():
            raise ValueError(f"returns={returns!r} holds a non-finite value (nan or inf): an episode return is a finite number")
        out = 100.0 * (r - self.ref_min_score) / (self.ref_max_score - self.ref_min_score)
        return float(out) if out.ndim == 0 else out


_TASKS: dict[str, Task] = {}


def register_task(task: Task, overwrite: bool = False) -> Task:
    """Add a task to the registry (users may register their own tasks and environments).

    Args:
        task: the task; its ``name`` is the registry key.
        overwrite: replace a registered task of the same name instead of raising ValueError.

    Returns:
        The task itself.

    Examples:
        >>> pendulum = Task(
        ...     name="pendulum-demo", domain="pendulum", family="gymnasium", env_id="Pendulum-v1",
        ...     max_episode_steps=200, max_ep_len=200, rtg_scale=100.0, target_returns=(0.0,),
        ...     ref_min_score=-1500.0, ref_max_score=0.0, sources={"generated": "pendulum-demo"},
        ... )
        >>> register_task(pendulum, overwrite=True) is pendulum
        True
        >>> get_task("pendulum-demo").normalized_score(-750.0)
        50.0
        >>> register_task(pendulum)
        Traceback (most recent call last):
        ...
        ValueError: task 'pendulum-demo' is already registered (pass overwrite=True to replace it)
    """
    if task.name in _TASKS and not overwrite:
        raise ValueError(f"task {task.name!r} is already registered (pass overwrite=True to replace it)")
    _TASKS[task.name] = task
    return task


def get_task(name: str | Task) -> Task:
    """Look a task up by name; an unknown name raises a KeyError that suggests the closest names.

    Args:
        name: a task name (case-insensitive), or a `Task`, which is returned as is.

    Examples:
        >>> get_task("Kitchen-Partial").max_episode_steps
        280
        >>> get_task("hoper-medium")
        Traceback (most recent call last):
        ...
        KeyError: "unknown task 'hoper-medium'. Did you mean 'hopper-medium', ...
    """
    if isinstance(name, Task):
        return name
    key = str(name).strip().lower()
    if key in _TASKS:
        return _TASKS[key]
    raise KeyError(
        f"unknown task {name!r}.{closest(key, _TASKS)} Known tasks: {', '.join(sorted(_TASKS))}. "
        "A task of your own must be registered (register_task) in this process first"
    )


def list_tasks(family: str | None = None) -> list[str]:
    """Names of the registered tasks, sorted, optionally only those of one family (mujoco, kitchen, ...).

    Args:
        family: ``"mujoco"``, ``"kitchen"``, ``"reacher2d"``, ``"atari"``, ``"gymnasium"``; None
            lists every task.

    Examples:
        >>> list_tasks("kitchen")
        ['kitchen-complete', 'kitchen-mixed', 'kitchen-partial']
        >>> "hopper-medium-replay" in list_tasks()
        True
    """
    return sorted(n for n, t in _TASKS.items() if family is None or t.family == family)


def normalized_score(task: str | Task, returns) -> np.ndarray | float:
    """Normalized score of raw episode returns on a task: 0 = random policy, 100 = expert.

    Examples:
        >>> round(normalized_score("hopper-medium", 3234.3), 1)
        100.0
    """
    return get_task(task).normalized_score(returns)


# --- the paper's tasks --------------------------------------------------------------------------
# Reference scores: D4RL's exact values for the MuJoCo tasks (d4rl/infos.py), Table 5 of the LaMo
# paper for the others. Targets: LaMo's released scripts (DT uses the first and last of each list).

_MUJOCO = {
    #  domain        env id             random         expert     LaMo eval targets
    "hopper": ("Hopper-v5", -20.272305, 3234.3, (3600, 2600, 2200, 1800)),
    "halfcheetah": ("HalfCheetah-v5", -280.178953, 12135.0, (12000, 8000, 6000, 4500)),
    "walker2d": ("Walker2d-v5", 1.629008, 4592.3, (5000, 4000, 3000, 2500)),
}
_MINARI_MUJOCO_LEVEL = {"medium": "medium", "medium-replay": "simple", "medium-expert": "expert"}

for _domain, (_env, _lo, _hi, _targets) in _MUJOCO.items():
    for _level in ("medium", "medium-replay", "medium-expert"):
        _sources = {
            # Minari's re-collection for the v5 envs has medium/simple/expert; D4RL's exact v2 data
            # (medium-replay, medium-expert included) only exists as D4RL hdf5 files.
            "minari": f"mujoco/{_domain}/{_MINARI_MUJOCO_LEVEL[_level]}-v0",
            "d4rl": f"{_domain}-{_level}-v2",
            "generated": f"{_domain}-{_level}",
        }
        if _level != "medium":
            _sources = {"d4rl": _sources["d4rl"], "minari": _sources["minari"], "generated": _sources["generated"]}
        register_task(
            Task(
                name=f"{_domain}-{_level}",
                domain=_domain,
                family="mujoco",
                env_id=_env,
                max_episode_steps=1000,
                max_ep_len=1000,
                rtg_scale=1000.0,
                target_returns=tuple(float(t) for t in _targets),
                ref_min_score=_lo,
                ref_max_score=_hi,
                sources=_sources,
                source_env_ids={"d4rl": _env.replace("-v5", "-v4")},
            )
        )

_KITCHEN_SUBTASKS = {
    "partial": ["microwave", "kettle", "light switch", "slide cabinet"],
    "complete": ["microwave", "kettle", "light switch", "slide cabinet"],
    "mixed": ["microwave", "kettle", "bottom burner", "light switch"],
}
for _level in ("partial", "complete", "mixed"):
    register_task(
        Task(
            name=f"kitchen-{_level}",
            domain="kitchen",
            family="kitchen",
            env_id="FrankaKitchen-v1",
            max_episode_steps=280,
            # the released experiment.py sizes the timestep table 1000 for kitchen (episodes are 280)
            max_ep_len=1000,
            rtg_scale=1.0,
            target_returns=(5.0, 4.0, 3.0, 2.0, 1.0),
            ref_min_score=0.0,
            ref_max_score=4.0,
            # no "generated" source: there is no behaviour-policy recipe for the kitchen
            sources={"minari": f"D4RL/kitchen/{_level}-v2", "d4rl": f"kitchen-{_level}-v0"},
            # the four sub-tasks of D4RL's kitchen datasets; score = number completed
            env_kwargs={"tasks_to_complete": _KITCHEN_SUBTASKS[_level]},
        )
    )

register_task(
    Task(
        name="reacher2d-medium",
        domain="reacher2d",
        family="reacher2d",
        env_id="offline_zoo/Reacher2d-v0",
        max_episode_steps=100,
        max_ep_len=100,
        rtg_scale=10.0,
        target_returns=(76.0, 40.0),
        ref_min_score=0.0,
        ref_max_score=100.0,
        # not part of D4RL or Minari: only the locally generated dataset exists
        sources={"generated": "reacher2d-medium"},
    )
)

_ATARI = {
    #  domain     ALE id                      random   expert   targets
    "breakout": ("BreakoutNoFrameskip-v4", 1.7, 31.8, (90.0, 120.0)),
    "qbert": ("QbertNoFrameskip-v4", 163.9, 13455.0, (14000.0,)),
    "pong": ("PongNoFrameskip-v4", -20.7, 9.3, (20.0, 10.0)),
}
# The paper's "medium" data is d4rl-atari's DQN-Replay epoch; Minari only has expert data for
# these games, so it is a task of its own (<game>-expert) and never stands in for "medium".
for _domain, (_env, _lo, _hi, _targets) in _ATARI.items():
    for _level, _sources in (
        ("medium", {"d4rl-atari": f"{_domain}-medium-v0"}),
        ("expert", {"minari": f"atari/{_domain}/expert-v0"}),
    ):
        register_task(
            Task(
                name=f"{_domain}-{_level}",
                domain=_domain,
                family="atari",
                env_id=_env,
                # the released evaluation loop stops at max_timestep = 4096 agent steps (core.py);
                # the ALE's own 108k-frame (27k-step) cap stays underneath
                max_episode_steps=4096,
                max_ep_len=4096,
                rtg_scale=1.0,
                target_returns=_targets,
                ref_min_score=_lo,
                ref_max_score=_hi,
                discrete=True,
                sources=_sources,
            )
        )


def paper_targets(task: str | Task, algo: str = "lamo") -> tuple[float, ...]:
    """Evaluation targets the paper uses for an algorithm: LaMo/Wiki-RL all, DT the extremes."""
    t = get_task(task)
    if algo.lower() == "dt" and t.family == "mujoco":
        return (max(t.target_returns), min(t.target_returns))
    return t.target_returns


def closest(name: str, options: Sequence[str]) -> str:
    """' Did you mean X?' hint for an error message, or '' when nothing is close."""
    close = difflib.get_close_matches(str(name), list(options), n=3, cutoff=0.5)
    return f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
