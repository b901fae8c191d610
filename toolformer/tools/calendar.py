"""The Calendar tool: "Today is Monday, January 30, 2023." for the document's date.

The paper calls it without arguments (``[Calendar()]``) and, during annotation, answers with
the date the document was written (e.g. taken from its URL); :class:`ToolContext` carries that
date. Without one the tool falls back to the date given to its constructor, then to today.
"""

from __future__ import annotations

import datetime as _dt
from typing import Optional, Union

from toolformer.grammar import EmptyArgs
from toolformer.tools.base import RETRIEVAL_SETTINGS, Tool, ToolContext, ToolInputError, load_prompt

# Fixed English names: strftime("%A") would follow the process's locale.
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)

DateLike = Union[_dt.date, str]


def as_date(value: DateLike) -> _dt.date:
    """A ``date`` from a date, a datetime or an ISO ``YYYY-MM-DD`` string."""
    if isinstance(value, _dt.datetime):
        return value.date()
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value).strip()[:10])
    except ValueError:
        raise ToolInputError(f"not a date: {value!r}; use YYYY-MM-DD, e.g. 2023-01-30") from None


def format_date(day: _dt.date) -> str:
    """``Today is Monday, January 30, 2023.``"""
    return f"Today is {WEEKDAYS[day.weekday()]}, {MONTHS[day.month - 1]} {day.day}, {day.year}."


class Calendar(Tool):
    """The current date, in the paper's words; arguments are ignored."""

    name = "Calendar"
    arg_grammar = EmptyArgs()  # [Calendar()]: no arguments
    description = (
        'Returns the current date, e.g. "Today is Monday, January 30, 2023."; takes no arguments.'
    )
    prompt = load_prompt("calendar.txt")
    annotation = RETRIEVAL_SETTINGS
    example_args = ""
    uses_context = True

    def __init__(self, today: Optional[DateLike] = None):
        self.today = as_date(today) if today is not None else None

    def parse_args(self, args: str) -> str:
        """Anything goes: ``[Calendar()]`` is the usual call and arguments are ignored."""
        return args.strip()

    def check_call(self, args: str) -> Optional[str]:
        """Only ``[Calendar()]``: the paper's Calendar takes no arguments, and junk in them
        (``Calendar(\\)\\()``) would be learned along with the date."""
        return None if not args.strip() else "Calendar takes no arguments: Calendar()"

    def context_key(self, context: Optional[ToolContext]) -> Optional[_dt.date]:
        """Only the date changes the result (not the annotated document's identity or text)."""
        return context.date if context is not None else None

    def date_for(self, context: Optional[ToolContext] = None) -> _dt.date:
        """The document's date, else the constructor's ``today``, else the real current date."""
        if context is not None and context.date is not None:
            return as_date(context.date)
        if self.today is not None:
            return self.today
        return _dt.date.today()

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        return format_date(self.date_for(context))
