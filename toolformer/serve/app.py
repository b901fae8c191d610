"""The FastAPI application: OpenAI-compatible routes over one batched :class:`ToolGenerator`.

Routes: ``GET /v1/models``, ``GET /v1/models/{id}``, ``POST /v1/completions``,
``POST /v1/chat/completions`` (both with ``stream: true`` as server-sent events) and
``GET /health``. Tools run on the server while the model writes; ``content`` (``text`` for
completions) is the text as the model wrote it, calls and results inline
(``[Calculator(3*4) -> 12]``), and each executed call is reported in the extension field
``toolformer_calls`` of the message (of the choice for completions; of the delta when streamed):
``{"tool", "args", "result", "error", "seconds", "start", "end", "cached"}``, where
``start``/``end`` are the call's character span in the text and ``error`` is set for a call that
failed, timed out or was malformed (a counted tool error, never an HTTP error).

Errors have OpenAI's body ``{"error": {"message", "type", "param", "code"}}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
import uuid
from collections import Counter
from typing import Any, AsyncIterator, Callable, Dict, List, Optional, Sequence, Tuple

from toolformer.errors import UserError
from toolformer.generation.types import GenerationConfig, GenerationEvent, GenerationOutput
from toolformer.serve.batcher import BatchWorker, Job
from toolformer.serve.prompts import chat_prompt
from toolformer.serve.schemas import ChatCompletionRequest, CompletionRequest


class APIError(Exception):
    """An error answered with OpenAI's error body and ``status``."""

    def __init__(
        self,
        status: int,
        message: str,
        param: Optional[str] = None,
        code: Optional[str] = None,
        type: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status, self.message, self.param = status, message, param
        self.code, self.type = code, type

    def body(self) -> Dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }


@dataclasses.dataclass
class ServerState:
    """What the routes share: the engine's worker, the served name and the counters."""

    generator: Any
    model_id: str
    worker: BatchWorker
    roles: Optional[Tuple[str, str]] = None
    use_template: Optional[bool] = None
    context: Callable[[], Any] = lambda: None
    stats: Counter = dataclasses.field(default_factory=Counter)
    created: int = dataclasses.field(default_factory=lambda: int(time.time()))

    @property
    def max_positions(self) -> Optional[int]:
        return getattr(self.generator, "max_positions", None)

    def check_model(self, name: str) -> None:
        if name != self.model_id:
            raise APIError(
                404,
                f"the model {name!r} does not exist; this server serves "
                f"{self.model_id!r} (GET /v1/models)",
                "model",
                "model_not_found",
            )

    def config(
        self, req: Any, prompts: Sequence[str], stops: Sequence[str], param: str
    ) -> GenerationConfig:
        """The request's decoding settings on top of the server's; checks the context."""
        base: GenerationConfig = self.generator.config
        limit = req.token_limit() or base.max_new_tokens
        ctx = self.max_positions
        if ctx is not None and limit >= ctx:
            raise APIError(
                400,
                f"max_tokens {limit} does not fit this model's context of {ctx} "
                f"tokens; ask for fewer",
                "max_tokens",
                "invalid_value",
            )
        if ctx is not None:
            for prompt in prompts:
                n = len(self.generator.tokenizer(prompt, add_special_tokens=True).input_ids)
                if n + limit > ctx:
                    raise APIError(
                        400,
                        f"this model's context is {ctx} tokens; the prompt has {n} "
                        f"and max_tokens asks for {limit}: shorten the prompt or "
                        f"lower max_tokens",
                        param,
                        "context_length_exceeded",
                    )
        changes: Dict[str, Any] = dict(
            max_new_tokens=limit,
            stop_strings=tuple(
                dict.fromkeys(tuple(base.stop_strings) + tuple(stops) + tuple(req.stop_list()))
            ),
        )
        if req.seed is not None:
            changes["seed"] = req.seed
        if req.temperature is not None:  # 0 = greedy; absent = the server's setting
            changes["do_sample"] = req.temperature > 0
            if req.temperature > 0:
                changes["temperature"] = req.temperature
        if req.top_p is not None:
            changes["top_p"] = req.top_p
        try:
            return dataclasses.replace(base, **changes)
        except UserError as exc:
            raise APIError(400, str(exc)) from None

    def count(self, output: GenerationOutput) -> None:
        self.stats.update(
            completions=1,
            tool_calls=len(output.calls),
            tool_errors=sum(1 for c in output.calls if c.error is not None),
        )


# --------------------------------------------------------------------------- responses


def _finish(output: GenerationOutput) -> str:
    return "length" if output.finish_reason == "length" else "stop"


def _usage(outputs: Sequence[GenerationOutput]) -> Dict[str, int]:
    prompt = sum(o.prompt_tokens for o in outputs)
    completion = sum(o.num_tokens for o in outputs)
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


def _extension(outputs: Sequence[GenerationOutput]) -> Dict[str, Any]:
    calls = [c for o in outputs for c in o.calls]
    return {
        "tool_calls": len(calls),
        "tool_errors": sum(1 for c in calls if c.error is not None),
        "warnings": [w for o in outputs for w in o.warnings],
    }


def _sse(payload: Any) -> str:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n"


class _Run:
    """The jobs of one request and the asyncio queue their events arrive on."""

    def __init__(self, state: ServerState, prompts: Sequence[str], config: GenerationConfig):
        loop = asyncio.get_running_loop()
        self.queue: "asyncio.Queue[Tuple[int, GenerationEvent]]" = asyncio.Queue()
        self.state = state
        self.jobs = []
        for i, prompt in enumerate(prompts):

            def sink(event: GenerationEvent, i: int = i) -> None:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody to tell
                    loop.call_soon_threadsafe(self.queue.put_nowait, (i, event))

            self.jobs.append(Job(prompt, config, sink, context=state.context()))
        for job in self.jobs:
            state.worker.submit(job)
        self.pending = len(self.jobs)

    async def events(self) -> AsyncIterator[Tuple[int, GenerationEvent]]:
        """Every event of every job until all are done; an engine failure raises APIError."""
        try:
            while self.pending:
                i, event = await self.queue.get()
                if event.kind == "error":
                    raise APIError(500, f"generation failed: {event.text}", type="server_error")
                if event.kind == "done":
                    self.pending -= 1
                    self.state.count(event.output)
                yield i, event
        finally:
            if self.pending:  # the client went away or the request failed: stop decoding it
                self.state.stats["cancelled_requests"] += 1
            for job in self.jobs:
                job.cancelled.set()

    async def outputs(self) -> List[GenerationOutput]:
        outs: List[Optional[GenerationOutput]] = [None] * len(self.jobs)
        async for i, event in self.events():
            if event.kind == "done":
                outs[i] = event.output
        return outs  # type: ignore[return-value]


async def _stream(
    run: _Run, chunk: Callable[..., Dict[str, Any]], chat: bool, usage: bool
) -> AsyncIterator[str]:
    """Server-sent events: text deltas, a delta per executed call, the finish, ``[DONE]``."""
    outputs: List[GenerationOutput] = []
    try:
        if chat:
            yield _sse(chunk(0, {"role": "assistant", "content": ""}))
        async for i, event in run.events():
            if event.kind in ("text", "call_text") and event.text:
                yield _sse(chunk(i, {"content": event.text} if chat else {"text": event.text}))
            elif event.kind == "call_end":
                calls = {"toolformer_calls": [event.call.to_dict()]}
                yield _sse(chunk(i, calls if chat else {"text": "", **calls}))
            elif event.kind == "done":
                outputs.append(event.output)
                yield _sse(chunk(i, {} if chat else {"text": ""}, _finish(event.output)))
        if usage:
            final = chunk(0, {})
            final["choices"], final["usage"] = [], _usage(outputs)
            yield _sse(final)
    except APIError as exc:
        yield _sse(exc.body())
    yield "data: [DONE]\n\n"


# --------------------------------------------------------------------------- the app


def create_app(
    generator: Any,
    model_id: str,
    *,
    roles: Optional[Tuple[str, str]] = None,
    use_template: Optional[bool] = None,
    context: Callable[[], Any] = lambda: None,
    batch_wait_ms: float = 5.0,
    max_batch: int = 16,
) -> Any:
    """The FastAPI app serving ``generator`` (a :class:`ToolGenerator`) as ``model_id``.

    ``roles``: plain chat turn labels (an adapter's manifest ``chat_roles``); ``use_template``:
    as ``toolformer chat --template`` (None: the template unless ``roles``); ``context()``: the
    :class:`ToolContext` of each request (the Calendar's date); ``batch_wait_ms``: how long the
    batching worker waits for more requests after one arrives; ``max_batch``: rows per batch.
    The worker thread stops when the app shuts down.
    """
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse, StreamingResponse
    from starlette.exceptions import HTTPException

    worker = BatchWorker(generator, wait_s=batch_wait_ms / 1000.0, max_batch=max_batch)
    state = ServerState(generator, model_id, worker, roles, use_template, context)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        yield
        await asyncio.to_thread(worker.close)

    app = FastAPI(title="toolformer", version="1", lifespan=lifespan)
    app.state.toolformer = state

    def error(exc: APIError) -> JSONResponse:
        state.stats[f"errors_{exc.status}"] += 1
        return JSONResponse(exc.body(), status_code=exc.status)

    @app.exception_handler(APIError)
    async def api_error(_request: Request, exc: APIError) -> JSONResponse:
        return error(exc)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"msg": "invalid request", "loc": ()}
        if first.get("type") == "json_invalid":
            detail = (first.get("ctx") or {}).get("error", "")
            return error(
                APIError(400, f"the body is not valid JSON ({detail})", None, "json_invalid")
            )
        loc = [str(x) for x in first.get("loc", ()) if x != "body"]
        param = ".".join(loc) or None
        message = f"{param}: {first['msg']}" if param else str(first["msg"])
        return error(APIError(400, message, param, "invalid_value"))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> JSONResponse:
        code = "not_found" if exc.status_code == 404 else None
        return error(APIError(exc.status_code, str(exc.detail), None, code))

    @app.exception_handler(Exception)
    async def crash(_request: Request, exc: Exception) -> JSONResponse:
        return error(APIError(500, f"{type(exc).__name__}: {exc}", type="server_error"))

    def model_card() -> Dict[str, Any]:
        return {
            "id": model_id,
            "object": "model",
            "created": state.created,
            "owned_by": "toolformer",
        }

    @app.get("/health")
    async def health() -> Dict[str, Any]:
        executor = getattr(generator, "_executor", None)
        return {
            "status": "ok",
            "model": model_id,
            "stats": dict(state.stats),
            "batching": dict(worker.stats),
            "executor": dict(executor.stats) if executor is not None else {},
        }

    @app.get("/v1/models")
    async def list_models() -> Dict[str, Any]:
        return {"object": "list", "data": [model_card()]}

    @app.get("/v1/models/{name:path}")
    async def get_model(name: str) -> Dict[str, Any]:
        state.check_model(name)
        return model_card()

    def respond(run: _Run, req: Any, chunk: Callable[..., Dict[str, Any]], chat: bool) -> Any:
        state.stats["requests"] += 1
        return StreamingResponse(
            _stream(run, chunk, chat, req.include_usage()),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache"},
        )

    @app.post("/v1/chat/completions")
    async def chat_completions(req: ChatCompletionRequest) -> Any:
        state.check_model(req.model)
        try:
            prompt, stops = chat_prompt(req.messages, generator.tokenizer, roles, use_template)
        except UserError as exc:
            raise APIError(400, str(exc), "messages", "invalid_value") from None
        config = state.config(req, [prompt], stops, "messages")
        run = _Run(state, [prompt], config)
        rid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(i: int, delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
            return {
                "id": rid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model_id,
                "choices": [
                    {"index": i, "delta": delta, "finish_reason": finish, "logprobs": None}
                ],
            }

        if req.stream:
            return respond(run, req, chunk, chat=True)
        state.stats["requests"] += 1
        out = (await run.outputs())[0]
        message = {
            "role": "assistant",
            "content": out.text,
            "toolformer_calls": [c.to_dict() for c in out.calls],
        }
        return {
            "id": rid,
            "object": "chat.completion",
            "created": created,
            "model": model_id,
            "choices": [
                {"index": 0, "message": message, "finish_reason": _finish(out), "logprobs": None}
            ],
            "usage": _usage([out]),
            "toolformer": _extension([out]),
        }

    @app.post("/v1/completions")
    async def completions(req: CompletionRequest) -> Any:
        state.check_model(req.model)
        prompts = req.prompts()
        if not prompts or any(not p for p in prompts):
            raise APIError(
                400, "prompt is empty: send a non-empty string", "prompt", "invalid_value"
            )
        config = state.config(req, prompts, (), "prompt")
        run = _Run(state, prompts, config)
        rid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(i: int, delta: Dict[str, Any], finish: Optional[str] = None) -> Dict[str, Any]:
            return {
                "id": rid,
                "object": "text_completion",
                "created": created,
                "model": model_id,
                "choices": [{"index": i, **delta, "finish_reason": finish, "logprobs": None}],
            }

        if req.stream:
            return respond(run, req, chunk, chat=False)
        state.stats["requests"] += 1
        outs = await run.outputs()
        choices = [
            {
                "index": i,
                "text": o.text,
                "finish_reason": _finish(o),
                "logprobs": None,
                "toolformer_calls": [c.to_dict() for c in o.calls],
            }
            for i, o in enumerate(outs)
        ]
        return {
            "id": rid,
            "object": "text_completion",
            "created": created,
            "model": model_id,
            "choices": choices,
            "usage": _usage(outs),
            "toolformer": _extension(outs),
        }

    return app
