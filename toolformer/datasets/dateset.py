"""A generated Dateset: questions about the current date, in the spirit of the paper's Dateset.

Every item has its own reference date ("today" for that item), which the Calendar tool returns
for it (``Today is Monday, January 30, 2023.``); the question never states it, so a model can
only answer by calling the Calendar. Kinds of question: today's date, weekday, month and year,
yesterday's and tomorrow's date, the date and the weekday N days ago / from now, how many days
until / since a given date.

Splits are disjoint by construction: a reference date belongs to exactly one split (by a stable
hash of the date), so no (question, date) pair of one split occurs in another;
:func:`toolformer.datasets.rows.assert_disjoint` checks it.
"""

from __future__ import annotations

import datetime as _dt
import functools
import random
from typing import Callable, Dict, List, Tuple

from toolformer.datasets.rows import Row, check_n, check_split, row_id, stable_hash
from toolformer.errors import UserError
from toolformer.tools.calendar import MONTHS, WEEKDAYS

# Reference dates are drawn from these years (inclusive).
FIRST_DAY = _dt.date(2000, 1, 1)
LAST_DAY = _dt.date(2030, 12, 31)
# A date's split: its stable hash modulo 20 -> 16 buckets train (80%), 2 dev, 2 eval.
_BUCKETS = 20
_SPLIT_BUCKETS = {"train": range(0, 16), "dev": range(16, 18), "eval": range(18, 20)}
# Offsets in days for "N days ago / from now" and "until / since <date>".
MIN_OFFSET, MAX_OFFSET = 2, 100
TOOL = "Calendar"

# a question's text, gold answer and accepted forms, from the reference date and an offset
Maker = Callable[[_dt.date, int], Tuple[str, str, List[str]]]


def date_forms(day: _dt.date) -> List[str]:
    """Accepted ways to write ``day``: ``January 30, 2023`` (first: the gold answer),
    ``January 30 2023``, ``30 January 2023``, ``2023-01-30``, ``01/30/2023``."""
    month = MONTHS[day.month - 1]
    return [
        f"{month} {day.day}, {day.year}",
        f"{month} {day.day} {day.year}",
        f"{day.day} {month} {day.year}",
        day.isoformat(),
        f"{day.month:02d}/{day.day:02d}/{day.year}",
    ]


def long_date(day: _dt.date) -> str:
    """``January 30, 2023`` (as the Calendar writes it)."""
    return date_forms(day)[0]


def _weekday(day: _dt.date) -> List[str]:
    return [WEEKDAYS[day.weekday()]]


def _days(n: int) -> List[str]:
    return [str(n), f"{n} days"]


def _fixed(
    questions: Tuple[str, ...], answer: Callable[[_dt.date], List[str]], shift: int = 0
) -> List[Maker]:
    def make(question: str) -> Maker:
        def maker(today: _dt.date, n: int) -> Tuple[str, str, List[str]]:
            forms = answer(today + _dt.timedelta(days=shift))
            return question, forms[0], forms

        return maker

    return [make(q) for q in questions]


def _offset(
    questions: Tuple[str, ...], answer: Callable[[_dt.date], List[str]], sign: int
) -> List[Maker]:
    def make(question: str) -> Maker:
        def maker(today: _dt.date, n: int) -> Tuple[str, str, List[str]]:
            forms = answer(today + _dt.timedelta(days=sign * n))
            return question.format(n=n), forms[0], forms

        return maker

    return [make(q) for q in questions]


def _between(questions: Tuple[str, ...], sign: int) -> List[Maker]:
    def make(question: str) -> Maker:
        def maker(today: _dt.date, n: int) -> Tuple[str, str, List[str]]:
            other = today + _dt.timedelta(days=sign * n)
            return question.format(date=long_date(other)), str(n), _days(n)

        return maker

    return [make(q) for q in questions]


# Question families; each is drawn with equal chance, then one of its phrasings.
FAMILIES: Dict[str, List[Maker]] = {
    "today": _fixed(
        (
            "What is today's date?",
            "What is the date today?",
            "What's the date today?",
            "Which date is it today?",
        ),
        date_forms,
    ),
    "weekday": _fixed(
        (
            "What day of the week is it today?",
            "What day is it today?",
            "Which day of the week is today?",
        ),
        _weekday,
    ),
    "month": _fixed(
        ("What month is it?", "Which month are we in?", "What is the current month?"),
        lambda d: [MONTHS[d.month - 1]],
    ),
    "year": _fixed(
        ("What year is it?", "Which year is it now?", "What is the current year?"),
        lambda d: [str(d.year)],
    ),
    "yesterday": _fixed(
        ("What was yesterday's date?", "What was the date yesterday?"), date_forms, shift=-1
    ),
    "tomorrow": _fixed(
        ("What is tomorrow's date?", "What will the date be tomorrow?"), date_forms, shift=1
    ),
    "days_ago": _offset(
        ("What was the date {n} days ago?", "What date was it {n} days ago?"), date_forms, -1
    ),
    "days_ahead": _offset(
        ("What will the date be {n} days from now?", "What is the date {n} days from today?"),
        date_forms,
        1,
    ),
    "weekday_ago": _offset(("What day of the week was it {n} days ago?",), _weekday, -1),
    "weekday_ahead": _offset(("What day of the week will it be {n} days from now?",), _weekday, 1),
    "days_until": _between(
        ("How many days are left until {date}?", "How many days is it until {date}?"), 1
    ),
    "days_since": _between(
        ("How many days have passed since {date}?", "How many days ago was {date}?"), -1
    ),
}
FAMILY_NAMES = tuple(FAMILIES)


def date_split(day: _dt.date) -> str:
    """The one split whose items may use ``day`` as their reference date."""
    bucket = stable_hash(f"dateset:{day.isoformat()}") % _BUCKETS
    return next(s for s, r in _SPLIT_BUCKETS.items() if bucket in r)


def split_dates(split: str) -> Tuple[_dt.date, ...]:
    """Every reference date of ``split``, in order."""
    return _split_dates(check_split(split))


@functools.lru_cache(maxsize=None)
def _split_dates(split: str) -> Tuple[_dt.date, ...]:
    days = (LAST_DAY - FIRST_DAY).days + 1
    return tuple(
        d
        for d in (FIRST_DAY + _dt.timedelta(days=i) for i in range(days))
        if date_split(d) == split
    )


def max_items(split: str) -> int:
    """A lower bound on the distinct items of ``split`` (every date with every phrasing that
    takes no offset); :func:`generate_dateset` accepts up to this many."""
    fixed = sum(
        len(FAMILIES[f]) for f in ("today", "weekday", "month", "year", "yesterday", "tomorrow")
    )
    return len(split_dates(split)) * fixed


def make_row(
    question: str, answer: str, answers: List[str], today: _dt.date, split: str, family: str = ""
) -> Row:
    """One row of the shared shape (see :mod:`toolformer.datasets.rows`)."""
    date = today.isoformat()
    row: Row = {
        "id": row_id("dates", split, question, date),
        "question": question,
        "answer": answer,
        "answers": list(dict.fromkeys(answers)),
        "date": date,
        "tools": [TOOL],
        "kind": "dates",
        "split": split,
    }
    if family:
        row["family"] = family
    return row


def generate_dateset(n: int, seed: int, split: str) -> List[Row]:
    """``n`` distinct date questions of ``split`` ("train", "dev" or "eval"), drawn with
    ``seed`` (the same arguments give the same rows, in every process).

    Each row: ``question`` (no date of "today" in it), ``answer`` and ``answers`` (accepted
    forms: ``January 30, 2023`` / ``2023-01-30`` / ``30 January 2023`` for a date, ``Monday``,
    ``2023``, ``12`` / ``12 days``), ``date`` (the reference date, ``YYYY-MM-DD``), ``tools``
    ``["Calendar"]``, ``kind`` "dates", ``split``, and ``family`` (the question kind).
    Raises :class:`UserError` (one line) for an unknown split, ``n`` < 0 or ``n`` above
    :func:`max_items`.
    """
    check_split(split)
    check_n(n)
    dates = split_dates(split)
    cap = max_items(split)
    if n > cap:
        raise UserError(
            f"the {split} split of dateset holds at least {cap} items; "
            f"ask for at most that many (got {n})"
        )
    rng = random.Random(f"dateset:{seed}:{split}")
    rows: List[Row] = []
    seen = set()
    while len(rows) < n:
        family = rng.choice(FAMILY_NAMES)
        maker = rng.choice(FAMILIES[family])
        today = rng.choice(dates)
        question, answer, answers = maker(today, rng.randint(MIN_OFFSET, MAX_OFFSET))
        key = (question, today)
        if key in seen:
            continue
        seen.add(key)
        rows.append(make_row(question, answer, answers, today, split, family))
    return rows
