"""The ``toolformer`` click group. Subcommands live in their own modules and load lazily,
so ``toolformer --help`` imports neither torch nor transformers."""

from __future__ import annotations

import errno
import importlib
import sys
from typing import Dict, List, Optional, Sequence

import click

from toolformer.cli.flags import in_flags

# name -> "module:attribute" of a click command or group
COMMANDS: Dict[str, str] = {
    "augment": "toolformer.cli.augment_cmd:augment",
    "finetune": "toolformer.cli.finetune_cmd:finetune",
    "generate": "toolformer.cli.generate_cmd:generate",
    "chat": "toolformer.cli.generate_cmd:chat",
    "eval": "toolformer.cli.eval_cmd:eval_command",
    "tools": "toolformer.cli.tools_cmd:tools",
    "models": "toolformer.cli.models_cmd:models",
    "demo": "toolformer.cli.demo_cmd:demo",
    "selftrain": "toolformer.cli.selftrain_cmd:selftrain",
    "export": "toolformer.cli.export_cmd:export",
    "calibrate": "toolformer.cli.calibrate_cmd:calibrate",
    "serve": "toolformer.cli.serve_cmd:serve",
}

HELP = {
    "augment": "Annotate a corpus with tool calls kept by the loss filter.",
    "finetune": "Fine-tune a model on augmented text.",
    "generate": "Generate text, calling tools as the model asks.",
    "chat": "Interactive tool-calling session.",
    "eval": "Evaluate a model on the paper's tasks.",
    "tools": "List and run tools.",
    "models": "List model aliases and load models.",
    "demo": "Load the default model and run every tool on real inputs.",
    "selftrain": "Self-training rounds (ReST) that teach the model to use its tools.",
    "export": "Export augmented data as inline text or chat-template tool calls.",
    "calibrate": "Fit when a model calls a tool (its call trigger) on dev items.",
    "serve": "Serve a model with an OpenAI-compatible HTTP API, tools run on the server.",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> Optional[click.Command]:
        spec = COMMANDS.get(name)
        if spec is None:
            return None
        module, _, attr = spec.partition(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # a command whose module is missing should not kill --help
            why = str(exc)  # `exc` is unbound once the except block ends

            @click.command(name=name, help=HELP.get(name, ""))
            def unavailable() -> None:
                raise click.ClickException(f"command {name!r} is unavailable: {why}")

            return unavailable

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def _user_error_types() -> tuple:
    from toolformer.errors import MissingDependencyError, UserError
    from toolformer.syntax import CallSyntaxError
    from toolformer.tools.base import UnknownToolError

    return (UserError, UnknownToolError, MissingDependencyError, CallSyntaxError, FileNotFoundError)


def user_message(exc: BaseException, command: Optional[str] = None) -> Optional[str]:
    """The one-line message for a user's mistake, or None for a bug (which keeps its traceback).

    The config fields a :class:`~toolformer.errors.UserError` names are written as the flags
    of ``command`` (``EvalConfig.limit`` -> ``--limit``). An ``OSError`` that names a path (a
    folder that is a file, permission denied, disk full) is a problem with a path the user gave
    or with the machine, never a bug of ours: one line too.
    """
    if isinstance(exc, _user_error_types()) and not (
        isinstance(exc, FileNotFoundError) and getattr(exc, "filename", None) is not None
    ):
        return " ".join(in_flags(str(exc), getattr(exc, "fields", ()), command).split())
    if isinstance(exc, OSError) and getattr(exc, "filename", None) is not None:
        from toolformer.errors import path_error

        return str(path_error(exc.filename, exc, None))
    if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:  # e.g. disk full while writing
        return f"{exc.strerror or exc}; free space or choose another --output"
    return None


# OS errors that come from the machine or the paths the user chose, never from a bug of ours
_MACHINE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO}


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="toolformer")
@click.option(
    "--trust-pickle-weights",
    is_flag=True,
    help="also load model weights stored as pickle (pytorch_model.bin), which can run code "
    "when loaded; by default only safetensors are read",
)
def cli(trust_pickle_weights: bool) -> None:
    """toolformer: teach a language model to use tools (Schick et al. 2023).

    Augment a corpus with tool calls, fine-tune on it, generate with tools, evaluate.
    """
    if trust_pickle_weights:  # read by toolformer.models, in this process and its workers
        import os

        os.environ["TOOLFORMER_TRUST_PICKLE_WEIGHTS"] = "1"


def command_name(args: Sequence[str]) -> Optional[str]:
    """The subcommand of a ``toolformer ARGS`` command line (the group's options take no value)."""
    return next((a for a in args if not a.startswith("-")), None)


def main(argv: Optional[List[str]] = None) -> None:
    """Console entry point: user mistakes end in a one-line message, not a traceback."""
    try:
        cli.main(args=argv, standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001
        message = user_message(exc, command_name(sys.argv[1:] if argv is None else argv))
        if message is not None:
            click.echo(f"Error: {message}", err=True)
            sys.exit(2)
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
