"""``toolformer augment``: a thin click layer over :func:`toolformer.data_aug.augment`.

Option defaults and help strings come from :class:`~toolformer.data_aug.config.AugmentConfig`
(and :class:`~toolformer.data_aug.types.AnnotatorConfig`), so the CLI and the API never disagree.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import click

from toolformer.cli.options import field_help, field_option
from toolformer.data_aug.config import DEFAULT_TOOLS, AugmentConfig, canonical_tools
from toolformer.data_aug.types import AnnotatorConfig
from toolformer.tools.assembly import parse_tool_options

THRESHOLDS = {"tau_s": float, "k": int, "m": int, "tau_f": float}


def _aug(name: str, *flags: str, **overrides: Any):
    """An option for an AugmentConfig field (help, default, type from the field)."""
    return field_option(AugmentConfig, name, *flags, **overrides)


def _ann(name: str, *flags: str, **overrides: Any):
    """An option for an AnnotatorConfig field."""
    return field_option(AnnotatorConfig, name, *flags, **overrides)


def parse_tools(value: str) -> list:
    """``"Calculator,Calendar"`` -> names; ``"all"`` -> the five tools of the paper."""
    names = [n.strip() for n in value.split(",") if n.strip()]
    if not names:
        raise click.BadParameter("give at least one tool, e.g. Calculator,Calendar")
    if [n.lower() for n in names] == ["all"]:
        return list(DEFAULT_TOOLS)
    from toolformer.tools.base import UnknownToolError

    try:
        return canonical_tools(names)
    except UnknownToolError as exc:
        raise click.BadParameter(str(exc), param_hint="--tools") from None


def parse_thresholds(
    name: str, items: Sequence[str], cast: type
) -> Tuple[Optional[Any], Dict[str, Any]]:
    """``--tau-f 0.5`` (every tool) and/or ``--tau-f Calculator=0.3`` (one tool)."""
    everyone, per_tool = None, {}
    for item in items:
        tool, sep, value = item.rpartition("=")
        try:
            number = cast(value)
        except ValueError:
            raise click.BadParameter(
                f"{item!r}: expected a number or Tool=number",
                param_hint=f"--{name.replace('_', '-')}",
            ) from None
        if sep:
            per_tool[tool.strip()] = number
        else:
            everyone = number
    return everyone, per_tool


# torchrun's own argparse rejects "--k"/"--m" anywhere on its command line (ambiguous prefixes
# of its options), so under torchrun use the long names
LONG_NAMES = {"k": ("--positions-k",), "m": ("--calls-m",)}


def _threshold_option(name: str, cast: type):
    flag = "--" + name.replace("_", "-")
    return click.option(
        flag,
        *LONG_NAMES.get(name, ()),
        name,
        multiple=True,
        metavar="[TOOL=]" + ("N" if cast is int else "X"),
        help=(
            f"{field_help(AnnotatorConfig, name).replace('override: ', '')}; for every "
            "tool, or TOOL=value for one (repeatable). Default: the paper's value per tool."
        ),
    )


@click.command(
    name="augment",
    help="Annotate a corpus with tool calls kept by the loss filter.\n\n"
    "With no options: the Wikipedia sample shipped with gensim, SmolLM2-135M and all five "
    "tools, written to runs/augment. Re-run the same command to resume after a crash.",
)
@_aug("input", "--input", "-i", dest="input_", metavar="PATH|HF_ID", show_default=False)
@_aug("output", "--output", "-o")
@_aug("model")
@_aug("dtype", type=click.Choice(["fp32", "bf16"]))
@_aug("device")
@_aug(
    "tools",
    default=",".join(DEFAULT_TOOLS),
    type=str,
    help=field_help(AugmentConfig, "tools") + " (comma-separated, or 'all')",
)
@click.option(
    "--tool-option",
    "tool_option",
    multiple=True,
    metavar="TOOL.KEY=VALUE",
    help="a tool constructor option, e.g. WikiSearch.corpus=passages.jsonl (repeatable)",
)
@_aug("limit", "--limit", "-n", type=click.IntRange(min=0))
@_aug("num_shards", type=click.IntRange(min=1))
@_aug("shard_index", type=click.IntRange(min=0))
@_aug("batch_size", type=click.IntRange(min=1))
@_aug("chunk_size", type=click.IntRange(min=1))
@_aug("text_field")
@_aug("date_field")
@_aug("url_field")
@_aug("id_field")
@_aug("split")
@_aug("encoding_errors", type=click.Choice(["skip", "replace"]))
@_aug("seed")
@_threshold_option("tau_s", float)
@_threshold_option("k", int)
@_threshold_option("m", int)
@_threshold_option("tau_f", float)
@_ann("max_length", "--max-length", "--max-doc-tokens", type=click.IntRange(min=8))
@_ann("min_position", type=click.IntRange(min=0))
@_ann("start_token", metavar="TOKEN")
@_ann("repeat_window", type=click.IntRange(min=0))
@_ann("constrained", "--constrained/--unconstrained")
@_ann("batch_size", "--model-batch-size", dest="model_batch_size", type=click.IntRange(min=1))
@_aug("annotator_factory", metavar="MODULE:ATTR")
@_aug("overwrite", "--overwrite", is_flag=True)
@click.option("--no-merge", is_flag=True, help="do not merge the shards at the end")
@click.option(
    "--merge",
    "merge_dir",
    default=None,
    metavar="DIR",
    help="only merge the finished shards in DIR (a run's --output) and exit",
)
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def augment(
    input_,
    output,
    model,
    dtype,
    device,
    tools,
    tool_option,
    limit,
    num_shards,
    shard_index,
    batch_size,
    chunk_size,
    text_field,
    date_field,
    url_field,
    id_field,
    split,
    encoding_errors,
    seed,
    tau_s,
    k,
    m,
    tau_f,
    max_length,
    min_position,
    start_token,
    repeat_window,
    constrained,
    model_batch_size,
    annotator_factory,
    overwrite,
    no_merge,
    merge_dir,
    quiet,
) -> None:
    from toolformer.cli.main import _user_error_types, user_message

    try:
        if merge_dir is not None:
            _merge_only(merge_dir, num_shards)
            return
        thresholds = {"tau_s": tau_s, "k": k, "m": m, "tau_f": tau_f}
        ann = AnnotatorConfig(
            max_length=max_length,
            batch_size=model_batch_size,
            seed=seed,
            min_position=min_position,
            start_token=start_token,
            repeat_window=repeat_window,
            constrained=constrained,
        )
        for name, items in thresholds.items():
            everyone, per_tool = parse_thresholds(name, items, THRESHOLDS[name])
            setattr(ann, name, everyone)
            for tool, value in per_tool.items():
                ann.settings.setdefault(tool, {})[name] = value
        config = AugmentConfig(
            input=input_,
            split=split,
            text_field=text_field,
            date_field=date_field or None,
            url_field=url_field or None,
            id_field=id_field,
            encoding_errors=encoding_errors,
            output=output,
            model=model,
            dtype=dtype,
            device=device,
            tools=parse_tools(tools),
            tool_options=parse_tool_options(tool_option, "--tool-option"),
            limit=limit,
            num_shards=num_shards,
            shard_index=shard_index,
            batch_size=batch_size,
            chunk_size=chunk_size,
            annotator=ann,
            annotator_factory=annotator_factory,
            seed=seed,
            overwrite=overwrite,
            merge=not no_merge,
            progress=not quiet,
        )
        from toolformer.data_aug.pipeline import augment as run

        summary = run(config)
    except (*_user_error_types(), OSError) as exc:  # a user's mistake: one line, no traceback
        message = user_message(exc, "augment")
        if message is None:
            raise
        raise click.ClickException(message) from None
    click.echo(str(summary))


def _merge_only(output: str, num_shards: Optional[int]) -> None:
    from toolformer.data_aug.pipeline import format_merged, merge_shards

    stats, examples = merge_shards(output, num_shards)
    click.echo(format_merged(output, stats, examples))
