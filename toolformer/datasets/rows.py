"""The row shape shared by the generated sets, its checks, and the split-overlap check.

A row (one JSON object)::

    {"id": "dates-eval-1a2b3c4d5e", "question": "What day of the week is it today?",
     "answer": "Monday", "answers": ["Monday"], "date": "2023-01-30",
     "tools": ["Calendar"], "kind": "dates", "split": "eval"}

``answer`` is the gold answer (None where there is none: a no-tool prompt has no single right
text); ``answers`` every accepted form of it (``[]`` for none); ``date`` the reference date the
Calendar must return for this row (``None`` where no date matters); ``tools`` the tools that fit
(``[]``: no tool helps).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import re
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from toolformer.errors import UserError

SPLITS = ("train", "dev", "eval")
KINDS = ("dates", "notool")
ROW_KEYS = ("id", "question", "answer", "answers", "date", "tools", "kind", "split")
# Words read by :func:`answer_matches`, as the project's QA metric reads its first 20 words.
ANSWER_WORDS = 20

Row = Dict[str, Any]


def check_split(split: str) -> str:
    """``split`` if it is one of :data:`SPLITS`; else a one-line :class:`UserError`."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}")
    return split


def check_n(n: Any) -> int:
    """``n`` as a count of rows (an int >= 0); else a one-line :class:`UserError`."""
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise UserError(f"the number of items must be a whole number >= 0, got {n!r}")
    return n


def stable_hash(text: str) -> int:
    """A hash of ``text`` that is the same in every process (``hash()`` is salted per run)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def row_id(kind: str, split: str, question: str, date: Optional[str]) -> str:
    """``dates-eval-1a2b3c4d5e``: stable, from the row's (question, date) key."""
    digest = hashlib.sha1(f"{question}\x00{date or ''}".encode("utf-8")).hexdigest()[:10]
    return f"{kind}-{split}-{digest}"


def check_row(row: Mapping[str, Any], where: str = "item") -> Mapping[str, Any]:
    """Check a row's shape; returns it. One-line :class:`UserError` for: a missing key, an
    unknown kind or split, a question that is not text, ``answers``/``tools`` that are not
    lists, a date that is not ``YYYY-MM-DD``, and a ``dates`` row without a date."""
    if not isinstance(row, Mapping):
        raise UserError(f"{where} is not an object with {', '.join(ROW_KEYS)}")
    missing = [k for k in ROW_KEYS if k not in row]
    if missing:
        raise UserError(
            f"{where} lacks {', '.join(missing)}; every item needs {', '.join(ROW_KEYS)}"
        )
    if row["kind"] not in KINDS:
        raise UserError(f"{where}: unknown kind {row['kind']!r}; use one of {', '.join(KINDS)}")
    check_split(row["split"])
    if not isinstance(row["question"], str) or not row["question"].strip():
        raise UserError(f"{where}: the question must be non-empty text")
    for key in ("answers", "tools"):
        if not isinstance(row[key], list):
            raise UserError(f"{where}: {key} must be a list")
    date = row["date"]
    if row["kind"] == "dates" and not date:
        raise UserError(
            f"{where} ({row['id']}) has no date; a dates item needs its reference "
            "date as YYYY-MM-DD, e.g. 2023-01-30"
        )
    if date is not None:
        try:
            _dt.date.fromisoformat(str(date))
        except ValueError:
            raise UserError(f"{where} ({row['id']}): date {date!r} is not YYYY-MM-DD") from None
    return row


def row_key(row: Mapping[str, Any]) -> Tuple[str, str]:
    """The identity of a row across splits: its question (whitespace and case folded) and its
    date (a date question asked on another day is another item)."""
    question = " ".join(str(row["question"]).split()).lower()
    return question, str(row.get("date") or "")


def overlap(
    a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]]
) -> List[Tuple[str, str]]:
    """The (question, date) keys that occur in both ``a`` and ``b``, sorted."""
    return sorted({row_key(r) for r in a} & {row_key(r) for r in b})


def assert_disjoint(
    a: Iterable[Mapping[str, Any]], b: Iterable[Mapping[str, Any]], what: str = "the two sets"
) -> None:
    """Raise a one-line :class:`UserError` when ``a`` and ``b`` share a (question, date) key."""
    shared = overlap(a, b)
    if shared:
        question, date = shared[0]
        raise UserError(
            f"{what} share {len(shared)} item(s), e.g. {question!r}"
            f"{f' on {date}' if date else ''}; they must be disjoint"
        )


def _fold(text: str) -> str:
    # "January 30,2023" / "january  30, 2023." read alike: lowercase, commas and spaces collapsed
    text = re.sub(r"\s*,\s*", ", ", text.lower())
    return " ".join(text.split())


def answer_matches(text: str, answers: Sequence[str], n_words: int = ANSWER_WORDS) -> bool:
    """Whether a gold form in ``answers`` occurs in the first ``n_words`` words of ``text``
    (case-insensitive, on word boundaries: "12" does not match "120"). Lenient, as the paper's
    date metric (the gold contained in the output); the window stops a list of every weekday
    from counting. ``[]`` matches nothing."""
    window = _fold(" ".join(text.split()[:n_words]))
    for gold in answers:
        gold = _fold(str(gold))
        if gold and re.search(r"(?<!\w)" + re.escape(gold) + r"(?!\w)", window):
            return True
    return False
