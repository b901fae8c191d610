"""The engine: :class:`ToolGenerator` (batched, one KV cache, streamed) and the re-encoding
reference :func:`generate_reencode`."""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

from toolformer.constrain import CallConstraint, apply_masks, token_index
from toolformer.errors import UserError
from toolformer.generation.row import _Row
from toolformer.generation.rules import (
    _TokenTensors,
    _vocab_for,
    at_word_start,
    block_tokens,
    call_trigger,
    sample,
)
from toolformer.generation.types import GenerationConfig, GenerationEvent, GenerationOutput
from toolformer.grammar import call_grammar, tool_available
from toolformer.kv_cache import cache_kwargs, returned_cache
from toolformer.tools.assembly import DEFAULT_TOOLS, create_tools
from toolformer.tools.base import Tool, ToolContext, ToolResult
from toolformer.tools.executor import ToolExecutor


def _choose(
    rows: Sequence[_Row], logits: Any, sets: _TokenTensors, config: GenerationConfig, generator: Any
) -> List[int]:
    """Next token of each row from its ``logits[rows, vocab]``: blocks, call trigger, decoding."""
    logits = logits.float()
    if any(
        r.constraint is not None for r in rows
    ):  # inside constrained calls: the grammar's tokens
        apply_masks(
            logits, [r.constraint.allowed() if r.constraint is not None else None for r in rows]
        )
    allowed = [r.call_allowed(config) for r in rows]
    if config.tools_enabled and any(allowed):
        word = at_word_start(
            logits, sets.brackets, sets.continues_word, [r.ends_in_word() for r in rows]
        )
        allowed = [a and w for a, w in zip(allowed, word)]
    block_tokens(logits, [not a for a in allowed], sets.brackets)
    if config.constrained:  # a call opens with a bare "[": the grammar starts right after it
        block_tokens(logits, allowed, sets.non_open_brackets)
    trigger = call_trigger(
        logits, sets.brackets, sets.opens, config.call_top_k, config.call_threshold
    )
    forced = {i: t for i, t in enumerate(trigger) if t >= 0 and allowed[i]}
    if config.call_threshold > 0:  # below the calibrated threshold '[' may not be chosen either
        block_tokens(logits, [i not in forced for i in range(len(rows))], sets.brackets)
    if config.min_new_tokens:
        block_tokens(logits, [len(r.ids) < config.min_new_tokens for r in rows], sets.eos)
    if len(forced) == len(rows):
        return [forced[i] for i in range(len(rows))]
    if not config.do_sample:
        chosen = logits.argmax(dim=-1).tolist()
    else:
        chosen = sample(logits, config.temperature, config.top_k, config.top_p, generator).tolist()
    for i, tok in forced.items():
        chosen[i] = tok
    return chosen


ExecutorLike = Union[ToolExecutor, Mapping[str, Tool], Iterable[Tool], None]


def _check_starts(where: str, prompts: Sequence[str], starts: Optional[Sequence[int]]) -> None:
    """Raise ``ValueError`` unless ``starts`` is None or one offset per prompt, inside it."""
    if starts is None:
        return
    if len(starts) != len(prompts):
        raise ValueError(f"{where}: grammar_starts and prompts differ in length")
    for prompt, start in zip(prompts, starts):
        if isinstance(start, bool) or not isinstance(start, int) or not 0 <= start <= len(prompt):
            raise ValueError(
                f"{where}: grammar_starts holds {start!r}, not an offset from 0 to the prompt's "
                f"length ({len(prompt)})"
            )


class CallGrammars:
    """The calls that ``tools`` allow after a text: ``grammars(before, budget)`` is the
    :class:`CallConstraint` of a call that opens after the text ``before`` (None when no tool
    may be called there), ``grammars.possible(before)`` whether any may (a row must not write
    the ``[`` otherwise: the Calculator with ``numbers_from_text`` after a text without a
    number)."""

    def __init__(self, index: Any, tools: Sequence[Tool]):
        self.index, self.tools = index, list(tools)

    def __call__(self, before: str, budget: int) -> Optional[CallConstraint]:
        grammar = call_grammar(self.tools, "->", before)
        return None if grammar is None else CallConstraint(self.index, grammar, max(1, budget))

    def possible(self, before: str) -> bool:
        """Whether a call of some tool may open after ``before`` (each tool's cheap
        :meth:`~toolformer.tools.base.Tool.available`, not its grammar)."""
        return any(tool_available(t, before) for t in self.tools)


class ToolGenerator:
    """Generate text with tool calls from a causal LM: batched, one KV cache, streamable.

    ``executor``: a :class:`ToolExecutor`, or tools (a mapping or list) to wrap in one; ``None``
    builds one over the light built-ins (Calculator, Calendar) at the first call.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        executor: ExecutorLike = None,
        config: GenerationConfig = GenerationConfig(),
    ):
        self.model = model
        self.tokenizer = tokenizer
        self._executor = self._as_executor(executor)
        self._executor_error: Optional[str] = None
        self.config = config
        self.vocab = _vocab_for(tokenizer, model)
        self.pad_id = (
            tokenizer.pad_token_id
            if tokenizer.pad_token_id is not None
            else min(self.vocab.eos_ids or {0})
        )
        params = inspect.signature(model.forward).parameters
        self._keep_arg = "logits_to_keep" in params or any(
            p.kind == p.VAR_KEYWORD for p in params.values()
        )
        self.max_positions = self._max_positions(model)
        self._token_tensors: Dict[str, _TokenTensors] = {}
        self._checked: Any = None

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
                self._executor = ToolExecutor(create_tools(DEFAULT_TOOLS["generator"]))
            except Exception as exc:  # noqa: BLE001 - recorded on each call instead
                self._executor_error = f"could not load the default tools: {exc}"
        return self._executor

    def encode_prompt(self, prompt: str, config: GenerationConfig) -> tuple:
        """``(ids, warnings)``: the prompt's tokens, cut from the left to fit the context.

        Raises :class:`~toolformer.errors.UserError` when ``max_new_tokens`` leaves no room for
        the prompt in the context (it kept the prompt's last token and wrote past the context).
        """
        ids = self.tokenizer(prompt, add_special_tokens=True).input_ids
        warnings: List[str] = []
        if not ids:
            ids = [
                self.tokenizer.bos_token_id
                if self.tokenizer.bos_token_id is not None
                else self.pad_id
            ]
        if self.max_positions is not None:
            self._check_room(len(ids), config)
            keep = self.max_positions - config.max_new_tokens
            if len(ids) > keep:
                warnings.append(
                    f"prompt truncated from {len(ids)} to its last {keep} tokens "
                    f"(context {self.max_positions} - max_new_tokens {config.max_new_tokens})"
                )
                ids = ids[-keep:]
        return list(ids), warnings

    def _check_room(self, prompt_tokens: int, config: GenerationConfig) -> None:
        if self.max_positions is not None and config.max_new_tokens >= self.max_positions:
            raise UserError(
                f"GenerationConfig.max_new_tokens ({config.max_new_tokens}) must leave room for "
                f"the prompt: context {self.max_positions}, prompt {prompt_tokens} tokens; set "
                f"at most {max(1, self.max_positions - prompt_tokens)}",
                field="GenerationConfig.max_new_tokens",
            )

    def check_room(self, prompts: Sequence[str], config: Optional[GenerationConfig] = None) -> None:
        """Raise :class:`~toolformer.errors.UserError` at once (before any output) when
        ``max_new_tokens`` leaves no room in the model's context for a prompt."""
        config = config or self.config
        limit = self.max_positions
        if prompts and limit is not None and config.max_new_tokens >= limit:
            first = self.tokenizer(prompts[0], add_special_tokens=True).input_ids
            self._check_room(len(first), config)

    def encode_forced(self, text: str) -> List[int]:
        """Tokens of a forced text; special-token strings in tool output stay plain text."""
        return list(
            self.tokenizer(text, add_special_tokens=False, split_special_tokens=True).input_ids
        )

    def _new_rows(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        contexts: Optional[Sequence[Optional[ToolContext]]],
        offset: int = 0,
        grammar_starts: Optional[Sequence[int]] = None,
    ) -> List[_Row]:
        hold = max((len(s) for s in config.stop_strings), default=1) - 1
        new_constraint = self.constraint_factory(config)
        rows = []
        for i, prompt in enumerate(prompts):
            ids, warnings = self.encode_prompt(prompt, config)
            ctx = contexts[i] if contexts is not None else None
            room = None if self.max_positions is None else self.max_positions - len(ids)
            start = grammar_starts[i] if grammar_starts is not None else 0
            rows.append(
                _Row(
                    offset + i,
                    prompt,
                    ids,
                    self.tokenizer,
                    ctx,
                    warnings,
                    hold,
                    new_constraint,
                    room,
                    start,
                )
            )
        return rows

    def constraint_factory(self, config: GenerationConfig) -> Optional["CallGrammars"]:
        """The calls of the executor's tools, each under its argument grammar, ending in `` ->``
        (:class:`CallGrammars`); None when calls are not constrained (or no tools could be
        loaded). Raises :class:`~toolformer.grammar.GrammarError` for a grammar that cannot work
        with this tokenizer (a one-line user error)."""
        executor = (
            self.executor
            if (config.constrained and config.tools_enabled and config.max_calls)
            else None
        )
        if executor is None or not executor.tools:
            return None
        tools = list(executor.tools.values())
        index = token_index(self.tokenizer, self.vocab.vocab_size)
        key = (id(executor), tuple(tools))
        if self._checked != key:
            grammar = call_grammar(tools, "->")
            if grammar is not None:
                index.check(grammar)
            self._checked = key
        return CallGrammars(index, tools)

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
            results = executor.run_many(
                [r.pending for r in runnable], [r.context for r in runnable]
            )
        except Exception as exc:  # noqa: BLE001 - the executor should not raise; never crash
            results = [
                ToolResult(r.pending.tool, r.pending.args, error=f"executor failed: {exc}")
                for r in runnable
            ]
        for r, result in zip(runnable, results):
            r.apply_result(result, None, self.encode_forced)

    def _plan(
        self, rows: Sequence[_Row], logits: Any, config: GenerationConfig, generator: Any
    ) -> List[List[int]]:
        """The tokens each row feeds next: a chosen token, plus its forced result if it ran a
        call."""
        chunks: List[List[int]] = [[] for _ in rows]
        choosing = [i for i, r in enumerate(rows) if not r.queue]
        if choosing:
            sub = logits if len(choosing) == len(rows) else logits[choosing]
            picks = _choose(
                [rows[i] for i in choosing], sub, self._tensors(logits.device), config, generator
            )
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
        """Logits ``[rows, vocab]`` at the last position, from ``input_ids[rows, step]``,
        the whole ``mask[rows, past + step]`` and ``positions[rows, step]``; extends ``cache``."""
        kwargs = dict(
            input_ids=input_ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            **cache_kwargs(self.model, cache),
        )
        if self._keep_arg:
            kwargs["logits_to_keep"] = 1
        return self.model(**kwargs).logits[:, -1, :]

    def _decode_batch(
        self, rows: List[_Row], config: GenerationConfig, generator: Any
    ) -> Iterator[None]:
        """Decode ``rows`` together on one KV cache; yields after every step (for streaming).

        The prompts are left-padded to ``[rows, width]``; each step feeds ``[rows, step]`` tokens
        (``step`` = the longest chunk; shorter chunks get masked holes in front), so the mask grows
        to ``[rows, width + steps]`` and each row's positions count only its real tokens.
        """
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
                step_ids = torch.tensor(
                    [[self.pad_id] * (step - len(c)) + c for c in chunks],
                    dtype=torch.long,
                    device=device,
                )
                step_mask = (
                    torch.arange(step, device=device)[None, :] >= (step - lengths)[:, None]
                ).to(mask.dtype)
                step_pos = next_pos[:, None] + (step_mask.cumsum(-1) - 1).clamp(min=0)
                next_pos = next_pos + lengths
            mask = torch.cat([mask, step_mask], dim=-1)
            logits = self._forward(step_ids, mask, step_pos, cache)

    def _stream_rows(
        self,
        prompts: Sequence[str],
        config: GenerationConfig,
        contexts: Optional[Sequence[Optional[ToolContext]]],
        grammar_starts: Optional[Sequence[int]] = None,
    ) -> Iterator[List[GenerationEvent]]:
        import torch

        generator = None
        if config.do_sample and config.seed is not None:
            generator = torch.Generator(device=self.model.device).manual_seed(config.seed)
        # similar lengths together: less padding; outputs keep the prompts' order
        order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
        for start in range(0, len(order), config.batch_size):
            chunk = order[start : start + config.batch_size]
            rows = self._new_rows(
                [prompts[i] for i in chunk],
                config,
                [contexts[i] for i in chunk] if contexts is not None else None,
                grammar_starts=(
                    [grammar_starts[i] for i in chunk] if grammar_starts is not None else None
                ),
            )
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
        grammar_starts: Optional[Sequence[int]] = None,
    ) -> List[GenerationOutput]:
        """Continue each prompt; ``on_text(row, new_text)`` streams each row's text as it grows.

        ``contexts``: each prompt's :class:`~toolformer.tools.base.ToolContext` (None: none).
        ``grammar_starts``: for each prompt, the character offset where the text that the call
        grammars read begins (e.g. the Calculator's ``numbers_from_text``, which admits only the
        numbers written before a call, and decides whether a call may open at all); few-shot
        demonstrations before it condition the model but lend no numbers to a call. None (or
        0): the whole prompt. Raises ``ValueError`` when a list's length differs from the
        prompts' or a start lies outside its prompt."""
        config = config or self.config
        prompts = [prompts] if isinstance(prompts, str) else list(prompts)
        if contexts is not None and len(contexts) != len(prompts):
            raise ValueError("generate: contexts and prompts differ in length")
        _check_starts("generate", prompts, grammar_starts)
        outputs: List[Optional[GenerationOutput]] = [None] * len(prompts)
        for events in self._stream_rows(prompts, config, contexts, grammar_starts):
            for e in events:
                if e.kind == "done":
                    outputs[e.row] = e.output
                elif on_text is not None and e.kind in ("text", "call_text") and e.text:
                    on_text(e.row, e.text)
        return outputs  # type: ignore[return-value]

    def stream_batch(
        self,
        prompts: Sequence[str],
        config: Optional[GenerationConfig] = None,
        contexts: Optional[Sequence[Optional[ToolContext]]] = None,
        grammar_starts: Optional[Sequence[int]] = None,
    ) -> Iterator[List[GenerationEvent]]:
        """Events of several prompts decoded together, a list per step; each event's ``row`` is
        its prompt's index in ``prompts`` (a server routes them back to their requests).
        ``contexts`` and ``grammar_starts`` as in :meth:`generate`."""
        config = config or self.config
        if contexts is not None and len(contexts) != len(prompts):
            raise ValueError("stream_batch: contexts and prompts differ in length")
        _check_starts("stream_batch", prompts, grammar_starts)
        yield from self._stream_rows(list(prompts), config, contexts, grammar_starts)

    def stream(
        self,
        prompt: str,
        config: Optional[GenerationConfig] = None,
        context: Optional[ToolContext] = None,
        grammar_start: int = 0,
    ) -> Iterator[GenerationEvent]:
        """Events of one prompt as they happen: text, call start, call text, call end, done.
        ``grammar_start``: where in the prompt the text the call grammars read begins (as
        ``grammar_starts`` in :meth:`generate`)."""
        config = config or self.config
        _check_starts("stream", [prompt], [grammar_start])
        for events in self._stream_rows([prompt], config, [context], [grammar_start]):
            yield from events


# --------------------------------------------------------------------------- reference


def generate_reencode(
    model: Any,
    tokenizer: Any,
    prompts: Union[str, Sequence[str]],
    executor: ExecutorLike = None,
    config: Optional[GenerationConfig] = None,
    contexts: Optional[Sequence[Optional[ToolContext]]] = None,
    grammar_starts: Optional[Sequence[int]] = None,
) -> List[GenerationOutput]:
    """The naive reference: one prompt at a time, re-encoding the whole sequence after each call.

    Between calls it decodes one token at a time on a cache, like calling ``model.generate``
    again after every tool result. Same decisions as :class:`ToolGenerator`; used by the tests
    (token-for-token agreement) and the benchmark. ``contexts`` and ``grammar_starts`` as in
    :meth:`ToolGenerator.generate`.
    """
    import torch

    gen = ToolGenerator(model, tokenizer, executor, config or GenerationConfig())
    config = replace(gen.config, chunked_results=True)
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    _check_starts("generate_reencode", prompts, grammar_starts)
    generator = None
    if config.do_sample and config.seed is not None:
        generator = torch.Generator(device=model.device).manual_seed(config.seed)
    outputs = []
    for i, prompt in enumerate(prompts):
        row = gen._new_rows(
            [prompt],
            config,
            [contexts[i]] if contexts is not None else None,
            offset=i,
            grammar_starts=[grammar_starts[i]] if grammar_starts is not None else None,
        )[0]
        with torch.inference_mode():
            seq = torch.tensor([row.prompt_ids], device=model.device)
            out = model(input_ids=seq, use_cache=True)
            cache, logits = returned_cache(out), out.logits[:, -1, :]
            while True:
                chunk = gen._plan([row], logits, config, generator)[0]
                if row.done:
                    break
                seq = torch.cat([seq, torch.tensor([chunk], device=model.device)], dim=-1)
                if len(chunk) > 1:  # a tool result was inserted: re-encode everything
                    out = model(input_ids=seq, use_cache=True)
                else:
                    out = model(input_ids=seq[:, -1:], use_cache=True, **cache_kwargs(model, cache))
                cache, logits = returned_cache(out), out.logits[:, -1, :]
        outputs.append(row.finalize())
    return outputs
