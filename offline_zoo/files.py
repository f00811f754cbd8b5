"""Atomic file writes: the one helper every writer of offline-zoo goes through.

A file is written to a hidden temporary file beside its target (``.<name>.<pid>.<random>.tmp``),
flushed and fsynced, moved into place with ``os.replace`` and the directory fsynced, so a reader
sees either the old or the new content whatever moment the process dies at, and the new content
survives a power cut once the call returns. On an exception the temporary file is removed; after a
``kill -9`` it cannot be, so the next write of the same target removes the temporary files that
dead processes left behind. Files get the normal ``0666 & ~umask`` mode (``mkstemp`` makes 0600).

Examples:
    >>> p = atomic_write_bytes("out/blob.bin", b"\\x00\\x01")
    >>> p.read_bytes(), sorted(f.name for f in p.parent.iterdir())    # no temporary file left
    (b'\\x00\\x01', ['blob.bin'])
    >>> with atomic_writer("out/model.zip") as f:          # any writer that wants a file object
    ...     _ = f.write(b"PK")
    >>> atomic_write_text("out/notes.md", "λ = 0.1\\n").read_text(encoding="utf-8")
    'λ = 0.1\\n'
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

__all__ = ["atomic_writer", "atomic_write_bytes", "atomic_write_text"]


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_MODE = 0o666 & ~_umask()


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # somebody else's live process
        return True
    return True


def _remove_stale_temporaries(path: Path) -> None:
    """Remove ``.<name>.<pid>.*.tmp`` files of ``path`` whose writer process is gone."""
    pattern = re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[^/]*\.tmp$")
    try:
        entries = list(path.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        m = pattern.match(entry.name)
        if m and not _pid_alive(int(m.group(1))):
            with contextlib.suppress(OSError):
                entry.unlink()


def _fsync_directory(directory: Path) -> None:
    # makes the rename itself durable; not every platform/filesystem can open a directory
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary file object whose content replaces ``path`` atomically when the block ends.

    Missing parent directories are created. If the block raises, ``path`` is left as it was and
    no temporary file remains. An ``OSError`` names ``path`` (not the temporary file).

    Examples:
        >>> with atomic_writer("out/weights.bin") as f:
        ...     _ = f.write(b"\\x01\\x02")
        >>> Path("out/weights.bin").read_bytes()
        b'\\x01\\x02'
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_dir():
            raise IsADirectoryError(21, "Is a directory")
        _remove_stale_temporaries(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    except OSError as e:
        raise type(e)(e.errno, f"cannot write {str(path)!r}: {e.strerror or e}") from None
    try:
        os.fchmod(fd, _MODE)
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(e, OSError) and e.filename == tmp:
            raise type(e)(e.errno, f"cannot write {str(path)!r}: {e.strerror or e}") from None
        raise
    _fsync_directory(path.parent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a ``Path``.

    Examples:
        >>> atomic_write_bytes("out/a/b.bin", b"abc").read_bytes()   # parents are created
        b'abc'
    """
    with atomic_writer(path) as f:
        f.write(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text (UTF-8) to ``path`` atomically; returns ``path`` as a ``Path``.

    Examples:
        >>> atomic_write_text("out/run.json", '{"seed": 0}').name
        'run.json'
    """
    return atomic_write_bytes(path, text.encode("utf-8"))
