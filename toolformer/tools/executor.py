"""Runs tool calls safely: timeouts, a result cache, output sanitising, failure counting.

Whatever a tool does (raise, hang, return a huge or bracket-laden string) the caller gets a
:class:`ToolResult`; nothing is raised into an annotation pipeline or a generation loop.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter, OrderedDict
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from toolformer.syntax import APICall
from toolformer.tools.base import (
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    UnknownToolError,
)

DEFAULT_TIMEOUT = 30.0
DEFAULT_MAX_RESULT_CHARS = 300

_WS = re.compile(r"\s+")


def sanitize_result(text: str, max_chars: int = DEFAULT_MAX_RESULT_CHARS) -> str:
    """Make a tool's output safe to put inside ``[Tool(args) -> result]``.

    Brackets become parentheses and ``->`` becomes ``-`` (neither may end or split a call),
    whitespace is collapsed to single spaces, and the text is capped at ``max_chars``.
    """
    text = str(text).replace("[", "(").replace("]", ")")
    while "->" in text:
        text = text.replace("->", "-")
    text = _WS.sub(" ", text).strip()
    if len(text) > max_chars:
        cut = text[: max_chars - 1]
        space = cut.rfind(" ")
        if space > max_chars // 2:
            cut = cut[:space]
        text = cut.rstrip() + "…"
    return text


class ToolExecutor:
    """Execute calls against a set of tools with a per-call timeout and an LRU result cache."""

    def __init__(
        self,
        tools: Union[Mapping[str, Tool], Iterable[Tool]],
        *,
        timeout: Optional[float] = DEFAULT_TIMEOUT,
        max_result_chars: int = DEFAULT_MAX_RESULT_CHARS,
        cache_size: int = 100_000,
        max_workers: int = 4,
    ):
        if isinstance(tools, Mapping):
            tools = list(tools.values())
        self.tools: Dict[str, Tool] = {t.name: t for t in tools}
        self._lower = {name.lower(): name for name in self.tools}
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        self.cache_size = cache_size
        self._cache: "OrderedDict[Tuple, ToolResult]" = OrderedDict()
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="tool")
        # run_many's callers wait on ``_pool``; they need threads of their own or they deadlock
        self._batch_pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="calls")
        self.stats: Counter = Counter()

    # -- lookup ---------------------------------------------------------------------------
    def resolve(self, name: str) -> Tool:
        """The tool called ``name`` (case-insensitive), or :class:`UnknownToolError`."""
        if name in self.tools:
            return self.tools[name]
        if name.lower() in self._lower:
            return self.tools[self._lower[name.lower()]]
        raise UnknownToolError(name, self.tools)

    # -- execution ------------------------------------------------------------------------
    def _key(self, tool: Tool, args: str, context: Optional[ToolContext]) -> Tuple:
        return (tool.name, args.strip(), context if tool.uses_context else None)

    def _invoke(self, tool: Tool, args: str, context: Optional[ToolContext]) -> str:
        return tool.run(args, context)

    def run(
        self,
        call: Union[APICall, Tuple[str, str]],
        context: Optional[ToolContext] = None,
    ) -> ToolResult:
        """Run one call; the result's ``output`` is sanitised, failures fill ``error``."""
        name, args = (call.tool, call.args) if isinstance(call, APICall) else call
        self.stats["calls"] += 1
        try:
            tool = self.resolve(name)
        except UnknownToolError as exc:
            self.stats["unknown_tool"] += 1
            self.stats["failed"] += 1
            return ToolResult(name, args, error=str(exc))

        key = self._key(tool, args, context)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            self.stats["cached"] += 1
            if not hit.ok:
                self.stats["failed"] += 1
            return ToolResult(tool.name, args, hit.output, hit.error, 0.0, True, hit.timed_out)

        start = time.perf_counter()
        timed_out = False
        try:
            if self.timeout is None:
                raw = self._invoke(tool, args, context)
            else:
                future = self._pool.submit(self._invoke, tool, args, context)
                raw = future.result(timeout=self.timeout)
            output, error = sanitize_result(raw, self.max_result_chars), None
            if not output:
                output, error = None, f"{tool.name} returned an empty result"
        except FutureTimeout:
            timed_out = True
            output, error = None, f"{tool.name} timed out after {self.timeout:g}s"
        except ToolError as exc:
            output, error = None, str(exc) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a tool's bug must not crash the caller
            output, error = None, f"{tool.name} failed: {type(exc).__name__}: {exc}"
        seconds = time.perf_counter() - start
        result = ToolResult(tool.name, args, output, error, seconds, False, timed_out)
        self.stats["executed"] += 1
        self.stats["seconds"] += seconds
        if error is not None:
            self.stats["failed"] += 1
            if timed_out:
                self.stats["timeouts"] += 1
        if not timed_out:  # a timeout may be load; let a later call try again
            with self._lock:
                self._cache[key] = result
                if len(self._cache) > self.cache_size:
                    self._cache.popitem(last=False)
        return result

    def run_many(
        self,
        calls: Sequence[Union[APICall, Tuple[str, str]]],
        contexts: Optional[Sequence[Optional[ToolContext]]] = None,
    ) -> List[ToolResult]:
        """Run several calls, each distinct call once, independent tools in parallel."""
        contexts = list(contexts) if contexts is not None else [None] * len(calls)
        if len(contexts) != len(calls):
            raise ValueError("run_many: calls and contexts differ in length")
        first: Dict[Tuple, int] = {}
        order: List[int] = []
        for i, (c, ctx) in enumerate(zip(calls, contexts)):
            name, args = (c.tool, c.args) if isinstance(c, APICall) else c
            order.append(first.setdefault((name, args.strip(), ctx), i))
        futures = {
            i: self._batch_pool.submit(self.run, calls[i], contexts[i]) for i in set(order)
        }
        done = {i: f.result() for i, f in futures.items()}
        out = []
        for i, j in enumerate(order):
            r = done[j]
            if i != j:  # a duplicate within the batch: served from the first one
                self.stats["calls"] += 1
                self.stats["cached"] += 1
                r = ToolResult(r.tool, r.args, r.output, r.error, 0.0, True, r.timed_out)
            out.append(r)
        return out

    def close(self) -> None:
        self._batch_pool.shutdown(wait=False, cancel_futures=True)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "ToolExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
