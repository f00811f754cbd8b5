"""The paper's value-based baselines, adapted from d3rlpy behind the `OfflineAlgo` interface.

    >>> from offline_zoo import CQL
    >>> algo = CQL("hopper-medium", ratio=0.1).learn()  # doctest: +SKIP
    >>> algo.evaluate().score  # doctest: +SKIP

    On a tiny random dataset with tiny networks (seconds, no download):

    >>> from offline_zoo.testing import tiny_dataset
    >>> algo = CQL(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,), n_action_samples=2)
    >>> algo.learn(2, progress_bar=False).num_steps
    2

Six thin classes — `CQL`, `IQL`, `TD3PlusBC`, `BCQ`, `NFQ`,
`BC` — share one adapter, `D3rlpyAlgo`. The adapter never reimplements an algorithm:

* **data**: the project's `Dataset` becomes a d3rlpy ``ReplayBuffer`` of
  episode *views* (`to_d3rlpy_buffer`); Atari frames stay single ``uint8`` frames and are
  stacked per sampled transition, repeating the episode's first frame like the evaluation
  environment and the project's samplers do.
* **training**: one ``learn`` step = one d3rlpy ``algo.update(batch)`` on a batch drawn by the
  buffer's own ``sample_transition_batch`` — exactly what ``d3rlpy``'s ``fit`` does per step, minus
  the epoch bookkeeping (``fit`` trains nothing when ``n_steps < n_steps_per_epoch``), logging
  directories and console output.
* **randomness**: d3rlpy's buffer draws batch indices from NumPy's *global* RNG; the adapter's
  buffer draws the same way from a ``RandomState`` of its own (the base class already gives every
  algorithm its own torch stream), so two algorithms in one process never disturb each other, the
  global RNGs are left alone, and ``save``/``load`` continue training exactly. The streams start as
  ``np.random.seed(seed)`` and "torch seeded with ``seed``, then the networks built", so d3rlpy run
  directly after ``d3rlpy.seed(seed)`` draws the same batches and noise (``tests/test_baselines.py``
  checks that losses and actions are identical).
* **persistence**: d3rlpy's config (with the fitted scaler statistics) as JSON and its modules'
  state dicts (weights, optimizer and LR-scheduler states) as tensors travel inside the
  offline-zoo zip; loading rebuilds the d3rlpy algorithm from the JSON and never unpickles.

Hyperparameters per task live in ``offline_zoo/configs/<name>.yaml``; the table with their sources is
``docs/algorithms/baselines.md``. A config field left at ``None`` means "d3rlpy's own default for
this action space".
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import logging
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from ..data.dataset import Dataset, DatasetError
from .base import OfflineAlgo, Spec, _load_tensors
from .config import AlgoConfig, ConfigError
from .registry import register_algo

__all__ = [
    "D3rlpyAlgo",
    "D3rlpyConfig",
    "CQL",
    "CQLConfig",
    "IQL",
    "IQLConfig",
    "TD3PlusBC",
    "TD3PlusBCConfig",
    "BCQ",
    "BCQConfig",
    "NFQ",
    "NFQConfig",
    "BC",
    "BCConfig",
    "RepeatFirstFrameStackPicker",
    "to_d3rlpy_buffer",
    "set_d3rlpy_log_level",
]


# --- importing d3rlpy quietly ------------------------------------------------------------------
_D3RLPY = None
_LOG_LEVEL = logging.WARNING
#: printed while d3rlpy imports and carrying no information for offline-zoo users
_IMPORT_NOISE = ("Register Shimmy environments",)


def _d3rlpy():
    """The ``d3rlpy`` module, imported on first use without its console noise.

    Importing d3rlpy imports the unmaintained ``gym`` package, which prints a deprecation banner, and
    (with a GPU) switches torch to TF32 matmuls and compiled autograd for the whole process. The
    banner is dropped (anything else printed during the import is passed through), the two global
    torch settings are put back, and d3rlpy's own logger is limited to warnings and errors.
    """
    global _D3RLPY
    if _D3RLPY is not None:
        return _D3RLPY
    cuda = torch.cuda.is_available()
    if cuda:
        dynamo = importlib.import_module("torch._dynamo")  # d3rlpy sets one of its flags
        saved = (torch.get_float32_matmul_precision(), dynamo.config.compiled_autograd)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        import d3rlpy
    for stream, text in ((sys.stdout, out.getvalue()), (sys.stderr, err.getvalue())):
        text = _drop_import_noise(text)
        if text.strip():
            stream.write(text)
    if cuda:
        torch.set_float32_matmul_precision(saved[0])
        dynamo.config.compiled_autograd = saved[1]
    _D3RLPY = d3rlpy
    set_d3rlpy_log_level(_LOG_LEVEL)
    return d3rlpy


def _drop_import_noise(text: str) -> str:
    try:  # the exact banner gym prints for its version (gym_notices), nothing broader
        import gym
        import gym_notices.notices as notices

        banner = notices.notices.get(gym.__version__)
        if banner:
            text = text.replace(banner + "\n", "").replace(banner, "")
    except Exception:
        pass
    return "".join(line for line in text.splitlines(keepends=True) if not any(n in line for n in _IMPORT_NOISE))


def set_d3rlpy_log_level(level: int | str) -> None:
    """Show d3rlpy's log messages from ``level`` up (default ``logging.WARNING``; its info messages
    on every build and fit are hidden). Only d3rlpy's logger is affected.

    Examples:
        >>> import logging
        >>> set_d3rlpy_log_level(logging.INFO)  # show d3rlpy's info messages
        >>> set_d3rlpy_log_level("warning")  # back to the default
        >>> set_d3rlpy_log_level("loud")
        Traceback (most recent call last):
        ...
        ValueError: level='loud' is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL
    """
    global _LOG_LEVEL
    if isinstance(level, str):
        numeric = logging.getLevelName(level.upper())
        if not isinstance(numeric, int):
            raise ValueError(f"level={level!r} is not a logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
        level = numeric
    _LOG_LEVEL = int(level)
    if _D3RLPY is not None:
        import structlog

        # d3rlpy's modules all hold this one lazy proxy; giving it a filtering wrapper class leaves
        # every other structlog user of the process untouched.
        _D3RLPY.logging.LOG._wrapper_class = structlog.make_filtering_bound_logger(_LOG_LEVEL)


# --- dataset conversion ------------------------------------------------------------------------
class RepeatFirstFrameStackPicker:
    """d3rlpy transition picker that stacks the last ``n_frames`` single frames of an episode.

    Before the episode's ``n_frames``-th step the first frame is repeated — what the evaluation
    environment's frame stack (gymnasium ``FrameStackObservation``) and the project's samplers do;
    d3rlpy's ``FrameStackTransitionPicker`` pads with zeros instead. Frames are stored once as
    ``uint8`` and stacked only for the sampled transitions.

    Examples:
        >>> import numpy as np
        >>> Episode = _d3rlpy().dataset.Episode
        >>> frames = np.arange(3, dtype=np.uint8)[:, None, None] * np.ones((3, 2, 2), np.uint8)
        >>> ep = Episode(frames, np.zeros((3, 1), np.int64), np.zeros((3, 1), np.float32), terminated=True)
        >>> RepeatFirstFrameStackPicker(4)(ep, 1).observation[:, 0, 0].tolist()
        [0, 0, 0, 1]
    """

    def __init__(self, n_frames: int):
        if int(n_frames) < 1:
            raise ValueError(f"n_frames={n_frames!r} must be a positive number of frames")
        self.n_frames = int(n_frames)
        self._lags = np.arange(self.n_frames - 1, -1, -1)

    def __call__(self, episode, index: int):
        transition_cls = _d3rlpy().dataset.Transition
        if not 0 <= index < episode.transition_count:
            raise IndexError(f"transition index {index} is outside the episode's {episode.transition_count} transitions")
        frames, actions = episode.observations, episode.actions
        observation = frames[np.maximum(index - self._lags, 0)]
        terminal = bool(episode.terminated) and index == episode.size() - 1
        if terminal:
            next_observation, next_action = np.zeros_like(observation), np.zeros_like(actions[index])
        else:
            next_observation, next_action = frames[np.maximum(index + 1 - self._lags, 0)], actions[index + 1]
        return transition_cls(
            observation=observation,
            action=actions[index],
            reward=episode.rewards[index],
            next_observation=next_observation,
            next_action=next_action,
            terminal=float(terminal),
            interval=1,
            rewards_to_go=episode.rewards[index:],
        )


def to_d3rlpy_buffer(dataset: Dataset, warn: bool = True, rng: np.random.RandomState | None = None):
    """A d3rlpy ``ReplayBuffer`` over the episodes of ``dataset`` (views of its arrays, no copies).

    * An episode is *terminated* when its last step is a terminal — also when that step is flagged
      as a timeout too (terminal wins); timeout- or data-end-cut episodes bootstrap from their last
      observation, so their last step is not a transition (it has no next observation).
    * Episodes of one truncated step therefore contribute no transition: they are counted in
      ``buffer.conversion_info`` and reported with a warning (``warn=False`` silences it).
    * Frame-stacked data (Atari: ``frame_stack=4``) keeps its single ``uint8`` frames and stacks
      them per sampled transition with `RepeatFirstFrameStackPicker`.
    * ``rng``: a ``numpy.random.RandomState`` the buffer samples from, exactly as d3rlpy samples
      from the global one (``np.random.randint`` per transition); None = d3rlpy's global sampling.

    Raises `DatasetError` for a terminal flag inside an episode (it would
    be ignored) or a dataset without a single transition.

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> buf = to_d3rlpy_buffer(tiny_dataset(n_episodes=2, episode_len=5))
        >>> buf.transition_count, buf.conversion_info["truncated_last_steps"]
        (9, 1)
    """
    d3 = _d3rlpy()
    starts, lengths = dataset.episode_starts, dataset.episode_lengths
    ends = starts + lengths - 1
    inside = np.asarray(dataset.terminals, dtype=bool).copy()
    inside[ends] = False
    if inside.any():
        raise DatasetError(
            f"terminals[{int(np.flatnonzero(inside)[0])}] is set inside an episode (episodes end at a terminal or "
            "timeout): rebuild the Dataset with Dataset.from_arrays so that episode boundaries follow the flags"
        )
    terminated = np.asarray(dataset.terminals, dtype=bool)[ends]
    obs = dataset.observations
    actions = dataset.actions.reshape(-1, 1) if dataset.discrete else dataset.actions
    rewards = dataset.rewards.reshape(-1, 1)
    episodes = [
        d3.dataset.Episode(observations=obs[s : s + n], actions=actions[s : s + n], rewards=rewards[s : s + n], terminated=bool(t))
        for s, n, t in zip(starts.tolist(), lengths.tolist(), terminated.tolist())
    ]
    picker = RepeatFirstFrameStackPicker(dataset.frame_stack) if dataset.frame_stack > 1 else d3.dataset.BasicTransitionPicker()
    Signature = d3.dataset.Signature
    buffer_cls = d3.dataset.ReplayBuffer if rng is None else _seeded_replay_buffer_class()
    buffer = buffer_cls(
        d3.dataset.InfiniteBuffer(),
        transition_picker=picker,
        episodes=episodes,
        observation_signature=Signature(dtype=[obs.dtype], shape=[tuple(dataset.observation_shape)]),
        action_signature=Signature(dtype=[actions.dtype], shape=[tuple(actions.shape[1:])]),
        reward_signature=Signature(dtype=[np.dtype(np.float32)], shape=[(1,)]),
        action_space=d3.ActionSpace.DISCRETE if dataset.discrete else d3.ActionSpace.CONTINUOUS,
        action_size=dataset.action_dim,
    )
    if rng is not None:
        buffer.rng = rng
    empty = int(np.sum(~terminated & (lengths == 1)))
    buffer.conversion_info = {
        "episodes": int(len(starts)),
        "steps": int(lengths.sum()),
        "transitions": int(buffer.transition_count),
        "terminated_episodes": int(terminated.sum()),
        "truncated_last_steps": int((~terminated).sum()),
        "episodes_without_transition": empty,
    }
    if buffer.transition_count == 0:
        raise DatasetError(
            f"the dataset has no transition to learn from: its {len(starts)} episode(s) are single truncated steps "
            "(a transition needs a next observation or a terminal)"
        )
    if empty and warn:
        warnings.warn(
            f"{empty} of {len(starts)} episodes are a single truncated step with no next observation: they give no "
            "transition and are not trained on", stacklevel=2,
        )
    return buffer


_SEEDED_BUFFER = None


def _seeded_replay_buffer_class():
    """d3rlpy's ``ReplayBuffer`` drawing its transition indices from ``self.rng`` (a ``RandomState``)
    instead of NumPy's global RNG; same draws for the same state, nothing else changed."""
    global _SEEDED_BUFFER
    if _SEEDED_BUFFER is None:

        class SeededReplayBuffer(_d3rlpy().dataset.ReplayBuffer):
            rng: np.random.RandomState

            def sample_transition(self):
                # ReplayBuffer.sample_transition with self.rng for np.random (same attributes, same cost)
                episode, index = self._buffer[self.rng.randint(self._buffer.transition_count)]
                return self._transition_picker(episode, index)

        _SEEDED_BUFFER = SeededReplayBuffer
    return _SEEDED_BUFFER


# --- configs -----------------------------------------------------------------------------------
_REWARD_SCALERS = ("none", "return", "clip")
# zip entries of a saved baseline (format 2) and the pickle that format 1 stored
D3RLPY_CONFIG_ENTRY = "d3rlpy/config.json"
D3RLPY_WEIGHTS_ENTRY = "d3rlpy/modules.pt"
LEGACY_D3RLPY_ENTRY = "d3rlpy/model.d3"
_Q_FUNCTIONS = ("mean", "qr")


@dataclass
class D3rlpyConfig(AlgoConfig):
    """Fields every d3rlpy baseline has. ``None`` = d3rlpy's default for the action space.

    Attributes:
        batch_size: transitions per gradient step.
        gamma: discount factor.
        hidden_units: hidden layer sizes of every MLP (vector observations; images use the Nature CNN).
        cnn_feature_size: output features of the Nature CNN (image observations; d3rlpy: 512).
        normalize_states: standardize vector observations with d3rlpy's ``StandardObservationScaler``
            (statistics fitted on the training transitions, saved with the model). Image
            observations are always divided by 255 (``PixelObservationScaler``).
        reward_scaler: ``"none"``, ``"return"`` (``ReturnBasedRewardScaler``: r * multiplier /
            (max episode return - min episode return), CORL's and IQL's MuJoCo normalization) or
            ``"clip"`` (``ClipRewardScaler(-1, 1)``, d3rlpy's Atari reproductions).
        reward_multiplier: the ``multiplier`` of the return-based scaler (CORL: 1000 = episode length).
        adam_eps: epsilon of every Adam optimizer (d3rlpy's Atari reproductions: 1e-2 / 32).

    Examples:
        >>> D3rlpyConfig(hidden_units=(64, 64)).batch_size is None  # None: d3rlpy's default
        True
    """

    batch_size: int | None = None  # type: ignore[assignment]
    gamma: float | None = None
    hidden_units: tuple[int, ...] | None = None
    cnn_feature_size: int | None = None
    normalize_states: bool = False
    reward_scaler: str = "none"
    reward_multiplier: float = 1.0
    adam_eps: float | None = None


#: fields interpreted by the adapter itself (everything else is passed to d3rlpy under its name)
_ADAPTER_FIELDS = frozenset(
    {"n_steps", "eval_episodes", "target_returns", "hidden_units", "cnn_feature_size", "normalize_states", "reward_scaler",
     "reward_multiplier", "adam_eps", "q_function", "n_quantiles", "actor_cosine_lr", "imitator_hidden_units"}
)


@dataclass
class CQLConfig(D3rlpyConfig):
    """CQL (continuous: d3rlpy ``CQL``; discrete: ``DiscreteCQL``).

    Attributes:
        actor_learning_rate: continuous only: policy learning rate.
        critic_learning_rate: Q-function learning rate (discrete: DiscreteCQL's ``learning_rate``).
        temp_learning_rate: continuous only: learning rate of the SAC temperature.
        alpha_learning_rate: continuous only: learning rate of the conservative weight
            (``alpha_learning_rate=0`` keeps it fixed, CORL's non-Lagrange CQL).
        initial_temperature: continuous only, as in d3rlpy.
        initial_alpha: continuous only, as in d3rlpy.
        alpha_threshold: continuous only, as in d3rlpy.
        conservative_weight: weight of the conservative loss (discrete: DiscreteCQL's ``alpha``).
        n_action_samples: continuous only, as in d3rlpy.
        tau: continuous only: target network update rate, as in d3rlpy.
        n_critics: Q-function ensemble size.
        soft_q_backup: continuous only, as in d3rlpy.
        max_q_backup: continuous only, as in d3rlpy.
        target_update_interval: discrete only: steps between hard target updates.
        q_function: discrete only: ``"mean"`` or ``"qr"`` (quantile regression, d3rlpy's Atari setting).
        n_quantiles: quantiles of the ``"qr"`` Q-function.

    Examples:
        >>> from offline_zoo import CQL
        >>> from offline_zoo.testing import tiny_dataset
        >>> CQL(tiny_dataset(), device="cpu", conservative_weight=5.0).d3rlpy_config.conservative_weight
        5.0
        >>> atari = CQL(tiny_dataset("discrete"), device="cpu", conservative_weight=2.0)
        >>> type(atari.d3rlpy_algo).__name__, atari.d3rlpy_config.alpha  # renamed for DiscreteCQL
        ('DiscreteCQL', 2.0)
        >>> CQL(tiny_dataset("discrete"), device="cpu", initial_alpha=1.0)
        Traceback (most recent call last):
        ...
        offline_zoo.algos.config.ConfigError: initial_alpha=1.0 does not apply to d3rlpy's DiscreteCQL (discrete actions); fields that apply: ...
    """

    actor_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    temp_learning_rate: float | None = None
    alpha_learning_rate: float | None = None
    initial_temperature: float | None = None
    initial_alpha: float | None = None
    alpha_threshold: float | None = None
    conservative_weight: float | None = None
    n_action_samples: int | None = None
    tau: float | None = None
    n_critics: int | None = None
    soft_q_backup: bool | None = None
    max_q_backup: bool | None = None
    target_update_interval: int | None = None
    q_function: str | None = None
    n_quantiles: int | None = None


@dataclass
class IQLConfig(D3rlpyConfig):
    """IQL (d3rlpy ``IQL``; continuous actions only).

    Attributes:
        actor_learning_rate: policy learning rate.
        critic_learning_rate: Q-function learning rate (it also trains V).
        actor_cosine_lr: cosine-anneal the actor learning rate to 0 over ``n_steps`` (IQL, CORL).
        expectile: expectile of the value loss (d3rlpy; CORL: ``iql_tau``).
        weight_temp: inverse temperature of the advantage weights (d3rlpy; CORL: ``beta``).
        max_weight: clip of the advantage weights (d3rlpy; CORL: 100).
        tau: target network update rate, as in d3rlpy.
        n_critics: Q-function ensemble size, as in d3rlpy.

    Examples:
        >>> IQLConfig(expectile=0.9).actor_cosine_lr
        False
    """

    actor_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    actor_cosine_lr: bool = False
    expectile: float | None = None
    weight_temp: float | None = None
    max_weight: float | None = None
    tau: float | None = None
    n_critics: int | None = None


@dataclass
class TD3PlusBCConfig(D3rlpyConfig):
    """TD3+BC (d3rlpy ``TD3PlusBC``; continuous actions only); fields as in d3rlpy.

    Examples:
        >>> TD3PlusBCConfig(alpha=2.5).alpha
        2.5
    """

    actor_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    alpha: float | None = None
    target_smoothing_sigma: float | None = None
    target_smoothing_clip: float | None = None
    update_actor_interval: int | None = None
    tau: float | None = None
    n_critics: int | None = None


@dataclass
class BCQConfig(D3rlpyConfig):
    """BCQ (continuous: d3rlpy ``BCQ``; discrete: ``DiscreteBCQ``).

    Attributes:
        actor_learning_rate: continuous only: learning rate of the perturbation model.
        critic_learning_rate: Q-function learning rate (discrete: DiscreteBCQ's ``learning_rate``).
        imitator_learning_rate: continuous only: learning rate of the VAE imitator.
        imitator_hidden_units: continuous only: hidden layer sizes of the VAE imitator.
        lam: continuous only: weight of the min/max mix of the critic ensemble, as in d3rlpy.
        n_action_samples: continuous only: candidate actions sampled from the VAE per step.
        action_flexibility: continuous: perturbation range; discrete: imitator probability threshold.
        beta: continuous: VAE KL weight; discrete: imitator logit regularization weight.
        update_actor_interval: continuous only, as in d3rlpy.
        rl_start_step: continuous only: steps that train the imitator alone, as in d3rlpy.
        tau: continuous only: target network update rate, as in d3rlpy.
        n_critics: Q-function ensemble size.
        target_update_interval: discrete only: steps between hard target updates.
        q_function: ``"mean"`` or ``"qr"``, as in CQL.
        n_quantiles: discrete only: quantiles of the ``"qr"`` Q-function.

    Examples:
        >>> BCQConfig(action_flexibility=0.3, beta=0.01).beta
        0.01
    """

    actor_learning_rate: float | None = None
    critic_learning_rate: float | None = None
    imitator_learning_rate: float | None = None
    imitator_hidden_units: tuple[int, ...] | None = None
    lam: float | None = None
    n_action_samples: int | None = None
    action_flexibility: float | None = None
    beta: float | None = None
    update_actor_interval: int | None = None
    rl_start_step: int | None = None
    tau: float | None = None
    n_critics: int | None = None
    target_update_interval: int | None = None
    q_function: str | None = None
    n_quantiles: int | None = None


@dataclass
class NFQConfig(D3rlpyConfig):
    """NFQ (d3rlpy ``NFQ``; discrete actions only): ``learning_rate``, ``n_critics``, ``q_function``.

    Examples:
        >>> NFQConfig(learning_rate=5e-5).q_function is None  # d3rlpy's mean Q-function
        True
    """

    learning_rate: float | None = None
    n_critics: int | None = None
    q_function: str | None = None
    n_quantiles: int | None = None


@dataclass
class BCConfig(D3rlpyConfig):
    """BC (continuous: d3rlpy ``BC``; discrete: ``DiscreteBC``).

    Attributes:
        learning_rate: policy learning rate.
        policy_type: continuous only: ``"deterministic"`` (MSE, CORL) or ``"stochastic"``.
        beta: discrete only: logit regularization weight.

    Examples:
        >>> BCConfig(policy_type="deterministic").learning_rate is None
        True
    """

    learning_rate: float | None = None
    policy_type: str | None = None
    beta: float | None = None


# --- the adapter -------------------------------------------------------------------------------
class D3rlpyAlgo(OfflineAlgo):
    """Shared adapter: a d3rlpy algorithm trained, evaluated and saved as an `OfflineAlgo`.

    Subclasses name the d3rlpy config class per action space (``d3rlpy_configs``) and, for the
    discrete variant, which of their fields d3rlpy spells differently (``discrete_renames``). Every
    config field that is not ``None`` and not interpreted by the adapter is passed to d3rlpy under
    its (renamed) name; a set field that the chosen d3rlpy algorithm does not have is an error.

    Examples:
        >>> from offline_zoo import CQL
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = CQL(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,), n_action_samples=2)
        >>> type(algo.d3rlpy_algo).__name__, algo.d3rlpy_config_class.__name__, algo.d3rlpy_config.batch_size
        ('CQL', 'CQLConfig', 8)
        >>> algo.learn(2, progress_bar=False).data_conversion["transitions"]  # 6 episodes of 12 steps, the last one cut
        71
    """

    #: action space -> name of the d3rlpy config class in ``d3rlpy.algos``
    d3rlpy_configs: ClassVar[dict[str, str]] = {}
    #: our field name -> d3rlpy's, for the discrete variant
    discrete_renames: ClassVar[dict[str, str]] = {}
    #: d3rlpy metric reported as ``loss`` (when d3rlpy has no ``loss`` itself)
    main_metric: ClassVar[str] = "critic_loss"
    #: the d3rlpy policy samples at prediction time (continuous BCQ): predictions use a fixed seed
    stochastic_predict: ClassVar[dict[str, bool]] = {}

    # -- building ------------------------------------------------------------------------------
    def _build(self) -> None:
        self._check_config()
        self._d3 = self._make_d3rlpy_config().create(device=_d3rlpy_device(self.device))
        self._d3.create_impl(tuple(self.spec.observation_shape), int(self.spec.action_dim))
        self._refresh_model()
        # batch sampling: draws as d3rlpy's from NumPy's global RNG after np.random.seed(seed), but
        # from this algorithm's own RandomState (torch: the base class runs _build and learn on this
        # algorithm's own stream)
        self._sampling_rng = np.random.RandomState(self.seed)
        self._buffer = None
        self._buffer_dataset: Dataset | None = None
        self.data_conversion: dict[str, int] | None = None

    def _check_config(self) -> None:
        cfg, image = self.config, self.spec.image
        if cfg.reward_scaler not in _REWARD_SCALERS:
            raise ConfigError(f"reward_scaler={cfg.reward_scaler!r} is not supported; use one of {', '.join(map(repr, _REWARD_SCALERS))}")
        q = getattr(cfg, "q_function", None)
        if q is not None and q not in _Q_FUNCTIONS:
            raise ConfigError(f"q_function={q!r} is not supported; use one of {', '.join(map(repr, _Q_FUNCTIONS))}")
        if image and cfg.hidden_units is not None:
            raise ConfigError("hidden_units applies to vector observations; image observations use the Nature CNN (set cnn_feature_size)")
        if image and cfg.normalize_states:
            raise ConfigError("normalize_states applies to vector observations; image observations are always divided by 255")
        if image and getattr(cfg, "imitator_hidden_units", None) is not None:
            raise ConfigError("imitator_hidden_units applies to continuous BCQ's VAE; DiscreteBCQ's imitator shares the Nature CNN")
        if not image and cfg.cnn_feature_size is not None:
            raise ConfigError("cnn_feature_size applies to image observations; vector observations use hidden_units")
        for name in ("hidden_units", "imitator_hidden_units"):
            units = getattr(cfg, name, None)
            if units is not None and (len(units) == 0 or any(int(u) < 1 for u in units)):
                raise ConfigError(f"{name}={units!r} must be a non-empty list of positive layer sizes, e.g. [256, 256]")

    @property
    def d3rlpy_config_class(self) -> type:
        """The d3rlpy config class used for this dataset's action space."""
        return getattr(_d3rlpy().algos, self.d3rlpy_configs[self.spec.action_space])

    def _make_d3rlpy_config(self):
        d3 = _d3rlpy()
        cfg, discrete, image = self.config, self.spec.discrete, self.spec.image
        target_cls = self.d3rlpy_config_class
        target = {f.name for f in dataclasses.fields(target_cls)}
        renames = self.discrete_renames if discrete else {}
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.name in _ADAPTER_FIELDS or value is None:
                continue
            name = renames.get(f.name, f.name)
            if name not in target:
                applies = sorted(g.name for g in dataclasses.fields(cfg) if g.name not in _ADAPTER_FIELDS and renames.get(g.name, g.name) in target)
                raise ConfigError(
                    f"{f.name}={value!r} does not apply to d3rlpy's {target_cls.__name__[:-6]} ({self.spec.action_space} actions); "
                    f"fields that apply: {', '.join(applies)}"
                )
            kwargs[name] = list(value) if isinstance(value, tuple) else value
        if image:
            encoder = d3.models.PixelEncoderFactory(**({"feature_size": int(cfg.cnn_feature_size)} if cfg.cnn_feature_size else {}))
        elif cfg.hidden_units is not None:
            encoder = d3.models.VectorEncoderFactory(hidden_units=[int(u) for u in cfg.hidden_units])
        else:
            encoder = None
        for name in sorted(target):
            if name.endswith("encoder_factory") and encoder is not None:
                kwargs[name] = encoder
            if name.endswith("optim_factory") and cfg.adam_eps is not None:
                kwargs[name] = d3.optimizers.AdamFactory(eps=float(cfg.adam_eps))
        q = getattr(cfg, "q_function", None)
        if q is not None and "q_func_factory" in target:
            kwargs["q_func_factory"] = (
                d3.models.QRQFunctionFactory(**({"n_quantiles": int(cfg.n_quantiles)} if cfg.n_quantiles else {}))
                if q == "qr" else d3.models.MeanQFunctionFactory()
            )
        if image:
            kwargs["observation_scaler"] = d3.preprocessing.PixelObservationScaler()
        elif cfg.normalize_states:
            kwargs["observation_scaler"] = d3.preprocessing.StandardObservationScaler()
        if cfg.reward_scaler == "return":
            kwargs["reward_scaler"] = d3.preprocessing.ReturnBasedRewardScaler(multiplier=float(cfg.reward_multiplier))
        elif cfg.reward_scaler == "clip":
            kwargs["reward_scaler"] = d3.preprocessing.ClipRewardScaler(-1.0, 1.0)
        kwargs.update(self._more_d3rlpy_kwargs(target))
        return target_cls(**kwargs)

    def _more_d3rlpy_kwargs(self, target: set[str]) -> dict[str, Any]:
        """Hook: d3rlpy arguments that need more than a rename (LR schedules, extra encoders)."""
        return {}

    def _refresh_model(self) -> None:
        # the trainable torch modules (target networks excluded) for eval mode and parameter counts
        modules = self._d3.impl.modules.get_torch_modules()
        self.model = {k: m for k, m in modules.items() if not k.startswith("targ_")}

    @property
    def d3rlpy_algo(self):
        """The underlying d3rlpy algorithm object (``d3rlpy.algos.CQL``...)."""
        return self._d3

    @property
    def d3rlpy_config(self):
        """The resolved d3rlpy config (every value, d3rlpy defaults included)."""
        return self._d3.config

    @classmethod
    def tiny_config(cls, spec: Spec) -> dict[str, Any]:
        if spec.image:
            return {"batch_size": 2, "cnn_feature_size": 32}
        return {"batch_size": 8, "hidden_units": (16,)}

    # -- data ----------------------------------------------------------------------------------
    def _before_learn(self) -> None:
        self._prepare_data()

    def _prepare_data(self) -> None:
        """Build the replay buffer of ``self.dataset`` (once per dataset) and fit unfitted scalers."""
        if self.dataset is None:
            raise RuntimeError(f"this {type(self).__name__} has no dataset: pass dataset= to load() to train it")
        if self._buffer is None or self._buffer_dataset is not self.dataset:
            if self.dataset.discrete != self.spec.discrete or tuple(self.dataset.observation_shape) != tuple(self.spec.observation_shape):
                raise DatasetError(
                    f"dataset has observations {tuple(self.dataset.observation_shape)} and "
                    f"{'discrete' if self.dataset.discrete else 'continuous'} actions, but this {type(self).__name__} was built "
                    f"for {tuple(self.spec.observation_shape)} and {self.spec.action_space} actions"
                )
            self._buffer = to_d3rlpy_buffer(self.dataset, rng=self._sampling_rng)
            self._buffer_dataset = self.dataset
            self.data_conversion = dict(self._buffer.conversion_info)
        if not self._scalers_built():
            # the very function d3rlpy's fit calls: statistics over the buffer's transitions
            from d3rlpy.algos.utility import build_scalers_with_transition_picker

            build_scalers_with_transition_picker(self._d3, self._buffer)
            scaler = self._d3.config.reward_scaler
            if self.config.reward_scaler == "return" and scaler.return_max == scaler.return_min:
                self._d3.config.reward_scaler = type(scaler)(multiplier=scaler.multiplier)  # unfitted again
                raise DatasetError(
                    f"reward_scaler='return' divides rewards by the spread of episode returns, but all "
                    f"{len(self._buffer.episodes)} episode(s) return {scaler.return_max:g}: use reward_scaler='none' or more episodes"
                )

    def _scalers_built(self) -> bool:
        c = self._d3.config
        return all(s is None or s.built for s in (c.observation_scaler, c.action_scaler, c.reward_scaler))

    # -- training ------------------------------------------------------------------------------
    def _train_step(self) -> dict[str, Any]:
        metrics = self._d3.update(self._buffer.sample_transition_batch(self._d3.config.batch_size))
        if "loss" not in metrics and self.main_metric in metrics:
            metrics = {"loss": metrics[self.main_metric], **metrics}
        return metrics

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each d3rlpy optimizer (``actor_learning_rate``,
        ``critic_learning_rate``...); ``learning_rate`` is the critic's (BC, NFQ and the discrete
        algorithms have one optimizer: its rate)."""
        modules = self._d3.impl.modules
        rates: dict[str, float] = {}
        for f in dataclasses.fields(modules):
            wrapper = getattr(modules, f.name)
            optim = getattr(wrapper, "optim", None)
            if not f.name.endswith("optim") or optim is None or not optim.param_groups:
                continue
            key = "learning_rate" if f.name == "optim" else f"{f.name[: -len('_optim')]}_learning_rate"
            rates[key] = float(optim.param_groups[0]["lr"])
        if rates and "learning_rate" not in rates:
            main = rates.get("critic_learning_rate", next(iter(rates.values())))
            rates = {"learning_rate": main, **rates}
        return rates

    # -- inference -----------------------------------------------------------------------------
    def _predict(self, observations: np.ndarray, state) -> np.ndarray:
        if not self._scalers_built():
            self._prepare_data()
        if self.stochastic_predict.get(self.spec.action_space, False):
            # a deterministic function of (weights, batch): the sampled candidates use a fixed seed
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(self.seed)
                actions = self._d3.predict(observations)
        else:
            actions = self._d3.predict(observations)
        return np.asarray(actions, dtype=np.int64 if self.spec.discrete else np.float32)

    # -- persistence ---------------------------------------------------------------------------
    def _state_dict(self) -> dict[str, Any]:
        name, keys, pos, has_gauss, cached = self._sampling_rng.get_state()
        return {
            "grad_step": int(self._d3.grad_step),
            "sampling_rng": {"name": str(name), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                             "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        }

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        self._d3.set_grad_step(int(state["grad_step"]))
        s = state["sampling_rng"]
        self._sampling_rng.set_state((s["name"], s["keys"].cpu().numpy().astype(np.uint32), s["pos"], s["has_gauss"], s["cached_gaussian"]))

    def _extra_files(self) -> dict[str, bytes]:
        # d3rlpy's own save() pickles its config: store the config as JSON and the modules'
        # state dicts as tensors instead, so that loading never unpickles
        if not self._scalers_built():
            self._prepare_data()  # a save before learn(): fit the scalers as predict() does
        from d3rlpy.base import LearnableConfigWithShape

        impl = self._d3.impl
        config = LearnableConfigWithShape(observation_shape=impl.observation_shape, action_size=impl.action_size, config=self._d3.config)
        weights = io.BytesIO()
        impl.save_model(weights)  # torch.save of {module name: state_dict}
        return {D3RLPY_CONFIG_ENTRY: config.serialize().encode("utf-8"), D3RLPY_WEIGHTS_ENTRY: weights.getvalue()}

    def _load_extra_files(self, files: dict[str, bytes]) -> None:
        if D3RLPY_CONFIG_ENTRY not in files or D3RLPY_WEIGHTS_ENTRY not in files:
            if LEGACY_D3RLPY_ENTRY in files:
                self._load_legacy_pickle(files[LEGACY_D3RLPY_ENTRY])
                return
            raise ValueError(
                f"the saved {type(self).__name__} has no {D3RLPY_CONFIG_ENTRY} / {D3RLPY_WEIGHTS_ENTRY} entries: "
                f"the file is damaged or not a d3rlpy baseline"
            )
        from d3rlpy.base import LearnableConfigWithShape

        try:
            shaped = LearnableConfigWithShape.deserialize(files[D3RLPY_CONFIG_ENTRY].decode("utf-8"))
        except Exception as e:  # dataclasses-json/marshmallow raise many types for bad input
            raise ValueError(f"the saved {type(self).__name__}'s {D3RLPY_CONFIG_ENTRY} is damaged or not a d3rlpy config ({type(e).__name__}: {e})") from None
        expected = self.d3rlpy_config_class
        if type(shaped.config) is not expected:
            raise ValueError(f"the saved d3rlpy config is a {type(shaped.config).__name__}, expected a {expected.__name__}")
        devices = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # its throw-away initialization must not move the global RNG
            algo = shaped.create(device=_d3rlpy_device(self.device))
        states = _load_tensors(files[D3RLPY_WEIGHTS_ENTRY], self.device, f"{D3RLPY_WEIGHTS_ENTRY} of the saved {type(self).__name__}")
        # the same modules (networks and optimizer wrappers) that d3rlpy's save_model wrote
        savable = algo.impl.modules.create_checkpointer(algo.impl.device).modules
        for name, module in savable.items():
            if not isinstance(states, dict) or name not in states:
                raise ValueError(f"{D3RLPY_WEIGHTS_ENTRY} of the saved {type(self).__name__} lacks the weights of {name!r}")
            try:
                module.load_state_dict(states[name])
            except (RuntimeError, KeyError, ValueError) as e:
                raise ValueError(f"{D3RLPY_WEIGHTS_ENTRY}: the weights of {name!r} do not fit the saved config ({e})") from None
        self._d3 = algo
        self._refresh_model()

    def _load_legacy_pickle(self, data: bytes) -> None:
        """A zip of offline-zoo format 1: d3rlpy's pickle; unpickled only with ``trust_pickle=True``."""
        if not getattr(self, "_trust_pickle", False):
            raise ValueError(
                f"this saved {type(self).__name__} was written by an older offline-zoo and stores its d3rlpy model as a pickle "
                f"({LEGACY_D3RLPY_ENTRY}), which runs code when loaded; it is not loaded by default. If you made the file "
                f"yourself, load it once with load(..., trust_pickle=True) and save it again"
            )
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "model.d3")
            with open(path, "wb") as f:
                f.write(data)
            devices = [self.device.index or 0] if self.device.type == "cuda" else []
            with torch.random.fork_rng(devices=devices):
                algo = _d3rlpy().load_learnable(path, device=_d3rlpy_device(self.device))
        expected = self.d3rlpy_config_class.__name__[:-6]
        if type(algo).__name__ != expected:
            raise ValueError(f"the saved d3rlpy model is a {type(algo).__name__}, expected a {expected}")
        self._d3 = algo
        self._refresh_model()


def _d3rlpy_device(device: torch.device) -> str:
    return f"cuda:{device.index or 0}" if device.type == "cuda" else "cpu:0"


# --- the six baselines -------------------------------------------------------------------------
@register_algo
class CQL(D3rlpyAlgo):
    """Conservative Q-Learning (Kumar et al. 2020): d3rlpy's ``CQL`` (continuous) or ``DiscreteCQL``
    (Atari: Nature CNN, quantile Q-function, frame stack 4).

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = CQL(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,), n_action_samples=2)
        >>> "conservative_loss" in algo.learn(2, progress_bar=False).last_metrics
        True
        >>> CQL("hopper-medium", ratio=0.1).learn(1000, progress_bar=False).evaluate(n_episodes=2).score  # doctest: +SKIP
    """

    name = "cql"
    config_class = CQLConfig
    action_spaces = frozenset({"continuous", "discrete"})
    d3rlpy_configs = {"continuous": "CQLConfig", "discrete": "DiscreteCQLConfig"}
    discrete_renames = {"critic_learning_rate": "learning_rate", "conservative_weight": "alpha"}

    @classmethod
    def tiny_config(cls, spec: Spec) -> dict[str, Any]:
        extra = {"n_quantiles": 4} if spec.image else {"n_action_samples": 2}
        return {**super().tiny_config(spec), **extra}


@register_algo
class IQL(D3rlpyAlgo):
    """Implicit Q-Learning (Kostrikov et al. 2021): d3rlpy's ``IQL``; continuous actions only.

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = IQL(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,), expectile=0.9)
        >>> sorted(algo.learn(2, progress_bar=False).last_metrics)
        ['actor_loss', 'critic_loss', 'loss', 'q_loss', 'v_loss']
        >>> IQL(tiny_dataset("discrete"))
        Traceback (most recent call last):
        ...
        ValueError: IQL does not support discrete actions (task None); it supports: continuous. ...
        >>> IQL("walker2d-medium", ratio=0.1).learn(1000, progress_bar=False)  # doctest: +SKIP
    """

    name = "iql"
    config_class = IQLConfig
    action_spaces = frozenset({"continuous"})
    d3rlpy_configs = {"continuous": "IQLConfig"}

    def _more_d3rlpy_kwargs(self, target: set[str]) -> dict[str, Any]:
        if not self.config.actor_cosine_lr:
            return {}
        d3 = _d3rlpy()
        schedule = d3.optimizers.CosineAnnealingLRFactory(T_max=int(self.config.n_steps))
        eps = {"eps": float(self.config.adam_eps)} if self.config.adam_eps is not None else {}
        return {"actor_optim_factory": d3.optimizers.AdamFactory(lr_scheduler_factory=schedule, **eps)}


@register_algo(aliases=("td3bc",))
class TD3PlusBC(D3rlpyAlgo):
    """TD3+BC (Fujimoto & Gu 2021): d3rlpy's ``TD3PlusBC``; continuous actions only.

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = TD3PlusBC(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,), alpha=2.5)
        >>> actions, _ = algo.learn(2, progress_bar=False).predict(tiny_dataset().observations[:4])
        >>> actions.shape
        (4, 3)
        >>> TD3PlusBC("halfcheetah-medium", ratio=0.1).learn(1000, progress_bar=False)  # doctest: +SKIP
    """

    name = "td3+bc"
    config_class = TD3PlusBCConfig
    action_spaces = frozenset({"continuous"})
    d3rlpy_configs = {"continuous": "TD3PlusBCConfig"}


@register_algo
class BCQ(D3rlpyAlgo):
    """Batch-Constrained Q-learning (Fujimoto et al. 2019): d3rlpy's ``BCQ`` (continuous: VAE imitator
    + perturbation; its predictions sample candidates with a fixed seed) or ``DiscreteBCQ`` (Atari).

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = BCQ(tiny_dataset("discrete"), device="cpu", batch_size=2, cnn_feature_size=32)
        >>> type(algo.d3rlpy_algo).__name__
        'DiscreteBCQ'
        >>> algo.learn(2, progress_bar=False).num_steps
        2
        >>> BCQ("breakout-medium", ratio=0.1).learn(1000, progress_bar=False)  # doctest: +SKIP
    """

    name = "bcq"
    config_class = BCQConfig
    action_spaces = frozenset({"continuous", "discrete"})
    d3rlpy_configs = {"continuous": "BCQConfig", "discrete": "DiscreteBCQConfig"}
    discrete_renames = {"critic_learning_rate": "learning_rate"}
    stochastic_predict = {"continuous": True}

    def _more_d3rlpy_kwargs(self, target: set[str]) -> dict[str, Any]:
        units = self.config.imitator_hidden_units
        if units is None or "imitator_encoder_factory" not in target:
            return {}
        return {"imitator_encoder_factory": _d3rlpy().models.VectorEncoderFactory(hidden_units=[int(u) for u in units])}

    @classmethod
    def tiny_config(cls, spec: Spec) -> dict[str, Any]:
        extra = {"n_quantiles": 4} if spec.image else {"imitator_hidden_units": (16,), "n_action_samples": 4}
        return {**super().tiny_config(spec), **extra}


@register_algo
class NFQ(D3rlpyAlgo):
    """Neural Fitted Q Iteration (Riedmiller 2005): d3rlpy's ``NFQ``; discrete (Atari) actions only.

    Examples:
        >>> from offline_zoo.testing import TinyImageEnv, tiny_dataset
        >>> algo = NFQ(tiny_dataset("discrete"), device="cpu", batch_size=2, cnn_feature_size=32)
        >>> result = algo.learn(2, progress_bar=False).evaluate(n_episodes=1, env_fn=TinyImageEnv)
        >>> list(result.returns), result.lengths[None].tolist()  # one group (no return conditioning), 10 steps
        ([None], [10])
        >>> NFQ("pong-medium", ratio=0.1).learn(1000, progress_bar=False)  # doctest: +SKIP
    """

    name = "nfq"
    config_class = NFQConfig
    action_spaces = frozenset({"discrete"})
    d3rlpy_configs = {"discrete": "NFQConfig"}


@register_algo
class BC(D3rlpyAlgo):
    """Behaviour cloning: d3rlpy's ``BC`` (continuous, deterministic MSE policy) or ``DiscreteBC``.

    Examples:
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = BC(tiny_dataset(), device="cpu", batch_size=8, hidden_units=(16,))
        >>> result = algo.learn(2, progress_bar=False).evaluate(n_episodes=2)  # in Hopper-v5
        >>> len(result.returns[None]), result.score is not None
        (2, True)
        >>> BC("kitchen-partial").learn(1000, progress_bar=False)  # doctest: +SKIP
    """

    name = "bc"
    config_class = BCConfig
    action_spaces = frozenset({"continuous", "discrete"})
    d3rlpy_configs = {"continuous": "BCConfig", "discrete": "DiscreteBCConfig"}
    main_metric = "loss"
