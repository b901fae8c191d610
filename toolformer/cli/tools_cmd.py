"""``toolformer tools``: list the registered tools and run one call through the executor."""

from __future__ import annotations

import datetime as _dt
import json
from typing import Any, Dict, List, Optional, Tuple

import click


def _fail(message: str) -> "click.ClickException":
    """A one-line ``Error: ...`` and exit code 1."""
    return click.ClickException(" ".join(str(message).split()))


def tool_rows() -> List[Dict[str, Any]]:
    """One row per registered tool; a tool that cannot be imported says why instead."""
    from toolformer.tools.base import available_tools, get_tool_class

    rows = []
    for name in available_tools():
        try:
            cls = get_tool_class(name)
        except Exception as exc:  # noqa: BLE001 - list the rest even if one plugin is broken
            rows.append({"name": name, "available": False, "error": " ".join(str(exc).split())})
            continue
        a = cls.annotation
        rows.append(
            {
                "name": name,
                "available": True,
                "description": cls.description,
                "tau_s": a.tau_s,
                "k": a.k,
                "m": a.m,
                "tau_f": a.tau_f,
                "uses_context": cls.uses_context,
                "example": f"[{cls.name}({cls.example_args})]",
            }
        )
    return rows


@click.group(name="tools")
def tools() -> None:
    """List and run tools."""


@tools.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object per tool")
def list_tools(as_json: bool) -> None:
    """Every registered tool with its description and annotation settings (paper, App. A)."""
    rows = tool_rows()
    if as_json:
        for row in rows:
            click.echo(json.dumps(row))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'NAME':<{width}}  {'tau_s':>5} {'k':>3} {'m':>3} {'tau_f':>5}  DESCRIPTION")
    for r in rows:
        if not r["available"]:
            click.echo(
                f"{r['name']:<{width}}  {'':>5} {'':>3} {'':>3} {'':>5}  unavailable: {r['error']}"
            )
            continue
        click.echo(
            f"{r['name']:<{width}}  {r['tau_s']:>5.2f} {r['k']:>3} {r['m']:>3} {r['tau_f']:>5.2f}  "
            f"{r['description']}"
        )


@tools.command(name="run")
@click.argument("name")
@click.argument("args", nargs=-1)
@click.option(
    "--date",
    "date",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="the document's date (the Calendar answers with it), YYYY-MM-DD",
)
@click.option(
    "--timeout",
    type=float,
    default=600.0,
    show_default=True,
    help="seconds before the call is abandoned (the first call may load a model or index)",
)
@click.option(
    "--option",
    "-o",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="a constructor option of the tool, e.g. -o corpus=passages.jsonl (repeatable)",
)
def run_tool(
    name: str,
    args: Tuple[str, ...],
    date: Optional[_dt.datetime],
    timeout: float,
    options: Tuple[str, ...],
) -> None:
    """Run one call and print its result, e.g. ``toolformer tools run Calculator "(3+4)*2/7"``.

    NAME may also be a whole call: ``toolformer tools run "[Calculator(400 / 1400)]"``.
    """
    from toolformer.errors import MissingDependencyError, UserError
    from toolformer.syntax import CallSyntaxError, parse_call
    from toolformer.tools.assembly import create_tool, parse_options
    from toolformer.tools.base import ToolContext, ToolError, UnknownToolError
    from toolformer.tools.executor import ToolExecutor

    text = " ".join(args)
    if name.lstrip().startswith("["):
        if text:
            raise _fail("give either a whole call or NAME ARGS, not both")
        try:
            call = parse_call(name)
        except CallSyntaxError as exc:
            raise _fail(str(exc)) from None
        name, text = call.tool, call.args
    if timeout <= 0:
        raise _fail("--timeout must be a positive number of seconds")
    try:
        tool = create_tool(name, **parse_options(options, "--option"))
    except (UnknownToolError, MissingDependencyError, ToolError, UserError) as exc:
        raise _fail(str(exc)) from None
    except TypeError as exc:  # an option the constructor does not take
        raise _fail(f"bad option for {name}: {exc}") from None
    context = ToolContext(date=date.date()) if date else None
    with ToolExecutor([tool], timeout=timeout) as executor:
        result = executor.run((tool.name, text), context)
    if not result.ok:
        raise _fail(result.error)
    click.echo(result.output)
