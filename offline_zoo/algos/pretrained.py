"""Model folders: what ``save_pretrained`` writes, ``from_pretrained`` reads and ``push_to_hub`` uploads.

A model folder is the content of a saved zip (`OfflineAlgo.save`) in the layout of the Hugging Face
Hub, with a model card:

- ``config.json``: the algorithm's name and class, its config, the spec of its observation and
  action spaces, the task, seeds, step count, data provenance, training history, versions, and the
  layout of the tensors (JSON);
- ``model.safetensors``: every tensor (weights, optimizer moments, RNG states; for the d3rlpy
  baselines the state dicts of d3rlpy's torch modules) in the ``safetensors`` format;
- ``stats.json``: the dataset statistics the policy needs at inference (state mean and std);
- ``README.md``: the model card (YAML front matter for the hub, then task, data, seeds, steps,
  evaluation scores and versions).

Nothing in a model folder is executed when it is loaded: JSON and safetensors only (no pickle).

The functions here know files, not algorithms (the methods of `OfflineAlgo` call them), so this
module never imports ``base``.

Examples:
    >>> import torch
    >>> tensors = {}
    >>> layout = pack_tensors({"model": {"w": torch.ones(2)}, "step": 3, "betas": (0.9, 0.99)}, tensors)
    >>> sorted(tensors), layout["step"], layout["betas"]
    (['model.w'], 3, {'__tuple__': [0.9, 0.99]})
    >>> unpack_tensors(layout, tensors)["betas"]
    (0.9, 0.99)
    >>> is_model_folder(".")
    False
"""

from __future__ import annotations

import importlib.metadata as md
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..files import atomic_write_bytes, atomic_write_text, atomic_writer

__all__ = [
    "CARD_FILE",
    "CONFIG_FILE",
    "FOLDER_FORMAT_VERSION",
    "HubNotReachableError",
    "LIBRARY_NAME",
    "MODEL_FILES",
    "STATS_FILE",
    "WEIGHTS_FILE",
    "is_model_folder",
    "model_card",
    "pack_tensors",
    "unpack_tensors",
]

LIBRARY_NAME = "offline-zoo"
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
STATS_FILE = "stats.json"
CARD_FILE = "README.md"
#: the files of a model folder (the only ones ``from_pretrained`` downloads from the hub)
MODEL_FILES = (CONFIG_FILE, WEIGHTS_FILE, STATS_FILE, CARD_FILE)
#: version of the folder layout; a newer one is refused with an "upgrade" message
FOLDER_FORMAT_VERSION = 1
#: seconds the hub may take to answer one request of ``from_pretrained`` before it gives up
HUB_TIMEOUT_S = 5.0
#: seconds of the TCP probe of the hub before a download (as ``load_language_model``)
HUB_PROBE_S = 3.0
#: packages whose versions the model card lists (those present)
CARD_PACKAGES = ("offline-zoo", "torch", "transformers", "peft", "d3rlpy", "gymnasium", "mujoco", "minari", "numpy", "safetensors", "huggingface_hub")


class HubNotReachableError(ConnectionError):
    """``from_pretrained`` was given a hub id that is not cached and the hub cannot be reached
    (no network, or ``HF_HUB_OFFLINE`` set). The message names the id.

    Examples:
        >>> issubclass(HubNotReachableError, OSError)
        True
    """


# -- tensors <-> (safetensors dict, JSON layout) -----------------------------------------------
def pack_tensors(obj: Any, tensors: dict[str, torch.Tensor], key: str = "") -> Any:
    """The JSON layout of a nested structure of tensors, moving its tensors into ``tensors``.

    Dicts with string keys stay JSON objects; other dicts (an optimizer's ``{0: ...}``) become
    ``{"__dict__": [[key, value], ...]}``, tuples ``{"__tuple__": [...]}``, tensors
    ``{"__tensor__": name}`` with ``tensors[name]`` a contiguous CPU tensor. Tensors sharing memory
    (tied weights) are stored once when they are the same view, copied otherwise, as
    ``safetensors`` refuses shared memory. Anything else than tensors, containers, numbers,
    strings, booleans and None is a ``TypeError``.

    Examples:
        >>> import torch
        >>> w = torch.arange(3.0)
        >>> tensors = {}
        >>> pack_tensors({"a": w, "tied": w, "opt": {0: {"step": torch.tensor(1.0)}}}, tensors)
        {'a': {'__tensor__': 'a'}, 'tied': {'__tensor__': 'a'}, 'opt': {'__dict__': [[0, {'step': {'__tensor__': 'opt.0.step'}}]]}}
        >>> pack_tensors({"f": print}, {})
        Traceback (most recent call last):
        ...
        TypeError: cannot store f: a builtin_function_or_method (only tensors, containers, numbers, strings and None)
    """
    return _pack(obj, tensors, key, ({}, set()))


def _pack(obj: Any, tensors: dict, key: str, seen: tuple[dict, set]) -> Any:
    views, storages = seen
    if isinstance(obj, torch.Tensor):
        t, ident, shared = obj.detach(), None, False
        if t.numel():
            storage = (t.device, t.untyped_storage().data_ptr())
            ident = (*storage, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)
            if ident in views:
                return {"__tensor__": views[ident]}
            shared = storage in storages
            storages.add(storage)
        t = t.to("cpu").contiguous()
        if shared:
            t = t.clone()  # safetensors refuses tensors that share memory
        name, n = key or "tensor", 1
        while name in tensors:
            n += 1
            name = f"{key}#{n}"
        tensors[name] = t
        if ident is not None:
            views[ident] = name
        return {"__tensor__": name}
    if isinstance(obj, dict):
        plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
        if plain:
            return {k: _pack(v, tensors, f"{key}.{k}" if key else k, seen) for k, v in obj.items()}
        for k in obj:
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"cannot store {key or 'the state'}: a dict key {k!r} of type {type(k).__name__}")
        return {"__dict__": [[_scalar(k), _pack(v, tensors, f"{key}.{k}" if key else str(k), seen)] for k, v in obj.items()]}
    if isinstance(obj, tuple):
        return {"__tuple__": [_pack(v, tensors, f"{key}.{i}" if key else str(i), seen) for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_pack(v, tensors, f"{key}.{i}" if key else str(i), seen) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, (bool, int, float, str, np.generic)):
        return _scalar(obj)
    raise TypeError(f"cannot store {key or 'the state'}: a {type(obj).__name__} (only tensors, containers, numbers, strings and None)")


def _scalar(x: Any) -> Any:
    return x.item() if isinstance(x, np.generic) else x


def unpack_tensors(layout: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The structure `pack_tensors` described, with its tensors taken from ``tensors``.

    A name missing from ``tensors`` is a ``ValueError`` (a damaged folder, or files of two saves).

    Examples:
        >>> import torch
        >>> unpack_tensors({"__dict__": [[0, {"__tensor__": "x"}]]}, {"x": torch.zeros(1)})
        {0: tensor([0.])}
        >>> unpack_tensors({"__tensor__": "y"}, {})
        Traceback (most recent call last):
        ...
        ValueError: model.safetensors has no tensor 'y' that config.json names: the folder is damaged, or its files come from different saves
    """
    if isinstance(layout, list):
        return [unpack_tensors(v, tensors) for v in layout]
    if isinstance(layout, dict):
        if set(layout) == {"__tensor__"}:
            name = layout["__tensor__"]
            if name not in tensors:
                raise ValueError(
                    f"{WEIGHTS_FILE} has no tensor {name!r} that {CONFIG_FILE} names: the folder is damaged, "
                    "or its files come from different saves"
                )
            return tensors[name]
        if set(layout) == {"__tuple__"}:
            return tuple(unpack_tensors(v, tensors) for v in layout["__tuple__"])
        if set(layout) == {"__dict__"}:
            return {k: unpack_tensors(v, tensors) for k, v in layout["__dict__"]}
        return {k: unpack_tensors(v, tensors) for k, v in layout.items()}
    return layout


# -- the folder ----------------------------------------------------------------------------------
def is_model_folder(path: str | os.PathLike) -> bool:
    """True when ``path`` is a folder with a ``config.json`` written by offline-zoo.

    Examples:
        >>> import json, pathlib
        >>> folder = pathlib.Path("m")
        >>> folder.mkdir()
        >>> _ = (folder / "config.json").write_text(json.dumps({"library_name": "transformers"}))
        >>> is_model_folder(folder)
        False
    """
    return _read_config(Path(path)) is not None


def _read_config(path: Path) -> dict | None:
    try:
        config = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(config, dict) and config.get("library_name") == LIBRARY_NAME and "folder_format" in config:
        return config
    return None


def write_model_folder(
    directory: str | os.PathLike, config: dict, tensors: dict[str, torch.Tensor], stats: dict, card: str, overwrite: bool
) -> Path:
    """Write the four files of a model folder (``config.json`` last: a folder whose writing was
    interrupted is no model folder). Refuses a non-empty folder that is not a model folder unless
    ``overwrite``; files of other names in the folder are left alone."""
    from safetensors.torch import save as safetensors_bytes

    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise FileExistsError(f"{str(directory)!r} is a file, not a folder: save_pretrained writes a folder (algo.save writes a .zip)")
    if directory.is_dir() and not overwrite and not is_model_folder(directory):
        present = sorted(p.name for p in directory.iterdir())
        if present:
            shown = ", ".join(present[:5]) + (f" and {len(present) - 5} more" if len(present) > 5 else "")
            raise FileExistsError(
                f"{str(directory)!r} is not empty ({shown}) and is not an offline-zoo model folder: refusing to write "
                "a model into it. Choose a new or empty folder, or pass overwrite=True (the model's files "
                f"{', '.join(MODEL_FILES)} are then written there; other files are kept)"
            )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / CONFIG_FILE).unlink(missing_ok=True)
    meta = {"format": "pt", "library": LIBRARY_NAME, "algorithm": str(config.get("algorithm"))}
    with atomic_writer(directory / WEIGHTS_FILE) as f:
        f.write(safetensors_bytes(tensors, metadata=meta))
    atomic_write_text(directory / STATS_FILE, json.dumps(stats, indent=2) + "\n")
    atomic_write_text(directory / CARD_FILE, card)
    atomic_write_bytes(directory / CONFIG_FILE, (json.dumps(config, indent=2) + "\n").encode("utf-8"))
    return directory


def read_model_folder(directory: Path) -> tuple[dict, dict, Path]:
    """``(config, stats, path of model.safetensors)`` of a model folder, or an error saying what is wrong."""
    if not directory.is_dir():
        raise ValueError(
            f"{str(directory)!r} is a file, not a model folder"
            + (": a .zip written by algo.save loads with OfflineAlgo.load" if directory.suffix == ".zip" else "")
        )
    if not (directory / CONFIG_FILE).is_file():
        present = sorted(p.name for p in directory.iterdir())
        raise ValueError(
            f"{str(directory)!r} is not an offline-zoo model folder: it has no {CONFIG_FILE} "
            f"(it holds: {', '.join(present[:8]) or 'nothing'}); write one with algo.save_pretrained(folder)"
        )
    try:
        config = json.loads((directory / CONFIG_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ValueError(f"{str(directory / CONFIG_FILE)!r} is damaged ({e})") from None
    if not isinstance(config, dict) or config.get("library_name") != LIBRARY_NAME or "folder_format" not in config:
        other = config.get("library_name") if isinstance(config, dict) else None
        raise ValueError(
            f"{str(directory)!r} is not an offline-zoo model folder: its {CONFIG_FILE} was not written by "
            f"offline-zoo's save_pretrained{f' (library_name: {other!r})' if other else ''}"
        )
    version = config["folder_format"]
    if not isinstance(version, int) or version > FOLDER_FORMAT_VERSION:
        raise ValueError(
            f"{str(directory)!r} was written by a newer offline-zoo (folder format {version!r}, this one reads up to "
            f"{FOLDER_FORMAT_VERSION}); upgrade offline-zoo"
        )
    for name in (WEIGHTS_FILE, STATS_FILE):
        if not (directory / name).is_file():
            raise ValueError(f"{str(directory)!r} is an offline-zoo model folder without {name}: the folder is incomplete")
    try:
        stats = json.loads((directory / STATS_FILE).read_text(encoding="utf-8"))
    except (ValueError, OSError) as e:
        raise ValueError(f"{str(directory / STATS_FILE)!r} is damaged ({e})") from None
    if not isinstance(stats, dict):
        raise ValueError(f"{str(directory / STATS_FILE)!r} is damaged (not a JSON object)")
    return config, stats, directory / WEIGHTS_FILE


def read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a ``.safetensors`` file on the CPU (no code runs: the format holds only tensors)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as e:
        raise ValueError(f"{str(path)!r} is damaged or not a safetensors file ({e})") from None


_META_KEYS = ("format_version", "algo", "class", "config", "spec", "task", "stats", "seed", "num_steps", "data", "versions", "rng", "history")


def folder_config(meta: dict[str, Any], layout: Any, extra_files: dict[str, bytes], evaluation: dict | None = None) -> dict[str, Any]:
    """``config.json`` of a model folder from the meta of a save (`OfflineAlgo.save`'s meta.json
    without the statistics, which go to ``stats.json``), the tensors' layout and the extra text files."""
    spec = meta["spec"]
    action = {"type": "discrete", "n": spec["action_dim"]} if spec["discrete"] else {"type": "continuous", "dim": spec["action_dim"]}
    extras = {}
    for name, data in extra_files.items():
        try:
            extras[name] = {"text": data.decode("utf-8")}
        except UnicodeDecodeError:
            import base64

            extras[name] = {"base64": base64.b64encode(data).decode("ascii")}
    return {
        "library_name": LIBRARY_NAME,
        "folder_format": FOLDER_FORMAT_VERSION,
        "algorithm": meta["algo"],
        "class": meta["class"],
        "offline_zoo_version": (meta.get("versions") or {}).get("offline-zoo"),
        "task": spec["task"],
        "observation_space": {"shape": list(spec["observation_shape"]), "dtype": "uint8" if spec["image"] else "float32"},
        "action_space": action,
        "config": meta["config"],
        "spec": spec,
        "seed": meta["seed"],
        "num_steps": meta["num_steps"],
        "data": meta["data"],
        "history": meta.get("history"),
        "evaluation": evaluation,
        "versions": meta.get("versions"),
        "saved_at": meta.get("saved_at"),
        "task_definition": meta.get("task"),
        "rng": meta["rng"],
        "format_version": meta["format_version"],
        "tensors": layout,
        "extra_files": extras,
    }


def meta_from_config(config: dict[str, Any], stats: dict[str, Any], where: str) -> tuple[dict[str, Any], dict[str, bytes], Any]:
    """``(meta, extra files, tensor layout)`` of a model folder: the inverse of `folder_config`."""
    meta = {**config, "algo": config.get("algorithm"), "task": config.get("task_definition"), "stats": stats}
    absent = [k for k in (*_META_KEYS, "tensors") if meta.get(k) is None and k not in ("task", "history", "versions")]
    if absent:
        raise ValueError(f"{where}: {CONFIG_FILE} lacks {', '.join(absent)}: the folder is damaged or was not written by offline-zoo")
    extras: dict[str, bytes] = {}
    for name, entry in (config.get("extra_files") or {}).items():
        if "text" in entry:
            extras[name] = entry["text"].encode("utf-8")
        else:
            import base64

            extras[name] = base64.b64decode(entry["base64"])
    meta["history"] = meta.get("history") or {"train": [], "eval": []}
    return {k: meta[k] for k in (*_META_KEYS, "saved_at") if k in meta}, extras, config["tensors"]


def to_device(obj: Any, device: torch.device) -> Any:
    """``obj`` with every tensor moved to ``device`` (what ``torch.load``'s ``map_location`` does)."""
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


def resolve(name: str | os.PathLike, revision: str | None = None, token: str | bool | None = None) -> tuple[Path, str]:
    """``(local folder, name for messages)`` of a local folder or a hub id (downloaded)."""
    path = Path(name).expanduser()
    if path.exists():
        return path, str(path)
    text = str(name)
    if isinstance(name, os.PathLike) or not looks_like_repo_id(text):
        raise FileNotFoundError(f"no model folder at {text!r} (and it is not a Hugging Face Hub id such as 'owner/name')")
    return download(text, revision, token), text


# -- the hub -------------------------------------------------------------------------------------
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*(/[A-Za-z0-9][A-Za-z0-9_.-]*)?$")


def looks_like_repo_id(name: str) -> bool:
    """``"name"`` or ``"owner/name"`` (what the hub accepts), not a path like ``./m`` or ``a/b/c``."""
    return bool(_REPO_ID.match(name)) and ".." not in name and not name.endswith((".git", "."))


def download(repo_id: str, revision: str | None = None, token: str | bool | None = None) -> Path:
    """The local folder of hub model ``repo_id`` (its model files only), failing fast and clearly
    when it is not cached and the hub cannot be reached (or ``HF_HUB_OFFLINE`` is set)."""
    try:
        import huggingface_hub
        from huggingface_hub import errors
    except ImportError:  # pragma: no cover - huggingface_hub always comes with transformers
        raise ImportError(f"loading {repo_id!r} from the Hugging Face Hub needs huggingface_hub: pip install huggingface_hub") from None
    from ..lm import loading

    offline = loading.hub_offline()
    kwargs: dict[str, Any] = dict(
        revision=revision, token=token, allow_patterns=list(MODEL_FILES), library_name=LIBRARY_NAME, etag_timeout=HUB_TIMEOUT_S
    )
    why = "HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set and it is not in the local Hugging Face cache"
    if not offline:
        # huggingface_hub's client waits without a timeout on some requests: a quick TCP probe first
        # (the policy of load_language_model), and with no hub the local cache only
        reachable, reason = loading._hub_reachable(timeout=HUB_PROBE_S)
        if not reachable:
            offline = True
            why = f"the Hugging Face Hub could not be reached ({reason.split(': ', 1)[-1]}) and it is not in the local Hugging Face cache"
    if offline:
        kwargs["local_files_only"] = True
    try:
        folder = huggingface_hub.snapshot_download(repo_id, **kwargs)
    except (errors.RepositoryNotFoundError, errors.RevisionNotFoundError) as e:
        raise FileNotFoundError(
            f"{repo_id!r} is neither a local folder nor a model on the Hugging Face Hub"
            f"{f' at revision {revision!r}' if revision else ''} (or it is private or gated: pass token=...): "
            f"{_first_line(e)}"
        ) from None
    except (errors.OfflineModeIsEnabled, errors.LocalEntryNotFoundError, ConnectionError, TimeoutError, *_transport_errors()) as e:
        if not offline:
            why = "the Hugging Face Hub could not be reached and it is not in the local Hugging Face cache"
        raise HubNotReachableError(
            f"cannot load {repo_id!r}: there is no local folder of that name, and {why} ({type(e).__name__}: {_first_line(e)}). "
            "Connect to the network (or unset HF_HUB_OFFLINE) to download it once, or pass the path of a folder "
            "written by save_pretrained"
        ) from None
    except errors.HfHubHTTPError as e:
        raise OSError(f"cannot download {repo_id!r} from the Hugging Face Hub: {_first_line(e)}") from None
    return Path(folder)


def _transport_errors() -> tuple[type, ...]:
    out = []
    for module in ("httpx2", "httpx", "requests"):
        try:
            mod = __import__(module)
        except ImportError:
            continue
        for name in ("TransportError", "ConnectionError", "Timeout"):
            err = getattr(mod, name, None)
            if isinstance(err, type) and issubclass(err, BaseException):
                out.append(err)
    return tuple(out)


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


# -- the model card ------------------------------------------------------------------------------
def card_versions(saved: dict[str, Any] | None = None) -> dict[str, str]:
    """Versions for the model card: those recorded at save time plus the packages of
    ``CARD_PACKAGES`` that are installed (mujoco, safetensors, huggingface_hub...)."""
    out = {k: v for k, v in (saved or {}).items() if v}
    for pkg in CARD_PACKAGES:
        if pkg not in out:
            try:
                out[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                pass
    return out


def _fmt(x: Any, digits: int = 1) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}f}"
    return str(x)


def model_card(config: dict[str, Any], repo_id: str | None = None) -> str:
    """The ``README.md`` of a model folder from its ``config.json`` content: YAML front matter
    (``library_name: offline-zoo``, tags) and a body with task, data, seeds, steps, evaluations
    and versions.

    Examples:
        >>> card = model_card({"algorithm": "dt", "class": "DT", "task": "hopper-medium", "num_steps": 5, "seed": 0,
        ...                    "data": {"source": "generated", "ratio": 0.1}, "history": {"eval": []}, "versions": {}})
        >>> print(card.split("---")[1].strip())
        library_name: offline-zoo
        tags:
        - offline-rl
        - reinforcement-learning
        - dt
        - hopper-medium
        - generated-data
        >>> "| Training steps | 5 |" in card, "Not evaluated" in card
        (True, True)
    """
    algo, cls, task = str(config.get("algorithm")), str(config.get("class")), config.get("task")
    data = config.get("data") or {}
    tags = ["offline-rl", "reinforcement-learning", algo]
    if task:
        tags.append(str(task))
    if data.get("source"):
        tags.append(f"{data['source']}-data")
    tags = list(dict.fromkeys(re.sub(r"[^a-z0-9+._-]", "-", t.lower()) for t in tags))
    front = ["---", f"library_name: {LIBRARY_NAME}", "tags:", *[f"- {t}" for t in tags], "---", ""]
    obs, act = config.get("observation_space") or {}, config.get("action_space") or {}
    actions = f"{act.get('type')}, {act.get('n', act.get('dim'))} {'actions' if act.get('type') == 'discrete' else 'dimensions'}" if act else "–"
    rows = [
        ("Algorithm", f"{cls} (`{algo}`)"),
        ("Task", f"`{task}`" if task else "– (a dataset without a task)"),
        ("Data source", _fmt(data.get("source"))),
        ("Dataset", _fmt(data.get("name"))),
        ("Ratio (fraction of trajectories kept)", f"{data['ratio']:g}" if isinstance(data.get("ratio"), (int, float)) else "–"),
        ("Episodes / transitions trained on", f"{_fmt(data.get('episodes'))} / {_fmt(data.get('steps'))}"),
        ("Training seed", _fmt(config.get("seed"))),
        ("Subset seed", _fmt(data.get("subsample_seed"))),
        ("Training steps", _fmt(config.get("num_steps"))),
        ("Observations", f"shape {tuple(obs.get('shape', ()))}, {obs.get('dtype', '–')}" if obs else "–"),
        ("Actions", actions),
    ]
    title = f"{cls} on {task}" if task else cls
    lines = [f"# {title}", "", f"A {cls} agent trained offline with offline-zoo.", "", "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in rows]
    lines += ["", "## Evaluation", ""]
    evals = list((config.get("history") or {}).get("eval") or [])
    if config.get("evaluation"):
        evals.append({"step": config.get("num_steps"), **config["evaluation"]})
    if evals:
        lines += ["Normalized score (D4RL convention: 0 random, 100 expert) of the best return-to-go target, mean over the episodes.", ""]
        lines += ["| Step | Score | Best target | Mean return | Episodes | Environment |", "|---|---|---|---|---|---|"]
        for e in evals:
            best = e.get("best_target")
            key = "none" if best is None else (f"{best:g}" if isinstance(best, (int, float)) else str(best))
            episodes = len((e.get("returns") or {}).get(key, []))
            mean = (e.get("mean_returns") or {}).get(key)
            lines.append(f"| {_fmt(e.get('step'))} | {_fmt(e.get('score'))} | {_fmt(best, 0)} | {_fmt(mean)} | {episodes or '–'} | {_fmt(e.get('env_id'))} |")
    else:
        lines.append("Not evaluated yet (evaluations during training, `learn(eval_every=...)`, are listed here).")
    where = repo_id or "path/to/this/folder"
    usage = ["```python", "from offline_zoo import OfflineAlgo", "", f'algo = OfflineAlgo.from_pretrained("{where}")',
             "actions, state = algo.predict(observations)"]
    if task:
        usage.append("result = algo.evaluate(n_episodes=10)")
    lines += ["", "## Usage", "", *usage, "```", ""]
    lines += [
        "Loading runs no code from the folder: `config.json` and `stats.json` are JSON, the tensors are in `model.safetensors`.",
        "", "## Versions", "", "| Package | Version |", "|---|---|",
    ]
    lines += [f"| {pkg} | `{version}` |" for pkg, version in card_versions(config.get("versions")).items()]
    return "\n".join(front + lines) + "\n"


def upload_folder(folder: Path, repo_id: str, private: bool, token: str | None, commit_message: str) -> Any:
    """Create ``repo_id`` on the hub if needed and upload ``folder`` in one commit."""
    try:
        from huggingface_hub import HfApi
    except ImportError:  # pragma: no cover - huggingface_hub always comes with transformers
        raise ImportError("push_to_hub needs huggingface_hub: pip install huggingface_hub") from None
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model", token=token)
    return api.upload_folder(repo_id=repo_id, folder_path=str(folder), commit_message=commit_message, repo_type="model", token=token)
