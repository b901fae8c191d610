"""``toolformer generate`` and ``toolformer chat``: a thin click layer over ToolGenerator.

Heavy imports (torch, transformers, the tools) happen inside the commands.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from toolformer.cli.decoding import decoding_options, named_tools, tool_choice_options
from toolformer.cli.options import field_option
from toolformer.generation.chat import ChatSession
from toolformer.generation.trigger import resolve_trigger
from toolformer.generation.types import GenerationConfig  # light: no torch at import
from toolformer.tools.assembly import DEFAULT_TOOLS  # light: no torch

DEFAULT_TOOL_NAMES = tuple(DEFAULT_TOOLS["generate"])


def _opt(flag: str, name: str, **kwargs: Any):
    """A click option whose default and help come from GenerationConfig's field."""
    kwargs.setdefault("show_default", True)
    return field_option(GenerationConfig, name, flag, **kwargs)


def generation_options(fn):
    """The options of every command that decodes with tools: ``generate``, ``chat``, ``serve``
    (decoding, the tools, the Calendar's date, where the model runs)."""
    for deco in reversed(
        [
            decoding_options(),
            tool_choice_options(
                "the checkpoint's toolformer.json, else " + ",".join(DEFAULT_TOOL_NAMES)
            ),
            click.option(
                "--date",
                default=None,
                help="the date the Calendar tool sees (YYYY-MM-DD) [default: today]",
            ),
            click.option("--dtype", default="fp32", show_default=True, help="fp32, bf16 or fp16"),
            click.option("--device", default=None, help="torch device, e.g. cuda [default: cpu]"),
            click.option(
                "--threads",
                type=click.IntRange(min=1),
                default=None,
                help="torch CPU threads [default: torch's, one per core]",
            ),
        ]
    ):
        fn = deco(fn)
    return fn


# --------------------------------------------------------------------------- helpers


def _tool_names(model_name: str, value: Optional[str]) -> List[str]:
    """The tools ``--tools`` names, else the checkpoint's, else the defaults."""
    names = named_tools(value)
    if names is not None:
        return names
    from toolformer.models import manifest_tools

    return manifest_tools(model_name) or list(DEFAULT_TOOL_NAMES)


def _context(date: Optional[str]):
    from toolformer.errors import UserError
    from toolformer.tools.base import ToolContext

    if date is None:
        return ToolContext(date=_dt.date.today())
    try:
        return ToolContext(date=_dt.date.fromisoformat(date))
    except ValueError:
        raise UserError(f"--date {date!r} is not a date; use YYYY-MM-DD") from None


def load(model_name: str, dtype: str, device: Optional[str]) -> Tuple[Any, Any]:
    """``(model, tokenizer)`` for an alias, HF id or local folder (tests replace this)."""
    from toolformer.models import load_model

    return load_model(model_name, dtype=dtype, device=device)


def build_generator(model_name: str, opts: Dict[str, Any]):
    """The ToolGenerator, its config and the tool context for the decoding options."""
    from toolformer.generation import ToolGenerator

    names: List[str] = [] if opts["no_tools"] else _tool_names(model_name, opts["tool_names"])
    from toolformer.tools.assembly import create_tools
    from toolformer.tools.base import get_tool_class
    from toolformer.tools.executor import ToolExecutor

    for name in names:  # an unknown tool fails before the model loads
        get_tool_class(name)
    # the checkpoint's safe options, then the user's
    from toolformer.tools.assembly import check_tool_options, parse_tool_options, run_tool_options

    tool_options = {}
    if names:
        user = parse_tool_options(opts.get("tool_option") or (), "--tool-option")
        tool_options = run_tool_options(model_name, user)
        check_tool_options(tool_options)  # a bad option fails before the model loads
    fields = {f.name for f in dataclasses.fields(GenerationConfig)}
    trigger = ("call_top_k", "call_threshold")
    config = GenerationConfig(
        **{k: v for k, v in opts.items() if k in fields and not (k in trigger and v is None)},
        tools_enabled=not opts["no_tools"],
    )
    config = resolve_trigger(config, model_name, any(opts.get(k) is not None for k in trigger))
    if opts.get("threads"):
        import torch

        torch.set_num_threads(opts["threads"])
    model, tok = load(model_name, opts["dtype"], opts["device"])
    # QA (when asked for) reads with this model instead of loading a second copy
    executor = ToolExecutor(
        create_tools(
            names,
            tool_options,
            model=model,
            tokenizer=tok,
            model_name=model_name,
            dtype=opts["dtype"],
        )
        if names
        else []
    )
    return ToolGenerator(model, tok, executor, config), names, _context(opts["date"])


def read_prompts(path: str) -> List[str]:
    """Prompts from a text file (one per line) or JSONL (a ``"prompt"`` field per line)."""
    from toolformer.errors import UserError
    from toolformer.records import undecodable

    prompts: List[str] = []
    # utf-8-sig: a file saved "UTF-8 with BOM" keeps its first prompt (and reads as JSONL)
    with open(path, encoding="utf-8-sig", errors="surrogateescape") as fh:
        lines = [line.rstrip("\n") for line in fh]
    for n, line in enumerate(lines, 1):  # a prompt is never silently changed or dropped
        bad = undecodable(line)
        if bad:
            raise UserError(f"{path}:{n} is not valid UTF-8 ({bad}); convert the file to UTF-8")
    jsonl = path.endswith(".jsonl") or (lines and lines[0].lstrip().startswith("{"))
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        if not jsonl:
            prompts.append(line)
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise UserError(
                f"{path}:{n}: not JSON ({exc}); use one JSON object per line or plain text"
            ) from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str):
            raise UserError(f'{path}:{n}: each JSONL line needs a string "prompt" field')
        prompts.append(row["prompt"])
    if not prompts:
        raise UserError(f"{path} holds no prompts")
    return prompts


def _done_rows(output: str, prompts: Sequence[str]) -> int:
    """How many prompts an earlier run already wrote to ``output`` (to resume after them)."""
    from toolformer.errors import UserError

    if not os.path.exists(output):
        return 0
    done = 0
    with open(output, encoding="utf-8") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                break  # a half-written last line: redo it
            if done >= len(prompts) or row.get("prompt") != prompts[done]:
                raise UserError(
                    f"{output} holds outputs of other prompts; pass --overwrite or another --output"
                )
            done += 1
    # drop a half-written tail so appending continues on a clean line
    with open(output, encoding="utf-8") as fh:
        good = [line for _, line in zip(range(done), fh)]
    with open(output, "w", encoding="utf-8") as fh:
        fh.writelines(good)
    return done


def _unescape(text: str) -> str:
    """``\\n`` typed on a command line becomes a newline (ASCII escapes only)."""
    if "\\" not in text or not text.isascii():
        return text
    import codecs

    return codecs.decode(text, "unicode_escape")


_PROMPT_ESCAPE = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\"}


def unescape_prompt(text: str) -> str:
    """``\\n``, ``\\t``, ``\\r`` and ``\\\\`` typed in a PROMPT argument become the characters
    (as llama.cpp's ``--escape``, on by default: a shell passes ``"Q: ...\\nA:"`` literally);
    any other backslash is kept, so ``\\frac`` or a Windows path stays as typed."""
    import re

    return re.sub(r"\\([ntr\\])", lambda m: _PROMPT_ESCAPE[m.group(1)], text)


def call_label(call: Any) -> str:
    """``⚙ Calculator(3*4) -> 12`` (or ``... ✗ error``)."""
    head = f"⚙ {call.tool or '?'}({call.args})"
    return f"{head} -> {call.result}" if call.ok else f"{head} ✗ {call.error}"


def _echo_call(call: Any, err: bool = False) -> None:
    click.echo(click.style(call_label(call), fg="cyan" if call.ok else "red"), err=err)


# --------------------------------------------------------------------------- generate


@click.command("generate")
@click.argument("model")
@click.argument("prompt", required=False)
@click.option(
    "--prompts-file",
    type=click.Path(exists=True, dir_okay=False),
    help='one prompt per line, or JSONL with a "prompt" field',
)
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False),
    help="write JSONL (prompt, text, calls, ...); an existing file is resumed",
)
@click.option("--overwrite", is_flag=True, help="start --output afresh instead of resuming it")
@click.option(
    "--stop", "stop_strings", multiple=True, help="stop string (repeatable), e.g. --stop '\\n'"
)
@click.option(
    "--escape/--no-escape",
    default=True,
    show_default=True,
    help=(
        "turn \\n, \\t, \\r and \\\\ in the PROMPT argument "
        "into the characters (not in --prompts-file)"
    ),
)
@_opt("--batch-size", "batch_size", type=int)
@generation_options
def generate(
    model: str,
    prompt: Optional[str],
    prompts_file: Optional[str],
    output: Optional[str],
    overwrite: bool,
    stop_strings: Tuple[str, ...],
    escape: bool,
    **opts: Any,
) -> None:
    """Continue PROMPT (or each prompt of --prompts-file) with MODEL, calling tools.

    MODEL is an alias (smollm2-135m, gemma3-270m), a Hugging Face id, or a fine-tuned
    checkpoint folder.
    """
    from toolformer.errors import UserError

    if (prompt is None) == (prompts_file is None):
        raise UserError("give either a PROMPT argument or --prompts-file FILE")
    opts["stop_strings"] = tuple(_unescape(s) for s in stop_strings)
    if prompt is not None and escape:
        prompt = unescape_prompt(prompt)
    prompts = [prompt] if prompt is not None else read_prompts(prompts_file)
    if output:  # a folder, or a parent that is a file: one line now, not after loading the model
        from toolformer.errors import ensure_file_parent

        ensure_file_parent(output, "the output file")
        from toolformer.output_lock import check_not_input, hold_output

        check_not_input(
            output, {"--prompts-file": prompts_file}, option="--output"
        )  # --overwrite would delete it
        # one run per output file (it resumes by appending): held until the command ends
        click.get_current_context().with_resource(
            hold_output(output, is_file=True, option="--output")
        )
    start = 0
    if output and os.path.exists(output) and not overwrite:
        start = _done_rows(output, prompts)
        if start:
            click.echo(
                f"resuming {output}: {start} of {len(prompts)} prompts already done", err=True
            )
    elif output and overwrite and os.path.exists(output):
        os.remove(output)
    if start >= len(prompts):
        return
    gen, names, context = build_generator(model, opts)
    todo = prompts[start:]
    gen.check_room(todo)  # a budget the context cannot hold: one line before any output

    if output is None and len(todo) == 1:  # stream one answer to the terminal
        click.echo(click.style(todo[0], bold=True), nl=False)
        out = gen.generate(
            todo, on_text=lambda _row, text: click.echo(text, nl=False), contexts=[context]
        )[0]
        click.echo()
        for call in out.calls:
            _echo_call(call, err=True)
        for w in out.warnings:
            click.echo(f"warning: {w}", err=True)
        return

    from tqdm import tqdm

    sink = open(output, "a", encoding="utf-8") if output else None
    try:
        step = gen.config.batch_size
        with tqdm(
            total=len(todo), desc="generate", unit="prompt", disable=None, file=sys.stderr
        ) as bar:
            for i in range(0, len(todo), step):
                batch = todo[i : i + step]
                outs = gen.generate(batch, contexts=[context] * len(batch))
                for out in outs:
                    if sink is not None:
                        sink.write(json.dumps(out.to_dict(), ensure_ascii=False) + "\n")
                    else:
                        click.echo(json.dumps(out.to_dict(), ensure_ascii=False))
                if sink is not None:
                    sink.flush()
                bar.update(len(batch))
    finally:
        if sink is not None:
            sink.close()
    if output:
        click.echo(f"wrote {len(todo)} outputs to {output}", err=True)


# --------------------------------------------------------------------------- chat


def decode_input_line(raw: bytes, n: int, encoding: str = "utf-8") -> Tuple[str, Optional[str]]:
    """Line ``n`` (1-based) of standard input as text, and a one-line notice or None.

    ``raw`` is decoded as ``encoding``, a byte order mark at the start of line 1 dropped. Bytes
    that do not decode become U+FFFD and the notice says so (never a traceback: the
    conversation goes on)."""
    notice = None
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        text = raw.decode(encoding, errors="replace")
        notice = (
            f"note: input line {n} is not valid {encoding} (byte 0x{raw[exc.start]:02x}); "
            "such bytes are read as U+FFFD"
        )
    return (text[1:] if n == 1 and text.startswith("\ufeff") else text), notice


CHAT_HELP = (
    "Commands: /help this text, /tools list the tools, /reset forget the conversation, "
    "/quit exit.\n"
    "Ctrl-C stops an answer; Ctrl-C or Ctrl-D at the prompt exits."
)


def _answer(gen: Any, session: ChatSession, user: str, context: Any) -> None:
    """Stream one answer; tool calls show as ``[⚙ Tool(args) -> result]``."""
    config = dataclasses.replace(gen.config, stop_strings=session.stop_strings)
    events = gen.stream(session.prompt(user), config, context=context)
    try:
        for e in events:
            if e.kind == "text":
                click.echo(e.text, nl=False)
            elif e.kind == "call_start":
                click.echo(click.style("[", fg="cyan"), nl=False)
            elif e.kind == "call_end":
                label = call_label(e.call) + "]"
                click.echo(click.style(label, fg="cyan" if e.call.ok else "red"), nl=False)
            elif e.kind == "done":
                click.echo()
                session.add(user, e.output.text)
    except KeyboardInterrupt:
        events.close()
        click.echo(click.style(" [stopped]", fg="yellow"))


@click.command("chat")
@click.argument("model")
@click.option("--system", default=None, help="a system message / preamble")
@click.option(
    "--template/--no-template",
    "use_template",
    default=None,
    help="use the tokenizer's chat template [default: when it has one]",
)
@generation_options
def chat(model: str, system: Optional[str], use_template: Optional[bool], **opts: Any) -> None:
    """Talk with MODEL; tool calls and their results are shown as they happen."""
    opts.setdefault("stop_strings", ())
    from toolformer.models import manifest_chat_roles

    roles = manifest_chat_roles(model)
    gen, names, context = build_generator(model, opts)
    session = ChatSession(gen.tokenizer, use_template, system, roles)
    tools = ", ".join(names) if names and gen.config.tools_enabled else "none"
    turns = (
        ""
        if session.use_template or roles is None
        else (
            f" Plain '{roles[0]}:' / '{roles[1]}:' turns, as "
            "it was trained; --template for the chat template."
        )
    )
    click.echo(
        f"toolformer chat with {model} (tools: {tools}).{turns} /help for commands.", err=True
    )
    # bytes, decoded line by line: input that is not UTF-8 is a notice, not a traceback
    stdin = click.get_binary_stream("stdin")
    encoding = getattr(sys.stdin, "encoding", None) or "utf-8"
    lineno = 0
    while True:
        try:
            click.echo(click.style("you> ", fg="green", bold=True), nl=False)
            raw = stdin.readline()
            lineno += 1
            line, notice = decode_input_line(raw, lineno, encoding)
            if line and not stdin.isatty():  # piped input is not echoed: the transcript shows it
                click.echo(line.rstrip("\n"))
            if notice:
                click.echo(notice, err=True)
        except KeyboardInterrupt:
            click.echo()
            break
        if not line:  # Ctrl-D / end of input
            click.echo()
            break
        text = line.strip()
        if not text:
            continue
        if text.startswith("/"):
            command = text.split()[0].lower()
            if command in ("/quit", "/exit", "/q"):
                break
            if command == "/help":
                click.echo(CHAT_HELP)
            elif command == "/tools":
                tools_on = (
                    gen.config.tools_enabled and gen.executor is not None and gen.executor.tools
                )
                if not tools_on:
                    click.echo("tools are disabled")
                for tool in gen.executor.tools.values() if tools_on else []:
                    click.echo(f"  {tool.name}: {tool.description}")
            elif command == "/reset":
                session.turns.clear()
                click.echo("conversation cleared")
            else:
                click.echo(f"unknown command {command}; /help lists the commands")
            continue
        click.echo(click.style("bot> ", fg="blue", bold=True), nl=False)
        _answer(gen, session, text, context)
    click.echo("bye", err=True)
