"""The Calendar tool: the paper's sentence for the document's date, the fallback dates."""

from __future__ import annotations

import datetime as dt

import pytest

from toolformer.syntax import find_calls, strip_calls
from toolformer.tools.assembly import create_tool
from toolformer.tools.base import RETRIEVAL_SETTINGS, ToolContext, ToolInputError
from toolformer.tools.calendar import Calendar, as_date, format_date
from toolformer.tools.executor import ToolExecutor


def test_paper_example():
    assert format_date(dt.date(2023, 1, 30)) == "Today is Monday, January 30, 2023."


@pytest.mark.parametrize(
    "day, expected",
    [
        (dt.date(2024, 2, 29), "Today is Thursday, February 29, 2024."),
        (dt.date(2000, 1, 1), "Today is Saturday, January 1, 2000."),
        (dt.date(1999, 12, 31), "Today is Friday, December 31, 1999."),
        (dt.date(2023, 7, 4), "Today is Tuesday, July 4, 2023."),
    ],
)
def test_format_date(day, expected):
    assert format_date(day) == expected


def test_context_date_wins_over_constructor_date():
    tool = Calendar(today=dt.date(2020, 5, 17))
    ctx = ToolContext(date=dt.date(2023, 1, 30))
    assert tool.run("", ctx) == "Today is Monday, January 30, 2023."
    assert tool.run("") == "Today is Sunday, May 17, 2020."
    assert tool.run("", ToolContext()) == "Today is Sunday, May 17, 2020."


def test_real_current_date_without_any_date():
    before = dt.date.today()
    out = Calendar().run("")
    after = dt.date.today()
    assert out in (format_date(before), format_date(after))


def test_arguments_are_ignored_and_empty_is_fine():
    tool = Calendar(today="2023-01-30")
    for args in ("", "  ", "today", "'what day is it?'", "2019-01-01"):
        assert tool(args) == "Today is Monday, January 30, 2023."
    assert tool.parse_args("  ") == ""


def test_dates_from_strings_and_datetimes():
    assert as_date("2023-01-30") == dt.date(2023, 1, 30)
    assert as_date("2023-01-30T12:00:00") == dt.date(2023, 1, 30)
    assert as_date(dt.datetime(2023, 1, 30, 23, 59)) == dt.date(2023, 1, 30)
    ctx = ToolContext(date=dt.datetime(2023, 1, 30, 8, 0))
    assert Calendar().run("", ctx) == "Today is Monday, January 30, 2023."
    with pytest.raises(ToolInputError, match="YYYY-MM-DD"):
        Calendar(today="30/01/2023")


def test_tool_metadata_and_prompt():
    tool = create_tool("calendar")
    assert isinstance(tool, Calendar)
    assert tool.name == "Calendar"
    assert tool.uses_context is True
    assert tool.annotation == RETRIEVAL_SETTINGS
    prompt = Calendar.prompt
    assert prompt.startswith("Your task is to add calls to a Calendar API to a piece of text.")
    assert "[Calendar()]" in prompt
    assert prompt.endswith("Input: {text}\nOutput:")
    lines = prompt.splitlines()
    examples = [
        (lines[i][7:], lines[i + 1][8:])
        for i in range(len(lines) - 1)
        if lines[i].startswith("Input: ") and lines[i + 1].startswith("Output: ")
    ][:-1]
    assert len(examples) >= 4
    for source, annotated in examples:
        calls = find_calls(annotated)
        assert [c.call.tool for c in calls] == ["Calendar"] and calls[0].call.args == ""
        assert calls[0].call.result is None
        assert strip_calls(annotated) == source


def test_executor_caches_per_document_date():
    with ToolExecutor([Calendar()]) as ex:
        a = ex.run(("Calendar", ""), ToolContext(date=dt.date(2023, 1, 30)))
        b = ex.run(("Calendar", ""), ToolContext(date=dt.date(2023, 1, 31)))
        c = ex.run(("Calendar", ""), ToolContext(date=dt.date(2023, 1, 30)))
    assert a.output == "Today is Monday, January 30, 2023."
    assert b.output == "Today is Tuesday, January 31, 2023."
    assert c.output == a.output and c.cached and not a.cached and not b.cached
