"""Replace one generated, marker-delimited section of a Markdown file (benchmarks/README.md)."""

from __future__ import annotations

from pathlib import Path


def write_section(path: Path, block: str, start: str, end: str) -> None:
    """Put ``block`` (which starts with ``start`` and ends with ``end``) in place of the file's
    section between those markers, or append it when the file has none (a new file gets a title)."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        _, tail = rest.split(end, 1)
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)
