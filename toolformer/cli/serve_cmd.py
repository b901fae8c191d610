"""``toolformer serve MODEL``: an OpenAI-compatible HTTP server (a thin click layer over
:mod:`toolformer.serve`); the model, tools and decoding defaults are built as for ``generate``."""

from __future__ import annotations

from typing import Any, Optional

import click

from toolformer.cli.generate_cmd import _opt, generation_options


@click.command("serve")
@click.argument("model")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="address to listen on (0.0.0.0: every interface)",
)
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--served-name",
    default=None,
    help="the model id clients send and /v1/models lists [default: MODEL]",
)
@click.option(
    "--batch-wait-ms",
    type=click.FloatRange(min=0),
    default=5.0,
    show_default=True,
    help="after a request arrives, wait this long for more to decode in one batch",
)
@_opt("--max-batch", "batch_size", type=click.IntRange(min=1))
@click.option(
    "--tool-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=10.0,
    show_default=True,
    help="seconds a tool call may take; then it is a tool error",
)
@click.option(
    "--template/--no-template",
    "use_template",
    default=None,
    help="chat prompts through the tokenizer's chat template [default: plain turns when "
    "the adapter's toolformer.json names chat_roles, else the template]",
)
@generation_options
def serve(
    model: str,
    host: str,
    port: int,
    served_name: Optional[str],
    batch_wait_ms: float,
    tool_timeout: float,
    use_template: Optional[bool],
    **opts: Any,
) -> None:
    """Serve MODEL (an alias, folder or adapter name) with OpenAI's API: /v1/models,
    /v1/completions, /v1/chat/completions (stream or not) and /health. Tools run on the server
    as the model writes its calls; each response reports them in `toolformer_calls`.

    The decoding options are the defaults for requests that do not set max_tokens, temperature,
    top_p, stop or seed themselves.
    """
    from toolformer.errors import UserError

    try:
        import fastapi  # noqa: F401
        import uvicorn
    except ImportError as exc:  # the serve extra is optional
        raise UserError(
            f"toolformer serve needs FastAPI and uvicorn ({exc}): "
            "pip install 'toolformer[serve]' (or -e \".[serve]\")"
        ) from None

    from toolformer.cli.generate_cmd import build_generator
    from toolformer.models import manifest_chat_roles
    from toolformer.serve import create_app
    from toolformer.serve.server import bind

    opts.setdefault("stop_strings", ())
    max_batch = opts["batch_size"]
    sock = bind(host, port)  # a busy port fails before the model loads
    gen, names, context = build_generator(model, opts)
    if gen.executor is not None:
        gen.executor.timeout = tool_timeout
    app = create_app(
        gen,
        served_name or model,
        roles=manifest_chat_roles(model),
        use_template=use_template,
        context=lambda: context,
        batch_wait_ms=batch_wait_ms,
        max_batch=max_batch,
    )
    tools = ", ".join(names) if names and gen.config.tools_enabled else "none"
    click.echo(
        f"serving {served_name or model} (tools: {tools}) on "
        f"http://{host}:{sock.getsockname()[1]}/v1",
        err=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="info"))
    server.run(sockets=[sock])
