"""What Wiki-RL and LaMo share on top of the sequence agent: a pre-trained LM body and a text corpus.

``lm=`` is a hub name (``"gpt2"``, ``"gpt2-medium"``), a local directory, or ``"embedded"`` (the
small LM shipped with offline-zoo for offline use). ``pretrained=False`` builds the same
architecture randomly initialised (no network), and then accepts ``n_layer`` / ``n_embd`` /
``n_head`` overrides.

The corpus of the language losses (``corpus=``) is ``"wikitext-103"`` (the papers' corpus, through
the optional ``datasets`` package; needs a network once, then its cache), ``"embedded"`` (the
WikiText-2 excerpt shipped with the package), a text file or directory, or ``"random"`` (uniform
random token ids: only for tests and speed measurements). The default (None) picks one that this
installation can load: the excerpt with ``lm="embedded"``; otherwise WikiText-103 where ``datasets``
is installed, else the excerpt with a warning. The agent loads its corpus when it is built, so a
missing file or an unreachable WikiText-103 fails at construction, not at the first step. The corpus
is streamed as random token blocks of ``lm_block_size`` tokens, ``lm_batch_size`` blocks per step,
with constant memory.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import transformers

from ..lm import TokenBlockSource, load_language_model
from .sequence import SequenceAlgo, SequenceConfig

__all__ = ["LMBackedConfig", "LMBackedAlgo"]

#: the language model's GPT2Config inside a saved agent's zip
LM_CONFIG_FILE = "lm_config.json"


@dataclass
class LMBackedConfig(SequenceConfig):
    """Language-model fields shared by Wiki-RL and LaMo.

    Attributes:
        lm: hub name, local directory or ``"embedded"``.
        pretrained: load pre-trained weights (False: same architecture, random init).
        n_layer: number of blocks (only with ``pretrained=False``).
        n_embd: embedding size (only with ``pretrained=False``).
        n_head: attention heads (only with ``pretrained=False``).
        corpus: ``"wikitext-103"`` (downloaded via ``datasets``), ``"embedded"`` (the WikiText-2
            excerpt shipped with the package), a text file or directory, or ``"random"``; None:
            ``"embedded"`` with ``lm="embedded"``, else ``"wikitext-103"`` where ``datasets`` is
            installed and ``"embedded"`` (with a warning) where it is not (`LMBackedAlgo.corpus_default`);
            the agent records its choice here (and leaves None when no language loss reads a corpus).
        tokenizer: tokenizer name or directory (None: the LM's own, from its directory even with
            ``pretrained=False``; GPT-2's for a hub name with ``pretrained=False``).
        lm_batch_size: token blocks per step of the language losses.
        lm_block_size: tokens per block.

    Examples:
        >>> cfg = LMBackedConfig(lm="embedded")
        >>> cfg.pretrained, cfg.corpus, cfg.lm_block_size   # the agent resolves corpus=None when built
        (True, None, 1024)
    """

    lm: str = "gpt2"
    pretrained: bool = True
    n_layer: int | None = None
    n_embd: int | None = None
    n_head: int | None = None
    corpus: str | None = None
    tokenizer: str | None = None
    lm_batch_size: int = 2
    lm_block_size: int = 1024


def _datasets_installed() -> bool:
    return importlib.util.find_spec("datasets") is not None


class LMBackedAlgo(SequenceAlgo):
    """A sequence agent whose body is a (pre-trained) GPT-2-architecture language model.

    The base class of `WikiRL` and `LaMo`: loads the body from ``config.lm`` and streams the
    text corpus of the language losses.

    Examples:
        >>> from offline_zoo import LaMo
        >>> from offline_zoo.testing import tiny_dataset
        >>> algo = LaMo(tiny_dataset(), device="cpu", lm="gpt2", pretrained=False, n_layer=1, n_embd=16,
        ...             n_head=2, corpus="random", lm_block_size=8, lm_batch_size=1, context_len=4)
        >>> isinstance(algo, LMBackedAlgo), algo.model.body.config.n_layer
        (True, 1)
        >>> loss = algo.language_loss_term()  # next-token loss on a batch of random tokens
        >>> loss.shape, bool(loss > 0)
        (torch.Size([]), True)
        >>> LaMo(tiny_dataset(), device="cpu", lm="gpt2", n_layer=1)  # sizes of a pre-trained LM are fixed
        Traceback (most recent call last):
        ...
        ValueError: size overrides {'n_layer': 1} need pretrained=False: a pre-trained 'gpt2' has fixed sizes
    """

    config_class = LMBackedConfig

    def _load_lm(self, **config_overrides) -> torch.nn.Module:
        c = self.config
        sizes = {k: getattr(c, k) for k in ("n_layer", "n_embd", "n_head") if getattr(c, k) is not None}
        if sizes and c.pretrained:
            raise ValueError(
                f"size overrides {sizes} need pretrained=False: a pre-trained {c.lm!r} has fixed sizes"
            )
        saved = (getattr(self, "_restoring", None) or {}).get(LM_CONFIG_FILE)
        if saved is not None:
            # a saved agent holds every weight of its LM: rebuild the architecture only, so that
            # loading needs neither the hub nor the original LM directory
            lm = transformers.GPT2LMHeadModel(transformers.GPT2Config.from_dict(json.loads(saved))).float()
        else:
            lm = load_language_model(c.lm, pretrained=c.pretrained, **sizes, **config_overrides)
        self._lm_config_json = lm.config.to_json_string()  # before the agent adapts the body
        return lm

    def _extra_files(self) -> dict[str, bytes]:
        lm_config = getattr(self, "_lm_config_json", None)  # set by _load_lm
        return {**super()._extra_files(), **({LM_CONFIG_FILE: lm_config.encode()} if lm_config else {})}

    @property
    def restoring(self) -> bool:
        """True while `load` rebuilds the agent (weights then come from the file, not the LM)."""
        return LM_CONFIG_FILE in (getattr(self, "_restoring", None) or {})

    def _build(self) -> None:
        super()._build()
        if self.restoring or not self._uses_corpus():  # a loaded agent loads its saved corpus on first use
            return
        if self.config.corpus is None:  # recorded, so that saved agents and reports say which corpus ran
            self.config.corpus = self.corpus_default(self.config.lm)
        # load it now: a missing file or an unreachable WikiText-103 fails here, not at the first step
        self._language_corpus()

    def _uses_corpus(self) -> bool:
        """Whether a language loss reads the corpus (subclasses: False when their coefficient is 0)."""
        return True

    @staticmethod
    def corpus_default(lm: str) -> str:
        """The corpus that ``corpus=None`` means for the LM ``lm`` on this installation.

        ``"embedded"`` (the shipped WikiText-2 excerpt) with ``lm="embedded"``; otherwise the papers'
        ``"wikitext-103"`` where the ``datasets`` package is installed (``pip install datasets``),
        else ``"embedded"`` with a warning, so that a default install trains.

        Examples:
            >>> LMBackedAlgo.corpus_default("embedded")
            'embedded'
            >>> import importlib.util, warnings
            >>> with warnings.catch_warnings():
            ...     warnings.simplefilter("ignore")
            ...     picked = LMBackedAlgo.corpus_default("gpt2")
            >>> picked == ("wikitext-103" if importlib.util.find_spec("datasets") else "embedded")
            True
        """
        if str(lm) == "embedded":
            return "embedded"
        if _datasets_installed():
            return "wikitext-103"
        warnings.warn(
            "the language loss uses the shipped WikiText-2 excerpt (corpus='embedded'): the papers' "
            "WikiText-103 needs the `datasets` package (pip install datasets). Pass corpus='embedded' "
            "to silence this, or corpus='wikitext-103' / a text file or directory to choose.",
            UserWarning,
            stacklevel=2,
        )
        return "embedded"

    def _language_corpus(self) -> TokenBlockSource:
        """The token-block stream of the language losses (built once, when the agent is built)."""
        source = getattr(self, "_corpus_source", None)
        if source is not None:
            return source
        c = self.config
        corpus = self.corpus_default(c.lm) if c.corpus is None else c.corpus
        vocab = self.model.body.wte.weight.shape[0]
        if corpus == "random":
            tokens = np.random.default_rng(self.seed).integers(0, vocab, size=max(64 * c.lm_block_size, 4096))
            source = TokenBlockSource.from_tokens(tokens, c.lm_block_size, c.lm_batch_size, seed=self.seed, description={"random": vocab})
        elif corpus == "wikitext-103":
            try:
                source = TokenBlockSource.from_hf_wikitext103(tokenizer=c.tokenizer or self._default_tokenizer(), block_size=c.lm_block_size, batch_size=c.lm_batch_size, seed=self.seed)
            except (ImportError, OSError) as err:
                hint = " Without it, pass corpus='embedded' (the WikiText-2 excerpt shipped with offline-zoo) or a text file or directory."
                raise type(err)(f"corpus='wikitext-103': {str(err).rstrip('.')}.{hint}") from err
        else:
            try:
                source = TokenBlockSource(corpus, c.tokenizer or self._default_tokenizer(), block_size=c.lm_block_size, batch_size=c.lm_batch_size, seed=self.seed)
            except FileNotFoundError as err:
                raise FileNotFoundError(
                    f"corpus={corpus!r}: {err}. Allowed: 'embedded' (the WikiText-2 excerpt shipped with "
                    "offline-zoo), 'wikitext-103' (needs `datasets`), 'random' (tests), or an existing text "
                    "file or directory"
                ) from None
        if source.description.get("vocab_size", vocab) > vocab:
            raise ValueError(f"the corpus tokenizer has {source.description['vocab_size']} tokens but the LM only {vocab}")
        source.rng = self.rng  # block offsets come from the algorithm's saved generator
        self._corpus_source = source
        return source

    def _default_tokenizer(self) -> str:
        """The LM's own tokenizer: its directory's files (random init included), else GPT-2's.

        A randomly initialised hub architecture (``lm="gpt2", pretrained=False``) takes GPT-2's
        tokenizer from the files shipped with the embedded LM (byte-identical vocab.json and
        merges.txt), so that it needs no network; a pre-trained hub model keeps its own.
        """
        from ..lm.loading import EMBEDDED_LM, resolve_lm_dir

        c = self.config
        local = resolve_lm_dir(c.lm)
        if local is not None and any((local / f).is_file() for f in ("tokenizer.json", "vocab.json")):
            return str(local)
        return c.lm if c.pretrained else str(EMBEDDED_LM)

    def _language_batch(self) -> torch.Tensor:
        """The next ``(lm_batch_size, lm_block_size)`` token block batch on the device.

        Blocks are gathered from the pre-tokenized array (no Python iterator, no DataLoader); on
        CUDA they travel through the pinned, asynchronous stager like the RL batches.
        """
        tokens = self._language_corpus().next_batch()
        if self._stager is not None:
            return self._stager({"language_tokens": tokens.numpy()})["language_tokens"]
        return tokens.to(self.device)

    def language_loss_term(self) -> torch.Tensor:
        """Language-model loss on the next token batch, through ``torch.compile`` when ``compile=True``."""
        return self._compiled_fn("language_loss", self.model.language_loss)(self._language_batch())
