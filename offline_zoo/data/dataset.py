"""The one in-memory episode representation every algorithm trains from.

A :class:`Dataset` stores flat per-step arrays over all episodes (D4RL's layout) plus episode
boundaries. Episodes are views, never copies; Atari frames stay single ``uint8`` frames and are
stacked on the fly by the samplers.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ..tasks import Task, get_task

__all__ = ["Episode", "Dataset", "DatasetError", "split_episodes", "default_subset_seed"]


class DatasetError(ValueError):
    """Raised for malformed dataset input: wrong shapes, NaN values, bad ratio...

    A ``ValueError``; the message names the offending array or value.

    Examples:
        >>> Dataset.from_arrays(np.zeros((3, 2)), np.zeros((2, 1)), [0, 0, 0], [0, 0, 1])
        Traceback (most recent call last):
        ...
        offline_zoo.data.dataset.DatasetError: actions has 2 steps but observations has 3: every array needs one entry per step
        >>> check_ratio(1.5)
        Traceback (most recent call last):
        ...
        offline_zoo.data.dataset.DatasetError: ratio=1.5 is outside (0, 1]: it is the fraction of trajectories kept (e.g. 0.1)
    """


@dataclass(frozen=True)
class Episode:
    """A view of one episode's steps inside a :class:`Dataset` (no copy).

    ``terminated`` is True when the episode ended in a terminal state (no bootstrapping past it);
    ``truncated`` when it was cut by a time limit or the end of the data.

    Examples:
        >>> ds = Dataset.from_arrays(np.zeros((5, 2)), np.zeros((5, 1)), rewards=[1, 1, 1, 2, 2],
        ...                          terminals=[0, 0, 1, 0, 0])
        >>> ep = ds.episode(0)
        >>> len(ep), ep.episode_return, ep.terminated, ep.truncated
        (3, 3.0, True, False)
        >>> ds.episode(1).truncated                      # cut by the end of the data
        True
        >>> np.shares_memory(ep.rewards, ds.rewards)     # a view, not a copy
        True
    """

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    terminated: bool
    truncated: bool

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def episode_return(self) -> float:
        """Undiscounted sum of the episode's rewards."""
        return float(self.rewards.sum(dtype=np.float64))


def split_episodes(terminals: np.ndarray, timeouts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Episode starts and lengths from per-step end flags: an episode ends at a terminal OR a timeout.

    (The released LaMo conversion split on a step counter and merged timeout-ended episodes with the
    next one: see docs/deviations.md.) Steps after the last flag form a final truncated episode.

    Examples:
        >>> split_episodes(np.array([0, 1, 0, 0]), np.array([0, 0, 0, 0]))
        (array([0, 2]), array([2, 2]))
    """
    ends = np.flatnonzero(np.logical_or(terminals, timeouts))
    n = len(terminals)
    stops = ends + 1
    if len(stops) == 0 or stops[-1] != n:
        stops = np.append(stops, n)
    starts = np.concatenate([[0], stops[:-1]]).astype(np.int64)
    lengths = (stops - starts).astype(np.int64)
    keep = lengths > 0
    return starts[keep], lengths[keep]


class Dataset:
    """Offline transitions grouped into whole episodes, optionally bound to a :class:`Task`.

    Examples:
        Build one from D4RL-style flat arrays:

        >>> import numpy as np
        >>> ds = Dataset.from_arrays(
        ...     observations=np.zeros((6, 3)), actions=np.zeros((6, 2)), rewards=np.ones(6),
        ...     terminals=[0, 0, 1, 0, 0, 0], timeouts=[0, 0, 0, 0, 0, 1])
        >>> ds.n_episodes, [len(e) for e in ds.episodes]
        (2, [3, 3])
        >>> ds.subsample(0.5, seed=0).n_episodes
        1
    """

    def __init__(
        self,
        observations: np.ndarray,
        actions: np.ndarray,
        rewards: np.ndarray,
        terminals: np.ndarray,
        timeouts: np.ndarray,
        episode_starts: np.ndarray,
        episode_lengths: np.ndarray,
        task: Task | str | None = None,
        source: str = "arrays",
        name: str | None = None,
        frame_stack: int = 1,
        selection: np.ndarray | None = None,
        metadata: dict[str, Any] | None = None,
    ):
        self.observations = observations
        self.actions = actions
        self.rewards = rewards
        self.terminals = terminals
        self.timeouts = timeouts
        self.episode_starts = np.asarray(episode_starts, dtype=np.int64)
        self.episode_lengths = np.asarray(episode_lengths, dtype=np.int64)
        self.task = get_task(task) if task is not None else None
        self.source = source
        self.name = name or (self.task.name if self.task else "custom")
        self.frame_stack = int(frame_stack)
        self.selection = None if selection is None else np.asarray(selection, dtype=np.int64)
        self.metadata = dict(metadata or {})
        self._stats: tuple[np.ndarray, np.ndarray] | None = None

    # -- construction ---------------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        observations,
        actions,
        rewards,
        terminals,
        timeouts=None,
        task: Task | str | None = None,
        *,
        source: str = "arrays",
        name: str | None = None,
        frame_stack: int | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> "Dataset":
        """Build a dataset from flat per-step arrays (D4RL layout: step ``i`` is (s_i, a_i, r_i)).

        Episodes end at ``terminals[i] or timeouts[i]``; trailing steps after the last flag form a
        final truncated episode. Image observations (``uint8``, 3-D per step) are kept as they are.
        Raises :class:`DatasetError` naming the offending array for mismatched lengths, NaN/inf, or
        observations/actions that do not match the bound task's environment.
        """
        obs = np.asarray(observations)
        if obs.dtype != np.uint8:
            obs = obs.astype(np.float32, copy=False)
        n = len(obs)
        if n == 0:
            raise DatasetError("observations is empty: a dataset needs at least one step")
        act = np.asarray(actions)
        discrete = np.issubdtype(act.dtype, np.integer) or (act.ndim == 1 and task is not None and get_task(task).discrete)
        act = act.astype(np.int64, copy=False).reshape(n) if discrete else act.astype(np.float32, copy=False)
        if not discrete and act.ndim == 1:
            act = act.reshape(n, 1)
        rew = np.asarray(rewards, dtype=np.float32).reshape(-1)
        term = np.asarray(terminals).astype(bool).reshape(-1)
        tout = np.zeros(n, dtype=bool) if timeouts is None else np.asarray(timeouts).astype(bool).reshape(-1)
        for label, arr in (("actions", act), ("rewards", rew), ("terminals", term), ("timeouts", tout)):
            if len(arr) != n:
                raise DatasetError(f"{label} has {len(arr)} steps but observations has {n}: every array needs one entry per step")
        for label, arr in (("observations", obs), ("actions", act), ("rewards", rew)):
            if arr.dtype.kind == "f" and not np.isfinite(arr).all():
                bad = int(np.flatnonzero(~np.isfinite(arr).reshape(n, -1).all(axis=1))[0])
                raise DatasetError(f"{label} contains NaN or inf (first at step {bad}); clean the data before building a Dataset")
        t = get_task(task) if task is not None else None
        if t is not None:
            _check_against_task(t, obs, act)
        starts, lengths = split_episodes(term, tout)
        fs = frame_stack if frame_stack is not None else (4 if (t is not None and t.family == "atari") else 1)
        return cls(obs, act, rew, term, tout, starts, lengths, task=t, source=source, name=name, frame_stack=fs, metadata=metadata)

    @classmethod
    def from_episodes(cls, episodes: list[dict[str, np.ndarray]], task=None, **kwargs) -> "Dataset":
        """Build from a list of dicts with ``observations, actions, rewards`` and optional
        ``terminated`` / ``truncated`` flags (default: truncated)."""
        if not episodes:
            raise DatasetError("episodes is empty: a dataset needs at least one episode")
        obs = np.concatenate([np.asarray(e["observations"]) for e in episodes])
        act = np.concatenate([np.asarray(e["actions"]) for e in episodes])
        rew = np.concatenate([np.asarray(e["rewards"], dtype=np.float32).reshape(-1) for e in episodes])
        term = np.zeros(len(rew), dtype=bool)
        tout = np.zeros(len(rew), dtype=bool)
        end = 0
        for e in episodes:
            end += len(e["rewards"])
            if e.get("terminated", False):
                term[end - 1] = True
            else:
                tout[end - 1] = True
        return cls.from_arrays(obs, act, rew, term, tout, task=task, **kwargs)

    # -- basic properties ----------------------------------------------------------------------
    @property
    def n_episodes(self) -> int:
        """Number of episodes (trajectories)."""
        return len(self.episode_starts)

    @property
    def n_steps(self) -> int:
        """Number of transitions over all episodes."""
        return int(self.episode_lengths.sum())

    def __len__(self) -> int:
        return self.n_steps

    @property
    def discrete(self) -> bool:
        """Whether actions are integer indices (Atari) rather than vectors."""
        return self.actions.ndim == 1

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """Shape of one observation as the policy sees it (frames stacked for Atari)."""
        single = tuple(self.observations.shape[1:])
        if self.frame_stack > 1:
            return (self.frame_stack, *single)
        return single

    @property
    def action_dim(self) -> int:
        """Action dimension (continuous) or number of actions (discrete)."""
        if self.discrete:
            n = self.metadata.get("n_actions")
            return int(n) if n is not None else int(self.actions.max()) + 1
        return int(self.actions.shape[1])

    @property
    def episode_ends(self) -> np.ndarray:
        """Index one past the last step of every episode (``episode_starts + episode_lengths``)."""
        return self.episode_starts + self.episode_lengths

    @property
    def episodes(self) -> list[Episode]:
        """All episodes as views (no copies)."""
        return [self.episode(i) for i in range(self.n_episodes)]

    def episode(self, i: int) -> Episode:
        """Episode ``i`` as an `Episode` of views into the flat arrays (no copy)."""
        s, n = int(self.episode_starts[i]), int(self.episode_lengths[i])
        last = s + n - 1
        return Episode(
            observations=self.observations[s : s + n],
            actions=self.actions[s : s + n],
            rewards=self.rewards[s : s + n],
            terminated=bool(self.terminals[last]),
            truncated=not bool(self.terminals[last]),
        )

    def __iter__(self) -> Iterator[Episode]:
        return (self.episode(i) for i in range(self.n_episodes))

    @property
    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of every episode."""
        csum = np.concatenate([[0.0], np.cumsum(self.rewards, dtype=np.float64)])
        return csum[self.episode_ends] - csum[self.episode_starts]

    # -- subsampling ---------------------------------------------------------------------------
    def subsample(self, ratio: float, seed: int = 0, weighting: str | None = None) -> "Dataset":
        """Keep ``max(1, int(N * ratio))`` whole trajectories, drawn without replacement.

        The draw is seeded: the same (dataset, ratio, seed) always keeps the same trajectories.
        ``weighting`` is ``"uniform"`` (MuJoCo, Kitchen, Reacher2d) or ``"length"`` (probability
        proportional to trajectory length, the released code's Atari sampling); by default it is
        ``"length"`` for Atari tasks and ``"uniform"`` otherwise. Kept trajectories stay in their
        original order; ``selection`` records their indices in this dataset.
        """
        ratio = check_ratio(ratio)
        if weighting is None:
            weighting = "length" if (self.task is not None and self.task.family == "atari") else "uniform"
        if weighting not in ("uniform", "length"):
            raise DatasetError(f"weighting={weighting!r} is not supported; use 'uniform' or 'length'")
        if ratio == 1.0:
            idx = np.arange(self.n_episodes)
        else:
            n_keep = max(1, int(self.n_episodes * ratio))
            if int(self.n_episodes * ratio) < 1:
                warnings.warn(
                    f"ratio={ratio:g} of {self.n_episodes} trajectories is less than one trajectory; keeping 1",
                    UserWarning, stacklevel=2,
                )
            rng = np.random.default_rng(seed)
            p = None
            if weighting == "length":
                p = self.episode_lengths / self.episode_lengths.sum()
            idx = np.sort(rng.choice(self.n_episodes, size=n_keep, replace=False, p=p))
        sub = self.select_episodes(idx)
        sub.metadata.update(ratio=ratio, subsample_seed=int(seed), subsample_weighting=weighting)
        return sub

    def select_episodes(self, indices) -> "Dataset":
        """A new dataset holding only the given episodes (copies their steps)."""
        idx = np.asarray(indices, dtype=np.int64)
        if len(idx) == 0:
            raise DatasetError("cannot select zero episodes")
        if idx.min() < 0 or idx.max() >= self.n_episodes:
            raise DatasetError(f"episode index out of range: valid indices are 0..{self.n_episodes - 1}")
        steps = np.concatenate([np.arange(s, s + n) for s, n in zip(self.episode_starts[idx], self.episode_lengths[idx])])
        lengths = self.episode_lengths[idx]
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        base_sel = self.selection[idx] if self.selection is not None else idx
        return Dataset(
            self.observations[steps],
            self.actions[steps],
            self.rewards[steps],
            self.terminals[steps],
            self.timeouts[steps],
            starts,
            lengths,
            task=self.task,
            source=self.source,
            name=self.name,
            frame_stack=self.frame_stack,
            selection=base_sel,
            metadata=dict(self.metadata),
        )

    @property
    def selection_hash(self) -> str:
        """Short hash of the kept trajectory indices (all of them when not subsampled)."""
        sel = self.selection if self.selection is not None else np.arange(self.n_episodes)
        return hashlib.sha256(np.ascontiguousarray(sel, dtype=np.int64).tobytes()).hexdigest()[:16]

    # -- statistics ----------------------------------------------------------------------------
    def _compute_stats(self) -> tuple[np.ndarray, np.ndarray]:
        if self._stats is None:
            obs = self.observations.reshape(len(self.observations), -1).astype(np.float64)
            mean = obs.mean(axis=0).reshape(self.observations.shape[1:])
            std = obs.std(axis=0).reshape(self.observations.shape[1:]) + 1e-6
            self._stats = (mean.astype(np.float32), std.astype(np.float32))
        return self._stats

    @property
    def state_mean(self) -> np.ndarray:
        """Mean of the observations over every step (of the subsampled data, as the released code)."""
        return self._compute_stats()[0]

    @property
    def state_std(self) -> np.ndarray:
        """Standard deviation of the observations + 1e-6."""
        return self._compute_stats()[1]

    def statistics(self) -> dict[str, Any]:
        """Summary numbers: episodes, steps, return mean/min/max and, with a task, normalized."""
        r = self.episode_returns
        out = {
            "episodes": self.n_episodes,
            "steps": self.n_steps,
            "return_mean": float(r.mean()),
            "return_min": float(r.min()),
            "return_max": float(r.max()),
        }
        if self.task is not None:
            out["normalized_mean"] = float(np.mean(self.task.normalized_score(r)))
        return out

    def describe(self) -> dict[str, Any]:
        """Provenance recorded with every result: name, source, ratio, seed, selection hash."""
        return {
            "name": self.name,
            "task": self.task.name if self.task else None,
            "source": self.source,
            "ratio": self.metadata.get("ratio", 1.0),
            "subsample_seed": self.metadata.get("subsample_seed"),
            "selection_hash": self.selection_hash,
            "episodes": self.n_episodes,
            "steps": self.n_steps,
        }

    def __repr__(self) -> str:
        return f"Dataset(name={self.name!r}, source={self.source!r}, episodes={self.n_episodes}, steps={self.n_steps}, obs={self.observation_shape}, discrete={self.discrete})"


def default_subset_seed(task: Task | str | None, seed: int) -> int:
    """Seed of the trajectory subset a run with training seed ``seed`` trains on, by default.

    The released MuJoCo/Kitchen code writes one subsampled file per (task, ratio) and trains every
    seed on it, so every non-Atari task shares one subset (seed 0) across training seeds; the
    released Atari code draws its trajectories per run, so Atari uses the training seed. Pass
    ``subset_seed=`` to an algorithm (or ``load_dataset(..., seed=)``) to choose otherwise.

    Examples:
        >>> default_subset_seed("hopper-medium", 2), default_subset_seed("kitchen-partial", 1)
        (0, 0)
        >>> default_subset_seed("breakout-medium", 2), default_subset_seed(None, 2)
        (2, 0)
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise DatasetError(f"seed={seed!r} must be an integer")
    t = get_task(task) if task is not None else None
    return int(seed) if t is not None and t.family == "atari" else 0


def check_ratio(ratio) -> float:
    """Validate a sample ratio: a number in (0, 1]."""
    if isinstance(ratio, (bool, np.bool_)) or not isinstance(ratio, (int, float, np.integer, np.floating)):
        raise DatasetError(f"ratio={ratio!r} is not a number; use a fraction of trajectories in (0, 1], e.g. 0.1")
    r = float(ratio)
    if not (0.0 < r <= 1.0) or not np.isfinite(r):
        raise DatasetError(f"ratio={ratio!r} is outside (0, 1]: it is the fraction of trajectories kept (e.g. 0.1)")
    return r


def _check_against_task(task: Task, obs: np.ndarray, act: np.ndarray) -> None:
    """Compare data shapes with the task's environment spaces when they are known cheaply."""
    try:
        from ..envs import env_action_bounds, env_spaces  # local: envs import gymnasium/mujoco

        obs_shape, act_dim, discrete = env_spaces(task)
        bounds = env_action_bounds(task)
    except Exception:  # environment (or its extra) not installed: nothing to compare against
        return
    if bounds is not None and act.ndim == 2 and act.shape[1] == len(bounds[0]) and len(act):
        low, high = bounds
        # float32 data of a float64 Box: allow rounding, not actions the environment cannot take
        tol = 1e-5 * np.maximum(1.0, np.abs(np.concatenate([low, high]))).max()
        below, above = act.min(axis=0) < low - tol, act.max(axis=0) > high + tol
        if below.any() or above.any():
            dim = int(np.flatnonzero(below | above)[0])
            raise DatasetError(
                f"actions of dimension {dim} span [{act[:, dim].min():g}, {act[:, dim].max():g}] but task {task.name!r} "
                f"allows [{low[dim]:g}, {high[dim]:g}] (its environment's action space; the tanh action heads reach only "
                f"(-1, 1)): rescale the actions into the action space, or clip them with np.clip(actions, low, high)"
            )
    if discrete != (act.ndim == 1):
        kind = "discrete (integer actions)" if discrete else "continuous (float actions)"
        raise DatasetError(f"task {task.name!r} has {kind} but the given actions have shape {act.shape}")
    per_step = tuple(obs.shape[1:])
    allowed = {tuple(obs_shape), tuple(obs_shape[1:])} if discrete else {tuple(obs_shape)}
    if per_step not in allowed:
        raise DatasetError(f"observations have per-step shape {per_step} but task {task.name!r} expects {tuple(obs_shape)}")
    if not discrete and act.shape[1] != act_dim:
        raise DatasetError(f"actions have dimension {act.shape[1]} but task {task.name!r} expects {act_dim}")
