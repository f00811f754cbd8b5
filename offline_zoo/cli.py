"""Command-line entry points: ``zoo-data`` (datasets), ``zoo-bench`` (benchmarks), ``zoo-lm`` (LMs).

``zoo-data``::

    zoo-data list                                   # tasks with a generated source, policies, datasets
    zoo-data generate hopper-medium                 # 1M transitions with the shipped policy
    zoo-data generate reacher2d-medium --episodes 50 --seed 0 --root ./datasets
    zoo-data train-policy hopper-medium --steps 300000 --seed 0   # retrain a behaviour policy

Generated datasets go to ``$OFFLINE_ZOO_HOME/datasets`` (or ``--root``) in Minari's format and are
loaded with ``load_dataset(task, source="generated")``.
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["data_main", "bench_main", "lm_main"]


def _data_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zoo-data",
        description="Generate D4RL-style offline datasets locally (Minari format) and manage behaviour policies.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    g = sub.add_parser("generate", help="roll a behaviour policy out and write a Minari dataset")
    g.add_argument("task", metavar="TASK", help="task with a 'generated' source, e.g. hopper-medium, reacher2d-medium")
    size = g.add_mutually_exclusive_group()
    size.add_argument("--transitions", type=int, default=None, metavar="N", help="number of transitions (default 1M for MuJoCo)")
    size.add_argument("--episodes", type=int, default=None, metavar="N", help="number of whole episodes (default 50 for reacher2d)")
    g.add_argument("--seed", type=int, default=0, metavar="S", help="rollout seed (same seed, identical data); default 0")
    g.add_argument("--root", default=None, metavar="DIR", help="datasets directory (default $OFFLINE_ZOO_HOME/datasets)")
    g.add_argument("--policy-dir", default=None, metavar="DIR", help="directory with <domain>.json/.pt (default: the shipped policies)")
    g.add_argument("--noise", type=float, default=1.0, help="scale of the policy's stochasticity (1 = as trained, 0 = deterministic)")
    g.add_argument("--min-return", default="auto", help="keep episodes with return above this ('auto': 20 for reacher2d, none otherwise; 'none')")
    g.add_argument("--overwrite", action="store_true", help="replace an existing generated dataset")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")

    t = sub.add_parser("train-policy", help="train (MuJoCo: d3rlpy SAC, early-stopped) or calibrate (reacher2d) a behaviour policy")
    t.add_argument("task", metavar="TASK")
    t.add_argument("--steps", type=int, default=300_000, metavar="N", help="maximum online SAC steps (default 300000)")
    t.add_argument("--seed", type=int, default=0, metavar="S")
    t.add_argument("--target", type=float, default=None, help="target normalized score (default: the D4RL medium level)")
    t.add_argument("--out", default=None, metavar="DIR", help="where to write <domain>.pt/.json (default: the package's assets/policies)")
    t.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    t.add_argument("--max-minutes", type=float, default=None, help="wall-clock budget of the training (default: none)")

    sub.add_parser("list", help="tasks that can be generated, shipped policies and generated datasets")
    return p


def data_main(argv: list[str] | None = None) -> int:
    """``zoo-data``: generate datasets, train behaviour policies, list what exists.

    Examples:
        A small Reacher2d dataset (the default is the paper's 50 episodes), in ``./datasets``:

        >>> data_main(["generate", "reacher2d-medium", "--episodes", "2", "--root", "datasets",
        ...            "--no-progress"])  # doctest: +ELLIPSIS
        wrote datasets/offline-zoo/reacher2d-medium-v0: 2 episodes, 200 transitions (...), return ...
        load it with: load_dataset('reacher2d-medium', source='generated')
        0
        >>> data_main(["list"])          # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        task                    behaviour policy              generated dataset
        halfcheetah-medium      40.8 normalized               ...
        hopper-medium           47.8 normalized               ...
        reacher2d-medium        24.1 normalized               ...
        walker2d-medium         65.9 normalized               ...
        0

        Errors go to stderr, with exit status 2:

        >>> data_main(["generate", "hopper-medium-replay"])   # "cannot generate 'hopper-medium-replay': ..."
        2
    """
    args = _data_parser().parse_args(argv)
    from .data.dataset import DatasetError
    from .data.generation import GenerationError
    from .data.loaders import DataUnavailableError

    try:
        if args.command == "generate":
            return _generate(args)
        if args.command == "train-policy":
            return _train(args)
        return _list()
    except (GenerationError, DataUnavailableError, DatasetError, KeyError, ValueError) as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        print(f"zoo-data: error: {msg}", file=sys.stderr)
        return 2
    except OSError as e:  # an unwritable --root, a full disk: the path and the reason, no traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"zoo-data: error: {e.strerror or e}{where}; choose another --root or free space", file=sys.stderr)
        return 2


def _generate(args) -> int:
    from .data.generation import generate_dataset, generated_dataset_path, generation_metadata

    mr = args.min_return
    min_return = "auto" if mr == "auto" else (None if str(mr).lower() == "none" else float(mr))
    ds = generate_dataset(
        args.task,
        n_transitions=args.transitions,
        n_episodes=args.episodes,
        seed=args.seed,
        root=args.root,
        policy=args.policy_dir,
        noise=args.noise,
        min_return=min_return,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
    )
    st = generation_metadata(args.task, args.root)["statistics"]
    print(
        f"wrote {generated_dataset_path(args.task, args.root)}: {st['episodes']} episodes, {st['transitions']} transitions "
        f"({st['terminals']} terminals, {st['timeouts']} timeouts), return {st['mean_return']:.1f} "
        f"[{st['min_return']:.1f}, {st['max_return']:.1f}], normalized {st['normalized_mean']:.1f}"
    )
    print(f"load it with: load_dataset({ds.name!r}, source='generated')")
    return 0


def _train(args) -> int:
    from .data.generation import calibrate_reacher2d_policy, train_behaviour_policy
    from .tasks import get_task

    task = get_task(args.task)
    if task.family == "reacher2d":
        pol = calibrate_reacher2d_policy(
            target_normalized=36.0 if args.target is None else args.target, seed=args.seed, directory=args.out
        )
    else:
        pol = train_behaviour_policy(
            task,
            steps=args.steps,
            seed=args.seed,
            target_normalized=args.target,
            directory=args.out,
            threads=args.threads,
            max_seconds=None if args.max_minutes is None else 60.0 * args.max_minutes,
        )
    print(f"{pol.domain}: normalized {pol.info['normalized']:.1f} (mean return {pol.info['mean_return']:.1f})")
    return 0


def _list() -> int:
    from .data.generation import generatable_tasks, generated_dataset_path, shipped_policies
    from .tasks import get_task

    policies = shipped_policies()
    print("task                    behaviour policy              generated dataset")
    for name in generatable_tasks():
        task = get_task(name)
        rec = policies.get(task.domain)
        pol = f"{rec['normalized']:.1f} normalized" if rec else "- (zoo-data train-policy)"
        path = generated_dataset_path(task)
        print(f"{name:<23} {pol:<29} {path if (path / 'data').is_dir() else '-'}")
    return 0


def bench_main(argv: list[str] | None = None) -> int:
    """``zoo-bench``: run a benchmark suite (a table of the LaMo paper) and report it.

    ``zoo-bench --suite NAME [--out DIR] [--resume] [--workers N] [--executor local|ray] [--algos ...]
    [--tasks ...] [--seeds ...] [--source SRC] [--steps N | --scale F] [--dry-run]``;
    ``zoo-bench report DIR [--markdown FILE] [--csv FILE] [--plots DIR]``; ``zoo-bench list``.
    The implementation lives in :mod:`offline_zoo.bench.command`; returns the exit status.

    Examples:
        The runs of Table 1, listed without running anything (a table of 189 lines, shortened here):

        Before the last lines it says which datasets are here and how to get the missing ones
        (here, offline, Minari's kitchen data is not):

        >>> bench_main(["--suite", "sparse", "--dry-run"])  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        suite sparse: Table 1: sparse-reward tasks (Kitchen, Reacher2d)
        ...
        data on disk:
          kitchen-partial (minari): MISSING: Minari dataset 'D4RL/kitchen/partial-v2' ...
        189 runs (9 task/ratio rows x 7 algorithms x 3 seeds; rows may restrict algorithms); 0 already finished in runs/sparse
        2 dataset(s) missing (kitchen-partial (minari), kitchen-complete (minari)): their runs would fail; get the data as said above first
        0
        >>> bench_main(["list"])         # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        ablation-embedding      Figure 4: MLP embeddings vs linear projections  [...ablation-embedding.yaml]
        ...
        smoke                   Smoke suite (offline, tiny models, generated data)  [...smoke.yaml]
        sparse                  Table 1: sparse-reward tasks (Kitchen, Reacher2d)  [...sparse.yaml]
        0
    """
    from .bench.command import main

    return main(argv)


def lm_main(argv: list[str] | None = None) -> int:
    """``zoo-lm``: pre-train a GPT-2-architecture LM (Wiki-RL's ChibiT recipe, LaMo's ablations).

    ``zoo-lm pretrain CORPUS OUT [--layers 3 --dim 128 --heads 1 --steps 1000 --tokenizer gpt2]
    [--shuffle-tokens] [--early-stop N] [--eval CORPUS]`` saves a directory that ``lm=OUT`` loads;
    ``zoo-lm train-tokenizer CORPUS OUT [--vocab-size 8192]`` trains a BPE tokenizer for it;
    ``zoo-lm train-embedded ...`` retrains the shipped embedded LM.

    Examples:
        Three steps of a one-layer, 8-dim LM on a small text file (the bar, the perplexities and
        the sample vary):

        >>> from pathlib import Path
        >>> _ = Path("corpus.txt").write_text("The cat sat on the mat. " * 100)
        >>> lm_main(["pretrain", "corpus.txt", "tiny-lm", "--layers", "1", "--dim", "8", "--heads", "1",
        ...          "--steps", "3", "--block-size", "16", "--batch-size", "2", "--tokenizer", "embedded"])
        ... # doctest: +ELLIPSIS
        pre-training LM ...
        saved tiny-lm: perplexity ... -> ...
        sample: ...
        0
        >>> from offline_zoo.lm import load_language_model
        >>> load_language_model("tiny-lm").config.n_embd
        8

        Bad arguments, a missing corpus file or an unavailable tokenizer: a message on stderr, exit
        status 2:

        >>> lm_main(["pretrain", "missing.txt", "tiny-lm", "--tokenizer", "embedded"])
        2
    """
    parser = argparse.ArgumentParser(
        prog="zoo-lm",
        description="Pre-train GPT-2-architecture language models (Wiki-RL's ChibiT recipe, LaMo's ablations) "
        "and retrain the embedded one.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "pretrain",
        help="pre-train an LM on text files and save it",
        description="Pre-train a GPT-2-architecture LM from random init (next-token loss, AdamW, linear warmup "
        "then cosine decay) and save it with its tokenizer and training_info.json. The defaults are "
        "Wiki-RL's ChibiT architecture (3 layers, 128 dim, 1 head) and learning rate.",
    )
    p.add_argument("corpus", help="training text: a file, a directory (its .txt/.raw/.tokens files), or 'embedded' (the WikiText-2 excerpt shipped with the package)")
    p.add_argument("out", help="output directory; lm=OUT and load_language_model(OUT) load it")
    p.add_argument("--layers", type=int, default=3, metavar="N", help="transformer blocks (default 3, ChibiT)")
    p.add_argument("--dim", type=int, default=128, metavar="D", help="hidden size n_embd (default 128, ChibiT)")
    p.add_argument("--heads", type=int, default=1, metavar="H", help="attention heads, must divide --dim (default 1, ChibiT)")
    p.add_argument("--steps", type=int, default=1000, metavar="N", help="planned gradient steps, which the learning-rate schedule spans (default 1000)")
    p.add_argument("--block-size", type=int, default=128, metavar="T", help="tokens per training sequence (default 128)")
    p.add_argument("--batch-size", type=int, default=8, metavar="B", help="sequences per step (default 8)")
    p.add_argument("--lr", type=float, default=3e-4, help="peak learning rate (default 3e-4, ChibiT)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="seeds the initialisation, the block sampling and --shuffle-tokens (default 0)")
    p.add_argument("--tokenizer", default="gpt2", help="GPT-2 BPE tokenizer: a directory with vocab.json + merges.txt, 'embedded' (GPT-2's, shipped), or a hub name (default gpt2)")
    p.add_argument("--shuffle-tokens", action="store_true", help="train on a seeded random permutation of the corpus tokens (LaMo's random-corpus ablation)")
    p.add_argument("--early-stop", type=int, default=None, metavar="N", help="stop after N of the --steps planned steps, keeping their schedule (LaMo's early-stopped ablation)")
    p.add_argument("--eval", default=None, metavar="CORPUS", help="held-out text (file or directory) for the perplexities before / after (default: the training corpus)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N, or auto (a GPU when torch sees one)")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast (worth it on a GPU)")
    t = sub.add_parser(
        "train-tokenizer",
        help="train a byte-level BPE tokenizer on text files",
        description="Train a byte-level BPE tokenizer (GPT-2's scheme: its pre-tokenization, the 256 bytes, <|endoftext|>) "
        "on a corpus and save vocab.json + merges.txt + tokenizer_config.json; pass the directory to "
        "'zoo-lm pretrain --tokenizer'.",
    )
    t.add_argument("corpus", help="training text: a file, a directory (its .txt/.raw/.tokens files), or 'embedded'")
    t.add_argument("out", help="output directory")
    t.add_argument("--vocab-size", type=int, default=8192, metavar="N", help="vocabulary size, bytes and <|endoftext|> included (default 8192)")
    t.add_argument("--min-frequency", type=int, default=2, metavar="N", help="learn only merges seen at least N times (default 2)")
    sub.add_parser("train-embedded", help="retrain the shipped embedded LM", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "train-embedded":
        from .lm.train_embedded import main

        return main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    from .lm import LanguageModelNotAvailableError, pretrain_language_model, train_tokenizer

    if args.command == "train-tokenizer":
        try:
            tok = train_tokenizer(args.corpus, args.out, vocab_size=args.vocab_size, min_frequency=args.min_frequency)
        except (FileNotFoundError, ValueError) as e:
            print(f"zoo-lm: error: {e}", file=sys.stderr)
            return 2
        print(f"saved {args.out}: a byte-level BPE tokenizer of {len(tok)} tokens; use it with --tokenizer {args.out}")
        return 0
    try:
        result = pretrain_language_model(
            args.corpus, args.out, n_layer=args.layers, n_embd=args.dim, n_head=args.heads, steps=args.steps,
            block_size=args.block_size, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
            tokenizer=args.tokenizer, shuffle_tokens=args.shuffle_tokens, early_stop_steps=args.early_stop,
            eval_corpus=args.eval, device=args.device, bf16=args.bf16,
        )
    except (LanguageModelNotAvailableError, FileNotFoundError, ValueError) as e:
        print(f"zoo-lm: error: {e}", file=sys.stderr)
        return 2
    print(f"saved {result.out_dir}: perplexity {result.perplexity_before:.1f} -> {result.perplexity_after:.1f}")
    print(f"sample: {result.sample}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(data_main())
