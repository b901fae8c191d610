"""Positions and candidate calls (paper, Section 2, "Sampling API Calls").

- :func:`bracket_probs`: one forward pass over [P(x), x] (the prompt prefix from its cache) gives
  p_i = p(`[` | P(x), x_1..x_{i-1}) at every position i.
- :func:`select_positions`: positions with p_i > tau_s, at most the k most likely.
- :func:`sample_calls`: up to m calls at each kept position, sampled in batches from
  [P(x), x_1..x_{i-1}, `[`] and stopped at the first token that contains `]`.
- :func:`parse_candidate` / :func:`dedupe`: the sampled text must parse as a call of the tool;
  identical (position, call) pairs are kept once.

Which bracket token: the one that opens the call in the text we would insert. ``insert_calls``
writes `` [Tool(...)]`` (a space before the bracket) unless the text before the position already
ends in whitespace. So p_i is p(`` [``) when the text before token i does not end in whitespace
(this is the case before every SmolLM2/Gemma word token, which carries its own leading space) and
p(``[``) when it does (e.g. after SmolLM2's bare space token before a number, or a newline).
The first token of a window follows ``Output:`` in P(x), so it gets `` [``. Tokenizers where
`` [`` is not one token always use ``[``.

Sampling is deterministic and independent of batching: each row (position, sample index) has its
own ``torch.Generator`` seeded from (seed, document id, chunk, tool, position, sample index) and
draws one uniform number per step (inverse-CDF sampling), so that a one-at-a-time implementation
draws exactly the same calls. Rows with the same tokens so far share one model row (their
distributions are the same), and each draws from it with its own generator.

Not done, measured: feeding a grammar-forced span (``Calculator(`` after ``[``) as the
tokenizer's canonical tokens in one pass would change the samples: under the mask SmolLM2
writes the name in other splits too (``C al c ul at or (`` ...), 113 of 400 rows on two
benchmark documents; and after grouping the forced steps run one row per position (20), so
an exact speculative version would save a few small passes per document.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from toolformer.kv_cache import cache_kwargs
from toolformer.syntax import APICall, CallSyntaxError, parse_call


@dataclass
class Sample:
    """One sampled continuation after the bracket at ``position`` (chunk token index)."""

    position: int
    index: int
    tokens: List[int]
    text: str  # decoded text up to and including the first "]" (all of it when not closed)
    closed: bool
    abandoned: bool = False  # stopped early: it could no longer become a call of the tool


# --------------------------------------------------------------------------- tokens


class BracketTokens:
    """The call-opening token ids of a tokenizer and the tokens that end a call."""

    def __init__(self, tokenizer: Any, vocab_size: Optional[int] = None):
        import torch

        from toolformer.data_aug.prefix_cache import encode

        plain = encode(tokenizer, "[")
        if len(plain) != 1:
            raise ValueError("the tokenizer does not encode '[' as one token")
        self.plain = plain[0]
        spaced = encode(tokenizer, " [")
        self.spaced = spaced[0] if len(spaced) == 1 else None
        vocab_size = max(vocab_size or 0, len(tokenizer))
        pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
        stop = torch.zeros(vocab_size, dtype=torch.bool)
        for i, piece in enumerate(pieces):
            if piece is not None and "]" in piece:
                stop[i] = True
        self.stop = stop  # tokens containing "]": the call is closed
        eos = getattr(tokenizer, "eos_token_id", None)
        self.end: Set[int] = {int(eos)} if eos is not None else set()

    def opener(self, space: bool) -> int:
        """The id that opens a call: `` [`` after text, ``[`` after whitespace."""
        return self.spaced if (space and self.spaced is not None) else self.plain


# --------------------------------------------------------------------------- positions


def bracket_probs(
    parts: Any,
    prompt_cache: Any,
    rest_ids: Sequence[int],
    doc_ids: Sequence[int],
    openers: Sequence[int],
):
    """p(opener_i | P(x), x_<i) for every token i of ``doc_ids``, in one forward pass.

    Returns ``(probs, cache)``: a float tensor [n] and the DynamicCache over
    [prefix, rest, x_0..x_{n-2}] that :func:`sample_calls` continues from.
    """
    import torch

    n = len(doc_ids)
    cache = prompt_cache.fresh()
    ids = list(rest_ids) + list(doc_ids[: n - 1])
    inp = torch.tensor([ids], device=parts.device)
    with torch.inference_mode():
        hidden = parts.base(
            input_ids=inp, use_cache=True, **cache_kwargs(parts.base, cache)
        ).last_hidden_state[0]
        # the state after x_{i-1} (after the prompt's last token for i = 0) predicts the bracket
        idx = torch.arange(len(rest_ids) - 1, len(rest_ids) - 1 + n, device=parts.device)
        logp = parts.logits(hidden[idx]).log_softmax(-1)
        probs = logp.gather(1, torch.tensor(openers, device=parts.device)[:, None]).squeeze(1).exp()
    return probs.cpu(), cache


def select_positions(
    probs: Sequence[float], tau_s: float, k: int, eligible: Optional[Iterable[int]] = None
) -> List[int]:
    """Positions with p > tau_s, the k most likely (ties: earlier first), in text order."""
    probs = [float(p) for p in probs]
    pool = range(len(probs)) if eligible is None else eligible
    above = [i for i in pool if probs[i] > tau_s]
    best = sorted(above, key=lambda i: (-probs[i], i))[: max(0, k)]
    return sorted(best)


# --------------------------------------------------------------------------- sampling


def row_seed(seed: int, doc_id: str, chunk: int, tool: str, position: int, sample: int) -> int:
    """A 63-bit seed for one sampling row, stable across processes and batchings."""
    key = f"{seed}\x00{doc_id}\x00{chunk}\x00{tool}\x00{position}\x00{sample}".encode()
    return int.from_bytes(hashlib.sha256(key).digest()[:8], "big") >> 1


def pick_tokens(logits, generators: Sequence[Any], temperature: float):
    """Sample one token per row from softmax(logits / T) by inverse CDF, drawing one uniform
    number from the row's own generator; greedy when T == 0. Returns a LongTensor [rows].

    Each row is its own group of :func:`pick_group_tokens`: one arithmetic for both, so a row
    draws the same token whether or not it shares its logits with other rows."""
    import torch

    picked = pick_group_tokens(logits, [[g] for g in generators], temperature)
    return torch.tensor([toks[0] for toks in picked], dtype=torch.long, device=logits.device)


def make_generator(seed: int):
    import torch

    g = torch.Generator()
    g.manual_seed(seed)
    return g


def could_be_call(sampled: str, tool: str) -> bool:
    """Whether text sampled after ``[`` can still become a call of ``tool`` (``Tool(...``)."""
    want, have = tool.lower() + "(", sampled.lower()
    return have.startswith(want) or want.startswith(have)


def finish_text(tokenizer: Any, tokens: Sequence[int], closed: bool) -> str:
    """Decoded sample, cut after its first ``]`` when closed."""
    text = tokenizer.decode(
        list(tokens), skip_special_tokens=False, clean_up_tokenization_spaces=False
    )
    if closed and "]" in text:
        text = text[: text.index("]") + 1]
    return text


def _batches(
    rows: List[Tuple[int, int]],
    prompt_len: int,
    max_new: int,
    batch_size: int,
    max_batch_tokens: int,
) -> List[List[Tuple[int, int]]]:
    """Rows of one position per batch (the copied cache then ends exactly at that position, so
    no mask or sliding window sees a gap), split under the row and token caps."""
    out: List[List[Tuple[int, int]]] = []
    cur: List[Tuple[int, int]] = []
    for row in rows:
        width = prompt_len + row[0] + max_new + 1
        if cur and (
            cur[0][0] != row[0]
            or len(cur) >= batch_size
            or (len(cur) + 1) * width > max_batch_tokens
        ):
            out.append(cur)
            cur = []
        cur.append(row)
    if cur:
        out.append(cur)
    return out


def sample_calls(
    parts: Any,
    tokenizer: Any,
    kv: Sequence[Tuple[Any, Any]],
    prompt_len: int,
    positions: Sequence[int],
    openers: Dict[int, int],
    m: int,
    seed_of: Callable[[int, int], int],
    brackets: BracketTokens,
    *,
    max_new_tokens: int = 40,
    temperature: float = 1.0,
    batch_size: int = 32,
    max_batch_tokens: int = 16384,
    shared_attention: bool = True,
    tool: Optional[str] = None,
    grammars: Optional[Dict[int, Any]] = None,
    index: Any = None,
    group_prefixes: bool = True,
) -> List[Sample]:
    """Sample ``m`` calls at each position from one KV cache of [P(x), x].

    ``kv`` holds per-layer keys/values for [prefix, rest, x_0..] (batch 1); ``prompt_len`` is the
    length of [prefix, rest], so x_j sits at cache index ``prompt_len + j``. A row for position i
    sees the cache up to ``prompt_len + i``, then its bracket token at position id
    ``prompt_len + i``, then its own samples. With ``shared_attention`` every row reads the one
    shared cache (:func:`~toolformer.data_aug.prefix_cache.shared_prefix`); without it each batch
    holds the rows of one position and a copy of the cache cut at that position (any model's
    own attention, more memory and more batches).
    With ``tool``, a row stops as soon as its text can no longer become a call of that tool
    (``Sample.abandoned``): it would be malformed or unclosed anyway.
    With ``grammars`` (position -> :class:`~toolformer.grammar.CallGrammar` ending in ``]``)
    and ``index`` (the tokenizer's :class:`~toolformer.constrain.TokenIndex`), every step is
    masked to the tokens the grammar allows: each row writes one call of the tool
    and closes it within ``max_new_tokens``.
    Rows with the same tokens so far share one model row (``group_prefixes``, see
    :func:`_sample_batch`); the samples are the same as with one model row per sample.
    """
    rows = sorted((p, j) for p in positions for j in range(m))
    samples: List[Sample] = []
    if shared_attention:
        batches = [rows[b : b + batch_size] for b in range(0, len(rows), max(1, batch_size))]
    else:
        batches = _batches(rows, prompt_len, max_new_tokens, batch_size, max_batch_tokens)
    for batch in batches:
        tokens, closed, abandoned = _sample_batch(
            parts,
            tokenizer,
            kv,
            prompt_len,
            batch,
            openers,
            seed_of,
            brackets,
            max_new_tokens,
            temperature,
            shared_attention,
            tool,
            grammars,
            index,
            group_prefixes,
        )
        for r, (p, j) in enumerate(batch):
            samples.append(
                Sample(
                    p,
                    j,
                    tokens[r],
                    finish_text(tokenizer, tokens[r], closed[r]),
                    closed[r],
                    abandoned[r],
                )
            )
    return samples


def pick_group_tokens(
    logits, groups: Sequence[Sequence[Any]], temperature: float
) -> List[List[int]]:
    """Sample from softmax(logits / T) by inverse CDF for rows that share their logits:
    ``logits[g]`` (shape [groups, vocab]) is the distribution of every row of group ``g``,
    ``groups[g]`` holds those rows' generators, each drawing one uniform number; greedy when
    T == 0. Returns each group's tokens, one per generator.

    The CDF is float64 so that a row's draw does not depend on how many rows share the batch.
    """
    import torch

    if temperature <= 0:
        best = logits.argmax(-1).tolist()
        return [[best[g]] * len(gens) for g, gens in enumerate(groups)]
    cdf = torch.softmax(logits.double() / temperature, dim=-1).cumsum(-1)
    out: List[List[int]] = []
    top = cdf.shape[-1] - 1
    for g, gens in enumerate(groups):
        u = torch.cat([torch.rand(1, generator=gen, dtype=torch.float64) for gen in gens])
        row = cdf[g]
        picked = torch.searchsorted(row, (u.to(row.device) * row[-1]), right=True).clamp_(max=top)
        out.append(picked.tolist())
    return out


def _sample_batch(
    parts,
    tokenizer,
    kv,
    prompt_len,
    batch,
    openers,
    seed_of,
    brackets,
    max_new_tokens,
    temperature,
    shared_attention,
    tool,
    grammars=None,
    index=None,
    group_prefixes=True,
):
    """Sample the rows of ``batch`` ((position, sample index) pairs); see :func:`sample_calls`.

    Rows whose tokens so far are identical (same position, same sampled tokens) have identical
    next-token distributions, so the model runs once per distinct prefix, a group (at the first
    step all rows of a position are one group), and every row of a group draws its own token
    from the group's distribution with its own generator. When the rows of a group draw
    different tokens the group splits: its cache row is duplicated (``batch_select_indices``
    with repeated indices). ``group_prefixes=False`` runs one model row per sample row (the
    same samples, more work; for tests).
    """
    import contextlib

    import torch
    from transformers import DynamicCache

    from toolformer.data_aug.prefix_cache import shared_prefix

    device = parts.device
    size = len(batch)
    ctx = prompt_len + max(p for p, _ in batch)
    # groups[g]: the rows (indices into batch) whose tokens so far are the same; cache row g
    if group_prefixes:
        by_position: Dict[int, List[int]] = {}
        for r, (p, _) in enumerate(batch):
            by_position.setdefault(p, []).append(r)
        groups = list(by_position.values())
    else:
        groups = [[r] for r in range(size)]
    first = [batch[g[0]][0] for g in groups]  # each group's position
    if shared_attention:
        cache = DynamicCache()  # holds only each group's own tokens
        lens = torch.tensor([prompt_len + p for p in first], device=device)
        scope = shared_prefix(parts.model, [(k[:, :, :ctx], v[:, :, :ctx]) for k, v in kv], lens)
    else:  # every row of the batch is at the same position: the cache simply ends there
        cache = DynamicCache(
            ddp_cache_data=[
                (
                    k[:, :, :ctx].expand(len(groups), -1, -1, -1),
                    v[:, :, :ctx].expand(len(groups), -1, -1, -1),
                )
                for k, v in kv
            ]
        )
        scope = contextlib.nullcontext()
    inp = torch.tensor([[openers[p]] for p in first], device=device)
    pos = torch.tensor([[prompt_len + p] for p in first], device=device)
    gens = [make_generator(seed_of(p, j)) for p, j in batch]
    cons = None
    if grammars is not None:
        from toolformer.constrain import CallConstraint, apply_masks

        cons = [CallConstraint(index, grammars[p], max_new_tokens) for p, _ in batch]
    tokens: List[List[int]] = [[] for _ in batch]
    closed = [False] * size
    abandoned = [False] * size
    with scope as state, torch.inference_mode():
        for _ in range(max_new_tokens):
            hidden = parts.base(
                input_ids=inp, position_ids=pos, use_cache=True, **cache_kwargs(parts.base, cache)
            ).last_hidden_state[:, -1]
            logits = parts.logits(hidden)
            if cons is not None:  # the rows of a group are in the same grammar state
                logits = apply_masks(logits.float(), [cons[g[0]].allowed() for g in groups])
            picked = pick_group_tokens(logits, [[gens[r] for r in g] for g in groups], temperature)
            parents: List[int] = []
            children: List[List[int]] = []
            nxt: List[int] = []
            for g, (rows, toks) in enumerate(zip(groups, picked)):
                split: Dict[int, List[int]] = {}
                for r, t in zip(rows, toks):
                    tokens[r].append(t)
                    split.setdefault(t, []).append(r)
                for t, members in split.items():
                    live = _advance(
                        members, t, tokens, cons, closed, abandoned, brackets, tokenizer, tool
                    )
                    if live:
                        parents.append(g)
                        children.append(members)
                        nxt.append(t)
            if not children:
                break
            if parents != list(range(len(groups))):
                sel = torch.tensor(parents, device=device)
                cache.batch_select_indices(sel)
                pos = pos[sel]
                if shared_attention:
                    state.lens = state.lens[sel]
            groups = children
            inp = torch.tensor([[t] for t in nxt], device=device)
            pos = pos + 1
    return tokens, closed, abandoned


def _advance(rows, t, tokens, cons, closed, abandoned, brackets, tokenizer, tool) -> bool:
    """After ``rows`` (one group's rows that drew token ``t``, so equal tokens) took ``t``:
    mark them closed or abandoned, or say they go on (True)."""
    if cons is not None:
        for r in rows:
            cons[r].push(t)
        c = cons[rows[0]]
        if c.done:
            for r in rows:
                closed[r] = True
        elif c.failed:  # cannot happen with a sound grammar; never loop on it
            for r in rows:
                abandoned[r] = True
        else:
            return True
        return False
    if t < len(brackets.stop) and bool(brackets.stop[t]):
        for r in rows:
            closed[r] = True
    elif t in brackets.end:
        pass
    elif tool is not None and not could_be_call(
        finish_text(tokenizer, tokens[rows[0]], False), tool
    ):
        for r in rows:
            abandoned[r] = True
    else:
        return True
    return False


# --------------------------------------------------------------------------- parsing


def parse_candidate(sampled: str, tool: str) -> Optional[APICall]:
    """The call in ``"[" + sampled`` if it is one call of ``tool`` (result dropped), else None.

    Empty arguments are allowed (``[Calendar()]``); a tool that needs some fails at execution.
    """
    try:
        call = parse_call("[" + sampled)
    except CallSyntaxError:
        return None
    if call.tool.lower() != tool.lower():
        return None  # another tool, or junk: counted as malformed
    return APICall(tool, call.args.strip())


def dedupe(calls: Iterable[Tuple[int, APICall]]) -> Tuple[List[Tuple[int, APICall]], int]:
    """Identical (position, call) pairs once, in first-seen order; also the number dropped."""
    seen: Set[Tuple[int, str, str]] = set()
    out: List[Tuple[int, APICall]] = []
    dropped = 0
    for pos, call in calls:
        key = (pos, call.tool, call.args)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        out.append((pos, call))
    return out, dropped
