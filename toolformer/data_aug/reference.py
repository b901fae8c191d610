"""A textbook implementation of the annotation method, the yardstick for :class:`Annotator`.

Everything is computed the plain way: one full forward pass over [P(x), x] for the positions,
one generation per candidate from the whole prompt (no shared prompt cache, no batching), and
one full forward pass over [start, z, x] for every loss of every candidate (L_i(empty) included),
with log-probabilities over the whole text and the formula applied as written. It shares only the
pure pieces with the annotator (tokenization, prefilters, seeds, parsing, the keep rule, the
merge), so the two must agree on candidates, losses and kept calls. Use it in tests and
benchmarks, not on a corpus.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from toolformer.data_aug.annotator import (
    STAGES,
    _repeats,
    call_context,
    call_offset,
    check_settings,
    coerce_date,
    count,
    merge_calls,
    prefilter_input,
)
from toolformer.data_aug.heuristics import prefilter
from toolformer.data_aug.prefix_cache import ToolPrompt, chunk_document, encode, lm_parts, start_ids
from toolformer.data_aug.sampling import (
    BracketTokens,
    could_be_call,
    dedupe,
    finish_text,
    make_generator,
    parse_candidate,
    pick_tokens,
    row_seed,
    select_positions,
)
from toolformer.data_aug.scoring import keep_decision, loss_weights
from toolformer.data_aug.types import AnnotationResult, AnnotatorConfig, Document, KeptCall
from toolformer.grammar import call_grammar
from toolformer.kv_cache import cache_kwargs
from toolformer.syntax import APICall, format_call
from toolformer.tools.base import Tool
from toolformer.tools.self_retrieval import SELF_EXCLUDED


def full_nll(model: Any, ids: Sequence[int]) -> List[float]:
    """-log p(ids[s] | ids[:s]) for s = 1..len-1, from one forward pass (index s-1 in the list)."""
    import torch

    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([list(ids)], device=model.device)).logits[0].float()
        logp = logits[:-1].log_softmax(-1)
        return (
            (-logp.gather(1, torch.tensor(ids[1:], device=logp.device)[:, None]).squeeze(1))
            .double()
            .tolist()
        )


def textbook_loss(
    model: Any,
    start: Sequence[int],
    prefix: Sequence[int],
    doc_ids: Sequence[int],
    i: int,
    horizon: int,
) -> float:
    """L_i(z) = sum_{j>=i} w_{j-i} * -log p(x_j | z, x_<j), weights normalised over the tokens
    that exist, from a full pass over [start, z, x]."""
    head = len(start) + len(prefix)
    nll = full_nll(model, list(start) + list(prefix) + list(doc_ids))
    w = loss_weights(horizon)
    total = norm = 0.0
    for j in range(i, len(doc_ids)):
        t = j - i
        if t < len(w) and w[t] > 0:
            total += w[t] * nll[head + j - 1]
            norm += w[t]
    return total / norm


class ReferenceAnnotator:
    """Same constructor and ``annotate`` as :class:`~toolformer.data_aug.annotator.Annotator`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        tools: Union[Mapping[str, Tool], Iterable[Tool]],
        config: Optional[AnnotatorConfig] = None,
        executor: Any = None,
    ):
        from toolformer.tools.executor import ToolExecutor

        self.config = config or AnnotatorConfig()
        tools = dict(tools) if isinstance(tools, Mapping) else {t.name: t for t in tools}
        self.tools = {t.name: t for t in tools.values()}
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.start = start_ids(tokenizer, self.config.start_token)
        self.brackets = BracketTokens(
            tokenizer, getattr(lm_parts(model).head, "out_features", None)
        )
        self.settings = {n: self.config.settings_for(t) for n, t in self.tools.items()}
        self.prefilter_options = self.config.prefilter_settings(self.tools)
        for n, s in self.settings.items():
            check_settings(n, s)
        self.prompts = {n: ToolPrompt(tokenizer, t, self.start) for n, t in self.tools.items()}
        self.executor = executor if executor is not None else ToolExecutor(self.tools)
        self.forward_tokens = 0  # tokens run through the model (for throughput figures)

    def annotate(self, doc: Document) -> AnnotationResult:
        """Annotate one document the plain way (errors are not caught: this is a test oracle)."""
        cfg = self.config
        result = AnnotationResult(doc_id=str(doc.id), text=doc.text, original=doc.text)
        result.seconds = {s: 0.0 for s in STAGES}
        if not doc.text.strip():
            result.skipped = "empty text"
            return result
        date = coerce_date(doc.date)
        scored: List[Tuple[KeptCall, bool]] = []
        tried = set()
        for chunk in chunk_document(self.tokenizer, doc.text, cfg.max_length):
            proposals: List[Tuple[str, int, APICall]] = []
            for name in self.tools:
                item = prefilter_input(cfg, doc, date, chunk, self.prefilter_options.get(name))
                if cfg.prefilter and not prefilter(name, item).keep:
                    continue
                tried.add(name)
                proposals += self._propose(doc, chunk, name, result.stats)
            scored += self._score(date, chunk, proposals, doc, result.stats)
        for name in self.tools:
            if name not in tried:
                result.stats[f"{name}/docs_prefiltered_out"] += 1
        if not tried:
            result.stats["docs_prefiltered_out"] += 1
            result.skipped = "prefiltered out for every tool"
        kept = [c for c, keep in scored if keep]
        result.text, result.calls = merge_calls(doc.text, kept, cfg.repeat_window)
        for c in _repeats(kept, result.calls):
            count(result.stats, c.tool, "calls_repeated")
        for c in result.calls:
            count(result.stats, c.tool, "calls_kept")
        if cfg.record_candidates:
            result.candidates = [c for c, _ in scored]
        return result

    # -- stages ---------------------------------------------------------------------------
    def _propose(
        self, doc: Document, chunk: Any, name: str, stats: Counter
    ) -> List[Tuple[str, int, APICall]]:
        import torch

        cfg, s = self.config, self.settings[name]
        if s.k == 0 or s.m == 0:
            return []
        prompt = self.prompts[name].prompt_ids(chunk.text)
        openers = [self.brackets.opener(sp) for sp in chunk.space_opener]
        ids = prompt + list(chunk.ids)
        with torch.inference_mode():
            logp = self.model(input_ids=torch.tensor([ids])).logits[0].float().log_softmax(-1)
        self.forward_tokens += len(ids)
        probs = [float(logp[len(prompt) - 1 + i, openers[i]].exp()) for i in range(len(chunk))]
        eligible = chunk.call_positions(max(cfg.min_position, 0 if self.start else 1))
        positions = select_positions(probs, s.tau_s, s.k, eligible)
        count(stats, name, "positions_kept", len(positions))
        parsed = []
        for p in positions:
            grammar = (
                call_grammar([self.tools[name]], "]", doc.text[: chunk.insert_at[p]])
                if cfg.constrained
                else None
            )
            if cfg.constrained and grammar is None:  # the tool cannot be called here
                count(stats, name, "positions_no_call")
                continue
            for j in range(s.m):
                seed = row_seed(cfg.seed, str(doc.id), chunk.index, name, chunk.token_start + p, j)
                tokens, closed, abandoned = self._generate(
                    prompt + list(chunk.ids[:p]) + [openers[p]],
                    make_generator(seed),
                    name if cfg.abandon_samples else None,
                    grammar,
                )
                count(stats, name, "candidates_sampled")
                count(stats, name, "candidates_abandoned", int(abandoned))
                if not closed:
                    continue
                count(stats, name, "candidates_closed")
                call = parse_candidate(finish_text(self.tokenizer, tokens, True), name)
                if call is None:
                    count(stats, name, "candidates_malformed")
                elif self.tools[name].check_call(call.args) is not None:
                    count(stats, name, "candidates_invalid")
                else:
                    parsed.append((p, call))
        unique, dropped = dedupe(parsed)
        count(stats, name, "candidates_deduplicated", dropped)
        return [(name, p, c) for p, c in unique]

    def _generate(
        self, context: List[int], gen: Any, tool: Optional[str], grammar: Any = None
    ) -> Tuple[List[int], bool, bool]:
        """Sample one call after ``context`` (which ends with the bracket) until a ``]`` token
        (or, with ``tool``, until the text can no longer be a call of it); with ``grammar``,
        each step masked to the tokens the call grammar allows, until the call is complete."""
        import torch
        from transformers import DynamicCache

        from toolformer.constrain import CallConstraint, apply_masks, token_index

        cfg = self.config
        cache = DynamicCache()
        inp = torch.tensor([context])
        self.forward_tokens += len(context)
        tokens: List[int] = []
        con = None
        if grammar is not None:
            con = CallConstraint(
                token_index(self.tokenizer, len(self.brackets.stop)), grammar, cfg.max_call_tokens
            )
        with torch.inference_mode():
            for _ in range(cfg.max_call_tokens):
                logits = (
                    self.model(input_ids=inp, use_cache=True, **cache_kwargs(self.model, cache))
                    .logits[:, -1]
                    .float()
                )
                if con is not None:
                    apply_masks(logits, [con.allowed()])
                t = int(pick_tokens(logits, [gen], cfg.temperature)[0])
                tokens.append(t)
                if con is not None:
                    con.push(t)
                    if con.done or con.failed:
                        return tokens, con.done, con.failed
                elif t < len(self.brackets.stop) and bool(self.brackets.stop[t]):
                    return tokens, True, False
                if t in self.brackets.end:
                    return tokens, False, False
                if tool is not None and not could_be_call(
                    finish_text(self.tokenizer, tokens, False), tool
                ):
                    return tokens, False, True
                inp = torch.tensor([[t]])
                self.forward_tokens += 1
        return tokens, False, False

    def _score(
        self,
        date,
        chunk: Any,
        proposals: List[Tuple[str, int, APICall]],
        doc: Document,
        stats: Counter,
    ) -> List[Tuple[KeptCall, bool]]:
        if not proposals:
            return []
        text = doc.text
        h = self.config.weight_horizon
        contexts = [call_context(doc, date, chunk.insert_at[p]) for _, p, _ in proposals]
        results = self.executor.run_many([c for _, _, c in proposals], contexts)
        out = []
        for (name, p, call), res in zip(proposals, results):
            count(stats, name, "candidates_executed")
            count(stats, name, SELF_EXCLUDED, res.notes.get(SELF_EXCLUDED, 0))
            if not res.ok:
                count(stats, name, "tool_failures")
                continue
            call = call.with_result(res.output)
            losses = []
            for z in (format_call(call), "", format_call(call.with_result(""))):
                prefix = encode(self.tokenizer, z) if z else []
                text_ids = chunk.ids + chunk.follow[: h - 1]
                losses.append(textbook_loss(self.model, self.start, prefix, text_ids, p, h))
                self.forward_tokens += len(self.start) + len(prefix) + len(text_ids)
            plus, empty, none = losses
            keep, minus = keep_decision(plus, empty, none, self.settings[name].tau_f)
            out.append(
                (
                    KeptCall(
                        name,
                        call.args,
                        call.result,
                        call_offset(text, chunk.insert_at[p]),
                        chunk.token_start + p,
                        plus,
                        minus,
                        empty,
                        none,
                    ),
                    keep,
                )
            )
        return out
