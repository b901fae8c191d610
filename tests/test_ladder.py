"""The leveled corpus of generated word problems (``--corpus ladder``): equal levels, right gold
answers and expressions, operands the question states (in digits or words), level 2's harder
readings in measurable shares, and ``--corpus arithmetic`` left as it was."""

from __future__ import annotations

import ast
import hashlib
import json
import re
from collections import Counter
from fractions import Fraction

import pytest

from toolformer.errors import UserError
from toolformer.selftrain import word_problems as wp
from toolformer.selftrain.corpus import load_corpus
from toolformer.selftrain.ladder import generate_ladder, is_spec, number_words, parse_spec
from toolformer.selftrain.loop import _generated
from toolformer.text.numbers import exact_value, operands

MARK = re.compile(r"<<([^=<>]+)=([^<>]+)>>")
# the arithmetic corpus that runs started before the ladder resume on: it must not change
ARITHMETIC_200_SEED0_SHA256 = "89106deda5273b88bcd50ecf5159ce37562b76eb27aeb33c66f626927c4c00fb"


def _calc(text: str) -> Fraction:
    """The exact value of an expression of numbers, + - * / and parentheses (nothing else is
    evaluated: any other syntax fails the test)."""

    def ev(node: ast.AST) -> Fraction:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return exact_value(str(node.value))
        assert isinstance(node, ast.BinOp), ast.dump(node)
        a, b = ev(node.left), ev(node.right)
        ops = {ast.Add: a + b, ast.Sub: a - b, ast.Mult: a * b}
        if isinstance(node.op, ast.Div):
            return a / b
        return ops[type(node.op)]

    return ev(ast.parse(text, mode="eval").body)


def _gold(row) -> Fraction:
    return exact_value(row["answer"].rsplit("####", 1)[1].strip())


@pytest.fixture(scope="module")
def rows():
    return generate_ladder(4000, seed=0)


def _level(rows, level):
    return [r for r in rows if r["level"] == level]


def test_the_arithmetic_corpus_is_unchanged():
    rows = wp.generate_problems(200, seed=0)
    digest = hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    assert digest == ARITHMETIC_200_SEED0_SHA256


def test_deterministic_for_a_seed_and_split_equally_over_the_levels():
    a, b, c = generate_ladder(402, seed=1), generate_ladder(402, seed=1), generate_ladder(402, 2)
    assert a == b and a != c
    assert Counter(r["level"] for r in a) == {1: 101, 2: 101, 3: 100, 4: 100}
    assert [r["level"] for r in a] == sorted(r["level"] for r in a)  # level 1 first
    assert len({r["question"] for r in a}) == 402
    assert set(a[0]) == {"question", "answer", "level", "expression"}
    # a level draws on its own: its first problems do not depend on the corpus size
    assert _level(generate_ladder(40, seed=1), 3)[:10] == _level(a, 3)[:10]


def test_marks_and_expression_are_the_answer_and_the_operands_are_in_the_question(rows):
    assert Counter(r["level"] for r in rows) == {1: 1000, 2: 1000, 3: 1000, 4: 1000}
    for r in rows:
        gold, expr, question = _gold(r), r["expression"], r["question"]
        assert gold.denominator == 1 and 0 < gold <= 5000, r
        marks = MARK.findall(r["answer"])
        assert len(marks) == max(1, r["level"] - 1), r  # levels 1, 2: one step; 3: two; 4: three
        known = set(operands(question, words=True))
        for mark, result in marks:
            value = _calc(mark)
            assert value == exact_value(result) and value > 0 and value.denominator == 1, r
            assert set(operands(mark)) <= known, r  # stated, or an earlier result
            known.add(float(value))
        assert exact_value(marks[-1][1]) == gold
        assert _calc(expr) == gold, r
        # one expression, spaces around operators, parentheses only where they are needed
        assert ast.unparse(ast.parse(expr, mode="eval")) == expr, r
        assert expr.count(" ") == 2 * len(marks), r
        # the Calculator's grounding check: every number of the call is in the question
        assert set(operands(expr)) <= set(operands(question, words=True)), r


def test_expression_structures_per_level(rows):
    def shape(expr):
        return re.sub(r"\d+", "n", expr)

    shapes = {lv: Counter(shape(r["expression"]) for r in _level(rows, lv)) for lv in (3, 4)}
    assert {
        "n * n + n",
        "n * n - n",
        "n - n * n",
        "(n + n) / n",
        "(n - n) * n",
        "n + n - n",
        "n / n + n",
        "n - n / n",
        "n * n / n",
    } <= set(shapes[3])
    assert {
        "n * n + n * n",
        "n * n - n * n",
        "(n + n) * n - n",
        "(n * n - n) / n",
        "n - (n * n + n)",
        "(n + n + n) / n",
        "(n - n) * n + n",
    } <= set(shapes[4])
    for counts in shapes.values():  # no structure crowds out the others
        assert max(counts.values()) < 0.3 * sum(counts.values())


def _vocab_shape(question: str) -> str:
    words = sorted(
        set(wp.NAMES)
        | {w for pair in wp.ITEMS + wp.GROUPS for w in pair}
        | set(wp.PLACES)
        | set(wp.DAYS)
        | {w for u in wp.UNITS for w in u},
        key=len,
        reverse=True,
    )
    pattern = re.compile(r"\b(?:" + "|".join(map(re.escape, words)) + r")\b")
    return re.sub(r"\d+", "#", pattern.sub("W", question))


def test_level_1_is_the_arithmetic_corpus_one_step_problems(rows):
    one_step = {
        _vocab_shape(r["question"]) for r in wp.generate_problems(3000, 5, two_step_fraction=0)
    }
    level1 = [_vocab_shape(r["question"]) for r in _level(rows, 1)]
    assert set(level1) <= one_step
    assert len(set(level1)) >= 20  # all four operations' templates are drawn
    level2 = [_vocab_shape(r["question"]) for r in _level(rows, 2)]
    assert sum(s in one_step for s in level2) < 0.02 * len(level2)  # level 2 is new text


def _op(row) -> str:
    ((mark, _),) = MARK.findall(row["answer"])
    return re.sub(r"[\d.]", "", mark)


def _words_operand(row) -> bool:
    """An operand of the computation is written only in words in the question."""
    digits, both = set(operands(row["question"])), set(operands(row["question"], words=True))
    return any(x not in digits and x in both for x in operands(row["expression"]))


def _distractor(row) -> bool:
    """The question states a number (3 or more; "one", "half" are no quantity to use) that the
    computation does not use."""
    used = set(operands(row["expression"]))
    return any(x >= 3 and x not in used for x in operands(row["question"], words=True))


def test_level_2_is_harder_to_read_in_measurable_shares(rows):
    lv1, lv2 = _level(rows, 1), _level(rows, 2)
    n = len(lv2)

    def share(pattern, subset=lv2):
        return sum(re.search(pattern, r["question"]) is not None for r in subset) / len(subset)

    assert sum(map(_words_operand, lv1)) == 0
    assert 0.25 <= sum(map(_words_operand, lv2)) / n <= 0.6
    assert share(r"\ba dozen\b") >= 0.01 and share(r"\btwice as many\b") >= 0.01
    assert share(r"\bhalf\b") >= 0.01
    assert sum(map(_distractor, lv1)) / len(lv1) < 0.02
    assert 0.2 <= sum(map(_distractor, lv2)) / n <= 0.5
    assert share(r"dollars per hour|\$\d+ per hour") >= 0.01
    assert share(r"kilometers per hour") >= 0.02 and share(r"per kilogram") >= 0.02
    for pattern in (r"\bmore \w+ than\b|\bmore than\b", r"\bfewer \w+ than\b|\bfewer than\b"):
        assert share(pattern) >= 0.03, pattern
    assert share(r"\bin total\?") >= 0.03 and share(r"\beach\b") >= 0.2
    # phrasings that decide the operation, whatever order the numbers come in
    deciding = {
        r"left\?$": "-",
        r"times as many|twice as many": "*",
        r"How many \w+ can .* fill\?": "/",
        r"How many days will .* last\?": "/",
        r"at first\?$": "+",
        r"How many more .* need": "-",
        r"shared equally|equally among|equally into": "/",
        # a rate times an amount; the rate or the time asked
        r"in [\w-]+ hours\?|kilograms of [\w ]+ cost\?": "*",
        r"earn per hour\?|per hour did|price per kilogram|hours does": "/",
    }
    for pattern, op in deciding.items():
        hits = [r for r in lv2 if re.search(pattern, r["question"])]
        assert len(hits) >= 0.015 * n, pattern
        assert {_op(r) for r in hits} == {op}, pattern
    assert Counter(map(_op, lv2)).keys() == {"+", "-", "*", "/"}
    assert max(Counter(map(_op, lv2)).values()) < 0.4 * n


def test_number_words_are_read_back_as_their_numbers():
    assert number_words(24) == "twenty-four" and number_words(100) == "one hundred"
    for n in range(1, 101):
        assert float(n) in operands(f"Ava has {number_words(n)} pens.", words=True), n
    with pytest.raises(ValueError):
        number_words(101)


def test_load_corpus_reads_the_ladder_with_levels_and_steps():
    docs = load_corpus("ladder:40", "Q: {question}\nA: {answer}", "Q: {question}\nA:", seed=3)
    assert len(docs) == 40 and docs[0].id == "ladder-1" and docs[0].source == "ladder"
    assert Counter(d.level for d in docs) == {1: 10, 2: 10, 3: 10, 4: 10}
    rows = generate_ladder(40, seed=3)
    for d, r in zip(docs, rows):
        assert d.question == r["question"] and d.expression == r["expression"]
        assert d.steps == len(MARK.findall(r["answer"])) == max(1, d.level - 1)
        assert d.answer == float(_calc(d.expression))
        assert d.text.endswith(f"A: {int(d.answer)}")
    other = load_corpus("arithmetic:5", "{question}", "{question}")
    assert all(d.level is None and d.expression is None for d in other)


def test_specs():
    assert is_spec("ladder") and is_spec("ladder:10") and parse_spec("ladder") == 4000
    assert parse_spec("ladder:12") == 12 and not is_spec("ladders.jsonl")
    assert _generated("ladder:10") and _generated("arithmetic") and not _generated("a.jsonl")
    for bad in ("ladder:0", "ladder:x"):
        with pytest.raises(UserError):
            parse_spec(bad)
    with pytest.raises(UserError):
        generate_ladder(0)


def test_one_of_a_thing_is_singular():
    rows = generate_ladder(4000, seed=0)
    plural_one = [
        r["question"] for r in rows if re.search(r"(?<![-\w])(1|one) (?!of)\w+s\b", r["question"])
    ]
    assert plural_one == []


def test_a_bad_ladder_size_is_one_line_before_the_run_starts():
    from toolformer.selftrain import SelfTrainConfig

    with pytest.raises(UserError, match="ladder:0"):
        SelfTrainConfig.from_dict({"data": {"corpus": "ladder:0"}}).validate()


def test_the_ladder_with_one_step_defaults_or_a_missing_level_is_one_line():
    from toolformer.selftrain import SelfTrainConfig

    ok = {"max_problem_steps": 3}
    with pytest.raises(UserError, match="max_problem_steps and .* to 3") as exc:
        SelfTrainConfig.from_dict({"data": {"corpus": "ladder"}}).validate()
    assert "\n" not in str(exc.value)
    with pytest.raises(UserError, match="dev.max_problem_steps"):
        SelfTrainConfig.from_dict({"data": {"corpus": "ladder", **ok}}).validate()
    both = {"data": {"corpus": "ladder", **ok}, "dev": {"max_problem_steps": None}}
    SelfTrainConfig.from_dict(both).validate()
    with pytest.raises(UserError, match="levels 1-4"):
        SelfTrainConfig.from_dict({**both, "grow": {"start_level": 5}}).validate()


def test_a_misspelt_demonstrations_name_is_one_line():
    from toolformer.selftrain import SelfTrainConfig

    with pytest.raises(UserError, match="no shipped set .*ladder"):
        SelfTrainConfig.from_dict({"grow": {"demonstrations": "ladderz"}}).validate()
    for fine in ("ladder", "calculator", "Q: 2 and 3?\nA: [Calculator(2 + 3) -> 5] 5", None):
        SelfTrainConfig.from_dict({"grow": {"demonstrations": fine}}).validate()
