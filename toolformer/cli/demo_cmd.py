"""``toolformer demo``: load the default model, generate a little, run every tool on real input.

A smoke test a user can read: each step prints what it did and how long it took, and a tool
that is unavailable or fails prints its error while the demo goes on.
"""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any, Dict, List, Optional, Tuple

import click

# Real inputs for the built-in tools; any other registered tool runs on its ``example_args``.
DEMO_INPUTS: Dict[str, str] = {
    "Calculator": "(3+4)*2/7",
    "Calendar": "",
    "WikiSearch": "Albert Einstein",
    "QA": "Who was Albert Einstein?",
    "MT": "La tour Eiffel a été construite en 1889 pour l'Exposition universelle.",
}
DEMO_PROMPT = "The capital of France is"


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 240 else text[:239] + "…"


def _generate(model: Any, tok: Any, prompt: str, max_new_tokens: int) -> Tuple[str, int, float]:
    """A greedy continuation: (text, new tokens, seconds).

    Never past the model's context: ``max_new_tokens`` is capped to the room the prompt leaves
    (with a notice); a prompt that fills the context is a one-line error.
    """
    import torch

    enc = tok(prompt, return_tensors="pt").to(model.device)
    context = getattr(model.config, "max_position_embeddings", None)
    if isinstance(context, int) and context > 0:
        room = context - int(enc["input_ids"].shape[1])
        if room < 1:
            raise click.ClickException(
                f"the prompt ({context - room} tokens) fills the model's "
                f"context ({context}); use a shorter --prompt"
            )
        if max_new_tokens > room:
            click.echo(
                f"note: --max-new-tokens {max_new_tokens} capped to {room}: "
                f"context {context}, prompt {context - room} tokens",
                err=True,
            )
            max_new_tokens = room
    start = time.perf_counter()
    with torch.no_grad():
        out = model.generate(
            **enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id
        )
    seconds = time.perf_counter() - start
    new = out[0, enc["input_ids"].shape[1] :]
    return tok.decode(new, skip_special_tokens=True), int(new.numel()), seconds


def _build(name: str, shared: Dict[str, Any], model_name: str, corpus: Optional[str]) -> Any:
    """Instantiate a tool, sharing what the demo already holds (the model, the search index)."""
    from toolformer.tools.assembly import create_tool
    from toolformer.tools.base import get_tool_class

    cls = get_tool_class(name)
    options: Dict[str, Any] = {}
    if cls.name == "WikiSearch" and corpus:
        options["corpus"] = corpus
    if cls.name == "QA":
        if "WikiSearch" in shared:
            options["search"] = shared["WikiSearch"]  # one index for both tools
        elif corpus:
            options["corpus"] = corpus
        if (
            shared.get("model") is not None
            and _default_field(cls, "QAConfig", "model") == model_name
        ):
            options.update(model=shared["model"], tokenizer=shared["tokenizer"])  # no second load
    if cls.name == "Calendar":
        options["today"] = _dt.date.today()
    try:
        return create_tool(name, **options)
    except TypeError:  # a tool whose constructor changed: fall back to its defaults
        return create_tool(name)


def _default_field(cls: type, config_name: str, field_name: str) -> Optional[str]:
    import dataclasses
    import sys

    config = getattr(sys.modules.get(cls.__module__), config_name, None)
    if config is None or not dataclasses.is_dataclass(config):
        return None
    for f in dataclasses.fields(config):
        if f.name == field_name:
            return f.default
    return None


@click.command(name="demo")
@click.option(
    "--model",
    "model_name",
    default=None,
    help="model alias, folder or HF id [default: smollm2-135m]",
)
@click.option("--prompt", default=DEMO_PROMPT, show_default=True, help="text to continue greedily")
@click.option("--max-new-tokens", default=20, show_default=True, help="tokens to generate")
@click.option(
    "--tools", "only", default=None, help="comma-separated tools to run [default: all registered]"
)
@click.option(
    "--corpus", default=None, help="passage corpus for WikiSearch and QA [default: their own]"
)
@click.option(
    "--timeout",
    default=600.0,
    show_default=True,
    help="seconds per tool call (a first call may build an index or load a model)",
)
@click.option("--skip-model", is_flag=True, help="only run the tools")
def demo(
    model_name: Optional[str],
    prompt: str,
    max_new_tokens: int,
    only: Optional[str],
    corpus: Optional[str],
    timeout: float,
    skip_model: bool,
) -> None:
    """Load the default model, generate a short greedy continuation, then run every tool."""
    from toolformer.errors import MissingDependencyError, UserError
    from toolformer.models import DEFAULT_MODEL, count_parameters, load_model
    from toolformer.tools.base import ToolContext, available_tools
    from toolformer.tools.executor import ToolExecutor

    model_name = model_name or DEFAULT_MODEL
    shared: Dict[str, Any] = {}
    if not skip_model:
        click.echo(f"== model: {model_name}")
        start = time.perf_counter()
        try:
            model, tok = load_model(model_name)
        except (UserError, MissingDependencyError) as exc:
            raise click.ClickException(_one_line(exc)) from None
        click.echo(
            f"loaded in {time.perf_counter() - start:.1f} s, {count_parameters(model):,} parameters"
        )
        shared.update(model=model, tokenizer=tok)
        text, n, seconds = _generate(model, tok, prompt, max_new_tokens)
        click.echo(f"greedy: {prompt!r} -> {text!r}")
        click.echo(f"        {n} tokens in {seconds:.2f} s ({n / max(seconds, 1e-9):.1f} tokens/s)")

    names: List[str] = (
        available_tools() if not only else [n.strip() for n in only.split(",") if n.strip()]
    )
    # WikiSearch before QA so that QA can reuse its index
    names.sort(key=lambda n: (n.lower() != "wikisearch", n.lower() == "qa", n.lower()))
    click.echo("== tools")
    failures = 0
    for name in names:
        start = time.perf_counter()
        try:
            tool = _build(name, shared, model_name, corpus)
        except Exception as exc:  # noqa: BLE001 - an unavailable tool must not stop the demo
            failures += 1
            click.echo(f"{name:<11} unavailable: {_one_line(exc)}")
            continue
        built = time.perf_counter() - start
        shared[tool.name] = tool
        args = DEMO_INPUTS.get(tool.name, tool.example_args)
        context = ToolContext(date=_dt.date.today()) if tool.uses_context else None
        with ToolExecutor([tool], timeout=timeout) as executor:
            result = executor.run((tool.name, args), context)
        call = f"[{tool.name}({args})]"
        if result.ok:
            click.echo(f"{tool.name:<11} {call} -> {result.output}")
        else:
            failures += 1
            click.echo(f"{tool.name:<11} {call} failed: {result.error}")
        click.echo(f"{'':<11} {result.seconds:.2f} s to run (+{built:.2f} s to create)")
    click.echo(f"== done: {len(names) - failures}/{len(names)} tools answered")
