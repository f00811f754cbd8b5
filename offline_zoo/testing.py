"""The conformance check every registered algorithm must pass (d3rlpy's ``algo_tester`` idea).

    >>> from offline_zoo.testing import check_algo, tiny_dataset
    >>> check_algo(MyAlgo, tiny_dataset("continuous"))  # doctest: +SKIP

It learns a few steps on a tiny dataset, checks predict shapes and dtypes, runs an evaluation,
checks the save/load round trip (same predictions, same config, same statistics, and training
continues exactly as it would have without the round trip) and that the same seed gives the same
result. Use it for your own algorithms too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from .data.dataset import Dataset
from .data.samplers import TransitionSampler

__all__ = ["tiny_dataset", "TinyImageEnv", "check_algo", "StepCountAlgo", "write_demo_results"]


def tiny_dataset(kind: str = "continuous", n_episodes: int = 6, episode_len: int = 12, seed: int = 0) -> Dataset:
    """A small random dataset for tests and examples.

    ``"continuous"`` has Hopper-v5's shapes (11-dim observations, 3-dim actions) and is bound to
    ``hopper-medium``; ``"discrete"`` has Atari shapes (84x84 uint8 frames, 4 actions, frame stack
    4) and no task (evaluate it with `TinyImageEnv`). Every episode ends with a terminal except
    the last one, which is cut by a time limit.

    Args:
        kind: ``"continuous"`` or ``"discrete"``.
        n_episodes: number of episodes.
        episode_len: steps per episode.
        seed: seed of the random observations, actions and rewards.

    Returns:
        A `Dataset` of ``n_episodes * episode_len`` steps.

    Examples:
        >>> ds = tiny_dataset("continuous", n_episodes=3, episode_len=5)
        >>> ds.observations.shape, ds.actions.shape, ds.task.name
        ((15, 11), (15, 3), 'hopper-medium')
        >>> ds.episode_lengths.tolist()
        [5, 5, 5]
        >>> atari = tiny_dataset("discrete", n_episodes=2)
        >>> atari.observation_shape, atari.observations.dtype.name, atari.action_dim, atari.task
        ((4, 84, 84), 'uint8', 4, None)
        >>> tiny_dataset("images")
        Traceback (most recent call last):
        ...
        ValueError: kind='images': use 'continuous' or 'discrete'
    """
    rng = np.random.default_rng(seed)
    n = n_episodes * episode_len
    ends = np.zeros(n, dtype=bool)
    ends[episode_len - 1 :: episode_len] = True
    terminals = ends.copy()
    terminals[-1] = False  # the last episode is cut by a time limit
    timeouts = ends & ~terminals
    rewards = rng.normal(1.0, 0.5, n).astype(np.float32)
    if kind == "continuous":
        obs = rng.normal(size=(n, 11)).astype(np.float32)
        act = rng.uniform(-1, 1, size=(n, 3)).astype(np.float32)
        return Dataset.from_arrays(obs, act, rewards, terminals, timeouts, task="hopper-medium", source="synthetic")
    if kind == "discrete":
        obs = rng.integers(0, 256, size=(n, 84, 84), dtype=np.uint8)
        act = rng.integers(0, 4, size=n)
        return Dataset.from_arrays(obs, act, rewards, terminals, timeouts, source="synthetic", frame_stack=4, metadata={"n_actions": 4})
    raise ValueError(f"kind={kind!r}: use 'continuous' or 'discrete'")


class TinyImageEnv(gym.Env):
    """A 10-step environment with Atari-shaped observations (4, 84, 84) uint8 and 4 actions.

    Observations are random frames; action 1 is rewarded with 1, the others with 0. Use it as
    ``env_fn`` to evaluate an algorithm trained on ``tiny_dataset("discrete")``.

    Args:
        episode_len: steps until the episode is truncated.

    Examples:
        >>> env = TinyImageEnv(episode_len=3)
        >>> obs, info = env.reset(seed=0)
        >>> obs.shape, obs.dtype.name
        ((4, 84, 84), 'uint8')
        >>> [env.step(1)[1:4] for _ in range(3)]  # (reward, terminated, truncated)
        [(1.0, False, False), (1.0, False, False), (1.0, False, True)]
    """

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, episode_len: int = 10):
        self.episode_len = episode_len

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        if not self.action_space.contains(int(action)):
            raise ValueError(f"action {action!r} is not in Discrete(4)")
        self.t += 1
        return self._obs(), float(action == 1), False, self.t >= self.episode_len, {}

    def _obs(self):
        return self.np_random.integers(0, 256, (4, 84, 84), dtype=np.uint8)


def check_algo(algo_class, dataset: Dataset, env_fn=None, n_steps: int = 3, overrides: dict[str, Any] | None = None) -> None:
    """Check every promise of the `OfflineAlgo` interface; raise AssertionError at the first broken one.

    The algorithm is built with its ``tiny_config`` on the CPU, so the check takes about a second.

    Args:
        algo_class (type): the algorithm class (a subclass of `OfflineAlgo`).
        dataset: a small dataset to train on, e.g. `tiny_dataset`.
        env_fn (Callable[[], gymnasium.Env] | None): builds the evaluation environment when ``dataset`` is not bound to a task.
        n_steps: gradient steps of the first ``learn`` call.
        overrides: config fields on top of ``algo_class.tiny_config(spec)``.

    Examples:
        >>> from offline_zoo import DT
        >>> check_algo(DT, tiny_dataset("continuous"))  # returns None: every promise holds
        >>> check_algo(DT, tiny_dataset("discrete"), env_fn=TinyImageEnv, overrides={"context_len": 2})
    """
    from .algos.base import Spec

    spec = Spec(tuple(dataset.observation_shape), dataset.action_dim, dataset.discrete, dataset.task.name if dataset.task else None, dataset.observations.dtype == np.uint8)
    cfg = {**algo_class.tiny_config(spec), **(overrides or {})}

    def build(seed=0):
        return algo_class(dataset, seed=seed, device="cpu", **cfg)

    algo = build()
    algo.learn(n_steps, progress_bar=False)
    assert algo.num_steps == n_steps, f"learn({n_steps}) made {algo.num_steps} steps"
    metrics = algo.last_metrics
    assert metrics and all(np.isfinite(v) for v in metrics.values()), f"bad metrics {metrics}"
    algo.learn(1, progress_bar=False)
    assert algo.num_steps == n_steps + 1, "a second learn() call must continue counting steps"

    obs = _observations(dataset, 5)
    actions, state = _predict(algo, obs)
    if dataset.discrete:
        assert actions.shape == (5,) and np.issubdtype(actions.dtype, np.integer), f"discrete actions {actions.shape} {actions.dtype}"
        assert ((actions >= 0) & (actions < dataset.action_dim)).all()
    else:
        assert actions.shape == (5, dataset.action_dim), f"continuous actions have shape {actions.shape}"
        assert np.isfinite(actions).all()
    single, _ = algo.predict(obs[0], state=_fresh_state(algo, 1))
    assert single.shape == actions.shape[1:], "a single observation gives a single action"

    result = algo.evaluate(n_episodes=2, env_fn=env_fn, seed=0)
    n_groups = len(algo.default_targets() or [None])
    assert len(result.returns) == n_groups and all(len(r) == 2 for r in result.returns.values())
    if dataset.task is not None:
        assert result.score is not None and np.isfinite(result.score)

    with tempfile.TemporaryDirectory() as tmp:
        path = algo.save(Path(tmp) / "algo")
        loaded = algo_class.load(path, dataset=dataset, device="cpu")
        assert type(loaded) is type(algo) and loaded.config == algo.config, "config differs after load"
        assert loaded.num_steps == algo.num_steps
        for k, v in algo.stats.items():
            np.testing.assert_array_equal(loaded.stats[k], v)
        np.testing.assert_allclose(_predict(loaded, obs)[0], _predict(algo, obs)[0], rtol=0, atol=1e-6, err_msg="predictions differ after load")
        # training continues exactly as without the round trip
        algo.learn(2, progress_bar=False)
        loaded.learn(2, progress_bar=False)
        np.testing.assert_allclose(_predict(loaded, obs)[0], _predict(algo, obs)[0], rtol=1e-5, atol=1e-5, err_msg="training after load diverges")

    a, b = build(seed=7), build(seed=7)
    a.learn(2, progress_bar=False)
    b.learn(2, progress_bar=False)
    np.testing.assert_allclose(_predict(a, obs)[0], _predict(b, obs)[0], rtol=1e-6, atol=1e-6, err_msg="same seed, different result")


class StepCountAlgo:
    """A stand-in with the interface a ``zoo-bench`` run uses, and no model: its score is its step count.

    For examples and tests of the benchmark machinery; a suite names it
    ``"offline_zoo.testing:StepCountAlgo"`` (any importable class with ``__init__(task, ratio,
    seed, source, device, n_steps)``, ``learn``, ``evaluate``, ``save`` and ``load`` can be named so).

    Examples:
        >>> algo = StepCountAlgo("reacher2d-medium").learn(5)
        >>> algo.evaluate()["scores"], StepCountAlgo.load(algo.save("toy.txt")).num_steps
        ({'none': 5.0}, 5)
    """

    def __init__(self, task, ratio: float = 1.0, seed: int = 0, source=None, device: str = "auto", n_steps: int = 0):
        self.num_steps = 0

    def learn(self, n_steps: int, callback=None, progress_bar: bool = False) -> "StepCountAlgo":
        """Count ``n_steps`` more steps."""
        self.num_steps += int(n_steps)
        return self

    def evaluate(self, n_episodes=None, seed: int = 0) -> dict:
        """The step count as the score of a single (non-return-conditioned) group."""
        return {"scores": {"none": float(self.num_steps)}}

    def save(self, path) -> Path:
        """Write the step count to ``path``."""
        Path(path).write_text(str(self.num_steps))
        return Path(path)

    @classmethod
    def load(cls, path, dataset=None, device: str = "auto") -> "StepCountAlgo":
        """The algorithm `save` wrote."""
        algo = cls(None)
        algo.num_steps = int(Path(path).read_text())
        return algo


def write_demo_results(out) -> list:
    """Write made-up results of a small suite into ``out``, in the files ``zoo-bench`` writes.

    Suite ``demo``: DT (two return-to-go targets, "76" and "40") and CQL (none) on
    ``reacher2d-medium`` at ratios 0.1 and 1, seeds 0 and 1, 30 steps evaluated every 10. The
    scores are ``ratio * step (+ seed)`` for DT's target 76, ``step / 2`` for its target 40 and
    ``ratio * step`` for CQL. Returns the runs' `RunSpec`s; for the examples of the reports and plots.

    Examples:
        >>> from offline_zoo.bench import build_report
        >>> specs = write_demo_results("out")
        >>> len(specs), build_report("out").counts()["finished"]
        (8, 8)
    """
    from .bench import Suite, score_run
    from .bench.store import atomic_write_json

    suite = Suite.from_dict({"name": "demo", "algos": ["DT", "CQL"], "seeds": [0, 1],
                             "protocol": {"steps": 30, "eval_every": 10, "last_steps": 20},
                             "rows": [{"task": "reacher2d-medium", "ratios": [0.1, 1.0]}]})
    specs = suite.expand()
    out = Path(out)
    atomic_write_json(out / "bench.json", {"suite": suite.describe(), "planned": {s.run_id: s.to_dict() for s in specs}})
    for s in specs:
        curve = [{"step": t, "scores": {"76": s.ratio * t + s.seed, "40": t / 2} if s.label == "DT" else {"none": s.ratio * t}}
                 for t in s.protocol.eval_steps]
        atomic_write_json(out / "runs" / s.dirname / "curve.json", {"evaluations": curve})
        atomic_write_json(out / "runs" / s.dirname / "result.json", {**s.to_dict(), **score_run(curve, s.protocol)})
    return specs


def _observations(dataset: Dataset, n: int) -> np.ndarray:
    """The first n observations as a policy sees them (frames stacked like the samplers do)."""
    return TransitionSampler(dataset).transitions(np.arange(n))["observations"]


def _fresh_state(algo, n):
    targets = algo.default_targets()
    return algo.new_rollout_state(n, None if targets is None else targets[0])


def _predict(algo, obs):
    return algo.predict(obs, state=_fresh_state(algo, len(obs)))
