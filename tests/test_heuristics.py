"""Per-tool prefilters: the paper's Calculator, Calendar and MT rules."""

from __future__ import annotations

import datetime as dt
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.data_aug.heuristics import (
    CalculatorPrefilterOptions,
    MTPrefilterOptions,
    PrefilterInput,
    calculator_prefilter,
    find_operation,
    prefilter,
    random_keep,
)
from toolformer.text.numbers import prose_numbers


def calc(text: str, doc_id: str = "d", seed: int = 0, **options) -> str:
    """The Calculator rule's reason for ``text`` with ``options`` (CalculatorPrefilterOptions)."""
    item = PrefilterInput(
        text, doc_id=doc_id, seed=seed, options=CalculatorPrefilterOptions(**options)
    )
    d = calculator_prefilter(item)
    return d.reason if d.keep else "rejected: " + d.reason


@pytest.mark.parametrize(
    "text",
    [
        "Out of 1400 participants, 400 (or 29%) passed the test.",  # 400 / 1400 = 0.2857 -> 29%
        "The farm sold 36 crates of apples at 15 dollars each, earning 540 dollars.",  # 36 * 15
        # 2019 - 1937
        "The bridge opened in 1937 and was closed in 2019, after 82 years of service.",
        "A population of 12,000 lost 3,000 people; 9,000 remained.",  # thousands separators
        "They scored 3.5 points, then 2.25 more: 5.75 in all.",  # decimals
        "Of 50 votes, 20 percent (10) went to him.",  # percent word as operand: 0.2 * 50
    ],
)
def test_calculator_keeps_texts_with_an_operation(text):
    assert calc(text) == "operation"


@pytest.mark.parametrize(
    "text",
    [
        "x = 12 in this case",
        "The sum equals 7.",
        "This is equal to 3 apples.",
        "They raised a total of $5 million.",
        "An average of 2.5 goals per game.",
        "AVERAGE OF 7",
    ],
)
def test_calculator_keeps_keyword_followed_by_number(text):
    assert calc(text) == "keyword"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("The cat sat on the mat and looked at the garden.", "too few numbers"),
        ("He was born in 1990.", "too few numbers"),
        ("In 1990, 1995 and 2003 he won the cup.", "numbers without operation"),
        ("This equals nothing and the total of it is unknown, 1 and 2.", "too few numbers"),
        ("Items 1 and 7 and 7 again.", "numbers without operation"),  # 7 * 1 = 7 is trivial
        ("Scores were 4 and 4 and 1.", "numbers without operation"),  # 4 / 4 = 1 is degenerate
        ("The A380 and the 2nd 747 flew in the 1990s.", "too few numbers"),  # not numbers
    ],
)
def test_calculator_rejects(text, reason):
    assert calc(text, random_keep=0.0) == "rejected: " + reason


def test_calculator_window_is_in_tokens():
    filler = " ".join(["word"] * 120)
    far = f"We had 3 cats. {filler} Later 4 dogs came, 7 animals."
    assert calc(far, random_keep=0.0) == "rejected: too few numbers"
    assert calc(far, window_tokens=200) == "operation"
    near = "We had 3 cats. Later 4 dogs came, 7 animals."
    assert calc(near) == "operation"


def test_calculator_random_keep_is_about_one_percent_and_deterministic():
    text = "In 1990, 1995 and 2003 he won the cup."
    kept = [i for i in range(2000) if calc(text, doc_id=f"doc{i}") == "random"]
    assert 6 <= len(kept) <= 40  # 1% of 2000 = 20
    assert kept == [i for i in range(2000) if calc(text, doc_id=f"doc{i}") == "random"]
    other_seed = [i for i in range(2000) if calc(text, doc_id=f"doc{i}", seed=1) == "random"]
    assert other_seed != kept
    assert not random_keep(0, "x", 0, 0.0) and random_keep(0, "x", 0, 1.0)


def test_prose_numbers_and_operation():
    nums = prose_numbers("Out of 1,400 people, 400 (28.57%) came")
    assert [(n.value, n.decimals, n.percent) for n in nums] == [
        (1400.0, 0, False),
        (400.0, 0, False),
        (28.57, 2, True),
    ]
    a, b, c = find_operation(nums, 100)
    assert c.value == 28.57
    assert find_operation(prose_numbers("Out of 1,400 people, 400 (31%) came"), 100) is None


def test_calendar_needs_a_date():
    assert not prefilter("Calendar", PrefilterInput("Today is Monday.")).keep
    assert prefilter("calendar", PrefilterInput("Today is Monday.", date=dt.date(2023, 1, 30))).keep


def test_retrieval_tools_and_unknown_tools_keep_everything():
    for name in ("WikiSearch", "QA", "MyPluginTool"):
        assert prefilter(name, PrefilterInput("anything at all")).keep


def test_mt_needs_a_foreign_chunk_in_english_text():
    english = (
        "The committee met on Tuesday to discuss the "
        "budget for the coming year and agreed on a plan."
    )
    french = (
        "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine et a adopté "
        "un plan ambitieux pour la ville."
    )
    mixed = (
        f'{english} The mayor then said: "{french}" After that, everyone went home for the evening.'
    )
    assert not prefilter("MT", PrefilterInput(english)).keep
    assert prefilter("MT", PrefilterInput(mixed)).keep
    assert not prefilter("MT", PrefilterInput(mixed, options=MTPrefilterOptions(60))).keep


def test_mt_without_language_detector_is_counted(monkeypatch):
    monkeypatch.setitem(sys.modules, "toolformer.text.langdetect", None)  # import fails
    item = PrefilterInput(
        "Le comité s'est réuni mardi pour discuter du budget de l'année prochaine."
    )
    decision = prefilter("MT", item)
    assert not decision.keep and item.warnings["langdetect_unavailable"] == 1


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_prefilters_never_raise(text):
    for tool in ("Calculator", "Calendar", "WikiSearch"):
        d = prefilter(tool, PrefilterInput(text, doc_id="h"))
        assert isinstance(d.keep, bool)
    for n in prose_numbers(text):
        assert n.value >= 0 and n.decimals >= 0


@settings(max_examples=100, deadline=None)
@given(st.integers(1, 999), st.integers(1, 999), st.sampled_from("+-*/"))
def test_calculator_finds_any_written_operation(a, b, op):
    value = {"+": a + b, "-": abs(a - b), "*": a * b, "/": a / b}[op]
    trivial = (op in "*/" and 1 in (a, b)) or (op in "-/" and a == b)
    text = f"We took {a} and {b}, which gave {round(value, 2)} in the end."
    assert (calc(text, random_keep=0.0) == "operation") or trivial
