"""Numbers in text (toolformer.text.numbers): each reader's reading, numbers written as words,
format/parse round trips, and the Calculator grammar that admits no call without a number."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.grammar import NO_CALL, CalculatorArgs, TextArgs, call_grammar
from toolformer.text.numbers import (
    EXPRESSION_NUMBER,
    answer_numbers,
    drop_point_zero,
    drop_thousands_separators,
    exact_value,
    first_answer_number,
    format_number,
    has_number,
    is_numeral,
    next_answer_number,
    numbers_in,
    operands,
    prose_numbers,
    word_numbers,
)
from toolformer.tools.assembly import create_tools
from toolformer.tools.base import Tool


def calculator(from_text: bool = True):
    options = {"Calculator": {"numbers_from_text": from_text}}
    return create_tools("Calculator", options)["Calculator"]


class Lookup(Tool):
    name = "Lookup"
    description = "looks a word up"
    arg_grammar = TextArgs(max_bytes=20)

    def run(self, args, context=None):
        return args


# --------------------------------------------------------------------------- the readings


def test_a_division_is_two_operands_for_a_call_and_a_fraction_for_an_answer():
    assert operands("36 / 3") == [36.0, 3.0]
    assert [n.value for n in answer_numbers("36 / 3")] == [12.0]


@pytest.mark.parametrize(
    "text, values",
    [
        ("Out of 1,400 people, 400 (28.57%) came", [1400.0, 400.0, 28.57]),
        ("-3 and $5", [3.0, 5.0]),  # no sign, no currency: only the digits
        ("1/2", [1.0, 2.0]),  # no fraction
        ("A380 and 12", [12.0]),  # a word holding digits is no number
    ],
)
def test_prose_numbers(text, values):
    assert [n.value for n in prose_numbers(text)] == values


def test_prose_numbers_tokens_and_percent():
    nums = prose_numbers("rose 5 percent, to 40 %")
    assert [(n.value, n.percent, n.token) for n in nums] == [(5.0, True, 1), (40.0, True, 5)]


@pytest.mark.parametrize(
    "text, values",
    [
        ("-$1,000.5 or 1/2", [-1000.5, 0.5]),
        (".5 and 3,4,5", [0.5, 3.0, 4.0, 5.0]),  # a list: no thousands separator
        ("x2", []),
    ],
)
def test_answer_numbers(text, values):
    assert [n.value for n in answer_numbers(text)] == values


def test_answer_number_spans_and_decimals():
    n = first_answer_number("so 3.50 each")
    assert (n.value, n.text, n.start, n.end, n.decimals) == (3.5, "3.50", 3, 7, 2)
    assert first_answer_number("1/4").decimals is None
    assert first_answer_number("12/25/1937").value == 12.0  # a date: no fraction 12/25
    assert first_answer_number("none") is None


def test_next_answer_number_is_a_span():
    text = "[C(1+2) -> 3] 1,200, so"
    n = next_answer_number(text, 13)
    assert text[n.start : n.end] == "1,200," and n.value == 1200.0
    assert next_answer_number("no digits", 0) is None


def test_operands_and_numbers_in():
    assert operands("1,200 - 0.5 and .25") == [1200.0, 0.5, 0.25]
    assert numbers_in("4,858,979 and 1,5 and 2.25") >= {"4858979", "1.5", "1", "2.25", "2"}
    assert numbers_in("no numbers") == frozenset()
    assert numbers_in("a dozen and a half", words=True) == {"12", "0.5", "2"}
    assert numbers_in("a dozen") == frozenset()  # words only when asked


def test_expression_literals_are_exact():
    import re

    assert re.fullmatch(EXPRESSION_NUMBER, "1,000.") and re.fullmatch(EXPRESSION_NUMBER, ".5")
    assert exact_value("1,000.5") == Fraction(2001, 2) and exact_value("3.") == 3
    with pytest.raises(ValueError):
        exact_value("abc")


def test_rewrites():
    assert drop_thousands_separators("3,000 and 3,4,5") == "3000 and 3,4,5"
    assert drop_point_zero("56.0 kg, 56.05 m, 1.2.0") == "56 kg, 56.05 m, 1.2.0"
    assert is_numeral("135,765") and not is_numeral("12 km")


@pytest.mark.parametrize(
    "value, decimals, text",
    [
        (24.0, None, "24"),
        (2.5, None, "2.5"),
        (Fraction(2, 3), 4, "0.6667"),
        (Fraction(-5, 2), 0, "-3"),
        (Fraction(-1, 1000), 2, "0"),
        (0.125, 2, "0.13"),  # half away from zero, exactly
    ],
)
def test_format_number(value, decimals, text):
    assert format_number(value, decimals) == text


# --------------------------------------------------------------------------- round trips


@settings(max_examples=200, deadline=None)
@given(st.fractions(min_value=-(10**9), max_value=10**9, max_denominator=10**6), st.integers(0, 6))
def test_format_then_read_is_the_rounded_value(value, decimals):
    text = format_number(value, decimals)
    assert abs(
        exact_value(text.lstrip("-")) * (-1 if text.startswith("-") else 1) - value
    ) <= Fraction(1, 2 * 10**decimals)
    (n,) = answer_numbers(f"= {text} m")
    assert math.isclose(n.value, float(Fraction(text)), rel_tol=1e-12, abs_tol=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False))
def test_plain_format_round_trips(x):
    text = format_number(x)
    assert float(text) == x
    if "e" not in text:  # 1e-05: no reader takes an exponent
        assert operands(f"({text})") == [round(x, 6)]


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**9))
def test_grouped_integers_read_alike(n):
    grouped = f"{n:,}"
    assert operands(grouped) == [float(n)]
    assert [x.value for x in prose_numbers(grouped)] == [float(n)]
    assert first_answer_number(grouped).value == n
    assert str(n) in numbers_in(grouped)
    assert drop_thousands_separators(grouped) == str(n)


ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen".split()
)
TENS = "twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n: int) -> str:
    """English words for 0 <= n < 1,000,000 ("three hundred and twelve", "thirty-five")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10 - 2] + ("-" + ONES[n % 10] if n % 10 else "")
    if n < 1000:
        return ONES[n // 100] + " hundred" + (" and " + spell(n % 100) if n % 100 else "")
    return spell(n // 1000) + " thousand" + (" " + spell(n % 1000) if n % 1000 else "")


@settings(max_examples=300, deadline=None)
@given(st.integers(2, 999_999))
def test_spelled_numbers_read_back(n):
    values = [x.value for x in word_numbers(f"She sold {spell(n)} cupcakes.")]
    assert values == [float(n)]
    assert format_number(n) in numbers_in(f"She sold {spell(n)} cupcakes.", words=True)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_readers_never_raise(text):
    for fn in (prose_numbers, answer_numbers, word_numbers):
        for n in fn(text):
            assert 0 <= n.start <= n.end <= len(text)
    operands(text, words=True)
    numbers_in(text, words=True)
    next_answer_number(text)
    assert has_number(text) == bool(numbers_in(text, words=True))


# --------------------------------------------------------------------------- words

# the phrases the word readers were measured on (module docstring of toolformer.text.numbers)
PHRASES = [
    ("He has thirty-five apples.", [35]),
    ("She bought a dozen eggs.", [12]),
    ("three hundred and twelve people came", [312]),
    ("It costs twenty dollars and she pays with a fifty.", [20, 50]),
    ("Tom is twice as old as Ann, who is seven.", [2, 7]),
    ("He ate half of the 10 cookies.", [0.5, 2]),  # "half": 10 / 2 and 10 * 0.5 both grounded
    ("one thousand two hundred", [1200]),
    ("There are two cats and one dog.", [2, 1]),
    ("I have 3 apples and four pears.", [4]),  # digits: the digit readers have them
    ("ninety-nine bottles", [99]),
    ("a hundred miles", [100]),
    ("fifteen percent of forty", [15, 40]),
    ("two and a half hours", [2, 2.5, 0.5, 2]),
    ("He came first, then a second man.", []),  # ordinals are positions
    ("What is the capital of France?", []),
    ("Which one is bigger? The other one.", []),  # "one" as a pronoun
    ("eleven thousand", [11000]),
    ("Sixty kids", [60]),
    ("she sold forty-two cupcakes and six cookies", [42, 6]),
    ("seventy five", [75]),
]


@pytest.mark.parametrize("text, values", PHRASES)
def test_word_phrases(text, values):
    assert [n.value for n in word_numbers(text)] == [float(v) for v in values]


@pytest.mark.parametrize(
    "text, values",
    [
        ("two dozen eggs", [2, 24, 12]),
        ("3 dozen", [36, 12]),
        ("half a dozen", [0.5, 2, 6, 12]),
        ("a third of the class", [3]),  # an ordinal after "a": a denominator
        ("two thirds of it", [2, 3]),
        ("the fourth day", []),
        ("a quarter of 8", [0.25, 4]),
        ("1.5 million people", [1_500_000, 1_000_000]),
        ("no one came, each one left", []),
        ("thousands of people", []),  # vague plurals
        ("nine point five", [9.5]),
    ],
)
def test_word_readings(text, values):
    assert [n.value for n in word_numbers(text)] == [float(v) for v in values]


def test_word_number_spans():
    text = "He has thirty-five apples and a dozen pears"
    assert [text[n.start : n.end] for n in word_numbers(text)] == ["thirty-five", "dozen"]


def test_grounding_reads_words_but_call_arguments_only_digits():
    assert operands("a dozen eggs at twenty cents", words=True) == [12.0, 20.0]
    assert operands("a dozen eggs") == []


# --------------------------------------------------------------------------- no number, no call


def test_calculator_grammar_without_a_number_admits_no_call():
    calc = calculator()
    for text in ("What is the capital of France?", "", "Which one is it? The other one."):
        assert calc.argument_grammar(text) is NO_CALL and not calc.available(text)
        assert call_grammar([calc], "]", text) is None
        assert call_grammar([calc], "->", text) is None
    # another tool stays available; the Calculator is not in the grammar
    g = call_grammar([calc, Lookup()], "]", "What is the capital of France?")
    assert g.accepts("Lookup(France)]") and not g.accepts("Calculator(10 * 11)]")


def test_calculator_grammar_takes_numbers_written_in_words():
    calc = calculator()
    text = "Ann has a dozen eggs and buys thirty-five more. How many?"
    assert calc.available(text)
    g = call_grammar([calc], "]", text)
    assert g.accepts("Calculator(12 + 35)]") and not g.accepts("Calculator(10 * 11)]")
    half = call_grammar([calc], "]", "She ate half of the cake")
    assert half.accepts("Calculator(1 / 2)]") is False  # 1 is not in the text
    assert half.accepts("Calculator(0.5 * 2)]")


def test_without_numbers_from_text_every_text_admits_a_call():
    calc = calculator(from_text=False)
    assert calc.available("What is the capital of France?")
    g = call_grammar([calc], "]", "What is the capital of France?")
    assert g.accepts("Calculator(10 * 11)]")
    # the grammar for any text (checks against a tokenizer) is never NO_CALL
    assert calculator().argument_grammar() == CalculatorArgs()


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("abc one two dozen half 12.,?")), max_size=40))
def test_available_agrees_with_the_grammar(text):
    calc = calculator()
    assert calc.available(text) == (calc.argument_grammar(text) is not NO_CALL)
