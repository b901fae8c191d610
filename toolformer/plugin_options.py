"""Plugin options, checked one way for every plugin kind: tools, prefilters and Improve filters.

A plugin declares its options as a dataclass (a tool's ``options_class``, a prefilter's options)
or as the keyword parameters of its constructor (a filter, a tool without an options class).
:func:`check_options` checks a ``{name: value}`` dict against them before anything is built or
loaded: an unknown name is one line with a "did you mean", a value of the wrong type one line
naming what the option takes. :func:`build_options` checks a dict and builds the dataclass.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
import typing
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Sequence, Type, TypeVar, Union

from toolformer.errors import UserError
from toolformer.registry import closest

T = TypeVar("T")
_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def type_hints(obj: Any) -> Dict[str, Any]:
    """``typing.get_type_hints(obj)``, or {} when an annotation does not resolve (that option
    is then not type-checked)."""
    try:
        return typing.get_type_hints(obj)
    except Exception:  # noqa: BLE001 - an unresolvable annotation just means "not checked"
        return {}


def option_types(spec: Any, skip: Sequence[str] = ("self",)) -> Dict[str, Any]:
    """Each option ``spec`` takes -> its type hint (``Any`` when it has none).

    ``spec``: a dataclass (its fields) or a callable (its named parameters, keyword or
    positional-or-keyword, but not ``*args``/``**kwargs`` and not those in ``skip``)."""
    if dataclasses.is_dataclass(spec):
        cls = spec if isinstance(spec, type) else type(spec)
        hints = type_hints(cls)
        return {f.name: hints.get(f.name, Any) for f in dataclasses.fields(cls)}
    hints = type_hints(spec)
    found: Dict[str, Any] = {}
    for p in inspect.signature(spec).parameters.values():
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip:
            found[p.name] = hints.get(p.name, Any)
    return found


def required_options(fn: Callable[..., Any], skip: Sequence[str] = ("self",)) -> list:
    """The named parameters of ``fn`` without a default (outside ``skip``)."""
    return [
        p.name
        for p in inspect.signature(fn).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
        and p.default is p.empty
        and p.name not in skip
    ]


def expected_type(hint: Any, value: Any) -> Optional[str]:
    """What ``hint`` expects in words, when ``value`` does not fit it; None when it fits (or the
    hint is not a plain type that can be checked). A path object fits ``str``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) is Union:
        if value is None and type(None) in args:
            return None
        words = [expected_type(a, value) for a in args if a is not type(None)]
        if any(w is None for w in words):
            return None
        return " or ".join(w for w in words if w)
    if hint in (int, float):
        kinds = (int, float) if hint is float else int
        ok = isinstance(value, kinds) and not isinstance(value, bool)
        return None if ok else _TYPE_WORDS[hint]
    if hint is str:
        return None if isinstance(value, (str, os.PathLike)) else _TYPE_WORDS[str]
    if hint is bool:
        return None if isinstance(value, bool) else _TYPE_WORDS[bool]
    return None


def unknown_option_message(owner: str, key: str, known: Iterable[str]) -> str:
    """``"Calculator has no option 'decimal'. Did you mean 'decimals'? Its options: decimals."``"""
    known = sorted(known)
    close = closest(key, known, cutoff=0.6)
    hint = f" Did you mean {close!r}?" if close else ""
    return f"{owner} has no option {key!r}.{hint} Its options: {', '.join(known) or 'none'}."


def check_options(
    owner: str,
    options: Mapping[str, Any],
    types: Mapping[str, Any],
    error: Type[Exception] = UserError,
    required: Iterable[str] = (),
) -> None:
    """Raise ``error`` (one line, naming ``owner`` and the option) for a name not in ``types``
    (with a "did you mean"), a value that does not fit its type (``decimals='abc'``: "expected
    an integer") or a ``required`` option that is missing."""
    for key, value in options.items():
        if key not in types:
            raise error(unknown_option_message(owner, key, types))
        expected = expected_type(types[key], value)
        if expected:
            raise error(f"{owner} option {key}={value!r}: expected {expected}")
    missing = [name for name in required if name not in options]
    if missing:
        raise error(f"{owner} needs the option(s) {', '.join(missing)}")


def build_options(
    options_class: Type[T],
    options: Optional[Mapping[str, Any]] = None,
    owner: Optional[str] = None,
    error: Type[Exception] = UserError,
    base: Optional[T] = None,
) -> T:
    """The dataclass ``options_class`` built from ``options`` after :func:`check_options`;
    ``base``: an instance whose values the options override (else the defaults). A value the
    dataclass itself rejects (its ``__post_init__``) raises what it raises."""
    options = dict(options or {})
    check_options(owner or options_class.__name__, options, option_types(options_class), error)
    if base is not None:
        return dataclasses.replace(base, **options)
    return options_class(**options)
