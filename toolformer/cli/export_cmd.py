"""``toolformer export``: an augmented dataset as inline text or as chat-template tool calls."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Optional

import click

from toolformer.atomic import atomic_write, temporary_path


@click.command(name="export")
@click.argument("source", type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "chat"]),
    default="jsonl",
    show_default=True,
    help="jsonl: the inline text with [Tool(args) -> result] calls; chat: Hugging Face "
    "'messages' with tool_calls and tool turns, and the tools' JSON schemas",
)
@click.option(
    "--output", "-o", type=click.Path(), default=None, help="output JSONL file (default: stdout)"
)
def export(source: str, fmt: str, output: Optional[str]) -> None:
    """Export the augmented data of SOURCE (an augment output folder or its data.jsonl).

    \b
    toolformer export runs/augment --format chat -o chat.jsonl
    # then: tokenizer.apply_chat_template(row["messages"], tools=row["tools"])
    """
    from toolformer.cli.main import user_message
    from toolformer.data_aug.export import data_file, export_rows
    from toolformer.output_lock import check_not_input, hold_output

    tmp = temporary_path(output) if output else None
    held = contextlib.ExitStack()
    try:
        if output is not None:  # -o RUN/data.jsonl would replace the data being read
            check_not_input(output, {"SOURCE": data_file(source)}, option="-o")
            held.enter_context(hold_output(output, is_file=True, option="-o"))
        rows = export_rows(source, fmt)
        first = next(rows, None)  # bad input fails here, before an output file is made
        if first is None:
            raise click.ClickException(
                f"{source} holds no augmented rows to export (augment writes only "
                "documents with a kept call to data.jsonl: its summary says how many)"
            )
        if output is None:
            _write(sys.stdout, first, rows)
            return
        written: list = []  # the row count, set inside the atomic write

        def write(path: Path) -> None:
            with open(path, "w", encoding="utf-8") as fh:
                written.append(_write(fh, first, rows))

        try:
            atomic_write(output, write)
        except OSError as exc:  # name the path the user gave, not our temporary file
            from toolformer.errors import path_error

            named = _as_output_error(exc, tmp, output)
            raise path_error(output, named, "the output file") from None
        click.echo(f"wrote {written[0]} rows ({fmt}) to {output}", err=True)
    except click.ClickException:
        raise
    except Exception as exc:  # a user's mistake is one line; a bug keeps its traceback
        message = user_message(exc, "export")
        if message is None:
            raise
        raise click.ClickException(message) from None
    finally:
        held.close()


def _write(fh, first, rows) -> int:
    n = 0
    for row in [first, *rows]:
        fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n


def _as_output_error(exc: OSError, tmp: Path, output: str) -> OSError:
    """``exc`` with the temporary file's name replaced by ``output`` (the error is about it)."""
    named = str(exc.filename) if exc.filename is not None else None
    if named is not None and named != str(tmp):
        return exc
    return type(exc)(exc.errno, exc.strerror, output)
