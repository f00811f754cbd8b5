"""Batched, exact evaluation: every episode of every return-to-go target stepped together.

All ``n_targets x n_episodes`` environments advance in lock step; each environment step makes ONE
batched ``predict`` call for all live episodes. An environment that finishes leaves the batch (its
rollout state is dropped with ``state.subset``), so no compute is spent on finished episodes — the
reason we keep our own list of gymnasium environments instead of a ``gymnasium.vector`` env, whose
autoreset would keep stepping finished episodes. Episode ``i`` of every target starts from reset
seed ``seed + i``, so targets are compared on the same initial states.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from .tasks import Task

if TYPE_CHECKING:  # pragma: no cover
    from .algos.base import OfflineAlgo

__all__ = ["EvaluationResult", "run_episodes"]

NO_TARGET = None  # the single group of a policy without return conditioning


@dataclass
class EvaluationResult:
    """Returns and normalized scores per return-to-go target.

    ``returns[target]`` / ``lengths[target]`` are arrays over episodes; ``target`` is a float for
    return-conditioned policies and ``None`` otherwise. ``score`` is the mean normalized score of the
    best target (what the LaMo paper reports); ``normalized`` is empty when no task is known.

    Examples:
        >>> r = EvaluationResult({3600.0: np.array([1000.0])}, {3600.0: np.array([300])}, {3600.0: np.array([31.5])})
        >>> r.score, r.best_target
        (31.5, 3600.0)
    """

    returns: dict[Any, np.ndarray]
    lengths: dict[Any, np.ndarray]
    normalized: dict[Any, np.ndarray] = field(default_factory=dict)
    task: str | None = None
    seed: int = 0
    #: gymnasium id of the environment the episodes ran in (None: it has no spec)
    env_id: str | None = None

    def mean_return(self, target=NO_TARGET) -> float:
        """Mean raw return over the episodes of one target (None: the single group)."""
        return float(np.mean(self.returns[target]))

    def mean_normalized(self, target=NO_TARGET) -> float:
        """Mean normalized score over the episodes of one target (None: the single group)."""
        return float(np.mean(self.normalized[target]))

    @property
    def best_target(self):
        """The target with the best mean normalized score (mean return without a task)."""
        table = self.normalized or self.returns
        return max(table, key=lambda t: float(np.mean(table[t])))

    @property
    def score(self) -> float | None:
        """Mean normalized score of the best target (None without a task)."""
        if not self.normalized:
            return None
        return self.mean_normalized(self.best_target)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (targets become strings)."""

        def key(t):
            return "none" if t is None else f"{t:g}"

        return {
            "task": self.task,
            "env_id": self.env_id,
            "seed": self.seed,
            "score": self.score,
            "best_target": self.best_target,
            "scores": {key(t): float(np.mean(v)) for t, v in self.normalized.items()},
            "mean_returns": {key(t): float(np.mean(v)) for t, v in self.returns.items()},
            "returns": {key(t): v.tolist() for t, v in self.returns.items()},
            "lengths": {key(t): v.tolist() for t, v in self.lengths.items()},
        }

    def __repr__(self) -> str:
        parts = [
            f"{'-' if t is None else f'{t:g}'}: return {np.mean(r):.1f}"
            + (f" (normalized {np.mean(self.normalized[t]):.1f})" if t in self.normalized else "")
            for t, r in self.returns.items()
        ]
        return f"EvaluationResult({self.task}, {len(next(iter(self.returns.values())))} episodes/target; " + "; ".join(parts) + ")"


def run_episodes(
    algo: "OfflineAlgo",
    env_fn: Callable[[], Any],
    n_episodes: int,
    target_returns: Sequence[float] | None,
    seed: int = 0,
    task: Task | None = None,
    max_episode_steps: int | None = None,
    progress_bar: bool = False,
) -> EvaluationResult:
    """Roll out ``algo`` for ``n_episodes`` per target, all episodes in one batch.

    ``target_returns=None`` runs one group for a policy without return conditioning.
    ``max_episode_steps`` caps an episode in addition to the environment's own time limit.
    ``OfflineAlgo.evaluate`` calls it with the task's environment.

    Args:
        algo: the trained algorithm.
        env_fn: builds one environment (called once per episode).
        n_episodes: episodes per target.
        target_returns: return-to-go targets (raw returns), or None.
        seed: episode ``i`` of every target is reset with seed ``seed + i``.
        task: the task whose reference scores normalize the returns (None: no normalized scores).
        max_episode_steps: optional cap on the steps of an episode.
        progress_bar: show a progress bar over finished episodes.

    Examples:
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import TinyImageEnv, tiny_dataset
        >>> algo = DT(tiny_dataset("discrete"), device="cpu", hidden_size=16, n_layer=1, context_len=4, target_returns=(10.0,))
        >>> result = run_episodes(algo, TinyImageEnv, n_episodes=2, target_returns=[10.0, 5.0], max_episode_steps=4)
        >>> {target: lengths.tolist() for target, lengths in result.lengths.items()}
        {10.0: [4, 4], 5.0: [4, 4]}
        >>> result.score is None  # no task: no normalized score
        True
    """
    if int(n_episodes) < 1:
        raise ValueError(f"n_episodes={n_episodes!r} must be >= 1")
    targets: list = list(target_returns) if target_returns else [NO_TARGET]
    n_total = len(targets) * n_episodes
    envs = [env_fn() for _ in range(n_total)]
    env_id = getattr(getattr(envs[0], "spec", None), "id", None) if envs else None
    per_env_target = np.array([t if t is not None else np.nan for t in targets for _ in range(n_episodes)], dtype=np.float64)
    try:
        first = [env.reset(seed=seed + (i % n_episodes))[0] for i, env in enumerate(envs)]
        obs = np.stack([np.asarray(o) for o in first])
        state = algo.new_rollout_state(n_total, None if target_returns is None else per_env_target)
        active = np.arange(n_total)
        ep_return = np.zeros(n_total, dtype=np.float64)
        ep_len = np.zeros(n_total, dtype=np.int64)
        with _maybe_progress(progress_bar, n_total) as bar:
            while len(active):
                actions, state = algo.predict(obs, state=state)
                rewards = np.zeros(len(active), dtype=np.float64)
                done = np.zeros(len(active), dtype=bool)
                next_obs = []
                for j, e in enumerate(active):
                    o, r, terminated, truncated, _ = envs[e].step(actions[j])
                    rewards[j] = r
                    ep_len[e] += 1
                    done[j] = terminated or truncated or (max_episode_steps is not None and ep_len[e] >= max_episode_steps)
                    next_obs.append(np.asarray(o))
                ep_return[active] += rewards
                if state is not None:
                    state.record_reward(rewards)
                keep = ~done
                if not keep.all():
                    bar(int(done.sum()))
                    active = active[keep]
                    if state is not None and len(active):
                        state = state.subset(np.flatnonzero(keep))
                obs = np.stack([o for o, k in zip(next_obs, keep) if k]) if len(active) else obs[:0]
    finally:
        for env in envs:
            env.close()
    returns, lengths, normalized = {}, {}, {}
    for g, t in enumerate(targets):
        sl = slice(g * n_episodes, (g + 1) * n_episodes)
        returns[t], lengths[t] = ep_return[sl].copy(), ep_len[sl].copy()
        if task is not None:
            normalized[t] = np.asarray(task.normalized_score(returns[t]), dtype=np.float64).reshape(-1)
    return EvaluationResult(returns, lengths, normalized, task=task.name if task else None, seed=seed, env_id=env_id)


class _maybe_progress:
    """A rich progress bar over finished episodes, or nothing."""

    def __init__(self, enabled: bool, total: int):
        self.enabled, self.total = enabled, total

    def __enter__(self):
        if not self.enabled:
            return lambda n: None
        from rich.progress import Progress

        self._p = Progress(transient=True)
        self._p.start()
        tid = self._p.add_task("evaluating", total=self.total)
        return lambda n: self._p.advance(tid, n)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.stop()
        return False
