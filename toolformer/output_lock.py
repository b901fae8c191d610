"""One run per output, and no output that replaces an input.

Every command that writes an output folder or file (augment, finetune, selftrain, eval, export)
holds :func:`hold_output` while it writes: a second run on the same output is refused at once
with one line instead of interleaving its files with the first run's. The lock is an OS lock
(``filelock``), so a run killed with ``kill -9`` holds nothing: the next run takes the output
over (and resumes where the command supports it).

:func:`check_not_input` refuses an output that would replace one of the command's inputs
(``toolformer export RUN -o RUN/data.jsonl`` would truncate the data it reads).
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence, Union

from toolformer.errors import PathError, UserError, fields_in, path_error

PathLike = Union[str, "os.PathLike[str]"]
LOCK_NAME = ".toolformer.lock"


def lock_file(output: PathLike, is_file: bool = False) -> Path:
    """The lock file of ``output``: inside the folder, or beside the file
    (``.NAME.toolformer.lock``)."""
    p = Path(os.path.expanduser(str(output)))
    return p.parent / f".{p.name}{LOCK_NAME}" if is_file else p / LOCK_NAME


def _holder(path: Path) -> str:
    try:
        pid = path.read_text(encoding="utf-8").strip()
    except OSError:
        pid = ""
    return pid if pid.isdigit() else "unknown"


@contextlib.contextmanager
def hold_output(output: PathLike, is_file: bool = False, option: str = "output") -> Iterator[Path]:
    """Hold ``output`` (a folder, or a file when ``is_file``) for this process while the block runs.

    Creates the folder (or the file's folder). Yields the lock file's path. Never waits: raises
    :class:`UserError` (one line) ``another toolformer run holds OUTPUT (pid N); wait for it or
    pick another --output`` when another process holds it, and :class:`PathError` when the folder
    cannot be created. The lock goes with the process (a killed run holds nothing). The other
    processes of one distributed run (``RANK`` > 0 under ``accelerate launch`` / ``torchrun``)
    share the hold of their main process and take none.
    """
    from filelock import FileLock, Timeout

    if os.environ.get("RANK", "0").strip() not in ("", "0"):
        yield lock_file(output, is_file)
        return
    path = lock_file(output, is_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        what = "the folder of the output file" if is_file else "the output folder"
        raise path_error(path.parent, exc, what) from None
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        raise UserError(
            f"another toolformer run holds {output} (pid {_holder(path)}); wait for it "
            f"or pick another {option}",
            field=fields_in(option),
        ) from None
    except OSError as exc:
        raise PathError(f"cannot lock {output}: {exc.strerror or exc}") from None
    try:
        try:  # the holder's pid, for the refusal message of a second run
            path.write_text(f"{os.getpid()}\n", encoding="utf-8")
        except OSError:
            pass
        yield path
    finally:
        lock.release()


def _resolved(p: PathLike) -> Path:
    return Path(os.path.realpath(os.path.expanduser(str(p))))


def _same(a: Path, b: Path) -> bool:
    try:
        return a == b or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def check_not_input(
    output: PathLike,
    inputs: Mapping[str, Optional[PathLike]],
    written: Optional[Sequence[str]] = None,
    option: str = "output",
) -> None:
    """Refuse an ``output`` that would replace one of ``inputs`` (label -> path; None skipped).

    ``written`` None: ``output`` is a file, refused when it is an input (same path after
    ``~``, symlinks and ``..``, or the same file by inode). Otherwise ``output`` is a folder and
    ``written`` the glob patterns of the top-level names the command writes in it
    (``["data.jsonl", "round_*"]``): refused when an input is the folder itself, or lies at or
    under one of those names. Inputs that are not local paths (dataset ids) never match.
    Raises :class:`UserError` (one line).
    """
    out = _resolved(output)
    for label, given in inputs.items():
        if not given:
            continue
        src = _resolved(given)
        clash = _same(src, out)
        if not clash and written is not None:
            try:
                rel = src.relative_to(out)
            except ValueError:
                rel = None
            clash = (
                rel is not None
                and bool(rel.parts)
                and any(fnmatch.fnmatchcase(rel.parts[0], pat) for pat in written)
            )
        if clash:
            raise UserError(
                f"{option} {output} would overwrite the input {label} {given}; pick "
                f"another {option} (or copy the input elsewhere first)",
                field=fields_in(option, label),
            )
