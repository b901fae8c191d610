"""The shipped Calculator demonstrations teach what the answer filter keeps: each call computes
its answer from numbers the question states (words included), and its result is the Calculator's."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolformer.selftrain import loop
from toolformer.syntax import iter_calls
from toolformer.text.numbers import operands
from toolformer.tools.calculator import Calculator

DEMOS = Path(loop.__file__).resolve().parent / "demos"


def _blocks(name):
    text = (DEMOS / name).read_text(encoding="utf-8")
    return [b for b in re.split(r"\n\s*\n", text) if b.strip()]


@pytest.mark.parametrize("name", ["calculator.txt", "ladder.txt"])
def test_every_calculator_demonstration_is_right_and_grounded(name):
    calc = Calculator()
    blocks = _blocks(name)
    assert len(blocks) >= 4
    for block in blocks:
        question, answer = block.split("\nA:", 1)
        calls = [m.call for m in iter_calls(answer)]
        assert [c.tool for c in calls] == ["Calculator"], block
        call = calls[0]
        assert calc.run(call.args) == call.result, block
        known = set(operands(question, words=True))
        assert set(operands(call.args)) <= known, block
        # the answer the paper's metric reads (the first number after the call) is the result
        after = answer.split("]", 1)[1]
        assert operands(after)[0] == float(call.result), block


def test_the_ladder_demonstrations_show_compound_calls_and_number_words():
    blocks = _blocks("ladder.txt")
    args = [next(iter_calls(b)).call.args for b in blocks]
    ops = [len(re.findall(r"[-+*/]", a)) for a in args]
    assert max(ops) >= 3 and sum(o >= 2 for o in ops) >= 2
    assert any(re.search(r"\b(thirty|nine|twelve|dozen)\b", b) for b in blocks)
