"""The generated corpus of easy word problems (``--corpus arithmetic``): right gold answers,
operands the question states, deterministic, read like GSM8K, checked against the eval sets."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from toolformer.errors import UserError
from toolformer.selftrain import SelfTrainConfig
from toolformer.selftrain.config import CorpusConfig
from toolformer.selftrain.corpus import load_corpus
from toolformer.selftrain.word_problems import generate_problems, is_spec, parse_spec

MARK = re.compile(r"<<([^=<>]+)=([^<>]+)>>")


def _numbers(text: str):
    return {float(x) for x in re.findall(r"\d+(?:\.\d+)?", text)}


def test_every_gold_answer_is_the_value_of_its_marks_and_the_operands_are_in_the_question():
    rows = generate_problems(600, seed=3)
    assert len({r["question"] for r in rows}) == 600
    kinds = set()
    for r in rows:
        marks = MARK.findall(r["answer"])
        assert 1 <= len(marks) <= 2, r
        known = _numbers(r["question"])
        for expr, value in marks:
            assert eval(expr) == pytest.approx(float(value)), r  # noqa: S307 (digits and + - * / only)
            assert _numbers(expr) <= known, r  # each operand is stated or an earlier result
            known.add(float(value))
            kinds.add(re.sub(r"[\d.]", "", expr))
        final = float(r["answer"].rsplit("####", 1)[1])
        assert final == pytest.approx(float(marks[-1][1])) and final >= 0 and final.is_integer()
    assert kinds == {"+", "-", "*", "/"}


def test_the_corpus_is_deterministic_for_a_seed_and_mostly_one_step():
    a, b, c = (
        generate_problems(300, seed=1),
        generate_problems(300, seed=1),
        generate_problems(300, seed=2),
    )
    assert a == b and a != c
    two = sum(r["answer"].count("<<") == 2 for r in a)
    assert 0.15 * 300 < two < 0.35 * 300  # two_step_fraction 0.25
    assert all(
        r["answer"].count("<<") == 1 for r in generate_problems(50, seed=1, two_step_fraction=0)
    )


def test_load_corpus_reads_the_spec_like_a_gsm8k_file():
    docs = load_corpus("arithmetic:40", "Q: {question}\nA: {answer}", "Q: {question}\nA:", seed=5)
    assert len(docs) == 40 and docs[0].id == "arithmetic-1" and docs[0].source == "arithmetic"
    assert all(d.answer is not None and d.steps in (1, 2) for d in docs)
    assert docs[0].prompt == f"Q: {docs[0].question}\nA:"
    assert docs[0].text.endswith(f"A: {int(docs[0].answer)}")
    assert [d.question for d in docs] == [
        d.question for d in load_corpus("arithmetic:40", "{question}", "{question}", seed=5)
    ]


@pytest.mark.parametrize("spec", ["arithmetic:0", "arithmetic:ten", "arithmetic:-3", "arithmetic:"])
def test_a_bad_size_is_one_line_before_anything_runs(spec, tmp_path):
    with pytest.raises(UserError) as err:
        SelfTrainConfig(output=str(tmp_path / "run"), data=CorpusConfig(corpus=spec)).validate()
    assert "\n" not in str(err.value) and "arithmetic" in str(err.value)
    assert not (tmp_path / "run").exists()


def test_specs_and_paths_are_told_apart():
    assert is_spec("arithmetic") and is_spec("arithmetic:10") and parse_spec("arithmetic") == 3000
    assert not is_spec("gsm8k/train.jsonl") and not is_spec("arithmetics.jsonl")
    with pytest.raises(UserError, match="unknown generated corpus"):
        parse_spec("algebra:10")
    with pytest.raises(UserError):
        generate_problems(0)


def test_generated_problems_rarely_resemble_an_evaluation_question(shared_data: Path):
    """The contamination guard on the real eval sets: the selftrain run drops what it flags
    (measured: SVAMP 5, MAWPS 41, GSM8K 0 of 3,000 at Jaccard >= 0.5)."""
    from toolformer.selftrain.contamination import ContaminationGuard, eval_questions

    docs = load_corpus("arithmetic", "{question}", "{question}")
    guard = ContaminationGuard(eval_questions(["svamp", "mawps", "gsm8k"], str(shared_data)), 0.5)
    keep, report = guard.check([d.question for d in docs])
    share = report.to_dict()["near_duplicate_share"]
    assert report.checked == 3000 and sum(keep) < 3000  # the guard does flag some
    assert share["svamp"] < 0.01 and share["mawps"] < 0.03 and share["gsm8k"] < 0.01


def test_a_missing_corpus_file_is_one_line_and_leaves_no_run_folder(tmp_path):
    from toolformer.selftrain import selftrain

    out = tmp_path / "run"
    with pytest.raises(UserError) as err:
        selftrain(
            SelfTrainConfig(
                output=str(out),
                data=CorpusConfig(corpus=str(tmp_path / "missing.jsonl")),
                progress=False,
            )
        )
    assert (
        "not found" in str(err.value)
        and "arithmetic" in str(err.value)
        and "\n" not in str(err.value)
    )
    assert not out.exists()
