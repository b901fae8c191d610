"""Errors that stand for a user's mistake: the CLI prints their message on one line.

Every user-facing error is a :class:`UserError` (a subclass says which kind), so that each
command needs one ``except UserError`` to turn it into ``Error: ...`` and a non-zero exit.
"""

from __future__ import annotations

import errno
import os
import re
from pathlib import Path
from typing import Optional, Sequence, Tuple, Union

PathLike = Union[str, "os.PathLike[str]"]

# a config field as a message names it: ``EvalConfig.max_new_tokens``
_FIELD = re.compile(r"[A-Z][A-Za-z0-9]*(?:\.[a-z_][a-z0-9_]*)+(?:=(?:True|False))?")


class UserError(Exception):
    """A bad file, setting or argument; the message says what to do instead.

    ``field`` names the config fields the message mentions, spelled as they appear in it
    (``"EvalConfig.limit"``, or several), so that a front end can put its own spelling of each
    in their place (the CLI writes ``--limit``); the message itself speaks the API's words.
    """

    def __init__(self, message: str = "", *, field: Union[str, Sequence[str], None] = None):
        super().__init__(message)
        self.fields: Tuple[str, ...] = (field,) if isinstance(field, str) else tuple(field or ())

    @property
    def field(self) -> Optional[str]:
        """The first field the message names, or None."""
        return self.fields[0] if self.fields else None


def fields_in(*texts: Optional[str]) -> Tuple[str, ...]:
    """The config fields (``Class.field``, or ``Class.field=value``) written in ``texts``, for
    ``UserError(field=...)`` when a caller's words make part of the message."""
    return tuple(m for text in texts if text for m in _FIELD.findall(str(text)))


class PathError(UserError):
    """A path the user gave cannot be used (a file where a folder is needed, no permission...)."""


class EmptyInputError(UserError):
    """An input that exists but holds nothing to work on (no documents, no prompts)."""


class ToolOptionError(UserError):
    """A tool option that the tool does not take, or a value it does not accept."""


class ModelLoadError(UserError):
    """A model folder, alias or id that could not be loaded (missing, corrupt, untrusted)."""


class MissingDependencyError(ImportError):
    """An optional package that a tool, a retriever or a model needs is not installed.

    An ``ImportError`` (what a missing package raises), not a :class:`UserError`: the CLI
    lists it among the errors it prints on one line. ``what`` names who needs the package,
    ``install`` the command that installs it."""

    def __init__(self, what: str, install: str):
        self.what = what
        self.install = install
        super().__init__(f"{what} needs a package that is not installed: run `{install}`")


def _reason(exc: OSError) -> str:
    """The OS's reason in words: ``permission denied``, ``no space left on device``..."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    text = exc.strerror or (os.strerror(exc.errno) if exc.errno else str(exc))
    return text[:1].lower() + text[1:]


def path_error(
    path: PathLike, exc: OSError, what: Optional[str] = "the output folder"
) -> PathError:
    """A one-line :class:`PathError` for an ``OSError`` raised while using ``path`` as ``what``.

    ``cannot use out as the output folder: it is a file`` (``FileExistsError``,
    ``NotADirectoryError``), ``...: permission denied``, ``...: no space left on device``.
    """
    shown = str(path)
    culprit = getattr(exc, "filename", None)
    if isinstance(exc, (FileExistsError, NotADirectoryError)) or exc.errno in (
        errno.EEXIST,
        errno.ENOTDIR,
    ):
        if (
            culprit is not None
            and os.path.normpath(str(culprit)) != os.path.normpath(os.path.expanduser(shown))
            and os.path.isfile(str(culprit))
        ):
            reason = f"{culprit} is a file"
        elif os.path.isfile(os.path.expanduser(shown)):
            reason = "it is a file"
        else:
            reason = _reason(exc)
    elif isinstance(exc, IsADirectoryError):
        reason = "it is a folder"
    else:
        reason = _reason(exc)
        if culprit is not None and os.path.normpath(str(culprit)) != os.path.normpath(
            os.path.expanduser(shown)
        ):
            reason += f" ({culprit})"
    return PathError(f"cannot use {shown}{f' as {what}' if what else ''}: {reason}")


def ensure_dir(path: PathLike, what: str = "the output folder") -> Path:
    """Create the folder ``path`` (and its parents) and check that files can be written in it.

    Returns the expanded path. Raises :class:`PathError` (one line) for any ``OSError``: ``path``
    or a parent is a file, permission denied, read-only file system, disk full.
    """
    target = Path(os.path.expanduser(str(path)))
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".toolformer-write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise path_error(path, exc, what) from None
    return target


def ensure_file_parent(path: PathLike, what: str = "the output file") -> Path:
    """Check that ``path`` can be written as a file: not a folder, its folder creatable.

    Returns the expanded path; raises :class:`PathError` (one line) otherwise.
    """
    target = Path(os.path.expanduser(str(path)))
    if target.is_dir():
        raise PathError(f"cannot use {path} as {what}: it is a folder")
    ensure_dir(target.parent if str(target.parent) else Path("."), f"the folder of {what}")
    return target
