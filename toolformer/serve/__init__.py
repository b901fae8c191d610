"""An OpenAI-compatible HTTP server for a tool-using model (``toolformer serve MODEL``).

:mod:`.app` (the FastAPI routes and the response format), :mod:`.batcher` (the background
worker that decodes requests arriving together as one batch), :mod:`.schemas` (request bodies),
:mod:`.prompts` (chat messages to a prompt) and :mod:`.server` (uvicorn in a thread).
FastAPI and uvicorn are the ``serve`` extra: ``pip install -e ".[serve]"``.
"""

from toolformer.serve.batcher import BatchWorker, Job
from toolformer.serve.server import serve_in_thread

__all__ = ["BatchWorker", "Job", "create_app", "serve_in_thread"]


def create_app(*args, **kwargs):
    """:func:`toolformer.serve.app.create_app` (imported here on use: it needs FastAPI)."""
    from toolformer.serve.app import create_app as _create

    return _create(*args, **kwargs)
