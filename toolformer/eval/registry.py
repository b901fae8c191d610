"""A small generic name -> object registry with lazy ``"module:attr"`` entries and "did you mean"
errors (the shape lm-evaluation-harness uses for tasks and metrics)."""

from __future__ import annotations

import difflib
import importlib
from typing import Dict, Generic, Iterator, List, Optional, TypeVar, Union

from toolformer.errors import UserError

T = TypeVar("T")


class UnknownNameError(UserError):
    """A name that is not in a registry; the message lists close matches and the known names."""


class Registry(Generic[T]):
    """Named entries of one kind (``kind`` is used in error messages, e.g. "task").

    An entry is either the object itself or a ``"module:attr"`` string imported on first use,
    so that listing names imports nothing heavy. Lookups are case-insensitive.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._entries: Dict[str, Union[str, T]] = {}

    def register(self, name: str, obj: Union[str, T, None] = None, *, overwrite: bool = False):
        """Add ``obj`` under ``name``; without ``obj`` this is a decorator."""

        def add(value: Union[str, T]) -> Union[str, T]:
            if not overwrite and name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._entries[name] = value
            return value

        return add if obj is None else add(obj)

    def unregister(self, name: str) -> None:
        """Remove ``name`` (raises like :meth:`get` when it is unknown)."""
        del self._entries[self.canonical(name)]

    def names(self) -> List[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self._key(name) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def _key(self, name: str) -> Optional[str]:
        if name in self._entries:
            return name
        lowered = {k.lower(): k for k in self._entries}
        return lowered.get(name.lower())

    def unknown(self, name: str, extra_hint: str = "") -> UnknownNameError:
        """The error for ``name``: a "did you mean" suggestion and the known names."""
        close = difflib.get_close_matches(name.lower(), [n.lower() for n in self.names()], n=1,
                                          cutoff=0.6)
        lookup = {n.lower(): n for n in self.names()}
        hint = f" Did you mean {lookup[close[0]]!r}?" if close else ""
        return UnknownNameError(
            f"unknown {self.kind} {name!r}.{hint} Known {self.kind}s: {', '.join(self.names())}"
            f"{extra_hint}."
        )

    def get(self, name: str) -> T:
        """The entry called ``name``; imports a lazy ``"module:attr"`` entry on first use."""
        key = self._key(name)
        if key is None:
            raise self.unknown(name)
        value = self._entries[key]
        if isinstance(value, str) and ":" in value:
            module, _, attr = value.partition(":")
            value = getattr(importlib.import_module(module), attr)
            self._entries[key] = value
        return value  # type: ignore[return-value]

    def canonical(self, name: str) -> str:
        """The registered spelling of ``name`` (raises like :meth:`get`)."""
        key = self._key(name)
        if key is None:
            raise self.unknown(name)
        return key

