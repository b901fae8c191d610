"""``toolformer eval``: a thin click layer over :func:`toolformer.eval.harness.evaluate`."""

from __future__ import annotations

import datetime as _dt
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any, Optional, Tuple

import click

from toolformer.cli.decoding import (
    DECODING_FIELDS,
    decoding_options,
    named_tools,
    tool_choice_options,
)
from toolformer.cli.options import field_option, field_options, old_spelling, pop_fields
from toolformer.errors import UserError
from toolformer.eval.harness import DEFAULT_EVAL_TOOLS, EvalConfig, eval_generation
from toolformer.generation.types import GenerationConfig
from toolformer.tools.assembly import parse_tool_options

# decoding options of the command; they build EvalConfig.generation (max_new_tokens is
# EvalConfig's own: it overrides each task's budget)
_DECODING = ("batch_size",) + tuple(f for f in DECODING_FIELDS if f != "max_new_tokens")


def _default_output(model: str, tools_enabled: bool) -> str:
    from toolformer.eval.report import default_label

    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", default_label(model, tools_enabled)).strip("_")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("eval_runs") / f"{label}-{stamp}")


def _list_tasks() -> None:
    from toolformer.eval.tasks import describe_tasks

    rows = describe_tasks()
    width = max(len(r["name"]) for r in rows)
    click.echo(
        f"{'task'.ljust(width)}  {'metric':<15}  {'tools it forbids':<16}  "
        f"{'tools that fit':<14}  description"
    )
    for r in rows:
        click.echo(
            f"{r['name'].ljust(width)}  {r['metric']:<15}  "
            f"{r['disabled_tools']:<16}  {r['expected_tools']:<14}  "
            f"{r['description']}"
        )
    click.echo(
        "(tools it forbids: the paper disables them on the task, e.g. WikiSearch on LAMA, "
        "whose evidence it would return verbatim; * = all)"
    )
    click.echo(
        f"{'jsonl:PATH'.ljust(width)}  {'math | qa':<15}  your JSONL with question and answer"
    )


def _compare(run_dirs: Tuple[str, ...], chart: Optional[str]) -> None:
    from toolformer.eval.report import bar_chart, comparison_table, load_run, when_comparison_table

    if not run_dirs:
        raise UserError("--compare needs run folders: toolformer eval --compare DIR1 DIR2 ...")
    runs = [load_run(d) for d in run_dirs]
    click.echo(comparison_table(runs))
    when = when_comparison_table(runs)
    if when:
        click.echo("\n" + when)
    if chart:
        click.echo(f"chart: {bar_chart(runs, chart)}")


_GEN = eval_generation()  # eval's decoding defaults differ from generate's


@click.command(name="eval", context_settings={"show_default": True})
@click.argument("run_dirs", nargs=-1, type=click.Path())
@field_options(
    EvalConfig,
    ("model", "--model", "-m"),
    ("tasks", "--tasks", "-t"),
    ("data_dir", "--data-dir", {"type": click.Path()}),
    ("limit", "--limit", {"type": int}),
)
@tool_choice_options("the checkpoint's toolformer.json, else " + ",".join(DEFAULT_EVAL_TOOLS))
@old_spelling("tool_names", "--tools NAMES", "--tool-names")
@old_spelling("tool_option", "--tool-option", "--tool-options", multiple=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(),
    default=None,
    help="run folder for results.json and samples/ (default eval_runs/<model>-<time>)",
)
@field_option(GenerationConfig, "batch_size", "--batch-size", "-b", default=_GEN.batch_size)
@decoding_options(
    _GEN,
    max_new_tokens=dict(
        default=None,
        type=int,
        show_default=False,
        help=EvalConfig.__dataclass_fields__["max_new_tokens"].metadata["help"],
    ),
)
@field_options(
    EvalConfig,
    ("num_return_sequences", "--num-return-sequences"),
    "dtype",
    "device",
    ("threads", "--threads", {"type": int}),
    ("max_length", "--max-length", "--ppl-max-length"),
    ("stride", "--stride", "--ppl-stride", {"type": int}),
    ("resume", "--resume/--no-resume"),
    "name",
)
@click.option("--quiet", "-q", is_flag=True, default=False, help="no progress bars")
@click.option(
    "--chart",
    type=click.Path(),
    default=None,
    help="also write a PNG bar chart of the scores to this path",
)
@click.option(
    "--compare",
    is_flag=True,
    default=False,
    help="compare finished runs instead: toolformer eval --compare DIR1 DIR2 ...",
)
@click.option("--list-tasks", is_flag=True, default=False, help="list the built-in tasks and exit")
def eval_command(
    run_dirs: Tuple[str, ...],
    tool_names: Optional[str],
    no_tools: bool,
    tool_option: Tuple[str, ...],
    output: Optional[str],
    quiet: bool,
    chart: Optional[str],
    compare: bool,
    list_tasks: bool,
    **values: Any,
) -> None:
    """Evaluate a model zero-shot on the paper's tasks (lenient metrics), or compare runs.

    \b
    toolformer eval --model smollm2-135m --tasks svamp,lama_trex --limit 20 -o runs/base
    toolformer eval --model ./ckpt --tasks all --no-tools -o runs/ckpt-disabled
    toolformer eval --compare runs/base runs/ckpt --chart runs/compare.png
    """
    if list_tasks:
        _list_tasks()
        return
    if compare:
        _compare(run_dirs, chart)
        return
    if run_dirs:
        raise UserError(
            f"unexpected argument(s) {' '.join(run_dirs)}; to compare runs add --compare"
        )
    from toolformer.errors import ensure_file_parent
    from toolformer.eval.harness import evaluate
    from toolformer.eval.report import bar_chart, confusion_table, summary_table, when_table

    if chart:  # checked before the run, not after it
        ensure_file_parent(chart, "the chart file")

    decoding = pop_fields(GenerationConfig, values, _DECODING)
    explicit = any(decoding.get(k) is not None for k in ("call_top_k", "call_threshold"))
    generation = replace(_GEN, **{k: v for k, v in decoding.items() if v is not None})
    config = EvalConfig(
        **values,
        generation=generation,
        call_trigger="config" if explicit else "manifest",
        tools_enabled=not no_tools,
        tools=named_tools(tool_names),
        tool_options=parse_tool_options(tool_option, "--tool-option"),
        output_dir=output or _default_output(values["model"], not no_tools),
        progress=not quiet,
    )
    results = evaluate(config, command=sys.argv)
    click.echo(summary_table(results))
    for table in (when_table(results), confusion_table(results)):
        if table:
            click.echo("\n" + table)
    click.echo(
        f"results: {Path(config.output_dir) / 'results.json'} "
        f"(report: {Path(config.output_dir) / 'report.md'})"
    )
    if chart:
        click.echo(f"chart: {bar_chart([results], chart)}")
