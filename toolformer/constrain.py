"""Constrained decoding: which tokens may come next inside a call, as masks over the vocabulary.

:class:`TokenIndex` holds a tokenizer's tokens as UTF-8 bytes, sorted (the sorted list is a
trie: the tokens that share a prefix are one contiguous range). :meth:`TokenIndex.mask` walks
that trie from a :class:`~toolformer.grammar.CallGrammar` state and returns ``mask[vocab]``
(bool): the tokens whose bytes the grammar accepts from there. A run of plain text bytes in a
text argument is accepted as a whole range without visiting it, so a walk visits only the
paths through brackets, parentheses, dashes and spaces (milliseconds for the Calculator, tens
of milliseconds for a text argument, once per state: masks are cached per (grammar, state)).

Why our own trie and not a library: the grammars are tiny byte automata whose masks are all
cached after the first few steps, so a warm step costs one dict look-up and one ``masked_fill``;
the walk that builds a mask needs no compilation step and works on any byte-level BPE or
SentencePiece tokenizer (SmolLM2, Gemma-3). ``benchmarks/constrained_bench.py`` measures the
CPU time per masked step against llguidance (when installed) on the same calls.

:class:`CallConstraint` is one row's progress through a call: ``allowed()`` gives the mask,
``push(token)`` advances; near the end of its byte or token budget only tokens that close the
arguments are allowed, so a constrained call always ends.
"""

from __future__ import annotations

import bisect
import weakref
from typing import Any, Dict, List, Optional, Tuple

from toolformer.grammar import SPECIAL_BYTES, CallGrammar, GrammarError, State, utf8_bad_tail


def _byte_decoder() -> Dict[str, int]:
    """GPT-2's byte <-> unicode table, inverted (byte-level BPE pieces back to bytes)."""
    bs = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(tokenizer: Any) -> List[Optional[bytes]]:
    """Each token id's text as UTF-8 bytes (None for special and added tokens).

    Byte-level BPE pieces (SmolLM2, GPT-2: ``Ġ`` = space) are mapped back through GPT-2's
    byte table; SentencePiece pieces (Gemma: ``▁`` = space, ``<0xNN>`` = one byte) directly.
    Raises :class:`~toolformer.grammar.GrammarError` for a tokenizer of another kind.
    """
    size = len(tokenizer)
    pieces = tokenizer.convert_ids_to_tokens(list(range(size)))
    skip = set(getattr(tokenizer, "all_special_ids", []) or [])
    skip.update(getattr(tokenizer, "added_tokens_decoder", {}) or {})
    probe = tokenizer.convert_ids_to_tokens(tokenizer(" [", add_special_tokens=False).input_ids)
    decoder = _byte_decoder()
    out: List[Optional[bytes]] = [None] * size
    if probe and probe[0].startswith("Ġ"):
        for i, piece in enumerate(pieces):
            if i in skip or piece is None:
                continue
            try:
                out[i] = bytes(decoder[c] for c in piece)
            except KeyError:
                out[i] = None
    elif probe and probe[0].startswith("▁"):
        for i, piece in enumerate(pieces):
            if i in skip or piece is None:
                continue
            if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
                out[i] = bytes([int(piece[3:5], 16)])
            else:
                out[i] = piece.replace("▁", " ").encode("utf-8")
    else:
        raise GrammarError(
            f"cannot build call grammars for tokenizer {type(tokenizer).__name__}: it is neither "
            f"byte-level BPE nor SentencePiece; turn constrained decoding off (constrained=False)"
        )
    return out


class TokenIndex:
    """A tokenizer's vocabulary as a sorted byte trie, and cached grammar masks over it."""

    def __init__(self, tokenizer: Any, vocab_size: Optional[int] = None):
        import numpy as np

        raw = token_bytes(tokenizer)
        self.vocab_size = max(vocab_size or 0, len(raw))
        self.bytes_of: List[Optional[bytes]] = raw + [None] * (self.vocab_size - len(raw))
        pairs = sorted((b, i) for i, b in enumerate(raw) if b)
        self.sorted = [b for b, _ in pairs]
        self.ids = np.array([i for _, i in pairs], dtype=np.int64)
        # the last position of a special byte or of ill-formed UTF-8 in each token (-1: none):
        # a range whose tokens have none at or after depth d is plain text from there on
        self.last_special = np.array(
            [
                max(
                    max((k for k, c in enumerate(b) if c in SPECIAL_BYTES), default=-1),
                    utf8_bad_tail(b),
                )
                for b in self.sorted
            ],
            dtype=np.int64,
        )
        self._masks: Dict[Tuple[Any, State, bool], Any] = {}

    # -- masks -------------------------------------------------------------------------------
    def mask(self, grammar: CallGrammar, state: State, closing: bool = False) -> Any:
        """Bool tensor ``[vocab]``: the tokens the grammar accepts from ``state``.

        With ``closing`` (the call is near its budget), only the tokens after which the call
        is nearest its end (fewest bytes left, :meth:`CallGrammar.distance`): the call then
        ends within :meth:`closing_steps` tokens.
        """
        key = (grammar, state, closing)
        found = self._masks.get(key)
        if found is None:
            import torch

            if len(self._masks) > 20000:
                self._masks.clear()
            found = self._masks[key] = torch.from_numpy(self._walk(grammar, state, closing))
        return found

    def _walk(self, grammar: CallGrammar, state: State, closing: bool) -> Any:
        """Bool array ``[vocab]``: the tokens accepted from ``state``; with ``closing`` only
        those that end nearest the end of the call (fewest bytes left,
        :meth:`CallGrammar.distance`)."""
        import numpy as np

        toks, n = self.sorted, len(self.sorted)
        far = np.iinfo(np.int32).max
        left = np.full(self.vocab_size, far, dtype=np.int32)  # bytes left after the token
        stack = [(0, n, 0, state)]
        while stack:
            lo, hi, d, st = stack.pop()
            i = lo
            here = grammar.distance(st) if (d and closing) else 0
            while i < hi and len(toks[i]) == d:  # tokens that end here
                if d:
                    left[self.ids[i]] = here
                i += 1
            if i >= hi:
                continue
            plain = grammar.absorbs(st)
            if plain is not None and self.last_special[i:hi].max() < d:
                # plain text from here on: every token below ends in the state ``plain``
                left[self.ids[i:hi]] = grammar.distance(plain) if closing else 0
                continue
            while i < hi:
                b = toks[i][d]
                if b == 255:
                    j = hi
                else:
                    j = bisect.bisect_left(toks, toks[i][:d] + bytes([b + 1]), i, hi)
                nxt = grammar.step(st, b)
                if nxt is not None:
                    stack.append((i, j, d + 1, nxt))
                i = j
        best = left.min()
        return left == best if best < far else np.zeros(self.vocab_size, dtype=bool)

    def closing_steps(self, grammar: CallGrammar, state: State) -> int:
        """Tokens needed to finish the call from ``state`` when each is a closing token."""
        key = (grammar, state, "steps")
        found = self._masks.get(key)
        if found is None:
            steps, st = 0, state
            while st is not None and not grammar.done(st) and steps < 64:
                mask = self.mask(grammar, st, True)
                ids = mask.nonzero().flatten().tolist()
                if not ids:
                    break
                # the longest of the closing tokens: the same end, fewest tokens
                tok = max(ids, key=lambda i: len(self.bytes_of[i] or b""))
                st = grammar.advance(st, self.bytes_of[tok])[0]
                steps += 1
            found = self._masks[key] = steps
        return found

    # -- checks ------------------------------------------------------------------------------
    def check(self, grammar: CallGrammar) -> None:
        """Raise :class:`GrammarError` unless every tool's call can be written with these tokens.

        Greedy check from the start: for each tool, the name, ``(``, one accepted argument path
        and the ending must each be reachable by some token.
        """
        for name, _ in grammar.tools:
            state = grammar.start()
            for b in (name + "(").encode():
                state = grammar.step(state, b)
            if not self.mask(grammar, grammar.start()).any():
                raise GrammarError(f"no token of this tokenizer can start a call of tool {name}")
            if not self.mask(grammar, state).any():
                raise GrammarError(
                    f"the argument grammar of tool {name} cannot be built for this "
                    f"tokenizer: no token can start its arguments"
                )


_INDEXES: "weakref.WeakKeyDictionary[Any, TokenIndex]" = weakref.WeakKeyDictionary()


def token_index(tokenizer: Any, vocab_size: Optional[int] = None) -> TokenIndex:
    """The (cached) :class:`TokenIndex` of a tokenizer."""
    try:
        found = _INDEXES.get(tokenizer)
    except TypeError:
        found = None
    if found is None or found.vocab_size < (vocab_size or 0):
        found = TokenIndex(tokenizer, vocab_size)
        try:
            _INDEXES[tokenizer] = found
        except TypeError:
            pass
    return found


class CallConstraint:
    """One row's progress through a call under a grammar (after its ``[``).

    ``max_tokens``: the row's token budget for the call; when only the tokens needed to close
    it (plus ``reserve``) are left, or past the argument grammar's ``max_bytes``, only closing
    tokens are allowed (:meth:`TokenIndex.mask` with ``closing``).
    """

    def __init__(self, index: TokenIndex, grammar: CallGrammar, max_tokens: int, reserve: int = 3):
        self.index = index
        self.grammar = grammar
        self.state: Optional[State] = grammar.start()
        self.tokens = 0
        self.arg_bytes = 0
        self.max_tokens = max_tokens
        self.reserve = reserve

    @property
    def done(self) -> bool:
        return self.state is not None and self.grammar.done(self.state)

    @property
    def failed(self) -> bool:
        return self.state is None

    def closing(self) -> bool:
        """Near the budget: past the arguments' byte cap, or with just enough tokens left to
        finish the call with closing tokens (plus ``reserve``)."""
        st = self.state
        if st is None:
            return False
        if (
            self.max_tokens - self.tokens
            <= self.index.closing_steps(self.grammar, st) + self.reserve
        ):
            return True
        return (
            self.grammar.in_args(st) and self.arg_bytes >= self.grammar.arg_grammar(st[1]).max_bytes
        )

    def allowed(self) -> Any:
        """Bool tensor ``[vocab]`` of the tokens allowed next (all False once done or failed)."""
        if self.state is None or self.done:
            import torch

            return torch.zeros(self.index.vocab_size, dtype=torch.bool)
        return self.index.mask(self.grammar, self.state, self.closing())

    def push(self, token: int) -> None:
        """Advance over one token; a token the grammar rejects leaves the constraint failed."""
        self.tokens += 1
        data = self.index.bytes_of[token] if 0 <= token < len(self.index.bytes_of) else None
        if self.state is None or data is None:
            self.state = None
            return
        self.state, added = self.grammar.advance(self.state, data)
        self.arg_bytes += added


def apply_masks(logits: Any, masks: List[Optional[Any]]) -> Any:
    """Set to -inf, in place, every token of row ``r`` not in ``masks[r]`` (None: row untouched).

    ``logits``: float ``[rows, vocab]`` (a vocabulary wider than a mask keeps its extra tokens
    blocked); ``masks``: bool tensors ``[vocab]``. Returns ``logits``.
    """
    import torch

    rows = [r for r, m in enumerate(masks) if m is not None]
    if not rows:
        return logits
    width = logits.shape[-1]
    stack = torch.zeros((len(rows), width), dtype=torch.bool)
    for k, r in enumerate(rows):
        m = masks[r]
        n = min(width, m.shape[0])
        stack[k, :n] = m[:n]
    stack = stack.to(logits.device)
    if len(rows) == logits.shape[0]:
        logits.masked_fill_(~stack, float("-inf"))
    else:
        index = torch.tensor(rows, device=logits.device)
        logits[index] = logits[index].masked_fill(~stack, float("-inf"))
    return logits
