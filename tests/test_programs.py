"""Gold programs: GSM8K calculator marks composed into one Calculator expression over the
question's numbers (toolformer.selftrain.programs)."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from toolformer.selftrain.ladder import Op
from toolformer.selftrain.programs import (
    compose,
    count_operations,
    gsm8k_programs,
    parse_mark,
    render,
    value,
)
from toolformer.tools import create_tools

NATALIA = (
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in "
    "May. How many clips did Natalia sell altogether in April and May?"
)
NATALIA_MARKS = "48/2 = <<48/2=24>>24 clips in May. 48+24 = <<48+24=72>>72 altogether.\n#### 72"


def test_marks_compose_into_one_expression_over_the_questions_numbers():
    assert compose(NATALIA, NATALIA_MARKS, 72) == "48 + 48 / 2"
    q = "Mary has a credit of $100. She spent $15 on Tuesday and $23 on Thursday. How much is left?"
    marks = "<<15+23=38>>38 spent, so <<100-38=62>>62 is left."
    assert compose(q, marks, 62) == "100 - (15 + 23)"  # the parentheses the order needs
    q = "Sam reads twelve pages a day for 3 days and then 5 more pages. How many pages?"
    assert compose(q, "<<12*3=36>>36 then <<36+5=41>>41", 41) == "12 * 3 + 5"  # a number word
    calc = create_tools(["Calculator"])["Calculator"]
    assert calc(compose(NATALIA, NATALIA_MARKS, 72)) == "72"


def test_a_program_the_grammar_could_not_write_or_that_is_unsure_is_left_out():
    q = "A shirt costs $40 and is 20% off. What does it cost now?"
    # the percent's 100 is no number of the question
    assert compose(q, "<<40*20/100=8>>8 off, <<40-8=32>>32", 32) is None
    # a stated result that is not the mark's value (GSM8K's rounding), a wrong final answer
    assert compose(NATALIA, "<<48/2=25>>25 <<48+25=73>>", 73) is None
    assert compose(NATALIA, NATALIA_MARKS, 71) is None
    # 16 is both a number of the question and an earlier result: which one is meant is unknown
    q = "He buys 2 large pizzas of 16 slices and 2 small ones of 8 slices. How many slices?"
    assert compose(q, "<<2*16=32>>32 and <<2*8=16>>16, <<32+16=48>>48", 48) is None
    assert compose(NATALIA, "no marks at all", 72) is None
    # more operations than allowed
    q = "Add 1, 2, 3, 4 and 5."
    assert compose(q, "<<1+2+3+4+5=15>>", 15, max_operations=3) is None
    assert compose(q, "<<1+2+3+4+5=15>>", 15, max_operations=4) == "1 + 2 + 3 + 4 + 5"


def test_only_arithmetic_parses():
    for text in ("__import__('os')", "2**3", "abs(-3)", "3 % 2", "1 +", "a+b", "[1]"):
        assert parse_mark(text) is None, text
    assert value(parse_mark("(3+4)*2")) == 14 and value(parse_mark("1,200/4")) == 300
    assert value(parse_mark("7/0")) is None


def test_rows_that_compose_are_kept():
    rows = [
        {"question": NATALIA, "answer": NATALIA_MARKS},
        {"question": "A shirt costs $40, 20% off. Price?", "answer": "<<40*20/100=8>>\n#### 32"},
    ]
    assert gsm8k_programs(rows) == [(" ".join(NATALIA.split()), "48 + 48 / 2", 72.0)]


leaves = st.integers(min_value=1, max_value=999).map(Fraction)
trees = st.recursive(
    leaves,
    lambda kids: st.builds(Op, st.sampled_from("+-*/"), kids, kids),
    max_leaves=5,
)


@given(trees)
def test_render_keeps_the_value(tree):
    """The rendered expression (fewest parentheses) parses back to the same value."""
    text = render(tree)
    assert value(parse_mark(text)) == value(tree)


def test_operations_are_counted_in_infix_and_prefix_forms():
    assert count_operations("5 * 8 + 3") == 2
    assert count_operations("( 76.0 - 25.0 )") == 1  # SVAMP's equations
    assert count_operations("* 56.0 9.0") == 1  # MAWPS's prefix equations
    assert count_operations("(27 + 21) / 6") == 2
    assert count_operations("-5 + 3") == 1 and count_operations("42") == 0
