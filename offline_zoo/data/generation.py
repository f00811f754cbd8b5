"""D4RL-style datasets generated locally: behaviour policies and rollouts written in Minari's format.

D4RL's recipe for the MuJoCo ``*-medium`` datasets is: train a policy online with SAC, stop it
early at about one third of expert skill, then roll that stochastic policy out for 1M transitions,
recording terminals (the env terminated) and timeouts (the 1000-step limit). This module
reproduces it on gymnasium's v5 MuJoCo environments and offline-zoo's Reacher2d:

- :func:`train_behaviour_policy` trains d3rlpy's online SAC (``fit_online``) on a task's
  environment, evaluates the actor periodically and stops once its average normalized score
  reaches the "medium" band; it saves only the actor's weights (a small ``.pt`` of tensors,
  loadable with ``torch.load(..., weights_only=True)``) and a json with its measured score.
- :func:`load_policy` loads a behaviour policy: the ones shipped in
  ``offline_zoo/assets/policies/<domain>.pt`` by default.
- :func:`generate_dataset` rolls a behaviour policy out (deterministic by seed) and writes a
  Minari dataset ``offline-zoo/<task.sources['generated']>-v0`` under
  :func:`~offline_zoo.data.loaders.generated_dir` (``$OFFLINE_ZOO_HOME/datasets``), which
  ``load_dataset(task, source="generated")`` opens.

Reacher2d's "medium" behaviour policy is not a network: it is an inverse-kinematics controller
made deliberately imperfect (:class:`Reacher2dMediumPolicy`, parameters in
``assets/policies/reacher2d.json``), calibrated so that the 50-episode dataset averages about
36 normalized like the paper's PPO agent (see docs/datasets-generated.md).

Examples:
    >>> from offline_zoo.data.generation import MEDIUM_TARGETS, generate_dataset, load_policy
    >>> policy = load_policy("hopper-medium")           # the shipped assets/policies/hopper.pt
    >>> low, high = MEDIUM_TARGETS["hopper"][1]
    >>> low <= policy.info["normalized"] <= high         # D4RL's "medium" skill
    True
    >>> ds = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets")   # a tiny dataset
    >>> ds.source, ds.n_episodes
    ('generated', 2)
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..files import atomic_write_text
from ..tasks import Task, get_task
from ..versions import package_versions
# the reading side of generated datasets lives below generation (imports go one way); these names
# stay importable from here as before
from .loaders import generated_dataset_id, generated_dataset_path, generation_metadata, load_generated, open_generated  # noqa: F401

__all__ = [
    "MEDIUM_TARGETS",
    "POLICY_DIR",
    "MLPActor",
    "BehaviourPolicy",
    "Reacher2dMediumPolicy",
    "GenerationError",
    "generation_request",
    "train_behaviour_policy",
    "save_policy",
    "load_policy",
    "shipped_policies",
    "evaluate_policy",
    "rollout",
    "generate_dataset",
    "calibrate_reacher2d_policy",
    "generatable_tasks",
]

#: where the shipped behaviour policies live (``<domain>.pt`` + ``<domain>.json``).
POLICY_DIR = Path(__file__).resolve().parent.parent / "assets" / "policies"

#: D4RL "medium" skill per domain: (target normalized score, accepted band (low, high)).
#: D4RL's medium datasets average ~44 (hopper), ~41 (halfcheetah), ~62-75 (walker2d); the
#: LaMo paper's Reacher2d medium dataset averages 36.
MEDIUM_TARGETS: dict[str, tuple[float, tuple[float, float]]] = {
    "hopper": (44.0, (40.0, 50.0)),
    "halfcheetah": (41.0, (38.0, 45.0)),
    "walker2d": (68.0, (62.0, 76.0)),
    "reacher2d": (36.0, (30.0, 42.0)),
}

#: default size of a generated dataset (D4RL's MuJoCo datasets: 1M transitions; Reacher2d: 50 episodes).
DEFAULT_TRANSITIONS = 1_000_000
DEFAULT_REACHER_EPISODES = 50

_LOG_STD_MIN, _LOG_STD_MAX = -20.0, 2.0  # d3rlpy's NormalPolicy clamp


class GenerationError(RuntimeError):
    """A behaviour policy or generated dataset cannot be produced or loaded (message says why).

    Examples:
        >>> generate_dataset("hopper-medium-replay")   # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        offline_zoo.data.generation.GenerationError: cannot generate 'hopper-medium-replay': only the medium level is generated for now (...). Generatable tasks: halfcheetah-medium, hopper-medium, reacher2d-medium, walker2d-medium
    """


# ---------------------------------------------------------------------------------------------
# behaviour policies
# ---------------------------------------------------------------------------------------------
def _torch():
    import torch

    return torch


class MLPActor:
    """A tanh-Gaussian MLP actor (SAC's) as plain arrays: ``a = tanh(mu + std * eps)``.

    The forward pass runs in numpy (float64), so rollouts are fast and reproducible; the weights
    come from / go to a torch state dict of tensors (keys ``trunk.{2i}.weight/bias`` for the
    hidden layers, ``mu.*``, ``logstd.*``), the layout of d3rlpy's ``NormalPolicy``.
    The deterministic action is ``tanh(mu(obs))``; :meth:`act` with an ``rng`` samples the
    policy's own Gaussian with that numpy generator.

    Args:
        obs_dim: size of an observation.
        act_dim: size of an action.
        hidden: hidden layer widths (ReLU).
        state_dict: weights (torch tensors or numpy arrays); random (seed 0) when omitted.

    Examples:
        >>> actor = MLPActor(3, 2, hidden=(8,))
        >>> actor.act(np.zeros((4, 3))).shape
        (4, 2)
        >>> a = actor.act(np.zeros(3), rng=np.random.default_rng(0))
        >>> bool(np.all(np.abs(a) <= 1))
        True
    """

    def __init__(self, obs_dim: int, act_dim: int, hidden: tuple[int, ...] = (256, 256), state_dict: dict | None = None):
        self.obs_dim, self.act_dim, self.hidden = int(obs_dim), int(act_dim), tuple(int(h) for h in hidden)
        shapes = {}
        d = self.obs_dim
        for i, h in enumerate(self.hidden):
            shapes[f"trunk.{2 * i}.weight"], shapes[f"trunk.{2 * i}.bias"] = (h, d), (h,)
            d = h
        for head in ("mu", "logstd"):
            shapes[f"{head}.weight"], shapes[f"{head}.bias"] = (self.act_dim, d), (self.act_dim,)
        if state_dict is None:
            rng = np.random.default_rng(0)
            state_dict = {k: (rng.standard_normal(s) / np.sqrt(s[-1]) if len(s) == 2 else np.zeros(s)) for k, s in shapes.items()}
        params = {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, dtype=np.float32) for k, v in state_dict.items()}
        missing = sorted(set(shapes) - set(params))
        unexpected = sorted(set(params) - set(shapes))
        wrong = sorted(k for k in shapes if k in params and params[k].shape != shapes[k])
        if missing or unexpected or wrong:
            raise GenerationError(
                f"actor weights do not match an MLP {self.obs_dim}->{list(self.hidden)}->{self.act_dim}: "
                f"missing {missing}, unexpected {unexpected}, wrong shape {wrong}"
            )
        self.params = params
        self._layers = [(params[f"trunk.{2 * i}.weight"].astype(np.float64).T, params[f"trunk.{2 * i}.bias"].astype(np.float64)) for i in range(len(self.hidden))]
        self._mu = (params["mu.weight"].astype(np.float64).T, params["mu.bias"].astype(np.float64))
        self._logstd = (params["logstd.weight"].astype(np.float64).T, params["logstd.bias"].astype(np.float64))

    def state_dict(self) -> dict:
        """The weights as a dict of float32 torch tensors (what ``<domain>.pt`` holds)."""
        torch = _torch()
        return {k: torch.from_numpy(v.copy()) for k, v in self.params.items()}

    def distribution(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(mu, std)`` of the pre-tanh Gaussian for one observation or a batch."""
        x = np.asarray(obs, dtype=np.float64)
        single = x.ndim == 1
        h = x.reshape(-1, self.obs_dim)
        for w, b in self._layers:
            h = np.maximum(h @ w + b, 0.0)
        mu = h @ self._mu[0] + self._mu[1]
        logstd = np.clip(h @ self._logstd[0] + self._logstd[1], _LOG_STD_MIN, _LOG_STD_MAX)
        std = np.exp(logstd)
        return (mu[0], std[0]) if single else (mu, std)

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None, noise: float = 1.0) -> np.ndarray:
        """Action(s) for ``obs``: deterministic ``tanh(mu)`` without ``rng``, else a sample whose
        pre-tanh std is the policy's std times ``noise``."""
        mu, std = self.distribution(obs)
        if rng is None or noise == 0:
            return np.tanh(mu)
        return np.tanh(mu + noise * std * rng.standard_normal(mu.shape))


@dataclass
class BehaviourPolicy:
    """A behaviour policy ready to roll out: a callable ``(obs, rng) -> action`` plus its record.

    ``info`` is the policy's json record (domain, how it was trained, its measured score...).
    ``noise`` scales the policy's own stochasticity (``0`` = deterministic, ``1`` = as trained).

    Examples:
        >>> pol = load_policy("reacher2d-medium")
        >>> pol.domain
        'reacher2d'
    """

    domain: str
    act_fn: Any
    info: dict = field(default_factory=dict)
    noise: float = 1.0

    def __call__(self, obs: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        return self.act_fn.act(obs, rng=rng, noise=self.noise)

    def reset(self, rng: np.random.Generator | None = None) -> None:
        """Called at every episode start (stateful controllers reset their internal state)."""
        reset = getattr(self.act_fn, "reset", None)
        if reset is not None:
            reset(rng)


class Reacher2dMediumPolicy:
    """Reacher2d's "medium agent": an inverse-kinematics PD controller made deliberately imperfect.

    Each step it aims the joints at the inverse-kinematics solution for the target (elbow side
    chosen once per episode), with a PD law ``torque = kp * (q* - q) - kd * qdot`` clipped to
    [-1, 1]. Its imperfections, drawn from the rollout's seeded generator:

    - an aiming error: per episode the controller aims at ``target + offset`` with ``offset``
      uniform in a disc of radius ``aim_error`` (a "miscalibrated" agent misses some targets);
    - hesitation: the first ``k`` steps of each episode (``k`` uniform in ``hesitation``) are
      random torques (an agent that has not yet "noticed" the target);
    - Gaussian action noise of std ``action_noise``.

    The defaults are the calibrated parameters (``assets/policies/reacher2d.json``): the episodes
    with a return above 20 (the filter of the released generator) average about 36 (= normalized
    score), like the paper's PPO medium agent's dataset; over all episodes it scores about 24.
    ``noise`` scales the action noise only (the hesitation and the aiming error remain).

    Examples:
        >>> pol = Reacher2dMediumPolicy()
        >>> pol.reset(np.random.default_rng(0))
        >>> obs = np.zeros(12); obs[2:4] = 1.0; obs[8:10] = (0.7, 0.0)
        >>> pol.act(obs, rng=np.random.default_rng(0)).shape
        (2,)
    """

    def __init__(
        self,
        kp: float = 6.0,
        kd: float = 2.0,
        aim_error: float = 0.03,
        hesitation: tuple[int, int] = (25, 60),
        action_noise: float = 0.1,
    ):
        self.kp, self.kd = float(kp), float(kd)
        lo, hi = (int(h) for h in hesitation)
        if not 0 <= lo <= hi:
            raise ValueError(f"hesitation must be (lo, hi) with 0 <= lo <= hi, got {hesitation!r}")
        self.aim_error, self.hesitation, self.action_noise = float(aim_error), (lo, hi), float(action_noise)
        self._offset = np.zeros(2)
        self._delay = 0
        self._elbow_up = True
        self._t = 0

    def params(self) -> dict:
        """The controller's imperfections: hesitation range, aiming error, action noise, PD gains."""
        return {"kp": self.kp, "kd": self.kd, "aim_error": self.aim_error, "hesitation": list(self.hesitation), "action_noise": self.action_noise}

    def reset(self, rng: np.random.Generator | None = None) -> None:
        """Start a new episode: draw its hesitation length, aiming error and elbow side from ``rng``."""
        rng = rng if rng is not None else np.random.default_rng(0)
        r = self.aim_error * math.sqrt(rng.uniform())
        a = rng.uniform(-math.pi, math.pi)
        self._offset = np.array([r * math.cos(a), r * math.sin(a)])
        self._delay = int(rng.integers(self.hesitation[0], self.hesitation[1] + 1))
        self._elbow_up = bool(rng.uniform() < 0.5)
        self._t = 0

    def act(self, obs: np.ndarray, rng: np.random.Generator | None = None, noise: float = 1.0) -> np.ndarray:
        """The torque for one Reacher2d observation: random while hesitating, then PD control towards
        the inverse-kinematics joint angles of the (mis-aimed) target, plus ``noise`` x the action noise."""
        from ..envs.reacher2d import Reacher2dEnv

        obs = np.asarray(obs, dtype=np.float64).reshape(-1)
        self._t += 1
        if self._t <= self._delay:
            return rng.uniform(-1.0, 1.0, size=2) if rng is not None else np.zeros(2)
        q = np.arctan2(obs[0:2], obs[2:4])
        qdot = obs[4:6] / 0.15  # the observation holds dt * qvel
        aim = obs[8:10] + self._offset
        radius = float(np.linalg.norm(aim))
        reach_lo = abs(Reacher2dEnv.UPPER_ARM - Reacher2dEnv.FOREARM_TO_TIP) + 1e-3
        reach_hi = Reacher2dEnv.UPPER_ARM + Reacher2dEnv.FOREARM_TO_TIP - 1e-3
        aim = aim * (min(max(radius, reach_lo), reach_hi) / max(radius, 1e-9))
        try:
            q_star = Reacher2dEnv.inverse_kinematics(aim, elbow_up=self._elbow_up)
        except ValueError:
            q_star = Reacher2dEnv.inverse_kinematics(aim, elbow_up=not self._elbow_up)
        err = q_star - q
        err = (err + np.pi) % (2.0 * np.pi) - np.pi
        # don't wrap the elbow through its joint limit: it cannot pass +-pi
        err[1] = q_star[1] - q[1]
        torque = self.kp * err - self.kd * qdot
        if rng is not None and self.action_noise > 0 and noise > 0:
            torque = torque + noise * self.action_noise * rng.standard_normal(2)
        return np.clip(torque, -1.0, 1.0)


def _policy_paths(domain: str, directory: str | os.PathLike | None = None) -> tuple[Path, Path]:
    d = Path(directory) if directory is not None else POLICY_DIR
    return d / f"{domain}.pt", d / f"{domain}.json"


def shipped_policies() -> dict[str, dict]:
    """The behaviour policies shipped with the package: ``{domain: json record}``.

    Examples:
        >>> "reacher2d" in shipped_policies()
        True
    """
    out = {}
    if POLICY_DIR.is_dir():
        for p in sorted(POLICY_DIR.glob("*.json")):
            out[p.stem] = json.loads(p.read_text())
    return out


def save_policy(actor: MLPActor | Reacher2dMediumPolicy, domain: str, info: dict, directory: str | os.PathLike | None = None) -> Path:
    """Write a behaviour policy: ``<domain>.pt`` (tensors only) + ``<domain>.json`` (its record).

    Returns the path of the json. A :class:`Reacher2dMediumPolicy` has no weights: its parameters
    go into the json.

    Examples:
        >>> p = save_policy(MLPActor(3, 2, hidden=(8,)), "toy", {"normalized": 1.0}, directory="policies")
        >>> p.name, sorted(f.name for f in p.parent.iterdir())
        ('toy.json', ['toy.json', 'toy.pt'])
        >>> load_policy("toy", directory="policies").info["hidden"]
        [8]
    """
    pt, js = _policy_paths(domain, directory)
    pt.parent.mkdir(parents=True, exist_ok=True)
    record = dict(info)
    record["domain"] = domain
    if isinstance(actor, MLPActor):
        torch = _torch()
        torch.save(actor.state_dict(), pt)
        record.update(kind="mlp", obs_dim=actor.obs_dim, act_dim=actor.act_dim, hidden=list(actor.hidden), weights=pt.name)
    elif isinstance(actor, Reacher2dMediumPolicy):
        record.update(kind="reacher2d-ik", params=actor.params())
    else:
        raise TypeError(f"cannot save a behaviour policy of type {type(actor).__name__}")
    atomic_write_text(js, json.dumps(record, indent=2, sort_keys=True) + "\n")
    return js


def load_policy(task_or_domain: str | Task, directory: str | os.PathLike | None = None, noise: float = 1.0) -> BehaviourPolicy:
    """Load a behaviour policy by task (``"hopper-medium"``) or domain (``"hopper"``).

    Weights are read with ``torch.load(..., weights_only=True)``. ``directory`` defaults to the
    shipped ``offline_zoo/assets/policies``.

    Examples:
        >>> load_policy("reacher2d").info["kind"]
        'reacher2d-ik'
        >>> load_policy("nosuchdomain")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        offline_zoo.data.generation.GenerationError: no behaviour policy for domain 'nosuchdomain' ...
    """
    if isinstance(task_or_domain, Task):
        domain = task_or_domain.domain
    else:
        name = str(task_or_domain).strip().lower()
        try:
            domain = get_task(name).domain
        except KeyError:
            domain = name
    pt, js = _policy_paths(domain, directory)
    if not js.exists():
        have = sorted(p.stem for p in js.parent.glob("*.json")) if js.parent.is_dir() else []
        raise GenerationError(
            f"no behaviour policy for domain {domain!r} in {js.parent} (have: {', '.join(have) or 'none'}); "
            f"train one with `zoo-data train-policy {domain}-medium`"
        )
    info = json.loads(js.read_text())
    kind = info.get("kind", "mlp")
    if kind == "reacher2d-ik":
        return BehaviourPolicy(domain, Reacher2dMediumPolicy(**info.get("params", {})), info, noise)
    if kind != "mlp":
        raise GenerationError(f"{js}: unknown behaviour policy kind {kind!r}")
    if not pt.exists():
        raise GenerationError(f"{js} names weights {pt.name!r} but {pt} does not exist")
    torch = _torch()
    state = torch.load(pt, map_location="cpu", weights_only=True)
    actor = MLPActor(info["obs_dim"], info["act_dim"], tuple(info["hidden"]), state_dict=state)
    return BehaviourPolicy(domain, actor, info, noise)


# ---------------------------------------------------------------------------------------------
# rollouts
# ---------------------------------------------------------------------------------------------
def _episode_seeds(seed: int, n: int) -> np.ndarray:
    return np.random.SeedSequence([int(seed), 0x0FF1CE]).generate_state(max(n, 1), dtype=np.uint32)[:n]


def rollout(
    task: str | Task,
    policy: BehaviourPolicy,
    n_transitions: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    progress: bool = False,
    min_return: float | None = None,
    max_attempts: int | None = None,
) -> dict[str, Any]:
    """Roll ``policy`` out in the task's environment; deterministic by ``seed``.

    Stops after ``n_episodes`` whole episodes, or as soon as ``n_transitions`` steps are recorded
    (the last episode is then cut and marked as a timeout, like D4RL's last episode). Episode ``i``
    resets the env with its own seed drawn from ``seed`` and samples actions from its own generator.
    ``min_return`` keeps only episodes whose return exceeds it (the Reacher2d generator of the
    LaMo release kept episodes with return > 20); ``max_attempts`` bounds the episodes tried.

    Returns a dict of per-episode lists: ``observations`` (T+1 each, the final one included),
    ``actions``, ``rewards``, ``terminations``, ``truncations``, ``seeds`` (reset seeds), plus
    ``returns`` and ``attempted`` (episodes rolled out, kept or not).

    Examples:
        >>> pol = load_policy("reacher2d-medium")
        >>> out = rollout("reacher2d-medium", pol, n_episodes=2, seed=0)
        >>> [len(a) for a in out["actions"]], [len(o) for o in out["observations"]]
        ([100, 100], [101, 101])
    """
    from ..envs import make_env

    task = get_task(task)
    if (n_transitions is None) == (n_episodes is None):
        raise ValueError("pass exactly one of n_transitions and n_episodes")
    limit = int(n_transitions if n_transitions is not None else n_episodes)
    if limit < 1:
        raise ValueError(f"the number of {'transitions' if n_transitions is not None else 'episodes'} must be >= 1, got {limit}")
    if max_attempts is None:
        max_attempts = (limit * 20 if n_episodes is not None else limit) + 1000
    env = make_env(task)
    out: dict[str, list] = {k: [] for k in ("observations", "actions", "rewards", "terminations", "truncations", "seeds", "returns")}
    total = 0
    attempted = 0
    bar = None
    if progress:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        bar = Progress(
            TextColumn(f"[bold]{task.name}[/] rollouts"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),  # stdout stays clean for the results
        )
        bar.start()
        bar_task = bar.add_task("rollout", total=limit)
    try:
        # episode seeds are drawn in blocks so any number of episodes can be attempted
        block = 1024
        seeds = _episode_seeds(seed, block)
        while (total < limit if n_transitions is not None else len(out["returns"]) < limit):
            if attempted >= max_attempts:
                raise GenerationError(
                    f"{task.name}: only {len(out['returns'])} of the episodes kept after {attempted} attempts "
                    f"(min_return={min_return}); the behaviour policy is too weak for this filter"
                )
            if attempted >= len(seeds):
                seeds = _episode_seeds(seed, len(seeds) + block)
            ep_seed = int(seeds[attempted])
            attempted += 1
            rng = np.random.default_rng([ep_seed, 1])
            obs, _ = env.reset(seed=ep_seed)
            policy.reset(np.random.default_rng([ep_seed, 2]))
            obs_l, act_l, rew_l = [np.asarray(obs)], [], []
            terminated = truncated = False
            room = limit - total if n_transitions is not None else None
            while not (terminated or truncated):
                action = np.asarray(policy(obs, rng), dtype=np.float32)
                obs, reward, terminated, truncated, _ = env.step(action)
                obs_l.append(np.asarray(obs))
                act_l.append(action)
                rew_l.append(float(reward))
                if room is not None and len(act_l) >= room and not (terminated or truncated):
                    truncated = True  # cut by the requested dataset size
            ep_return = float(np.sum(rew_l))
            if min_return is not None and ep_return <= min_return:
                continue
            n = len(act_l)
            term = np.zeros(n, dtype=bool)
            trunc = np.zeros(n, dtype=bool)
            term[-1] = bool(terminated)
            trunc[-1] = not bool(terminated)
            out["observations"].append(np.stack(obs_l))
            out["actions"].append(np.stack(act_l))
            out["rewards"].append(np.asarray(rew_l, dtype=np.float64))
            out["terminations"].append(term)
            out["truncations"].append(trunc)
            out["seeds"].append(ep_seed)
            out["returns"].append(ep_return)
            total += n
            if bar is not None:
                bar.update(bar_task, completed=min(total if n_transitions is not None else len(out["returns"]), limit))
    finally:
        if bar is not None:
            bar.stop()
        env.close()
    out["attempted"] = attempted
    return out


def evaluate_policy(task: str | Task, policy: BehaviourPolicy, n_episodes: int = 10, seed: int = 10_000) -> dict[str, float]:
    """Average return and normalized score of a behaviour policy over ``n_episodes`` (seeded).

    Examples:
        >>> r = evaluate_policy("reacher2d-medium", load_policy("reacher2d"), n_episodes=2)
        >>> sorted(r)
        ['max_return', 'mean_return', 'min_return', 'n_episodes', 'normalized', 'std_return']
    """
    task = get_task(task)
    rets = np.asarray(rollout(task, policy, n_episodes=n_episodes, seed=seed)["returns"])
    return {
        "mean_return": float(rets.mean()),
        "std_return": float(rets.std()),
        "min_return": float(rets.min()),
        "max_return": float(rets.max()),
        "normalized": float(task.normalized_score(rets.mean())),
        "n_episodes": int(n_episodes),
    }


# ---------------------------------------------------------------------------------------------
# training (d3rlpy online SAC, early-stopped at medium skill)
# ---------------------------------------------------------------------------------------------
class _StopTraining(Exception):
    pass


def _actor_from_d3rlpy(algo, obs_dim: int, act_dim: int, hidden: tuple[int, ...]) -> MLPActor:
    src = algo.impl.policy.state_dict()
    state = {}
    for k, v in src.items():
        if k.startswith("_encoder._layers."):
            state["trunk." + k[len("_encoder._layers."):]] = v.detach().cpu().float().clone()
        elif k.startswith("_mu."):
            state["mu." + k[4:]] = v.detach().cpu().float().clone()
        elif k.startswith("_logstd."):
            state["logstd." + k[8:]] = v.detach().cpu().float().clone()
        else:
            raise GenerationError(f"unexpected d3rlpy policy weight {k!r}: only MLP NormalPolicy actors are supported")
    return MLPActor(obs_dim, act_dim, hidden, state_dict=state)


def train_behaviour_policy(
    task: str | Task,
    steps: int = 300_000,
    seed: int = 0,
    target_normalized: float | None = None,
    band: tuple[float, float] | None = None,
    eval_every: int = 5_000,
    eval_episodes: int = 10,
    final_eval_episodes: int = 20,
    hidden: tuple[int, ...] = (128, 128),
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    random_steps: int = 2_000,
    directory: str | os.PathLike | None = None,
    save: bool = True,
    threads: int = 1,
    max_seconds: float | None = None,
    log: Callable[[str], None] | None = print,
) -> BehaviourPolicy:
    """Train a behaviour policy with d3rlpy's online SAC and stop it at "medium" skill.

    Every ``eval_every`` environment steps the actor is evaluated (``eval_episodes`` seeded
    episodes, sampling its own Gaussian, exactly as :func:`generate_dataset` will roll it out).
    Training stops at the first evaluation whose average normalized score reaches halfway between
    the medium band's floor and the target (``band`` and ``target_normalized`` default to
    :data:`MEDIUM_TARGETS`); the last few snapshots near the band are re-measured on
    ``final_eval_episodes`` episodes and the one closest to the target, preferably inside the band,
    is kept (the last one when the band is never approached within ``steps``). When ``save``, the
    actor's weights (only) are written to ``<directory>/<domain>.pt`` with a json
    record (default directory: the package's ``assets/policies``).

    Args:
        task: task name or :class:`Task` (e.g. ``"hopper-medium"``).
        steps: maximum environment steps of online training.
        seed: seeds torch, d3rlpy and the environment.
        target_normalized: the normalized score aimed at (default: the domain's D4RL medium level).
        band: accepted (low, high) normalized scores.
        eval_every: environment steps between evaluations (halved near the band).
        eval_episodes: episodes per evaluation.
        final_eval_episodes: episodes of the final re-measurement of the snapshots near the band.
        hidden: SAC's hidden layer widths, actor and critics (small nets train quickly on CPU).
        batch_size: SAC's batch size.
        learning_rate: learning rate of SAC's actor, critics and temperature.
        random_steps: SAC's initial steps with uniformly random actions.
        directory: where ``<domain>.pt`` / ``<domain>.json`` go (default: the package's
            ``assets/policies``).
        save: write the policy (False: only return it).
        threads: torch CPU threads.
        max_seconds: wall-clock budget; training stops at the first evaluation past it (the
            json then records a score below the band).
        log: where progress lines go (None: silent).

    Examples:
        >>> pol = train_behaviour_policy("hopper-medium", steps=300_000, seed=0)  # doctest: +SKIP
    """
    import d3rlpy
    import torch

    from ..envs import make_env

    task = get_task(task)
    if task.family == "reacher2d":
        raise GenerationError(
            "Reacher2d's medium behaviour policy is an inverse-kinematics controller, not a SAC agent: "
            "use calibrate_reacher2d_policy() (zoo-data train-policy reacher2d-medium does)"
        )
    if task.discrete:
        raise GenerationError(f"{task.name}: behaviour-policy training supports continuous-action tasks only")
    if task.family != "mujoco":
        raise GenerationError(f"{task.name}: behaviour-policy training supports the MuJoCo tasks only")
    default_target, default_band = MEDIUM_TARGETS.get(task.domain, (40.0, (35.0, 45.0)))
    target = float(target_normalized if target_normalized is not None else default_target)
    if band is None:
        band = default_band if target_normalized is None else (target - 4.0, target + 6.0)
    lo, hi = float(band[0]), float(band[1])
    log = log or (lambda s: None)
    torch.set_num_threads(int(threads))
    d3rlpy.seed(int(seed))
    env = make_env(task)
    env.reset(seed=int(seed))
    env.action_space.seed(int(seed))
    obs_dim = int(np.prod(env.observation_space.shape))
    act_dim = int(np.prod(env.action_space.shape))
    encoder = d3rlpy.models.encoders.VectorEncoderFactory(hidden_units=list(hidden))
    sac = d3rlpy.algos.SACConfig(
        batch_size=batch_size,
        actor_learning_rate=learning_rate,
        critic_learning_rate=learning_rate,
        temp_learning_rate=learning_rate,
        actor_encoder_factory=encoder,
        critic_encoder_factory=encoder,
    ).create(device="cpu")
    sac.build_with_env(env)
    history: list[dict] = []
    candidates: list[tuple[int, MLPActor, dict]] = []
    last: dict[str, Any] = {}
    fine = {"on": False}
    # short evaluations are noisy: stop once one reaches halfway between the band's floor and the target
    stop_at = 0.5 * (lo + target)
    start = time.time()

    def callback(algo, epoch: int, total_step: int) -> None:
        # d3rlpy 2.8 calls this after every environment step; near the band, evaluate twice as often
        every = max(1, int(eval_every) // 2) if fine["on"] else int(eval_every)
        if total_step % every != 0:
            return
        actor = _actor_from_d3rlpy(algo, obs_dim, act_dim, hidden)
        res = evaluate_policy(task, BehaviourPolicy(task.domain, actor), n_episodes=eval_episodes, seed=10_000 + total_step)
        res["step"] = int(total_step)
        history.append(res)
        last.update(step=int(total_step), actor=actor, result=res)
        log(
            f"[{task.domain}] step {total_step:>7d}  return {res['mean_return']:8.1f} +- {res['std_return']:6.1f}  "
            f"normalized {res['normalized']:5.1f}  ({time.time() - start:5.0f}s)"
        )
        if res["normalized"] >= 0.6 * lo:
            fine["on"] = True
        if res["normalized"] >= lo - 10.0:
            candidates.append((int(total_step), actor, res))
            del candidates[:-4]
        if res["normalized"] >= stop_at:
            raise _StopTraining
        if max_seconds is not None and time.time() - start > max_seconds:
            log(f"[{task.domain}] time budget of {max_seconds:.0f}s spent before reaching the band")
            raise _StopTraining

    try:
        sac.fit_online(
            env,
            n_steps=int(steps),
            n_steps_per_epoch=int(eval_every),
            random_steps=int(random_steps),
            update_start_step=int(random_steps),
            logger_adapter=d3rlpy.logging.NoopAdapterFactory(),
            show_progress=False,
            callback=callback,
        )
    except _StopTraining:
        pass
    if not last:
        raise GenerationError(f"{task.name}: no evaluation happened; steps={steps} must be >= eval_every={eval_every}")
    # 10-episode evaluations are noisy: re-measure the last snapshots near the band on more
    # episodes and keep the one closest to the target, preferring those inside the band
    pool = candidates or [(last["step"], last["actor"], last["result"])]
    chosen = None
    for step, actor, _ in pool:
        final = evaluate_policy(task, BehaviourPolicy(task.domain, actor), n_episodes=final_eval_episodes, seed=20_000)
        key = (not (lo <= final["normalized"] <= hi), abs(final["normalized"] - target))
        log(f"[{task.domain}] snapshot {step}: normalized {final['normalized']:.1f} over {final_eval_episodes} episodes")
        if chosen is None or key < chosen[0]:
            chosen = (key, step, actor, final)
    _, best_step, actor, final = chosen
    info = {
        "task": task.name,
        "domain": task.domain,
        "kind": "mlp",
        "obs_dim": obs_dim,
        "act_dim": act_dim,
        "hidden": list(hidden),
        "trained_with": "d3rlpy SAC fit_online",
        "seed": int(seed),
        "train_steps": int(best_step),
        "sac": {"hidden": list(hidden), "batch_size": batch_size, "learning_rate": learning_rate, "random_steps": random_steps},
        "target_normalized": target,
        "band": [lo, hi],
        "score": final,
        "normalized": round(final["normalized"], 2),
        "mean_return": round(final["mean_return"], 2),
        "eval_mode": "stochastic (policy's own Gaussian, noise=1)",
        "train_seconds": round(time.time() - start, 1),
        "history": [{"step": h["step"], "normalized": round(h["normalized"], 2)} for h in history],
    }
    log(f"[{task.domain}] kept step {info['train_steps']}: normalized {final['normalized']:.1f} over {final_eval_episodes} episodes")
    if save:
        save_policy(actor, task.domain, info, directory)
    return BehaviourPolicy(task.domain, actor, info)


# ---------------------------------------------------------------------------------------------
# Reacher2d: calibrating the medium controller
# ---------------------------------------------------------------------------------------------
#: the Reacher2d generator of the LaMo release kept only episodes with a return above this.
REACHER2D_MIN_RETURN = 20.0


def calibrate_reacher2d_policy(
    target_normalized: float = 36.0,
    n_episodes: int = 200,
    seed: int = 0,
    min_return: float | None = REACHER2D_MIN_RETURN,
    hesitation_low: int = 25,
    hesitation_highs: tuple[int, ...] = (45, 50, 55, 60, 65),
    directory: str | os.PathLike | None = None,
    save: bool = True,
    log: Callable[[str], None] | None = print,
) -> BehaviourPolicy:
    """Pick the Reacher2d medium controller's hesitation range so the dataset averages ~36.

    Each candidate ``hesitation=(hesitation_low, high)`` is rolled out for ``n_episodes`` seeded
    episodes, keeping those with return > ``min_return`` like the released generator; the one
    whose kept episodes average closest to ``target_normalized`` is saved as
    ``<directory>/reacher2d.json`` (default: the package's ``assets/policies``) together with
    both scores (all episodes, and kept episodes only). This is the "training" command of
    Reacher2d (``zoo-data train-policy reacher2d-medium``).

    Examples:
        >>> pol = calibrate_reacher2d_policy(n_episodes=4, hesitation_highs=(50,), save=False, log=None)
        >>> pol.info["kind"], pol.info["params"]["hesitation"]
        ('reacher2d-ik', [25, 50])
    """
    task = get_task("reacher2d-medium")
    log = log or (lambda s: None)
    best = None
    for high in hesitation_highs:
        ctrl = Reacher2dMediumPolicy(kp=6.0, kd=2.0, aim_error=0.03, hesitation=(hesitation_low, high), action_noise=0.1)
        rets = np.asarray(rollout(task, BehaviourPolicy("reacher2d", ctrl), n_episodes=n_episodes, seed=seed)["returns"])
        kept = rets[rets > min_return] if min_return is not None else rets
        kept_mean = float(kept.mean()) if len(kept) else 0.0
        log(f"[reacher2d] hesitation ({hesitation_low}, {high}): all {rets.mean():5.1f}  kept {kept_mean:5.1f} ({len(kept)}/{len(rets)})")
        cand = (abs(kept_mean - target_normalized), ctrl, rets, kept)
        if best is None or cand[0] < best[0]:
            best = cand
    _, ctrl, rets, kept = best
    info = {
        "task": task.name,
        "domain": "reacher2d",
        "kind": "reacher2d-ik",
        "params": ctrl.params(),
        "trained_with": "inverse-kinematics PD controller with calibrated imperfections (calibrate_reacher2d_policy)",
        "seed": int(seed),
        "target_normalized": float(target_normalized),
        "min_return": min_return,
        "score": {
            "mean_return": float(rets.mean()),
            "std_return": float(rets.std()),
            "min_return": float(rets.min()),
            "max_return": float(rets.max()),
            "normalized": float(task.normalized_score(rets.mean())),
            "n_episodes": int(len(rets)),
        },
        "score_kept": {
            "mean_return": float(kept.mean()) if len(kept) else 0.0,
            "normalized": float(task.normalized_score(kept.mean())) if len(kept) else 0.0,
            "n_episodes": int(len(kept)),
            "kept_fraction": float(len(kept) / len(rets)),
        },
        "normalized": round(float(task.normalized_score(rets.mean())), 2),
        "mean_return": round(float(rets.mean()), 2),
        "eval_mode": "stochastic (seeded hesitation, aiming error and action noise)",
    }
    if save:
        save_policy(ctrl, "reacher2d", info, directory)
    return BehaviourPolicy("reacher2d", ctrl, info)


# ---------------------------------------------------------------------------------------------
# datasets in Minari's format
# ---------------------------------------------------------------------------------------------
def generatable_tasks() -> list[str]:
    """Tasks :func:`generate_dataset` can produce: the ``*-medium`` tasks of the MuJoCo and
    Reacher2d domains that have a behaviour-policy recipe.

    Examples:
        >>> generatable_tasks()
        ['halfcheetah-medium', 'hopper-medium', 'reacher2d-medium', 'walker2d-medium']
    """
    from ..tasks import list_tasks

    return [n for n in list_tasks() if _check_generatable(get_task(n), raise_error=False)]


def _check_generatable(task: Task, raise_error: bool = True) -> bool:
    ok = task.domain in MEDIUM_TARGETS and task.name == f"{task.domain}-medium" and "generated" in task.sources
    if not ok and raise_error:
        if task.domain in MEDIUM_TARGETS and task.name.startswith(f"{task.domain}-medium-"):
            why = "only the medium level is generated for now (medium-replay is a replay buffer, medium-expert mixes an expert policy in)"
        else:
            why = "there is no behaviour-policy recipe for this domain"
        raise GenerationError(f"cannot generate {task.name!r}: {why}. Generatable tasks: {', '.join(generatable_tasks())}")
    return ok


def _default_min_return(task: Task) -> float | None:
    return REACHER2D_MIN_RETURN if task.family == "reacher2d" else None


def _default_size(task: Task) -> tuple[int | None, int | None]:
    """``(n_transitions, n_episodes)`` when neither is given: 50 episodes for Reacher2d, else 1M steps."""
    return (None, DEFAULT_REACHER_EPISODES) if task.family == "reacher2d" else (DEFAULT_TRANSITIONS, None)


def generation_request(task_name: str | Task, **kwargs) -> dict:
    """The size, seed and noise `generate_dataset` would use for ``kwargs``, its defaults filled in.

    What a generated dataset records as ``requested`` / ``seed`` / ``noise``, so a suite can tell
    whether the dataset on disk is the one its ``prepare`` entry asks for.

    Examples:
        >>> generation_request("reacher2d-medium")
        {'n_transitions': None, 'n_episodes': 50, 'seed': 0, 'noise': 1.0}
        >>> generation_request("hopper-medium", n_transitions=20_000, seed=3)["n_transitions"]
        20000
    """
    import inspect

    defaults = inspect.signature(generate_dataset).parameters
    n_transitions, n_episodes = kwargs.get("n_transitions"), kwargs.get("n_episodes")
    if n_transitions is None and n_episodes is None:
        n_transitions, n_episodes = _default_size(get_task(task_name))
    return {"n_transitions": n_transitions, "n_episodes": n_episodes,
            "seed": kwargs.get("seed", defaults["seed"].default), "noise": float(kwargs.get("noise", defaults["noise"].default))}


def generate_dataset(
    task_name: str | Task,
    n_transitions: int | None = None,
    n_episodes: int | None = None,
    seed: int = 0,
    root: str | os.PathLike | None = None,
    policy: BehaviourPolicy | str | os.PathLike | None = None,
    noise: float = 1.0,
    min_return: float | None | str = "auto",
    overwrite: bool = False,
    progress: bool | None = None,
):
    """Roll a behaviour policy out and write the result as a Minari dataset; returns it loaded.

    The dataset ``offline-zoo/<task.sources['generated']>-v0`` is written with
    ``minari.create_dataset_from_buffers`` under ``root`` (default ``$OFFLINE_ZOO_HOME/datasets``),
    with the task's ``ref_min_score`` / ``ref_max_score`` and an ``offline_zoo`` metadata entry
    (behaviour policy and its score, seed, noise, statistics). ``load_dataset(task,
    source="generated")`` then loads it; the returned :class:`~offline_zoo.data.Dataset` is that.

    Args:
        task_name: task with a ``generated`` source (``hopper-medium``, ``reacher2d-medium``...).
        n_transitions: stop once this many steps are recorded (the last episode is cut and marked
            as a timeout). Default: 1M for MuJoCo (D4RL's size).
        n_episodes: or, whole episodes (default 50 for Reacher2d, the paper's size).
        seed: the same seed gives byte-identical arrays.
        policy: a :class:`BehaviourPolicy`, a directory holding ``<domain>.json`` (+ ``.pt``), or
            None for the shipped policy of the task's domain.
        noise: scale of the policy's own stochasticity (1 = as trained, 0 = deterministic).
        min_return: keep only episodes with return above it; ``"auto"``: 20 for Reacher2d (the
            released generator's filter), none otherwise.
        overwrite: replace an existing dataset (otherwise it is an error).
        progress: rich progress bar (default: on for 100k steps or more).

    Terminals are the env's ``terminated`` (e.g. Hopper falling), timeouts its ``truncated``
    (the 1000-step limit) or the cut of the last episode.

    Examples:
        >>> ds = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets")
        >>> ds.source, ds.n_episodes, ds.n_steps
        ('generated', 2, 200)
        >>> bool(ds.episode_returns.min() > 20)     # Reacher2d keeps episodes with a return above 20
        True
        >>> again = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets", overwrite=True)
        >>> bool((again.observations == ds.observations).all())      # same seed, same data
        True
    """
    import warnings

    import minari
    from minari.data_collector import EpisodeBuffer

    from ..envs import make_env

    task = get_task(task_name)
    _check_generatable(task)
    dataset_id = generated_dataset_id(task)
    if n_transitions is None and n_episodes is None:
        n_transitions, n_episodes = _default_size(task)
    if n_transitions is not None and n_episodes is not None:
        raise ValueError("pass n_transitions or n_episodes, not both")
    for name, value in (("n_transitions", n_transitions), ("n_episodes", n_episodes)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
            raise ValueError(f"{name}={value!r} must be a whole number >= 1")
    if isinstance(noise, bool) or not isinstance(noise, (int, float, np.integer, np.floating)) or not (0 <= noise < math.inf):
        raise ValueError(f"noise={noise!r} must be a finite number >= 0 (0 = deterministic policy, 1 = as trained)")
    if isinstance(min_return, str):
        if min_return != "auto":
            raise ValueError(f"min_return must be a number, None or 'auto', got {min_return!r}")
        min_return = _default_min_return(task)
    if policy is None or isinstance(policy, (str, os.PathLike)):
        policy = load_policy(task, directory=policy, noise=noise)
    else:
        from dataclasses import replace

        policy = replace(policy, noise=float(noise))
    if policy.domain != task.domain:
        raise GenerationError(f"behaviour policy of domain {policy.domain!r} cannot generate data for {task.name!r}")
    path = generated_dataset_path(task, root)
    if path.exists():
        if not overwrite:
            raise GenerationError(f"{path} already exists: pass overwrite=True (zoo-data generate --overwrite) to replace it")
        shutil.rmtree(path)
    size = n_transitions if n_transitions is not None else n_episodes * task.max_episode_steps
    if progress is None:
        progress = size >= 100_000
    t0 = time.time()
    data = rollout(task, policy, n_transitions=n_transitions, n_episodes=n_episodes, seed=seed, progress=progress, min_return=min_return)
    buffers = [
        EpisodeBuffer(
            id=i,
            seed=int(data["seeds"][i]),
            observations=data["observations"][i],
            actions=data["actions"][i],
            rewards=data["rewards"][i],
            terminations=data["terminations"][i],
            truncations=data["truncations"][i],
        )
        for i in range(len(data["returns"]))
    ]
    returns = np.asarray(data["returns"])
    lengths = np.asarray([len(a) for a in data["actions"]])
    stats = {
        "episodes": int(len(returns)),
        "transitions": int(lengths.sum()),
        "terminals": int(sum(bool(t[-1]) for t in data["terminations"])),
        "timeouts": int(sum(bool(t[-1]) for t in data["truncations"])),
        "mean_return": float(returns.mean()),
        "std_return": float(returns.std()),
        "min_return": float(returns.min()),
        "max_return": float(returns.max()),
        "normalized_mean": float(task.normalized_score(returns.mean())),
        "normalized_min": float(task.normalized_score(returns.min())),
        "normalized_max": float(task.normalized_score(returns.max())),
        "episodes_attempted": int(data["attempted"]),
    }
    bp = policy.info
    record = {
        "task": task.name,
        "source": "generated",
        "seed": int(seed),
        "noise": float(noise),
        "min_return": min_return,
        "requested": {"n_transitions": n_transitions, "n_episodes": n_episodes},
        "behaviour_policy": {
            "domain": policy.domain,
            "kind": bp.get("kind"),
            "trained_with": bp.get("trained_with"),
            "train_steps": bp.get("train_steps"),
            "normalized": bp.get("normalized"),
            "mean_return": bp.get("mean_return"),
        },
        "statistics": stats,
        "seconds": round(time.time() - t0, 1),
        # the same policy and seed give other episodes under another physics version
        "versions": package_versions(("mujoco", "gymnasium")),
    }
    env = make_env(task)
    old = os.environ.get("MINARI_DATASETS_PATH")
    os.environ["MINARI_DATASETS_PATH"] = str(path.parent.parent.absolute())  # minari mis-joins relative paths
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mds = minari.create_dataset_from_buffers(
                dataset_id=dataset_id,
                buffer=buffers,
                env=env.spec,
                algorithm_name=f"offline-zoo behaviour policy ({bp.get('trained_with', 'unknown')})",
                author="offline-zoo",
                author_email="offline-zoo@localhost",
                code_permalink="offline_zoo/data/generation.py",
                ref_min_score=float(task.ref_min_score),
                ref_max_score=float(task.ref_max_score),
                description=(
                    f"D4RL-style {task.name} generated locally by offline-zoo (seed {seed}): "
                    f"{stats['episodes']} episodes, {stats['transitions']} transitions, "
                    f"mean normalized {stats['normalized_mean']:.1f}. Not D4RL's data."
                ),
            )
            mds.storage.update_metadata({"offline_zoo": json.dumps(record, sort_keys=True)})
    except BaseException:
        shutil.rmtree(path, ignore_errors=True)
        raise
    finally:
        env.close()
        if old is None:
            os.environ.pop("MINARI_DATASETS_PATH", None)
        else:
            os.environ["MINARI_DATASETS_PATH"] = old
    return load_generated(task, root=path.parent.parent)
