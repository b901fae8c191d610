"""The climbing curriculum: a leveled corpus, each round's level, and the prompts drawn for it."""

from __future__ import annotations

import json

import pytest
from test_selftrain import EVAL_ITEMS, ScriptedGenerator, _config, _write_jsonl

from toolformer.errors import UserError
from toolformer.selftrain import SelfTrainConfig, selftrain
from toolformer.selftrain.loop import format_report, leveled_prompts

# level 1: additions (the scripted policy adds the first two numbers: right); level 2:
# subtractions (it adds them: wrong)
LEVEL_1 = [
    (f"Ana has {a} shells and finds {b} more. How many shells does Ana have?", a, b, a + b)
    for a, b in [(3, 4), (12, 5), (20, 7), (31, 9), (8, 8), (15, 6), (40, 2), (11, 13)]
]
LEVEL_2 = [
    (f"Ben had {a} cards and lost {b} of them. How many cards are left?", a, b, a - b)
    for a, b in [(30, 4), (25, 5), (50, 7), (44, 9), (18, 8), (35, 6), (60, 2), (19, 13)]
]


def _leveled_corpus(path):
    rows = [
        {"question": q, "answer": f"<<{a}+{b}={c}>>\n#### {c}", "level": 1}
        for q, a, b, c in LEVEL_1
    ] + [
        {"question": q, "answer": f"<<{a}-{b}={c}>>\n#### {c}", "level": 2}
        for q, a, b, c in LEVEL_2
    ]
    return _write_jsonl(path / "leveled.jsonl", rows)


def _docs(levels):
    return [{"id": f"d{i}", "level": lvl} for i, lvl in enumerate(levels)]


def test_leveled_prompts_review_the_levels_below_and_rotate():
    docs = _docs([1] * 10 + [2] * 20 + [3] * 10)
    got = leveled_prompts(docs, 2, 8, 1, 0.25)
    assert [d["level"] for d in got] == [2] * 6 + [1] * 2
    again = leveled_prompts(docs, 2, 8, 2, 0.25)  # the next round at the same level: new problems
    assert not {d["id"] for d in got if d["level"] == 2} & {
        d["id"] for d in again if d["level"] == 2
    }
    # the lowest level has nothing below it: every prompt is its own
    assert [d["level"] for d in leveled_prompts(docs, 1, 8, 1, 0.25)] == [1] * 8


@pytest.mark.parametrize(
    "climb_at, second, on_climb", [(0.5, 2, True), (None, 1, True), (0.5, 2, False)]
)
def test_a_round_right_on_most_of_its_level_climbs_to_the_next(
    tmp_path, tiny_dir, climb_at, second, on_climb
):
    evals = _write_jsonl(tmp_path / "evalset.jsonl", EVAL_ITEMS)
    out = tmp_path / "run"
    cfg = _config(
        tiny_dir,
        _leveled_corpus(tmp_path),
        evals,
        out,
        max_rounds=2,
        round0_docs=0,
        dev={"size": 2, "max_problem_steps": None},
        grow={"corpus_size": 4, "climb_at": climb_at, "demonstrations_on_climb": on_climb},
        data={"max_problem_steps": None},
    )
    ScriptedGenerator.all_prompts = []
    result = selftrain(cfg, generator_factory=ScriptedGenerator)
    levels = [r.get("level") for r in result.rounds[1:]]
    assert levels == [1, second]
    state = json.loads((out / "round_1" / "state.json").read_text())
    right, judged = state["stages"]["improve_0"]["right_by_level"]["1"]
    assert judged == 4 * 2 and right == judged  # additions: the scripted policy is right
    # round 2's prompts: 3 of its own level, 1 reviewed from below when it climbed
    round2 = ScriptedGenerator.all_prompts[-4 * 2 :]
    lost = sum("lost" in p for p in round2) // 2
    assert lost == (3 if second == 2 else 0)
    # the demonstrations: round 1 (demonstrations_rounds 1), and again at a new level only
    shown = [
        json.loads((out / f"round_{k}" / "state.json").read_text())["stages"]["grow"][
            "demonstrations"
        ]
        for k in (1, 2)
    ]
    assert shown == [True, second == 2 and on_climb]
    assert all((p.count("Q:") > 1) == shown[1] for p in round2)
    report = format_report(result.to_dict())
    assert "level: Grow right" in report and "| 1: 8/8 |" in report
    # the dev split's score per level, from the eval's samples: additions right, subtractions not
    dev = [
        json.loads(x) for x in (out / "round_0" / "corpus" / "dev.jsonl").read_text().splitlines()
    ]
    by_level = result.rounds[0]["dev_by_level"]
    assert sum(n for _, n in by_level.values()) == len(dev) == 2
    assert {int(k) for k in by_level} == {r["level"] for r in dev}
    assert "dev right by level" in report


def test_climb_settings_are_checked():
    with pytest.raises(UserError, match="climb_at"):
        SelfTrainConfig.from_dict({"grow": {"climb_at": 1.5}}).validate()
    with pytest.raises(UserError, match="review_fraction"):
        SelfTrainConfig.from_dict({"grow": {"review_fraction": 1.0}}).validate()
    with pytest.raises(UserError, match="start_level"):
        SelfTrainConfig.from_dict({"grow": {"start_level": 0}}).validate()


def test_range_errors_name_the_flag_on_the_command_line():
    """The library names the field (SelfTrainConfig.grow.climb_at), the CLI the flag."""
    from toolformer.cli.flags import in_flags

    cases = [
        ({"grow": {"climb_at": 1.5}}, "--climb-at must be in (0, 1] or None, got 1.5"),
        ({"grow": {"review_fraction": 1.0}}, "--review-fraction must be in [0, 1), got 1.0"),
        ({"grow": {"start_level": 0}}, "--start-level must be >= 1, got 0"),
        ({"plain_ratio": 30.0}, "--plain-ratio must be in [0, 20], got 30.0"),
        ({"grow": {"samples_per_prompt": 0}}, "--samples must be >= 1, got 0"),
        (
            {
                "data": {"corpus": "ladder", "max_problem_steps": 3},
                "dev": {"max_problem_steps": 3},
                "grow": {"start_level": 5},
            },
            "--start-level 5: the ladder corpus has levels 1-4",
        ),
    ]
    for given, said in cases:
        with pytest.raises(UserError) as info:
            SelfTrainConfig.from_dict(given).validate()
        assert "--" not in str(info.value)  # the library does not know the CLI's words
        assert in_flags(str(info.value), info.value.fields, "selftrain") == said
