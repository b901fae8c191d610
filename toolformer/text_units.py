"""Where a call may go in a text: before a word or number, never between two characters of one.

Positions during annotation and generation are token positions, and tokenizers split inside
words and numbers (SmolLM2 writes every digit as its own token), so a call "before token i" can
land inside ``16`` (``1 [Calculator(16) -> 16]6``). A *unit* is a word or number as a reader
sees it, with what binds to its front:

- letters/digits joined by ``. , ' ’ - / :`` between two of them: ``3.14``, ``1,000``,
  ``U.S``, ``don't``, ``well-known``, ``12:30``, ``1/2``, ``A380``;
- led by currency, opening brackets and quotes, ``#``, or a sign before a digit: ``$5``,
  ``(see``, ``"Hello``, ``-3``.

:func:`unit_starts` gives the character offsets where units begin; a call may go before a token
whose first non-space character is one of them.
"""

from __future__ import annotations

import re
from typing import List, Sequence, Set, Tuple

_UNIT = re.compile(r"(?<!\w)(?:[$€£¥#(\[{\"'“‘«]|[-−+](?=\d))*\w+(?:[.,'’/:\-−]\w+)*")


def unit_starts(text: str) -> Set[int]:
    """Character offsets in ``text`` where a word or number (a unit, see the module) begins."""
    return {m.start() for m in _UNIT.finditer(text)}


def first_visible(text: str, offset: int) -> int:
    """The first offset >= ``offset`` that is not whitespace (``len(text)`` if none)."""
    n = len(text)
    while offset < n and text[offset].isspace():
        offset += 1
    return offset


def token_starts_unit(text: str, token_offsets: Sequence[Tuple[int, int]]) -> List[bool]:
    """For each token (``(start, end)`` character offsets into ``text``): does a unit begin at
    its first non-space character (a whitespace-only token looks at the next character)?"""
    starts = unit_starts(text)
    return [first_visible(text, max(0, s)) in starts for s, _ in token_offsets]
