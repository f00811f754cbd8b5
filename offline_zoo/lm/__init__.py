"""Language models for the LM-backed agents (LaMo, Wiki-RL), usable with or without a network.

* :func:`load_language_model` / :func:`load_tokenizer` - GPT-2-architecture LMs and the GPT-2 BPE
  tokenizer from the hub, a local directory or the embedded LM (ChibiT-sized, :data:`EMBEDDED_LM`), failing
  fast with instructions when offline.
* :class:`TokenBlockSource` - a corpus as random contiguous token blocks (the language losses);
  :func:`embedded_corpus` - the WikiText-2 excerpt shipped beside the embedded LM.
* :func:`token_centres`, :func:`alignment_loss`, :func:`alignment_weight` - Wiki-RL's L_cos.
* :func:`pretrain_language_model`, :func:`perplexity` - ChibiT-style pre-training and LaMo's
  pre-training ablations (early-stopped, shuffled corpus); :func:`train_tokenizer` - a byte-level
  BPE tokenizer of your own corpus (GPT-2's scheme).

Caches live under ``$OFFLINE_ZOO_HOME`` (default ``~/.cache/offline_zoo``): ``tokens/`` for
tokenized corpora, ``kmeans/`` for token centres.

Examples:
    >>> from offline_zoo.lm import load_language_model, load_tokenizer, TokenBlockSource
    >>> lm = load_language_model("embedded")          # no network needed
    >>> tok = load_tokenizer("embedded")
    >>> lm.config.n_embd, tok("Hello world")["input_ids"]
    (128, [15496, 995])
"""

from offline_zoo.lm.corpus import (
    TokenBlockSource,
    default_cache_dir,
    embedded_corpus,
    tokenize_lines,
    tokenizer_fingerprint,
)
from offline_zoo.lm.kmeans import (
    alignment_loss,
    alignment_weight,
    spherical_kmeans,
    token_centres,
    wte_of,
)
from offline_zoo.lm.loading import (
    EMBEDDED_LM,
    EMBEDDED_LM_NAME,
    KNOWN_GPT2_ARCHITECTURES,
    LanguageModelNotAvailableError,
    hub_offline,
    load_language_model,
    load_tokenizer,
    resolve_lm_dir,
)
from offline_zoo.lm.pretrain import (
    SAMPLE_PROMPT,
    PretrainResult,
    generate_sample,
    perplexity,
    pretrain_language_model,
    train_tokenizer,
)

__all__ = [
    "EMBEDDED_LM",
    "EMBEDDED_LM_NAME",
    "KNOWN_GPT2_ARCHITECTURES",
    "LanguageModelNotAvailableError",
    "PretrainResult",
    "SAMPLE_PROMPT",
    "TokenBlockSource",
    "alignment_loss",
    "alignment_weight",
    "default_cache_dir",
    "embedded_corpus",
    "generate_sample",
    "hub_offline",
    "load_language_model",
    "load_tokenizer",
    "perplexity",
    "pretrain_language_model",
    "train_tokenizer",
    "resolve_lm_dir",
    "spherical_kmeans",
    "token_centres",
    "tokenize_lines",
    "tokenizer_fingerprint",
    "wte_of",
]
