"""Text corpora as a compact token array, served as random contiguous token blocks.

The language losses of Wiki-RL (L_LM) and LaMo draw, every step, a batch of ``batch_size`` blocks of
``block_size`` tokens (2 x 1024 GPT-2 tokens of WikiText-103 in the papers). :class:`TokenBlockSource`
tokenizes its corpus once into one flat ``uint16`` array (``int32`` for vocabularies above 65535),
caches it on disk (``.npy``, memory-mapped when reloaded) and draws blocks at uniformly random offsets
with a seeded generator: memory stays constant however many batches are drawn. (The released Wiki-RL
code cycles a DataLoader with ``itertools.cycle``, which keeps every batch of the first epoch alive;
this module does not.)

Tokenization follows the released pipeline: each line (with its newline) is tokenized on its own and
the results are concatenated, with no separator tokens.

Cache location: ``$OFFLINE_ZOO_HOME/tokens`` (default ``~/.cache/offline_zoo/tokens``), one ``.npy``
per (file contents, tokenizer) pair.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch

from offline_zoo.files import atomic_writer
from offline_zoo.lm.loading import LanguageModelNotAvailableError, hub_offline

__all__ = [
    "TokenBlockSource",
    "default_cache_dir",
    "embedded_corpus",
    "tokenizer_fingerprint",
    "tokenize_lines",
]

_FORMAT_VERSION = 1
_TEXT_SUFFIXES = (".txt", ".raw", ".tokens", ".text")


def default_cache_dir() -> Path:
    """Root of offline-zoo's caches: ``$OFFLINE_ZOO_HOME`` or ``~/.cache/offline_zoo``.

    The same root as the datasets (:func:`offline_zoo.data.data_home`).

    Examples:
        >>> import os
        >>> root = os.environ.get("OFFLINE_ZOO_HOME", Path.home() / ".cache" / "offline_zoo")
        >>> default_cache_dir() == Path(root).expanduser()
        True
    """
    from offline_zoo.data.loaders import data_home

    return data_home()


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """Short hash identifying a tokenizer's vocabulary, merges and normalisation.

    Examples:
        >>> from offline_zoo.lm import load_tokenizer
        >>> fp = tokenizer_fingerprint(load_tokenizer("embedded"))
        >>> len(fp), fp == tokenizer_fingerprint(load_tokenizer("embedded"))   # stable across loads
        (20, True)
    """
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode("utf-8"))
    else:
        vocab = tokenizer.get_vocab()
        h.update(json.dumps(sorted(vocab.items())).encode("utf-8"))
    h.update(type(tokenizer).__name__.encode())
    return h.hexdigest()[:20]


def _token_dtype(tokenizer: Any) -> np.dtype:
    return np.dtype(np.uint16) if len(tokenizer) <= np.iinfo(np.uint16).max + 1 else np.dtype(np.int32)


def tokenize_lines(
    lines: Iterable[str], tokenizer: Any, dtype: np.dtype | None = None, chunk_lines: int = 4096
) -> np.ndarray:
    """Tokenize each line on its own (keep its newline) and concatenate, in chunks of lines.

    Examples:
        >>> from offline_zoo.lm import load_tokenizer
        >>> ids = tokenize_lines(["Hello world\\n", "Bye\\n"], load_tokenizer("embedded"))
        >>> ids.tolist(), ids.dtype   # 198 is the newline token
        ([15496, 995, 198, 3886, 68, 198], dtype('uint16'))
    """
    dtype = np.dtype(dtype) if dtype is not None else _token_dtype(tokenizer)
    parts: list[np.ndarray] = []
    chunk: list[str] = []

    def flush() -> None:
        if chunk:
            ids = tokenizer(chunk, add_special_tokens=False)["input_ids"]
            flat = [t for seq in ids for t in seq]
            parts.append(np.asarray(flat, dtype=dtype))
            chunk.clear()

    for line in lines:
        if line:
            chunk.append(line)
        if len(chunk) >= chunk_lines:
            flush()
    flush()
    return np.concatenate(parts) if parts else np.zeros(0, dtype=dtype)


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _expand_sources(texts_or_files: Any) -> tuple[list[Path], list[str]]:
    """Split the constructor argument into files and raw texts (see TokenBlockSource)."""
    if isinstance(texts_or_files, (str, os.PathLike)):
        items: Sequence[Any] = [texts_or_files]
    elif isinstance(texts_or_files, Iterable):
        items = list(texts_or_files)
    else:
        raise TypeError(
            "texts_or_files must be a path (file or directory), a text, or a list of those; "
            f"got {type(texts_or_files).__name__}"
        )
    if not items:
        raise ValueError("texts_or_files is empty: give at least one file, directory or text")
    files: list[Path] = []
    texts: list[str] = []
    for item in items:
        if isinstance(item, str) and item == "embedded":
            files.append(embedded_corpus())
            continue
        if isinstance(item, os.PathLike) or (isinstance(item, str) and _is_existing_path(item)):
            path = Path(item).expanduser()
            if path.is_dir():
                found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in _TEXT_SUFFIXES)
                if not found:
                    raise FileNotFoundError(
                        f"directory {str(path)!r} holds no text files (suffixes {_TEXT_SUFFIXES})"
                    )
                files.extend(found)
            elif path.is_file():
                files.append(path)
            else:
                raise FileNotFoundError(f"corpus file {str(path)!r} does not exist")
        elif isinstance(item, str):
            if not any(c.isspace() for c in item):
                raise FileNotFoundError(
                    f"corpus file {item!r} does not exist (a text without whitespace is read as a "
                    "path; use TokenBlockSource.from_texts([...]) for raw texts)"
                )
            texts.append(item)
        else:
            raise TypeError(f"corpus items must be paths or str texts, got {type(item).__name__}")
    return files, texts


def embedded_corpus() -> Path:
    """A 200 kB WikiText-2 test-set excerpt shipped beside the embedded LM (``corpus="embedded"``).

    Small language data for the auxiliary losses on machines without a network (WikiText-2 is
    CC BY-SA 3.0, Merity et al. 2016). Use WikiText-103 or a real corpus for paper-scale runs.

    Examples:
        >>> embedded_corpus().name
        'corpus-sample.txt'
    """
    from offline_zoo.lm.loading import EMBEDDED_LM

    return Path(EMBEDDED_LM) / "corpus-sample.txt"


def _is_existing_path(item: str) -> bool:
    if "\n" in item or len(item) > 4096:
        return False
    try:
        return os.path.exists(os.path.expanduser(item))
    except (OSError, ValueError):
        return False


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_writer(path) as fh:
        np.save(fh, array)


class TokenBlockSource:
    """Random contiguous blocks of a tokenized corpus, constant memory, seeded.

    Args:
        texts_or_files: a text file, a directory (all its ``.txt``/``.raw``/``.tokens`` files, sorted),
            ``"embedded"`` (the small excerpt shipped with the embedded LM, :func:`embedded_corpus`),
            a raw text (a ``str`` that is not an existing path and contains whitespace), or a list of
            those. Files are tokenized once and cached (see ``cache_dir``).
        tokenizer: a Hugging Face tokenizer, or a name / directory for :func:`load_tokenizer`.
        block_size: tokens per block (1024 in Wiki-RL and LaMo).
        batch_size: blocks per :meth:`next_batch` (2 in Wiki-RL and LaMo).
        seed: seed of the block-offset generator.
        cache_dir: where tokenized files are cached (``<cache_dir>/tokens/<hash>.npy``); default
            :func:`default_cache_dir`; ``False`` disables the cache.

    Attributes:
        tokens: the flat token array (``np.uint16`` for GPT-2; memory-mapped when loaded from cache).
        description: where the tokens came from (files, hashes, tokenizer), JSON-serialisable.

    Examples:
        A file (here the excerpt shipped with the embedded LM; tokenized once, then cached):

        >>> src = TokenBlockSource("embedded", "embedded", block_size=1024, batch_size=2)
        >>> src.next_batch().shape, src.tokens.dtype
        (torch.Size([2, 1024]), dtype('uint16'))
        >>> src.n_tokens > 40_000
        True

        Raw texts (a string with whitespace that is not an existing path):

        >>> TokenBlockSource("The cat sat on the mat.", "embedded", block_size=4).n_tokens
        7
    """

    def __init__(
        self,
        texts_or_files: Any,
        tokenizer: Any,
        block_size: int = 1024,
        batch_size: int = 2,
        seed: int = 0,
        cache_dir: str | os.PathLike | bool | None = None,
    ) -> None:
        if isinstance(tokenizer, (str, os.PathLike)):
            from offline_zoo.lm.loading import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        files, texts = _expand_sources(texts_or_files)
        dtype = _token_dtype(tokenizer)
        fingerprint = tokenizer_fingerprint(tokenizer)
        parts: list[np.ndarray] = []
        described: list[dict[str, Any]] = []
        for path in files:
            array, digest = self._load_or_tokenize_file(path, tokenizer, dtype, fingerprint, cache_dir)
            parts.append(array)
            described.append({"file": str(path), "sha256": digest, "n_tokens": int(array.size)})
        if texts:
            array = tokenize_lines(_split_lines(texts), tokenizer, dtype)
            parts.append(array)
            described.append({"texts": len(texts), "n_tokens": int(array.size)})
        tokens = parts[0] if len(parts) == 1 else np.concatenate(parts)
        self._init_from_tokens(
            tokens,
            block_size,
            batch_size,
            seed,
            {"sources": described, "tokenizer": fingerprint, "vocab_size": len(tokenizer)},
        )

    # -- construction helpers ---------------------------------------------------------------
    def _init_from_tokens(
        self, tokens: np.ndarray, block_size: int, batch_size: int, seed: int, description: dict
    ) -> None:
        for key, value in (("block_size", block_size), ("batch_size", batch_size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{key} must be a positive int, got {value!r}")
        tokens = np.asarray(tokens) if not isinstance(tokens, np.ndarray) else tokens
        if tokens.ndim != 1:
            raise ValueError(f"tokens must be a flat 1-D array, got shape {tokens.shape}")
        if tokens.size < block_size:
            raise ValueError(
                f"corpus has {tokens.size} tokens, fewer than block_size={block_size}; give more text "
                "or a smaller block_size"
            )
        self.tokens = tokens
        self.block_size = int(block_size)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.description = description
        self.rng = np.random.default_rng(self.seed)
        self._offsets = np.arange(self.block_size, dtype=np.int64)

    @classmethod
    def from_tokens(
        cls,
        tokens: np.ndarray | Sequence[int] | torch.Tensor,
        block_size: int = 1024,
        batch_size: int = 2,
        seed: int = 0,
        description: dict | None = None,
    ) -> "TokenBlockSource":
        """Source over an existing flat token array (no tokenizer, no cache).

        Examples:
            >>> src = TokenBlockSource.from_tokens(np.arange(100), block_size=8, batch_size=4)
            >>> src.next_batch().shape
            torch.Size([4, 8])
        """
        if isinstance(tokens, torch.Tensor):
            tokens = tokens.detach().cpu().numpy()
        tokens = np.asarray(tokens)
        if tokens.dtype.kind not in "iu":
            raise ValueError(f"tokens must be integers, got dtype {tokens.dtype}")
        self = cls.__new__(cls)
        self._init_from_tokens(tokens, block_size, batch_size, seed, description or {"sources": "tokens"})
        return self

    @classmethod
    def from_texts(
        cls, texts: Sequence[str] | str, tokenizer: Any, block_size: int = 1024, batch_size: int = 2,
        seed: int = 0,
    ) -> "TokenBlockSource":
        """Source over in-memory raw texts (never read as paths, not cached).

        Examples:
            >>> src = TokenBlockSource.from_texts(["a short text"] * 50, "embedded", block_size=16)
            >>> src.n_tokens, src.next_batch().shape      # 3 tokens per text
            (150, torch.Size([2, 16]))
        """
        if isinstance(tokenizer, (str, os.PathLike)):
            from offline_zoo.lm.loading import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        if isinstance(texts, str):
            texts = [texts]
        tokens = tokenize_lines(_split_lines(list(texts)), tokenizer)
        return cls.from_tokens(
            tokens, block_size, batch_size, seed,
            {"sources": [{"texts": len(texts), "n_tokens": int(tokens.size)}],
             "tokenizer": tokenizer_fingerprint(tokenizer), "vocab_size": len(tokenizer)},
        )

    @classmethod
    def from_hf_wikitext103(
        cls,
        tokenizer: Any = "gpt2",
        split: str = "train",
        block_size: int = 1024,
        batch_size: int = 2,
        seed: int = 0,
        config_name: str = "wikitext-103-raw-v1",
        cache_dir: str | os.PathLike | bool | None = None,
    ) -> "TokenBlockSource":
        """WikiText-103 (the corpus of Wiki-RL's L_LM and LaMo's language loss) via ``datasets``.

        Needs ``pip install datasets`` and, the first time, a network connection; the tokenized split
        is then cached under ``<cache_dir>/tokens`` and later calls need neither ``datasets`` nor a
        network. Offline and not cached: fails at once with a message naming the alternatives
        (local text files, e.g. a WikiText folder).

        Examples:
            >>> src = TokenBlockSource.from_hf_wikitext103("gpt2")  # doctest: +SKIP

            (2 x 1024-token blocks, as the papers; needs ``datasets`` and, once, a network.) Bad
            arguments fail before anything is downloaded:

            >>> TokenBlockSource.from_hf_wikitext103("embedded", split="dev")
            Traceback (most recent call last):
            ...
            ValueError: split must be one of ('train', 'validation', 'test'), got 'dev'
        """
        allowed_splits = ("train", "validation", "test")
        if split not in allowed_splits:
            raise ValueError(f"split must be one of {allowed_splits}, got {split!r}")
        allowed_configs = ("wikitext-103-raw-v1", "wikitext-103-v1", "wikitext-2-raw-v1", "wikitext-2-v1")
        if config_name not in allowed_configs:
            raise ValueError(f"config_name must be one of {allowed_configs}, got {config_name!r}")
        if isinstance(tokenizer, (str, os.PathLike)):
            from offline_zoo.lm.loading import load_tokenizer

            tokenizer = load_tokenizer(tokenizer)
        dtype = _token_dtype(tokenizer)
        fingerprint = tokenizer_fingerprint(tokenizer)
        key = _cache_key({"hf": "wikitext", "config": config_name, "split": split, "tok": fingerprint,
                          "dtype": dtype.str})
        cache_path = _cache_path(cache_dir, key)
        description = {
            "sources": [{"hf_dataset": "wikitext", "config": config_name, "split": split}],
            "tokenizer": fingerprint,
            "vocab_size": len(tokenizer),
        }
        if cache_path is not None and cache_path.is_file():
            tokens = np.load(cache_path, mmap_mode="r")
        else:
            tokens = _download_wikitext(config_name, split, tokenizer, dtype)
            if cache_path is not None:
                _atomic_save_npy(cache_path, tokens)
        description["sources"][0]["n_tokens"] = int(tokens.size)
        return cls.from_tokens(tokens, block_size, batch_size, seed, description)

    @staticmethod
    def _load_or_tokenize_file(
        path: Path, tokenizer: Any, dtype: np.dtype, fingerprint: str, cache_dir: Any
    ) -> tuple[np.ndarray, str]:
        digest = _file_digest(path)
        key = _cache_key({"file_sha256": digest, "tok": fingerprint, "dtype": dtype.str})
        cache_path = _cache_path(cache_dir, key)
        if cache_path is not None and cache_path.is_file():
            try:
                return np.load(cache_path, mmap_mode="r"), digest
            except (OSError, ValueError):
                pass  # unreadable cache entry: rebuild it
        with open(path, encoding="utf-8", errors="replace") as fh:
            tokens = tokenize_lines(fh, tokenizer, dtype)
        if cache_path is not None:
            _atomic_save_npy(cache_path, tokens)
        return tokens, digest

    # -- sampling -------------------------------------------------------------------------------
    @property
    def n_tokens(self) -> int:
        """Number of tokens in the corpus.

        Examples:
            >>> TokenBlockSource.from_tokens(np.arange(100), block_size=8).n_tokens
            100
        """
        return int(self.tokens.size)

    def reset(self, seed: int | None = None) -> None:
        """Restart the block-offset generator (from ``seed``, default the constructor's).

        Examples:
            >>> src = TokenBlockSource.from_tokens(np.arange(1000), block_size=8)
            >>> first = src.next_batch()
            >>> src.reset()
            >>> torch.equal(first, src.next_batch())
            True
        """
        self.rng = np.random.default_rng(self.seed if seed is None else int(seed))

    def next_batch(self) -> torch.LongTensor:
        """``(batch_size, block_size)`` int64 tensor of blocks at uniformly random offsets.

        Examples:
            >>> src = TokenBlockSource.from_tokens(np.arange(1000), block_size=8, batch_size=3)
            >>> batch = src.next_batch()      # feed as input_ids=batch, labels=batch
            >>> batch.shape, batch.dtype
            (torch.Size([3, 8]), torch.int64)
            >>> bool((batch[:, 1:] - batch[:, :-1] == 1).all())   # contiguous blocks of the corpus
            True
        """
        starts = self.rng.integers(0, self.n_tokens - self.block_size + 1, size=self.batch_size)
        index = starts[:, None] + self._offsets[None, :]
        return torch.from_numpy(np.asarray(self.tokens[index], dtype=np.int64))

    def __iter__(self) -> Iterator[torch.LongTensor]:
        """Endless stream of :meth:`next_batch` results."""
        while True:
            yield self.next_batch()

    def iter_blocks(
        self, block_size: int | None = None, batch_size: int | None = None, max_tokens: int | None = None
    ) -> Iterator[torch.LongTensor]:
        """Consecutive non-overlapping blocks from the start (for evaluation), batched.

        The trailing partial block is dropped. ``max_tokens`` caps the tokens covered.

        Examples:
            >>> src = TokenBlockSource.from_tokens(np.arange(1000), block_size=128, batch_size=2)
            >>> [tuple(b.shape) for b in src.iter_blocks(max_tokens=640)]
            [(2, 128), (2, 128), (1, 128)]
            >>> next(src.iter_blocks(block_size=4))[0].tolist()
            [0, 1, 2, 3]
        """
        block_size = int(block_size or self.block_size)
        batch_size = int(batch_size or self.batch_size)
        n = self.n_tokens if max_tokens is None else min(self.n_tokens, int(max_tokens))
        n_blocks = n // block_size
        offsets = np.arange(block_size, dtype=np.int64)
        for first in range(0, n_blocks, batch_size):
            starts = np.arange(first, min(first + batch_size, n_blocks), dtype=np.int64) * block_size
            yield torch.from_numpy(np.asarray(self.tokens[starts[:, None] + offsets], dtype=np.int64))

    def shuffled(self, seed: int = 0) -> "TokenBlockSource":
        """Copy whose tokens are randomly permuted (LaMo's "random corpus" ablation).

        Word order, and with it everything a language model could learn beyond unigram frequencies,
        is destroyed; the token histogram is kept.

        Examples:
            >>> src = TokenBlockSource.from_tokens(np.arange(1000), block_size=8)
            >>> noisy = src.shuffled(seed=0)
            >>> np.array_equal(np.sort(noisy.tokens), src.tokens)   # same tokens, random order
            True
            >>> bool((noisy.tokens != src.tokens).any())
            True
        """
        perm = np.random.default_rng(seed).permutation(self.n_tokens)
        tokens = np.asarray(self.tokens)[perm]
        return TokenBlockSource.from_tokens(
            tokens, self.block_size, self.batch_size, self.seed,
            {**self.description, "shuffled_tokens_seed": int(seed)},
        )

    def __repr__(self) -> str:
        return (
            f"TokenBlockSource(n_tokens={self.n_tokens}, block_size={self.block_size}, "
            f"batch_size={self.batch_size}, seed={self.seed}, dtype={self.tokens.dtype})"
        )


def _split_lines(texts: Sequence[str]) -> Iterator[str]:
    for text in texts:
        yield from text.splitlines(keepends=True)


def _cache_key(fields: dict[str, Any]) -> str:
    payload = json.dumps({"v": _FORMAT_VERSION, **fields}, sort_keys=True).encode()
    return hashlib.sha256(payload).hexdigest()[:32]


def _cache_path(cache_dir: Any, key: str) -> Path | None:
    if cache_dir is False:
        return None
    root = default_cache_dir() if cache_dir in (None, True) else Path(cache_dir).expanduser()
    return root / "tokens" / f"{key}.npy"


def _download_wikitext(config_name: str, split: str, tokenizer: Any, dtype: np.dtype) -> np.ndarray:
    try:
        import datasets  # noqa: F401  (lazy: optional dependency)
    except ImportError as err:
        raise ImportError(
            "TokenBlockSource.from_hf_wikitext103 needs the `datasets` package: pip install datasets "
            "(or use local text files: TokenBlockSource('path/to/wikitext-103/wiki.train.raw', tok))"
        ) from err
    fix = (
        "Run once with a network connection (the tokens are then cached under "
        f"{default_cache_dir() / 'tokens'}), or pass local WikiText text files to TokenBlockSource."
    )
    if hub_offline() or os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        try:
            ds = datasets.load_dataset("wikitext", config_name, split=split)
        except Exception as err:  # datasets raises several types when offline
            raise LanguageModelNotAvailableError(
                f"WikiText ({config_name}, {split}) is not in the local datasets cache and the hub is "
                f"offline (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE set). {fix}"
            ) from err
    else:
        from offline_zoo.lm.loading import _hub_reachable

        reachable, why = _hub_reachable()
        try:
            if reachable:
                ds = datasets.load_dataset("wikitext", config_name, split=split)
            else:  # only the local datasets cache can help: do not enter the download retry loop
                with _datasets_offline(datasets):
                    ds = datasets.load_dataset("wikitext", config_name, split=split)
        except Exception as err:
            reason = why if not reachable else f"loading failed: {err}"
            raise LanguageModelNotAvailableError(
                f"WikiText ({config_name}, {split}) could not be loaded: {reason}. {fix}"
            ) from err
    return tokenize_lines((row["text"] for row in ds), tokenizer, dtype)


class _datasets_offline:
    """Temporarily switch ``datasets`` / ``huggingface_hub`` to offline mode (best effort)."""

    def __init__(self, datasets_module: Any) -> None:
        import huggingface_hub.constants as hub_constants

        self._targets = [
            (mod, name)
            for mod in (getattr(datasets_module, "config", None), hub_constants)
            if mod is not None
            for name in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE")
            if hasattr(mod, name)
        ]
        self._saved: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> None:
        for mod, name in self._targets:
            self._saved.append((mod, name, getattr(mod, name)))
            setattr(mod, name, True)

    def __exit__(self, *exc: Any) -> None:
        for mod, name, value in self._saved:
            setattr(mod, name, value)
