"""Offline-safe loading of GPT-2-architecture language models and their tokenizer.

Three ways to name a language model (``lm``):

* a Hugging Face hub name (``"gpt2"``, ``"gpt2-medium"``, ``"openai-community/gpt2"``, ...): loaded
  from the local Hugging Face cache when it is there, otherwise downloaded from the hub;
* a local directory written by ``save_pretrained`` (``config.json`` + weights);
* ``"embedded"``: the ChibiT-sized GPT-2 (3 layers, 128 dim) shipped inside the package (:data:`EMBEDDED_LM`), which
  works on a machine with no network at all.

Loading never hangs on a machine without a network: when ``HF_HUB_OFFLINE`` or
``TRANSFORMERS_OFFLINE`` is set only the local cache is consulted; otherwise the local cache is tried
first, the hub is probed with a short TCP connect, and only then is the download attempted. A model
that cannot be found raises :class:`LanguageModelNotAvailableError` (an ``OSError``) whose message
lists the ways to get it.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import os
import socket
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar
from urllib.parse import urlparse

import torch
import transformers

__all__ = [
    "EMBEDDED_LM",
    "EMBEDDED_LM_NAME",
    "KNOWN_GPT2_ARCHITECTURES",
    "LanguageModelNotAvailableError",
    "hub_offline",
    "load_language_model",
    "load_tokenizer",
    "quiet_weight_loading",
    "resolve_lm_dir",
]

T = TypeVar("T")

EMBEDDED_LM_NAME = "chibit-wikitext2"
"""Directory name of the embedded LM under ``offline_zoo/assets/lm/``."""

EMBEDDED_LM: str = str(
    Path(str(importlib.resources.files("offline_zoo"))) / "assets" / "lm" / EMBEDDED_LM_NAME
)
"""Path of the LM shipped with offline-zoo: ChibiT's architecture, pre-trained on WikiText-2.

GPT-2 with Wiki-RL's ChibiT sizes (3 layers, 128 dim, 1 head, 1024 positions: the body of the paper's
DT) and the GPT-2 vocabulary (50257 tokens, GPT-2 tokenizer files included), so it is a drop-in,
network-free stand-in for ``"gpt2"`` in tests, offline demos and CPU-scale comparisons: 7.2M
parameters (6.4M of them the tied token embedding) stored as float16 (14 MB, 15.8 MB with the
tokenizer files); WikiText-2 test perplexity 209.3 (50500 at initialisation). See its
``training_info.json``; retrain with ``python -m offline_zoo.lm.train_embedded``.
``load_language_model`` returns it in float32; ``GPT2LMHeadModel.from_pretrained(EMBEDDED_LM)``
keeps the stored float16 under transformers 5 unless given ``dtype=torch.float32``.

Examples:
    >>> from offline_zoo.lm import EMBEDDED_LM, load_language_model
    >>> model = load_language_model(EMBEDDED_LM)       # same as load_language_model("embedded")
"""

# Architectures of the public GPT-2 checkpoints, so that ``pretrained=False`` needs no network.
KNOWN_GPT2_ARCHITECTURES: dict[str, dict[str, int]] = {
    "gpt2": {"n_layer": 12, "n_embd": 768, "n_head": 12},
    "gpt2-medium": {"n_layer": 24, "n_embd": 1024, "n_head": 16},
    "gpt2-large": {"n_layer": 36, "n_embd": 1280, "n_head": 20},
    "gpt2-xl": {"n_layer": 48, "n_embd": 1600, "n_head": 25},
    "distilgpt2": {"n_layer": 6, "n_embd": 768, "n_head": 12},
}
"""Layer / width / head counts of the public GPT-2 checkpoints (vocab 50257, 1024 positions).

Examples:
    >>> KNOWN_GPT2_ARCHITECTURES["gpt2-medium"]
    {'n_layer': 24, 'n_embd': 1024, 'n_head': 16}
"""

_HUB_ALIASES = {
    "openai-community/gpt2": "gpt2",
    "openai-community/gpt2-medium": "gpt2-medium",
    "openai-community/gpt2-large": "gpt2-large",
    "openai-community/gpt2-xl": "gpt2-xl",
    "distilbert/distilgpt2": "distilgpt2",
}

_TRUE = {"1", "true", "yes", "on"}


class LanguageModelNotAvailableError(OSError):
    """A language model or tokenizer is neither local nor downloadable right now.

    The message says how to get it (network once, ``HF_HOME``, a local directory, the embedded LM).

    Examples:
        With the hub switched off, a model that is not in the local cache fails at once:

        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        ...     try:
        ...         load_language_model("offline-zoo/not-in-any-cache")
        ...     except LanguageModelNotAvailableError as err:
        ...         print(str(err).splitlines()[0])
        ...         print("embedded" in str(err))
        Could not load language model 'offline-zoo/not-in-any-cache': it is not in the local Hugging Face cache and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is set.
        True

        A relative ``dir/name`` that is no directory here is read as a hub id, and the message says so:

        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        ...     try:
        ...         load_language_model("lms/not-here")
        ...     except LanguageModelNotAvailableError as err:
        ...         print(str(err).splitlines()[1].split(" in the current directory")[0])
        (Read as a hub name: there is no directory 'lms/not-here'
    """


def hub_offline() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``TRANSFORMERS_OFFLINE`` is set to a true value (read now).

    Examples:
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "1"}):
        ...     hub_offline()
        True
        >>> with mock.patch.dict(os.environ, {"HF_HUB_OFFLINE": "0", "TRANSFORMERS_OFFLINE": ""}):
        ...     hub_offline()
        False
    """
    return any(
        os.environ.get(var, "").strip().lower() in _TRUE
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def _looks_like_path(name: str) -> bool:
    # hub ids are "name" or "org/name"; anything else with separators is meant as a path
    return (
        name.startswith((".", "/", "~"))
        or "\\" in name
        or name.count("/") > 1
        or name.endswith("/")
    )


def resolve_lm_dir(lm: str | os.PathLike) -> Path | None:
    """Local directory named by ``lm`` (``"embedded"`` -> :data:`EMBEDDED_LM`), or None for a hub name.

    Raises ``FileNotFoundError`` when ``lm`` is clearly a path (absolute, ``./``, ``~``, more than one
    ``/``) that does not exist.

    Examples:
        >>> resolve_lm_dir("embedded") == Path(EMBEDDED_LM)
        True
        >>> resolve_lm_dir("gpt2") is None
        True
    """
    if isinstance(lm, os.PathLike):
        path = Path(lm).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"language model directory {str(path)!r} does not exist")
        return path
    if not isinstance(lm, str) or not lm:
        raise TypeError(
            f"lm must be a hub name (e.g. 'gpt2'), a local directory or 'embedded', got {lm!r}"
        )
    if lm == "embedded":
        path = Path(EMBEDDED_LM)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(
                f"the embedded LM is missing from this installation ({EMBEDDED_LM}); retrain it with "
                "`python -m offline_zoo.lm.train_embedded --help` or reinstall offline-zoo"
            )
        return path
    path = Path(lm).expanduser()
    if path.is_dir():
        return path
    if _looks_like_path(lm):
        raise FileNotFoundError(
            f"language model directory {lm!r} does not exist (pass an existing directory saved with "
            "save_pretrained, a hub name such as 'gpt2', or 'embedded')"
        )
    return None


def _hf_home() -> str:
    try:
        from huggingface_hub import constants

        return str(constants.HF_HUB_CACHE)
    except Exception:  # pragma: no cover - huggingface_hub always comes with transformers
        return os.environ.get("HF_HOME", "~/.cache/huggingface")


def _how_to_get(what: str, name: str, reason: str) -> str:
    fn = "load_tokenizer" if what == "tokenizer" else "load_language_model"
    arg = "tokenizer" if what == "tokenizer" else "lm"  # the agents' keyword
    extra = " (a directory with vocab.json + merges.txt)" if what == "tokenizer" else ""
    # "dir/name" reads as a hub id when no such directory exists: say where it was looked for
    no_dir = (
        f"(Read as a hub name: there is no directory {name!r} in the current directory {os.getcwd()}.)\n"
        if "/" in name and not os.path.isabs(name)
        else ""
    )
    return (
        f"Could not load {what} {name!r}: {reason}\n"
        f"{no_dir}"
        "Ways to get it:\n"
        f"  1. run once on a machine with a network connection (it is then kept in the Hugging Face "
        f"cache, here {_hf_home()});\n"
        "  2. set HF_HOME to a directory that already holds a Hugging Face cache with this model;\n"
        f"  3. pass a local directory written by save_pretrained, e.g. "
        f"{fn}('/path/to/{name.split('/')[-1]}'){extra};\n"
        f"  4. use the LM embedded in offline-zoo (ChibiT-sized, 3 x 128): {arg}=\"embedded\" (e.g. "
        f"LaMo(..., {arg}=\"embedded\"), or {fn}('embedded'); GPT-2 vocabulary and tokenizer), or "
        "pretrained=False for a randomly initialised model of the same architecture."
    )


@contextlib.contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Silence transformers' progress bars (its "Loading weights" bar) inside the block only.

    Every load of a model from disk would print that bar; downloads keep their bars (the hub's
    bars are switched off with transformers' and back to what they were after the block).

    Examples:
        >>> from transformers.utils import logging as hf_logging
        >>> before = hf_logging.is_progress_bar_enabled()
        >>> with quiet_weight_loading():
        ...     hf_logging.is_progress_bar_enabled()
        False
        >>> hf_logging.is_progress_bar_enabled() == before
        True
    """
    import huggingface_hub.utils as hub_utils
    from transformers.utils import logging as hf_logging

    was_on, hub_was_off = hf_logging.is_progress_bar_enabled(), hub_utils.are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_on:
            hf_logging.enable_progress_bar()  # also turns the hub's bars on
        if hub_was_off:
            hub_utils.disable_progress_bars()
        elif hub_utils.are_progress_bars_disabled():
            hub_utils.enable_progress_bars()


def _from_pretrained_quietly(name: str, local_only: bool, overrides: dict) -> transformers.GPT2LMHeadModel:
    # from the local cache: no bar; a download shows the hub's download bars as usual
    with quiet_weight_loading() if local_only else contextlib.nullcontext():
        return transformers.GPT2LMHeadModel.from_pretrained(name, local_files_only=local_only, **overrides)


def _hub_reachable(timeout: float = 3.0) -> tuple[bool, str]:
    """Quick TCP probe of the hub endpoint (skipped, i.e. assumed reachable, behind a proxy)."""
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return True, ""
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (443 if parsed.scheme != "http" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True, ""
    except OSError as err:
        return False, f"the hub ({endpoint}) is not reachable: {err}"


def _cached_in_hf_cache(name: str, filenames: tuple[str, ...]) -> bool:
    """Cheap check (no transformers import, no network) that one of ``filenames`` is cached."""
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:  # pragma: no cover - huggingface_hub always comes with transformers
        return True
    for filename in filenames:
        try:
            found = try_to_load_from_cache(repo_id=name, filename=filename)
        except Exception:  # invalid repo id etc.: not in the cache
            return False
        if isinstance(found, str):
            return True
    return False


def _offline_safe(
    fetch: Callable[[bool], T], what: str, name: str, probe_files: tuple[str, ...]
) -> T:
    """Run ``fetch(local_files_only)`` with the fail-fast policy described in the module doc."""
    local_error: BaseException | None = None
    if _cached_in_hf_cache(name, probe_files):
        try:
            return fetch(True)
        except (OSError, ValueError) as err:
            local_error = err
    cause = f" ({type(local_error).__name__}: {local_error})" if local_error is not None else ""
    if hub_offline():
        raise LanguageModelNotAvailableError(
            _how_to_get(
                what,
                name,
                "it is not in the local Hugging Face cache and HF_HUB_OFFLINE/TRANSFORMERS_OFFLINE is "
                f"set{cause}.",
            )
        ) from local_error
    reachable, why = _hub_reachable()
    if not reachable:
        raise LanguageModelNotAvailableError(
            _how_to_get(what, name, f"it is not in the local Hugging Face cache and {why}.")
        ) from local_error
    try:
        return fetch(False)
    except OSError as err:
        raise LanguageModelNotAvailableError(
            _how_to_get(what, name, f"download failed: {err}")
        ) from err


def _base_config(lm: str, local_dir: Path | None) -> transformers.GPT2Config:
    if local_dir is not None:
        return transformers.GPT2Config.from_pretrained(str(local_dir))
    canonical = _HUB_ALIASES.get(lm, lm)
    if canonical in KNOWN_GPT2_ARCHITECTURES:
        return transformers.GPT2Config(
            vocab_size=50257, n_positions=1024, **KNOWN_GPT2_ARCHITECTURES[canonical]
        )
    return _offline_safe(
        lambda local_only: transformers.GPT2Config.from_pretrained(lm, local_files_only=local_only),
        "the configuration of language model",
        lm,
        ("config.json",),
    )


def load_language_model(
    lm: str | os.PathLike = "gpt2",
    pretrained: bool = True,
    n_layer: int | None = None,
    n_embd: int | None = None,
    n_head: int | None = None,
    dtype: torch.dtype | None = torch.float32,
    **config_overrides: Any,
) -> transformers.GPT2LMHeadModel:
    """Load a GPT-2-architecture LM (``GPT2LMHeadModel``) without ever hanging offline.

    Args:
        lm: hub name (``"gpt2"``, ``"gpt2-medium"``, ...), a local ``save_pretrained`` directory, or
            ``"embedded"`` (the ChibiT-sized LM shipped with offline-zoo, :data:`EMBEDDED_LM`).
        pretrained: load the weights (True) or build the same architecture randomly initialised
            (False; no network needed for the names in :data:`KNOWN_GPT2_ARCHITECTURES` and for local
            directories).
        n_layer: number of transformer blocks (a size override, only with ``pretrained=False``).
        n_embd: hidden size (a size override, only with ``pretrained=False``).
        n_head: attention heads, must divide ``n_embd`` (a size override, only with
            ``pretrained=False``).
        dtype: parameter dtype of the returned model (default float32, also for checkpoints stored
            in half precision such as the embedded LM); None keeps what ``transformers`` picks.
        **config_overrides: other ``GPT2Config`` fields, e.g. ``resid_pdrop=0.2`` (allowed with
            pretrained weights too).

    Raises:
        LanguageModelNotAvailableError: the weights are neither cached nor downloadable now (raised in
            well under a second when ``HF_HUB_OFFLINE=1``).
        ValueError: size overrides together with ``pretrained=True``.

    Examples:
        >>> model = load_language_model("embedded")                     # offline
        >>> small = load_language_model("gpt2", pretrained=False, n_layer=3, n_embd=128, n_head=1)
        >>> small.config.n_layer, small.transformer.wte.weight.shape
        (3, torch.Size([50257, 128]))
    """
    sizes = {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head}
    sizes = {k: v for k, v in sizes.items() if v is not None}
    for key, value in sizes.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{key} must be a positive int, got {value!r}")
    if not isinstance(pretrained, bool):
        raise TypeError(f"pretrained must be True or False, got {pretrained!r}")
    local_dir = resolve_lm_dir(lm)
    name = str(local_dir) if local_dir is not None else str(lm)

    if pretrained:
        if sizes:
            raise ValueError(
                f"size overrides {sizes} cannot be combined with pretrained=True: the pretrained "
                f"weights of {name!r} fix the architecture. Use pretrained=False for a randomly "
                "initialised model of another size."
            )
        if local_dir is not None:
            with quiet_weight_loading():
                model = transformers.GPT2LMHeadModel.from_pretrained(str(local_dir), **config_overrides)
        else:
            model = _offline_safe(
                lambda local_only: _from_pretrained_quietly(name, local_only, config_overrides),
                "language model",
                name,
                ("config.json",),
            )
    else:
        config = _base_config(str(lm), local_dir)
        for key, value in {**sizes, **config_overrides}.items():
            if not hasattr(config, key):
                raise ValueError(
                    f"unknown GPT2Config field {key!r}; valid fields include n_layer, n_embd, "
                    "n_head, n_inner, n_positions, vocab_size, resid_pdrop, embd_pdrop, attn_pdrop, "
                    "activation_function"
                )
            setattr(config, key, value)
        if config.n_embd % config.n_head != 0:
            raise ValueError(
                f"n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head})"
            )
        model = transformers.GPT2LMHeadModel(config)
    if dtype is not None:
        model = model.to(dtype)
    return model


def load_tokenizer(path_or_name: str | os.PathLike = "gpt2") -> transformers.PreTrainedTokenizerBase:
    """GPT-2 byte-level BPE tokenizer (fast) from a local directory or the hub, offline-safe.

    ``path_or_name`` is a directory holding ``vocab.json`` + ``merges.txt`` (or ``tokenizer.json``),
    ``"embedded"`` (the tokenizer shipped with the embedded LM, identical to GPT-2's), or a hub name,
    loaded with the same fail-fast policy as :func:`load_language_model`.

    Examples:
        >>> tok = load_tokenizer("embedded")
        >>> tok("Hello world")["input_ids"]
        [15496, 995]
    """
    local_dir = resolve_lm_dir(path_or_name)
    if local_dir is not None:
        files = {p.name for p in local_dir.iterdir()}
        if not ({"vocab.json", "merges.txt"} <= files or "tokenizer.json" in files):
            raise FileNotFoundError(
                f"tokenizer directory {str(local_dir)!r} has neither vocab.json + merges.txt nor "
                f"tokenizer.json (found: {sorted(files)})"
            )
        tok = transformers.GPT2TokenizerFast.from_pretrained(str(local_dir))
    else:
        name = str(path_or_name)
        tok = _offline_safe(
            lambda local_only: transformers.GPT2TokenizerFast.from_pretrained(
                name, local_files_only=local_only
            ),
            "tokenizer",
            name,
            ("tokenizer.json", "vocab.json", "tokenizer_config.json"),
        )
    if tok.model_max_length > 10**9:
        tok.model_max_length = 1024
    return tok
