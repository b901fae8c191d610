"""Decoding rules: small pure functions on ``logits[rows, vocab]`` and the token sets they use.

* :func:`block_tokens`: -inf for a set of tokens in some rows (brackets outside an allowed call,
  EOS before ``min_new_tokens``);
* :func:`call_trigger`: the rows where ``[`` is among the ``call_top_k`` most likely tokens;
* :func:`sample`: temperature, top-k and top-p sampling.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, replace
from typing import Any, Iterable, List, Sequence

from toolformer.syntax import CALL_START


@dataclass(frozen=True)
class _Vocab:
    """Token ids the loop needs: call openers, bracket tokens, EOS."""

    open_ids: (
        tuple  # tokens whose text is just "[" (with leading whitespace): forced to open a call
    )
    bracket_ids: tuple  # every token whose text, left-stripped, starts with "[": trigger and block
    eos_ids: frozenset
    vocab_size: int
    word_ids: tuple = ()  # tokens whose text starts with a letter or digit: they continue a word


_VOCAB_CACHE: "weakref.WeakKeyDictionary[Any, _Vocab]" = weakref.WeakKeyDictionary()


def call_token_ids(tokenizer: Any) -> tuple:
    """``(open_ids, bracket_ids)``: tokens that are ``[`` (``[``, `` [``) and all that start
    with it."""
    vocab = _vocab_for(tokenizer, None)
    return vocab.open_ids, vocab.bracket_ids


def _word_ids(tokenizer: Any) -> tuple:
    """Tokens whose text starts with a letter, a digit or a non-ASCII byte (no leading space)."""
    from toolformer.constrain import token_bytes
    from toolformer.grammar import GrammarError

    try:
        raw = token_bytes(tokenizer)
    except GrammarError:  # a tokenizer of another kind: no word-start rule
        return ()
    return tuple(i for i, b in enumerate(raw) if b and (chr(b[0]).isalnum() or b[0] >= 0x80))


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
        cached = _Vocab(
            tuple(open_ids), tuple(bracket_ids), frozenset(eos), size, _word_ids(tokenizer)
        )
        try:
            _VOCAB_CACHE[tokenizer] = cached
        except TypeError:
            pass
    eos = set(cached.eos_ids)
    gen_eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if gen_eos is not None:
        eos.update([int(gen_eos)] if isinstance(gen_eos, int) else [int(e) for e in gen_eos])
    return replace(cached, eos_ids=frozenset(eos))


# --------------------------------------------------------------------------- token choice


@dataclass
class _TokenTensors:
    """The token sets as LongTensors on the model's device (built once per device)."""

    brackets: Any  # [n_brackets]
    opens: Any  # [n_opens]
    eos: Any  # [n_eos]
    non_open_brackets: Any  # [n]: brackets that are not a bare opener (blocked under constraints)
    continues_word: Any  # bool [vocab]: the token's text starts with a letter or digit

    @classmethod
    def build(cls, vocab: _Vocab, device: Any) -> "_TokenTensors":
        import torch

        def t(ids: Iterable[int]) -> Any:
            return torch.tensor(sorted(ids), dtype=torch.long, device=device)

        words = torch.zeros(vocab.vocab_size, dtype=torch.bool)
        if vocab.word_ids:
            words[torch.tensor(vocab.word_ids)] = True
        return cls(
            t(vocab.bracket_ids),
            t(vocab.open_ids),
            t(vocab.eos_ids),
            t(set(vocab.bracket_ids) - set(vocab.open_ids)),
            words.to(device),
        )


def block_tokens(logits: Any, rows: Sequence[bool], tokens: Any) -> Any:
    """Set ``logits[r, tokens]`` to -inf for every row ``r`` with ``rows[r]`` true, in place.

    ``logits``: float ``[rows, vocab]``; ``tokens``: LongTensor ``[n]``. Returns ``logits``.
    """
    import torch

    if not tokens.numel() or not any(rows):
        return logits
    if all(rows):
        logits[:, tokens] = float("-inf")
    else:
        index = torch.tensor([i for i, r in enumerate(rows) if r], device=logits.device)
        logits[index[:, None], tokens] = float("-inf")
    return logits


def call_scores(logits: Any, brackets: Any) -> tuple:
    """``(p_call[rows], rank[rows])``: the probability mass of the tokens that open a call
    (softmax over ``logits[rows, vocab]``, summed over ``brackets``) and the rank of the best of
    them (0 = the most likely token). The two quantities the call trigger thresholds.
    """
    best_bracket = logits[:, brackets].max(dim=-1).values
    rank = (logits > best_bracket[:, None]).sum(dim=-1)
    p_call = logits.float().softmax(dim=-1)[:, brackets].sum(dim=-1)
    return p_call, rank


def call_trigger(
    logits: Any, brackets: Any, opens: Any, k: int, threshold: float = 0.0
) -> List[int]:
    """Paper, Section 4: a call starts when ``[`` is among the ``k`` most likely next tokens;
    with ``threshold`` > 0 its probability (:func:`call_scores`) must also reach ``threshold``
    (a trigger calibrated on a dev split, see :mod:`toolformer.generation.trigger`).

    ``logits``: ``[rows, vocab]``; ``brackets``: every token starting with ``[`` (``[n]``);
    ``opens``: the bare openers (``[``, `` [``). "Among the top k" holds iff fewer than ``k``
    tokens score above the best bracket token. Returns, per row, the most likely opener to force,
    or -1 where the trigger does not fire.
    """
    if k <= 0 or not opens.numel() or not brackets.numel() or logits.shape[0] == 0:
        return [-1] * logits.shape[0]
    p_call, rank = call_scores(logits, brackets)
    fires = rank < k
    if threshold > 0:
        fires = fires & (p_call >= threshold)
    hit = fires.tolist()
    if not any(hit):
        return [-1] * logits.shape[0]
    best = opens[logits[:, opens].argmax(dim=-1)].tolist()
    return [b if h else -1 for b, h in zip(best, hit)]


def at_word_start(
    logits: Any, brackets: Any, continues_word: Any, ends_in_word: Sequence[bool]
) -> List[bool]:
    """Whether a call may open here: only where a word or number starts.

    A row whose text ends in a letter or digit (``ends_in_word``) is inside a word or number
    unless its most likely next token that is not a bracket starts a new one (a leading space
    or punctuation): a call there would split ``16`` into ``1 [Calculator(...)]6``.
    ``logits``: ``[rows, vocab]``; ``continues_word``: bool ``[vocab]``. Returns one bool per row.
    """
    rows = [i for i, e in enumerate(ends_in_word) if e]
    out = [True] * logits.shape[0]
    if not rows or not bool(continues_word.any()):
        return out
    sub = logits[rows].clone()
    if brackets.numel():
        sub[:, brackets] = float("-inf")
    best = sub.argmax(dim=-1)
    width = continues_word.shape[0]
    cont = [bool(continues_word[b]) if b < width else False for b in best.tolist()]
    for i, c in zip(rows, cont):
        out[i] = not c
    return out


def sample(logits: Any, temperature: float, top_k: int, top_p: float, generator: Any) -> Any:
    """One token per row from softmax(logits / T) after top-k and nucleus (top-p) filtering.

    ``logits``: float ``[rows, vocab]``; returns a LongTensor ``[rows]``. Nucleus sampling keeps
    the smallest set of most likely tokens whose mass reaches ``top_p`` (Holtzman et al. 2020).
    """
    import torch

    logits = logits / temperature
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = logits.sort(dim=-1, descending=True)
        probs = sorted_logits.softmax(dim=-1)
        drop = probs.cumsum(dim=-1) - probs >= top_p  # keep the token crossing top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)
