"""Lenient metrics and answer extraction (paper, Section 4.2) on hand-written cases."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.errors import UserError
from toolformer.eval.metrics import (
    answer_text,
    choice_prediction,
    normalize_answer,
    numbers_match,
    parse_gold_number,
    score_output,
)
from toolformer.text.numbers import first_answer_number

# --------------------------------------------------------------------------- answer text


def test_call_replaced_by_its_result():
    assert answer_text("[Calculator(3*4) -> 12] 12 apples") == "12 12 apples"
    assert answer_text("It is [Calculator(400/1400) -> 0.29] 0.29.") == "It is 0.29 0.29."


def test_call_arguments_are_not_part_of_the_answer():
    out = " [QA(Where was Allan Peiper born?) -> Alexandra] Alexandra"
    assert "Peiper" not in answer_text(out)
    assert score_output("lama", out, "Alexandra").correct


def test_failed_call_and_unclosed_tail_are_dropped():
    assert answer_text("Paris [WikiSearch(capital of France) ->] is it") == "Paris is it"
    assert answer_text("Paris [WikiSearch(capital of Fra") == "Paris"
    assert answer_text("see [1] and more") == "see [1] and more"  # brackets that are no call


def test_generator_spans_cover_calls_the_model_never_closed():
    text = "x [Calc(3*4] 5 apples"
    calls = [{"start": 2, "end": 12, "result": None, "error": "unclosed call"}]
    assert answer_text(text, calls) == "x 5 apples"
    assert score_output("math", text, 5.0, calls=calls).correct
    # without the spans the "3" inside the broken call would be read as the answer
    assert not score_output("math", text, 5.0).correct


def test_bracketed_text_that_never_became_a_call_is_kept():
    # under the top-k rule the generator opened "[" and the model answered "[A]"
    calls = [{"start": 1, "end": 4, "result": None, "error": "unclosed call"}]
    assert answer_text(" [A]", calls) == "[A]"
    assert score_output("multiple_choice", " [A]", 0, choices=["x", "y"], calls=calls).correct
    assert not score_output("multiple_choice", " [A]", 1, choices=["x", "y"], calls=calls).correct
    # a malformed call's text is still no answer
    bad = [{"start": 2, "end": 10, "result": None, "error": "malformed call: 3*4"}]
    assert answer_text("x [3*4 ->] 5", bad) == "x 5"


def test_spans_with_results():
    text = "[Calculator(3*4) -> 12] 12 apples"
    calls = [{"start": 0, "end": 23, "result": "12", "error": None}]
    assert answer_text(text, calls) == "12 12 apples"


# --------------------------------------------------------------------------- math


@pytest.mark.parametrize(
    "text, value",
    [
        ("12 apples", 12),
        ("120", 120),
        ("1,000 dollars", 1000),
        ("$5", 5),
        ("$5.50 each", 5.5),
        ("3.50", 3.5),
        ("-3 degrees", -3),
        ("\u22127", -7),
        ("1/2 cup", 0.5),
        ("The answer is 0.29.", 0.29),
        ("5-3=2", 5),  # first number: the minus is an operator, not a sign
        ("12/25/1937", 12),  # a date is no fraction
        ("3,4,5", 3),  # a list is no thousands separator
        ("12,345.67", 12345.67),
        (".5", 0.5),
        ("50%", 50),
        ("x2 is 4", 4),  # a digit glued to a word is no number
    ],
)
def test_first_number(text, value):
    num = first_answer_number(text)
    assert num is not None and math.isclose(num.value, value)


def test_no_number():
    assert first_answer_number("I do not know") is None
    assert not score_output("math", "I do not know", 3.0).correct


@pytest.mark.parametrize(
    "output, gold, ok",
    [
        (" 12", 12.0, True),
        (" 120", 12.0, False),  # near miss: a digit too many
        (" 12", 120.0, False),
        (" 1,000", 1000.0, True),
        (" 1,000", 100.0, False),
        (" $5", 5.0, True),
        (" -3", -3.0, True),
        (" -3", 3.0, False),
        (" 3.50", 3.5, True),
        (" 0.29", 2 / 7, True),  # 2 decimals: matches the gold rounded like the Calculator
        (" 0.3", 2 / 7, False),  # 1 decimal is not enough
        (" 4", 13 / 3, False),
        (" 4.33", 13 / 3, True),
        (" 51.0 dollars", 51.0, True),
        (" 1/2", 0.5, True),
        (" 7 and then 12", 12.0, False),  # only the FIRST number counts
        (" [Calculator(76-25) -> 51] 51", 51.0, True),
        (" [Calculator(76-25) -> 50] 51", 51.0, False),  # the result comes first
    ],
)
def test_math_metric(output, gold, ok):
    assert score_output("math", output, gold).correct is ok


def test_gold_numbers():
    assert parse_gold_number(18) == 18.0
    assert parse_gold_number("1,000") == 1000.0
    assert parse_gold_number(" 43 ") == 43.0
    assert parse_gold_number("43 apples") is None
    assert parse_gold_number("Paris") is None
    assert parse_gold_number(True) is None


@settings(max_examples=200, deadline=None)
@given(
    st.integers(min_value=-(10**9), max_value=10**9),
    st.sampled_from(["", "$"]),
    st.sampled_from([" apples", ".", "", " dollars and 7 cents"]),
)
def test_integers_round_trip(value, prefix, suffix):
    sign = "-" if value < 0 else ""
    text = f"The answer is {sign}{prefix}{abs(value):,}{suffix}"
    assert numbers_match(first_answer_number(text), float(value))
    assert not numbers_match(first_answer_number(text), float(value) * 10 + 1)


@settings(max_examples=200, deadline=None)
@given(
    st.decimals(
        min_value=-(10**6), max_value=10**6, places=2, allow_nan=False, allow_infinity=False
    )
)
def test_decimals_round_trip(value):
    assert numbers_match(first_answer_number(f"= {value} m"), float(value))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_extraction_never_crashes(text):
    answer_text(text)
    first_answer_number(text)
    for kind, gold in (("math", 1.0), ("lama", "Paris"), ("qa", ["Paris"])):
        score_output(kind, text, gold)
    score_output("multiple_choice", text, 0, choices=["a", "b"])


# --------------------------------------------------------------------------- LAMA


@pytest.mark.parametrize(
    "output, gold, ok",
    [
        (" Alexandra, Victoria, Australia.", "Alexandra", True),
        (" alexandra", "Alexandra", True),  # case-insensitive
        (" the city of Alexandra", "Alexandra", True),  # word 4
        (" one two three four Alexandra", "Alexandra", True),  # word 5: still in
        (" one two three four five Alexandra", "Alexandra", False),  # word 6: a miss
        (" Alexandrapolis", "Alexandra", False),  # word boundary
        (" New York City", "New York", True),  # multi-word gold
        (" New Jersey or York", "New York", False),
        (" 1941 in Boston", "1941", True),
        (" the U.S. Army", "US", True),  # abbreviations fold
        (" about 3,000 people", "3000", True),  # thousands separator
        (" The value is 314.", "3.14", False),  # a decimal point is not a separator
    ],
)
def test_lama_metric(output, gold, ok):
    assert score_output("lama", output, gold).correct is ok


# --------------------------------------------------------------------------- QA


def test_normalize_answer():
    assert normalize_answer("The  Beatles!") == "beatles"
    assert normalize_answer("December, 1972.") == "december 1972"
    # numbers and abbreviations are not split at their punctuation
    assert normalize_answer("The stadium seats 3,000 people.") == "stadium seats 3000 people"
    assert normalize_answer("It was founded in the U.S. in 1901.") == "it was founded in us in 1901"
    assert normalize_answer("1,234,567.5 km") == "1234567.5 km"
    assert normalize_answer("The value is 3.14.") == "value is 3.14"
    assert normalize_answer("Washington, D.C.") == "washington dc"
    assert normalize_answer("Plan B. Then 12, 345 and 3,0000") == "plan b then 12 345 and 3 0000"


@pytest.mark.parametrize(
    "output, aliases, ok",
    [
        (" It was in December 1972.", ["14 December 1972 UTC", "December 1972"], True),  # alias
        (" the Beatles", ["Beatles"], True),  # article stripped
        (" THE BEATLES!", ["The Beatles"], True),
        (" Beatlesmania", ["Beatles"], False),  # whole words only
        (" " + " ".join(["w"] * 19) + " Paris", ["Paris"], True),  # word 20
        (" " + " ".join(["w"] * 20) + " Paris", ["Paris"], False),  # word 21: a miss
        (" December", ["December 1972"], False),  # a partial alias is not enough
        # not split at their punctuation: numbers and abbreviations compare whole
        (" The stadium seats 3,000 people.", ["3000"], True),
        (" The stadium seats 3000 people.", ["3,000"], True),
        (" It was founded in the U.S. in 1901.", ["US"], True),
        (" It was founded in the US in 1901.", ["U.S."], True),
        (" The value is 314.", ["3.14"], False),
        (" The value is 3.14.", ["314"], False),
        (" The value is 3 14.", ["3.14"], False),
    ],
)
def test_qa_metric(output, aliases, ok):
    assert score_output("qa", output, aliases).correct is ok


# --------------------------------------------------------------------------- multiple choice

CHOICES = ["12/11/1937", "12/25/1937", "01/04/1938"]


@pytest.mark.parametrize(
    "output, idx",
    [
        (" (B) 12/25/1937", 1),
        (" B", 1),
        (" B.", 1),
        (" [C]", 2),
        (" see [1]", None),
        (" The answer is (C).", 2),
        (" 12/25/1937", 1),  # by option text
        (" It is 01/04/1938, not (A)", 2),  # the first mention wins
        (" A man came on 12/11/1937", 0),  # "A" as an article is no letter; the text names A
        (" The answer A is the correct answer.", 0),
        (" the answer is C", 2),
        (" Answer: B", 1),
        (" The answer is a date", None),  # lowercase "a" is an article
        (" I am not sure", None),
        (" (F)", None),  # not an option here
    ],
)
def test_choice_prediction(output, idx):
    assert choice_prediction(output, CHOICES) == idx


def test_multiple_choice_metric():
    assert score_output("multiple_choice", " (B)", 1, choices=CHOICES).correct
    assert not score_output("multiple_choice", " (A)", 1, choices=CHOICES).correct
    with pytest.raises(ValueError):
        score_output("multiple_choice", " (A)", 1)
    with pytest.raises(UserError, match="unknown metric 'bleu'"):
        score_output("bleu", "x", "x")


@given(st.integers(min_value=0, max_value=10**12), st.integers(min_value=1, max_value=999))
def test_grouped_numbers_equal_plain_ones_and_decimals_stay_apart(n, frac):
    # as a property: "3,000" == "3000"; "3.14" != "314"
    assert normalize_answer(f"about {n:,} people.") == normalize_answer(f"about {n} people")
    assert score_output("qa", f" about {n:,} people.", [str(n)]).correct
    decimal = f"{n}.{frac}"
    assert not score_output("qa", f" it is {n}{frac}.", [decimal]).correct
    assert score_output("qa", f" it is {decimal}.", [decimal]).correct


def test_metric_specs_say_which_way_is_better_and_how_to_show_a_score():
    from toolformer.eval.metrics import GENERATE_UNTIL, LOGLIKELIHOOD_ROLLING, METRICS

    assert METRICS.names() == [
        "contains",
        "lama",
        "math",
        "multiple_choice",
        "no_call",
        "perplexity",
        "qa",
    ]
    for name in ("math", "lama", "qa", "multiple_choice", "contains", "no_call"):
        spec = METRICS.get(name)
        assert spec.higher_is_better and spec.output_type == GENERATE_UNTIL
        assert spec.format(0.4567) == "45.7"
    ppl = METRICS.get("perplexity")
    assert not ppl.higher_is_better and ppl.output_type == LOGLIKELIHOOD_ROLLING
    assert ppl.format(24.2049) == "24.20"
    with pytest.raises(ValueError, match="whole text"):
        ppl.score("x", 1.0)


def test_a_registered_metric_scores_like_the_built_ins():
    from toolformer.eval.metrics import METRICS, MetricSpec, Scored, register_metric

    spec = register_metric(
        MetricSpec(
            "exact_test",
            "whole answer equals gold",
            lambda text, gold, choices: Scored(text, text == gold),
        )
    )
    try:
        assert score_output("exact_test", " [Calculator(1+1) -> 2]", "2").correct
    finally:
        METRICS.unregister("exact_test")
    assert spec.name not in METRICS
