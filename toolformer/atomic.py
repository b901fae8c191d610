"""Atomic files: a reader sees the old file (or folder) or the whole new one, never a part.

Every file the package writes in place (run state, chunks, manifests, results, index caches) goes
through here: the content is written to a temporary name in the same folder, then renamed over
the target with ``os.replace`` (atomic on POSIX and Windows within one file system). The
temporary name is ``.<name>.tmp-<pid>-<thread>``, so that processes and threads writing the same
file never share one, and a leftover from a killed process is recognisable (``.*.tmp-*``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
from pathlib import Path
from typing import Any, Callable, Iterable, Union

PathLike = Union[str, "os.PathLike[str]"]
TMP_GLOB = ".*.tmp-*"  # what a killed writer may leave behind


def temporary_path(path: PathLike) -> Path:
    """The temporary name :func:`atomic_write` writes ``path``'s new content to."""
    path = Path(path)
    return path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")


def fsync_dir(path: PathLike) -> None:
    """Flush a folder's entries (a rename survives a power cut); a no-op where unsupported."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(path: PathLike, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` to make the new content at a temporary path, then move it to ``path``.

    ``write`` may create a file or a folder (a saved index); an existing folder at ``path`` is
    replaced whole. When ``write`` raises, the temporary is removed and ``path`` is untouched.
    """
    path = Path(path)
    tmp = temporary_path(path)
    try:
        write(tmp)
        if tmp.is_dir() and path.is_dir():
            replace_dir(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    fsync_dir(path.parent)


def _write_synced(text_parts: Iterable[str]) -> Callable[[Path], None]:
    def write(tmp: Path) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            for part in text_parts:
                fh.write(part)
            fh.flush()
            os.fsync(fh.fileno())

    return write


def atomic_write_text(path: PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically, flushed to disk before the rename."""
    atomic_write(path, _write_synced([text]))


def atomic_write_json(path: PathLike, obj: Any) -> None:
    """Write ``obj`` as indented JSON (non-ASCII kept, unknown types as ``str``) atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_write_jsonl(path: PathLike, rows: Iterable[Any]) -> int:
    """Write one JSON object per line (non-ASCII kept) atomically; returns the number of rows."""
    count = [0]

    def lines() -> Iterable[str]:
        for row in rows:
            count[0] += 1
            yield json.dumps(row, ensure_ascii=False, default=str) + "\n"

    atomic_write(path, _write_synced(lines()))
    return count[0]


def replace_dir(tmp: PathLike, target: PathLike) -> None:
    """Move the finished folder ``tmp`` to ``target``, replacing an older one (the old folder
    is moved aside first, then deleted: ``os.replace`` cannot replace a non-empty folder)."""
    tmp, target = Path(tmp), Path(target)
    old = target.with_name(f".{target.name}.old-{os.getpid()}-{threading.get_ident()}")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    shutil.rmtree(old, ignore_errors=True)
