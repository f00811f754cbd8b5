"""Vectorized batch samplers: trajectory windows for the sequence models, transitions for the rest.

Every per-step quantity a batch needs (return-to-go, timestep, episode end, frame-stack indices) is
computed once in the constructor, so a batch is a handful of numpy gathers, never a Python loop
per sample.
"""

from __future__ import annotations

import numpy as np

from .dataset import Dataset

__all__ = ["WindowSampler", "TransitionSampler", "returns_to_go"]

PAD_ACTION = -10.0  # the released DT/LaMo code pads continuous actions with -10
WINDOW_ANCHORS = ("start", "end")


def returns_to_go(dataset: Dataset) -> np.ndarray:
    """Undiscounted reward-to-go of every step within its episode, including the step's own reward.

    Examples:
        >>> ds = Dataset.from_arrays(np.zeros((5, 1)), np.zeros((5, 1)), rewards=[1, 2, 3, 4, 5],
        ...                          terminals=[0, 1, 0, 0, 1])
        >>> returns_to_go(ds).tolist()          # episodes [1, 2] and [3, 4, 5]
        [3.0, 2.0, 12.0, 9.0, 5.0]
    """
    r = dataset.rewards.astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(r)])
    ends = np.repeat(dataset.episode_ends, dataset.episode_lengths)
    return (csum[ends] - csum[:-1]).astype(np.float32)


def frame_stack_indices(idx: np.ndarray, timestep: np.ndarray, frame_stack: int) -> np.ndarray:
    """Indices of the frames stacked at each step: t-3..t for 4 frames, repeating the episode's first."""
    first = idx - timestep[idx]
    lag = np.arange(frame_stack - 1, -1, -1)
    return np.maximum(idx[..., None] - lag, first[..., None])


def _step_tables(dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(episode end, timestep within episode) of every step."""
    ends = np.repeat(dataset.episode_ends, dataset.episode_lengths)
    starts = np.repeat(dataset.episode_starts, dataset.episode_lengths)
    return ends, np.arange(dataset.n_steps) - starts


class WindowSampler:
    """Samples K-step trajectory windows as the released DT/LaMo code does.

    With ``anchor="start"`` (the released code) a window starts at a step drawn uniformly from all
    steps of the dataset, which is exactly the released code's "trajectory with probability
    proportional to its length, then a uniform start in it", and runs forward up to K steps (cut at
    the episode end): short windows come from episode ends. With ``anchor="end"`` (d3rlpy) the drawn
    step is the window's LAST step and the window reaches back up to K steps (cut at the episode
    start): short windows come from episode starts, as the contexts of the first K - 1 steps of an
    evaluation episode. Either way the window is LEFT padded to K:
    padded states are zeros before normalization, padded actions -10 (0 for discrete), padded RTG 0,
    timesteps 0, mask 0. Timesteps are clipped to ``max_ep_len - 1``; RTGs are divided by
    ``rtg_scale``.

    Examples:
        A window starting 2 steps before the episode end is left-padded by one step:

        >>> import numpy as np
        >>> from offline_zoo.data import Dataset
        >>> ds = Dataset.from_arrays(np.zeros((4, 1)), np.zeros((4, 1)), [1, 2, 3, 4], [0, 0, 0, 1])
        >>> b = WindowSampler(ds, context_len=3, rtg_scale=1, max_ep_len=10).window([2])
        >>> b["returns_to_go"][0, :, 0].tolist(), b["mask"][0].tolist()
        ([0.0, 7.0, 4.0], [0.0, 1.0, 1.0])
        >>> b["actions"][0, :, 0].tolist()      # padded actions are -10
        [-10.0, 0.0, 0.0]
    """

    def __init__(
        self,
        dataset: Dataset,
        context_len: int,
        rtg_scale: float,
        max_ep_len: int,
        state_mean: np.ndarray | None = None,
        state_std: np.ndarray | None = None,
        seed: int = 0,
        anchor: str = "start",
    ):
        if context_len < 1:
            raise ValueError(f"context_len={context_len} must be >= 1")
        if anchor not in WINDOW_ANCHORS:
            raise ValueError(f"unknown window anchor {anchor!r}; allowed values: {', '.join(map(repr, WINDOW_ANCHORS))}")
        self.anchor = anchor
        self.dataset = dataset
        self.K = int(context_len)
        self.rtg_scale = float(rtg_scale)
        self.max_ep_len = int(max_ep_len)
        self.rng = np.random.default_rng(seed)
        self.image = dataset.observations.dtype == np.uint8
        if not self.image and state_mean is None:
            state_mean, state_std = dataset.state_mean, dataset.state_std
        self.state_mean = None if state_mean is None else np.asarray(state_mean, np.float32)
        self.state_std = None if state_std is None else np.asarray(state_std, np.float32)
        self._rtg = returns_to_go(dataset) / self.rtg_scale
        self._ends, self._timestep = _step_tables(dataset)
        self._offsets = np.arange(self.K)

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """A random batch of windows (see class docstring for the layout)."""
        drawn = self.rng.integers(0, self.dataset.n_steps, size=batch_size)
        if self.anchor == "start":
            return self.window(drawn)
        starts = np.maximum(drawn - self.K + 1, drawn - self._timestep[drawn])  # cut at the episode start
        return self.window(starts, n_real=drawn - starts + 1)

    def window(self, starts, n_real=None) -> dict[str, np.ndarray]:
        """The windows beginning at the given global step indices (deterministic).

        ``n_real``: real steps of each window (default: up to K, cut at the episode end).
        """
        starts = np.asarray(starts, dtype=np.int64)
        longest = np.minimum(self.K, self._ends[starts] - starts)  # (B,)
        n_real = longest if n_real is None else np.minimum(np.asarray(n_real, dtype=np.int64), longest)
        pad = self.K - n_real
        # position k of the window holds step starts + (k - pad), real when k >= pad
        idx = starts[:, None] + self._offsets[None, :] - pad[:, None]
        mask = idx >= starts[:, None]
        idx = np.where(mask, idx, starts[:, None])  # any valid index; masked out below

        ds = self.dataset
        actions = ds.actions[idx]
        if ds.discrete:
            actions = np.where(mask, actions, 0)
        else:
            actions = np.where(mask[..., None], actions, PAD_ACTION).astype(np.float32)
        rtg = np.where(mask, self._rtg[idx], 0.0).astype(np.float32)[..., None]
        timesteps = np.where(mask, np.minimum(self._timestep[idx], self.max_ep_len - 1), 0)
        if self.image:
            states = self._stack_frames(idx)
            states = np.where(mask[:, :, None, None, None], states, 0).astype(np.uint8)
        else:
            states = ds.observations[idx].astype(np.float32)
            states = np.where(mask.reshape(mask.shape + (1,) * (states.ndim - 2)), states, 0.0)
            states = (states - self.state_mean) / self.state_std
        return {
            "states": states.astype(np.float32) if not self.image else states,
            "actions": actions,
            "rewards": np.where(mask, ds.rewards[idx], 0.0).astype(np.float32)[..., None],
            "returns_to_go": rtg,
            "timesteps": timesteps.astype(np.int64),
            "mask": mask.astype(np.float32),
        }

    def _stack_frames(self, idx: np.ndarray) -> np.ndarray:
        """(B, K, frame_stack, H, W) frames: step t stacks frames t-3..t, repeating the episode's first."""
        return self.dataset.observations[frame_stack_indices(idx, self._timestep, self.dataset.frame_stack)]


class TransitionSampler:
    """Uniform (s, a, r, s', done) batches for single-step algorithms.

    The last step of an episode has ``next_observations`` equal to its own observation and
    ``terminals`` set only when the episode really terminated (a timeout is not a terminal).

    Examples:
        >>> ds = Dataset.from_arrays(np.arange(4.0).reshape(4, 1), np.zeros((4, 1)), rewards=[1, 2, 3, 4],
        ...                          terminals=[0, 1, 0, 0])     # episode 2 is cut by the data's end
        >>> b = TransitionSampler(ds).transitions([0, 1, 3])
        >>> b["observations"][:, 0].tolist(), b["next_observations"][:, 0].tolist()
        ([0.0, 1.0, 3.0], [1.0, 1.0, 3.0])
        >>> b["terminals"].tolist()
        [0.0, 1.0, 0.0]
        >>> {k: v.shape for k, v in TransitionSampler(ds, seed=0).sample(8).items()}
        ... # doctest: +NORMALIZE_WHITESPACE
        {'observations': (8, 1), 'actions': (8, 1), 'rewards': (8,), 'next_observations': (8, 1),
         'terminals': (8,)}
    """

    def __init__(self, dataset: Dataset, seed: int = 0, normalize: bool = False):
        self.dataset = dataset
        self.rng = np.random.default_rng(seed)
        self._ends, self._timestep = _step_tables(dataset)
        self.normalize = normalize and dataset.observations.dtype != np.uint8

    def sample(self, batch_size: int) -> dict[str, np.ndarray]:
        """A random batch of transitions."""
        idx = self.rng.integers(0, self.dataset.n_steps, size=batch_size)
        return self.transitions(idx)

    def transitions(self, idx) -> dict[str, np.ndarray]:
        """The transitions at the given global step indices (deterministic)."""
        ds = self.dataset
        idx = np.asarray(idx, dtype=np.int64)
        last = idx + 1 >= self._ends[idx]
        nxt = np.where(last, idx, idx + 1)
        obs, next_obs = self._obs(idx), self._obs(nxt)
        return {
            "observations": obs,
            "actions": ds.actions[idx],
            "rewards": ds.rewards[idx],
            "next_observations": next_obs,
            "terminals": (ds.terminals[idx] & last).astype(np.float32),
        }

    def _obs(self, idx: np.ndarray) -> np.ndarray:
        ds = self.dataset
        if ds.frame_stack > 1:
            return ds.observations[frame_stack_indices(idx, self._timestep, ds.frame_stack)]
        obs = ds.observations[idx]
        if self.normalize:
            obs = (obs - ds.state_mean) / ds.state_std
        return obs
