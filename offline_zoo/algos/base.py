"""``OfflineAlgo``: the one shallow base class of every algorithm (Stable-Baselines3 style).

    >>> from offline_zoo import DT
    >>> algo = DT("hopper-medium", ratio=0.1, source="generated")  # doctest: +SKIP
    >>> algo.learn(1000).evaluate(n_episodes=5).score  # doctest: +SKIP

A subclass sets ``name``, ``config_class`` and ``action_spaces`` and implements ``_build``,
``_train_step`` and ``_predict`` (plus ``new_rollout_state`` for sequence models). Everything else —
dataset loading and subsampling, config resolution, the training loop with callbacks and a progress
bar, batched evaluation, and exact save/load — lives here once.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Callable, ClassVar

import numpy as np
import torch

from ..callbacks import CallbackList, EvalCallback, as_callback
from ..data.dataset import Dataset, check_ratio, default_subset_seed
from ..data.loaders import load_dataset
from ..devices import resolve_device
from ..files import atomic_writer
from ..evaluation import EvaluationResult, run_episodes
from ..loggers import LoggerCallback, check_logger
from ..tasks import Task, get_task, register_task
from ..versions import RESULT_PACKAGES, versions  # noqa: F401 - RESULT_PACKAGES re-exported
from .config import AlgoConfig, resolve_config

__all__ = ["OfflineAlgo", "RolloutState", "Spec", "resolve_device"]

# 1: d3rlpy baselines stored a d3rlpy pickle (d3rlpy/model.d3); 2: JSON config + tensors only
FORMAT_VERSION = 2
_REQUIRED_META = ("algo", "config", "spec", "stats", "seed", "num_steps", "data", "rng")


@dataclass(frozen=True)
class Spec:
    """What a model needs to know about the data: shapes, action space and the task.

    Attributes:
        observation_shape: shape of one observation as the policy sees it (frames stacked).
        action_dim: continuous: dimension of an action; discrete: number of actions.
        discrete: discrete (Atari) or continuous actions.
        task: name of the task the data is bound to, or None.
        image: uint8 image observations (no state normalization).

    Examples:
        >>> Spec((11,), 3, False, "hopper-medium").action_space
        'continuous'
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> DT(tiny_dataset("discrete"), device="cpu", target_returns=(10.0,)).spec
        Spec(observation_shape=(4, 84, 84), action_dim=4, discrete=True, task=None, image=True)
    """

    observation_shape: tuple[int, ...]
    action_dim: int  # continuous: dimension; discrete: number of actions
    discrete: bool
    task: str | None
    image: bool = False

    @property
    def action_space(self) -> str:
        """``"discrete"`` or ``"continuous"``."""
        return "discrete" if self.discrete else "continuous"


class RolloutState:
    """Per-episode context of a sequence model during a rollout (one row per parallel episode).

    ``OfflineAlgo.predict`` reads and extends it; after the environment step the caller reports the
    rewards with `record_reward`; `subset` keeps only some episodes (finished ones leave).
    ``algo.new_rollout_state(n, target)`` makes one.

    Examples:
        >>> import numpy as np
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4)
        >>> state = algo.new_rollout_state(2, target_returns=3600.0)
        >>> isinstance(state, RolloutState), len(state)
        (True, 2)
        >>> actions, state = algo.predict(np.zeros((2, 11)), state=state)
        >>> state.record_reward(np.array([1.0, 0.5]))
        >>> len(state.subset(np.array([1])))  # episode 0 finished
        1
    """

    def record_reward(self, rewards: np.ndarray) -> None:  # pragma: no cover - interface
        """Report the rewards of the step just taken, one per episode."""
        raise NotImplementedError

    def subset(self, indices: np.ndarray) -> "RolloutState":  # pragma: no cover - interface
        """A state holding only the episodes at ``indices``."""
        raise NotImplementedError

    def __len__(self) -> int:  # pragma: no cover - interface
        raise NotImplementedError


class OfflineAlgo:
    """Base class of every offline-zoo algorithm.

    Args:
        task_or_dataset: a task name (``"hopper-medium"``), a `Task`, or a
            `Dataset` (possibly bound to a task for evaluation and scoring).
        ratio: fraction of trajectories kept, in (0, 1].
        seed: seeds the weights and the batch sampling (and, on Atari, the trajectory subset).
        subset_seed: seed of the trajectory subset; None = `default_subset_seed`: one subset
            per (task, ratio) shared by every training seed, as the released MuJoCo/Kitchen code,
            and the training seed on Atari, as the released Atari code.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        source: dataset source for a task name (``"minari"``, ``"d4rl"``, ``"d4rl-atari"``,
            ``"generated"``); None = the task's default.
        config_file: YAML file with config values (flat, or sectioned like ``configs/<algo>.yaml``).
        **config_overrides: fields of the algorithm's config dataclass.

    Examples:
        Train a tiny DT on a small random dataset bound to ``hopper-medium``, act, evaluate in
        the real environment, save and load:

        >>> import numpy as np
        >>> from offline_zoo import DT
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = DT(tiny_dataset(), seed=0, device="cpu", hidden_size=16, n_layer=1, context_len=4, batch_size=4)
        >>> algo
        DT(task='hopper-medium', steps=0, device=cpu)
        >>> algo.learn(5, progress_bar=False).num_steps
        5
        >>> sorted(algo.last_metrics)
        ['action_loss', 'grad_norm', 'loss']
        >>> actions, state = algo.predict(np.zeros((2, 11)))
        >>> actions.shape, actions.dtype.name
        ((2, 3), 'float32')
        >>> result = algo.evaluate(n_episodes=1)
        >>> sorted(result.returns)  # one group per return-to-go target of DT on hopper
        [1800.0, 3600.0]
        >>> path = algo.save("dt-hopper")
        >>> path.name
        'dt-hopper.zip'
        >>> loaded = OfflineAlgo.load(path, device="cpu")
        >>> type(loaded).__name__, loaded.num_steps
        ('DT', 5)
        >>> np.allclose(loaded.predict(np.zeros((2, 11)))[0], actions, atol=1e-6)
        True

        A full run on the real data (downloads it, or generates it locally):

        >>> DT("hopper-medium", ratio=0.1, source="generated").learn()  # doctest: +SKIP
    """

    name: ClassVar[str] = "base"
    config_class: ClassVar[type] = AlgoConfig
    action_spaces: ClassVar[frozenset[str]] = frozenset({"continuous", "discrete"})
    #: True for return-conditioned sequence models (evaluated once per return-to-go target)
    conditions_on_return: ClassVar[bool] = False

    def __init__(
        self,
        task_or_dataset: str | Task | Dataset,
        ratio: float = 1.0,
        seed: int = 0,
        device: str | torch.device = "auto",
        source: str | None = None,
        config_file: str | os.PathLike | None = None,
        subset_seed: int | None = None,
        **config_overrides: Any,
    ):
        ratio = check_ratio(ratio)
        if not isinstance(task_or_dataset, (Dataset, str, Task)):
            raise TypeError(f"{type(self).__name__} takes a task name, a Task or a Dataset, not {type(task_or_dataset).__name__}")
        given = isinstance(task_or_dataset, Dataset)
        if subset_seed is None:
            subset_seed = default_subset_seed(task_or_dataset.task if given else task_or_dataset, seed)
        subset_seed = _seed("subset_seed", subset_seed)
        if given:
            dataset = task_or_dataset if ratio == 1.0 else task_or_dataset.subsample(ratio, seed=subset_seed)
        else:
            dataset = load_dataset(task_or_dataset, ratio=ratio, seed=subset_seed, source=source)
        task = dataset.task
        config = resolve_config(self.config_class, self.name, task, config_overrides, config_file)
        spec = Spec(tuple(dataset.observation_shape), dataset.action_dim, dataset.discrete, task.name if task else None, dataset.observations.dtype == np.uint8)
        stats = {}
        if not spec.image:
            stats = {"state_mean": dataset.state_mean, "state_std": dataset.state_std}
        self._setup(config, spec, stats, seed, device, dataset.describe())
        self.dataset: Dataset | None = dataset

    def _setup(self, config, spec: Spec, stats: dict, seed: int, device, data_info: dict) -> None:
        """Shared by ``__init__`` and ``load``: everything but the dataset."""
        if spec.action_space not in self.action_spaces:
            raise ValueError(
                f"{type(self).__name__} does not support {spec.action_space} actions (task {spec.task!r}); "
                f"it supports: {', '.join(sorted(self.action_spaces))}. {_SUPPORT_TABLE}"
            )
        self.config = config
        self.spec = spec
        self.task: Task | None = get_task(spec.task) if spec.task else None
        self.stats = {k: np.asarray(v, dtype=np.float32) for k, v in stats.items()}
        self.seed = int(seed)
        self.device = resolve_device(device)
        self.data_info = dict(data_info)
        self.num_steps = 0
        self.rng = np.random.default_rng(self.seed)
        self.history: dict[str, list] = {"train": [], "eval": []}
        self._last_metrics: dict[str, Any] = {}
        # the latest value of every metric: a term some steps skip (TD3+BC's actor loss, updated every
        # 2nd step) keeps its last value in the history and the logs
        self._latest_metrics: dict[str, Any] = {}
        self._eval_listeners: list = []  # LoggerCallbacks of the running learn(): they log evaluations
        self._last_score: float | None = None
        self.dataset = None
        self.model = None
        # Each algorithm owns its torch RNG stream (weights init, dropout, d3rlpy's sampling): two
        # algorithms in one process never disturb each other, and save/load restores the stream.
        with self._own_rng(fresh=True):
            self._build()

    @contextlib.contextmanager
    def _own_rng(self, fresh: bool = False):
        """Run a block on this algorithm's torch RNG state, leaving the global state untouched."""
        cuda = [self.device.index or 0] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            if fresh:
                torch.manual_seed(self.seed)
            else:
                torch.set_rng_state(self._torch_rng)
                if cuda and self._cuda_rng is not None:
                    torch.cuda.set_rng_state(self._cuda_rng, cuda[0])
            self._rng_live = True  # a save() inside this block (checkpoint callback) reads the live state
            try:
                yield
            finally:
                self._rng_live = False
                self._torch_rng = torch.get_rng_state()
                self._cuda_rng = torch.cuda.get_rng_state(cuda[0]) if cuda else None

    # -- to implement --------------------------------------------------------------------------
    def _build(self) -> None:
        """Create ``self.model`` and the optimizer(s) from config, spec and stats."""
        raise NotImplementedError

    def _train_step(self) -> dict[str, Any]:
        """One gradient step on a batch from ``self.dataset``; returns metrics (tensors or floats)."""
        raise NotImplementedError

    def _predict(self, observations: np.ndarray, state: RolloutState | None) -> np.ndarray:
        """Actions for a batch of observations (no gradients)."""
        raise NotImplementedError

    def new_rollout_state(self, n: int, target_returns=None) -> RolloutState | None:
        """Context for ``n`` parallel episodes; None for policies that only look at the observation.

        ``target_returns``: one return-to-go target per episode (or a single number).
        """
        return None

    def _state_dict(self) -> dict[str, Any]:
        """Everything that must survive save/load besides config/spec/stats (default: model + optimizers)."""
        out = {"model": _module_state(self.model)}
        if getattr(self, "optimizers", None):
            out["optimizers"] = {k: o.state_dict() for k, o in self.optimizers.items()}
        if getattr(self, "schedulers", None):
            out["schedulers"] = {k: s.state_dict() for k, s in self.schedulers.items()}
        return out

    def _load_state_dict(self, state: dict[str, Any]) -> None:
        _load_module_state(self.model, state["model"])
        for k, o in (getattr(self, "optimizers", None) or {}).items():
            if k in state.get("optimizers", {}):
                o.load_state_dict(state["optimizers"][k])
        for k, s in (getattr(self, "schedulers", None) or {}).items():
            if k in state.get("schedulers", {}):
                s.load_state_dict(state["schedulers"][k])

    @classmethod
    def tiny_config(cls, spec: Spec) -> dict[str, Any]:
        """Config overrides that make the algorithm tiny and fast (conformance tests, smoke runs)."""
        return {}

    # -- training ------------------------------------------------------------------------------
    def learn(
        self, n_steps: int | None = None, callback=None, progress_bar: bool = True, eval_every: int | None = None, log_every: int = 100,
        logger=None, log_dir: str | os.PathLike = "logs",
    ) -> "OfflineAlgo":
        """Train for ``n_steps`` gradient steps (default ``config.n_steps``); continues on a second call.

        ``callback``: a `Callback`, a function ``f(algo)`` or a list;
        ``eval_every``: shorthand for an `EvalCallback`. Metrics are
        kept every ``log_every`` steps in ``algo.history["train"]``. Returns ``self``.

        ``logger``: also write the metrics every ``log_every`` steps, and every evaluation, to a
        `offline_zoo.loggers.Logger`, a logger name (``"csv"``, ``"jsonl"``, ``"tensorboard"``,
        ``"wandb"``; files in ``log_dir``) or a list of those (see `offline_zoo.loggers.LoggerCallback`
        and docs/logging.md). Loggers given by name are closed when ``learn`` returns (a next call
        appends to the same files); a `Logger` passed in is flushed and left open.
        """
        n = self.config.n_steps if n_steps is None else n_steps
        if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 0:
            raise ValueError(f"n_steps={n_steps!r} must be a non-negative integer number of gradient steps")
        if self.dataset is None:
            raise RuntimeError(
                f"this {type(self).__name__} has no dataset to train on (it was loaded from a file): "
                f"use {type(self).__name__}.load(path, dataset=...) to continue training"
            )
        if eval_every is not None:
            eval_every = _positive_int("eval_every", eval_every)
        log_every = _positive_int("log_every", log_every)
        callbacks = [as_callback(callback)]
        if logger is not None:
            check_logger(logger)
            # first: a step's training metrics are logged before an evaluation of the same step
            callbacks.insert(0, LoggerCallback(logger, log_every=log_every, log_dir=log_dir))
        if eval_every:
            callbacks.append(EvalCallback(eval_every))
        cb = CallbackList(callbacks)
        self._before_learn()
        cb.on_training_start(self, int(n))
        with self._own_rng(), _TrainingProgress(progress_bar, int(n), type(self).__name__) as bar:
            for _ in range(int(n)):
                self._last_metrics = self._train_step()
                self._latest_metrics.update(self._last_metrics)
                self.num_steps += 1
                if self.num_steps % log_every == 0:
                    self.history["train"].append({"step": self.num_steps, **self.latest_metrics})
                bar.update(self)
                if not cb.on_step(self):
                    break
        cb.on_training_end(self)
        return self

    def _before_learn(self) -> None:
        """Hook: lazily build samplers etc. once a dataset is known."""

    @property
    def last_metrics(self) -> dict[str, float]:
        """Metrics of the last gradient step as floats."""
        return {k: float(v) for k, v in self._last_metrics.items()}

    @property
    def latest_metrics(self) -> dict[str, float]:
        """The latest value of every metric as floats: `last_metrics`, plus the terms the last
        step did not compute (TD3+BC updates its actor every 2nd step: ``actor_loss`` and
        ``bc_loss`` keep their last values). What ``history["train"]`` and the loggers record."""
        latest = getattr(self, "_latest_metrics", None) or {}
        return {k: float(v) for k, v in {**latest, **self._last_metrics}.items()}

    def learning_rates(self) -> dict[str, float]:
        """The current learning rate of each optimizer: ``{"learning_rate": ...}`` for one optimizer;
        with several, ``learning_rate`` is the first one's and each has ``<name>_learning_rate``."""
        optimizers = getattr(self, "optimizers", None) or {}
        rates = {f"{name}_learning_rate": float(opt.param_groups[0]["lr"]) for name, opt in optimizers.items() if opt.param_groups}
        if len(rates) <= 1:
            return {"learning_rate": v for v in rates.values()}
        return {"learning_rate": next(iter(rates.values())), **rates}

    def log_evaluation(self, entry: dict[str, Any]) -> None:
        """Record an evaluation (called by EvalCallback); the progress bar shows its score and the
        loggers of the running ``learn`` log it (``eval/...``)."""
        self.history["eval"].append(entry)
        self._last_score = entry.get("score")
        for listener in list(getattr(self, "_eval_listeners", ())):
            listener.log_evaluation(int(entry.get("step", self.num_steps)), entry)

    # -- inference -----------------------------------------------------------------------------
    def predict(self, observation, state: RolloutState | None = None, deterministic: bool = True):
        """Actions for a batch of observations (or one observation): returns ``(actions, state)``.

        Sequence models keep each episode's context in ``state`` (``algo.new_rollout_state(n,
        target)``); after stepping the environments call ``state.record_reward(rewards)``.
        Markov policies ignore ``state``. Only deterministic actions are supported (the paper's protocol).
        """
        if not deterministic:
            raise ValueError("deterministic=False is not supported: offline-zoo policies act deterministically, as in the paper's evaluation")
        obs = np.asarray(observation)
        shape = self.spec.observation_shape
        single = obs.shape == shape
        if single:
            obs = obs[None]
        if obs.shape[1:] != shape:
            raise ValueError(f"observation has shape {np.asarray(observation).shape}; expected {shape} or a batch (n, {', '.join(map(str, shape))})")
        if obs.dtype != np.uint8:
            obs = obs.astype(np.float32, copy=False)
            if not np.isfinite(obs).all():
                raise ValueError("observation contains NaN or inf")
        if self.conditions_on_return and state is None:
            state = self.new_rollout_state(len(obs))
        if state is not None and len(state) != len(obs):
            raise ValueError(f"rollout state holds {len(state)} episodes but {len(obs)} observations were given")
        with torch.no_grad():
            actions = self._predict(obs, state)
        return (actions[0] if single else actions), state

    def default_targets(self) -> tuple[float, ...] | None:
        """Return-to-go targets evaluated by default (None for policies without return conditioning)."""
        if not self.conditions_on_return:
            return None
        if self.config.target_returns:
            return tuple(float(t) for t in self.config.target_returns)
        if self.task is not None:
            return self.task.target_returns
        raise ValueError("no target_returns: pass target_returns=[...] (the dataset is not bound to a task)")

    def evaluate(self, n_episodes: int | None = None, target_returns=None, seed: int = 0, env_fn: Callable | None = None, progress_bar: bool = False) -> EvaluationResult:
        """Run ``n_episodes`` per return-to-go target in the task's real environment, all in one batch.

        Returns an `EvaluationResult` with raw returns, lengths and
        normalized scores per target, and the environment's id. By default the environment is the
        task's, in the version closest to the data's source (`offline_zoo.envs.make_env`);
        ``env_fn`` builds another one (required for datasets without a task).
        """
        n = self.config.eval_episodes if n_episodes is None else _positive_int("n_episodes", n_episodes)
        targets = None
        if self.conditions_on_return:
            targets = _check_targets(target_returns) if target_returns is not None else self.default_targets()
        if env_fn is None:
            if self.task is None:
                raise ValueError("this dataset is not bound to a task: pass env_fn=lambda: gymnasium.make(...) to evaluate")
            from ..envs import make_env

            task, source = self.task, self.data_info.get("source")  # the env version of the data's source
            env_fn = lambda: make_env(task, source=source)  # noqa: E731
        self._set_eval_mode(True)
        try:
            return run_episodes(self, env_fn, n, targets, seed=seed, task=self.task, progress_bar=progress_bar)
        finally:
            self._set_eval_mode(False)

    def _set_eval_mode(self, evaluating: bool) -> None:
        for m in _modules(self.model):
            m.train(not evaluating)

    # -- persistence ---------------------------------------------------------------------------
    def save(self, path: str | os.PathLike) -> Path:
        """Write a zip with config, spec, dataset statistics and provenance, versions, weights,
        optimizer and RNG states. Atomic: a crash never leaves a half-written file."""
        path = Path(path)
        if path.suffix != ".zip":
            path = path.with_suffix(path.suffix + ".zip") if path.suffix else path.with_suffix(".zip")
        meta, state, extra = self._saved_meta(), self._saved_state(), self._extra_files()
        buf = io.BytesIO()
        torch.save(state, buf)
        with atomic_writer(path) as f, zipfile.ZipFile(f, "w", zipfile.ZIP_DEFLATED) as z:
            z.writestr("meta.json", json.dumps(meta, indent=2))
            z.writestr("state.pt", buf.getvalue())
            for name, data in extra.items():
                z.writestr(name, data)
        return path

    def _saved_meta(self) -> dict[str, Any]:
        """The JSON part of what `save` (meta.json) and `save_pretrained` (config.json) write."""
        return {
            "format_version": FORMAT_VERSION,
            "algo": self.name,
            "class": type(self).__name__,
            "config": _jsonable(asdict(self.config)),
            "spec": asdict(self.spec),
            # the whole task, so that a task of the user's own need not be registered again to load
            "task": _jsonable(asdict(self.task)) if self.task is not None else None,
            "stats": {k: v.tolist() for k, v in self.stats.items()},
            "seed": self.seed,
            "num_steps": self.num_steps,
            "data": _jsonable(self.data_info),
            "versions": versions(),
            "rng": _jsonable(self.rng.bit_generator.state),
            "history": _jsonable(self.history),
            "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }

    def _saved_state(self) -> dict[str, Any]:
        """The tensor part of what `save` (state.pt) and `save_pretrained` (model.safetensors) write."""
        torch_rng, cuda_rng = self._torch_rng, self._cuda_rng
        if getattr(self, "_rng_live", False):
            torch_rng = torch.get_rng_state()
            cuda_rng = torch.cuda.get_rng_state(self.device.index or 0) if self.device.type == "cuda" else None
        return {"state": self._state_dict(), "torch_rng": torch_rng, "cuda_rng": cuda_rng}

    def _extra_files(self) -> dict[str, bytes]:
        """Additional files for the zip (e.g. a d3rlpy checkpoint)."""
        return {}

    def _load_extra_files(self, files: dict[str, bytes]) -> None:
        """Read back what ``_extra_files`` wrote."""

    @classmethod
    def load(
        cls, path: str | os.PathLike, dataset: Dataset | None = None, device: str = "auto", trust_pickle: bool = False
    ) -> "OfflineAlgo":
        """Load a saved algorithm: same predictions, config, statistics and step count.

        Called on the base class, the saved algorithm's class is looked up in the registry by its
        ``name``. Called on the class that saved the file, that class is used, registered or not
        (a ``module:Class`` of a suite, a subclass of a built-in). Pass ``dataset`` to continue
        training.

        Loading never unpickles arbitrary objects: JSON and tensors only (``torch.load`` with
        ``weights_only=True``). ``trust_pickle=True`` is needed only for d3rlpy baselines saved by
        offline-zoo before format 2, which stored a d3rlpy pickle: **unsafe**, a crafted file runs
        code when unpickled; use it only for files you made yourself, and save them again.
        """
        path = Path(path)
        if not path.exists() and path.with_suffix(".zip").exists():
            path = path.with_suffix(".zip")
        if not path.exists():
            raise FileNotFoundError(f"no saved algorithm at {str(path)!r}")
        meta, blob, extra = _read_saved_zip(path)
        return cls._restore(
            meta, extra, lambda device: _load_tensors(blob, device, f"{path}:state.pt"), str(path), dataset, device, trust_pickle, "load"
        )

    @classmethod
    def _restore(
        cls, meta: dict[str, Any], extra: dict[str, bytes], read_state: Callable[[torch.device], Any], path: str,
        dataset: Dataset | None, device, trust_pickle: bool, loader: str,
    ) -> "OfflineAlgo":
        """Rebuild a saved algorithm from its meta, extra files and tensors (``read_state(device)``);
        shared by `load` (a zip) and `from_pretrained` (a model folder). ``loader`` names the
        method in error messages."""
        from .registry import get_algo

        if cls is not OfflineAlgo and cls.name == meta["algo"] and cls.__name__ == meta.get("class"):
            klass = cls  # the very class that saved it: no registry lookup needed
        else:
            try:
                klass = get_algo(meta["algo"])
            except KeyError as e:
                raise KeyError(
                    f"{path} holds a {meta.get('class')} (algorithm {meta['algo']!r}) that is not registered in this process: "
                    f"import the module that registers it, or load it with {meta.get('class')}.{loader}. {e.args[0]}"
                ) from None
        if cls is not OfflineAlgo and not issubclass(klass, cls):
            raise TypeError(f"{path} holds a {meta['class']}, not a {cls.__name__}; load it with {meta['class']}.{loader} or OfflineAlgo.{loader}")
        obj = klass.__new__(klass)
        known = {f.name for f in fields(klass.config_class)}
        unknown = sorted(set(meta["config"]) - known)
        if unknown:
            raise ValueError(
                f"{path} has config field(s) {', '.join(map(repr, unknown))} that this offline-zoo's {klass.__name__} does not know: "
                f"it was saved by another version of offline-zoo ({meta.get('versions', {}).get('offline-zoo', 'unknown')}); "
                f"load it with that version"
            )
        # a field the file predates takes the behaviour it was saved with, not today's default
        recorded = klass.config_class.complete_record(meta["config"])
        config = klass.config_class(**{k: tuple(v) if isinstance(v, list) else v for k, v in recorded.items()})
        spec = Spec(**{**meta["spec"], "observation_shape": tuple(meta["spec"]["observation_shape"])})
        _register_saved_task(spec.task, meta.get("task"))
        # the zip's extra files, readable while _build runs: an LM-backed agent rebuilds its language
        # model's architecture from them instead of downloading weights the state will overwrite
        obj._restoring = extra
        try:
            obj._setup(config, spec, meta["stats"], meta["seed"], device, meta["data"])
        finally:
            del obj._restoring
        obj._trust_pickle = trust_pickle
        try:
            obj._load_extra_files(extra)
        finally:
            del obj._trust_pickle
        saved = read_state(obj.device)
        try:
            obj._load_state_dict(saved["state"])
        except RuntimeError as e:
            if "size mismatch" not in str(e) and "Missing key" not in str(e) and "Unexpected key" not in str(e):
                raise
            # the zip's weights do not fit the network this version builds from its config
            # (e.g. Wiki-RL agents saved before its timestep table held all of wpe's rows)
            first = next((line.strip() for line in str(e).splitlines()[1:] if line.strip()), str(e))
            raise ValueError(
                f"{path}: its weights do not fit the {klass.__name__} network this offline-zoo builds from its config "
                f"({first}); it was saved by offline-zoo {meta.get('versions', {}).get('offline-zoo', 'unknown')} "
                f"(this is {versions().get('offline-zoo', 'unknown')}), whose network differed: load it with the "
                "offline-zoo that saved it, or retrain"
            ) from None
        obj._torch_rng = saved["torch_rng"].cpu()
        if obj.device.type == "cuda" and saved.get("cuda_rng") is not None:
            obj._cuda_rng = saved["cuda_rng"].cpu()
        obj.num_steps = int(meta["num_steps"])
        obj.history = meta.get("history", obj.history)
        obj.rng.bit_generator.state = meta["rng"]
        if dataset is not None:
            obj.dataset = dataset
        return obj

    # -- model folders (Hugging Face Hub layout) -------------------------------------------------
    def save_pretrained(
        self, directory: str | os.PathLike, overwrite: bool = False, evaluation: EvaluationResult | None = None, repo_id: str | None = None
    ) -> Path:
        """Write a model folder: ``config.json``, ``model.safetensors``, ``stats.json`` and a
        ``README.md`` model card (see the *Model cards* page). Returns the folder.

        The folder holds what `save` stores (config, spec, statistics, weights, optimizer and RNG
        states, history, versions) as JSON and safetensors, so `from_pretrained` restores the same
        predictions and can continue training. An existing model folder is overwritten; a
        non-empty folder of anything else is refused unless ``overwrite=True``. ``evaluation``: an
        `EvaluationResult` to list in the card besides the evaluations of ``history``;
        ``repo_id``: the hub id the card's usage example names.

        Examples:
            >>> from offline_zoo import DT
            >>> from offline_zoo.testing import tiny_dataset
            >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4)
            >>> folder = algo.save_pretrained("dt-hopper")
            >>> sorted(p.name for p in folder.iterdir())
            ['README.md', 'config.json', 'model.safetensors', 'stats.json']
            >>> print(open(folder / "README.md").read().splitlines()[1])
            library_name: offline-zoo
        """
        from . import pretrained

        meta, state, extra = self._saved_meta(), self._saved_state(), self._extra_files()
        stats = meta.pop("stats")
        # torch blobs among the extra files (a d3rlpy baseline's module weights) join the safetensors
        tensor_extras = {n: _load_tensors(d, torch.device("cpu"), n) for n, d in extra.items() if n.endswith(".pt")}
        tensors: dict[str, torch.Tensor] = {}
        layout = pretrained.pack_tensors({**state, "extra": tensor_extras}, tensors)
        texts = {n: d for n, d in extra.items() if n not in tensor_extras}
        config = pretrained.folder_config(meta, layout, texts, _jsonable(evaluation.to_dict()) if evaluation is not None else None)
        card = pretrained.model_card(config, repo_id=repo_id)
        return pretrained.write_model_folder(directory, config, tensors, stats, card, overwrite)

    @classmethod
    def from_pretrained(
        cls, path_or_repo_id: str | os.PathLike, device: str = "auto", dataset: Dataset | None = None,
        revision: str | None = None, token: str | bool | None = None,
    ) -> "OfflineAlgo":
        """Load a model folder written by `save_pretrained`: a local folder, or a Hugging Face Hub id
        (``"owner/name"``, downloaded with ``huggingface_hub.snapshot_download``).

        Like `load`: called on the base class, the class is found in the registry by the folder's
        algorithm name; called on a class, a folder of another algorithm is refused. Pass
        ``dataset`` to continue training. Only JSON and safetensors are read: nothing in the folder
        is executed. A hub id that is not cached fails at once with `HubNotReachableError` when
        ``HF_HUB_OFFLINE`` is set or the hub cannot be reached.

        Examples:
            >>> import numpy as np
            >>> from offline_zoo import DT
            >>> from offline_zoo.testing import tiny_dataset
            >>> algo = DT(tiny_dataset(), device="cpu", hidden_size=16, n_layer=1, context_len=4)
            >>> loaded = OfflineAlgo.from_pretrained(algo.save_pretrained("dt-hopper"), device="cpu")
            >>> type(loaded).__name__, np.array_equal(loaded.predict(np.zeros(11))[0], algo.predict(np.zeros(11))[0])
            ('DT', True)
            >>> OfflineAlgo.from_pretrained("someone/dt-hopper-medium")  # doctest: +SKIP
        """
        from . import pretrained

        folder, where = pretrained.resolve(path_or_repo_id, revision, token)
        config, stats, weights = pretrained.read_model_folder(folder)
        meta, extra, layout = pretrained.meta_from_config(config, stats, where)
        tree = pretrained.unpack_tensors(layout, pretrained.read_safetensors(weights))
        for name, value in (tree.get("extra") or {}).items():
            buf = io.BytesIO()  # the form the algorithm's _load_extra_files reads (loaded weights_only)
            torch.save(value, buf)
            extra[name] = buf.getvalue()
        saved = {k: v for k, v in tree.items() if k != "extra"}
        read_state = lambda device: {**saved, "state": pretrained.to_device(saved["state"], device)}  # noqa: E731
        return cls._restore(meta, extra, read_state, where, dataset, device, False, "from_pretrained")

    def push_to_hub(
        self, repo_id: str, private: bool = False, token: str | None = None,
        commit_message: str | None = None, evaluation: EvaluationResult | None = None,
    ):
        """Upload the model folder (`save_pretrained`, written to a temporary folder) to the
        Hugging Face Hub as ``repo_id``, creating the repository if needed; returns
        ``huggingface_hub``'s ``CommitInfo``. ``token``: a hub token (default: the logged-in one).

        Examples:
            >>> algo.push_to_hub("me/dt-hopper-medium", private=True)  # doctest: +SKIP
        """
        import tempfile

        from . import pretrained

        message = commit_message or f"Upload {type(self).__name__} ({self.num_steps} steps) with offline-zoo"
        with tempfile.TemporaryDirectory(prefix="offline-zoo-push-") as tmp:
            folder = self.save_pretrained(Path(tmp) / "model", evaluation=evaluation, repo_id=repo_id)
            return pretrained.upload_folder(folder, repo_id, private, token, message)

    # -- misc ----------------------------------------------------------------------------------
    def parameter_counts(self) -> dict[str, int]:
        """Total and trainable parameter counts of the model(s) (cf. Table 14 of the LaMo paper)."""
        params = {id(p): p for m in _modules(self.model) for p in m.parameters()}.values()
        return {"total": sum(p.numel() for p in params), "trainable": sum(p.numel() for p in params if p.requires_grad)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.spec.task!r}, steps={self.num_steps}, device={self.device})"


_SUPPORT_TABLE = (
    "Continuous: LaMo, DT, WikiRL, CQL, IQL, TD3PlusBC, BCQ, BC. "
    "Discrete (Atari): LaMo, DT, WikiRL, CQL, BCQ, NFQ, BC."
)


class _TrainingProgress:
    """Rich progress bar with live loss and last evaluation score (refreshed a few times a second)."""

    def __init__(self, enabled: bool, total: int, label: str):
        self.enabled, self.total, self.label = enabled and total > 0, total, label
        self._next = 0.0

    def __enter__(self):
        if self.enabled:
            self._p = _progress(self.label, self.total)
            self._p.start()
            self._task = self._p.add_task(self.label, total=self.total, info="")
            self._done = 0
        return self

    def update(self, algo: OfflineAlgo) -> None:
        if not self.enabled:
            return
        self._done += 1
        now = time.monotonic()
        if now < self._next and self._done < self.total:
            return
        self._next = now + 0.25
        info = " ".join(f"{k} {v:.4g}" for k, v in list(algo.last_metrics.items())[:3])
        if algo._last_score is not None:
            info += f" | score {algo._last_score:.1f}"
        self._p.update(self._task, completed=self._done, info=info)

    def __exit__(self, *exc):
        if self.enabled:
            self._p.update(self._task, completed=self._done)
            self._p.stop()
        return False


def _progress(label: str, total: int, console=None):
    """The training bar's columns sized for the terminal: the step count ``n/total`` and the times
    are never cut; the label and the live metrics give way (ellipsis) on narrow terminals."""
    from rich import get_console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
    from rich.table import Column

    width = (console or get_console()).width
    steps = 2 * len(str(total)) + 1
    label_w, bar_w, time_w = min(len(label), 24), 16, 7
    info_w = max(1, width - (label_w + bar_w + steps + 2 * time_w + 5))  # 5 spaces between 6 columns
    fixed = lambda w: Column(no_wrap=True, min_width=w)  # noqa: E731
    return Progress(
        TextColumn("[bold]{task.description}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=label_w)),
        BarColumn(bar_width=bar_w), MofNCompleteColumn(table_column=fixed(steps)),
        TimeElapsedColumn(table_column=fixed(time_w)), TimeRemainingColumn(table_column=fixed(time_w)),
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, overflow="ellipsis", max_width=info_w)),
        console=console,
    )


def _register_saved_task(name: str | None, saved: dict | None) -> None:
    """Register the task a saved algorithm was trained on when this process does not know it (a
    task of the user's own); a registered task of that name is kept as it is."""
    if name is None or saved is None:
        return
    try:
        get_task(name)
    except KeyError:
        register_task(Task(**{**saved, "target_returns": tuple(saved["target_returns"])}))


def _modules(model) -> list[torch.nn.Module]:
    if model is None:
        return []
    if isinstance(model, torch.nn.Module):
        return [model]
    if isinstance(model, dict):
        return [m for m in model.values() if isinstance(m, torch.nn.Module)]
    return [m for m in getattr(model, "modules_for_eval", lambda: [])()]


def _module_state(model):
    if isinstance(model, torch.nn.Module):
        return model.state_dict()
    if isinstance(model, dict):
        return {k: m.state_dict() for k, m in model.items() if isinstance(m, torch.nn.Module)}
    return None


def _seed(name: str, value: Any) -> int:
    """``value`` as an int >= 0 (a seed), or a ValueError naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{name}={value!r} must be a whole number >= 0 (a seed)")
    return int(value)


def _positive_int(name: str, value: Any) -> int:
    """``value`` as an int >= 1, or a ValueError naming ``name`` (bools and fractions refused)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r} must be a whole number >= 1")
    return int(value)


def _check_targets(target_returns: Any) -> tuple[float, ...]:
    """Return-to-go targets: one number or a non-empty list of finite numbers."""
    values = [target_returns] if np.isscalar(target_returns) or isinstance(target_returns, str) else target_returns
    try:
        values = list(values)
    except TypeError:
        values = [target_returns]
    bad = [v for v in values if isinstance(v, (bool, np.bool_, str)) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v)]
    if not values or bad:
        raise ValueError(
            f"target_returns={target_returns!r} must be a finite number or a non-empty list of finite numbers "
            f"(returns to condition on, e.g. [3600, 1800]){f'; bad: {bad[0]!r}' if bad else ''}"
        )
    return tuple(float(v) for v in values)


def _read_saved_zip(path: Path) -> tuple[dict[str, Any], bytes, dict[str, bytes]]:
    """meta.json, state.pt and the other entries of a saved zip, or an error naming the file."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            missing = [n for n in ("meta.json", "state.pt") if n not in names]
            if missing:
                raise ValueError(
                    f"{path} is a zip but not a saved offline-zoo algorithm: it has no {' or '.join(missing)} "
                    f"(entries: {', '.join(names[:8]) or 'none'})"
                )
            meta_bytes, blob = z.read("meta.json"), z.read("state.pt")
            extra = {n: z.read(n) for n in names if n not in ("meta.json", "state.pt")}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as e:
        raise ValueError(f"{path} is not a readable saved algorithm (damaged, truncated or not a zip: {e})") from None
    except IsADirectoryError:
        raise ValueError(f"{path} is a directory, not a saved algorithm (.zip)") from None
    try:
        meta = json.loads(meta_bytes)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"{path}: meta.json is damaged ({e})") from None
    if not isinstance(meta, dict) or any(k not in meta for k in _REQUIRED_META):
        absent = [k for k in _REQUIRED_META if not isinstance(meta, dict) or k not in meta]
        raise ValueError(f"{path}: meta.json lacks {', '.join(absent)}: the file is damaged or was not written by offline-zoo")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(f"{path} was written by a newer offline-zoo (format {version!r}, this one reads up to {FORMAT_VERSION}); upgrade offline-zoo")
    return meta, blob, extra


def _load_tensors(blob: bytes, device: torch.device, where: str) -> Any:
    """``torch.load`` restricted to tensors and plain containers: a crafted file cannot run code."""
    try:
        return torch.load(io.BytesIO(blob), map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{where} holds objects other than tensors and plain containers; refusing to unpickle them "
            f"(a crafted file could run code). First line of torch's reason: {str(e).splitlines()[0] if str(e) else e!r}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{where} is damaged ({e})") from None


def _load_module_state(model, state) -> None:
    if isinstance(model, torch.nn.Module):
        model.load_state_dict(state)
    elif isinstance(model, dict):
        for k, m in model.items():
            if isinstance(m, torch.nn.Module):
                m.load_state_dict(state[k])


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return x.tolist()
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, torch.Tensor):
        return x.tolist()
    return x


