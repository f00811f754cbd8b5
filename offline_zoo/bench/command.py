"""The ``zoo-bench`` command line (``offline_zoo.cli.bench_main`` calls :func:`main`).

::

    zoo-bench --suite NAME [--out DIR] [--resume] [--workers N] [--executor local|ray]
              [--algos A ...] [--tasks T ...] [--seeds S ...] [--ratios R ...] [--source SRC]
              [--config ALGO.FIELD=VALUE ...] [--steps N | --scale F] [--device DEV] [--logger tensorboard|wandb]
              [--dry-run] [--no-progress]
    zoo-bench report DIR [DIR ...] [--markdown FILE] [--csv FILE] [--plots DIR] [--reference FILE]
                     [--bootstrap-reps N] [--bootstrap-seed SEED]
    zoo-bench list

Exit status: 0 all runs finished, 1 some runs failed, 2 bad input, 130 interrupted (resume with
``--resume``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["main", "run_parser", "report_parser"]

EPILOG = """\
examples:
  zoo-bench --suite smoke --workers 2                      # the offline smoke suite, a few minutes
  zoo-bench --suite sparse --dry-run                       # list Table 1's 189 runs
  zoo-bench --suite mujoco --scale 0.01 --workers 8        # Table 3 at 1% of the budget
  zoo-bench --suite sparse --resume --out runs/sparse      # continue a killed suite
  zoo-bench --suite sparse --tasks reacher2d --config LaMo.lm=/models/gpt2   # a local GPT-2 copy
  zoo-bench --suite atari --executor ray --ray-address auto
  zoo-bench --suite smoke --logger tensorboard             # also runs/smoke/runs/*/tensorboard/ (tensorboard --logdir runs/smoke/runs)
  zoo-bench report runs/smoke --markdown benchmarks/README.md --csv smoke.csv --plots plots/
  zoo-bench --suite mine.yaml --import-path .              # a suite whose module:Class lives in ./my_algos.py

security: a suite file is code. Its 'module:Class' algorithms and 'imports:' modules are imported,
and so run, in this process and in every worker: only run suite files you trust. Modules are found
on sys.path; the current directory is searched only when asked (--import-path .).
"""


def run_parser() -> argparse.ArgumentParser:
    """The parser of ``zoo-bench [run] --suite NAME ...`` (running a suite).

    Examples:
        >>> args = run_parser().parse_args(["--suite", "sparse", "--scale", "0.01", "--workers", "4"])
        >>> args.suite, args.scale, args.workers, args.executor, args.resume, args.logger
        ('sparse', 0.01, 4, 'local', False, [])
        >>> run_parser().parse_args(["--logger", "tensorboard"]).logger
        ['tensorboard']
    """
    p = argparse.ArgumentParser(
        prog="zoo-bench",
        description="Run a benchmark suite (a table of the LaMo paper) with the paper's protocol; resumable and parallel. "
        "Subcommands: 'zoo-bench report DIR' renders results, 'zoo-bench list' lists suites.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--suite", default="smoke", metavar="NAME", help="suite name (benchmarks/suites/NAME.yaml) or a YAML path; default: smoke")
    p.add_argument("--out", default=None, metavar="DIR", help="output directory (default: runs/<suite>)")
    p.add_argument("--resume", action="store_true", help="continue the suite in --out: finished runs are kept, the others run (from their last checkpoint)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="runs in parallel on this machine, one process each (0: in this process); default: one per usable CPU core (one per GPU on GPUs)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="local processes (default) or Ray tasks")
    p.add_argument("--ray-address", default=None, metavar="ADDR", help="Ray cluster to use (default: $RAY_ADDRESS, else a local Ray instance)")
    p.add_argument("--cpus-per-run", type=float, default=None, metavar="N", help="Ray: CPUs per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=None, metavar="N", help="Ray: GPUs per run (default: 1 when the cluster has GPUs)")
    p.add_argument("--algos", nargs="+", default=None, metavar="ALGO", help="only these algorithms (labels or names: lamo dt td3+bc ...)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK", help="only these tasks (names, domains like hopper, or families like mujoco)")
    p.add_argument("--seeds", nargs="+", type=int, default=None, metavar="SEED", help="seeds to run (default: the suite's, 0 1 2)")
    p.add_argument("--ratios", nargs="+", type=float, default=None, metavar="RATIO", help="only rows with these sample ratios")
    p.add_argument(
        "--config", nargs="+", action="extend", default=None, metavar="ALGO.FIELD=VALUE",
        help="config overrides on top of the suite's, e.g. LaMo.lm=embedded '*.batch_size=32' (ALGO: a column label, or an algorithm "
        "name for all its columns, or '*' for all; VALUE is YAML; may be repeated)",
    )
    p.add_argument("--source", default=None, metavar="SRC", help="dataset source of every run: minari, d4rl, d4rl-atari, generated (default: the suite's / the task's)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, metavar="N", help="train every run N steps (evaluation interval and window scale along)")
    budget.add_argument("--scale", type=float, default=None, metavar="F", help="multiply steps, evaluation interval and window by F (e.g. 0.01)")
    p.add_argument("--device", default="auto", help="auto (default: GPU when present), cpu, cuda")
    p.add_argument(
        "--logger", action="append", default=[], choices=("csv", "jsonl", "tensorboard", "wandb"), metavar="NAME",
        help="also log each run's metrics to NAME: tensorboard (RUN_DIR/tensorboard/) or wandb (a W&B run; set WANDB_MODE=offline "
        "to stay offline); repeatable. Every run always writes RUN_DIR/metrics.csv and metrics.jsonl",
    )
    p.add_argument("--dry-run", action="store_true", help="list the runs (and which are finished) without running anything")
    p.add_argument("--no-progress", action="store_true", help="plain log lines instead of the live view")
    p.add_argument("--delete-checkpoints", action="store_true", help="delete each run's checkpoint.zip once it is finished (saves disk)")
    p.add_argument("--no-report", action="store_true", help="do not print the table at the end")
    p.add_argument("--list", action="store_true", help="list the available suites and exit")
    p.add_argument(
        "--import-path", action="append", default=[], metavar="DIR",
        help="also import a suite's modules (module:Class, imports:) from DIR (repeatable; '.' for the current directory). "
        "A suite's modules are code: only use directories you trust",
    )
    return p


def report_parser() -> argparse.ArgumentParser:
    """The parser of ``zoo-bench report DIR [DIR ...] ...`` (rendering results).

    Examples:
        >>> args = report_parser().parse_args(["runs/smoke", "runs/sparse", "--csv", "all.csv"])
        >>> args.dirs, args.csv, args.markdown, args.plots
        (['runs/smoke', 'runs/sparse'], 'all.csv', None, None)
    """
    p = argparse.ArgumentParser(
        prog="zoo-bench report",
        description="Render the results of zoo-bench output directories: the table beside the paper's values (terminal), "
        "Markdown, CSV and plots.",
    )
    p.add_argument("dirs", nargs="+", metavar="DIR", help="output directories of zoo-bench runs")
    p.add_argument("--markdown", default=None, metavar="FILE", help="write a Markdown document (e.g. benchmarks/README.md)")
    p.add_argument("--title", default="offline-zoo benchmarks", metavar="TEXT", help="the Markdown document's title (default: %(default)s)")
    p.add_argument("--csv", default=None, metavar="FILE", help="write every cell in long CSV format")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write PNG figures: score vs sample ratio, aggregate intervals, performance profiles, learning curves per task, per-target curves")
    p.add_argument("--reference", default=None, metavar="FILE", help="published values (default: benchmarks/paper_results.yaml)")
    p.add_argument("--no-reference", action="store_true", help="do not show the paper's values")
    p.add_argument("--target-selection", choices=("cell", "run"), default=None, help="best RTG target per cell (default) or per run")
    p.add_argument("--bootstrap-reps", type=int, default=None, metavar="N",
                   help="bootstrap replicates of the Aggregate table's 95%% intervals (default 2000)")
    p.add_argument("--bootstrap-seed", type=int, default=0, metavar="SEED", help="seed of the bootstrap (default 0)")
    p.add_argument("--quiet", action="store_true", help="no terminal table")
    return p


def _console():
    """A rich console; piped output (logs, CI) gets 200 columns instead of rich's 80, so tables stay readable."""
    from rich.console import Console

    # piped output (logs, CI) gets a wide table unless COLUMNS says otherwise; a terminal its own width
    width = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 200
    return Console(width=width)


def _err(msg: str) -> int:
    print(f"zoo-bench: error: {msg}", file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``zoo-bench``; returns the exit status.

    ``argv`` defaults to ``sys.argv[1:]``; ``report`` and ``list`` select the subcommands,
    anything else runs a suite (``run`` may be written explicitly).

    Examples:
        List the runs of the smoke suite (two of its algorithms) without running anything:

        >>> main(["--suite", "smoke", "--dry-run", "--algos", "DT", "CQL"])  # doctest: +ELLIPSIS, +NORMALIZE_WHITESPACE
        suite smoke: Smoke suite (offline, tiny models, generated data)
        ...
        4 runs (2 task/ratio rows x 2 algorithms x 1 seeds; rows may restrict algorithms); 0 already finished in runs/smoke
        0

        Bad input is reported on stderr with exit status 2:

        >>> main(["--suite", "smok"])       # "unknown suite 'smok'. Did you mean 'smoke', ...?"
        2

        Running it for real (a few minutes; see `offline_zoo.bench.runner.run_suite`):

        >>> main(["--suite", "smoke", "--workers", "2"])  # doctest: +SKIP
        0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    from .suites import SuiteError

    try:
        if argv and argv[0] == "report":
            return _report(report_parser().parse_args(argv[1:]), argv)
        if argv and argv[0] == "list":
            return _list()
        if argv and argv[0] == "run":
            argv = argv[1:]
        args = run_parser().parse_args(argv)
        if args.list:
            return _list()
        return _run(args, argv)
    except SuiteError as e:
        return _err(str(e))
    except OSError as e:  # a file that cannot be read or written: its name and the reason, no traceback
        return _err(f"{e.strerror or e}" + (f": {e.filename}" if e.filename else ""))
    except KeyboardInterrupt:
        print("zoo-bench: interrupted", file=sys.stderr)
        return 130


def _out_dir_problem(out: Path, create: bool) -> str | None:
    """Why ``out`` cannot hold a suite's runs (None when it can); creates it when ``create``."""
    if out.exists() and not out.is_dir():
        return "exists and is not a directory; choose a directory"
    if create:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            return f"cannot create it ({e.strerror or e})"
        probe = out
    else:  # a dry run creates nothing: the nearest existing ancestor must be a writable directory
        probe = next((p for p in (out, *out.parents) if p.exists()), Path("."))
        if not probe.is_dir():
            return f"{probe} is not a directory"
    if not os.access(probe, os.W_OK | os.X_OK):
        return f"{probe} is not writable"
    return None


def add_import_path(directory: str | os.PathLike) -> None:
    """Put ``directory`` first on ``sys.path`` here and in the workers (spawned processes and Ray
    workers started from this process inherit ``PYTHONPATH``)."""
    path = os.path.abspath(directory)
    if path not in sys.path:
        sys.path.insert(0, path)
    parts = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if path not in parts:
        os.environ["PYTHONPATH"] = os.pathsep.join([path, *parts])


def _list() -> int:
    import yaml

    from .suites import list_suites

    suites = list_suites()
    if not suites:
        print("no suites found (set $OFFLINE_ZOO_SUITES to a directory of suite YAML files)")
        return 0
    width = max(map(len, suites))
    for name, path in suites.items():
        try:
            title = (yaml.safe_load(path.read_text()) or {}).get("title", "")
        except Exception:  # noqa: BLE001
            title = "(unreadable)"
        print(f"{name:<{width}}  {title}  [{path}]")
    return 0


def _run(args, argv: Sequence[str]) -> int:
    from .suites import load_suite, parse_config_overrides

    if args.workers is not None and args.workers < 0:
        return _err(f"--workers {args.workers}: must be >= 0")
    if args.executor == "ray" and args.workers is not None:
        print("zoo-bench: note: --workers is ignored with --executor ray (Ray schedules the runs on the cluster's resources)", file=sys.stderr)
    for directory in args.import_path:
        if not Path(directory).is_dir():
            return _err(f"--import-path {directory}: not a directory")
        add_import_path(directory)
    from ..devices import check_device_name

    try:
        check_device_name(args.device)
    except ValueError as e:
        return _err(f"--device: {e}")
    import importlib.util

    for name in dict.fromkeys(args.logger):
        if name in ("tensorboard", "wandb") and importlib.util.find_spec(name) is None:
            return _err(f"--logger {name} needs the {name} package: pip install 'offline-zoo[{name}]'")
    suite = load_suite(args.suite)
    args.config = parse_config_overrides(args.config or [])
    out = Path(args.out) if args.out else Path("runs") / suite.name
    problem = _out_dir_problem(out, create=not args.dry_run)
    if problem:
        return _err(f"--out {out}: {problem}")
    if args.dry_run:
        return _dry_run(suite, out, args)
    from .executors import RayStartError, default_workers, make_executor
    from .report import build_report
    from .runner import run_suite

    if args.workers is None:
        args.workers = default_workers(args.device)
    from .runner import plan_runs, plan_summary

    for line in plan_summary(plan_runs(suite, args.algos, args.tasks, args.seeds, args.source, args.scale, args.steps, args.ratios, args.config)):
        print(f"zoo-bench: {line}")

    try:
        executor = make_executor(
            args.executor, workers=args.workers, device=args.device, keep_checkpoints=not args.delete_checkpoints,
            ray_address=args.ray_address, cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run, loggers=args.logger,
        )
    except (RuntimeError, ValueError) as e:
        return _err(str(e))
    try:
        res = run_suite(
            suite, out, resume=args.resume, executor=executor, algos=args.algos, tasks=args.tasks, seeds=args.seeds,
            ratios=args.ratios, source=args.source, scale=args.scale, steps=args.steps, config=args.config or None,
            progress=False if args.no_progress else None, argv=["zoo-bench", *argv],
        )
    except RayStartError as e:  # Ray could not start or be joined: say why, no traceback
        return _err(str(e))
    n_done = len(res.finished)
    if res.interrupted:
        print(f"zoo-bench: interrupted; {n_done} of {len(res.planned)} runs finished. Continue with: zoo-bench {' '.join(_resume_argv(argv, out))}", file=sys.stderr)
        return 130
    if not args.no_report and n_done:
        try:
            build_report(out).print_table(_console())
        except Exception as e:  # noqa: BLE001 - the runs are done; a report problem must not hide that
            print(f"zoo-bench: could not render the report: {e}", file=sys.stderr)
    failed = res.failed
    print(f"zoo-bench: {n_done} of {len(res.planned)} runs finished in {out}" + (f"; {len(failed)} failed (details in {out}/runs/*/run.json)" if failed else ""))
    for rid in failed[:20]:
        print(f"  failed {rid}: {res.outcomes[rid].get('error', '')}", file=sys.stderr)
    if n_done:
        print(f"zoo-bench: report with plots: zoo-bench report {out} --markdown {out / 'report.md'} --plots {out / 'plots'}")
    return 1 if failed else 0


def _resume_argv(argv: Sequence[str], out: Path) -> list[str]:
    args = [a for a in argv if a != "--resume"]
    if "--out" not in args:
        args += ["--out", str(out)]
    return args + ["--resume"]


def _dry_run(suite, out: Path, args) -> int:
    from rich.table import Table

    from .runner import check_algos, check_configs, data_status, plan_runs, plan_summary
    from .store import scan_runs

    specs = plan_runs(suite, args.algos, args.tasks, args.seeds, args.source, args.scale, args.steps, args.ratios, args.config)
    check_algos(specs)
    check_configs(specs)
    records = scan_runs(out)
    t = Table(title=f"suite {suite.name}: {suite.title}", show_lines=False)
    for col in ("#", "task", "ratio", "algo", "seed", "steps", "eval every", "window", "source", "config", "status"):
        t.add_column(col, justify="right" if col in ("#", "ratio", "seed", "steps", "eval every", "window") else "left")
    n_done = 0
    for i, s in enumerate(specs, 1):
        rec = records.get(s.run_id)
        status = "finished" if rec and rec.finished else (rec.status if rec else "new")
        n_done += status == "finished"
        cfg = ", ".join(f"{k}={v}" for k, v in s.config.items())
        t.add_row(str(i), s.task, f"{s.ratio:g}", s.label, str(s.seed), str(s.protocol.steps), str(s.protocol.eval_every), str(s.protocol.last_steps), s.source, cfg, status)
    console = _console()
    console.print(t)
    rows = len({(s.task, s.ratio) for s in specs})
    algos = len({s.label for s in specs})
    seeds = len({s.seed for s in specs})
    for line in plan_summary(specs):
        console.print(line, highlight=False, markup=False)
    status = data_status(suite, specs)
    console.print("data on disk:", highlight=False)
    for task, source, ok, text in status:
        console.print(f"  {task} ({source}): " + ("" if ok else "MISSING: ") + text, highlight=False, markup=False)
    console.print(f"{len(specs)} runs ({rows} task/ratio rows x {algos} algorithms x {seeds} seeds; rows may restrict algorithms); "
                  f"{n_done} already finished in {out}", highlight=False)
    missing = [f"{task} ({source})" for task, source, ok, _ in status if not ok]
    if missing:
        console.print(f"[bold]{len(missing)} dataset(s) missing ({', '.join(missing)}): their runs would fail; "
                      "get the data as said above first[/bold]", highlight=False)
    return 0


def _report(args, argv: Sequence[str]) -> int:
    from .report import build_report, keep_other_blocks, render_document
    from .store import atomic_write_text

    if args.bootstrap_reps is not None and args.bootstrap_reps < 1:
        return _err(f"--bootstrap-reps {args.bootstrap_reps}: give at least 1 replicate")
    if args.bootstrap_seed < 0:
        return _err(f"--bootstrap-seed {args.bootstrap_seed}: give a seed >= 0")
    boot = {"bootstrap_seed": args.bootstrap_seed, **({"bootstrap_reps": args.bootstrap_reps} if args.bootstrap_reps is not None else {})}
    reports = [
        build_report(d, reference=args.reference, target_selection=args.target_selection, use_reference=not args.no_reference, **boot)
        for d in args.dirs
    ]
    if not args.quiet:
        console = _console()
        for r in reports:
            r.print_table(console)
            agg = r.aggregate_rich_table()
            if agg is not None:
                console.print(agg)
    images: list[list[str]] = [[] for _ in reports]
    if args.plots:
        try:
            from .plots import plot_report
        except ImportError as e:
            return _err(f"--plots needs matplotlib: pip install matplotlib (or 'offline-zoo[bench]'): {e}")
        for i, r in enumerate(reports):
            target = Path(args.plots) / (r.suite.get("name", "suite") if len(reports) > 1 else "")
            for f in plot_report(r, target):
                print(f"wrote {f}")
                images[i].append(_rel(f, args.markdown))
    if args.markdown:
        document = render_document(reports, command=["zoo-bench", *argv], images=images, title=args.title)
        if Path(args.markdown).is_file():  # keep the sections other tools write there (perf.py's)
            document = keep_other_blocks(Path(args.markdown).read_text(), document)
        atomic_write_text(args.markdown, document)
        print(f"wrote {args.markdown}")
    if args.csv:
        text = reports[0].csv() + "".join(r.csv().split("\n", 1)[1] for r in reports[1:])
        atomic_write_text(args.csv, text)
        print(f"wrote {args.csv}")
    return 0


def _rel(path, markdown: str | None) -> str:
    """``path`` relative to the Markdown file's directory (for image links)."""
    if not markdown:
        return str(path)
    try:
        return os.path.relpath(Path(path).resolve(), Path(markdown).resolve().parent)
    except ValueError:
        return str(Path(path).resolve())
