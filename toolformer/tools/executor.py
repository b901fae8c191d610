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
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

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
# A backslash the call parser would read as an escape: before ( ) \ or at the end.
_ESCAPING_BACKSLASH = re.compile(r"\\+(?=[()\\]|$)")


def sanitize_result(text: Any, max_chars: int = DEFAULT_MAX_RESULT_CHARS) -> str:
    """Make a tool's output safe to put inside ``[Tool(args) -> result]`` as plain text.

    Brackets become parentheses and ``->`` becomes ``-`` (neither may end or split a call),
    backslashes that the parser would read as escapes are dropped (so that writing the result
    raw, as generation does, and formatting it with ``format_call`` give the same text),
    whitespace is collapsed to single spaces, and the text is capped at ``max_chars``.
    """
    if max_chars < 2:
        raise ValueError("max_chars must be at least 2")
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
    text = _ESCAPING_BACKSLASH.sub("", text).strip()  # a dropped last backslash leaves a space
    while "->" in text:  # dropping a backslash can join "-" and ">"
        text = text.replace("->", "-")
    return text


class _Timeout(Exception):
    pass


def _call_with_timeout(fn: Callable[[], Any], timeout: float, name: str) -> Any:
    """Run ``fn`` in a daemon thread and wait at most ``timeout`` seconds.

    A daemon thread (not a ThreadPoolExecutor worker, which the interpreter joins at exit)
    so that a tool that hangs forever can be abandoned without blocking the process's exit.
    """
    box: Dict[str, Any] = {}
    done = threading.Event()

    def target() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            box["error"] = exc
        finally:
            done.set()

    threading.Thread(target=target, name=f"tool-{name}", daemon=True).start()
    if not done.wait(timeout):
        raise _Timeout()
    if "error" in box:
        raise box["error"]
    return box["value"]


def _notes(obj: Any) -> Dict[str, int]:
    """The counts a tool attached to its result or error (:class:`ToolOutput`), else {}."""
    notes = getattr(obj, "notes", None)
    if not isinstance(notes, Mapping):
        return {}
    return {str(k): v for k, v in notes.items() if isinstance(v, int) and not isinstance(v, bool)}


def _one_line(text: str, limit: int = 300) -> str:
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


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
        tools = list(tools)
        for t in tools:
            if not isinstance(t, Tool):
                raise TypeError(f"ToolExecutor expects Tool instances, got {type(t).__name__}")
        if timeout is not None and not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds, or None for no limit")
        self.tools: Dict[str, Tool] = {t.name: t for t in tools}
        self._lower = {name.lower(): name for name in self.tools}
        self.timeout = timeout
        self.max_result_chars = max_result_chars
        self.cache_size = cache_size
        self._cache: "OrderedDict[Tuple, ToolResult]" = OrderedDict()
        self._lock = threading.Lock()
        # run_many's parallel calls; each call that has a timeout runs in its own daemon thread
        self._batch_pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="calls")
        self.stats: Counter = Counter()

    def _count(self, **counts: float) -> None:
        with self._lock:  # Counter += is not atomic across threads
            for key, value in counts.items():
                self.stats[key] += value

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
        return (tool.name, args.strip(), tool.context_key(context))

    def _invoke(self, tool: Tool, args: str, context: Optional[ToolContext]) -> str:
        return tool.run(args, context)

    def run(
        self,
        call: Union[APICall, Tuple[str, str]],
        context: Optional[ToolContext] = None,
    ) -> ToolResult:
        """Run one call; the result's ``output`` is sanitised, failures fill ``error``."""
        name, args = (call.tool, call.args) if isinstance(call, APICall) else call
        self._count(calls=1)
        try:
            tool = self.resolve(name)
        except UnknownToolError as exc:
            self._count(unknown_tool=1, failed=1)
            return ToolResult(name, args, error=str(exc))

        key = self._key(tool, args, context)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
        if hit is not None:
            self._count(cached=1, failed=0 if hit.ok else 1)
            return ToolResult(
                tool.name, args, hit.output, hit.error, 0.0, True, hit.timed_out, hit.notes
            )

        start = time.perf_counter()
        timed_out = False
        notes: Dict[str, int] = {}
        try:
            if self.timeout is None:
                raw = self._invoke(tool, args, context)
            else:
                raw = _call_with_timeout(
                    lambda: self._invoke(tool, args, context), self.timeout, tool.name
                )
            notes = _notes(raw)  # a ToolOutput's counts
            output, error = sanitize_result(raw, self.max_result_chars), None
            if not output:
                output, error = None, f"{tool.name} returned an empty result"
        except _Timeout:
            timed_out = True
            output, error = None, f"{tool.name} timed out after {self.timeout:g}s"
        except ToolError as exc:
            notes = _notes(exc)  # counts of a failed search
            output, error = None, _one_line(str(exc)) or type(exc).__name__
        except Exception as exc:  # noqa: BLE001 - a tool's bug must not crash the caller
            output, error = None, f"{tool.name} failed: {type(exc).__name__}: {_one_line(str(exc))}"
        seconds = time.perf_counter() - start
        result = ToolResult(tool.name, args, output, error, seconds, False, timed_out, notes)
        self._count(
            executed=1, seconds=seconds, failed=int(error is not None), timeouts=int(timed_out)
        )
        if not timed_out and self.cache_size > 0:  # a timeout may be load; let a later call retry
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
            try:
                key = self._key(self.resolve(name), args, ctx)
            except UnknownToolError:
                key = ("?", name, args.strip())
            order.append(first.setdefault(key, i))
        distinct = sorted(set(order))
        if len(distinct) == 1:  # nothing to overlap: skip the thread hop
            done = {distinct[0]: self.run(calls[distinct[0]], contexts[distinct[0]])}
        else:
            futures = {
                i: self._batch_pool.submit(self.run, calls[i], contexts[i]) for i in distinct
            }
            done = {i: f.result() for i, f in futures.items()}
        out = []
        for i, j in enumerate(order):
            r = done[j]
            if i != j:  # a duplicate within the batch: served from the first one
                name, args = (
                    (calls[i].tool, calls[i].args) if isinstance(calls[i], APICall) else calls[i]
                )
                self._count(calls=1, cached=1, failed=0 if r.ok else 1)
                r = ToolResult(r.tool, args, r.output, r.error, 0.0, True, r.timed_out, r.notes)
            out.append(r)
        return out

    def clear_cache(self) -> None:
        """Forget every cached result."""
        with self._lock:
            self._cache.clear()

    def close(self) -> None:
        self._batch_pool.shutdown(wait=False, cancel_futures=True)

    def __enter__(self) -> "ToolExecutor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
