"""``toolformer augment``: a thin click layer over :func:`toolformer.data_aug.augment`.

Option defaults and help strings come from :class:`~toolformer.data_aug.config.AugmentConfig`
(and :class:`~toolformer.data_aug.types.AnnotatorConfig`), so the CLI and the API never disagree.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import click

from toolformer.data_aug.config import DEFAULT_TOOLS, AugmentConfig, canonical_tools, field_default, field_help
from toolformer.data_aug.types import AnnotatorConfig

H = field_help(AugmentConfig)
A = field_help(AnnotatorConfig)
THRESHOLDS = {"tau_s": float, "k": int, "m": int, "tau_f": float}


def _default(name: str) -> Any:
    return field_default(name, AugmentConfig)


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


def parse_tool_options(items: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """``Tool.key=value`` items -> ``{Tool: {key: value}}``: the one grammar of
    :func:`toolformer.tools.assembly.parse_tool_options` (values read as JSON when they parse)."""
    from toolformer.tools.assembly import parse_tool_options as parse

    return parse(items, "--tool-option")


def parse_thresholds(name: str, items: Sequence[str], cast: type) -> Tuple[Optional[Any], Dict[str, Any]]:
    """``--tau-f 0.5`` (every tool) and/or ``--tau-f Calculator=0.3`` (one tool)."""
    everyone, per_tool = None, {}
    for item in items:
        tool, sep, value = item.rpartition("=")
        try:
            number = cast(value)
        except ValueError:
            raise click.BadParameter(f"{item!r}: expected a number or Tool=number", param_hint=f"--{name.replace('_', '-')}") from None
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
        flag, *LONG_NAMES.get(name, ()), name, multiple=True, metavar="[TOOL=]" + ("N" if cast is int else "X"),
        help=f"{A[name].replace('override: ', '')}; for every tool, or TOOL=value for one "
             "(repeatable). Default: the paper's value per tool.",
    )


@click.command(name="augment", help="Annotate a corpus with tool calls kept by the loss filter.\n\n"
               "With no options: the Wikipedia sample shipped with gensim, SmolLM2-135M and all five "
               "tools, written to runs/augment. Re-run the same command to resume after a crash.")
@click.option("--input", "-i", "input_", default=None, metavar="PATH|HF_ID", help=H["input"])
@click.option("--output", "-o", default=_default("output"), show_default=True, help=H["output"])
@click.option("--model", default=_default("model"), show_default=True, help=H["model"])
@click.option("--dtype", type=click.Choice(["fp32", "bf16"]), default=_default("dtype"), show_default=True, help=H["dtype"])
@click.option("--device", default=None, help=H["device"])
@click.option("--tools", default=",".join(DEFAULT_TOOLS), show_default=True, help=H["tools"] + " (comma-separated, or 'all')")
@click.option("--tool-option", "tool_option", multiple=True, metavar="TOOL.KEY=VALUE",
              help="a tool constructor option, e.g. WikiSearch.corpus=passages.jsonl (repeatable)")
@click.option("--limit", "-n", type=click.IntRange(min=0), default=_default("limit"), show_default=True, help=H["limit"])
@click.option("--num-shards", type=click.IntRange(min=1), default=None, help=H["num_shards"])
@click.option("--shard-index", type=click.IntRange(min=0), default=None, help=H["shard_index"])
@click.option("--batch-size", type=click.IntRange(min=1), default=_default("batch_size"), show_default=True, help=H["batch_size"])
@click.option("--chunk-size", type=click.IntRange(min=1), default=_default("chunk_size"), show_default=True, help=H["chunk_size"])
@click.option("--text-field", default=_default("text_field"), show_default=True, help=H["text_field"])
@click.option("--date-field", default=_default("date_field"), show_default=True, help=H["date_field"])
@click.option("--url-field", default=_default("url_field"), show_default=True, help=H["url_field"])
@click.option("--id-field", default=None, help=H["id_field"])
@click.option("--split", default=_default("split"), show_default=True, help=H["split"])
@click.option("--encoding-errors", type=click.Choice(["skip", "replace"]), default=_default("encoding_errors"),
              show_default=True, help=H["encoding_errors"])
@click.option("--seed", type=int, default=_default("seed"), show_default=True, help=H["seed"])
@_threshold_option("tau_s", float)
@_threshold_option("k", int)
@_threshold_option("m", int)
@_threshold_option("tau_f", float)
@click.option("--max-doc-tokens", type=click.IntRange(min=8), default=AnnotatorConfig.max_doc_tokens,
              show_default=True, help=A["max_doc_tokens"])
@click.option("--min-position", type=click.IntRange(min=0), default=AnnotatorConfig.min_position,
              show_default=True, help=A["min_position"])
@click.option("--start-token", default=None, metavar="TOKEN", help=A["start_token"])
@click.option("--repeat-window", type=click.IntRange(min=0), default=AnnotatorConfig.repeat_window,
              show_default=True, help=A["repeat_window"])
@click.option("--model-batch-size", type=click.IntRange(min=1), default=AnnotatorConfig.batch_size,
              show_default=True, help=A["batch_size"])
@click.option("--annotator-factory", default=None, metavar="MODULE:ATTR", help=H["annotator_factory"])
@click.option("--overwrite", is_flag=True, help=H["overwrite"])
@click.option("--no-merge", is_flag=True, help="do not merge the shards at the end")
@click.option("--merge", "merge_dir", default=None, metavar="DIR",
              help="only merge the finished shards in DIR (a run's --output) and exit")
@click.option("--quiet", "-q", is_flag=True, help="no progress bar")
def augment(input_, output, model, dtype, device, tools, tool_option, limit, num_shards, shard_index,
            batch_size, chunk_size, text_field, date_field, url_field, id_field, split, encoding_errors, seed, tau_s, k, m,
            tau_f, max_doc_tokens, min_position, start_token, repeat_window, model_batch_size, annotator_factory, overwrite, no_merge, merge_dir,
            quiet) -> None:
    from toolformer.cli.main import _user_error_types, user_message

    try:
        if merge_dir is not None:
            _merge_only(merge_dir, num_shards)
            return
        thresholds = {"tau_s": tau_s, "k": k, "m": m, "tau_f": tau_f}
        ann = AnnotatorConfig(max_doc_tokens=max_doc_tokens, batch_size=model_batch_size, seed=seed,
                              min_position=min_position, start_token=start_token,
                              repeat_window=repeat_window)
        for name, items in thresholds.items():
            everyone, per_tool = parse_thresholds(name, items, THRESHOLDS[name])
            setattr(ann, name, everyone)
            for tool, value in per_tool.items():
                ann.settings.setdefault(tool, {})[name] = value
        config = AugmentConfig(
            input=input_, split=split, text_field=text_field, date_field=date_field or None,
            url_field=url_field or None, id_field=id_field, encoding_errors=encoding_errors, output=output, model=model, dtype=dtype,
            device=device, tools=parse_tools(tools), tool_options=parse_tool_options(tool_option),
            limit=limit, num_shards=num_shards, shard_index=shard_index, batch_size=batch_size,
            chunk_size=chunk_size, annotator=ann, annotator_factory=annotator_factory, seed=seed,
            overwrite=overwrite, merge=not no_merge, progress=not quiet,
        )
        from toolformer.data_aug.pipeline import augment as run

        summary = run(config)
    except (*_user_error_types(), OSError) as exc:  # a user's mistake: one line, no traceback
        message = user_message(exc)
        if message is None:
            raise
        raise click.ClickException(message) from None
    click.echo(str(summary))


def _merge_only(output: str, num_shards: Optional[int]) -> None:
    from toolformer.data_aug.pipeline import format_merged, merge_shards

    stats, examples = merge_shards(output, num_shards)
    click.echo(format_merged(output, stats, examples))
