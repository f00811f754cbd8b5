"""mkdocs hook: render the command-line help of offline-zoo's commands into the docs.

A page line ``<!-- cli: zoo-data generate --help -->`` becomes a code block with exactly what that
command prints, so the CLI reference cannot drift from the parsers.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

_MARKER = re.compile(r"^<!-- cli: (?P<command>[^>]+?) -->$", re.MULTILINE)


def _entry_points():
    from offline_zoo.bench.command import main as bench_main
    from offline_zoo.cli import data_main, lm_main

    return {"zoo-bench": bench_main, "zoo-data": data_main, "zoo-lm": lm_main}


def command_help(command: str) -> str:
    """What ``command`` (an offline-zoo console script and its arguments) prints."""
    prog, *argv = command.split()
    entry = _entry_points().get(prog)
    if entry is None:
        raise ValueError(f"unknown command {prog!r} in a cli marker; known: {sorted(_entry_points())}")
    out = io.StringIO()
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal width: make the page stable
    try:
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            entry(argv)
    finally:
        if columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = columns
    text = out.getvalue().strip()
    if not text:
        raise ValueError(f"cli marker {command!r} printed nothing")
    return text


def on_page_markdown(markdown: str, **kwargs) -> str:
    return _MARKER.sub(lambda m: f"```text\n$ {m['command']}\n{command_help(m['command'])}\n```", markdown)
