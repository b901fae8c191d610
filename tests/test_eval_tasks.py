"""Task registry and loaders: tiny files written in the test for every format, the generic
``jsonl:`` task, registry errors, and the built-in tasks on the real data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer.errors import UserError
from toolformer.eval.loaders import LOADERS, cloze_prefix
from toolformer.eval.tasks import (
    TASKS,
    TaskSpec,
    get_task,
    load_examples,
    register_task,
    resolve_tasks,
)
from toolformer.registry import Registry


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_json(path: Path, data) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- math formats


def test_svamp(tmp_path):
    write_json(
        tmp_path / "svamp/SVAMP.json",
        [
            {
                "ID": "chal-1",
                "Body": "Each pack costs 76 dollars.",
                "Question": "How much for 2?",
                "Equation": "( 76.0 * 2.0 )",
                "Answer": 152.0,
                "Type": "Multiplication",
            }
        ],
    )
    task, ex = load_examples(get_task("svamp"), tmp_path)
    assert task.metric == "math" and ex[0].gold == 152.0 and ex[0].id == "chal-1"
    assert task.prompt(ex[0]) == "Q: Each pack costs 76 dollars. How much for 2?\nA:"


def test_mawps_subset(tmp_path):
    write_json(
        tmp_path / "mawps/mawps_subsets_zero_shot_cot/AddSub.json",
        [{"iIndex": 7, "sQuestion": " Joan found 70  shells . How many ? ", "lSolutions": ["43"]}],
    )
    _, ex = load_examples(get_task("mawps_addsub"), tmp_path)
    assert ex[0].gold == 43.0 and ex[0].fields["question"] == "Joan found 70 shells . How many ?"


def test_mawps_jsonl_writes_integers_back(tmp_path):
    write_jsonl(
        tmp_path / "mawps/mawps_demasked_from_svamp_cv.jsonl",
        [
            {
                "id": "m0",
                "question": "He has 56.0 books on 9.0 shelves and 2.5 kg .",
                "answer": 504.0,
            }
        ],
    )
    _, ex = load_examples(get_task("mawps"), tmp_path)
    assert ex[0].fields["question"] == "He has 56 books on 9 shelves and 2.5 kg ."
    assert ex[0].gold == 504.0


def test_gsm8k_final_answer(tmp_path):
    write_jsonl(
        tmp_path / "gsm8k/test.jsonl",
        [
            {"question": "q1", "answer": "2 * 500 = <<2*500=1000>>1000\n#### 1,000"},
            {"question": "q2", "answer": "#### -4"},
        ],
    )
    _, ex = load_examples(get_task("gsm8k"), tmp_path)
    assert [e.gold for e in ex] == [1000.0, -4.0]


def test_gsm8k_without_final_answer(tmp_path):
    write_jsonl(tmp_path / "gsm8k/test.jsonl", [{"question": "q", "answer": "no marker"}])
    with pytest.raises(UserError, match="####"):
        load_examples(get_task("gsm8k"), tmp_path)


# --------------------------------------------------------------------------- LAMA


def test_cloze_prefix():
    assert cloze_prefix("[X] was born in [Y] .", "[Y]", "Ann") == "Ann was born in"
    assert cloze_prefix("[X] (born [Y]).", "[Y]", "Ann") == "Ann (born"
    assert cloze_prefix("[X] plays in [Y] position .", "[Y]", "Ann") is None


def test_lama_trex_templates_filter_and_interleave(tmp_path):
    lama = tmp_path / "lama"
    write_jsonl(
        lama / "relations.jsonl",
        [
            {"relation": "P19", "template": "[X] was born in [Y] ."},
            {"relation": "P20", "template": "[X] died in [Y] ."},
            {"relation": "P413", "template": "[X] plays in [Y] position ."},
        ],
    )
    write_jsonl(
        lama / "TREx/P19.jsonl",
        [{"uuid": f"b{i}", "sub_label": f"Person{i}", "obj_label": f"Town{i}"} for i in range(3)],
    )
    write_jsonl(lama / "TREx/P20.jsonl", [{"uuid": "d0", "sub_label": "Bo", "obj_label": "Rome"}])
    write_jsonl(
        lama / "TREx/P413.jsonl", [{"uuid": "p0", "sub_label": "Al", "obj_label": "goalkeeper"}]
    )
    task, ex = load_examples(get_task("lama_trex"), tmp_path)
    assert task.metric == "lama" and task.disabled_tools == ("WikiSearch",)
    assert [e.fields["text"] for e in ex] == [
        "Person0 was born in",
        "Bo died in",
        "Person1 was born in",
        "Person2 was born in",
    ]
    assert ex[1].gold == "Rome" and ex[1].meta["relation"] == "P20"
    _, first2 = load_examples(get_task("lama_trex"), tmp_path, limit=2)
    assert {e.meta["relation"] for e in first2} == {"P19", "P20"}  # --limit spans relations


def test_lama_google_re(tmp_path):
    folder = tmp_path / "lama/Google_RE"
    for rel, (sub, obj) in {
        "place_of_birth": ("Ann", "Oslo"),
        "date_of_birth": ("Bo", "1941"),
        "place_of_death": ("Cy", "Rome"),
    }.items():
        write_jsonl(
            folder / f"{rel}_test.jsonl",
            [{"sub_label": sub, "obj_label": obj, "obj_aliases": [], "uuid": rel}],
        )
    _, ex = load_examples(get_task("lama_google_re"), tmp_path)
    assert [(e.fields["text"], e.gold) for e in ex] == [
        ("Ann was born in", "Oslo"),
        ("Bo (born", "1941"),
        ("Cy died in", "Rome"),
    ]


def test_lama_squad_keeps_mask_final(tmp_path):
    write_jsonl(
        tmp_path / "lama/Squad/test.jsonl",
        [
            {
                "id": "a",
                "masked_sentences": ["The Panthers coach was [MASK]."],
                "obj_label": "Rivera",
            },
            {"id": "b", "masked_sentences": ["The [MASK] color was used."], "obj_label": "gold"},
        ],
    )
    _, ex = load_examples(get_task("lama_squad"), tmp_path)
    assert [(e.id, e.fields["text"]) for e in ex] == [("a", "The Panthers coach was")]


# --------------------------------------------------------------------------- QA and choices


def test_nq_open(tmp_path):
    write_jsonl(
        tmp_path / "nq_open/NQ-open.dev.jsonl",
        [{"question": "who wrote hamlet", "answer": ["Shakespeare", "William Shakespeare"]}],
    )
    task, ex = load_examples(get_task("nq_open"), tmp_path)
    assert task.prompt(ex[0]) == "Q: who wrote hamlet?\nA:"
    assert ex[0].gold == ["Shakespeare", "William Shakespeare"] and task.disabled_tools == ("QA",)


def test_bbh_multiple_choice(tmp_path):
    write_json(
        tmp_path / "date_understanding_bbh/date_understanding.json",
        {
            "examples": [
                {
                    "input": "What is tomorrow?\nOptions:\n(A) 12/11/1937\n(B) 12/25/1937",
                    "target": "(B)",
                }
            ]
        },
    )
    task, ex = load_examples(get_task("date_understanding"), tmp_path)
    assert ex[0].choices == ["12/11/1937", "12/25/1937"] and ex[0].gold == 1
    assert task.metric == "multiple_choice"


def test_bbh_bad_target(tmp_path):
    write_json(
        tmp_path / "date_understanding_bbh/date_understanding.json",
        {"examples": [{"input": "Q?\nOptions:\n(A) x\n(B) y", "target": "(D)"}]},
    )
    with pytest.raises(UserError, match="target"):
        load_examples(get_task("date_understanding"), tmp_path)


def test_bigbench_options_shuffled_deterministically(tmp_path):
    rows = [
        {"input": f"Question {i}?", "target_scores": {"right": 1, "w1": 0, "w2": 0, "w3": 0}}
        for i in range(40)
    ]
    write_json(tmp_path / "date_understanding_bigbench/task.json", {"examples": rows})
    task = get_task("date_understanding_bigbench")
    _, ex = load_examples(task, tmp_path)
    _, again = load_examples(task, tmp_path)
    assert [e.choices for e in ex] == [e.choices for e in again]
    assert all(e.choices[e.gold] == "right" for e in ex)
    assert len({e.gold for e in ex}) > 1  # the right option is not always (A)
    assert "\n(A) " in task.prompt(ex[0]) and "Options:" in task.prompt(ex[0])


def test_text_normalises_crlf(tmp_path):
    (tmp_path / "wikitext2_raw").mkdir()
    (tmp_path / "wikitext2_raw/wiki.test.raw").write_bytes(b" = T = \r\n Text here .\r\n")
    task, ex = load_examples(get_task("wikitext2"), tmp_path)
    assert task.metric == "perplexity" and ex[0].fields["text"] == " = T = \n Text here .\n"


# --------------------------------------------------------------------------- generic JSONL


def test_generic_numeric_is_math(tmp_path):
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [{"question": "1+1?", "answer": 2}, {"question": "big?", "answer": "1,000"}],
    )
    task, ex = load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert task.metric == "math" and [e.gold for e in ex] == [2.0, 1000.0]
    assert task.file_stem == "jsonl_q"


def test_generic_strings_are_qa(tmp_path):
    path = write_jsonl(
        tmp_path / "q.jsonl",
        [
            {"question": "capital of France?", "answer": "Paris"},
            {"question": "a Beatle?", "answer": ["John Lennon", "Lennon"]},
            {"question": "year?", "answer": 1972},
        ],
    )
    task, ex = load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert task.metric == "qa"
    assert [e.gold for e in ex] == [["Paris"], ["John Lennon", "Lennon"], ["1972"]]


def test_generic_no_tool_prompts_score_no_call_and_rows_name_their_tools(tmp_path):
    path = write_jsonl(
        tmp_path / "n.jsonl",
        [{"question": "Tell me a joke.", "tools": []}, {"question": "Hi!", "tools": []}],
    )
    task, ex = load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert task.metric == "no_call" and task.expected_tools == ()
    assert [e.gold for e in ex] == [None, None]
    dated = write_jsonl(
        tmp_path / "d.jsonl",
        [
            {
                "question": "What day is it?",
                "answer": ["Monday"],
                "date": "2023-01-30",
                "tools": ["Calendar"],
            }
        ],
    )
    task, ex = load_examples(get_task(f"jsonl:{dated}"), tmp_path)
    assert task.metric == "qa" and task.expected_tools == ("Calendar",)
    assert ex[0].meta["date"] and ex[0].meta["tools"] == ["Calendar"]
    mixed = write_jsonl(
        tmp_path / "m.jsonl", [{"question": "Hi!", "tools": []}, {"question": "1+1?", "answer": 2}]
    )
    with pytest.raises(UserError, match="two files"):
        load_examples(get_task(f"jsonl:{mixed}"), tmp_path)
    bad = write_jsonl(tmp_path / "b.jsonl", [{"question": "1+1?", "answer": 2, "tools": "Calc"}])
    with pytest.raises(UserError, match="tools must be a list"):
        load_examples(get_task(f"jsonl:{bad}"), tmp_path)


@pytest.mark.parametrize(
    "row, message",
    [
        ({"question": "q"}, "missing field"),
        ({"question": "q", "answer": None}, "answer must be"),
        ({"question": "q", "answer": []}, "answer must be"),
        ({"question": "q", "answer": {"a": 1}}, "answer must be"),
    ],
)
def test_generic_bad_rows(tmp_path, row, message):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": "ok", "answer": 1}, row])
    with pytest.raises(UserError, match=message) as err:
        load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert "q.jsonl:2" in str(err.value)


def test_bad_json_line_is_named_and_skipped(tmp_path, caplog):
    """As in every reader (toolformer.records): the bad line is counted, named and skipped."""
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a", "answer": 1}\n{oops\n', encoding="utf-8")
    _, examples = load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert len(examples) == 1
    assert "q.jsonl: line 2 is not valid JSON" in caplog.text


def test_data_that_is_not_utf8_is_one_line(tmp_path, caplog):
    path = tmp_path / "q.jsonl"
    path.write_bytes(b'{"question": "caf\xe9?", "answer": 1}\n{"question": "b", "answer": 2}\n')
    _, examples = load_examples(get_task(f"jsonl:{path}"), tmp_path)
    assert [ex.fields["question"] for ex in examples] == ["b"]
    assert "q.jsonl: line 1 is not valid UTF-8 (byte 0xe9" in caplog.text
    (tmp_path / "svamp").mkdir()
    (tmp_path / "svamp/SVAMP.json").write_bytes(
        b'[{"Body": "caf\xe9", "Question": "q", "Answer": 1}]'
    )
    with pytest.raises(UserError, match=r"SVAMP.json:1 is not valid UTF-8 \(byte 0xe9\)"):
        load_examples(get_task("svamp"), tmp_path)


def test_missing_data_points_at_data_dir(tmp_path):
    """An API caller reads the config field (the CLI prints --data-dir instead)."""
    with pytest.raises(UserError, match="set EvalConfig.data_dir") as err:
        load_examples(get_task("svamp"), tmp_path)
    assert err.value.field == "EvalConfig.data_dir" and "--" not in str(err.value)


def test_limit(tmp_path):
    path = write_jsonl(tmp_path / "q.jsonl", [{"question": str(i), "answer": i} for i in range(9)])
    _, ex = load_examples(get_task(f"jsonl:{path}"), tmp_path, limit=3)
    assert [e.fields["question"] for e in ex] == ["0", "1", "2"]
    with pytest.raises(UserError, match="limit"):
        load_examples(get_task(f"jsonl:{path}"), tmp_path, limit=0)


# --------------------------------------------------------------------------- registry


def test_unknown_task_suggests():
    with pytest.raises(UserError, match="Did you mean 'svamp'") as err:
        get_task("svmap")
    assert "jsonl:PATH" in str(err.value)
    with pytest.raises(UserError, match="Known tasks"):
        resolve_tasks("svamp,nothing_like_it")


def test_resolve_tasks():
    names = [t.name for t in resolve_tasks("all")]
    assert names == TASKS.names() and "wikitext2" in names
    assert [t.name for t in resolve_tasks("svamp, LAMA_TREX,svamp")] == ["svamp", "lama_trex"]
    assert [t.name for t in resolve_tasks(["gsm8k"])] == ["gsm8k"]
    with pytest.raises(UserError, match="no task"):
        resolve_tasks(" , ")
    with pytest.raises(UserError, match="needs a path"):
        get_task("jsonl:")
    # the user's own file: its path, not data_dir (which only holds the built-in tasks' data)
    with pytest.raises(UserError) as err:
        get_task("jsonl:/nonexistent/questions.jsonl")
    assert "no such file /nonexistent/questions.jsonl" in str(err.value) and "data_dir" not in str(
        err.value
    )


def test_generic_registry():
    reg: Registry[int] = Registry("widget")
    reg.register("alpha", 1)
    reg.register("lazy", "toolformer.eval.metrics:LAMA_WORDS")
    assert reg.get("ALPHA") == 1 and reg.get("lazy") == 5 and "Alpha" in reg
    with pytest.raises(ValueError, match="already registered"):
        reg.register("alpha", 2)
    with pytest.raises(UserError, match="unknown widget 'alpah'. Did you mean 'alpha'"):
        reg.get("alpah")


def test_register_task_and_validation(tmp_path):
    with pytest.raises(ValueError, match="unknown metric 'accuracy'"):
        TaskSpec(name="x", path="x.json", format="svamp", metric="accuracy")
    with pytest.raises(TypeError):  # keyword construction only: no silent field shifts
        TaskSpec("x", "x.json", "svamp", "math")
    with pytest.raises(ValueError, match="metric perplexity scores loglikelihood_rolling"):
        TaskSpec(
            name="x", path="x.txt", format="text", metric="perplexity", output_type="generate_until"
        )
    with pytest.raises(UserError, match="data format"):
        register_task(TaskSpec(name="my_task", path="x.json", format="csv_please", metric="math"))
    spec = TaskSpec(name="my_svamp_test_task", path="s.json", format="svamp", metric="math")
    assert spec.output_type == "generate_until" and spec.generates
    assert get_task("wikitext2").output_type == "loglikelihood_rolling"
    register_task(spec)
    try:
        assert get_task("my_svamp_test_task") is spec
        assert "my_svamp_test_task" in [t.name for t in resolve_tasks("all")]
    finally:
        TASKS.unregister("my_svamp_test_task")
    assert "my_svamp_test_task" not in TASKS and "svamp" in LOADERS


# --------------------------------------------------------------------------- real data

EXPECTED = {
    "svamp": 1000,
    "mawps": 1920,
    "mawps_addsub": 395,
    "mawps_multiarith": 600,
    "mawps_singleeq": 508,
    "gsm8k": 1319,
    "lama_squad": 210,
    "lama_google_re": 5528,
    "lama_trex": 18601,
    "nq_open": 3610,
    "date_understanding": 250,
    "date_understanding_bigbench": 369,
    "temporal_sequences": 250,
    "wikitext2": 1,
    "dateset": 300,
    "notool": 300,
}


@pytest.mark.slow
def test_builtin_tasks_load_real_data(shared_data):
    for spec in resolve_tasks("all"):
        task, ex = load_examples(spec, shared_data)
        assert len(ex) == EXPECTED[spec.name], spec.name
        prompt = task.prompt(ex[0])
        if task.metric == "lama":
            assert "[MASK]" not in prompt and "[X]" not in prompt and not prompt.endswith(" ")
        elif task.metric == "math":
            assert all(isinstance(e.gold, float) for e in ex)
            assert prompt.startswith("Q: ") and prompt.endswith("\nA:")
        elif task.metric == "multiple_choice":
            assert all(0 <= e.gold < len(e.choices) for e in ex)
        elif task.metric == "perplexity":
            assert "\r" not in ex[0].fields["text"]
