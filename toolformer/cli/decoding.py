"""The options every decoding command shares (``generate``, ``chat``, ``serve``, ``eval``),
declared once: how to decode (:func:`decoding_options`, from
:class:`~toolformer.generation.types.GenerationConfig`'s fields) and which tools to offer
(:func:`tool_choice_options`)."""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from toolformer.cli.options import field_help, field_option, old_spelling
from toolformer.generation.types import GenerationConfig  # light: no torch at import

# the decoding fields, in --help order
DECODING_FIELDS = (
    "max_new_tokens",
    "do_sample",
    "temperature",
    "top_k",
    "top_p",
    "seed",
    "call_top_k",
    "call_threshold",
    "max_calls",
    "max_call_tokens",
    "min_new_tokens",
    "constrained",
)
_TRIGGER_HELP = "{} [default: the adapter's calibrated trigger (toolformer.json), else {}]"
# what a bare ``--tools`` (no names) stands for: the default tools, as when it is left out
DEFAULT_TOOLS_FLAG = "default"


def _apply(fn: Any, decorators: Sequence[Callable[[Any], Any]]) -> Any:
    for deco in reversed(decorators):
        fn = deco(fn)
    return fn


def decoding_options(
    defaults: Optional[GenerationConfig] = None, **overrides: Dict[str, Any]
) -> Callable[[Any], Any]:
    """Decorator adding one option per decoding field (``--max-new-tokens``, ``--do-sample``,
    ``--temperature`` ... ``--constrained/--unconstrained``), its default from ``defaults``
    (default: ``GenerationConfig()``); ``overrides[field]`` goes to ``click.option`` for that
    field. The old spelling ``--sample/--greedy`` of ``--do-sample/--no-do-sample`` is kept
    hidden, with a deprecation warning."""
    gen = defaults or GenerationConfig()
    special: Dict[str, Dict[str, Any]] = {
        "call_top_k": dict(
            default=None,
            show_default=False,
            help=_TRIGGER_HELP.format(field_help(GenerationConfig, "call_top_k"), "10"),
        ),
        "call_threshold": dict(
            type=click.FloatRange(0, 1, max_open=True),
            default=None,
            show_default=False,
            help=_TRIGGER_HELP.format(field_help(GenerationConfig, "call_threshold"), "0"),
        ),
        "do_sample": dict(show_default="greedy"),
        "seed": dict(type=int),
    }
    decorators: List[Callable[[Any], Any]] = []
    for name in DECODING_FIELDS:
        attrs = {
            "default": getattr(gen, name),
            "show_default": True,
            **special.get(name, {}),
            **overrides.get(name, {}),
        }
        flags = ("--constrained/--unconstrained",) if name == "constrained" else ()
        decorators.append(field_option(GenerationConfig, name, *flags, **attrs))
    decorators.append(old_spelling("do_sample", "--do-sample/--no-do-sample", "--sample/--greedy"))
    return lambda fn: _apply(fn, decorators)


def tool_choice_options(default_help: str) -> Callable[[Any], Any]:
    """Decorator adding ``--tools NAMES`` (``tool_names``: comma-separated; a bare ``--tools``
    is :data:`DEFAULT_TOOLS_FLAG`, the default tools), ``--no-tools`` (``no_tools``: the
    paper's "Toolformer (disabled)") and ``--tool-option`` (``tool_option``, repeatable).
    ``default_help`` says which tools a command offers when none are named."""
    return lambda fn: _apply(
        fn,
        [
            click.option(
                "--tools",
                "tool_names",
                is_flag=False,
                flag_value=DEFAULT_TOOLS_FLAG,
                default=None,
                metavar="NAMES",
                help=f"comma-separated tool names [default: {default_help}]",
            ),
            click.option(
                "--no-tools",
                is_flag=True,
                help="'Toolformer (disabled)': the model never opens a call",
            ),
            click.option(
                "--tool-option",
                "tool_option",
                multiple=True,
                metavar="TOOL.KEY=VALUE",
                help="a tool option, e.g. WikiSearch.corpus=FILE, or a JSON object; "
                "repeatable (a checkpoint's toolformer.json sets only options that "
                "choose no file or model)",
            ),
        ],
    )


def named_tools(value: Optional[str]) -> Optional[List[str]]:
    """``--tools``'s names; None when none were named (``--tools`` left out or bare). Raises
    :class:`click.BadParameter` for a value that names none (``--tools ,``)."""
    if value is None or value == DEFAULT_TOOLS_FLAG:
        return None
    names = [t.strip() for t in value.split(",") if t.strip()]
    if not names:
        raise click.BadParameter(
            "names no tool; name tools (e.g. --tools Calculator) or use --no-tools",
            param_hint="--tools",
        )
    return names
