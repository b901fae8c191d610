"""Tool-calling generation on one KV cache (paper, Section 4 "Inference"), batched and streamed.

Decoding is ordinary greedy or sampled decoding, except that

* a call starts whenever a ``[`` token is among the ``call_top_k`` most likely next tokens (the
  paper uses k = 10) and the row may still call: the bracket is forced;
* once the open call's text ends with ``->``, the call is parsed and run through a
  :class:`~toolformer.tools.executor.ToolExecutor`, and the tokens of ``" " + result + "]"`` are
  queued as *forced tokens* for that row (a per-row queue, as in nanochat's engine);
* with tools disabled, or once a row has made ``max_calls`` calls, or inside a call, every token
  that opens a bracket gets a logit of -inf ("Toolformer (disabled)" sets p(``[``) to 0).

One KV cache serves the whole batch and is never rebuilt: each step feeds every unfinished row
its next tokens, one chosen token or, for a row that has just finished ``->``, that token and its
whole forced result in the same forward pass. Rows feeding fewer tokens than the longest chunk of
the step are left-padded inside the step with masked "holes" (attention mask 0) and positions
that count only real tokens, so all rows advance together, the last position of every row is a
real token (``logits_to_keep=1``), and nothing is re-encoded. Finished rows leave the batch (their
cache rows are dropped). :func:`generate_reencode` is the naive reference that re-encodes the
whole sequence after each tool call; tests check both agree token for token.

Faults never raise; each is recorded in a :class:`CallRecord`:

* the model closes the call with ``]`` before writing ``->``, writes ``max_call_tokens`` tokens
  without ``->``, or the output ends inside the call: error ``"unclosed call"``; the text stays
  as the model wrote it and decoding goes on outside the call;
* ``->`` follows text that is not ``[Tool(args)``: error ``"malformed call: ..."``, and ``]`` is
  inserted (an empty result);
* unknown tool, tool error, timeout or empty result: the executor's error, and ``]`` is inserted;
* results are capped by the executor (``max_result_chars``);
* a prompt longer than the context keeps its last ``max_position_embeddings - max_new_tokens``
  tokens and the output carries a warning.

``max_new_tokens`` bounds every output token, forced ones included; a forced result cut by it
ends the output with ``finish_reason="length"``. Stop strings are searched in text outside calls;
the output text ends just before the stop string (it is not included).
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections import deque
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Deque, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from toolformer.syntax import ARROW, CALL_END, CALL_START, parse_pending_call
from toolformer.tools.base import Tool, ToolContext, ToolResult
from toolformer.tools.executor import ToolExecutor

DEFAULT_TOOLS = ("Calculator", "Calendar")
UNCLOSED = "unclosed call"
FINISH_REASONS = ("eos", "length", "stop")


# --------------------------------------------------------------------------- public types


@dataclass
class GenerationConfig:
    """Decoding settings; the call settings default to the paper's (top-10 trigger, one call)."""

    max_new_tokens: int = field(default=128, metadata={"help": "cap on output tokens, forced tool results included"})
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_k: int = field(default=0, metadata={"help": "sample among the k most likely tokens (0 = off)"})
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (1.0 = off)"})
    call_top_k: int = field(default=10, metadata={"help": "start a call whenever '[' is among the top-k next tokens (paper: 10)"})
    max_calls: int = field(default=1, metadata={"help": "calls per output (paper: 1)"})
    tools_enabled: bool = field(default=True, metadata={"help": "False = 'Toolformer (disabled)': p('[') set to 0"})
    stop_strings: tuple = field(default=(), metadata={"help": "stop when text outside a call contains one (not kept in the output)"})
    seed: Optional[int] = field(default=None, metadata={"help": "seed of the sampling generator"})
    max_call_tokens: int = field(default=64, metadata={"help": "tokens a call may take before '->'; more is an unclosed call"})
    min_new_tokens: int = field(default=0, metadata={"help": "EOS is blocked before this many output tokens (benchmarks)"})
    batch_size: int = field(default=16, metadata={"help": "prompts decoded together on one KV cache"})
    chunked_results: bool = field(default=True, metadata={"help": "feed a forced tool result in one forward pass (False: one token per step)"})

    def __post_init__(self) -> None:
        from toolformer.errors import UserError

        self.stop_strings = tuple(self.stop_strings or ())
        checks = [
            (self.max_new_tokens >= 1, "max_new_tokens must be >= 1"),
            (self.temperature > 0, "temperature must be > 0 (use do_sample=False for greedy)"),
            (self.top_k >= 0, "top_k must be >= 0"),
            (0 < self.top_p <= 1, "top_p must be in (0, 1]"),
            (self.call_top_k >= 0, "call_top_k must be >= 0"),
            (self.max_calls >= 0, "max_calls must be >= 0"),
            (self.max_call_tokens >= 1, "max_call_tokens must be >= 1"),
            (self.batch_size >= 1, "batch_size must be >= 1"),
            (all(isinstance(s, str) and s for s in self.stop_strings), "stop_strings must be non-empty strings"),
        ]
        for ok, message in checks:
            if not ok:
                raise UserError(f"GenerationConfig: {message}")


@dataclass
class CallRecord:
    """One call made during generation; ``start``/``end``: its character span in the output."""

    tool: str
    args: str
    result: Optional[str]
    error: Optional[str]
    seconds: float
    start: int
    end: Optional[int] = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class GenerationOutput:
    """The continuation of one prompt: ``prompt + text`` is the whole decoded sequence."""

    prompt: str
    text: str
    calls: List[CallRecord]
    num_tokens: int
    finish_reason: str  # "eos" | "length" | "stop"
    warnings: List[str] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def tool_seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "prompt": self.prompt,
            "text": self.text,
            "calls": [c.to_dict() for c in self.calls],
            "num_tokens": self.num_tokens,
            "finish_reason": self.finish_reason,
            "warnings": list(self.warnings),
        }


@dataclass
class GenerationEvent:
    """A streamed event of one row.

    ``kind``: ``"text"`` (text outside calls), ``"call_start"`` (a call opens at ``offset``),
    ``"call_text"`` (the call's own text, as the model and the tool write it), ``"call_end"``
    (the call is over; ``call`` holds its record) and ``"done"`` (``output`` holds the result).
    The ``text`` of the "text" and "call_text" events of a row add up to its output text.
    """

    kind: str
    row: int = 0
    text: str = ""
    offset: int = 0
    call: Optional[CallRecord] = None
    output: Optional[GenerationOutput] = None


# --------------------------------------------------------------------------- detokenizing


class _Detokenizer:
    """Incremental decoding that never splits a character and keeps leading spaces right.

    Each step decodes a short window that starts a few tokens back (the prompt's last tokens at
    first), so tokenizers that drop a word's leading space at the start of a decode still give
    the text that ``prompt + text`` would have; a trailing U+FFFD (an incomplete UTF-8 sequence)
    is held back until the next token completes it.
    """

    def __init__(self, tokenizer: Any, context_ids: Sequence[int]):
        self.tokenizer = tokenizer
        self.ids: List[int] = list(context_ids[-4:])
        self.prefix = 0
        self.read = len(self.ids)

    def _decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=False)

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix : self.read])
        now = self._decode(self.ids[self.prefix :])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before) :]
        return ""

    def flush(self) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        now = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return now[len(before) :]


# --------------------------------------------------------------------------- token sets


@dataclass(frozen=True)
class _Vocab:
    """Token ids the loop needs: call openers, bracket tokens, EOS."""

    open_ids: tuple  # tokens whose text is just "[" (with leading whitespace): forced to open a call
    bracket_ids: tuple  # every token whose text, left-stripped, starts with "[": trigger and block
    eos_ids: frozenset
    vocab_size: int


_VOCAB_CACHE: "weakref.WeakKeyDictionary[Any, _Vocab]" = weakref.WeakKeyDictionary()


def call_token_ids(tokenizer: Any) -> tuple:
    """``(open_ids, bracket_ids)``: tokens that are ``[`` (``[``, `` [``) and all that start with it."""
    vocab = _vocab_for(tokenizer, None)
    return vocab.open_ids, vocab.bracket_ids


def _vocab_for(tokenizer: Any, model: Any) -> _Vocab:
    try:
        cached = _VOCAB_CACHE.get(tokenizer)
    except TypeError:  # not weak-referenceable: no caching
        cached = None
    if cached is None:
        size = len(tokenizer)
        pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
        open_ids, bracket_ids = [], []
        special = set(getattr(tokenizer, "all_special_ids", []) or [])
        for i, piece in enumerate(pieces):
            # a cheap filter on the raw piece, then the decoded text decides
            if piece is None or ("[" not in piece and piece != "<0x5B>") or i in special:
                continue
            text = tokenizer.decode([i], clean_up_tokenization_spaces=False).lstrip()
            if text.startswith(CALL_START):
                bracket_ids.append(i)
                if text == CALL_START:
                    open_ids.append(i)
        eos = set()
        if tokenizer.eos_token_id is not None:
            eos.add(int(tokenizer.eos_token_id))
        cached = _Vocab(tuple(open_ids), tuple(bracket_ids), frozenset(eos), size)
        try:
            _VOCAB_CACHE[tokenizer] = cached
        except TypeError:
            pass
    eos = set(cached.eos_ids)
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        eos.update([int(gen_eos)] if isinstance(gen_eos, int) else [int(e) for e in gen_eos])
    return replace(cached, eos_ids=frozenset(eos))


# --------------------------------------------------------------------------- one row's state

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

    def __init__(self, index: int, prompt: str, prompt_ids: List[int], tokenizer: Any,
                 context: Optional[ToolContext], warnings: List[str], hold: int):
        self.index = index
        self.prompt = prompt
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

    @property
    def in_call(self) -> bool:
        return self.call_start is not None

    def call_allowed(self, config: GenerationConfig) -> bool:
        return config.tools_enabled and not self.in_call and self.calls_made < config.max_calls

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
        if not self.in_call and not forced and token in vocab.bracket_ids and self.call_allowed(config):
            self.call_start = self.text.find(CALL_START, before)
            if self.call_start < 0:  # the bracket is still held back by the detokenizer
                self.call_start = before
            self.call_tokens, self.calls_made, opened = 0, self.calls_made + 1, True
            self.calls.append(CallRecord("", "", None, None, 0.0, self.call_start))
        if self.in_call:
            self._advance_call(forced, config)  # the opening token too: " []" closes at once
        if opened:
            self._check_stop(before, self.calls[-1].start, config)
        elif not self.in_call:
            self._check_stop(before, len(self.text), config)
        if len(self.ids) >= config.max_new_tokens:
            self.finish("length")

    def _advance_call(self, forced: bool, config: GenerationConfig) -> None:
        call_text = self.text[self.call_start :]
        record = self.calls[-1]
        if self.awaiting_result:
            if forced and not self.queue:  # the closing "]" of the inserted result
                self._close_call(len(self.text))
            return
        self.call_tokens += 1
        close = call_text.find(CALL_END, 1)
        if close >= 0:  # closed before "->"
            record.tool, record.args = _split_partial_call(call_text[: close + 1])
            record.error = UNCLOSED
            self._close_call(self.call_start + close + 1)
            return
        if call_text.rstrip().endswith(ARROW):
            call = parse_pending_call(call_text)
            if call is None:
                record.tool, record.args = _split_partial_call(call_text[: call_text.rstrip().rfind(ARROW)])
                self.pending = f"malformed call: {call_text.strip()[:60]!r} is not [Tool(args) ->"
            else:
                record.tool, record.args = call.tool, call.args
                self.pending = call
            self.awaiting_result = True
            return
        if self.call_tokens >= config.max_call_tokens:
            record.tool, record.args = _split_partial_call(call_text)
            record.error = UNCLOSED
            self._close_call(len(self.text))

    def _close_call(self, end: int) -> None:
        self.calls[-1].end = end
        self.call_start = None
        self.awaiting_result = False
        self.stop_floor = end

    def _check_stop(self, before: int, limit: int, config: GenerationConfig) -> None:
        if not config.stop_strings:
            return
        longest = max(len(s) for s in config.stop_strings)
        lo = max(self.stop_floor, before - longest + 1)
        window = self.text[lo:limit]
        hits = [window.find(s) for s in config.stop_strings]
        hits = [h for h in hits if h >= 0]
        if hits:
            self.cut = lo + min(hits)
            self.finish("stop")

    def apply_result(self, result: Optional[ToolResult], error: Optional[str], encode: Callable[[str], List[int]]) -> None:
        """Record the executor's answer and queue the forced tokens of `` result]`` (or ``]``)."""
        record = self.calls[-1]
        if result is not None:
            record.tool = result.tool or record.tool
            record.result, record.error = result.output, result.error
            record.seconds, record.cached = result.seconds, result.cached
        else:
            record.error = error
        text = f" {record.result}{CALL_END}" if record.ok else CALL_END
        self.queue.extend(encode(text))
        self.pending = None

    # -- finishing and streaming ---------------------------------------------------------
    def finalize(self) -> GenerationOutput:
        tail = self.detok.flush()
        if self.cut is None:
            self.text += tail
        else:
            self.text = self.text[: self.cut]
            # a call opened by the token that also completed the stop string is not part of the output
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
                out.append(GenerationEvent("call_text", self.index, self.text[self.emitted : end], offset=span.start))
                self.emitted = end
            if span.end is not None and self.emitted >= span.end:
                out.append(GenerationEvent("call_end", self.index, offset=span.start, call=span))
                self.span_idx += 1
                self.span_started = False
                continue
            break
        return out


# --------------------------------------------------------------------------- token choice


@dataclass
class _TokenTensors:
    """The token sets as tensors on the model's device (built once per device)."""

    brackets: Any
    opens: Any
    eos: Any

    @classmethod
    def build(cls, vocab: _Vocab, device: Any) -> "_TokenTensors":
        import torch

        def t(ids: Iterable[int]) -> Any:
            return torch.tensor(sorted(ids), dtype=torch.long, device=device)

        return cls(t(vocab.bracket_ids), t(vocab.open_ids), t(vocab.eos_ids))


def _choose(rows: Sequence[_Row], logits: Any, sets: _TokenTensors, config: GenerationConfig,
            generator: Any) -> List[int]:
    """Next token of each row from its logits ``[rows, vocab]``: call trigger, blocks, decoding."""
    import torch

    logits = logits.float()
    n = logits.shape[0]
    allowed = [r.call_allowed(config) for r in rows]
    forced: Dict[int, int] = {}
    if sets.brackets.numel():
        blocked = [i for i in range(n) if not allowed[i]]
        if len(blocked) == n:
            logits[:, sets.brackets] = float("-inf")
        elif blocked:
            logits[torch.tensor(blocked, device=logits.device)[:, None], sets.brackets] = float("-inf")
        callers = [i for i in range(n) if allowed[i]]
        if callers and config.call_top_k > 0 and sets.opens.numel():
            sub = logits[callers] if len(callers) < n else logits
            # "[" is among the top k iff fewer than k tokens score above the best bracket token
            best_bracket = sub[:, sets.brackets].max(dim=-1).values
            hit = ((sub > best_bracket[:, None]).sum(dim=-1) < config.call_top_k).tolist()
            if any(hit):
                best = sets.opens[sub[:, sets.opens].argmax(dim=-1)].tolist()
                for j, i in enumerate(callers):
                    if hit[j]:
                        forced[i] = best[j]
    if config.min_new_tokens and sets.eos.numel():
        early = [i for i, r in enumerate(rows) if len(r.ids) < config.min_new_tokens]
        if early:
            logits[torch.tensor(early, device=logits.device)[:, None], sets.eos] = float("-inf")
    if len(forced) == n:
        return [forced[i] for i in range(n)]
    if not config.do_sample:
        chosen = logits.argmax(dim=-1).tolist()
    else:
        chosen = _sample(logits, config, generator).tolist()
    for i, tok in forced.items():
        chosen[i] = tok
    return chosen


def _sample(logits: Any, config: GenerationConfig, generator: Any) -> Any:
    import torch

    logits = logits / config.temperature
    if config.top_k > 0 and config.top_k < logits.shape[-1]:
        kth = logits.topk(config.top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if config.top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop = cum - sorted_logits.softmax(dim=-1) >= config.top_p  # keep the token crossing top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


# --------------------------------------------------------------------------- the engine


ExecutorLike = Union[ToolExecutor, Mapping[str, Tool], Iterable[Tool], None]


class ToolGenerator:
    """Generate text with tool calls from a causal LM: batched, one KV cache, streamable.

    ``executor``: a :class:`ToolExecutor`, or tools (a mapping or list) to wrap in one; ``None``
    builds one over the light built-ins (Calculator, Calendar) at the first call.
    """

    def __init__(self, model: Any, tokenizer: Any, executor: ExecutorLike = None,
                 config: GenerationConfig = GenerationConfig()):
        self.model = model
        self.tokenizer = tokenizer
        self._executor = self._as_executor(executor)
        self._executor_error: Optional[str] = None
        self.config = config
        self.vocab = _vocab_for(tokenizer, model)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.vocab.eos_ids or {0})
        params = inspect.signature(model.forward).parameters
        self._keep_arg = "logits_to_keep" in params or any(p.kind == p.VAR_KEYWORD for p in params.values())
        self.max_positions = self._max_positions(model)
        self._token_tensors: Dict[str, _TokenTensors] = {}

    # -- setup ---------------------------------------------------------------------------
    def _tensors(self, device: Any) -> _TokenTensors:
        key = str(device)
        if key not in self._token_tensors:
            self._token_tensors[key] = _TokenTensors.build(self.vocab, device)
        return self._token_tensors[key]

    @staticmethod
    def _as_executor(executor: ExecutorLike) -> Optional[ToolExecutor]:
        if executor is None or isinstance(executor, ToolExecutor):
            return executor
        return ToolExecutor(executor)

    @staticmethod
    def _max_positions(model: Any) -> Optional[int]:
        cfg = getattr(model, "config", None)
        if cfg is None:
            return None
        text_cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
        for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
            value = getattr(text_cfg, name, None)
            if isinstance(value, int) and value > 0:
                return value
        return None

    @property
    def executor(self) -> Optional[ToolExecutor]:
        if self._executor is None and self._executor_error is None:
            try:
                from toolformer.tools.base import create_tools

                self._executor = ToolExecutor(create_tools(list(DEFAULT_TOOLS)))
            except Exception as exc:  # noqa: BLE001 - recorded on each call instead
                self._executor_error = f"could not load the default tools: {exc}"
        return self._executor

    def encode_prompt(self, prompt: str, config: GenerationConfig) -> tuple:
        """``(ids, warnings)``: the prompt's tokens, cut from the left to fit the context."""
        ids = self.tokenizer(prompt, add_special_tokens=True).input_ids
        warnings: List[str] = []
        if not ids:
            ids = [self.tokenizer.bos_token_id if self.tokenizer.bos_token_id is not None else self.pad_id]
        if self.max_positions is not None:
            keep = max(1, self.max_positions - config.max_new_tokens)
            if len(ids) > keep:
                warnings.append(
                    f"prompt truncated from {len(ids)} to its last {keep} tokens "
                    f"(context {self.max_positions} - max_new_tokens {config.max_new_tokens})"
                )
                ids = ids[-keep:]
        return list(ids), warnings

    def encode_forced(self, text: str) -> List[int]:
        """Tokens of a forced text; special-token strings in tool output stay plain text."""
        return list(self.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids)

    def _new_rows(self, prompts: Sequence[str], config: GenerationConfig,
                  contexts: Optional[Sequence[Optional[ToolContext]]], offset: int = 0) -> List[_Row]:
        hold = max((len(s) for s in config.stop_strings), default=1) - 1
        rows = []
        for i, prompt in enumerate(prompts):
            ids, warnings = self.encode_prompt(prompt, config)
            ctx = contexts[i] if contexts is not None else None
            rows.append(_Row(offset + i, prompt, ids, self.tokenizer, ctx, warnings, hold))
        return rows

    # -- calls -----------------------------------------------------------------------------
    def _run_pending(self, rows: Sequence[_Row]) -> None:
        """Execute every call waiting on ``->`` (in parallel) and queue the forced results."""
        waiting = [r for r in rows if r.pending is not None]
        if not waiting:
            return
        runnable = [r for r in waiting if not isinstance(r.pending, str)]
        for r in waiting:
            if isinstance(r.pending, str):
                r.apply_result(None, r.pending, self.encode_forced)
        if not runnable:
            return
        executor = self.executor
        if executor is None:
            for r in runnable:
                r.apply_result(None, self._executor_error, self.encode_forced)
            return
        try:
            results = executor.run_many([r.pending for r in runnable], [r.context for r in runnable])
        except Exception as exc:  # noqa: BLE001 - the executor should not raise; never crash
            results = [ToolResult(r.pending.tool, r.pending.args, error=f"executor failed: {exc}") for r in runnable]
        for r, result in zip(runnable, results):
            r.apply_result(result, None, self.encode_forced)

    def _plan(self, rows: Sequence[_Row], logits: Any, config: GenerationConfig, generator: Any) -> List[List[int]]:
        """The tokens each row feeds next: a chosen token, plus its forced result if it ran a call."""
        chunks: List[List[int]] = [[] for _ in rows]
        choosing = [i for i, r in enumerate(rows) if not r.queue]
        if choosing:
            sub = logits if len(choosing) == len(rows) else logits[choosing]
            picks = _choose([rows[i] for i in choosing], sub, self._tensors(logits.device), config, generator)
            for i, tok in zip(choosing, picks):
                rows[i].push(tok, self.vocab, config, forced=False)
                chunks[i].append(tok)
        self._run_pending(rows)
        for i, r in enumerate(rows):
            while r.queue and not r.done and (config.chunked_results or not chunks[i]):
                tok = r.queue.popleft()
                r.push(tok, self.vocab, config, forced=True)
                chunks[i].append(tok)
        return chunks

    # -- the batched loop ------------------------------------------------------------------
    def _forward(self, input_ids: Any, mask: Any, positions: Any, cache: Any) -> Any:
        kwargs = dict(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                      past_key_values=cache, use_cache=True)
        if self._keep_arg:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs).logits[:, -1, :]

    def _decode_batch(self, rows: List[_Row], config: GenerationConfig, generator: Any) -> Iterator[None]:
        """Decode ``rows`` together on one KV cache; yields after every step (for streaming)."""
        import torch
        from transformers import DynamicCache

        device = self.model.device
        width = max(len(r.prompt_ids) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r.prompt_ids) :] = torch.tensor(r.prompt_ids)
            mask[i, width - len(r.prompt_ids) :] = 1
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ids, mask, positions = ids.to(device), mask.to(device), positions.to(device)
        cache = DynamicCache(config=self.model.config)
        logits = self._forward(ids, mask, positions, cache)
        next_pos = positions[:, -1] + 1
        active = list(rows)
        while active:
            chunks = self._plan(active, logits, config, generator)
            yield
            keep = [i for i, r in enumerate(active) if not r.done]
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, next_pos = mask[index], next_pos[index]
                active = [active[i] for i in keep]
                chunks = [chunks[i] for i in keep]
            step = max(len(c) for c in chunks)
            if step == 1:
                step_ids = torch.tensor(chunks, dtype=torch.long, device=device)
                step_mask = torch.ones((len(active), 1), dtype=mask.dtype, device=device)
                step_pos = next_pos[:, None]
                next_pos = next_pos + 1
            else:  # holes first, real tokens last: the last position is real for every row
                lengths = torch.tensor([len(c) for c in chunks], device=device)
                step_ids = torch.tensor([[self.pad_id] * (step - len(c)) + c for c in chunks],
                                        dtype=torch.long, device=device)
                step_mask = (torch.arange(step, device=device)[None, :] >= (step - lengths)[:, None]).to(mask.dtype)
                step_pos = next_pos[:, None] + (step_mask.cumsum(-1) - 1).clamp(min=0)
                next_pos = next_pos + lengths
            mask = torch.cat([mask, step_mask], dim=-1)
            logits = self._forward(step_ids, mask, step_pos, cache)

    def _stream_rows(self, prompts: Sequence[str], config: GenerationConfig,
                     contexts: Optional[Sequence[Optional[ToolContext]]]) -> Iterator[List[GenerationEvent]]:
        import torch

        generator = None
        if config.do_sample and config.seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(config.seed)
        # similar lengths together: less padding; outputs keep the prompts' order
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), config.batch_size):
            chunk = order[start : start + config.batch_size]
            rows = self._new_rows([prompts[i] for i in chunk], config,
                                  [contexts[i] for i in chunk] if contexts is not None else None)
            for r, i in zip(rows, chunk):
                r.index = i
            with torch.inference_mode():
                for _ in self._decode_batch(rows, config, generator):
                    events = [e for r in rows for e in r.events()]
                    if events:
                        yield events
            final: List[GenerationEvent] = []
            for r in rows:
                output = r.finalize()
                final.extend(r.events(final=True))
                final.append(GenerationEvent("done", r.index, output=output))
            yield final

    # -- public API ------------------------------------------------------------------------
    def generate(
        self,
        prompts: Union[str, Sequence[str]],
        config: Optional[GenerationConfig] = None,
        on_text: Optional[Callable[[int, str], None]] = None,
        contexts: Optional[Sequence[Optional[ToolContext]]] = None,
    ) -> List[GenerationOutput]:
        """Continue each prompt; ``on_text(row, new_text)`` streams each row's text as it grows."""
        config = config or self.config
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if contexts is not None and len(contexts) != len(prompts):
            raise ValueError("generate: contexts and prompts differ in length")
        outputs: List[Optional[GenerationOutput]] = [None] * len(prompts)
        for events in self._stream_rows(prompts, config, contexts):
            for e in events:
                if e.kind == "done":
                    outputs[e.row] = e.output
                elif on_text is not None and e.kind in ("text", "call_text") and e.text:
                    on_text(e.row, e.text)
        return outputs  # type: ignore[return-value]

    def stream(self, prompt: str, config: Optional[GenerationConfig] = None,
               context: Optional[ToolContext] = None) -> Iterator[GenerationEvent]:
        """Events of one prompt as they happen: text, call start, call text, call end, done."""
        config = config or self.config
        for events in self._stream_rows([prompt], config, [context]):
            yield from events


# --------------------------------------------------------------------------- reference


def generate_reencode(
    model: Any,
    tokenizer: Any,
    prompts: Union[str, Sequence[str]],
    executor: ExecutorLike = None,
    config: Optional[GenerationConfig] = None,
    contexts: Optional[Sequence[Optional[ToolContext]]] = None,
) -> List[GenerationOutput]:
    """The naive reference: one prompt at a time, re-encoding the whole sequence after each call.

    Between calls it decodes one token at a time on a cache, like calling ``model.generate``
    again after every tool result. Same decisions as :class:`ToolGenerator`; used by the tests
    (token-for-token agreement) and the benchmark.
    """
    import torch

    gen = ToolGenerator(model, tokenizer, executor, config or GenerationConfig())
    config = replace(gen.config, chunked_results=True)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    generator = None
    if config.do_sample and config.seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(config.seed)
    outputs = []
    for i, prompt in enumerate(prompts):
        row = gen._new_rows([prompt], config, [contexts[i]] if contexts is not None else None, offset=i)[0]
        with torch.inference_mode():
            seq = torch.tensor([row.prompt_ids], device=model.device)
            out = model(input_ids=seq, use_cache=True)
            cache, logits = out.past_key_values, out.logits[:, -1, :]
            while True:
                chunk = gen._plan([row], logits, config, generator)[0]
                if row.done:
                    break
                seq = torch.cat([seq, torch.tensor([chunk], device=model.device)], dim=-1)
                if len(chunk) > 1:  # a tool result was inserted: re-encode everything
                    out = model(input_ids=seq, use_cache=True)
                else:
                    out = model(input_ids=seq[:, -1:], past_key_values=cache, use_cache=True)
                cache, logits = out.past_key_values, out.logits[:, -1, :]
        outputs.append(row.finalize())
    return outputs
