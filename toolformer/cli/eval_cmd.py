"""``toolformer eval``: a thin click layer over :func:`toolformer.eval.harness.evaluate`."""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import fields
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import click

from toolformer.errors import UserError
from toolformer.eval.harness import EvalConfig

_HELP = {f.name: f.metadata.get("help", "") for f in fields(EvalConfig)}


def parse_tool_options(values: Sequence[str]) -> Dict[str, Dict[str, Any]]:
    """``--tool-options`` values: a JSON object ``{"Tool": {"key": value}}`` or ``Tool.key=value``
    (the value read as JSON when it parses, else as text); repeat the option to combine."""
    out: Dict[str, Dict[str, Any]] = {}
    for raw in values:
        raw = raw.strip()
        if raw.startswith("{"):
            try:
                data = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UserError(f"--tool-options is not valid JSON: {exc.msg}") from None
            if not all(isinstance(v, dict) for v in data.values()):
                raise UserError('--tool-options JSON must map tool names to objects, '
                                'e.g. {"WikiSearch": {"k": 3}}')
            for tool, opts in data.items():
                out.setdefault(tool, {}).update(opts)
            continue
        m = re.fullmatch(r"([A-Za-z_][A-Za-z0-9_]*)\.([A-Za-z_][A-Za-z0-9_]*)=(.*)", raw, re.S)
        if m is None:
            raise UserError(f"--tool-options {raw!r}: use Tool.key=value or a JSON object")
        try:
            value: Any = json.loads(m.group(3))
        except json.JSONDecodeError:
            value = m.group(3)
        out.setdefault(m.group(1), {})[m.group(2)] = value
    return out


def _default_output(model: str, tools_enabled: bool) -> str:
    from toolformer.eval.report import default_label

    label = re.sub(r"[^A-Za-z0-9_.-]+", "_", default_label(model, tools_enabled)).strip("_")
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return str(Path("eval_runs") / f"{label}-{stamp}")


def _list_tasks() -> None:
    from toolformer.eval.tasks import describe_tasks

    rows = describe_tasks()
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        click.echo(f"{r['name'].ljust(width)}  {r['metric']:<15}  "
                   f"no-tools: {r['disabled_tools']:<10}  {r['description']}")
    click.echo(f"{'jsonl:PATH'.ljust(width)}  {'math | qa':<15}  "
               "your JSONL with question and answer")


def _compare(run_dirs: Tuple[str, ...], chart: Optional[str]) -> None:
    from toolformer.eval.report import bar_chart, comparison_table, load_run

    if not run_dirs:
        raise UserError("--compare needs run folders: toolformer eval --compare DIR1 DIR2 ...")
    runs = [load_run(d) for d in run_dirs]
    click.echo(comparison_table(runs))
    if chart:
        click.echo(f"chart: {bar_chart(runs, chart)}")


@click.command(name="eval", context_settings={"show_default": True})
@click.argument("run_dirs", nargs=-1, type=click.Path())
@click.option("--model", "-m", default=EvalConfig.model, help=_HELP["model"])
@click.option("--tasks", "-t", default="all", help=_HELP["tasks"])
@click.option("--data-dir", type=click.Path(), default=None, help=_HELP["data_dir"])
@click.option("--limit", type=int, default=None, help=_HELP["limit"])
@click.option("--tools/--no-tools", "tools_enabled", default=True, help=_HELP["tools_enabled"])
@click.option("--tool-names", default=None,
              help="comma-separated tools to offer (default: the checkpoint's toolformer.json, "
                   "else Calculator,Calendar,WikiSearch,QA)")
@click.option("--tool-options", multiple=True,
              help="tool constructor options: Tool.key=value or a JSON object; repeatable")
@click.option("--output", "-o", type=click.Path(), default=None,
              help="run folder for results.json and samples/ (default eval_runs/<model>-<time>)")
@click.option("--batch-size", "-b", type=int, default=EvalConfig.batch_size,
              help=_HELP["batch_size"])
@click.option("--max-new-tokens", type=int, default=None, help=_HELP["max_new_tokens"])
@click.option("--call-top-k", type=int, default=EvalConfig.call_top_k, help=_HELP["call_top_k"])
@click.option("--max-calls", type=int, default=EvalConfig.max_calls, help=_HELP["max_calls"])
@click.option("--min-new-tokens", type=int, default=EvalConfig.min_new_tokens,
              help=_HELP["min_new_tokens"])
@click.option("--do-sample", is_flag=True, default=False, help=_HELP["do_sample"])
@click.option("--temperature", type=float, default=EvalConfig.temperature,
              help=_HELP["temperature"])
@click.option("--seed", type=int, default=EvalConfig.seed, help=_HELP["seed"])
@click.option("--dtype", type=click.Choice(["fp32", "bf16", "fp16"]), default=EvalConfig.dtype,
              help=_HELP["dtype"])
@click.option("--device", default=None, help=_HELP["device"])
@click.option("--threads", type=int, default=None, help=_HELP["threads"])
@click.option("--ppl-max-length", type=int, default=EvalConfig.ppl_max_length,
              help=_HELP["ppl_max_length"])
@click.option("--ppl-stride", type=int, default=None, help=_HELP["ppl_stride"])
@click.option("--resume/--no-resume", default=True, help=_HELP["resume"])
@click.option("--name", default=None, help=_HELP["name"])
@click.option("--quiet", "-q", is_flag=True, default=False, help="no progress bars")
@click.option("--chart", type=click.Path(), default=None,
              help="also write a PNG bar chart of the scores to this path")
@click.option("--compare", is_flag=True, default=False,
              help="compare finished runs instead: toolformer eval --compare DIR1 DIR2 ...")
@click.option("--list-tasks", is_flag=True, default=False, help="list the built-in tasks and exit")
def eval_command(run_dirs: Tuple[str, ...], model: str, tasks: str, data_dir: Optional[str],
                 limit: Optional[int], tools_enabled: bool, tool_names: Optional[str],
                 tool_options: Tuple[str, ...], output: Optional[str], batch_size: int,
                 max_new_tokens: Optional[int], call_top_k: int, max_calls: int,
                 min_new_tokens: int, do_sample: bool,
                 temperature: float, seed: int, dtype: str, device: Optional[str],
                 threads: Optional[int],
                 ppl_max_length: int, ppl_stride: Optional[int], resume: bool, name: Optional[str],
                 quiet: bool, chart: Optional[str], compare: bool, list_tasks: bool) -> None:
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
        raise UserError(f"unexpected argument(s) {' '.join(run_dirs)}; "
                        "to compare runs add --compare")
    from toolformer.errors import ensure_file_parent
    from toolformer.eval.harness import evaluate
    from toolformer.eval.report import bar_chart, summary_table

    if chart:  # checked before the run, not after it
        ensure_file_parent(chart, "the chart file")

    config = EvalConfig(
        model=model, tasks=tasks, data_dir=data_dir, limit=limit, tools_enabled=tools_enabled,
        tools=[t.strip() for t in tool_names.split(",") if t.strip()] if tool_names else None,
        tool_options=parse_tool_options(tool_options),
        output_dir=output or _default_output(model, tools_enabled), batch_size=batch_size,
        max_new_tokens=max_new_tokens, call_top_k=call_top_k, max_calls=max_calls,
        min_new_tokens=min_new_tokens,
        do_sample=do_sample, temperature=temperature, seed=seed, dtype=dtype, device=device,
        threads=threads,
        ppl_max_length=ppl_max_length, ppl_stride=ppl_stride, resume=resume,
        progress=not quiet, name=name,
    )
    results = evaluate(config)
    click.echo(summary_table(results))
    click.echo(f"results: {Path(config.output_dir) / 'results.json'}")
    if chart:
        click.echo(f"chart: {bar_chart([results], chart)}")
