"""One row's state: output tokens and text, the open call, the forced-token queue, streaming."""

from __future__ import annotations

import re
from collections import deque
from typing import Any, Callable, Deque, List, Optional

from toolformer.generation.detok import _Detokenizer, find_stop
from toolformer.generation.rules import _Vocab
from toolformer.generation.types import (
    CallRecord,
    GenerationConfig,
    GenerationEvent,
    GenerationOutput,
)
from toolformer.syntax import ARROW, CALL_END, CALL_START, UNCLOSED, APICall, call_progress
from toolformer.tools.base import ToolContext, ToolResult

_NAME_ARGS = re.compile(r"\[\s*([A-Za-z_][A-Za-z0-9_.]*)?\s*(?:\((.*))?", re.S)


def _split_partial_call(text: str) -> tuple:
    """Best-effort ``(tool, args)`` of an unfinished call text such as ``[Calc(3*4]``."""
    m = _NAME_ARGS.match(text)
    if m is None:
        return "", text[1:]
    tool, args = m.group(1) or "", m.group(2) or ""
    for end in (")]", ")", "]"):
        cut = args.rfind(end)
        if cut >= 0:
            args = args[:cut]
            break
    return tool, args.strip()


class _Row:
    """Per-prompt state: output tokens and text, the open call, forced tokens, streaming cursor."""

    def __init__(
        self,
        index: int,
        prompt: str,
        prompt_ids: List[int],
        tokenizer: Any,
        context: Optional[ToolContext],
        warnings: List[str],
        hold: int,
        new_constraint: Any = None,
        room: Optional[int] = None,
        grammar_start: int = 0,
    ):
        self.index = index
        self.prompt = prompt
        # the call grammars read the prompt and the output from here: few-shot demonstrations
        # before it condition the model but lend no numbers to a call
        self.grammar_start = grammar_start
        self.prompt_ids = prompt_ids
        self.context = context
        self.warnings = warnings
        self.detok = _Detokenizer(tokenizer, prompt_ids)
        self.ids: List[int] = []
        self.text = ""
        self.queue: Deque[int] = deque()
        self.calls: List[CallRecord] = []
        self.calls_made = 0
        self.call_start: Optional[int] = None  # char offset of the open call's "["
        self.call_tokens = 0
        self.awaiting_result = False  # "->" seen, forced result not fully fed yet
        self.pending = None  # (APICall or error text) waiting for the executor
        self.stop_floor = 0  # stop strings are searched from here (after the last call)
        self.done = False
        self.finish_reason: Optional[str] = None
        self.cut: Optional[int] = None  # stop string position: the text ends there
        self.hold = hold  # chars held back from streaming while a stop string may be forming
        self.emitted = 0
        self.span_idx = 0
        self.span_started = False
        # (text before the call, budget) -> CallConstraint, and .possible(text): a CallGrammars
        self.new_constraint = new_constraint
        self._possible = (-1, True)  # (length of the text, whether a call may open after it)
        self.constraint: Any = None  # the open call's grammar state under constrained decoding
        # output tokens the model's context holds after the prompt (None: no known limit); a
        # tool result may pass max_new_tokens (it goes in whole), never this
        self.room = room

    @property
    def in_call(self) -> bool:
        return self.call_start is not None

    def call_allowed(self, config: GenerationConfig) -> bool:
        # not while the detokenizer holds half a character: the "[" would split it
        return (
            config.tools_enabled
            and not self.in_call
            and self.calls_made < config.max_calls
            and not self.detok.holding
            and self._call_possible()
        )

    def _call_possible(self) -> bool:
        """Whether some tool may be called after the text so far (constrained decoding: no
        ``[`` where no tool's grammar allows a call); asked once per length of the text."""
        if self.new_constraint is None:
            return True
        if self._possible[0] != len(self.text):
            before = self.grammar_text(len(self.text))
            self._possible = (len(self.text), self.new_constraint.possible(before))
        return self._possible[1]

    def grammar_text(self, end: int) -> str:
        """The text the call grammars read before output offset ``end``: the prompt from
        ``grammar_start`` on, then the output up to ``end``."""
        return (self.prompt + self.text[:end])[self.grammar_start :]

    def ends_in_word(self) -> bool:
        """Whether the text so far (prompt and output) ends in a letter or a digit."""
        last = (self.text or self.prompt)[-1:]
        return last.isalnum()

    def finish(self, reason: str) -> None:
        if not self.done:
            self.done, self.finish_reason = True, reason

    # -- token bookkeeping ---------------------------------------------------------------
    def push(self, token: int, vocab: _Vocab, config: GenerationConfig, forced: bool) -> None:
        """Append one output token and update the call state (may leave a pending call)."""
        self.ids.append(token)
        if not forced and token in vocab.eos_ids:
            self.finish("eos")
            return
        before = len(self.text)
        self.text += self.detok.push(token)
        opened = False
        if (
            not self.in_call
            and not forced
            and token in vocab.bracket_ids
            and self.call_allowed(config)
        ):
            self.call_start = self.text.find(CALL_START, before)
            if self.call_start < 0:  # the bracket is still held back by the detokenizer
                self.call_start = before
            self.call_tokens, self.calls_made, opened = 0, self.calls_made + 1, True
            self.calls.append(CallRecord("", "", None, None, 0.0, self.call_start))
        if self.in_call:
            self._advance_call(forced, config)  # the opening token too: " []" closes at once
            if opened and self.in_call and self.new_constraint is not None:
                # the grammar starts after the "[" (an opener token holds nothing else)
                # its budget: the call's tokens, and the output's, so that "->" comes in time
                budget = min(config.max_call_tokens - 1, config.max_new_tokens - len(self.ids))
                self.constraint = self.new_constraint(self.grammar_text(self.call_start), budget)
        if opened:
            self._check_stop(before, self.calls[-1].start, config)
        elif not self.in_call:
            self._check_stop(before, len(self.text), config)
        # a result being inserted goes in whole, with its "]": the text and the call record agree
        if len(self.ids) >= config.max_new_tokens and not self.awaiting_result:
            self.finish("length")
        if self.room is not None and len(self.ids) >= self.room:
            self.finish("length")

    def _advance_call(self, forced: bool, config: GenerationConfig) -> None:
        call_text = self.text[self.call_start :]
        record = self.calls[-1]
        if self.awaiting_result:
            if forced and not self.queue:  # the closing "]" of the inserted result
                self._close_call(len(self.text))
            return
        self.call_tokens += 1
        if self.constraint is not None and not forced:
            self.constraint.push(self.ids[-1])
        state, value = call_progress(call_text)
        if state == "closed":  # "]" before "->"
            record.tool, record.args = _split_partial_call(call_text[:value])
            record.error = UNCLOSED
            self._close_call(self.call_start + value)
            return
        if state in ("pending", "malformed"):
            if value is None:
                record.tool, record.args = _split_partial_call(
                    call_text[: call_text.rstrip().rfind(ARROW)]
                )
                self.pending = f"malformed call: {call_text.strip()[:60]!r} is not [Tool(args) ->"
            else:
                # the tool gets the arguments without surrounding spaces, as in annotation
                call = APICall(value.tool, value.args.strip())
                record.tool, record.args = call.tool, call.args
                self.pending = call
            self.awaiting_result = True
            self.constraint = None
            return
        if self.call_tokens >= config.max_call_tokens:
            record.tool, record.args = _split_partial_call(call_text)
            record.error = UNCLOSED
            self._close_call(len(self.text))

    def _close_call(self, end: int) -> None:
        self.calls[-1].end = end
        self.call_start = None
        self.constraint = None
        self.awaiting_result = False
        self.stop_floor = end

    def _check_stop(self, before: int, limit: int, config: GenerationConfig) -> None:
        if not config.stop_strings:
            return
        longest = max(len(s) for s in config.stop_strings)
        lo = max(self.stop_floor, before - longest + 1)
        at = find_stop(self.text, lo, limit, config.stop_strings)
        if at is not None:
            self.cut = at
            self.finish("stop")

    def apply_result(
        self, result: Optional[ToolResult], error: Optional[str], encode: Callable[[str], List[int]]
    ) -> None:
        """Record the executor's answer and queue the forced tokens of `` result]`` (or ``]``).

        The result goes in whole even past ``max_new_tokens``; one that the model's context
        cannot hold is left out (recorded as an error; only ``]`` goes in, or nothing when even
        that does not fit), so the text and the record always agree.
        """
        record = self.calls[-1]
        if result is not None:
            record.tool = result.tool or record.tool
            record.result, record.error = result.output, result.error
            record.seconds, record.cached = result.seconds, result.cached
        else:
            record.error = error
        text = f" {record.result}{CALL_END}" if record.ok else CALL_END
        tokens = encode(text)
        if self.room is not None and len(self.ids) + len(tokens) > self.room:
            if record.ok:  # (a tool's own error stays the call's error)
                record.result = None
                record.error = (
                    f"the result does not fit in the model's context "
                    f"({self.room} tokens after the prompt)"
                )
            tokens = encode(CALL_END)
            if len(self.ids) + len(tokens) > self.room:
                tokens = []
                self.finish("length")
        self.queue.extend(tokens)
        self.pending = None

    # -- finishing and streaming ---------------------------------------------------------
    def finalize(self) -> GenerationOutput:
        tail = self.detok.flush()
        if self.cut is None:
            self.text += tail
        else:
            self.text = self.text[: self.cut]
            # a call opened by the token that also completed the stop string is not part of the
            # output
            if self.calls and self.calls[-1].start >= self.cut:
                self.calls.pop()
                self.call_start = None
        if self.in_call:
            record = self.calls[-1]
            if not self.awaiting_result or self.pending is not None:
                record.tool, record.args = _split_partial_call(self.text[self.call_start :])
                record.error = UNCLOSED
            self._close_call(len(self.text))
        self.pending = None
        return GenerationOutput(
            prompt=self.prompt,
            text=self.text,
            calls=list(self.calls),
            num_tokens=len(self.ids),
            finish_reason=self.finish_reason or "length",
            warnings=list(self.warnings),
            prompt_tokens=len(self.prompt_ids),
        )

    def events(self, final: bool = False) -> List[GenerationEvent]:
        """Events for the text not streamed yet (all of it when ``final``)."""
        upto = len(self.text) if final else max(self.emitted, len(self.text) - self.hold)
        if self.cut is not None:
            upto = min(upto, self.cut)
        out: List[GenerationEvent] = []
        while True:
            span = self.calls[self.span_idx] if self.span_idx < len(self.calls) else None
            if span is None or self.emitted < span.start:
                stop = upto if span is None else min(upto, span.start)
                if stop > self.emitted:
                    out.append(GenerationEvent("text", self.index, self.text[self.emitted : stop]))
                    self.emitted = stop
                if span is None or self.emitted < span.start:
                    break
            if span.start > upto:
                break
            if not self.span_started:
                out.append(GenerationEvent("call_start", self.index, offset=span.start))
                self.span_started = True
            end = upto if span.end is None else min(upto, span.end)
            if end > self.emitted:
                out.append(
                    GenerationEvent(
                        "call_text", self.index, self.text[self.emitted : end], offset=span.start
                    )
                )
                self.emitted = end
            if span.end is not None and self.emitted >= span.end:
                out.append(GenerationEvent("call_end", self.index, offset=span.start, call=span))
                self.span_idx += 1
                self.span_started = False
                continue
            break
        return out
