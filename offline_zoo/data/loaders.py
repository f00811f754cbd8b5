"""Dataset loaders by D4RL-style task name, one function per source.

Sources (``source=`` of :func:`load_dataset`):

- ``"minari"``: ``minari.load_dataset(id)`` (local cache, or a download when a network exists).
- ``"d4rl"``: D4RL hdf5 files as D4RL users have them on disk (``$D4RL_DATASET_DIR`` or
  ``~/.d4rl/datasets``).
- ``"d4rl-atari"``: d4rl-atari's on-disk DQN-Replay layout ``~/.d4rl/datasets/<Game>/<index>/<epoch>/
  {observation,action,reward,terminal}.gz`` (``medium`` = run 1, epoch 10).
- ``"generated"``: datasets generated locally by ``zoo-data generate`` (Minari format under
  ``$OFFLINE_ZOO_HOME/datasets``).

Which source was used is always explicit and stored in ``dataset.source``; nothing silently
substitutes generated data for D4RL. Data that is neither on disk nor reachable fails fast with a
message saying how to get it.
"""

from __future__ import annotations

import gzip
import json
import os
import socket
from pathlib import Path
from typing import Any

import numpy as np

from ..tasks import Task, closest, get_task
from .dataset import Dataset, DatasetError

__all__ = [
    "generated_dataset_id",
    "generated_dataset_path",
    "open_generated",
    "generation_metadata",
    "load_dataset",
    "check_data_available",
    "minari_datasets_path",
    "DataUnavailableError",
    "SOURCES",
    "data_home",
    "load_minari",
    "load_d4rl_hdf5",
    "load_d4rl_atari",
    "load_generated",
    "dataset_from_minari",
]

SOURCES = ("minari", "d4rl", "d4rl-atari", "generated")


class DataUnavailableError(FileNotFoundError):
    """The requested dataset is not on disk and cannot be downloaded from here.

    A ``FileNotFoundError`` whose message says how to get the data (or which other source to use).

    Examples:
        >>> from offline_zoo.tasks import get_task
        >>> load_d4rl_hdf5(get_task("hopper-medium"), path="hopper_medium-v2.hdf5")
        Traceback (most recent call last):
        ...
        offline_zoo.data.loaders.DataUnavailableError: D4RL file 'hopper_medium-v2.hdf5' does not exist
        >>> issubclass(DataUnavailableError, FileNotFoundError)
        True
    """


def data_home() -> Path:
    """Root of offline-zoo's own files: ``$OFFLINE_ZOO_HOME`` or ``~/.cache/offline_zoo``.

    Generated datasets live in ``datasets/`` below it, tokenized corpora in ``tokens/``.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"OFFLINE_ZOO_HOME": "/data/zoo"}):
        ...     data_home().as_posix(), generated_dir().as_posix()
        ('/data/zoo', '/data/zoo/datasets')
    """
    return Path(os.environ.get("OFFLINE_ZOO_HOME", Path.home() / ".cache" / "offline_zoo")).expanduser()


def offline_mode() -> bool:
    """True when the user asked for no network (HF_HUB_OFFLINE, OFFLINE_ZOO_OFFLINE...)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("OFFLINE_ZOO_OFFLINE", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def network_reachable(host: str, port: int = 443, timeout: float = 0.5) -> bool:
    """Quick reachability probe so that an offline machine fails in well under a second."""
    if offline_mode():
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def load_dataset(name: str | Task, ratio: float = 1.0, seed: int = 0, source: str | None = None, **kwargs: Any) -> Dataset:
    """Load a task's dataset by its D4RL-style name and keep a seeded fraction of its trajectories.

    Args:
        name: task name such as ``"hopper-medium"`` (see :func:`offline_zoo.list_tasks`).
        ratio: fraction of trajectories kept, in (0, 1]: ``max(1, int(N * ratio))`` whole episodes.
        seed: seed of the trajectory draw; the same (name, ratio, seed, source) gives the same data.
        source: one of the task's sources (``task.sources``); ``None`` means the task's default.
        **kwargs: passed to the source's loader (e.g. ``path=`` for a D4RL file, ``root=`` for a
            generated dataset).

    Examples:
        D4RL's Hopper-medium, 10% of its trajectories (needs the D4RL file on disk):

        >>> ds = load_dataset("hopper-medium", ratio=0.1, source="d4rl")  # doctest: +SKIP

        A dataset generated locally (here 4 episodes, in ``./datasets``), half of its trajectories:

        >>> from offline_zoo.data.generation import generate_dataset
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=4, root="datasets")
        >>> ds = load_dataset("reacher2d-medium", ratio=0.5, seed=0, source="generated", root="datasets")
        >>> ds.source, ds.n_episodes, ds.metadata["ratio"]
        ('generated', 2, 0.5)
        >>> load_dataset("reacher2d-medium", ratio=0.5, seed=0, source="generated",
        ...              root="datasets").selection_hash == ds.selection_hash     # same draw
        True
        >>> load_dataset("reacher2d-medium", source="d4rl")
        Traceback (most recent call last):
        ...
        offline_zoo.data.dataset.DatasetError: task 'reacher2d-medium' has no 'd4rl' source; it can be loaded from: generated
    """
    from .dataset import check_ratio

    check_ratio(ratio)
    task = get_task(name)
    src = _resolve_source(task, source)
    loader = {"minari": load_minari, "d4rl": load_d4rl_hdf5, "d4rl-atari": load_d4rl_atari, "generated": load_generated}[src]
    full = loader(task, **kwargs)
    return full.subsample(ratio, seed=seed)


def _resolve_source(task: Task, source: str | None) -> str:
    """``source`` (None: the task's default), checked to be a known source of this task."""
    src = source or task.default_source
    if src not in SOURCES:
        raise DatasetError(f"unknown source {src!r}.{closest(src, SOURCES)} Sources: {', '.join(SOURCES)}")
    if src not in task.sources:
        raise DatasetError(task.missing_source_message(src))
    return src


def check_data_available(name: str | Task, source: str | None = None, **kwargs: Any) -> tuple[bool, str]:
    """Whether a task's dataset can be loaded here, without loading it: ``(ok, text)``.

    ``text`` says where the data is (or that Minari will download it) when ``ok``, and how to get it
    when not: the message `load_dataset` would raise. Takes the arguments of `load_dataset` that
    choose the data (``source``, and a loader's ``path=``, ``root=``, ``base_dir=``...).

    Examples:
        >>> ok, text = check_data_available("reacher2d-medium", source="generated", root="nowhere")
        >>> ok, text
        (False, "no generated dataset for 'reacher2d-medium' at nowhere/offline-zoo/reacher2d-medium-v0: create it with `zoo-data generate reacher2d-medium --root nowhere`")
        >>> from offline_zoo.data.generation import generate_dataset
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets")
        >>> check_data_available("reacher2d-medium", source="generated", root="datasets")
        (True, 'generated dataset at datasets/offline-zoo/reacher2d-medium-v0')
    """
    task = get_task(name)
    src = _resolve_source(task, source)
    try:
        if src == "minari":
            dataset_id = kwargs.get("dataset_id") or task.sources["minari"]
            if _find_minari(task, dataset_id, kwargs.get("download", True)):
                return True, f"Minari dataset {dataset_id} in {minari_datasets_path()}"
            return True, f"Minari dataset {dataset_id} will be downloaded"
        if src == "d4rl":
            return True, f"D4RL file {_find_d4rl(task, kwargs.get('path'))}"
        if src == "d4rl-atari":
            return True, f"d4rl-atari files in {_find_d4rl_atari(task, kwargs.get('base_dir'), kwargs.get('index', 1), kwargs.get('epoch'))}"
        return True, f"generated dataset at {_find_generated(task, kwargs.get('root'))}"
    except DataUnavailableError as e:
        return False, str(e)


# -- Minari ------------------------------------------------------------------------------------
def dataset_from_minari(minari_dataset, task: Task | str | None = None, source: str = "minari") -> Dataset:
    """Convert a ``minari.MinariDataset`` into a :class:`Dataset`, episode by episode.

    Minari stores T+1 observations per episode (the final one included); we keep the T that have
    an action. (d3rlpy's ``get_minari`` misaligns observations after the first episode; this does
    not.) Dict observations (Kitchen) keep their ``"observation"`` entry; RGB Atari frames are
    converted to 84x84 grayscale.

    Examples:
        >>> from offline_zoo.data.generation import generate_dataset, open_generated
        >>> from offline_zoo.tasks import get_task
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets")
        >>> minari_ds = open_generated("reacher2d-medium", root="datasets")   # a MinariDataset
        >>> ds = dataset_from_minari(minari_ds, task=get_task("reacher2d-medium"), source="generated")
        >>> ds.n_episodes, ds.n_steps, ds.observation_shape    # 101 observations per episode in Minari
        (2, 200, (12,))
    """
    obs_l, act_l, rew_l, term_l, trunc_l = [], [], [], [], []
    for ep in minari_dataset.iterate_episodes():
        obs = ep.observations
        if isinstance(obs, dict):  # Kitchen: the flattening the evaluation env applies too
            from ..envs import flatten_kitchen_observation

            obs = flatten_kitchen_observation(obs)
        obs = np.asarray(obs)[: len(ep.actions)]
        if obs.ndim == 4 and obs.shape[-1] == 3:
            obs = _atari_gray84(obs)
        obs_l.append(obs)
        act_l.append(np.asarray(ep.actions))
        rew_l.append(np.asarray(ep.rewards, dtype=np.float32))
        term = np.asarray(ep.terminations, dtype=bool)
        trunc = np.asarray(ep.truncations, dtype=bool).copy()
        if not term[-1] and not trunc[-1]:
            trunc[-1] = True  # an episode cut by the end of the recording is truncated
        term_l.append(term)
        trunc_l.append(trunc & ~term)
    stored = minari_dataset.storage.metadata
    metadata = {"minari_id": stored.get("dataset_id")}
    for key in ("ref_min_score", "ref_max_score"):
        if stored.get(key) is not None:
            metadata[key] = float(stored[key])
    return Dataset.from_arrays(
        np.concatenate(obs_l),
        np.concatenate(act_l),
        np.concatenate(rew_l),
        np.concatenate(term_l),
        np.concatenate(trunc_l),
        task=task,
        source=source,
        metadata=metadata,
    )


def _atari_gray84(frames: np.ndarray) -> np.ndarray:
    try:
        import cv2
    except ImportError as e:  # pragma: no cover - depends on the extra
        raise ImportError('Atari frames need opencv: pip install "offline-zoo[atari]"') from e
    out = np.empty((len(frames), 84, 84), dtype=np.uint8)
    for i, f in enumerate(frames):
        out[i] = cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (84, 84), interpolation=cv2.INTER_AREA)
    return out


def load_minari(task: Task, dataset_id: str | None = None, download: bool = True) -> Dataset:
    """Load a task's Minari dataset from the local Minari cache, downloading it when possible.

    Examples:
        >>> from offline_zoo.tasks import get_task
        >>> ds = load_minari(get_task("hopper-medium"))    # mujoco/hopper/medium-v0  # doctest: +SKIP

        Without the data and without downloading, it fails at once and says how to get it:

        >>> load_minari(get_task("hopper-medium"), dataset_id="mujoco/hopper/none-v0", download=False)
        ... # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        offline_zoo.data.loaders.DataUnavailableError: Minari dataset 'mujoco/hopper/none-v0' (task 'hopper-medium') is not in the local Minari cache (...) and cannot be downloaded from here. On a machine with a network run `minari download mujoco/hopper/none-v0` ...
    """
    import minari

    dataset_id = dataset_id or task.sources["minari"]
    if not _find_minari(task, dataset_id, download):
        minari.download_dataset(dataset_id)
    return dataset_from_minari(minari.load_dataset(dataset_id), task=task, source="minari")


def minari_datasets_path() -> Path:
    """Where Minari keeps its datasets: ``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets``.

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"MINARI_DATASETS_PATH": "/data/minari"}):
        ...     minari_datasets_path().as_posix()
        '/data/minari'
    """
    return Path(os.environ.get("MINARI_DATASETS_PATH", Path.home() / ".minari" / "datasets")).expanduser()


def _find_minari(task: Task, dataset_id: str, download: bool = True) -> bool:
    """True if the dataset is in the local Minari cache, False if it can be downloaded; else raises."""
    import minari

    if dataset_id in set(minari.list_local_datasets()):
        return True
    if download and network_reachable("huggingface.co"):
        return False
    others = [s for s in task.sources if s != "minari"]
    hint = f" (source='generated' after `zoo-data generate {task.name}`)" if "generated" in task.sources else ""
    raise DataUnavailableError(
        f"Minari dataset {dataset_id!r} (task {task.name!r}) is not in the local Minari cache "
        f"({minari_datasets_path()}, set MINARI_DATASETS_PATH to use another folder) and cannot be downloaded "
        f"from here. On a machine with a network run `minari download {dataset_id}` and copy the folder over, "
        f"or use another source: {', '.join(others) or 'none'}{hint}"
    )


# -- D4RL hdf5 ---------------------------------------------------------------------------------
_D4RL_FILES = {
    # D4RL's download file names where they differ from the dataset name
    "kitchen-complete-v0": "mini_kitchen_microwave_kettle_light_slider-v0.hdf5",
    "kitchen-partial-v0": "kitchen_microwave_kettle_light_slider-v0.hdf5",
    "kitchen-mixed-v0": "kitchen_microwave_kettle_bottomburner_light-v0.hdf5",
}


def d4rl_dir() -> Path:
    """Where D4RL keeps its files: ``$D4RL_DATASET_DIR`` or ``~/.d4rl/datasets``."""
    return Path(os.environ.get("D4RL_DATASET_DIR", Path.home() / ".d4rl" / "datasets")).expanduser()


def load_d4rl_hdf5(task: Task, path: str | os.PathLike | None = None) -> Dataset:
    """Load a D4RL hdf5 file (``observations, actions, rewards, terminals, timeouts``).

    Episodes are split on terminals OR timeouts (the released LaMo conversion's step counter merged
    timeout-ended episodes with the next one). Without ``path`` the file is looked for in
    ``$D4RL_DATASET_DIR`` (or ``~/.d4rl/datasets``) under D4RL's file names.

    Examples:
        A file in D4RL's layout (here a 6-step toy with Hopper's shapes):

        >>> import h5py
        >>> from offline_zoo.tasks import get_task
        >>> with h5py.File("hopper_medium-v2.hdf5", "w") as f:
        ...     f["observations"], f["actions"], f["rewards"] = np.zeros((6, 11)), np.zeros((6, 3)), np.ones(6)
        ...     f["terminals"], f["timeouts"] = [0, 0, 1, 0, 0, 0], [0, 0, 0, 0, 0, 1]
        >>> ds = load_d4rl_hdf5(get_task("hopper-medium"), path="hopper_medium-v2.hdf5")
        >>> ds.source, ds.n_episodes, ds.observation_shape, ds.episode_returns.tolist()
        ('d4rl', 2, (11,), [3.0, 3.0])
    """
    import h5py

    path = _find_d4rl(task, path)
    with h5py.File(path, "r") as f:
        missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in f]
        if missing:
            raise DatasetError(f"{path} is not a D4RL dataset file: missing {', '.join(missing)}")
        arrays = {k: f[k][()] for k in ("observations", "actions", "rewards", "terminals")}
        arrays["timeouts"] = f["timeouts"][()] if "timeouts" in f else None
    return Dataset.from_arrays(**arrays, task=task, source="d4rl", metadata={"path": str(path)})


def _find_d4rl(task: Task, path: str | os.PathLike | None = None) -> Path:
    """The D4RL file to read (``path``, or the first of D4RL's names found); else raises."""
    if path is not None:
        path = Path(path).expanduser()
        if not path.exists():
            raise DataUnavailableError(f"D4RL file {str(path)!r} does not exist")
        return path
    stem = task.sources["d4rl"]
    candidates = [d4rl_dir() / f"{stem}.hdf5"]
    if stem in _D4RL_FILES:
        candidates.append(d4rl_dir() / _D4RL_FILES[stem])
    else:  # D4RL names its MuJoCo files hopper_medium-v2.hdf5, hopper_medium_replay-v2.hdf5
        env, _, rest = stem.partition("-")
        candidates.append(d4rl_dir() / f"{env}_{rest.rsplit('-', 1)[0].replace('-', '_')}-{rest.rsplit('-', 1)[1]}.hdf5")
    for candidate in candidates:
        if candidate.exists():
            return candidate
    raise DataUnavailableError(
        f"D4RL file for {stem!r} not found; looked for {', '.join(str(c) for c in candidates)}. "
        f"Download it with D4RL on a machine with a network (or set D4RL_DATASET_DIR), or pass path=..."
    )


# -- d4rl-atari (DQN-Replay) -------------------------------------------------------------------
_D4RL_ATARI_EPOCH = {"mixed": 1, "medium": 10, "expert": 50}


def load_d4rl_atari(task: Task, base_dir: str | os.PathLike | None = None, index: int = 1, epoch: int | None = None) -> Dataset:
    """Load d4rl-atari's on-disk DQN-Replay files: one epoch of one run (``medium`` = run 1, epoch 10).

    Frames stay single ``uint8`` 84x84 frames (the samplers stack 4 on the fly); rewards are the
    stored, clipped ones. Episodes end at the stored terminals; the last one is truncated.

    Examples:
        The files of a toy run 1, epoch 10 (``medium``) of Breakout, 8 frames:

        >>> import gzip
        >>> from offline_zoo.tasks import get_task
        >>> epoch = Path("d4rl/Breakout/1/10")
        >>> epoch.mkdir(parents=True)
        >>> arrays = {"observation": np.zeros((8, 84, 84), np.uint8), "action": np.zeros(8, np.int32),
        ...           "reward": np.ones(8, np.float32), "terminal": np.array([0, 0, 0, 1, 0, 0, 0, 0], np.uint8)}
        >>> for key, array in arrays.items():
        ...     with gzip.open(epoch / f"{key}.gz", "wb") as f:
        ...         np.save(f, array)
        >>> ds = load_d4rl_atari(get_task("breakout-medium"), base_dir="d4rl")
        >>> ds.n_episodes, ds.observation_shape, ds.discrete     # 4 frames stacked on the fly
        (2, (4, 84, 84), True)
    """
    directory = _find_d4rl_atari(task, base_dir, index, epoch)
    arrays = {}
    for key in ("observation", "action", "reward", "terminal"):
        with gzip.open(directory / f"{key}.gz", "rb") as f:
            arrays[key] = np.load(f, allow_pickle=False)
    term = arrays["terminal"].astype(bool)
    tout = np.zeros_like(term)
    if not term[-1]:
        tout[-1] = True
    return Dataset.from_arrays(
        arrays["observation"].astype(np.uint8, copy=False),
        arrays["action"].astype(np.int64),
        arrays["reward"].astype(np.float32),
        term,
        tout,
        task=task,
        source="d4rl-atari",
        frame_stack=4,
        metadata={"path": str(directory)},
    )


def _find_d4rl_atari(task: Task, base_dir: str | os.PathLike | None, index: int, epoch: int | None) -> Path:
    """The folder of one DQN-Replay epoch with its four files; else raises."""
    level = task.sources["d4rl-atari"].split("-")[1]
    epoch = _D4RL_ATARI_EPOCH[level] if epoch is None else epoch
    base = Path(base_dir) if base_dir is not None else d4rl_dir()
    names = [task.domain.capitalize(), task.domain, "".join(p.capitalize() for p in task.domain.split("-"))]
    dirs = [base / g / str(index) / str(epoch) for g in dict.fromkeys(names)]
    for d in dirs:
        if all((d / f"{k}.gz").exists() for k in ("observation", "action", "reward", "terminal")):
            return d
    raise DataUnavailableError(
        f"d4rl-atari files for {task.name!r} (run {index}, epoch {epoch}) not found in {', '.join(map(str, dirs))}. "
        "Download them with d4rl-atari (gsutil, needs a network) and copy the folder over, or pass base_dir=..."
    )


# -- locally generated --------------------------------------------------------------------------
def generated_dir() -> Path:
    """Where ``zoo-data generate`` writes datasets (Minari format)."""
    return data_home() / "datasets"


def generated_dataset_id(task: str | Task) -> str:
    """Minari id of a task's generated dataset: ``offline-zoo/<task.sources['generated']>-v0``.

    Examples:
        >>> generated_dataset_id("hopper-medium")
        'offline-zoo/hopper-medium-v0'
    """
    task = get_task(task)
    if "generated" not in task.sources:
        raise DatasetError(
            f"task {task.name!r} has no 'generated' source (sources: {', '.join(task.sources)}); "
            "only tasks whose data can be generated locally have one"
        )
    return f"offline-zoo/{task.sources['generated']}-v0"


def generated_dataset_path(task: str | Task, root: str | os.PathLike | None = None) -> Path:
    """Directory of a task's generated Minari dataset: ``<root>/<generated_dataset_id(task)>``.

    ``root`` defaults to `generated_dir` (``$OFFLINE_ZOO_HOME/datasets``);
    it plays the role of ``MINARI_DATASETS_PATH``, so the Minari files are in ``<path>/data``.

    Examples:
        >>> generated_dataset_path("hopper-medium", root="/tmp/ds").as_posix()
        '/tmp/ds/offline-zoo/hopper-medium-v0'
    """
    base = Path(root).expanduser() if root is not None else generated_dir()
    return base / generated_dataset_id(task)


def open_generated(task: str | Task, root: str | os.PathLike | None = None):
    """Open a generated dataset as a ``minari.MinariDataset`` (what ``load_generated`` converts).

    Raises :class:`~offline_zoo.data.loaders.DataUnavailableError` when it was not generated.

    Examples:
        >>> from offline_zoo.data.generation import generate_dataset
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=2, root="datasets")
        >>> minari_ds = open_generated("reacher2d-medium", root="datasets")
        >>> type(minari_ds).__name__, minari_ds.total_episodes, minari_ds.total_steps
        ('MinariDataset', 2, 200)
        >>> open_generated("reacher2d-medium", root="elsewhere")
        Traceback (most recent call last):
        ...
        offline_zoo.data.loaders.DataUnavailableError: no generated dataset for 'reacher2d-medium' at elsewhere/offline-zoo/reacher2d-medium-v0: create it with `zoo-data generate reacher2d-medium --root elsewhere`
    """
    from minari.dataset.minari_dataset import MinariDataset

    return MinariDataset(_find_generated(get_task(task), root) / "data")


def _find_generated(task: Task, root: str | os.PathLike | None) -> Path:
    """The directory of a task's generated dataset; raises with the command that creates it."""
    path = generated_dataset_path(task, root)
    if not (path / "data").is_dir():
        raise DataUnavailableError(
            f"no generated dataset for {task.name!r} at {path}: create it with `zoo-data generate {task.name}"
            + (f" --root {root}" if root is not None else "") + "`"
        )
    return path


def generation_metadata(task: str | Task, root: str | os.PathLike | None = None) -> dict:
    """The offline-zoo record stored with a generated dataset (behaviour policy, seed, statistics).

    Examples:
        >>> from offline_zoo.data.generation import generate_dataset
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=2, seed=7, root="datasets")
        >>> meta = generation_metadata("reacher2d-medium", root="datasets")
        >>> meta["seed"], meta["statistics"]["episodes"], meta["statistics"]["transitions"]
        (7, 2, 200)
        >>> meta["behaviour_policy"]["kind"], meta["min_return"]   # episodes with return <= 20 dropped
        ('reacher2d-ik', 20.0)
    """
    raw = json.loads((generated_dataset_path(task, root) / "data" / "metadata.json").read_text())
    rec = raw.get("offline_zoo", "{}")
    return json.loads(rec) if isinstance(rec, str) else dict(rec)


def load_generated(task: Task, root: str | os.PathLike | None = None) -> Dataset:
    """Load a dataset generated locally by ``zoo-data generate`` (Minari format) for this task.

    ``dataset.metadata["generation"]`` records the behaviour policy, its score and the seed.

    Examples:
        >>> from offline_zoo.data.generation import generate_dataset
        >>> from offline_zoo.tasks import get_task
        >>> _ = generate_dataset("reacher2d-medium", n_episodes=2, seed=3, root="datasets")
        >>> ds = load_generated(get_task("reacher2d-medium"), root="datasets")
        >>> ds.source, ds.n_episodes, ds.metadata["generation"]["seed"]
        ('generated', 2, 3)
        >>> ds.metadata["generation"]["behaviour_policy"]["kind"]
        'reacher2d-ik'
    """
    ds = dataset_from_minari(open_generated(task, root), task=task, source="generated")
    ds.metadata["generation"] = generation_metadata(task, root)
    return ds
