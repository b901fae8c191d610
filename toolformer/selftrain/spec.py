"""Generated-corpus specs: ``NAME`` or ``NAME:N`` (a corpus made by code, of N items), as
``--corpus arithmetic:3000`` or ``--corpus mix:2000`` give them."""

from __future__ import annotations

from toolformer.errors import UserError


def is_sized_spec(spec: str, name: str) -> bool:
    """True for ``name`` / ``name:N`` (a generated corpus rather than a path)."""
    return spec == name or spec.startswith(name + ":")


def parse_sized_spec(spec: str, name: str, default_size: int) -> int:
    """The size N in ``name:N`` (``default_size`` for a bare ``name``).

    Raises :class:`UserError` (one line) for another name or a size that is not a whole
    number >= 1."""
    head, sep, size = spec.partition(":")
    if head != name:
        raise UserError(f"unknown generated corpus {spec!r}; use {name} or {name}:N")
    if not sep:
        return default_size
    if not size.isdigit() or int(size) < 1:
        raise UserError(f"corpus {spec!r}: the size after ':' must be a whole number >= 1")
    return int(size)
