"""mkdocs hook: render what the code knows into the docs, so the pages cannot drift from it.

- A page line ``<!-- cli: zoo-data generate --help -->`` becomes a code block with exactly what
  that command prints (the parsers' help).
- A page line ``<!-- config: dt -->`` becomes the table of the algorithm's config fields: the
  dataclass default, the value of the ``default`` section of ``configs/<algo>.yaml`` and every
  family / domain / task section that sets the field, and the meaning from the ``Attributes:``
  of the config classes' docstrings.
"""

from __future__ import annotations

import contextlib
import io
import os
import re

_MARKER = re.compile(r"^<!-- cli: (?P<command>[^>]+?) -->$", re.MULTILINE)
_CONFIG_MARKER = re.compile(r"^<!-- config: (?P<algo>[^>]+?) -->$", re.MULTILINE)
_ATTRIBUTE = re.compile(r"^ {4}(?P<name>\w+):\s*(?P<text>.*)$")


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


def _attribute_docs(config_class) -> dict[str, str]:
    """``{field: meaning}`` from the ``Attributes:`` sections of a config class and its bases."""
    import inspect

    meanings: dict[str, str] = {}
    for klass in reversed(config_class.__mro__):
        doc = inspect.getdoc(klass) if "__doc__" in vars(klass) else None
        if not doc or "Attributes:" not in doc:
            continue
        current = None
        for line in doc.split("Attributes:", 1)[1].splitlines()[1:]:
            if line and not line.startswith(" "):
                break  # the next section (Examples:)
            m = _ATTRIBUTE.match(line)
            if m:
                current = m["name"]
                meanings[current] = m["text"].strip()
            elif current and line.strip():
                meanings[current] += " " + line.strip()
    return meanings


def _cell(value) -> str:
    text = "None" if value is None else repr(tuple(value) if isinstance(value, list) else value)
    return f"`{text}`".replace("|", "\\|")


def config_table(algo: str) -> str:
    """The Markdown table of an algorithm's config fields (see the module docstring)."""
    import dataclasses

    import yaml

    from offline_zoo.algos import get_algo
    from offline_zoo.algos.config import _yaml_file

    klass = get_algo(algo)
    file = _yaml_file(klass.name)
    sections = (yaml.safe_load(file.read_text()) or {}) if file is not None else {}
    meanings = _attribute_docs(klass.config_class)
    rows = ["| field | default | per-task values | meaning |", "| --- | --- | --- | --- |"]
    for f in dataclasses.fields(klass.config_class):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        default = sections.get("default", {}).get(f.name, default)
        per_task = [f"{key}: {_cell(values[f.name])}" for key, values in sections.items()
                    if key != "default" and isinstance(values, dict) and f.name in values]
        rows.append(f"| `{f.name}` | {_cell(default)} | {', '.join(per_task)} | {meanings.get(f.name, '').replace('|', '/')} |")
    where = f"`offline_zoo/configs/{file.name}`" if file is not None else "no per-task file"
    return (f"Fields of `{klass.config_class.__name__}` (per-task values: {where}, sections merged as "
            "default < family < domain < task; keyword arguments win over all of them):\n\n" + "\n".join(rows))


def on_page_markdown(markdown: str, **kwargs) -> str:
    markdown = _MARKER.sub(lambda m: f"```text\n$ {m['command']}\n{command_help(m['command'])}\n```", markdown)
    return _CONFIG_MARKER.sub(lambda m: config_table(m["algo"].strip()), markdown)
