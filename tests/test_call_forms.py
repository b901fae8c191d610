"""Compound and chained Calculator calls: Grow's answer cut keeps a chain whole, and the answer
filter judges each form under the metric it is given (the paper's ``math`` reads the first
number, so a chain's intermediate result)."""

from __future__ import annotations

from typing import Any, Dict, List, Sequence, Tuple, Union

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from toolformer.eval.metrics import METRICS, MetricSpec, Scored, numbers_match, register_metric
from toolformer.selftrain.candidates import Candidate
from toolformer.selftrain.filters import AnswerFilter, build_filter
from toolformer.selftrain.loop import cut_after_answer
from toolformer.text.numbers import answer_numbers

Part = Union[str, Tuple[str, str]]


def output(parts: Sequence[Part]) -> Tuple[str, List[Dict[str, Any]]]:
    """A model-style output and its call records from text pieces and ``(args, result)`` calls
    (spans as the generator records them)."""
    text, calls = "", []
    for p in parts:
        if isinstance(p, str):
            text += p
            continue
        args, result = p
        start = len(text)
        text += f"[Calculator({args}) -> {result}]"
        calls.append(
            {
                "tool": "Calculator",
                "args": args,
                "result": result,
                "error": None,
                "start": start,
                "end": len(text),
            }
        )
    return text, calls


# --------------------------------------------------------------------------- the answer cut


def test_one_call_is_cut_after_its_answer():
    text, calls = output([" ", ("40 / 28", "1.43"), " 1.43 hours, so 3 more"])
    assert cut_after_answer(text, calls) == (" [Calculator(40 / 28) -> 1.43] 1.43", calls)


def test_a_compound_call_is_cut_after_its_answer():
    text, calls = output([" ", ("6 * 7 + 5", "47"), " 47 cards. Then he buys 3 more."])
    assert cut_after_answer(text, calls) == (" [Calculator(6 * 7 + 5) -> 47] 47", calls)


def test_a_two_call_chain_is_kept_to_its_final_answer():
    text, calls = output(
        [" ", ("28 / 7", "4"), " 4 bags, so ", ("4 * 3", "12"), " 12 dollars. Next 5"]
    )
    cut, kept = cut_after_answer(text, calls)
    assert cut == " [Calculator(28 / 7) -> 4] 4 bags, so [Calculator(4 * 3) -> 12] 12"
    assert kept == calls


def test_a_three_call_chain_is_kept_to_its_final_answer():
    text, calls = output(
        [
            " ",
            ("3 * 12", "36"),
            " 36 eggs, ",
            ("36 - 10", "26"),
            " 26 left, ",
            ("26 / 2", "13"),
            " 13 per box. Then 9",
        ]
    )
    cut, kept = cut_after_answer(text, calls)
    assert cut.endswith("[Calculator(26 / 2) -> 13] 13") and kept == calls
    # the chain's numbers written with a thousands separator and a full stop still chain
    text, calls = output(
        [" ", ("2 * 600", "1200"), " 1,200. Then ", ("1200 - 5", "1195"), " 1,195."]
    )
    assert cut_after_answer(text, calls)[0].endswith("-> 1195] 1,195")


def test_an_unrelated_later_call_is_cut_away():
    text, calls = output([" ", ("2 * 5", "10"), " 10 pens. ", ("3 + 8", "11"), " 11 cups"])
    assert cut_after_answer(text, calls) == (" [Calculator(2 * 5) -> 10] 10", calls[:1])
    # a chain, then a call that does not use its last number: the chain stays, the call goes
    text, calls = output(
        [" ", ("28 / 7", "4"), " 4 bags, so ", ("4 * 3", "12"), " 12. ", ("7 + 1", "8"), " 8"]
    )
    cut, kept = cut_after_answer(text, calls)
    assert cut.endswith("-> 12] 12") and kept == calls[:2]
    # a chained call with no number after it ends the chain at the previous answer
    text, calls = output([" ", ("28 / 7", "4"), " 4 bags, so ", ("4 * 3", "12"), " dollars"])
    assert cut_after_answer(text, calls) == (" [Calculator(28 / 7) -> 4] 4", calls[:1])


_FILLER = st.text(alphabet="abcdefgh ", max_size=12)


@given(
    first=st.tuples(st.integers(1, 999), st.integers(1, 999)),
    steps=st.lists(st.tuples(st.sampled_from("+*"), st.integers(1, 99)), max_size=3),
    fillers=st.lists(_FILLER, min_size=8, max_size=8),
    unrelated=st.one_of(st.none(), st.tuples(st.integers(1, 999), st.integers(1, 999))),
)
def test_any_chain_is_cut_after_its_last_answer(first, steps, fillers, unrelated):
    a, b = first
    value = a + b
    parts: List[Part] = [" ", (f"{a} + {b}", str(value)), " " + fillers[0], f" {value}"]
    for k, (op, n) in enumerate(steps):
        new = value + n if op == "+" else value * n
        parts += [" " + fillers[k + 1] + " ", (f"{value} {op} {n}", str(new))]
        parts += [" " + fillers[k + 4], f" {new}"]
        value = new
    n_chain = 1 + len(steps)
    if unrelated is not None:
        assume(value not in unrelated)
        x, y = unrelated
        parts += [" so ", (f"{x} + {y}", str(x + y)), f" {x + y}"]
    parts.append(" " + fillers[7] + " 5 more")
    text, calls = output(parts)
    cut, kept = cut_after_answer(text, calls)
    assert cut.endswith(f" {value}") and kept == calls[:n_chain]
    assert text.startswith(cut)


# --------------------------------------------------------------------------- the answer filter


@pytest.fixture
def last_number_metric():
    """A metric that reads the output's last number (a chain's final result): registered for
    one test only."""

    def last(text: str, gold: Any, choices: Any) -> Scored:
        nums = answer_numbers(text)
        num = nums[-1] if nums else None
        return Scored(None if num is None else num.value, numbers_match(num, float(gold)))

    register_metric(MetricSpec("last_number_test", "the last number equals the gold", last))
    try:
        yield "last_number_test"
    finally:
        METRICS.unregister("last_number_test")


QUESTION = "Q: 28 apples are packed in bags of 7. Each bag sells for 3 dollars. How much money?\nA:"


def candidate(parts: Sequence[Part], gold: float = 12.0, prompt: str = QUESTION) -> Candidate:
    text, calls = output(parts)
    return Candidate("d", 0, prompt, text, calls, gold)


def test_a_right_chain_is_kept_only_under_a_metric_that_reads_its_final_number(
    last_number_metric,
):
    # as Grow leaves it: the cut keeps the whole chain
    text, calls = cut_after_answer(
        *output([" ", ("28 / 7", "4"), " 4 bags, so ", ("4 * 3", "12"), " 12 dollars."])
    )
    chained = Candidate("d", 0, QUESTION, text, calls, 12.0)
    assert len(chained.calls) == 2 and AnswerFilter.is_grounded(chained)
    assert build_filter("answer").scores([chained]) == [0.0]  # math reads the 4
    last = build_filter("answer", options={"metric": last_number_metric})
    assert last.scores([chained]) == [1.0]
    # a wrong chain stays out under either metric
    wrong = candidate([" ", ("28 / 7", "4"), " 4 bags, so ", ("4 + 3", "7"), " 7"])
    assert last.scores([wrong]) == [0.0]


def test_a_right_compound_call_is_kept_under_math():
    compound = candidate([" ", ("28 / 7 * 3", "12"), " 12"])
    assert build_filter("answer").scores([compound]) == [1.0]


def test_an_operand_from_neither_the_question_nor_an_earlier_result_is_rejected(
    last_number_metric,
):
    last = build_filter("answer", options={"metric": last_number_metric})
    # 2 and 6 are nowhere before the second call: the right final answer does not save it
    made_up = candidate([" ", ("28 / 7", "4"), " 4 bags, so ", ("2 * 6", "12"), " 12"])
    assert not AnswerFilter.is_grounded(made_up)
    assert last.scores([made_up]) == [0.0]
    # the same made-up operand in one compound call
    compound = candidate([" ", ("24 / 2", "12"), " 12"])
    assert build_filter("answer").scores([compound]) == [0.0]
    # the earlier result grounds the next call even when the output never writes it out
    silent = candidate([" ", ("28 / 7", "4"), " bags, so ", ("4 * 3", "12"), " 12"])
    assert AnswerFilter.is_grounded(silent) and last.scores([silent]) == [1.0]
