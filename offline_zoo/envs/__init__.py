"""Evaluation environments of every task family, built the way the datasets were recorded.

``make_env(task)`` returns a ready ``gymnasium.Env`` (``TimeLimit`` included) for a
`offline_zoo.tasks.Task` or a task name:

=========  =====================================================================================
family     environment
=========  =====================================================================================
mujoco     ``gymnasium.make(task.env_id)`` (Hopper-v5, HalfCheetah-v5, Walker2d-v5), TimeLimit
           ``task.max_episode_steps`` (1000).
reacher2d  `Reacher2dEnv`, registered as
           ``offline_zoo/Reacher2d-v0`` (100 steps, sparse L1 reward).
kitchen    ``FrankaKitchen-v1`` of gymnasium-robotics (extra ``kitchen``) with
           ``task.env_kwargs``; the dict observation is flattened like d3rlpy's
           ``get_minari`` flattens Minari's ``D4RL/kitchen/*-v2`` data (see
           `flatten_kitchen_observation`). Reward per step = sub-tasks completed in that
           step, so the return is the number of sub-tasks completed (the score, 0..4).
atari      ALE ``{Game}NoFrameskip-v4`` + ``AtariPreprocessing`` (frame skip 4, up to 30 no-ops,
           84x84 grayscale, no terminal on life loss, uint8) + a stack of 4 frames: observations
           are uint8 arrays of shape (4, 84, 84), channel first (extra ``atari``); TimeLimit
           ``task.max_episode_steps`` (4096 agent steps, the released LaMo evaluation cap).
gymnasium  any other environment: ``gymnasium.make(task.env_id, **task.env_kwargs)``, TimeLimit
           ``task.max_episode_steps``; for tasks of your own (the algorithms' per-task YAML
           files have no section for it, so their ``default`` values apply).
=========  =====================================================================================

Kitchen observations. D4RL's original ``kitchen-*-v0`` data (what LaMo trained on) has 60-dim
observations: robot joint positions (9) + object positions (21) + a constant 30-dim goal vector.
Minari's re-recorded ``D4RL/kitchen/{complete,partial,mixed}-v2`` data (FrankaKitchen-v1) stores a
dict instead: ``observation`` (59 = robot qpos 9 + robot qvel 9 + object qpos 21 + object qvel 20),
plus ``achieved_goal`` and ``desired_goal``, each a dict keyed by sub-task name (kettle 7,
light switch 2, microwave 1, slide cabinet 1, bottom burner 2, top burner 2, hinge cabinet 2
values). offline-zoo follows d3rlpy's ``get_minari`` convention: ``observation`` followed by the
``desired_goal`` values in sorted key order, i.e. 59 + 11 = 70 dims for the four sub-tasks of the
kitchen tasks. Use `flatten_kitchen_observation` on dataset observations too, so data and
environment agree.

    >>> from offline_zoo.envs import make_env, env_spaces
    >>> env = make_env("reacher2d-medium")
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape
    (12,)
    >>> env_spaces("hopper-medium")
    ((11,), 3, False)
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Mapping

import gymnasium
import numpy as np

from offline_zoo.tasks import Task, get_task

from .reacher2d import REACHER2D_ENV_ID, REACHER2D_MAX_EPISODE_STEPS, Reacher2dEnv

__all__ = [
    "make_env",
    "env_spaces",
    "register_envs",
    "Reacher2dEnv",
    "REACHER2D_ENV_ID",
    "FAMILIES",
    "ATARI_PREPROCESSING",
    "KITCHEN_GOAL_SIZES",
    "MissingExtraError",
    "KitchenFlattenObservation",
    "flatten_kitchen_observation",
    "kitchen_observation_dim",
]

#: task families `make_env` knows.
FAMILIES = ("mujoco", "reacher2d", "kitchen", "atari", "gymnasium")

#: the Atari preprocessing of the LaMo paper (DQN's): passed to gymnasium's ``AtariPreprocessing``,
#: followed by a stack of ``frame_stack`` frames.
ATARI_PREPROCESSING = {
    "noop_max": 30,
    "frame_skip": 4,
    "screen_size": 84,
    "terminal_on_life_loss": False,
    "grayscale_obs": True,
    "grayscale_newaxis": False,
    "scale_obs": False,
}
ATARI_FRAME_STACK = 4

#: length of each FrankaKitchen-v1 sub-task's goal vector (its entries in achieved/desired goal).
KITCHEN_GOAL_SIZES = {
    "bottom burner": 2,
    "top burner": 2,
    "light switch": 2,
    "slide cabinet": 1,
    "hinge cabinet": 2,
    "microwave": 1,
    "kettle": 7,
}
#: size of FrankaKitchen-v1's ``observation`` entry (robot qpos 9, qvel 9, objects qpos 21, qvel 20).
KITCHEN_BASE_OBS_DIM = 59
KITCHEN_ACTION_DIM = 9


class MissingExtraError(ImportError):
    """An optional dependency of one task family is missing; the message names the pip extra.

    Examples:
        >>> err = MissingExtraError("FrankaKitchen-v1", "gymnasium_robotics", "kitchen")
        >>> 'pip install "offline-zoo[kitchen]"' in str(err)
        True
    """

    def __init__(self, what: str, module: str, extra: str):
        self.what, self.module, self.extra = what, module, extra
        super().__init__(
            f"{what} needs the Python package {module!r}, which is not installed. "
            f'Install it with: pip install "offline-zoo[{extra}]"',
            name=module,
        )


def _require(module: str, what: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise MissingExtraError(what, module, extra) from e


# --- registration --------------------------------------------------------------------------------
def register_envs() -> None:
    """Register offline-zoo's own environments with gymnasium (``offline_zoo/Reacher2d-v0``).

    Idempotent: calling it again does nothing. `make_env` calls it for you.

    Examples:
        >>> register_envs(); register_envs()
        >>> "offline_zoo/Reacher2d-v0" in gymnasium.registry
        True
    """
    if REACHER2D_ENV_ID not in gymnasium.registry:
        gymnasium.register(
            id=REACHER2D_ENV_ID,
            entry_point="offline_zoo.envs.reacher2d:Reacher2dEnv",
            max_episode_steps=REACHER2D_MAX_EPISODE_STEPS,
        )


# --- kitchen -------------------------------------------------------------------------------------
def flatten_kitchen_observation(obs: Mapping[str, Any]) -> np.ndarray:
    """Flatten a FrankaKitchen / Minari kitchen dict observation: ``observation`` ++ desired goals.

    The goal values are concatenated in sorted key order (d3rlpy's ``get_minari`` convention).
    Works on one observation or on arrays with leading batch/time axes (concatenates the last axis).

    Examples:
        >>> obs = {"observation": np.zeros(59), "achieved_goal": {},
        ...        "desired_goal": {"microwave": np.array([-0.75]), "kettle": np.ones(7)}}
        >>> flat = flatten_kitchen_observation(obs)
        >>> flat.shape, flat[59:].tolist()
        ((67,), [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, -0.75])
    """
    try:
        base = np.asarray(obs["observation"])
        goal = obs["desired_goal"]
    except (KeyError, TypeError) as e:
        raise ValueError(
            "a kitchen observation must be a dict with 'observation' and 'desired_goal' entries, "
            f"got {type(obs).__name__} with keys {list(obs) if isinstance(obs, Mapping) else None}"
        ) from e
    if isinstance(goal, Mapping):
        parts = [np.asarray(goal[k]) for k in sorted(goal)]
    else:
        parts = [np.asarray(goal)]
    parts = [p.reshape(*base.shape[:-1], -1) for p in parts]
    return np.concatenate([base, *parts], axis=-1)


def kitchen_observation_dim(tasks_to_complete) -> int:
    """Size of the flattened kitchen observation for a list of sub-tasks (59 + their goal sizes).

    Examples:
        >>> kitchen_observation_dim(["microwave", "kettle", "light switch", "slide cabinet"])
        70
    """
    tasks = list(tasks_to_complete)
    unknown = [t for t in tasks if t not in KITCHEN_GOAL_SIZES]
    if unknown:
        raise ValueError(f"unknown kitchen sub-task(s) {unknown}; allowed: {sorted(KITCHEN_GOAL_SIZES)}")
    return KITCHEN_BASE_OBS_DIM + sum(KITCHEN_GOAL_SIZES[t] for t in set(tasks))


class KitchenFlattenObservation(gymnasium.ObservationWrapper):
    """Turn FrankaKitchen-v1's dict observations into flat float64 vectors.

    See `flatten_kitchen_observation` for the layout (``observation`` then the desired goals
    in sorted key order). Usually created by `make_env`.

    Args:
        env: an environment with FrankaKitchen-v1's Dict observations (``observation``,
            ``achieved_goal``, ``desired_goal``).

    Examples:
        A stand-in with FrankaKitchen-v1's observation layout (the real environment needs
        gymnasium-robotics):

        >>> import gymnasium
        >>> from gymnasium import spaces
        >>> class FakeKitchen(gymnasium.Env):
        ...     observation_space = spaces.Dict({
        ...         "observation": spaces.Box(-1, 1, (59,)),
        ...         "achieved_goal": spaces.Dict({"kettle": spaces.Box(-1, 1, (7,))}),
        ...         "desired_goal": spaces.Dict({"kettle": spaces.Box(-1, 1, (7,))}),
        ...     })
        ...     action_space = spaces.Box(-1, 1, (9,))
        ...     def reset(self, *, seed=None, options=None):
        ...         return self.observation_space.sample(), {}
        >>> env = KitchenFlattenObservation(FakeKitchen())
        >>> env.observation_space.shape
        (66,)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype.name
        ((66,), 'float64')
        >>> KitchenFlattenObservation(gymnasium.make("FrankaKitchen-v1", tasks_to_complete=["kettle"]))  # doctest: +SKIP
    """

    def __init__(self, env: gymnasium.Env):
        super().__init__(env)
        space = env.observation_space
        keys = space.spaces if isinstance(space, gymnasium.spaces.Dict) else {}
        if "observation" not in keys or "desired_goal" not in keys:
            raise ValueError(
                "KitchenFlattenObservation needs a Dict observation space with 'observation' and "
                f"'desired_goal' entries, got {space}"
            )
        goal_space = space["desired_goal"]
        goal_sizes = (
            [int(np.prod(goal_space[k].shape)) for k in sorted(goal_space.spaces)]
            if isinstance(goal_space, gymnasium.spaces.Dict)
            else [int(np.prod(goal_space.shape))]
        )
        dim = int(np.prod(space["observation"].shape)) + sum(goal_sizes)
        self.observation_space = gymnasium.spaces.Box(-np.inf, np.inf, shape=(dim,), dtype=np.float64)

    def observation(self, observation):
        """Flatten one dict observation (see `flatten_kitchen_observation`)."""
        return flatten_kitchen_observation(observation).astype(np.float64)


# --- construction --------------------------------------------------------------------------------
def _check_family(task: Task) -> None:
    if task.family not in FAMILIES:
        raise ValueError(
            f"task {task.name!r} has unknown family {task.family!r}; "
            f"make_env supports {', '.join(FAMILIES)}"
        )


def _make_mujoco(task: Task, max_steps: int, kwargs: dict) -> gymnasium.Env:
    return gymnasium.make(task.env_id, max_episode_steps=max_steps, **{**task.env_kwargs, **kwargs})


def _make_reacher2d(task: Task, max_steps: int, kwargs: dict) -> gymnasium.Env:
    register_envs()
    return gymnasium.make(task.env_id, max_episode_steps=max_steps, **{**task.env_kwargs, **kwargs})


def _make_kitchen(task: Task, max_steps: int, kwargs: dict) -> gymnasium.Env:
    robotics = _require("gymnasium_robotics", f"the kitchen task {task.name!r} (FrankaKitchen-v1)", "kitchen")
    gymnasium.register_envs(robotics)
    env = gymnasium.make(task.env_id, max_episode_steps=max_steps, **{**task.env_kwargs, **kwargs})
    return KitchenFlattenObservation(env)


def _make_atari(task: Task, max_steps: int, kwargs: dict) -> gymnasium.Env:
    what = f"the Atari task {task.name!r} ({task.env_id})"
    ale_py = _require("ale_py", what, "atari")
    _require("cv2", what, "atari")  # AtariPreprocessing resizes with OpenCV
    gymnasium.register_envs(ale_py)
    kwargs = dict(kwargs)
    stack = int(kwargs.pop("frame_stack", ATARI_FRAME_STACK))
    # the frame cap of the ALE itself (108k frames) stays; the agent-step TimeLimit goes outermost
    env = gymnasium.make(task.env_id, **{**task.env_kwargs, **kwargs})
    env = gymnasium.wrappers.AtariPreprocessing(env, **ATARI_PREPROCESSING)
    env = gymnasium.wrappers.FrameStackObservation(env, stack_size=stack)
    return gymnasium.wrappers.TimeLimit(env, max_episode_steps=max_steps)


_BUILDERS = {
    "mujoco": _make_mujoco,
    "gymnasium": _make_mujoco,  # the same plain gymnasium.make + TimeLimit
    "reacher2d": _make_reacher2d,
    "kitchen": _make_kitchen,
    "atari": _make_atari,
}


def make_env(task: Task | str, source: str | None = None, **kwargs: Any) -> gymnasium.Env:
    """Build the evaluation environment of a task (a `Task` or a task name).

    ``source`` is where the agent's data came from: each source is evaluated on the closest
    environment version gymnasium provides (`Task.env_id_for`: D4RL's MuJoCo data, collected on
    v3, on v4; Minari's and generated data on v5, which they were collected on). Other keyword
    arguments go to ``gymnasium.make`` of the underlying environment (e.g.
    ``render_mode="rgb_array"``), except ``max_episode_steps`` (default ``task.max_episode_steps``)
    and, for Atari, ``frame_stack`` (default 4). Missing optional packages raise
    `MissingExtraError` (an ``ImportError``) naming the pip extra to install.

    Examples:
        >>> env = make_env("hopper-medium")
        >>> env.spec.max_episode_steps, env.observation_space.shape, env.spec.id
        (1000, (11,), 'Hopper-v5')
        >>> make_env("hopper-medium", source="d4rl").spec.id
        'Hopper-v4'
    """
    task = get_task(task)
    _check_family(task)
    if source is not None and task.env_id_for(source) != task.env_id:
        task = dataclasses.replace(task, env_id=task.env_id_for(source))
    kwargs = dict(kwargs)
    max_steps = int(kwargs.pop("max_episode_steps", task.max_episode_steps))
    if max_steps < 1:
        raise ValueError(f"max_episode_steps must be >= 1, got {max_steps}")
    return _BUILDERS[task.family](task, max_steps, kwargs)


_SPACES_CACHE: dict[tuple, tuple[tuple[int, ...], int, bool]] = {}


def _spaces_key(task: Task) -> tuple:
    return (task.family, task.env_id, repr(sorted(task.env_kwargs.items())))


def env_spaces(task: Task | str) -> tuple[tuple[int, ...], int, bool]:
    """``(observation_shape, action_dim_or_n_actions, discrete)`` of a task's environment.

    Nothing is stepped and results are cached. Kitchen is answered from FrankaKitchen-v1's known
    layout (no gymnasium-robotics needed); Atari opens the ALE once to count the actions.

    Examples:
        >>> env_spaces("reacher2d-medium")
        ((12,), 2, False)
        >>> env_spaces("kitchen-complete")
        ((70,), 9, False)
    """
    task = get_task(task)
    _check_family(task)
    key = _spaces_key(task)
    if key in _SPACES_CACHE:
        return _SPACES_CACHE[key]
    if task.family == "kitchen":
        tasks = task.env_kwargs.get("tasks_to_complete", list(KITCHEN_GOAL_SIZES))
        result = ((kitchen_observation_dim(tasks),), KITCHEN_ACTION_DIM, False)
    elif task.family == "atari":
        ale_py = _require("ale_py", f"the Atari task {task.name!r} ({task.env_id})", "atari")
        gymnasium.register_envs(ale_py)
        raw = gymnasium.make(task.env_id, **task.env_kwargs)
        try:
            n_actions = int(raw.action_space.n)
        finally:
            raw.close()
        size = ATARI_PREPROCESSING["screen_size"]
        result = ((ATARI_FRAME_STACK, size, size), n_actions, True)
    else:
        if task.family == "reacher2d":
            register_envs()
        env = gymnasium.make(task.env_id, **task.env_kwargs)
        try:
            obs_shape = tuple(int(d) for d in env.observation_space.shape)
            space = env.action_space
            if isinstance(space, gymnasium.spaces.Discrete):
                result = (obs_shape, int(space.n), True)
            else:
                result = (obs_shape, int(np.prod(space.shape)), False)
                _BOUNDS_CACHE[key] = (np.asarray(space.low, dtype=np.float64).ravel(), np.asarray(space.high, dtype=np.float64).ravel())
        finally:
            env.close()
    _SPACES_CACHE[key] = result
    return result


_BOUNDS_CACHE: dict = {}


def env_action_bounds(task: Task | str) -> tuple[np.ndarray, np.ndarray] | None:
    """``(low, high)`` of a continuous task's action space (None for discrete actions).

    Examples:
        >>> low, high = env_action_bounds("kitchen-complete")
        >>> float(low.min()), float(high.max()), low.shape
        (-1.0, 1.0, (9,))
    """
    task = get_task(task)
    _, action_dim, discrete = env_spaces(task)
    if discrete:
        return None
    key = _spaces_key(task)
    if key not in _BOUNDS_CACHE:  # Kitchen (answered without the env): FrankaKitchen-v1's Box(-1, 1)
        _BOUNDS_CACHE[key] = (-np.ones(action_dim), np.ones(action_dim))
    return _BOUNDS_CACHE[key]
