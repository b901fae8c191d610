"""Checks a config dataclass's field values against the fields' types, so that a config file
with ``"max_rounds": "3"`` or ``"tools": "Calculator"`` is one line naming the field before
anything runs (not a traceback from a comparison minutes later)."""

from __future__ import annotations

import os
from dataclasses import fields, is_dataclass
from typing import Any, Dict, List, Union, get_args, get_origin, get_type_hints

from toolformer.errors import UserError


def describe_type(tp: Any) -> str:
    """``int``, ``a list of int``, ``an int or null``... for the messages of :func:`fits`."""
    origin, args = get_origin(tp), get_args(tp)
    if origin is Union:
        kinds = [a for a in args if a is not type(None)]
        null = ", or null" if len(kinds) < len(args) else ""
        return " or ".join(describe_type(a) for a in kinds) + null
    if origin in (list, List):
        return f"a list of {describe_type(args[0])}" if args else "a list"
    if origin in (dict, Dict):
        return "an object (JSON {...})"
    if tp is Any:
        return "any value"
    if tp is float:
        return "number"
    if tp is bool:
        return "true or false"
    if is_dataclass(tp):
        return "an object (JSON {...})"
    return getattr(tp, "__name__", str(tp))


def fits(value: Any, tp: Any) -> bool:
    origin, args = get_origin(tp), get_args(tp)
    if tp is Any:
        return True
    if origin is Union:
        return any(fits(value, a) for a in args)
    if tp is type(None):
        return value is None
    if origin in (list, List):
        return isinstance(value, (list, tuple)) and (
            not args or all(fits(v, args[0]) for v in value)
        )
    if origin in (dict, Dict):
        return isinstance(value, dict) and all(isinstance(k, str) for k in value)
    if is_dataclass(tp):  # a config file gives nested settings as objects
        return isinstance(value, (tp, dict))
    if tp is str:  # a path given as a Path object is a path all the same
        return isinstance(value, (str, os.PathLike))
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    return isinstance(value, tp) if isinstance(tp, type) else True


def check_field_types(config: Any, prefix: str = "") -> None:
    """Raise :class:`UserError` (one line) naming the first field of the dataclass ``config``
    whose value is not of the field's type (``max_rounds must be int, got str '3'``); fields
    named ``prefix + name``."""
    hints = get_type_hints(type(config))
    for f in fields(config):
        value = getattr(config, f.name)
        tp = hints.get(f.name, Any)
        if not fits(value, tp):
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            raise UserError(
                f"{prefix}{f.name} must be {describe_type(tp)}, got {type(value).__name__} {shown}"
            )
