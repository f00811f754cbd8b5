"""Pre-train a small GPT-2-architecture language model from scratch.

This is the ChibiT recipe of Wiki-RL (GPT-2 architecture, 128 dim / 3 layers / 1 head, GPT-2 BPE,
next-token loss on WikiText-103; the paper: lr 3e-4, 65,536-token batches, 80k steps, 10k warmup)
at whatever size and budget the caller picks, plus the two pre-training ablations of the LaMo paper
(Section 5.5 / Appendix F-G):

* early-stopped pre-training (``early_stop_steps``): the run is planned for ``steps`` steps (learning
  rate schedule included) and stopped after ``early_stop_steps`` of them, i.e. an early checkpoint of
  the full run;
* random corpus (``shuffle_tokens=True``): the training tokens are randomly permuted once (seeded), so
  that next-token prediction carries no information beyond token frequencies.

The output directory loads with ``GPT2LMHeadModel.from_pretrained(out_dir)``,
``AutoTokenizer.from_pretrained(out_dir)`` and :func:`offline_zoo.lm.load_language_model`; it holds
``config.json``, ``model.safetensors``, ``generation_config.json``, the tokenizer files and
``training_info.json`` (corpus, steps, perplexity before / after on held-out text, a generated sample
for the prompt the LaMo paper uses, "Hello, my name is Tom.").
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import torch
import torch.nn.functional as F
import transformers

from offline_zoo.lm.corpus import TokenBlockSource, _expand_sources, _split_lines, tokenizer_fingerprint
from offline_zoo.devices import resolve_device
from offline_zoo.files import atomic_write_text
from offline_zoo.lm.loading import load_tokenizer

__all__ = ["PretrainResult", "SAMPLE_PROMPT", "generate_sample", "perplexity", "pretrain_language_model", "train_tokenizer"]

#: GPT-2's only special token (beginning / end of text, and padding where one is needed)
END_OF_TEXT = "<|endoftext|>"

SAMPLE_PROMPT = "Hello, my name is Tom."
"""Prompt of the LaMo paper's language-ability test (Appendix F)."""

_SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass
class PretrainResult:
    """What :func:`pretrain_language_model` produced.

    Attributes:
        out_dir: the saved model directory.
        steps: gradient steps actually taken (``early_stop_steps`` when early-stopped).
        perplexity_before: perplexity at initialisation, on the evaluation text (held-out when
            given).
        perplexity_after: perplexity after training, on the same text.
        sample: text generated from :data:`SAMPLE_PROMPT` after training.
        seconds: wall-clock training time (without the evaluations).
        losses: ``(step, mean training loss since the previous entry)`` pairs.
        info: the content of ``training_info.json``.

    Examples:
        Three steps of a one-layer, 8-dim model on a few sentences:

        >>> from offline_zoo.lm import TokenBlockSource
        >>> corpus = TokenBlockSource.from_texts(["The cat sat on the mat. " * 20], "embedded", block_size=16)
        >>> res = pretrain_language_model(corpus, "tiny-lm", n_layer=1, n_embd=8, n_head=1, steps=3,
        ...                               block_size=16, batch_size=2, lr=1e-2, tokenizer="embedded",
        ...                               n_positions=32, progress_bar=False)
        >>> res.steps, res.out_dir.name, [step for step, loss in res.losses]
        (3, 'tiny-lm', [3])
        >>> res.perplexity_after < res.perplexity_before          # about the vocabulary size at init
        True
        >>> res.info["architecture"]["n_embd"], res.info["sample"]["prompt"]
        (8, 'Hello, my name is Tom.')
    """

    out_dir: Path
    steps: int
    perplexity_before: float
    perplexity_after: float
    sample: str
    seconds: float
    losses: list[tuple[int, float]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def perplexity(
    model: torch.nn.Module,
    token_source_or_blocks: TokenBlockSource | torch.Tensor | Iterable[torch.Tensor],
    block_size: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    autocast_bf16: bool = False,
) -> float:
    """Token-level perplexity ``exp(mean next-token NLL)`` of a causal LM.

    ``token_source_or_blocks`` is a :class:`TokenBlockSource` (its consecutive non-overlapping
    blocks of ``block_size`` tokens, default the source's, are scored, up to ``max_tokens``), a 2-D
    LongTensor of blocks, or an iterable of such tensors. Every position but the first of each block
    is predicted; the model is put in eval mode and restored afterwards.

    Examples:
        >>> from offline_zoo.lm import load_language_model
        >>> lm = load_language_model("embedded")
        >>> text = TokenBlockSource("embedded", "embedded", block_size=128)   # a WikiText-2 excerpt
        >>> ppl = perplexity(lm, text, max_tokens=256)                       # 2 blocks of 128 tokens
        >>> 50 < ppl < 1000        # a trained LM; a random one scores about the vocabulary size
        True
        >>> perplexity(lm, text.next_batch()) > 0                            # or a tensor of blocks
        True
    """
    if isinstance(token_source_or_blocks, TokenBlockSource):
        blocks: Iterable[torch.Tensor] = token_source_or_blocks.iter_blocks(
            block_size=block_size, batch_size=batch_size, max_tokens=max_tokens
        )
    elif isinstance(token_source_or_blocks, torch.Tensor):
        if token_source_or_blocks.dim() != 2:
            raise ValueError(
                f"blocks tensor must be 2-D (n_blocks, block_size), got shape "
                f"{tuple(token_source_or_blocks.shape)}"
            )
        blocks = token_source_or_blocks.split(batch_size)
    else:
        blocks = token_source_or_blocks
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    total_nll, total_count = 0.0, 0
    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if autocast_bf16 else nullcontext()
    try:
        for batch in blocks:
            batch = batch.to(device=device, dtype=torch.long)
            if batch.dim() == 1:
                batch = batch[None]
            if batch.shape[1] < 2:
                continue
            with ctx:
                nll = _next_token_loss(model, batch, reduction="sum")
            total_nll += float(nll)
            total_count += batch.shape[0] * (batch.shape[1] - 1)
    finally:
        model.train(was_training)
    if total_count == 0:
        raise ValueError("no tokens to score: the evaluation text is shorter than one block")
    return math.exp(total_nll / total_count)


@torch.no_grad()
def generate_sample(
    model: transformers.GPT2LMHeadModel,
    tokenizer: Any,
    prompt: str = SAMPLE_PROMPT,
    max_new_tokens: int = 40,
    seed: int = 0,
    top_k: int = 40,
) -> str:
    """Seeded top-k sample continuing ``prompt`` (the LaMo paper's language-ability check).

    Examples:
        >>> from offline_zoo.lm import load_language_model
        >>> lm, tok = load_language_model("embedded"), load_tokenizer("embedded")
        >>> text = generate_sample(lm, tok, max_new_tokens=8)    # continues "Hello, my name is Tom."
        >>> isinstance(text, str), text == generate_sample(lm, tok, max_new_tokens=8)   # seeded
        (True, True)
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    ids = torch.tensor([tokenizer(prompt)["input_ids"]], device=device)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    try:
        for _ in range(max_new_tokens):
            context = ids[:, -model.config.n_positions :]
            logits = model(input_ids=context).logits[0, -1].float().cpu()
            values, indices = logits.topk(min(top_k, logits.numel()))
            probs = torch.softmax(values, dim=-1)
            choice = indices[torch.multinomial(probs, 1, generator=gen)]
            ids = torch.cat([ids, choice.view(1, 1).to(device)], dim=1)
    finally:
        model.train(was_training)
    return tokenizer.decode(ids[0, -max_new_tokens:].tolist())


def _next_token_loss(model: Any, batch: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of predicting ``batch[:, 1:]`` from ``batch[:, :-1]``.

    Same value as ``model(input_ids=batch, labels=batch).loss`` but without the extra copies of the
    (tokens x vocab) logits that transformers' loss makes (about 1.5x faster on CPU).
    """
    if hasattr(model, "transformer") and hasattr(model, "lm_head"):
        logits = model.lm_head(model.transformer(input_ids=batch[:, :-1]).last_hidden_state)
    else:  # any other causal LM returning .logits
        logits = model(input_ids=batch[:, :-1]).logits
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(), batch[:, 1:].reshape(-1), reduction=reduction
    )


def _lr_at(step: int, steps: int, lr: float, warmup: int, min_ratio: float) -> float:
    if warmup > 0 and step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _save_tokenizer_files(tokenizer: Any, out_dir: Path, source_dir: Path | None, max_len: int) -> None:
    """vocab.json + merges.txt (compact, readable by transformers 4 and 5) + tokenizer_config.json."""
    copied = False
    if source_dir is not None and (source_dir / "vocab.json").is_file() and (source_dir / "merges.txt").is_file():
        for name in ("vocab.json", "merges.txt"):
            shutil.copyfile(source_dir / name, out_dir / name)
        copied = True
    if not copied:
        copied = _write_bpe_files(tokenizer, out_dir)
    if not copied:  # not a byte-level BPE tokenizer: let transformers write what it knows
        tokenizer.save_pretrained(str(out_dir))
        return
    _write_tokenizer_config(out_dir, max_len, tokenizer.bos_token, tokenizer.eos_token, tokenizer.unk_token)


def _write_tokenizer_config(out_dir: Path, max_len: int, bos: str | None = None, eos: str | None = None, unk: str | None = None) -> None:
    """GPT-2's tokenizer_config.json beside vocab.json + merges.txt (GPT2TokenizerFast reads them)."""
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "model_max_length": max_len,
        "bos_token": bos or END_OF_TEXT,
        "eos_token": eos or END_OF_TEXT,
        "unk_token": unk or END_OF_TEXT,
        "add_prefix_space": False,
        "errors": "replace",
    }
    atomic_write_text(out_dir / "tokenizer_config.json", json.dumps(config, indent=2) + "\n")


def train_tokenizer(
    corpus: str | os.PathLike | list,
    out_dir: str | os.PathLike,
    vocab_size: int = 8192,
    min_frequency: int = 2,
    max_len: int = 1024,
) -> transformers.PreTrainedTokenizerBase:
    """Train a byte-level BPE tokenizer (GPT-2's scheme, with the ``tokenizers`` library) on a corpus.

    The tokenizer has GPT-2's pre-tokenization, its 256-byte alphabet (any text is encoded, nothing
    is unknown) and ``<|endoftext|>``; ``vocab_size`` includes them. ``out_dir`` receives
    ``vocab.json``, ``merges.txt`` and ``tokenizer_config.json``, so that `load_tokenizer`,
    ``AutoTokenizer.from_pretrained`` and ``pretrain_language_model(tokenizer=out_dir)`` read it; an
    LM pre-trained with it gets ``vocab_size`` token embeddings instead of GPT-2's 50,257.

    Args:
        corpus: what `TokenBlockSource` takes: text files, a directory, texts, or ``"embedded"``.
        out_dir: output directory (created).
        vocab_size: size of the vocabulary, at least 257 (the bytes and ``<|endoftext|>``).
        min_frequency: merges seen fewer times than this are not learned.
        max_len: the tokenizer's ``model_max_length`` (GPT-2: 1024).

    Returns:
        The trained tokenizer, loaded back from ``out_dir``.

    Examples:
        >>> tok = train_tokenizer(["the cat sat on the mat\\n" * 50, "the dog sat on the log\\n" * 50], "my-tok", vocab_size=300)
        >>> len(tok) <= 300, tok.decode(tok("the cat sat")["input_ids"])
        (True, 'the cat sat')
        >>> len(tok("the cat sat on the mat")["input_ids"])       # frequent words are single tokens
        6
        >>> sorted(p.name for p in Path("my-tok").iterdir())
        ['merges.txt', 'tokenizer_config.json', 'vocab.json']
    """
    from tokenizers import ByteLevelBPETokenizer

    vocab_size = _positive_int("vocab_size", vocab_size)
    if vocab_size < 257:
        raise ValueError(f"vocab_size={vocab_size} must be at least 257: the 256 bytes and {END_OF_TEXT}")
    files, texts = _expand_sources(corpus)

    def lines():
        for f in files:
            with open(f, encoding="utf-8", errors="replace") as fh:
                yield from fh
        yield from _split_lines(texts)

    bpe = ByteLevelBPETokenizer(add_prefix_space=False)
    bpe.train_from_iterator(lines(), vocab_size=vocab_size, min_frequency=_positive_int("min_frequency", min_frequency),
                            special_tokens=[END_OF_TEXT], show_progress=False)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(out))
    _write_tokenizer_config(out, _positive_int("max_len", max_len))
    return load_tokenizer(out)


def _write_bpe_files(tokenizer: Any, out_dir: Path) -> bool:
    """Write vocab.json + merges.txt from a fast BPE tokenizer's backend; False if not BPE."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return False
    model = json.loads(backend.to_str()).get("model", {})
    if model.get("type") != "BPE" or "vocab" not in model or "merges" not in model:
        return False
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    atomic_write_text(out_dir / "vocab.json", json.dumps(model["vocab"], ensure_ascii=False))
    atomic_write_text(out_dir / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    return True


def pretrain_language_model(
    corpus: TokenBlockSource | str | os.PathLike | list,
    out_dir: str | os.PathLike,
    n_layer: int = 3,
    n_embd: int = 128,
    n_head: int = 1,
    steps: int = 1000,
    block_size: int = 128,
    batch_size: int = 8,
    lr: float = 3e-4,
    seed: int = 0,
    tokenizer: Any = "gpt2",
    shuffle_tokens: bool = False,
    early_stop_steps: int | None = None,
    eval_corpus: TokenBlockSource | str | os.PathLike | list | None = None,
    progress_bar: bool = True,
    *,
    warmup_steps: int | None = None,
    min_lr_ratio: float = 0.1,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    dropout: float = 0.0,
    n_positions: int = 1024,
    bf16: bool = False,
    num_threads: int | None = None,
    save_dtype: str = "float32",
    eval_max_tokens: int | None = 65536,
    sample_prompt: str = SAMPLE_PROMPT,
    log_every: int = 50,
    device: str | torch.device = "cpu",
) -> PretrainResult:
    """Train a GPT-2-architecture LM from random init on a token corpus and save it.

    Args:
        corpus: a :class:`TokenBlockSource` or what its constructor takes (files, a directory, texts).
        out_dir: output directory (created; existing model files are overwritten).
        n_layer: transformer blocks (ChibiT: 3).
        n_embd: hidden size (ChibiT: 128). The vocabulary is the tokenizer's.
        n_head: attention heads (ChibiT: 1); must divide ``n_embd``.
        steps: planned gradient steps (the learning-rate schedule spans them).
        block_size: tokens per training sequence.
        batch_size: sequences per step.
        lr: peak AdamW learning rate (linear warmup, then cosine decay to ``min_lr_ratio * lr``).
        seed: seeds the initialisation, the block sampling and the token shuffle.
        tokenizer: a tokenizer or a name / directory for :func:`load_tokenizer` (GPT-2 BPE).
        shuffle_tokens: LaMo's "random corpus" ablation: train on a seeded permutation of the tokens.
        early_stop_steps: LaMo's "early-stopped" ablation: stop after this many of the ``steps``.
        eval_corpus: held-out text for the perplexities (default: the training corpus, unshuffled).
        progress_bar: show a rich progress bar over the steps.
        warmup_steps: default ``min(1000, steps // 10)``.
        weight_decay: AdamW decay on weight matrices (not on biases, LayerNorms, embeddings).
        grad_clip: gradient-norm clip.
        dropout: dropout while pre-training (the saved config gets GPT-2's default 0.1, so that
            fine-tuning downstream behaves as with GPT-2; the training value is in training_info).
        n_positions: size of the position table (GPT-2: 1024, which Wiki-RL's "extend positions" and
            1024-token language batches expect).
        bf16: bfloat16 autocast (on a GPU; on a CPU faster only with AVX512-BF16 / AMX).
        num_threads: torch intra-op threads while training (restored afterwards).
        save_dtype: "float32", "float16" or "bfloat16" for the saved weights.
        eval_max_tokens: tokens of the evaluation text scored for the perplexities (None: all).
        sample_prompt: prompt of the generated sample (LaMo Appendix F: "Hello, my name is Tom.").
        log_every: steps between loss records / progress-bar updates.
        device: ``"cpu"`` (default), ``"cuda"``, ``"cuda:N"`` or ``"auto"`` (a GPU when torch sees
            one; see `offline_zoo.devices.resolve_device`). GPT-2-sized LMs (the LaMo ablations
            of Figure 7) belong on a GPU; the weights are moved to the CPU before saving.

    Returns:
        :class:`PretrainResult`; the directory also holds ``training_info.json``.

    Examples:
        ChibiT on WikiText-2 (minutes on a CPU; the WikiText files are not shipped):

        >>> res = pretrain_language_model("wikitext-2/valid.txt", "runs/chibit", n_layer=3, n_embd=128,
        ...                               n_head=1, steps=2000, block_size=256, batch_size=16, lr=1e-3,
        ...                               eval_corpus="wikitext-2/test.txt")  # doctest: +SKIP

        A few steps of a tiny model on a few sentences, with held-out text, then loaded back:

        >>> from offline_zoo.lm import load_language_model
        >>> train = ["The cat sat on the mat. The dog sat on the log.\\n" * 20]
        >>> held_out = ["The dog sat on the mat. The cat sat on the log.\\n" * 5]
        >>> res = pretrain_language_model(train, "tiny-lm", n_layer=1, n_embd=8, n_head=1, steps=5,
        ...                               block_size=16, batch_size=2, lr=1e-2, tokenizer="embedded",
        ...                               eval_corpus=held_out, n_positions=32, progress_bar=False)
        >>> res.steps, res.perplexity_after < res.perplexity_before
        (5, True)
        >>> sorted(p.name for p in res.out_dir.iterdir())    # doctest: +NORMALIZE_WHITESPACE
        ['config.json', 'generation_config.json', 'merges.txt', 'model.safetensors',
         'tokenizer_config.json', 'training_info.json', 'vocab.json']
        >>> load_language_model("tiny-lm").config.n_embd
        8

        LaMo's ablations: ``early_stop_steps=`` (an early checkpoint of a longer run) and
        ``shuffle_tokens=True`` (a corpus without word order):

        >>> res = pretrain_language_model(train, "ablation", n_layer=1, n_embd=8, n_head=1, steps=30,
        ...                               early_stop_steps=2, shuffle_tokens=True, block_size=16,
        ...                               batch_size=2, tokenizer="embedded", n_positions=32,
        ...                               progress_bar=False)
        >>> res.steps, res.info["training"]["planned_steps"], res.info["corpus"]["shuffled_tokens"]
        (2, 30, True)
    """
    n_layer = _positive_int("n_layer", n_layer)
    n_embd = _positive_int("n_embd", n_embd)
    n_head = _positive_int("n_head", n_head)
    steps = _positive_int("steps", steps)
    block_size = _positive_int("block_size", block_size)
    batch_size = _positive_int("batch_size", batch_size)
    n_positions = _positive_int("n_positions", n_positions)
    if n_embd % n_head:
        raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
    if block_size > n_positions:
        raise ValueError(f"block_size ({block_size}) must be <= n_positions ({n_positions})")
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    if early_stop_steps is not None:
        early_stop_steps = _positive_int("early_stop_steps", early_stop_steps)
        if early_stop_steps > steps:
            raise ValueError(f"early_stop_steps ({early_stop_steps}) must be <= steps ({steps})")
    if save_dtype not in _SAVE_DTYPES:
        raise ValueError(f"save_dtype must be one of {sorted(_SAVE_DTYPES)}, got {save_dtype!r}")
    if warmup_steps is None:
        warmup_steps = min(1000, steps // 10)

    tokenizer_dir: Path | None = None
    if isinstance(tokenizer, (str, os.PathLike)):
        from offline_zoo.lm.loading import resolve_lm_dir

        tokenizer_dir = resolve_lm_dir(tokenizer)
        tokenizer = load_tokenizer(tokenizer)
    vocab_size = len(tokenizer)

    if isinstance(corpus, TokenBlockSource):
        train_source = TokenBlockSource.from_tokens(
            corpus.tokens, block_size, batch_size, seed, corpus.description
        )
    else:
        train_source = TokenBlockSource(corpus, tokenizer, block_size, batch_size, seed)
    if int(train_source.tokens.max()) >= vocab_size:
        raise ValueError(
            f"corpus has token id {int(train_source.tokens.max())} >= tokenizer size {vocab_size}"
        )
    plain_source = train_source
    if shuffle_tokens:
        train_source = train_source.shuffled(seed)
    if eval_corpus is None:
        eval_source, eval_name = plain_source, "training corpus (no held-out text given)"
    elif isinstance(eval_corpus, TokenBlockSource):
        eval_source, eval_name = eval_corpus, "held-out"
    else:
        eval_source, eval_name = TokenBlockSource(eval_corpus, tokenizer, block_size, batch_size, seed), "held-out"

    dev = resolve_device(device)
    old_threads = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(_positive_int("num_threads", num_threads))
    try:
        torch.manual_seed(seed)
        config = transformers.GPT2Config(
            vocab_size=vocab_size,
            n_positions=n_positions,
            n_embd=n_embd,
            n_layer=n_layer,
            n_head=n_head,
            resid_pdrop=dropout,
            embd_pdrop=dropout,
            attn_pdrop=dropout,
            bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else vocab_size - 1,
            eos_token_id=tokenizer.eos_token_id if tokenizer.eos_token_id is not None else vocab_size - 1,
        )
        model = transformers.GPT2LMHeadModel(config).to(dev)
        model.train()
        eval_kwargs = dict(block_size=block_size, max_tokens=eval_max_tokens, autocast_bf16=bf16)
        ppl_before = perplexity(model, eval_source, **eval_kwargs)

        decay, no_decay = [], []
        for name, param in model.named_parameters():
            (decay if param.dim() >= 2 and "wte" not in name and "wpe" not in name else no_decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=lr, betas=(0.9, 0.95), eps=1e-8,
        )
        n_train = early_stop_steps if early_stop_steps is not None else steps
        autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
        losses: list[tuple[int, float]] = []
        running, running_n = 0.0, 0
        progress = _make_progress(progress_bar)
        start = time.perf_counter()
        cpu_start = time.process_time()
        with progress:
            task = progress.add_task("pre-training LM", total=n_train, loss=float("nan"))
            for step in range(n_train):
                for group in optimizer.param_groups:
                    group["lr"] = _lr_at(step, steps, lr, warmup_steps, min_lr_ratio)
                batch = train_source.next_batch().to(dev, non_blocking=True)
                with autocast:
                    loss = _next_token_loss(model, batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if grad_clip:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
                optimizer.step()
                running += float(loss.detach())
                running_n += 1
                if (step + 1) % log_every == 0 or step + 1 == n_train:
                    losses.append((step + 1, running / running_n))
                    progress.update(task, completed=step + 1, loss=running / running_n)
                    running, running_n = 0.0, 0
        seconds = time.perf_counter() - start
        cpu_seconds = time.process_time() - cpu_start
        ppl_after = perplexity(model, eval_source, **eval_kwargs)
        sample = generate_sample(model, tokenizer, sample_prompt, seed=seed)
    finally:
        torch.set_num_threads(old_threads)

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    for pdrop in ("resid_pdrop", "embd_pdrop", "attn_pdrop"):
        setattr(model.config, pdrop, 0.1)
    to_save = model.cpu().to(_SAVE_DTYPES[save_dtype])
    to_save.save_pretrained(str(out))
    weights = out / "model.safetensors"
    if weights.is_file():  # some writers create it 0600; make it readable like the other files
        umask = os.umask(0)
        os.umask(umask)
        weights.chmod(0o666 & ~umask)
    model = to_save.float()
    _save_tokenizer_files(tokenizer, out, tokenizer_dir, n_positions)
    n_params = sum(p.numel() for p in model.parameters())
    info = {
        "format": "offline_zoo.lm.pretrain/1",
        "architecture": {"n_layer": n_layer, "n_embd": n_embd, "n_head": n_head, "n_positions": n_positions,
                         "vocab_size": vocab_size, "parameters": n_params, "tied_lm_head": True},
        "corpus": {**plain_source.description, "n_tokens": plain_source.n_tokens,
                   "shuffled_tokens": bool(shuffle_tokens)},
        "tokenizer": {"fingerprint": tokenizer_fingerprint(tokenizer), "class": type(tokenizer).__name__},
        "training": {"planned_steps": steps, "steps": n_train, "early_stopped": early_stop_steps is not None,
                     "block_size": block_size, "batch_size": batch_size, "tokens_seen": n_train * block_size * batch_size,
                     "lr": lr, "warmup_steps": warmup_steps, "min_lr_ratio": min_lr_ratio, "schedule": "linear warmup + cosine",
                     "optimizer": "AdamW(betas=(0.9, 0.95))", "weight_decay": weight_decay, "grad_clip": grad_clip,
                     "dropout": dropout, "bf16_autocast": bool(bf16), "device": str(dev), "seed": seed, "torch_threads": torch.get_num_threads() if num_threads is None else num_threads,
                     "seconds": round(seconds, 1), "cpu_seconds": round(cpu_seconds, 1), "loss_curve": [[s, round(v, 4)] for s, v in losses]},
        "evaluation": {"text": eval_name, "source": eval_source.description, "block_size": block_size,
                       "tokens_scored": min(eval_source.n_tokens, eval_max_tokens or eval_source.n_tokens) // block_size * block_size,
                       "perplexity_before": round(ppl_before, 3), "perplexity_after": round(ppl_after, 3)},
        "sample": {"prompt": sample_prompt, "continuation": sample, "decoding": "top-k 40, seed %d" % seed},
        "saved_dtype": save_dtype,
        "saved_config_dropout": 0.1,
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "python": platform.python_version()},
    }
    atomic_write_text(out / "training_info.json", json.dumps(info, indent=2) + "\n")
    return PretrainResult(out, n_train, ppl_before, ppl_after, sample, seconds, losses, info)


class _NullProgress:
    def __enter__(self) -> "_NullProgress":
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def add_task(self, *args: Any, **kwargs: Any) -> int:
        return 0

    def update(self, *args: Any, **kwargs: Any) -> None:
        return None


def _make_progress(enabled: bool) -> Any:
    if not enabled:
        return _NullProgress()
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.3f}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
