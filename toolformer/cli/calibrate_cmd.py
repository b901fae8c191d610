"""``toolformer calibrate``: fit a model's call trigger on dev items and store it in its
manifest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import click

from toolformer.errors import UserError
from toolformer.generation.trigger import OBJECTIVES


@click.command(name="calibrate")
@click.argument("model")
@click.option(
    "--dev",
    "dev_path",
    required=True,
    type=click.Path(),
    help="JSONL of dev items with 'question' and 'tools' (the tool names that fit the "
    "item, [] for none), e.g. a self-training run's dev split",
)
@click.option(
    "--template",
    default="Q: {question}\nA:",
    show_default=True,
    help="prompt made from each item ({question})",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="first N items")
@click.option(
    "--max-new-tokens",
    type=click.IntRange(min=1),
    default=32,
    show_default=True,
    help="tokens decoded per item while looking for a call",
)
@click.option(
    "--write/--no-write",
    default=True,
    show_default=True,
    help="store the trigger in MODEL's toolformer.json (generate, chat and eval use it)",
)
@click.option(
    "--objective",
    type=click.Choice(OBJECTIVES),
    default="macro_f1",
    show_default=True,
    help="what the trigger maximises: macro_f1 (mean F1 of calling and of not "
    "calling), f1 (call F1 alone; prefers always calling when most items expect "
    "a call) or balanced_accuracy",
)
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads")
def calibrate(
    model: str,
    dev_path: str,
    template: str,
    limit: Optional[int],
    max_new_tokens: int,
    objective: str,
    write: bool,
    threads: Optional[int],
) -> None:
    """Calibrate WHEN MODEL calls a tool: the (call_top_k, call_threshold) with the best
    objective on dev items (a call where some tool fits the item, none where none does).

    \b
    toolformer calibrate runs/st/best_adapter --dev runs/st/round_0/calibration_items.jsonl
    toolformer calibrate smollm2-135m-calculator --dev my_items.jsonl --no-write
    """
    from toolformer.generation.trigger import calibrate_trigger, calibration_prompts
    from toolformer.manifest import write_call_trigger
    from toolformer.models import load_model, manifest_dir
    from toolformer.records import iter_records

    if "{question}" not in template:
        raise UserError("--template must contain {question}")
    items = [row for _, row in iter_records(dev_path, on_bad_line="raise")]
    items = items[:limit] if limit else items
    calibration_prompts(items, template)  # bad items fail before the model loads
    if write:
        import toolformer

        folder = Path(manifest_dir(model)).resolve()
        shipped = Path(toolformer.__file__).resolve().parent / "adapters"
        if shipped in folder.parents:
            raise UserError(
                f"{model} is an adapter shipped in the package; copy its folder "
                f"({folder}) and calibrate the copy, or pass --no-write"
            )
    if threads:
        import torch

        torch.set_num_threads(threads)
    loaded, tokenizer = load_model(model)
    cal = calibrate_trigger(
        loaded,
        tokenizer,
        items,
        template=template,
        max_new_tokens=max_new_tokens,
        objective=objective,
    )
    click.echo(json.dumps(cal.to_dict(), indent=2))
    click.echo(
        f"{objective} {cal.score:.3f} (paper's top-10 rule: {cal.paper_score:.3f}); "
        f"call F1 {cal.f1:.3f} (paper's rule: {cal.paper_f1:.3f}) on {cal.n} items"
    )
    if write:
        path = write_call_trigger(manifest_dir(model), cal.to_dict())
        click.echo(f"stored in {path}")
