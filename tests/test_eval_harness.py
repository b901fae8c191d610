"""The harness with a scripted generator (scores, tool statistics, disabled tools, resume), the
report (results.json, tables, chart), the CLI, perplexity on a tiny model, and one integration
run of the CLI on the real SmolLM2."""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pytest
import torch
from click.testing import CliRunner

from toolformer.cli.eval_cmd import eval_command
from toolformer.cli.main import main as cli_main
from toolformer.errors import UserError
from toolformer.eval import report
from toolformer.eval.harness import EvalConfig, eval_generation, evaluate, resolve_tool_names
from toolformer.eval.perplexity import Window, perplexity, sliding_windows
from toolformer.generation import CallRecord, GenerationOutput
from toolformer.models import manifest_tools
from toolformer.tools.assembly import parse_tool_options
from toolformer.tools.base import Tool


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small models run much faster on one thread on a busy machine (no OpenMP spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- fixtures


def write_jsonl(path: Path, rows) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def data_dir(tmp_path) -> Path:
    """A tiny copy of the data layout: 4 SVAMP, 3 T-REx, 2 NQ, 2 BBH date examples, a text."""
    root = tmp_path / "data"
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
                for i, (a, b) in enumerate([(3, 4), (10, 2), (5, 5), (100, 20)])
            ]
        )
    )
    write_jsonl(
        root / "lama/relations.jsonl", [{"relation": "P19", "template": "[X] was born in [Y] ."}]
    )
    write_jsonl(
        root / "lama/TREx/P19.jsonl",
        [
            {"uuid": "u1", "sub_label": "Ann", "obj_label": "Oslo"},
            {"uuid": "u2", "sub_label": "Bob", "obj_label": "Rome"},
            {"uuid": "u3", "sub_label": "Cyd", "obj_label": "Lima"},
        ],
    )
    write_jsonl(
        root / "nq_open/NQ-open.dev.jsonl",
        [
            {"question": "who wrote hamlet", "answer": ["Shakespeare"]},
            {"question": "capital of peru", "answer": ["Lima"]},
        ],
    )
    bbh = root / "date_understanding_bbh"
    bbh.mkdir()
    (bbh / "date_understanding.json").write_text(
        json.dumps(
            {
                "examples": [
                    {
                        "input": (
                            "Today is 12/24/1937. Tomorrow?\n"
                            "Options:\n(A) 12/11/1937\n(B) 12/25/1937"
                        ),
                        "target": "(B)",
                    },
                    {
                        "input": (
                            "Today is 01/01/2000. Yesterday?\n"
                            "Options:\n(A) 12/31/1999\n(B) 01/02/2000"
                        ),
                        "target": "(A)",
                    },
                ]
            }
        )
    )
    (root / "wikitext2_raw").mkdir()
    (root / "wikitext2_raw/wiki.test.raw").write_bytes(
        b" = Robert = \r\n Robert is an English actor . He was born in London in 1970 .\r\n"
    )
    return root


def _answer(prompt: str) -> str:
    """Scripted outputs with known correctness (see the asserts below)."""
    if "3 apples" in prompt:
        return " [Calculator(3+4) -> 7] 7 apples"  # right, with a call
    if "10 apples" in prompt:
        return " 120"  # near miss of 12
    if "5 apples" in prompt:
        return " [Calculator(5+5) ->] 10"  # failed call, right answer
    if "100 apples" in prompt:
        return " 12 apples"  # near miss of 120
    if prompt.startswith("Ann"):
        return " the beautiful old city of Oslo"  # word 6: a miss
    if prompt.startswith("Bob"):
        return " [WikiSearch(Bob birthplace) ->] Rome, Italy"  # a call to a disabled tool
    if prompt.startswith("Cyd"):
        return " Lima"
    if "hamlet" in prompt:
        return " It was William Shakespeare."
    if "peru" in prompt:
        return " Cusco"
    if "12/24/1937" in prompt:
        return " (B) 12/25/1937"
    if "01/01/2000" in prompt:
        return " 12/31/1999"  # named by the option's text
    return " (B)"


def _calls(text: str) -> List[CallRecord]:
    m = re.search(r"\[(\w+)\((.*?)\) ->( \w+)?\]", text)
    if m is None:
        return []
    result = m.group(3).strip() if m.group(3) else None
    error = None if result else f"{m.group(1)} failed"
    return [CallRecord(m.group(1), m.group(2), result, error, 0.01, m.start(), m.end())]


class ScriptedGenerator:
    """The generator API with scripted outputs; logs what the harness asked for."""

    def __init__(self, log: List[Dict], executor, config, fail_after: int = -1):
        self.log, self.executor, self.config, self.fail_after = log, executor, config, fail_after

    def generate(self, prompts, config):
        if self.fail_after == 0:
            raise KeyboardInterrupt  # an interrupted run
        self.fail_after -= 1
        tools = None if self.executor is None else sorted(self.executor.tools)
        self.log.append({"prompts": list(prompts), "config": config, "tools": tools})
        outs = []
        for p in prompts:
            text = _answer(p)
            outs.append(GenerationOutput(p, text, _calls(text), len(text.split()), "stop"))
        return outs


def scripted(log: List[Dict], fail_after: int = -1):
    return lambda model, tok, executor, config: ScriptedGenerator(log, executor, config, fail_after)


def fake_tool(tool_name: str) -> Tool:
    """A stand-in with a real tool's name (the scripted generator never runs it)."""
    cls = type(
        f"Fake{tool_name}",
        (Tool,),
        {"name": tool_name, "description": "stand-in", "run": lambda self, args, context=None: "x"},
    )
    return cls()


FAKE_TOOLS = {n: fake_tool(n) for n in ("Calculator", "WikiSearch", "QA")}


def run_eval(
    data_dir, out, log, tasks="svamp,lama_trex,nq_open,date_understanding", generation=None, **kw
):
    generation = replace(eval_generation(), batch_size=2, **(generation or {}))
    config = EvalConfig(
        tasks=tasks,
        data_dir=str(data_dir),
        output_dir=str(out),
        progress=False,
        tools=["Calculator", "WikiSearch", "QA"],
        generation=generation,
        **kw,
    )
    return evaluate(
        config,
        model=object(),
        tokenizer=object(),
        tools=FAKE_TOOLS,
        generator_factory=scripted(log),
    )


# --------------------------------------------------------------------------- harness


def test_scores_and_tool_statistics(data_dir, tmp_path):
    log: List[Dict] = []
    res = run_eval(data_dir, tmp_path / "run", log)
    svamp, lama, nq, date = (
        res["tasks"][t] for t in ("svamp", "lama_trex", "nq_open", "date_understanding")
    )
    assert (svamp["correct"], svamp["n"]) == (2, 4) and svamp["score"] == 0.5
    assert svamp["tool_call_rate"] == 0.5 and svamp["tool_counts"] == {"Calculator": 2}
    assert svamp["failed_calls"] == 1 and svamp["call_failure_rate"] == 0.5
    assert svamp["mean_output_tokens"] == pytest.approx((4 + 1 + 4 + 2) / 4)
    assert (lama["correct"], lama["n"]) == (2, 3)  # Oslo in word 6 is a miss
    assert lama["disabled_tools"] == ["WikiSearch"] and lama["disabled_tool_calls"] == 1
    assert (nq["correct"], date["correct"]) == (1, 2)
    assert res["tools"] == ["Calculator", "WikiSearch", "QA"] and res["model"] == "smollm2-135m"
    assert set(res["versions"]) >= {"python", "torch", "transformers", "toolformer"}

    on_disk = json.loads((tmp_path / "run/results.json").read_text())
    assert on_disk["tasks"]["svamp"]["score"] == 0.5 and on_disk["seed"] == 0
    rows = [
        json.loads(line) for line in (tmp_path / "run/samples/svamp.jsonl").read_text().splitlines()
    ]
    assert [r["idx"] for r in rows] == [0, 1, 2, 3]  # example order, whatever the batch order
    first = rows[0]
    assert first["output"] == " [Calculator(3+4) -> 7] 7 apples"
    assert first["answer_text"] == "7 7 apples" and first["extracted"] == 7.0
    assert first["gold"] == 7.0 and first["correct"] is True
    assert first["calls"][0]["tool"] == "Calculator" and first["calls"][0]["result"] == "7"
    assert rows[1]["extracted"] == 120.0 and rows[1]["correct"] is False


def test_generation_settings_and_disabled_tools(data_dir, tmp_path):
    log: List[Dict] = []
    run_eval(data_dir, tmp_path / "run", log, generation={"max_calls": 2, "call_top_k": 5})
    lama = next(e for e in log if e["prompts"][0].startswith(("Ann", "Bob", "Cyd")))
    nq = next(e for e in log if "hamlet" in e["prompts"][0] or "peru" in e["prompts"][0])
    math_ = next(e for e in log if "apples" in e["prompts"][0])
    assert lama["tools"] == ["Calculator", "QA"]  # WikiSearch off on LAMA (paper)
    assert nq["tools"] == ["Calculator", "WikiSearch"]  # QA off on NQ (paper)
    assert math_["tools"] == ["Calculator", "QA", "WikiSearch"]
    cfg = math_["config"]
    assert (cfg.call_top_k, cfg.max_calls, cfg.tools_enabled) == (5, 2, True)
    assert cfg.min_new_tokens == 1  # an instruct model's end of turn is no answer
    assert cfg.stop_strings == ("\n",) and cfg.max_new_tokens == 48
    assert lama["config"].max_new_tokens == 24
    assert all(len(e["prompts"]) <= 2 for e in log)  # batch size


def test_no_tools(data_dir, tmp_path):
    log: List[Dict] = []
    res = run_eval(data_dir, tmp_path / "run", log, tools_enabled=False, tasks="svamp")
    assert all(e["tools"] is None and e["config"].tools_enabled is False for e in log)
    assert res["tasks"]["svamp"]["tools_offered"] == []
    assert res["command"] is None  # an API caller ran no command line: none is recorded


def test_limit_and_prompt_order(data_dir, tmp_path):
    log: List[Dict] = []
    res = run_eval(data_dir, tmp_path / "run", log, tasks="svamp", limit=3)
    assert res["tasks"]["svamp"]["n"] == 3
    prompts = [p for e in log for p in e["prompts"]]
    assert len(prompts) == 3 and "100 apples" not in " ".join(prompts)


def test_resume_after_interruption(data_dir, tmp_path):
    out = tmp_path / "run"
    log: List[Dict] = []
    config = EvalConfig(
        tasks="svamp",
        data_dir=str(data_dir),
        output_dir=str(out),
        progress=False,
        tools=["Calculator"],
        generation=replace(eval_generation(), batch_size=2),
    )
    with pytest.raises(KeyboardInterrupt):
        evaluate(
            config,
            model=object(),
            tokenizer=object(),
            tools=FAKE_TOOLS,
            generator_factory=scripted(log, fail_after=1),
        )
    assert len((out / "samples/svamp.jsonl").read_text().splitlines()) == 2
    log2: List[Dict] = []
    res = evaluate(
        config,
        model=object(),
        tokenizer=object(),
        tools=FAKE_TOOLS,
        generator_factory=scripted(log2),
    )
    assert sum(len(e["prompts"]) for e in log2) == 2  # only the two missing examples
    assert res["tasks"]["svamp"]["n"] == 4 and res["tasks"]["svamp"]["correct"] == 2

    # resumed outputs are scored again: a stored verdict does not survive a metric change
    path = out / "samples/svamp.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[1]["correct"] = True
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    again = evaluate(
        config, model=object(), tokenizer=object(), tools=FAKE_TOOLS, generator_factory=scripted([])
    )
    assert again["tasks"]["svamp"]["correct"] == 2
    # the task's own time survives the resume (wall_seconds is this invocation only)
    assert again["task_seconds"] == pytest.approx(res["task_seconds"])
    assert again["task_seconds"] == pytest.approx(again["tasks"]["svamp"]["seconds"])

    reseeded = replace(config.generation, seed=1)
    changed = replace(config, generation=reseeded)
    with pytest.raises(UserError, match="different settings"):
        evaluate(
            changed,
            model=object(),
            tokenizer=object(),
            tools=FAKE_TOOLS,
            generator_factory=scripted([]),
        )
    log3: List[Dict] = []
    fresh = replace(config, generation=reseeded, resume=False)
    evaluate(
        fresh,
        model=object(),
        tokenizer=object(),
        tools=FAKE_TOOLS,
        generator_factory=scripted(log3),
    )
    assert sum(len(e["prompts"]) for e in log3) == 4


def test_generic_jsonl_task(data_dir, tmp_path):
    path = tmp_path / "mine.jsonl"
    write_jsonl(
        path,
        [
            {"question": "Tom has 3 apples and gets 4 more.", "answer": 7},
            {"question": "Tom has 10 apples and gets 2 more.", "answer": "12"},
        ],
    )
    res = run_eval(data_dir, tmp_path / "run", [], tasks=f"jsonl:{path}")
    task = res["tasks"][f"jsonl:{path}"]
    assert task["metric"] == "math" and (task["correct"], task["n"]) == (1, 2)
    assert (tmp_path / "run/samples/jsonl_mine.jsonl").exists()


def test_tool_names(tmp_path):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    assert manifest_tools(str(ckpt)) is None
    (ckpt / "toolformer.json").write_text(json.dumps({"tools": ["calculator", "Calendar"]}))
    assert resolve_tool_names(EvalConfig(model=str(ckpt))) == ["Calculator", "Calendar"]
    assert resolve_tool_names(EvalConfig()) == ["Calculator", "Calendar", "WikiSearch", "QA"]
    with pytest.raises(Exception, match="Did you mean 'Calculator'"):
        resolve_tool_names(EvalConfig(tools=["Calculater"]))
    (ckpt / "toolformer.json").write_text(json.dumps({"tools": "Calculator"}))
    with pytest.raises(UserError, match="list"):
        manifest_tools(str(ckpt))


def test_qa_shares_search_and_reader():
    """QA reads with the evaluated model when it is the reader it asks for, and searches with the
    run's WikiSearch (nothing is loaded here: both tools load lazily)."""
    from toolformer.eval.harness import _Run

    model, tok = object(), object()
    run = _Run(EvalConfig(model="smollm2-135m"), model, tok, scripted([]), None)
    tools = run.tools_for(["QA", "Calculator"])
    assert tools["QA"].reader() == (model, tok)
    assert tools["QA"].search is run.tools_for(["WikiSearch"])["WikiSearch"]
    other = _Run(
        EvalConfig(model="./my-checkpoint", tool_options={"QA": {"passages": 2}}),
        model,
        tok,
        scripted([]),
        None,
    )
    qa = other.tools_for(["QA"])["QA"]
    assert qa.config.model != "./my-checkpoint" and qa.config.passages == 2


def test_parse_tool_options():
    assert parse_tool_options(
        ['{"WikiSearch": {"top_k": 2}}', "WikiSearch.mode=dense", "QA.passages=5"]
    ) == {"WikiSearch": {"top_k": 2, "mode": "dense"}, "QA": {"passages": 5}}
    with pytest.raises(UserError):
        parse_tool_options(["top_k=2"])
    with pytest.raises(UserError):
        parse_tool_options(["{bad json"])


# --------------------------------------------------------------------------- report


def fake_run(name: str, scores: Dict[str, float], ppl: float = None) -> Dict:
    tasks = {
        t: {
            "metric": "math",
            "score": s,
            "n": 10,
            "tool_call_rate": 0.3,
            "tool_counts": {"Calculator": 3},
            "failed_calls": 1,
            "mean_output_tokens": 9.5,
            "seconds": 2.0,
        }
        for t, s in scores.items()
    }
    if ppl is not None:
        tasks["wikitext2"] = {"metric": "perplexity", "score": ppl, "n": 1000}
    return {"name": name, "model": name, "tasks": tasks}


def test_tables():
    base = fake_run("base", {"svamp": 0.052, "lama_trex": 0.319}, ppl=21.5)
    tuned = fake_run("tuned", {"svamp": 0.294}, ppl=20.25)
    table = report.comparison_table([base, tuned])
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["task", "metric", "base", "tuned"]
    svamp = next(row for row in lines if row.startswith("svamp"))
    assert "5.2 (30% calls, n=10)" in svamp and "29.4" in svamp
    lama = next(row for row in lines if row.startswith("lama_trex"))
    assert lama.rstrip().endswith("-")  # the tuned run lacks the task
    assert "21.50" in next(row for row in lines if row.startswith("wikitext2"))
    summary = report.summary_table(base)
    assert "Calculator:3" in summary and "5.2" in summary
    twins = report.run_labels([{**base, "_path": "/r/a"}, {**base, "_path": "/r/b"}])
    assert twins == ["base [a]", "base [b]"]


def test_bar_chart_and_load(tmp_path):
    runs = [
        fake_run("base", {"svamp": 0.05, "lama_trex": 0.3}, ppl=21.5),
        fake_run("tuned", {"svamp": 0.29, "lama_trex": 0.5}, ppl=20.0),
    ]
    path = report.bar_chart(runs, tmp_path / "charts/cmp.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    for i, run in enumerate(runs):
        report.write_results(run, tmp_path / f"run{i}")
    loaded = report.load_run(tmp_path / "run0")
    assert loaded["tasks"]["svamp"]["score"] == 0.05
    with pytest.raises(UserError, match="results.json"):
        report.load_run(tmp_path / "nowhere")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad/results.json").write_text("{}")
    with pytest.raises(UserError, match="not an eval results file"):
        report.load_run(tmp_path / "bad")


def test_cli_compare_and_list(tmp_path):
    for name, s in (("base", 0.05), ("tuned", 0.29)):
        report.write_results(fake_run(name, {"svamp": s}), tmp_path / name)
    runner = CliRunner()
    out = runner.invoke(
        eval_command,
        [
            "--compare",
            str(tmp_path / "base"),
            str(tmp_path / "tuned"),
            "--chart",
            str(tmp_path / "c.png"),
        ],
    )
    assert out.exit_code == 0, out.output
    assert re.search(r"svamp\s+math\s+5\.0 .*29\.0", out.output)
    assert (tmp_path / "c.png").exists()
    listing = runner.invoke(eval_command, ["--list-tasks"])
    assert "lama_trex" in listing.output and "jsonl:PATH" in listing.output


def test_cli_user_errors(tmp_path, capsys):
    for argv, message in (
        (["eval", "--compare"], "needs run folders"),
        (["eval", "some_dir"], "--compare"),
        (
            ["eval", "--tasks", "svmap", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o")],
            "Did you mean 'svamp'",
        ),
        (
            ["eval", "--tasks", "svamp", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o")],
            "--data-dir",
        ),
        (
            ["eval", "--tool-option", "nonsense", "-o", str(tmp_path / "o")],
            "expected Tool.option=value",
        ),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli_main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and message in err and "Traceback" not in err, argv


# --------------------------------------------------------------------------- perplexity


def test_sliding_windows_score_every_token_once():
    for n, length, stride in ((10, 4, 2), (100, 16, 16), (37, 8, 3), (5, 16, 8), (2, 2, 1)):
        windows = sliding_windows(n, length, stride)
        assert sum(w.n_targets for w in windows) == n - 1
        assert all(w.end - w.begin <= length and w.n_targets < w.end - w.begin for w in windows)
        assert windows[-1].end == n
    assert sliding_windows(10, 4, 2)[1] == Window(2, 6, 2)
    assert sliding_windows(10, 4, 4)[1] == Window(3, 7, 3)  # chunks share one context token
    assert sliding_windows(1, 4, 2) == []
    with pytest.raises(UserError):
        sliding_windows(10, 4, 5)


def _reference_nll(model, ids: List[int], length: int, stride: int) -> float:
    """Window by window, full logits, no batching: the plain Hugging Face recipe."""
    total = 0.0
    for w in sliding_windows(len(ids), length, stride):
        inp = torch.tensor([ids[w.begin : w.end]])
        with torch.no_grad():
            logp = model(input_ids=inp).logits[0, :-1].log_softmax(-1)
        targets = inp[0, 1:]
        lp = logp.gather(-1, targets[:, None])[:, 0]
        total -= lp[-w.n_targets :].sum().item()
    return total


def test_perplexity_matches_reference(tiny_model, smol_tokenizer):
    text = (
        "The tower is 324 metres tall , about as high as an 81 @-@ storey building .\r\n"
        " It was the first structure to reach a height of 300 metres . [ 1 ]\r\n"
    ) * 3
    from toolformer.models import start_token_id

    text_ids = smol_tokenizer(text.replace("\r\n", "\n"), add_special_tokens=False)["input_ids"]
    # after SmolLM2's end-of-text token, as in pre-training: every text token is scored
    ids = [start_token_id(smol_tokenizer)] + text_ids
    assert ids[0] == smol_tokenizer.get_vocab()["<|endoftext|>"]
    res = perplexity(
        tiny_model, smol_tokenizer, text, max_length=16, stride=8, batch_size=3, progress=False
    )
    assert res["tokens_scored"] == len(text_ids) and res["start_token"] == "<|endoftext|>"
    expected = math.exp(_reference_nll(tiny_model, ids, 16, 8) / (len(ids) - 1))
    assert res["perplexity_raw"] == pytest.approx(expected, rel=1e-4)
    # p("[") set to 0 moves mass to the other tokens: never a higher perplexity
    assert res["perplexity"] <= res["perplexity_raw"]
    assert res["words"] == len(text.split()) and res["call_token_ids"]
    whole = perplexity(tiny_model, smol_tokenizer, text, max_length=1024, progress=False)
    with torch.no_grad():
        loss = tiny_model(input_ids=torch.tensor([ids]), labels=torch.tensor([ids])).loss.item()
    assert whole["windows"] == 1
    assert whole["perplexity_raw"] == pytest.approx(math.exp(loss), rel=1e-4)
    limited = perplexity(
        tiny_model, smol_tokenizer, text, max_length=16, stride=8, limit=2, progress=False
    )
    assert limited["windows"] == 2 and limited["tokens_scored"] == 15 + 8
    # '' for no start token: the first text token has no context and goes unscored
    bare = perplexity(
        tiny_model, smol_tokenizer, text, max_length=1024, start_token="", progress=False
    )
    assert bare["tokens_scored"] == len(text_ids) - 1 and bare["start_token"] is None
    chat = perplexity(
        tiny_model,
        smol_tokenizer,
        text,
        max_length=1024,
        start_token="<|im_start|>",
        progress=False,
    )
    assert (
        chat["tokens_scored"] == len(text_ids) and chat["perplexity_raw"] != whole["perplexity_raw"]
    )


def test_harness_perplexity_and_resume(tiny_model, smol_tokenizer, data_dir, tmp_path):
    config = EvalConfig(
        tasks="wikitext2",
        data_dir=str(data_dir),
        output_dir=str(tmp_path / "r"),
        progress=False,
        max_length=8,
        stride=4,
    )
    res = evaluate(config, model=tiny_model, tokenizer=smol_tokenizer)
    task = res["tasks"]["wikitext2"]
    assert task["metric"] == "perplexity" and task["lower_is_better"] and task["score"] > 1
    again = evaluate(config, model=tiny_model, tokenizer=smol_tokenizer)
    assert again["tasks"]["wikitext2"]["seconds"] == task["seconds"]  # reused, not recomputed


def test_harness_with_real_generator_on_tiny_model(tiny_model, smol_tokenizer, data_dir, tmp_path):
    """The real ToolGenerator end to end on a random model: the API fits, outputs are scored."""
    from toolformer.tools.calculator import Calculator

    config = EvalConfig(
        tasks="svamp,lama_trex",
        data_dir=str(data_dir),
        progress=False,
        output_dir=str(tmp_path / "r"),
        tools=["Calculator"],
        max_new_tokens=6,
        generation=replace(eval_generation(), batch_size=3, call_top_k=10),
    )
    res = evaluate(
        config, model=tiny_model, tokenizer=smol_tokenizer, tools={"Calculator": Calculator()}
    )
    for name, n in (("svamp", 4), ("lama_trex", 3)):
        task = res["tasks"][name]
        assert task["n"] == n and 0 < task["mean_output_tokens"] <= 6
        rows = (tmp_path / f"r/samples/{name}.jsonl").read_text().splitlines()
        assert len(rows) == n
        for row in map(json.loads, rows):
            assert row["prompt"].endswith(("\nA:", " in"))
            assert isinstance(row["correct"], bool) and row["num_tokens"] <= 6


# --------------------------------------------------------------------------- integration


@pytest.mark.slow
def test_cli_on_real_smollm2(shared_data, tmp_path):
    """Two tasks through the CLI on the real SmolLM2 with --limit 8 (Calculator and Calendar)."""
    out = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(
        eval_command,
        [
            "--model",
            "smollm2-135m",
            "--tasks",
            "svamp,lama_trex",
            "--limit",
            "8",
            "--data-dir",
            str(shared_data),
            "--tools",
            "Calculator,Calendar",
            "-o",
            str(out),
            "--batch-size",
            "8",
            "--quiet",
            "--chart",
            str(out / "chart.png"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "svamp" in result.output and "lama_trex" in result.output
    res = json.loads((out / "results.json").read_text())
    assert set(res["tasks"]) == {"svamp", "lama_trex"} and res["limit"] == 8
    for name in ("svamp", "lama_trex"):
        task = res["tasks"][name]
        rows = [
            json.loads(line) for line in (out / f"samples/{name}.jsonl").read_text().splitlines()
        ]
        assert task["n"] == len(rows) == 8 and 0 <= task["score"] <= 1
        assert task["correct"] == sum(r["correct"] for r in rows)
        assert sum(bool(r["answer_text"].strip()) for r in rows) >= 6  # the model answers
        assert all(r["num_tokens"] <= task["max_new_tokens"] for r in rows)
    assert (out / "chart.png").read_bytes()[:4] == b"\x89PNG"


# --------------------------------------------------------------------------- config and CLI


def _cli_config(monkeypatch, argv):
    """The EvalConfig that ``toolformer eval ARGV`` builds (evaluate is not run)."""
    seen = {}

    def fake_evaluate(config, **kwargs):
        seen["config"] = config
        raise SystemExit(0)

    monkeypatch.setattr("toolformer.eval.harness.evaluate", fake_evaluate)
    CliRunner().invoke(eval_command, argv + ["-o", "unused"])
    return seen["config"]


def test_cli_builds_one_generation_config_with_eval_defaults(monkeypatch):
    config = _cli_config(monkeypatch, [])
    assert config.generation == eval_generation()
    assert (
        config.generation.batch_size,
        config.generation.min_new_tokens,
        config.generation.seed,
    ) == (8, 1, 0)
    config = _cli_config(
        monkeypatch,
        [
            "--do-sample",
            "--temperature",
            "0.7",
            "--top-k",
            "40",
            "--top-p",
            "0.9",
            "--seed",
            "3",
            "-b",
            "2",
            "--call-top-k",
            "5",
            "--max-calls",
            "2",
            "--min-new-tokens",
            "0",
            "--ppl-max-length",
            "256",
            "--ppl-stride",
            "128",
            "--max-new-tokens",
            "20",
        ],
    )
    gen = config.generation
    assert (gen.do_sample, gen.temperature, gen.top_k, gen.top_p, gen.seed) == (
        True,
        0.7,
        40,
        0.9,
        3,
    )
    assert (gen.batch_size, gen.call_top_k, gen.max_calls, gen.min_new_tokens) == (2, 5, 2, 0)
    assert (config.max_length, config.stride, config.max_new_tokens) == (256, 128, 20)
    assert _cli_config(monkeypatch, ["--max-length", "64", "--stride", "32"]).max_length == 64


def test_fingerprint_of_the_old_flat_settings_is_kept():
    """A run folder made before EvalConfig.generation existed still resumes: the hashes below
    are those of the flat config (computed with the code before the change)."""
    from toolformer.eval.harness import _fingerprint

    assert _fingerprint(EvalConfig(), ["Calculator"], Path("/data")) == "e1df378da52e8cad"
    sampled = EvalConfig(
        max_length=256,
        max_new_tokens=20,
        generation=replace(eval_generation(), do_sample=True, temperature=0.7, seed=3),
    )
    assert _fingerprint(sampled, ["Calculator"], Path("/data")) == "28e46a86dd531a82"
    nucleus = replace(sampled, generation=replace(sampled.generation, top_p=0.9))
    assert _fingerprint(nucleus, ["Calculator"], Path("/data")) != "28e46a86dd531a82"


def test_generation_seed_is_the_one_seed():
    from toolformer.generation.types import GenerationConfig

    assert EvalConfig(generation=GenerationConfig()).generation.seed == 0
    assert not hasattr(EvalConfig(), "seed")


# --------------------------------------------------------------------------- self-consistency

VOTES = {"3 apples": [" 8", " 7", " 7 apples"], "100 apples": [" 12", " 120", " 5"]}


class VotingGenerator(ScriptedGenerator):
    """The j-th copy of a prompt in a batch gets the j-th scripted output; prompts without a
    script get no number (no answer, no vote)."""

    def generate(self, prompts, config):
        self.log.append({"prompts": list(prompts), "config": config})
        seen: Dict[str, int] = {}
        outs = []
        for p in prompts:
            j = seen[p] = seen.get(p, -1) + 1
            script = next((v for key, v in VOTES.items() if key in p), None)
            text = script[j % len(script)] if script else " no idea"
            outs.append(GenerationOutput(p, text, [], 2, "stop"))
        return outs


def test_majority_vote_over_sampled_outputs(data_dir, tmp_path):
    from toolformer.eval.voting import majority_record

    log: List[Dict] = []
    config = EvalConfig(
        tasks="svamp",
        data_dir=str(data_dir),
        output_dir=str(tmp_path / "run"),
        progress=False,
        tools=["Calculator"],
        num_return_sequences=3,
        generation=replace(eval_generation(), batch_size=4, do_sample=True, temperature=0.7),
    )
    factory = lambda model, tok, executor, cfg: VotingGenerator(log, executor, cfg)  # noqa: E731
    res = evaluate(
        config,
        model=object(),
        tokenizer=object(),
        tools=FAKE_TOOLS,
        **{"generator_factory": factory},
    )
    assert all(len(e["prompts"]) == 3 for e in log)  # batch of 4 rows: one question x 3
    assert sum(len(e["prompts"]) for e in log) == 4 * 3
    svamp = res["tasks"]["svamp"]
    assert (svamp["correct"], svamp["n"]) == (1, 4)  # 7 wins 2-1; 12 wins the 1-1-1 tie
    assert svamp["voting"] == {
        "k": 3,
        "pass_at_k": 0.5,
        "mean_agreement": pytest.approx((2 / 3 + 1 / 3) / 4),
    }
    rows = {
        r["idx"]: r
        for r in map(json.loads, (tmp_path / "run/samples/svamp.jsonl").read_text().splitlines())
    }
    assert rows[0]["output"] == " 7" and rows[0]["votes"] == {"7": 2, "8": 1}
    assert rows[3]["extracted"] == 12.0 and rows[3]["any_correct"] is True
    assert rows[1]["votes"] == {} and rows[1]["output"] == " no idea"  # no answer: first sample
    assert [s["output"] for s in rows[3]["samples"]] == [" 12", " 120", " 5"]
    assert rows[0]["num_tokens"] == 6  # the answer's cost: all three samples
    from toolformer.eval.report import summary_table

    note = summary_table(res).splitlines()[-1]
    assert note.startswith("voted: each score is the majority answer of 3 sampled outputs")
    assert "svamp pass@3 50.0% agreement 25%" in note
    assert "voted" not in summary_table(run_eval(data_dir, tmp_path / "plain", [], tasks="svamp"))

    # resumed: every sample scored again and voted again (a stored verdict does not survive)
    path = tmp_path / "run/samples/svamp.jsonl"
    stored = [json.loads(line) for line in path.read_text().splitlines()]
    stored[3]["correct"] = True
    path.write_text("".join(json.dumps(r) + "\n" for r in stored))
    again = evaluate(
        config, model=object(), tokenizer=object(), tools=FAKE_TOOLS, generator_factory=factory
    )
    assert again["tasks"]["svamp"]["correct"] == 1 and again["tasks"]["svamp"]["voting"]["k"] == 3

    # k outputs of greedy decoding would be one output k times: a one-line error
    with pytest.raises(UserError, match="num_return_sequences 3 votes over sampled outputs"):
        evaluate(
            replace(config, generation=eval_generation(), output_dir=str(tmp_path / "g")),
            model=object(),
            tokenizer=object(),
            tools=FAKE_TOOLS,
            generator_factory=factory,
        )
    with pytest.raises(UserError, match="must be an integer >= 1"):
        evaluate(
            replace(config, num_return_sequences=0, output_dir=None),
            model=object(),
            tokenizer=object(),
            tools=FAKE_TOOLS,
            generator_factory=factory,
        )
    with pytest.raises(ValueError):
        majority_record([])
