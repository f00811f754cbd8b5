"""Retrain the embedded LM, ChibiT (``offline_zoo/assets/lm/chibit-wikitext2``), reproducibly.

The embedded LM has the architecture of Wiki-RL's ChibiT: GPT-2 with 3 layers, 128 dim and 1 head,
the body of the paper's Decision Transformer, with GPT-2's vocabulary and tokenizer. It ships inside
the package (fp16 weights, 14 MB + 1.5 MB of tokenizer files), so that everything that needs "a
pre-trained GPT-2" (LaMo, Wiki-RL, the language losses) runs on a machine with no network, and
LaMo or Wiki-RL on it against DT compares the same network with and without language
pre-training. It is pre-trained on WikiText-2 only (1.6M tokens seen; ChibiT saw Wikipedia):
a CPU-scale stand-in, not a substitute for GPT-2's 124M parameters.

Recipe (:data:`EMBEDDED_RECIPE`): 3 layers, 128 dim, 1 head, 1024 positions; WikiText-2 *valid*
split for training, *test* split held out; 800 steps of 8 x 256 tokens, AdamW lr 2e-3 with 80
warmup steps and cosine decay; 2 CPU threads, seed 0 (24 minutes on 2 cores). Held-out
perplexity 209.3 (50500 at initialisation); its ``training_info.json`` has the curve and a sample.

Usage::

    python -m offline_zoo.lm.train_embedded \\
        --train-file wikitext-2/valid.txt --eval-file wikitext-2/test.txt \\
        --tokenizer gpt2-tokenizer-dir            # dir with vocab.json + merges.txt, or "gpt2"
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Sequence

import torch

from offline_zoo.files import atomic_write_text
from offline_zoo.lm.loading import EMBEDDED_LM
from offline_zoo.lm.pretrain import PretrainResult, pretrain_language_model

__all__ = ["EMBEDDED_RECIPE", "train_embedded_lm", "main"]

EMBEDDED_RECIPE: dict = {
    "n_layer": 3,
    "n_embd": 128,
    "n_head": 1,
    "steps": 800,
    "block_size": 256,
    "batch_size": 8,
    "lr": 2e-3,
    "seed": 0,
    "warmup_steps": 80,
    "min_lr_ratio": 0.1,
    "weight_decay": 0.01,
    "dropout": 0.0,
    "n_positions": 1024,
    "save_dtype": "float16",
    "num_threads": 2,
    "eval_max_tokens": None,
}
"""Hyper-parameters of the shipped embedded LM (see the module docstring).

Examples:
    >>> EMBEDDED_RECIPE["n_embd"], EMBEDDED_RECIPE["n_layer"], EMBEDDED_RECIPE["n_head"]
    (128, 3, 1)
"""


def train_embedded_lm(
    train_file: str | Path,
    eval_file: str | Path,
    tokenizer: str | Path = "gpt2",
    out_dir: str | Path = EMBEDDED_LM,
    progress_bar: bool = True,
    **overrides,
) -> PretrainResult:
    """Train the embedded LM with :data:`EMBEDDED_RECIPE` (``overrides`` change single entries).

    Examples:
        The shipped LM (800 steps, about 24 minutes on two CPU threads; WikiText-2 is not shipped):

        >>> res = train_embedded_lm("wikitext-2/valid.txt", "wikitext-2/test.txt", "gpt2")  # doctest: +SKIP

        Two steps of the recipe, on the shipped corpus excerpt, into a directory of your own
        (``out_dir`` defaults to the package's copy):

        >>> from offline_zoo.lm.corpus import embedded_corpus
        >>> _ = Path("held_out.txt").write_text("The game was released in Japan .\\n" * 40)
        >>> res = train_embedded_lm(embedded_corpus(), "held_out.txt", "embedded", out_dir="tiny-lm",
        ...                         progress_bar=False, steps=2, block_size=32, batch_size=2, eval_max_tokens=256)
        >>> res.steps, res.info["name"], res.info["recipe"]["n_embd"]
        (2, 'tiny-lm', 128)
    """
    unknown = set(overrides) - set(EMBEDDED_RECIPE)
    if unknown:
        raise ValueError(f"unknown recipe keys {sorted(unknown)}; allowed: {sorted(EMBEDDED_RECIPE)}")
    recipe = {**EMBEDDED_RECIPE, **overrides}
    result = pretrain_language_model(
        corpus=str(train_file),
        out_dir=out_dir,
        tokenizer=str(tokenizer),
        eval_corpus=str(eval_file),
        progress_bar=progress_bar,
        **recipe,
    )
    info_path = Path(out_dir) / "training_info.json"
    info = json.loads(info_path.read_text())
    info["name"] = Path(out_dir).name
    info["recipe"] = recipe
    info["retrain_command"] = (
        "python -m offline_zoo.lm.train_embedded --train-file <wikitext-2>/valid.txt "
        "--eval-file <wikitext-2>/test.txt --tokenizer <dir with GPT-2 vocab.json + merges.txt>"
    )
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    result.info = info
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m offline_zoo.lm.train_embedded --help``).

    Examples:
        Retrain the shipped LM in place (the full recipe: about 24 minutes on two CPU threads;
        WikiText-2 is not shipped):

        >>> main(["--train-file", "wikitext-2/valid.txt", "--eval-file", "wikitext-2/test.txt",
        ...       "--tokenizer", "gpt2"])  # doctest: +SKIP
        saved .../chibit-wikitext2: perplexity 50500.3 -> 209.3 in 1459 s; sample: '...'
        0

        Both text files are required (argparse exits with status 2 and a usage message):

        >>> main(["--steps", "2"])
        Traceback (most recent call last):
        ...
        SystemExit: 2

        Use `train_embedded_lm` from Python for a quick trial with other settings.
    """
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--train-file", required=True, metavar="FILE", help="training text (WikiText-2 valid split)")
    parser.add_argument("--eval-file", required=True, metavar="FILE", help="held-out text (WikiText-2 test split)")
    parser.add_argument("--tokenizer", default="gpt2", help="GPT-2 tokenizer: directory or hub name")
    parser.add_argument("--out", default=EMBEDDED_LM, metavar="DIR", help="output directory (default: the package asset, overwritten)")
    parser.add_argument("--steps", type=int, default=EMBEDDED_RECIPE["steps"], metavar="N",
                        help=f"gradient steps (default {EMBEDDED_RECIPE['steps']}, the recipe)")
    parser.add_argument("--threads", type=int, default=EMBEDDED_RECIPE["num_threads"], metavar="N",
                        help=f"torch CPU threads (default {EMBEDDED_RECIPE['num_threads']}, as the shipped LM was trained)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    res = train_embedded_lm(
        args.train_file, args.eval_file, args.tokenizer, args.out, progress_bar=not args.no_progress,
        steps=args.steps, num_threads=args.threads,
    )
    print(
        f"saved {res.out_dir}: perplexity {res.perplexity_before:.1f} -> {res.perplexity_after:.1f} "
        f"in {res.seconds:.0f} s; sample: {res.sample!r}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
