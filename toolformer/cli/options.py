"""Click options generated from config dataclass fields: the one place where a field's help,
default, type and choices become a command-line option.

A field's ``metadata`` may hold ``help`` and ``choices``; its type (``int``, ``float``, ``str``,
``bool``, ``Optional[...]`` of those) sets the option's type, and a ``bool`` field becomes a
``--name/--no-name`` switch. Old spellings of an option stay as extra flags (aliases), so a
renamed field (``max_seq_len`` -> ``max_length``) does not change the command line::

    @click.command()
    @field_options(FinetuneConfig, "model", ("max_length", "--max-length", "--max-seq-len"))
    def finetune(**values): config = FinetuneConfig(**values)

A spelling being retired is a hidden alias with a deprecation warning (:func:`old_spelling`).
"""

from __future__ import annotations

import dataclasses
import functools
import typing
from typing import Any, Callable, Dict, Sequence, Tuple, Union

import click

MISSING = dataclasses.MISSING
OptionSpec = Union[str, Tuple[Any, ...]]


def _hints(cls: type) -> Dict[str, Any]:
    return typing.get_type_hints(cls)


def _base_type(annotation: Any) -> Any:
    """``Optional[int]`` -> ``int``; other unions and containers -> ``str``."""
    origin = typing.get_origin(annotation)
    if origin is Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _base_type(args[0]) if len(args) == 1 else str
    return annotation if annotation in (int, float, str, bool) else str


def config_field(cls: type, name: str) -> dataclasses.Field:
    """The dataclass field ``name`` of ``cls`` (``KeyError`` names the class when missing)."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            return f
    raise KeyError(f"{cls.__name__} has no field {name!r}")


def field_default(cls: type, name: str) -> Any:
    """The default of field ``name`` of ``cls`` (a factory's value; None when it has none)."""
    f = config_field(cls, name)
    if f.default is not MISSING:
        return f.default
    if f.default_factory is not MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def field_help(cls: type, name: str) -> str:
    return config_field(cls, name).metadata.get("help", "")


def field_option(
    cls: type, name: str, *flags: str, dest: str = "", **overrides: Any
) -> Callable[[Any], Any]:
    """A click option for field ``name`` of ``cls``; ``flags`` default to ``--field-name``
    (give several to keep old spellings). ``overrides`` go to ``click.option`` as they are."""
    f = config_field(cls, name)
    kind = _base_type(_hints(cls)[name])
    default = field_default(cls, name)
    flags = flags or (f"--{name.replace('_', '-')}",)
    kwargs: Dict[str, Any] = {
        "help": f.metadata.get("help", ""),
        "default": default,
        "show_default": default is not None and default != "",
    }
    choices = f.metadata.get("choices")
    if kind is bool and not any("/" in fl for fl in flags) and not overrides.get("is_flag"):
        flags = tuple(f"{fl}/--no-{fl[2:]}" if fl.startswith("--") else fl for fl in flags[:1])
    elif choices:
        kwargs["type"] = click.Choice(list(choices))
    elif kind is not bool:
        kwargs["type"] = kind
    kwargs.update(overrides)
    if "show_default" not in overrides:
        kwargs["show_default"] = kwargs["default"] is not None and kwargs["default"] != ""
    return click.option(*flags, dest or name, **kwargs)


def field_options(cls: type, *specs: OptionSpec) -> Callable[[Any], Any]:
    """Decorator adding one option per spec, in order: a field name, or
    ``(name, flag, ...[, {overrides}])``."""

    def decorate(fn: Any) -> Any:
        for spec in reversed(specs):
            if isinstance(spec, str):
                fn = field_option(cls, spec)(fn)
                continue
            name, *rest = spec
            overrides = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            fn = field_option(cls, name, *rest, **overrides)(fn)
        return fn

    return decorate


def pop_fields(cls: type, values: Dict[str, Any], names: Sequence[str] = ()) -> Dict[str, Any]:
    """Remove from ``values`` (a command's keyword arguments) the ones that are fields of
    ``cls`` (only ``names`` when given) and return them, ready for ``cls(**...)``."""
    wanted = set(names) if names else {f.name for f in dataclasses.fields(cls)}
    return {k: values.pop(k) for k in list(values) if k in wanted}


def value_option(
    name: str, default: Any, help_text: str, *flags: str, **overrides: Any
) -> Callable[[Any], Any]:
    """A click option for a named setting outside any dataclass (e.g. a ``TrainingArguments``
    field with the paper's default): the type follows the default (give ``type=`` for a None
    default), a bool default becomes a ``--name/--no-name`` switch."""
    flags = flags or (f"--{name.replace('_', '-')}",)
    kwargs: Dict[str, Any] = {
        "help": help_text,
        "default": default,
        "show_default": default is not None,
    }
    if isinstance(default, bool) and not overrides.get("is_flag"):
        flags = tuple(f"{fl}/--no-{fl[2:]}" if fl.startswith("--") else fl for fl in flags[:1])
    elif default is not None:
        kwargs["type"] = type(default)
    kwargs.update(overrides)
    return click.option(*flags, name, **kwargs)


def old_spelling(dest: str, new: str, *flags: str, **attrs: Any) -> Callable[[Any], Any]:
    """Keep an option's old spelling working for a release: a hidden option ``flags`` whose
    value goes to the command's ``dest`` (the option spelled ``new``), with a deprecation
    warning on standard error. ``attrs`` go to ``click.option`` (``multiple=True``: the values
    join those of ``new``; a bool pair ``--old/--older``: give it as one flag). Giving both
    spellings of a one-value option is a usage error."""
    hidden = f"{dest}__old_spelling"
    multiple = bool(attrs.get("multiple"))
    attrs.setdefault("default", () if multiple else None)
    shown = "/".join(flags)

    def decorate(fn: Any) -> Any:
        @functools.wraps(fn)
        def command(*args: Any, **values: Any) -> Any:
            old = values.pop(hidden)
            if old is None or (multiple and not old):
                return fn(*args, **values)
            used, instead = shown, new
            if isinstance(old, bool) and "/" in shown:  # the half of the switch that was given
                used, instead = (x.split("/")[0 if old else 1] for x in (shown, new))
            click.echo(
                f"warning: {used} is deprecated and goes in a later release; use {instead}",
                err=True,
            )
            if multiple:
                values[dest] = tuple(values.get(dest) or ()) + tuple(old)
            else:
                source = click.get_current_context().get_parameter_source(dest)
                if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
                    raise click.UsageError(f"{shown} is the old spelling of {new}; give only {new}")
                values[dest] = old
            return fn(*args, **values)

        return click.option(*flags, hidden, hidden=True, **attrs)(command)

    return decorate


def parse_key_values(items: Sequence[str], option: str) -> Dict[str, Any]:
    """``key=value`` items -> a dict, each value read as JSON when it parses (``3e-4`` -> float,
    ``true`` -> True), else kept as text. Raises ``click.BadParameter`` for an item without
    ``=``."""
    import json

    out: Dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not (sep and key.strip().isidentifier()):
            raise click.BadParameter(f"{item!r}: expected name=value", param_hint=option)
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out
