"""Incremental detokenising and stop strings."""

from __future__ import annotations

from typing import Any, List, Optional, Sequence


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
        return self.tokenizer.decode(
            ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
        )

    def push(self, token: int) -> str:
        self.ids.append(token)
        before = self._decode(self.ids[self.prefix : self.read])
        now = self._decode(self.ids[self.prefix :])
        if len(now) > len(before) and not now.endswith("\ufffd"):
            self.prefix, self.read = self.read, len(self.ids)
            return now[len(before) :]
        return ""

    @property
    def holding(self) -> bool:
        """Whether tokens are held back (half a character): text is still to come from them."""
        return self.read < len(self.ids)

    def flush(self) -> str:
        before = self._decode(self.ids[self.prefix : self.read])
        now = self._decode(self.ids[self.prefix :])
        self.prefix = self.read = len(self.ids)
        return now[len(before) :]


def find_stop(text: str, lo: int, limit: int, stop_strings: Sequence[str]) -> Optional[int]:
    """Where the output ends: the first stop string found in ``text[lo:limit]``, else None.

    A stop string counts only once some non-space text precedes it: an
    answer that starts on a new line (``"\n12 jars.\n"`` with stop ``"\n"``) is not cut to
    nothing. ``lo`` lets the caller search only text it has not searched yet (and not inside
    a call); the answer is an index into ``text``.
    """
    best: Optional[int] = None
    for s in stop_strings:
        at = text.find(s, lo, limit)
        while at >= 0 and at + len(s) <= limit and not text[:at].strip():
            at = text.find(s, at + 1, limit)
        if at >= 0 and at + len(s) <= limit and (best is None or at < best):
            best = at
    return best
