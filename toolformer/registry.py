"""One registry type for every name -> object table of the package: tools, prefilters, eval tasks,
metrics and data loaders (the shape of lm-evaluation-harness' ``Registry``).

A :class:`Registry` holds named entries of one kind. An entry is the object itself or a lazy
``"package.module:attr"`` string, imported on first use, so that listing names imports nothing
heavy. Lookups ignore case; an unknown name raises :class:`UnknownNameError` with a "did you
mean" hint and the known names (one line, a :class:`~toolformer.errors.UserError`). A registry
may also read an entry-point group, so that installed plugins join it without code here
(``[project.entry-points."toolformer.tools"] MyTool = "my_pkg.tools:MyTool"``); a plugin never
shadows a built-in.

Making a new kind of registry (e.g. filters for a new stage)::

    from toolformer.registry import Registry

    FILTERS: Registry[Callable[[str], bool]] = Registry(
        "filter",                                   # used in messages: "unknown filter 'x'"
        entry_points="toolformer.filters",          # optional plugin group
        validate=lambda name, obj: callable(obj) or "is not callable",  # optional check on load
    )
    FILTERS.register("min_length", "toolformer.selftrain.filters:min_length")  # lazy
    @FILTERS.register("no_urls")                                                # decorator
    def no_urls(text: str) -> bool: ...

    FILTERS.get("No_URLs")      # -> the function (imports a lazy entry once)
    FILTERS.get("no_url")       # UnknownNameError: unknown filter 'no_url'.
                                # Did you mean 'no_urls'? ...
"""

from __future__ import annotations

import difflib
import importlib
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterable,
    Iterator,
    List,
    Optional,
    Tuple,
    Type,
    TypeVar,
    Union,
)

from toolformer.errors import UserError

T = TypeVar("T")

# "did you mean" needs this similarity (difflib ratio) between the lowercased names; 0.5 finds
# "wikisearh" -> WikiSearch and "Calender" -> Calendar, and no hint for unrelated names
SUGGEST_CUTOFF = 0.5

_MISSING = object()

Validator = Callable[[str, Any], Union[bool, str, None]]


class UnknownNameError(UserError, KeyError):
    """A name that is not in a registry; the message lists a close match and the known names.

    Also a ``KeyError``: a lookup failed. ``name`` is the name asked for, ``known`` the names
    registered then; without ``message`` it is built from the class's ``kind``.
    """

    kind = "name"

    def __init__(self, name: str, known: Iterable[str] = (), message: Optional[str] = None):
        self.name = name
        self.known = sorted(known)
        self.message = message or unknown_name_message(self.kind, name, self.known)
        super().__init__(self.message)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class RegistryLoadError(UserError):
    """A lazy entry (built-in or plugin) could not be imported, or failed the registry's check."""


def closest(name: str, known: Iterable[str], cutoff: float = SUGGEST_CUTOFF) -> Optional[str]:
    """The known name most like ``name`` (case ignored), or None when none is close enough
    (difflib's ratio below ``cutoff``): the "did you mean" of every lookup in the package."""
    by_lower = {k.lower(): k for k in known}
    close = difflib.get_close_matches(str(name).lower(), list(by_lower), n=1, cutoff=cutoff)
    return by_lower[close[0]] if close else None


def unknown_name_message(kind: str, name: str, known: Iterable[str], extra_hint: str = "") -> str:
    """``unknown <kind> 'x'. Did you mean 'y'? Known <kind>s: a, b[extra_hint].`` (one line)."""
    known = sorted(known)
    close = closest(name, known)
    hint = f" Did you mean {close!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Known {kind}s: {', '.join(known)}{extra_hint}."


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` names them in messages, e.g. "task").

    Args:
        kind: the singular noun for messages ("tool", "metric", ...).
        entry_points: an entry-point group read on the first lookup or listing; its entries are
            lazy and never replace a name already registered.
        validate: ``validate(name, obj)`` run once when a lazy entry is imported; return
            ``False`` or a reason string to reject it (raised as ``load_error``).
        load_error: the exception type for an entry that cannot be imported or is rejected.
        unknown_error: the exception type for an unknown name (a subclass of
            :class:`UnknownNameError`); it is called as ``unknown_error(name, known, message)``.
        passthrough: exception types raised while importing an entry that are re-raised as they
            are (e.g. a "package missing, run pip install ..." error of the entry's own).
        missing_dependency: ``missing_dependency(what, install_command)`` builds the error for
            an entry whose module imports a package that is not installed (default:
            ``load_error`` with the same message).

    It is also a mutable mapping of names to entries (``reg[name] = obj`` registers or replaces,
    ``del reg[name]``), so ``pytest``'s ``monkeypatch.setitem`` works on it.
    """

    def __init__(
        self,
        kind: str,
        *,
        entry_points: Optional[str] = None,
        validate: Optional[Validator] = None,
        load_error: Type[Exception] = RegistryLoadError,
        unknown_error: Type[UnknownNameError] = UnknownNameError,
        passthrough: Tuple[Type[BaseException], ...] = (),
        missing_dependency: Optional[Callable[[str, str], Exception]] = None,
    ):
        self.kind = kind
        self.entry_points = entry_points
        self.validate = validate
        self.load_error = load_error
        self.unknown_error = unknown_error
        self.passthrough = passthrough
        self.missing_dependency = missing_dependency
        self._entries: Dict[str, Union[str, T]] = {}
        self._entry_points_read = entry_points is None

    # -- adding and removing ----------------------------------------------------------------
    def register(self, name: str, obj: Union[str, T, None] = None, *, overwrite: bool = False):
        """Add ``obj`` (or a lazy ``"module:attr"`` string) under ``name``; without ``obj`` this
        is a decorator. Raises ``ValueError`` for a name taken, unless ``overwrite``."""

        def add(value: Union[str, T]) -> Union[str, T]:
            key = self._key(name, read_plugins=False)
            if key is not None and not overwrite:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            if key is not None and key != name:
                del self._entries[key]  # one spelling per name
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (raises :class:`UnknownNameError` when it is unknown)."""
        del self._entries[self.canonical(name)]

    def copy(self) -> "Registry[T]":
        """A registry with the same settings and entries (tests swap one in and out)."""
        new: Registry[T] = Registry(
            self.kind,
            entry_points=self.entry_points,
            validate=self.validate,
            load_error=self.load_error,
            unknown_error=self.unknown_error,
            passthrough=self.passthrough,
            missing_dependency=self.missing_dependency,
        )
        new._entries = dict(self._entries)
        new._entry_points_read = self._entry_points_read
        return new

    # -- looking up ---------------------------------------------------------------------------
    def names(self) -> List[str]:
        """Every registered name (plugins included), sorted."""
        self._read_entry_points()
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())

    def __getitem__(self, name: str) -> T:
        return self.get(name)

    def __setitem__(self, name: str, obj: Union[str, T]) -> None:
        self.register(name, obj, overwrite=True)

    def __delitem__(self, name: str) -> None:
        self.unregister(name)

    def items(self) -> List[Tuple[str, T]]:
        """``(name, object)`` for every entry; imports the lazy ones."""
        return [(n, self.get(n)) for n in self.names()]

    def is_loaded(self, name: str) -> bool:
        """Whether ``name``'s entry is imported already (a lazy one turns into its object)."""
        return not isinstance(self._entries[self.canonical(name)], str)

    def unknown(self, name: str, extra_hint: str = "") -> UnknownNameError:
        """The error for ``name``: a "did you mean" suggestion and the known names."""
        names = self.names()
        message = unknown_name_message(self.kind, name, names, extra_hint)
        return self.unknown_error(name, names, message)

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (raises like :meth:`get`)."""
        key = self._key(name)
        if key is None:
            raise self.unknown(name)
        return key

    def get(self, name: str, default: Any = _MISSING) -> T:
        """The entry called ``name`` (any case); imports a lazy entry on first use.

        Raises :class:`UnknownNameError` (or the registry's ``unknown_error``) for an unknown
        name, unless a ``default`` is given (then returned, as ``dict.get`` does), and
        ``load_error`` for an entry that cannot be imported or fails ``validate``.
        """
        if default is not _MISSING and name not in self:
            return default
        key = self.canonical(name)
        value = self._entries[key]
        if isinstance(value, str) and ":" in value:
            value = self._import(key, value)
            self._entries[key] = value
        return value  # type: ignore[return-value]

    # -- internals ----------------------------------------------------------------------------
    def _key(self, name: str, read_plugins: bool = True) -> Optional[str]:
        if read_plugins:
            self._read_entry_points()
        if name in self._entries:
            return name
        lowered = {k.lower(): k for k in self._entries}
        return lowered.get(str(name).lower())

    def _read_entry_points(self) -> None:
        if self._entry_points_read:
            return
        self._entry_points_read = True
        import importlib.metadata

        try:
            found = list(importlib.metadata.entry_points(group=self.entry_points))
        except Exception as exc:  # noqa: BLE001 - broken metadata must not hide the built-ins
            import warnings

            warnings.warn(f"could not read {self.entry_points} entry points: {exc}", stacklevel=3)
            return
        for ep in found:
            # a plugin cannot shadow a built-in; it is imported only when first used
            if self._key(ep.name, read_plugins=False) is None:
                self._entries[ep.name] = ep.value

    def _import(self, key: str, spec: str) -> T:
        """Import ``"package.module:Attr.sub"`` (an entry point's ``[extras]`` are ignored)."""
        module_name, _, attr = spec.split("[")[0].strip().partition(":")
        what = f"{self.kind} {key!r}"
        try:
            obj: Any = importlib.import_module(module_name)
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except self.passthrough:
            raise
        except ModuleNotFoundError as exc:
            missing = exc.name or ""
            if missing and not (module_name == missing or module_name.startswith(missing + ".")):
                # the entry's module is there, but a package it imports is not
                install = f"pip install {missing.split('.')[0]}"
                if self.missing_dependency is not None:
                    raise self.missing_dependency(what, install) from None
                raise self.load_error(
                    f"{what} needs a package that is not installed: run `{install}`"
                ) from None
            raise self.load_error(
                f"{what} is registered as {spec!r} but {module_name} is not installed"
            ) from None
        except AttributeError:
            raise self.load_error(f"{what}: {module_name} has no attribute {attr!r}") from None
        except Exception as exc:  # noqa: BLE001 - a broken plugin must give a one-line message
            first = (str(exc).splitlines() or [""])[0]
            raise self.load_error(
                f"{what} failed to import from {spec!r}: {type(exc).__name__}: {first}"
            ) from None
        if self.validate is not None:
            verdict = self.validate(key, obj)
            if verdict is False or isinstance(verdict, str):
                reason = verdict if isinstance(verdict, str) else "was rejected"
                raise self.load_error(f"{what}: {spec!r} {reason}")
        return obj
