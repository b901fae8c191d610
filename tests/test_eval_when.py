"""When and which tool in evaluation: call statistics on scripted samples, the generated tasks
(dateset, notool), the Calendar's per-example date, and the report's tables."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Dict, List

import pytest

from toolformer.datasets import answer_matches
from toolformer.errors import UserError
from toolformer.eval import report
from toolformer.eval.harness import EvalConfig, eval_generation, evaluate
from toolformer.eval.metrics import call_statistics, merge_call_statistics, score_output
from toolformer.eval.tasks import get_task, load_examples
from toolformer.generation import CallRecord, GenerationOutput
from toolformer.syntax import UNCLOSED, APICall
from toolformer.tools.calculator import Calculator
from toolformer.tools.calendar import Calendar, as_date, format_date


@pytest.fixture(autouse=True)
def one_thread(one_torch_thread):
    yield


def call(tool: str, result=None, error=None) -> Dict:
    return {"tool": tool, "args": "", "result": result, "error": error, "start": 0, "end": 1}


# --------------------------------------------------------------------------- statistics


def test_call_statistics_on_scripted_samples():
    samples = [
        {"calls": [call("Calculator", "7")], "correct": True},
        {"calls": [call("QA", "Paris")], "correct": False},  # a tool that does not fit
        {"calls": [], "correct": True},
        {"calls": [call("calculator", error="bad")], "correct": False},  # failed; any case
        {"calls": [call("", error=UNCLOSED)], "correct": False},  # "[" without a name: no call
    ]
    w = call_statistics(samples, ("Calculator",))
    assert (w["n"], w["calls"], w["expected_calls"], w["wrong_tool_calls"]) == (5, 3, 2, 1)
    assert w["call_rate"] == pytest.approx(3 / 5)
    assert w["precision"] == pytest.approx(2 / 3) and w["recall"] == pytest.approx(2 / 5)
    assert w["f1"] == pytest.approx(2 * (2 / 3) * (2 / 5) / (2 / 3 + 2 / 5))
    assert w["confusion"] == {"Calculator": {"Calculator": 1, "QA": 1, "calculator": 1, "none": 2}}
    assert w["called"] == {"correct": 1, "n": 3, "accuracy": pytest.approx(1 / 3)}
    assert w["not_called"] == {"correct": 1, "n": 2, "accuracy": 0.5}
    assert w["failed_calls_by_tool"] == {"calculator": 1}


def test_call_statistics_where_no_tool_fits_and_without_calls():
    none_fits = call_statistics(
        [{"calls": [call("Calculator", "2")], "correct": False}, {"calls": [], "correct": True}], ()
    )
    assert none_fits["precision"] == 0.0 and none_fits["recall"] is None
    assert none_fits["f1"] is None and none_fits["confusion"] == {
        "none": {"Calculator": 1, "none": 1}
    }
    silent = call_statistics([{"calls": [], "correct": False}] * 3, ("QA", "WikiSearch"))
    assert silent["precision"] is None and silent["recall"] == 0.0 and silent["call_rate"] == 0
    assert silent["confusion"] == {"QA/WikiSearch": {"none": 3}}
    assert silent["called"]["accuracy"] is None and silent["not_called"]["n"] == 3
    both = call_statistics(
        [{"calls": [call("QA", "x"), call("WikiSearch", "y"), call("QA")], "correct": True}],
        ("QA", "WikiSearch"),
    )
    assert both["confusion"] == {"QA/WikiSearch": {"QA": 1, "WikiSearch": 1}}
    assert both["calls"] == 3 and both["precision"] == 1.0 and both["recall"] == 1.0

    run = merge_call_statistics([none_fits, silent, both])
    assert run["calls"] == 4 and run["expected_calls"] == 3 and run["precision"] == 0.75
    assert run["confusion"]["none"] == {"Calculator": 1, "none": 1}


def test_contains_and_no_call_metrics():
    gold = ["January 30, 2023", "2023-01-30"]
    assert score_output(
        "contains", " [Calendar() -> Today is Monday, January 30, 2023.]", gold
    ).correct
    assert not score_output("contains", " It is January 31, 2023.", gold).correct
    assert not score_output("contains", " [Calendar( 2023-01-30 ", gold).correct  # no result
    assert score_output("no_call", " What a lovely autumn day.", []).correct
    scored = score_output("no_call", " [Calculator(1+1) -> 2] 2", [])
    assert not scored.correct and scored.extracted == ["Calculator"]
    assert not score_output("no_call", " [QA(who", []).correct  # an unclosed call is a call
    assert score_output("no_call", " see [1] and [A]", []).correct  # brackets are no call


# --------------------------------------------------------------------------- tasks


def test_tasks_name_the_tools_that_fit_them(tmp_path):
    fits = {
        name: get_task(name).expected_tools
        for name in (
            "svamp",
            "mawps",
            "gsm8k",
            "lama_trex",
            "lama_squad",
            "nq_open",
            "dateset",
            "notool",
            "date_understanding",
        )
    }
    assert fits == {
        "svamp": ("Calculator",),
        "mawps": ("Calculator",),
        "gsm8k": ("Calculator",),
        "lama_trex": ("QA", "WikiSearch"),
        "lama_squad": ("QA", "WikiSearch"),
        "nq_open": ("QA", "WikiSearch"),
        "dateset": ("Calendar",),
        "notool": (),
        "date_understanding": (),
    }
    nums = tmp_path / "nums.jsonl"
    nums.write_text('{"question": "2+2?", "answer": 4}\n')
    words = tmp_path / "words.jsonl"
    words.write_text('{"question": "Who?", "answer": "Ann", "date": "2023-01-30"}\n')
    assert load_examples(get_task(f"jsonl:{nums}"), tmp_path)[0].expected_tools == ("Calculator",)
    task, ex = load_examples(get_task(f"jsonl:{words}"), tmp_path)
    assert task.expected_tools == ("QA", "WikiSearch") and ex[0].meta["date"] == "2023-01-30"
    words.write_text('{"question": "Who?", "answer": "Ann", "date": "30/01/2023"}\n')
    with pytest.raises(UserError, match="not YYYY-MM-DD"):
        load_examples(get_task(f"jsonl:{words}"), tmp_path)


def test_generated_tasks_load_the_eval_split_without_files(tmp_path):
    task, ex = load_examples(get_task("dateset"), tmp_path / "nowhere")
    assert len(ex) == 300 and task.metric == "contains"
    assert all(e.meta["date"] and e.meta["tools"] == ["Calendar"] for e in ex)
    assert task.prompt(ex[0]) == f"Q: {ex[0].fields['question']}\nA:"
    assert str(task.data_path(tmp_path)) == "generated:dateset"
    _, again = load_examples(get_task("dateset"), tmp_path, limit=5)
    assert [e.id for e in again] == [e.id for e in ex[:5]]  # seeded
    task, ex = load_examples(get_task("notool"), tmp_path)
    assert len(ex) == 300 and task.metric == "no_call" and all(e.gold == [] for e in ex)


# --------------------------------------------------------------------------- harness


class DateAwareGenerator:
    """Scripted outputs that run the real tools through the harness' executor: a prompt with a
    date (context) calls the Calendar with it, the no-tool prompts of every second batch call
    the Calculator, math prompts answer without a call."""

    def __init__(self, log: List, executor, config):
        self.log, self.executor = log, executor

    def generate(self, prompts, config, contexts=None):
        self.log.append(contexts)
        outs = []
        for i, p in enumerate(prompts):
            ctx = None if contexts is None else contexts[i]
            if "apples" in p:
                outs.append(GenerationOutput(p, " 7", [], 1, "stop"))
                continue
            if ctx is not None:  # a date question (the no-tool prompts have no date)
                tool, args = "Calendar", ""
            elif len(self.log) % 2:
                tool, args = "Calculator", "1+1"
            else:
                outs.append(GenerationOutput(p, " What a lovely thought.", [], 4, "stop"))
                continue
            res = self.executor.run_many([APICall(tool, args)], [ctx])[0]
            text = f" [{tool}({args}) -> {res.output}]"
            rec = CallRecord(tool, args, res.output, res.error, 0.0, 1, len(text))
            outs.append(GenerationOutput(p, text, [rec], 5, "stop"))
        return outs


def _svamp(root):
    (root / "svamp").mkdir(parents=True)
    (root / "svamp/SVAMP.json").write_text(
        json.dumps(
            [
                {
                    "ID": f"s{i}",
                    "Body": f"Tom has {a} apples and gets {b} more.",
                    "Question": "How many apples does he have?",
                    "Answer": float(a + b),
                }
                for i, (a, b) in enumerate([(3, 4), (10, 2)])
            ]
        )
    )
    return root


def test_dateset_gets_each_examples_own_date_and_the_report_says_when(tmp_path):
    log: List = []
    data = _svamp(tmp_path / "data")
    config = EvalConfig(
        tasks="svamp,dateset,notool",
        data_dir=str(data),
        limit=12,
        output_dir=str(tmp_path / "run"),
        progress=False,
        tools=["Calculator", "Calendar"],
        generation=replace(eval_generation(), batch_size=4),
    )
    res = evaluate(
        config,
        model=object(),
        tokenizer=object(),
        tools={"Calculator": Calculator(), "Calendar": Calendar()},
        generator_factory=lambda m, t, ex, c: DateAwareGenerator(log, ex, c),
    )
    _, examples = load_examples(get_task("dateset"), data, limit=12)
    rows = [
        json.loads(line)
        for line in (tmp_path / "run/samples/dateset.jsonl").read_text().splitlines()
    ]
    for ex, row in zip(examples, rows):  # the Calendar answered with the example's date
        assert row["calls"][0]["result"] == format_date(as_date(ex.meta["date"]))
    right = sum(answer_matches(format_date(as_date(ex.meta["date"])), ex.gold) for ex in examples)
    assert right >= sum(
        ex.meta["family"] in ("today", "weekday", "month", "year") for ex in examples
    )
    dates = res["tasks"]["dateset"]
    assert dates["correct"] == right and dates["n"] == 12
    assert dates["when"]["call_rate"] == 1.0 and dates["when"]["precision"] == 1.0
    assert dates["when"]["confusion"] == {"Calendar": {"Calendar": 12}}
    assert log[0] is None  # math examples have no date: no contexts passed

    notool = res["tasks"]["notool"]["when"]
    called = notool["confusion"]["none"].get("Calculator", 0)
    assert 0 < called < 12 and notool["precision"] == 0.0
    assert res["tasks"]["notool"]["score"] == pytest.approx(1 - called / 12)
    assert res["tasks"]["svamp"]["when"]["not_called"] == {"correct": 1, "n": 2, "accuracy": 0.5}
    assert res["when"]["calls"] == 12 + called
    assert res["when"]["precision"] == pytest.approx(12 / (12 + called))

    table = report.when_table(res)
    assert re.search(r"dateset\s+Calendar\s+100\.0\s+12\s+100\.0\s+100\.0", table)
    assert re.search(r"notool\s+none\s+[\d.]+\s+\d+\s+0\.0\s+-", table)
    confusion = report.confusion_table(res).splitlines()
    assert confusion[0].split()[-3:] == ["Calculator", "Calendar", "none"]
    assert confusion[2].split() == ["Calculator", "0", "0", "2"]
    assert confusion[4].split() == ["none", str(called), "0", str(12 - called)]
    md = (tmp_path / "run/report.md").read_text()
    assert "## When and which tool" in md and "| dateset | Calendar | 100.0 |" in md
    saved = json.loads((tmp_path / "run/results.json").read_text())
    assert saved["tasks"]["dateset"]["when"]["recall"] == 1.0


def test_real_generator_passes_the_date_to_the_calendar(tiny_model, smol_tokenizer, tmp_path):
    """The real ToolGenerator on a random model, made to call at once (every token is in the
    top k): the Calendar's result is each example's own date, not today's."""
    config = EvalConfig(
        tasks="dateset,notool",
        limit=3,
        progress=False,
        tools=["Calendar"],
        output_dir=str(tmp_path / "r"),
        max_new_tokens=12,
        generation=replace(eval_generation(), batch_size=3, call_top_k=len(smol_tokenizer)),
    )
    res = evaluate(
        config, model=tiny_model, tokenizer=smol_tokenizer, tools={"Calendar": Calendar()}
    )
    _, examples = load_examples(get_task("dateset"), tmp_path, limit=3)
    rows = [
        json.loads(line) for line in (tmp_path / "r/samples/dateset.jsonl").read_text().splitlines()
    ]
    results = [c["result"] for r in rows for c in r["calls"] if c["result"]]
    assert results, "the forced calls never reached the Calendar"
    wanted = {format_date(as_date(ex.meta["date"])) for ex in examples}
    assert set(results) <= wanted
    assert res["tasks"]["notool"]["when"]["call_rate"] == 1.0
    assert res["tasks"]["notool"]["score"] == 0.0


def test_when_comparison_table_puts_runs_side_by_side():
    def run(name, rate, prec, rec):
        w = {"call_rate": rate, "precision": prec, "recall": rec}
        return {"name": name, "tasks": {"svamp": {"when": w}, "wikitext2": {"score": 20.0}}}

    table = report.when_comparison_table(
        [run("base", 0.0, None, 0.0), run("tuned", 0.98, 0.9, 0.97)]
    ).splitlines()
    assert table[0].split() == ["task", "base", "tuned"]
    assert table[2].split() == [
        "svamp",
        "0.0",
        "/",
        "-",
        "/",
        "0.0",
        "98.0",
        "/",
        "90.0",
        "/",
        "97.0",
    ]
    assert len(table) == 4  # wikitext2 (no call statistics) has no row
    assert report.when_comparison_table([{"name": "old", "tasks": {"svamp": {}}}]) == ""


def test_cli_prints_when_and_which(monkeypatch, tmp_path):
    from click.testing import CliRunner

    from toolformer.cli.eval_cmd import eval_command

    stats = call_statistics([{"calls": [call("Calculator", "2")], "correct": False}], ())
    results = {
        "name": "x",
        "tasks": {"notool": {"metric": "no_call", "score": 0.0, "n": 1, "when": stats}},
        "when": merge_call_statistics([stats]),
    }
    monkeypatch.setattr("toolformer.eval.harness.evaluate", lambda config, command=None: results)
    out = CliRunner().invoke(eval_command, ["--tasks", "notool", "-o", str(tmp_path / "r")])
    assert out.exit_code == 0, out.output
    assert re.search(r"notool\s+none\s+100\.0\s+1\s+0\.0\s+-", out.output)
    assert "expected \\ called" in out.output and "report.md" in out.output


def test_a_task_spec_refuses_a_string_for_expected_tools():
    from toolformer.eval.tasks import TaskSpec

    with pytest.raises(ValueError, match="tuple of tool names"):
        TaskSpec(name="x", path="p", format="jsonl", metric="qa", expected_tools="QA")
