"""The loss-filtered annotator: prefilter -> positions -> sampling -> execution -> scoring -> merge.

``Annotator(model, tokenizer, tools, config, executor).annotate(doc)`` returns the document with
every call that passed the loss filter inserted (paper, Section 2). Per document and tool:

1. prefilter (:mod:`~toolformer.data_aug.heuristics`), per window of ``max_length`` tokens
   (each window is annotated like a document; its losses still see the tokens after it);
2. one forward pass over [P(x), x], the few-shot prefix of P(x) coming from a KV cache computed
   once per tool, gives p(`[`) everywhere; positions above tau_s, the k best, are kept;
3. m calls per position are sampled in batches that continue that pass's cache;
4. the distinct calls of all tools run through the :class:`~toolformer.tools.ToolExecutor`;
5. L_i(empty) (one pass over [BOS, x]), L_i(e(c, r)) and L_i(e(c, empty)) come from batched
   :class:`~toolformer.data_aug.scoring.Scorer` calls; a call is kept if L- - L+ >= tau_f. Each
   loss is computed only where it can still change the decision (:meth:`Annotator._lazy_losses`:
   no L+ where L_i(empty) < tau_f, no L_i(e(c, empty)) where L_i(empty) - L+ < tau_f), unless
   ``record_candidates`` asks for every loss;
6. the kept calls of all tools are merged into the text, at most one per position (best score)
   and the same call at most once per ``repeat_window`` tokens.

Errors never escape :meth:`Annotator.annotate`: they land in ``AnnotationResult.error``.

Counters (``AnnotationResult.stats``, each also as ``"<Tool>/<name>"``): positions_kept,
positions_no_call (kept positions where the tool cannot be called under ``constrained``: its
grammar there is :data:`~toolformer.grammar.NO_CALL`, e.g. the Calculator with
``numbers_from_text`` before any number; no call is sampled there), candidates_sampled (rows),
candidates_closed (reached ``]``), candidates_malformed (closed but not a call of the tool),
candidates_abandoned (stopped early, see ``abandon_samples``: never closed), candidates_invalid
(a call the tool rejects, :meth:`~toolformer.tools.base.Tool.check_call`: dropped before
execution and scoring), candidates_deduplicated (dropped), candidates_executed,
tool_failures, retrieval_self_excluded (passages a search left out of a candidate's result as
the annotated document itself, :mod:`toolformer.tools.self_retrieval`), calls_repeated (the same
call again within ``repeat_window`` tokens), calls_kept;
docs_prefiltered_out counts documents no tool was tried on (``"<Tool>/docs_prefiltered_out"``:
documents that tool was not tried on).
"""

from __future__ import annotations

import datetime as _dt
import math
import time
from collections import Counter, defaultdict
from dataclasses import asdict
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from toolformer.constrain import token_index
from toolformer.data_aug.heuristics import PrefilterDecision, PrefilterInput, prefilter
from toolformer.data_aug.prefix_cache import (
    DocChunk,
    PromptCache,
    ToolPrompt,
    cache_kv,
    chunk_document,
    encode,
    lm_parts,
    start_ids,
)
from toolformer.data_aug.sampling import (
    BracketTokens,
    bracket_probs,
    dedupe,
    parse_candidate,
    row_seed,
    sample_calls,
    select_positions,
)
from toolformer.data_aug.scoring import Scorer, keep_decision
from toolformer.data_aug.types import (
    COUNTERS,  # noqa: F401 - the counters this module counts
    AnnotationResult,
    AnnotatorConfig,
    Document,
    KeptCall,
    window_key,
)
from toolformer.errors import UserError
from toolformer.grammar import call_grammar
from toolformer.syntax import APICall, format_call, insert_calls
from toolformer.tools.base import SourceDocument, Tool, ToolContext
from toolformer.tools.self_retrieval import SELF_EXCLUDED, default_corpus_title, following_text

STAGES = ("prefilter", "positions", "sampling", "execution", "scoring", "merge")


# --------------------------------------------------------------------------- helpers


def count(stats: Counter, tool: str, name: str, n: int = 1) -> None:
    """Add ``n`` to the counter ``name`` and to ``"<tool>/<name>"``."""
    if n:
        stats[name] += n
        stats[f"{tool}/{name}"] += n


def coerce_date(value: Any) -> Optional[_dt.date]:
    """A document's date as a ``datetime.date`` (from a date, datetime or ISO string), else None."""
    from toolformer.tools.base import ToolInputError
    from toolformer.tools.calendar import as_date

    if value is None or value == "":
        return None
    try:
        return as_date(value)
    except ToolInputError:
        return None


def call_offset(text: str, insert_at: int) -> int:
    """Where a call goes: before the space that precedes the token, if there is one.

    After SmolLM2's bare space token (before a number) the call opens with ``[`` right after the
    space; inserting it before that space gives the same call text and ``... [Call] 29%``.
    """
    return insert_at - 1 if insert_at > 0 and text[insert_at - 1] == " " else insert_at


def one_per_offset(kept: Sequence[KeptCall]) -> List[KeptCall]:
    """The best call (highest L- - L+) of each offset, in text order."""
    best: Dict[int, KeptCall] = {}
    for call in sorted(kept, key=lambda c: (-c.score, c.position, c.tool, c.args)):
        best.setdefault(call.offset, call)
    return sorted(best.values(), key=lambda c: c.offset)


def drop_repeats(calls: Sequence[KeptCall], window: int) -> List[KeptCall]:
    """The same call (tool and arguments) at most once per ``window`` tokens: of calls less than
    ``window`` positions apart, the best-scoring one stays (``[Calculator(18 * 25) -> 450] paying
    [Calculator(18 * 25) -> 450] 450`` keeps one). ``window`` <= 1: nothing is dropped."""
    if window <= 1:
        return sorted(calls, key=lambda c: c.offset)
    chosen: Dict[Tuple[str, str], List[int]] = defaultdict(list)
    out: List[KeptCall] = []
    for call in sorted(calls, key=lambda c: (-c.score, c.position, c.tool, c.args)):
        near = chosen[(call.tool, call.args)]
        if any(abs(call.position - p) < window for p in near):
            continue
        near.append(call.position)
        out.append(call)
    return sorted(out, key=lambda c: c.offset)


def merge_calls(
    text: str, kept: Sequence[KeptCall], repeat_window: int = 0
) -> Tuple[str, List[KeptCall]]:
    """Insert the kept calls, at most one per offset (the highest L- - L+) and the same call at
    most once per ``repeat_window`` tokens (:func:`drop_repeats`), in text order.

    A call at the very start is followed by a space (as when it was scored: ``[call] x``).
    """
    calls = drop_repeats(one_per_offset(kept), repeat_window)
    pairs = [(c.offset, APICall(c.tool, c.args, c.result)) for c in calls]
    if pairs and pairs[0][0] == 0 and text and not text[0].isspace():
        return format_call(pairs[0][1]) + " " + insert_calls(text, pairs[1:]), calls
    return insert_calls(text, pairs), calls


def _repeats(kept: Sequence[KeptCall], merged: Sequence[KeptCall]) -> List[KeptCall]:
    """The offset winners that :func:`drop_repeats` removed."""
    left = {id(c) for c in merged}
    return [c for c in one_per_offset(kept) if id(c) not in left]


def document_title(doc: Document) -> Optional[str]:
    """The document's title: its ``title`` field, else the one in an id of the default corpus
    (``wiki:Ayn_Rand#0``, kept by selftrain's round 0, which writes only id and text)."""
    title = (doc.meta or {}).get("title")
    if isinstance(title, str) and title.strip():
        return title
    return default_corpus_title(doc.id)


def call_context(doc: Document, date: Optional[_dt.date], at: int) -> ToolContext:
    """The context of a call inserted at character ``at`` of ``doc``: the document's date, and
    its identity and next words, which retrieval tools leave out of their results
    (:mod:`toolformer.tools.self_retrieval`)."""
    following = following_text(doc.text, at)
    document = SourceDocument(str(doc.id), document_title(doc), following)
    return ToolContext(date=date, document=document)


def prefilter_input(
    config: AnnotatorConfig,
    doc: Document,
    date: Optional[_dt.date],
    chunk: DocChunk,
    options: Any = None,
) -> PrefilterInput:
    """What a tool's prefilter sees of ``chunk``; ``options``: that prefilter's options object
    (:meth:`AnnotatorConfig.prefilter_settings`)."""
    return PrefilterInput(
        text=chunk.text,
        doc_id=str(doc.id),
        date=date,
        chunk=chunk.index,
        seed=config.seed,
        options=options,
    )


def check_settings(name: str, s: Any) -> None:
    if not 0 <= s.tau_s < 1:
        raise UserError(f"{name}: tau_s must be in [0, 1), got {s.tau_s}")
    if s.k < 0 or s.m < 0:
        raise UserError(f"{name}: k and m must be >= 0, got k={s.k} m={s.m}")


# --------------------------------------------------------------------------- annotator


class Annotator:
    """Annotates documents with the calls of ``tools`` that lower the model's loss."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        tools: Union[Mapping[str, Tool], Iterable[Tool]],
        config: Optional[AnnotatorConfig] = None,
        executor: Any = None,
    ):
        from toolformer.tools.executor import ToolExecutor

        self.config = config = config or AnnotatorConfig()
        tools = dict(tools) if isinstance(tools, Mapping) else {t.name: t for t in tools}
        if not tools:
            raise UserError(
                "no tools to annotate with; pass e.g. create_tools('Calculator,Calendar')"
            )
        self.tools: Dict[str, Tool] = {t.name: t for t in tools.values()}
        if config.max_call_tokens < 1 or config.weight_horizon < 1 or config.batch_size < 1:
            raise UserError("max_call_tokens, weight_horizon and batch_size must be >= 1")
        if config.max_length < 2:
            raise UserError(f"max_length must be >= 2, got {config.max_length}")
        self.model = model
        self.tokenizer = tokenizer
        model.eval()
        self.parts = lm_parts(model)
        self.start = start_ids(tokenizer, config.start_token)
        vocab = getattr(self.parts.head, "out_features", None) or len(tokenizer)
        self.brackets = BracketTokens(tokenizer, vocab)
        self.settings = {name: config.settings_for(t) for name, t in self.tools.items()}
        for name, s in self.settings.items():
            check_settings(name, s)
        self.prefilter_options = config.prefilter_settings(self.tools)
        self.prompts = {
            name: PromptCache(self.parts, ToolPrompt(tokenizer, t, self.start))
            for name, t in self.tools.items()
        }
        self._own_executor = executor is None
        self.executor = executor if executor is not None else ToolExecutor(self.tools)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.scorer = Scorer(
            self.parts,
            self.start,
            config.weight_horizon,
            config.batch_size,
            config.max_batch_tokens,
            pad,
        )
        self._call_ids: Dict[str, List[int]] = {}
        self.token_index = None
        if config.constrained:
            self.token_index = token_index(tokenizer, vocab)
            for name, tool in self.tools.items():  # a grammar that cannot work fails here, at once
                self.token_index.check(call_grammar([tool], "]"))
        # optional: told after every window of a document (progress), and keeps a long
        # document's finished windows so that a resumed run continues after them (see
        # toolformer.data_aug.writer.WindowLog for the interface)
        self.window_log: Any = None

    # -- public ---------------------------------------------------------------------------
    def annotate(self, doc: Document) -> AnnotationResult:
        """Annotate one document; failures are returned in ``result.error``, never raised."""
        text = doc.text if isinstance(doc.text, str) else ""
        result = AnnotationResult(doc_id=str(doc.id), text=text, original=text)
        result.seconds = {s: 0.0 for s in STAGES}
        try:
            self._annotate(doc, result)
        except Exception as exc:  # noqa: BLE001 - one bad document must not stop a corpus
            result.text, result.calls = result.original, []
            result.error = f"{type(exc).__name__}: {exc}"
        return result

    def annotate_batch(self, docs: Sequence[Document]) -> List[AnnotationResult]:
        """Annotate several documents (each on its own: the batching is inside a document)."""
        return [self.annotate(d) for d in docs]

    def warmup(self) -> None:
        """Compute every tool's prompt-prefix KV cache now (otherwise: on first use)."""
        for cache in self.prompts.values():
            cache.kv()

    def close(self) -> None:
        """Release the executor if this annotator created it."""
        if self._own_executor:
            self.executor.close()

    def __enter__(self) -> "Annotator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- stages ---------------------------------------------------------------------------
    def _annotate(self, doc: Document, result: AnnotationResult) -> None:
        if not isinstance(doc.text, str):
            raise TypeError(f"document text must be a str, got {type(doc.text).__name__}")
        stats, secs = result.stats, result.seconds
        if not doc.text.strip():
            result.skipped = "empty text"
            return
        date = coerce_date(doc.date)
        t0 = time.perf_counter()
        chunks = chunk_document(self.tokenizer, doc.text, self.config.max_length)
        secs["positions"] += time.perf_counter() - t0
        tried = {name: False for name in self.tools}
        scored: List[Tuple[KeptCall, bool]] = []
        log, key, first = self.window_log, window_key(doc.id, doc.text), 0
        if log is not None and len(chunks) > 1:
            first = self._restore(log.load(key), tried, scored, stats, secs)
        for i, chunk in enumerate(chunks[first:], first):
            proposals: List[Tuple[str, int, APICall]] = []
            for name in self.tools:
                t0 = time.perf_counter()
                decision = self._prefilter(name, doc, date, chunk, stats)
                secs["prefilter"] += time.perf_counter() - t0
                if decision.keep:
                    tried[name] = True
                    proposals += self._propose(doc, chunk, name, stats, secs)
            if proposals:
                scored += self._execute_and_score(date, chunk, proposals, doc, stats, secs)
            if log is not None:
                if len(chunks) > 1:
                    log.save(key, self._window_state(i + 1, tried, scored, stats, secs))
                log.progress(i + 1, len(chunks))
        for name, was_tried in tried.items():
            if not was_tried:
                stats[f"{name}/docs_prefiltered_out"] += 1
        if not any(tried.values()):
            stats["docs_prefiltered_out"] += 1
            result.skipped = "prefiltered out for every tool"
        t0 = time.perf_counter()
        kept = [c for c, keep in scored if keep]
        result.text, result.calls = merge_calls(doc.text, kept, self.config.repeat_window)
        for c in _repeats(kept, result.calls):
            count(stats, c.tool, "calls_repeated")
        for c in result.calls:
            count(stats, c.tool, "calls_kept")
        if self.config.record_candidates:
            result.candidates = [c for c, _ in scored]
        secs["merge"] += time.perf_counter() - t0

    def _window_state(
        self,
        done: int,
        tried: Dict[str, bool],
        scored: List[Tuple[KeptCall, bool]],
        stats: Counter,
        secs: Dict[str, float],
    ) -> Dict[str, Any]:
        """What a resumed run needs to continue after window ``done``: the kept calls (every
        scored one when candidates are recorded), the counters, the seconds, the tools tried."""
        keep = scored if self.config.record_candidates else [(c, k) for c, k in scored if k]
        return {
            "done": done,
            "tried": dict(tried),
            "scored": [[asdict(c), k] for c, k in keep],
            "stats": dict(stats),
            "seconds": dict(secs),
        }

    @staticmethod
    def _restore(
        state: Optional[Dict[str, Any]],
        tried: Dict[str, bool],
        scored: List[Tuple[KeptCall, bool]],
        stats: Counter,
        secs: Dict[str, float],
    ) -> int:
        """Load a saved window state into the run's lists; the first window still to do."""
        if not state:
            return 0
        tried.update({k: bool(v) for k, v in state["tried"].items() if k in tried})
        scored.extend((KeptCall(**c), bool(k)) for c, k in state["scored"])
        stats.update(state["stats"])
        for stage, seconds in state["seconds"].items():
            secs[stage] = secs.get(stage, 0.0) + seconds
        return int(state["done"])

    def _prefilter(
        self, name: str, doc: Document, date, chunk: DocChunk, stats: Counter
    ) -> PrefilterDecision:
        if not self.config.prefilter:
            return PrefilterDecision(True, "prefilter off")
        item = prefilter_input(self.config, doc, date, chunk, self.prefilter_options.get(name))
        decision = prefilter(name, item)
        for warning, n in item.warnings.items():
            stats[f"{name}/{warning}"] += n
        return decision

    def _propose(
        self, doc: Document, chunk: DocChunk, name: str, stats: Counter, secs: Dict[str, float]
    ) -> List[Tuple[str, int, APICall]]:
        """Positions and sampled, parsed, deduplicated candidates of one tool in one chunk."""
        s = self.settings[name]
        if s.k == 0 or s.m == 0:
            return []
        t0 = time.perf_counter()
        cache = self.prompts[name]
        rest = cache.prompt.rest_ids(chunk.text)
        openers = [self.brackets.opener(sp) for sp in chunk.space_opener]
        probs, kv_cache = bracket_probs(self.parts, cache, rest, chunk.ids, openers)
        # position 0 can only be scored when a start token precedes the text
        eligible = chunk.call_positions(max(self.config.min_position, 0 if self.start else 1))
        positions = select_positions(probs.tolist(), s.tau_s, s.k, eligible)
        count(stats, name, "positions_kept", len(positions))
        secs["positions"] += time.perf_counter() - t0
        if not positions:
            return []
        t0 = time.perf_counter()
        cfg = self.config

        def seed_of(p: int, j: int) -> int:
            return row_seed(cfg.seed, str(doc.id), chunk.index, name, chunk.token_start + p, j)

        grammars = self._grammars(name, doc.text, chunk, positions) if cfg.constrained else None
        if grammars is not None:  # where no call of the tool may open (a Calculator, no number)
            count(stats, name, "positions_no_call", sum(g is None for g in grammars.values()))
            positions = [p for p in positions if grammars[p] is not None]
            if not positions:
                secs["sampling"] += time.perf_counter() - t0
                return []
        samples = sample_calls(
            self.parts,
            self.tokenizer,
            cache_kv(kv_cache),
            len(cache.prompt.prefix_ids) + len(rest),
            positions,
            {p: openers[p] for p in positions},
            s.m,
            seed_of,
            self.brackets,
            max_new_tokens=cfg.max_call_tokens,
            temperature=cfg.temperature,
            batch_size=cfg.batch_size,
            max_batch_tokens=cfg.max_batch_tokens,
            shared_attention=cfg.shared_prefix_attention,
            tool=name if cfg.abandon_samples else None,
            grammars=grammars,
            index=self.token_index,
        )
        del kv_cache
        count(stats, name, "candidates_sampled", len(samples))
        parsed = []
        for smp in samples:
            if smp.abandoned:
                count(stats, name, "candidates_abandoned")
            if not smp.closed:
                continue
            count(stats, name, "candidates_closed")
            call = parse_candidate(smp.text, name)
            if call is None:
                count(stats, name, "candidates_malformed")
            elif self.tools[name].check_call(call.args) is not None:
                count(stats, name, "candidates_invalid")
            else:
                parsed.append((smp.position, call))
        unique, dropped = dedupe(parsed)
        count(stats, name, "candidates_deduplicated", dropped)
        secs["sampling"] += time.perf_counter() - t0
        return [(name, p, call) for p, call in unique]

    def _grammars(
        self, name: str, text: str, chunk: DocChunk, positions: Sequence[int]
    ) -> Dict[int, Any]:
        """The call grammar (ending in ``]``) of tool ``name`` at each position; the text before
        the position goes to the tool (the Calculator may take its numbers from it). None at a
        position where the tool cannot be called (:data:`~toolformer.grammar.NO_CALL`)."""
        tool = self.tools[name]
        return {p: call_grammar([tool], "]", text[: chunk.insert_at[p]]) for p in positions}

    def _ids(self, text: str) -> List[int]:
        ids = self._call_ids.get(text)
        if ids is None:
            if len(self._call_ids) > 100_000:
                self._call_ids.clear()
            ids = self._call_ids[text] = encode(self.tokenizer, text)
        return ids

    def _losses(
        self,
        text_ids: List[int],
        calls: Sequence[Tuple[str, int, APICall]],
        kinds: Sequence[str],
        known: Optional[Dict[str, Dict[int, float]]] = None,
    ) -> Dict[str, Dict[int, float]]:
        """L_i(z) for the prefixes z of ``kinds`` ("empty": no call, "plus": e(c, r), "none":
        e(c, empty)) of each (tool, position, call), one :class:`Scorer` row per distinct z;
        added to ``known`` (prefix text -> position -> loss), which is returned."""
        rows: Dict[str, set] = defaultdict(set)
        for _, p, call in calls:
            for kind in kinds:
                z = (
                    ""
                    if kind == "empty"
                    else format_call(call if kind == "plus" else call.with_result(""))
                )
                rows[z].add(p)
        keys = list(rows)
        losses = self.scorer.losses(
            text_ids, [self._ids(z) if z else [] for z in keys], [rows[z] for z in keys]
        )
        known = {} if known is None else known
        for z, row in zip(keys, losses):
            known.setdefault(z, {}).update(row)
        return known

    def _lazy_losses(
        self, text_ids: List[int], calls: Sequence[Tuple[str, int, APICall]]
    ) -> Dict[str, Dict[int, float]]:
        """The losses the keep rule needs, computed only as far as they can change a decision.

        keep iff min(L(empty), L(e(c, empty))) - L+ >= tau_f (paper, Section 2). L+ is a weighted
        mean of -log p >= 0, so where L(empty) < tau_f no call can be kept: its L+ is not
        computed; where L(empty) - L+ < tau_f the call is rejected whatever L(e(c, empty)) is:
        that row is not computed. The decisions are those of computing every loss (the rows
        that are computed hold the same tokens; only the batches they share differ, ~1e-6 in
        a loss); a loss left out is NaN in the candidate (only seen with ``record_candidates``,
        which computes every loss instead).
        """
        loss = self._losses(text_ids, calls, ("empty",))
        empty = loss[""]
        tau = {name: self.settings[name].tau_f for name in self.settings}
        live = [c for c in calls if c[1] in empty and empty[c[1]] >= tau[c[0]]]
        self._losses(text_ids, live, ("plus",), loss)
        passed = []
        for name, p, call in live:
            plus = loss[format_call(call)].get(p)
            if plus is not None and empty[p] - plus >= tau[name]:
                passed.append((name, p, call))
        return self._losses(text_ids, passed, ("none",), loss)

    def _execute_and_score(
        self,
        date,
        chunk: DocChunk,
        proposals: List[Tuple[str, int, APICall]],
        doc: Document,
        stats: Counter,
        secs: Dict[str, float],
    ) -> List[Tuple[KeptCall, bool]]:
        """Run the candidates' tools, score them (:meth:`_lazy_losses`; every loss with
        ``record_candidates``), apply the keep rule. Each call's context names the document
        and the text after the call, which retrieval tools leave out of their results
        (:func:`call_context`)."""
        t0 = time.perf_counter()
        text = doc.text
        contexts = [call_context(doc, date, chunk.insert_at[p]) for _, p, _ in proposals]
        results = self.executor.run_many([c for _, _, c in proposals], contexts)
        ready: List[Tuple[str, int, APICall]] = []
        for (name, p, call), res in zip(proposals, results):
            count(stats, name, "candidates_executed")
            count(stats, name, SELF_EXCLUDED, res.notes.get(SELF_EXCLUDED, 0))
            if res.ok:
                ready.append((name, p, call.with_result(res.output)))
            else:
                count(stats, name, "tool_failures")
        secs["execution"] += time.perf_counter() - t0
        if not ready:
            return []
        t0 = time.perf_counter()
        text_ids = chunk.ids + chunk.follow[: self.config.weight_horizon - 1]
        if self.config.record_candidates:
            loss = self._losses(text_ids, ready, ("plus", "empty", "none"))
        else:
            loss = self._lazy_losses(text_ids, ready)
        out: List[Tuple[KeptCall, bool]] = []
        nan = float("nan")
        for name, p, call in ready:
            empty = loss[""].get(p)
            if empty is None:
                continue  # nothing before position p to predict it from: undefined
            plus = loss.get(format_call(call), {}).get(p, nan)
            none = loss.get(format_call(call.with_result("")), {}).get(p, nan)
            where = (call_offset(text, chunk.insert_at[p]), chunk.token_start + p)
            if math.isnan(plus) or math.isnan(none):  # rejected before that loss was needed
                out.append(
                    (KeptCall(name, call.args, call.result, *where, plus, nan, empty, none), False)
                )
                continue
            keep, minus = keep_decision(plus, empty, none, self.settings[name].tau_f)
            out.append(
                (KeptCall(name, call.args, call.result, *where, plus, minus, empty, none), keep)
            )
        secs["scoring"] += time.perf_counter() - t0
        return out
