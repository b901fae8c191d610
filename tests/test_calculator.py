"""The Calculator: paper semantics, exact arithmetic, bounded on hostile input, never eval."""

from __future__ import annotations

import re
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.syntax import find_calls, strip_calls
from toolformer.text.numbers import format_number
from toolformer.tools.assembly import create_tool
from toolformer.tools.base import COMPUTE_SETTINGS, ToolError, ToolInputError
from toolformer.tools.calculator import (
    Binary,
    Calculator,
    Literal,
    Unary,
    calculate,
    evaluate,
    parse_expression,
    tokenize,
)
from toolformer.tools.executor import ToolExecutor


@pytest.fixture(scope="module")
def calc():
    return Calculator()


@pytest.mark.parametrize(
    "expression, expected",
    [
        ("(3+4)*2/7", "2"),
        ("400/1400", "0.29"),
        ("400 / 1400", "0.29"),
        ("18 + 12 * 3", "54"),  # precedence
        ("(18 + 12) * 3", "90"),
        ("10 - 4 - 3", "3"),  # left associative
        ("64 / 4 / 2", "8"),
        ("-5 + 2", "-3"),
        ("--5", "5"),
        ("+7", "7"),
        ("3 * -2", "-6"),
        ("-(2 + 3) * 2", "-10"),
        ("2.5 * 4", "10"),
        (".5 * 3", "1.5"),
        ("3. + 1", "4"),
        ("0.1 + 0.2", "0.3"),  # exact: no 0.30000000000000004
        ("1,000 + 1", "1001"),
        ("1,248 / 16", "78"),
        ("1,000,000 / 3", "333333.33"),
        ("12.50 * 4", "50"),
        ("3 x 4", "12"),
        ("3x4", "12"),
        ("3 X 4", "12"),
        ("6 × 7", "42"),
        ("12 ÷ 4", "3"),
        ("2 x (3 + 4)", "14"),
        ("(2)×(3)", "6"),
        ("3 x -2", "-6"),
        ("5 − 3", "2"),  # unicode minus
        ("3 + 4 =", "7"),  # a model may end with "="
        ("'5 * 5'", "25"),  # quotes around the argument
        ("10 / 3", "3.33"),
        ("2 / 3", "0.67"),
        ("1 / 8", "0.13"),  # half away from zero, not banker's rounding
        ("-1 / 8", "-0.13"),
        ("0.005", "0.01"),
        ("0.004", "0"),
        ("-0.001", "0"),  # never "-0"
        ("7", "7"),
        ("2.50", "2.5"),
        ("100 * 100 * 100", "1000000"),
        ("1 / 3 * 3", "1"),  # exact rationals
        ("  ( ( 1 ) ) ", "1"),
    ],
)
def test_paper_semantics(calc, expression, expected):
    assert calc(expression) == expected
    assert calc.run(expression) == expected


def test_exact_value_is_a_fraction():
    assert evaluate("1/3 + 1/6") == Fraction(1, 2)
    assert evaluate("0.1 * 3") == Fraction(3, 10)


@pytest.mark.parametrize(
    "value, decimals, expected",
    [
        (Fraction(2), 2, "2"),
        (Fraction(1, 4), 2, "0.25"),
        (Fraction(1, 2), 0, "1"),
        (Fraction(-5, 2), 0, "-3"),
        (Fraction(12345, 1000), 2, "12.35"),
        (Fraction(1, 200), 2, "0.01"),
        (Fraction(-1, 1000), 2, "0"),
        (Fraction(10**20), 2, "100000000000000000000"),
        (Fraction(2, 3), 4, "0.6667"),
    ],
)
def test_format_number(value, decimals, expected):
    assert format_number(value, decimals) == expected


def test_decimals_option():
    assert Calculator(decimals=4)("2/3") == "0.6667"
    assert calculate("2/3", 0) == "1"
    with pytest.raises(ValueError):
        Calculator(decimals=-1)


def test_parses_to_a_whitelisted_ast():
    tree = parse_expression("-(1 + 2) * 3")
    assert tree == Binary(
        "*",
        Unary("-", Binary("+", Literal(Fraction(1)), Literal(Fraction(2)))),
        Literal(Fraction(3)),
    )
    assert tokenize("3 x 4") == [("num", "3"), ("op", "*"), ("num", "4")]


@pytest.mark.parametrize(
    "expression, message",
    [
        ("", "needs an argument"),
        ("   ", "needs an argument"),
        ("2 ** 3", "powers are not supported"),
        ("2 ^ 3", "powers are not supported"),
        ("9**9**9", "powers are not supported"),
        ("1e5", "unsupported character 'e'"),
        ("__import__('os').system('echo hi')", "unsupported character '_'"),
        ("abs(-1)", "unsupported character 'a'"),
        ("sqrt(4)", "unsupported character 's'"),
        ("5 % 2", "unsupported character '%'"),
        ("$5 + $3", "unsupported character '$'"),
        ("x", "only between numbers"),
        ("3x", "only between numbers"),
        ("x3", "only between numbers"),
        ("(1 + 2", "missing ')'"),
        ("1 + 2)", "unbalanced ')'"),
        ("1 +", "incomplete expression"),
        ("* 2", "unexpected '*'"),
        ("2 (3)", "unexpected '('"),
        ("1.2.3", "malformed expression"),
        ("1,00", "unsupported character ','"),
        ("()", "unexpected ')'"),
        ("1 2", "unexpected '2'"),
    ],
)
def test_invalid_input_is_a_tool_input_error(calc, expression, message):
    with pytest.raises(ToolInputError, match=re.escape(message)):
        calc(expression)


@pytest.mark.parametrize("expression", ["1/0", "5 / (3 - 3)", "1 / 0.0", "2 / (1/2 - 0.5)"])
def test_division_by_zero(calc, expression):
    with pytest.raises(ToolError, match="^division by zero$"):
        calc(expression)


@pytest.mark.parametrize(
    "expression, message",
    [
        ("9**9**9", "powers"),
        ("1" * 10_000, "too long"),
        ("1" * 31, "number too long"),
        ("1,000,000,000,000,000,000,000,000,000,000,000", "number too long"),
        ("(" * 200 + "1" + ")" * 200, "nested too deeply"),
        ("-" * 200 + "1", "nested too deeply"),
        ("*".join(["999999999999999999999999999999"] * 15), "too large"),
        ("1" + "/7" * 200, "too large"),
        ("+".join(["1"] * 240), None),  # long but flat: fine
    ],
    ids=[
        "power",
        "10k-digits",
        "31-digits",
        "grouped-digits",
        "parens",
        "signs",
        "product",
        "quotient",
        "flat-sum",
    ],
)
def test_hostile_input_fails_fast(calc, expression, message):
    start = time.perf_counter()
    if message is None:
        assert calc(expression) == "240"
    else:
        with pytest.raises(ToolInputError, match=message):
            calc(expression)
    assert time.perf_counter() - start < 0.05


def test_never_evaluates_python(calc, monkeypatch):
    import builtins

    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec must not be used")

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    assert calc("(3+4)*2/7") == "2"


# Random well-formed expressions: the result must equal an independent exact evaluation.
_ints = st.integers(min_value=0, max_value=10_000)


@st.composite
def expressions(draw, depth=0):
    if depth > 3 or draw(st.booleans()):
        n = draw(_ints)
        if draw(st.booleans()):
            return f"{n}", Fraction(n)
        cents = draw(st.integers(0, 99))
        return f"{n}.{cents:02d}", Fraction(n) + Fraction(cents, 100)
    left, lv = draw(expressions(depth=depth + 1))
    right, rv = draw(expressions(depth=depth + 1))
    op = draw(st.sampled_from("+-*/"))
    if op == "/" and rv == 0:
        op = "+"
    value = {"+": lv + rv, "-": lv - rv, "*": lv * rv, "/": lv / rv if rv else None}[op]
    return f"({left} {op} {right})", value


@settings(max_examples=150, deadline=None)
@given(expressions())
def test_random_expressions_match_exact_arithmetic(pair):
    text, value = pair
    assert evaluate(text) == value
    got = calculate(text)
    assert abs(Fraction(got) - value) <= Fraction(1, 200)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_arbitrary_text_never_crashes(text):
    try:
        out = calculate(text)
    except ToolError:
        return
    assert re.fullmatch(r"-?\d+(\.\d{1,2})?", out)


def test_tool_metadata():
    tool = create_tool("calculator")
    assert isinstance(tool, Calculator)
    assert tool.name == "Calculator"
    assert tool.annotation == COMPUTE_SETTINGS
    assert (tool.annotation.tau_s, tool.annotation.k, tool.annotation.m, tool.annotation.tau_f) == (
        0.0,
        20,
        10,
        0.5,
    )
    assert not tool.uses_context


def test_prompt_follows_the_paper_format():
    prompt = Calculator.prompt
    assert prompt.startswith("Your task is to add calls to a Calculator API to a piece of text.")
    assert '"[Calculator(expression)]"' in prompt
    assert prompt.endswith("Input: {text}\nOutput:")
    assert prompt.count("{text}") == 1
    filled = Calculator().format_prompt("Five plus seven is 12.")
    assert filled.endswith("Input: Five plus seven is 12.\nOutput:")


def test_prompt_examples_are_correct():
    """Every example call computes the number that follows it, and Output = Input + calls."""
    lines = Calculator.prompt.splitlines()
    pairs = [
        (lines[i][len("Input: ") :], lines[i + 1][len("Output: ") :])
        for i in range(len(lines) - 1)
        if lines[i].startswith("Input: ") and lines[i + 1].startswith("Output: ")
    ][:-1]  # the last pair is the {text} slot
    assert len(pairs) >= 5
    calc = Calculator()
    n_calls = 0
    for source, annotated in pairs:
        matches = find_calls(annotated)
        assert matches, annotated
        assert all(m.call.result is None for m in matches)  # annotation prompts show no results
        assert strip_calls(annotated) == source
        for m in matches:
            n_calls += 1
            following = re.match(r"\s*([\d,]+(?:\.\d+)?)(%?)", annotated[m.end :])
            assert following, annotated
            stated = Fraction(following.group(1).replace(",", ""))
            if following.group(2):
                stated /= 100
            assert abs(Fraction(calc(m.call.args)) - stated) <= Fraction(1, 100), m.call
    assert n_calls >= 6


def test_executor_turns_errors_into_results():
    with ToolExecutor([Calculator()]) as ex:
        assert ex.run(("Calculator", "(3+4)*2/7")).output == "2"
        bad = ex.run(("Calculator", "1/0"))
        assert not bad.ok and bad.error == "division by zero"
        hostile = ex.run(("Calculator", "9**9**9"))
        assert not hostile.ok and "powers" in hostile.error and hostile.seconds < 0.5
