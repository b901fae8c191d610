"""The calibrated call trigger: the threshold rule, its calibration on dev items, the manifest
field, and that generate/eval decode with an adapter's trigger by default."""

from __future__ import annotations

import json

import pytest

from tests.conftest import make_tiny_model
from toolformer.errors import UserError
from toolformer.generation.trigger import CallTrace, calibrate, calibrate_trigger, trace_call_scores
from toolformer.manifest import write_call_trigger, write_manifest
from toolformer.models import manifest_call_trigger


@pytest.fixture(autouse=True)
def _threads(one_torch_thread):
    yield


def test_threshold_stops_a_trigger_the_top_k_rule_fires():
    import torch

    from toolformer.generation.rules import call_trigger

    logits = torch.zeros(2, 6)
    logits[0, 5] = 1.0  # '[' (id 5) is the top token of row 0 ...
    logits[1, 5] = 8.0  # ... and of row 1, with most of the mass there
    brackets, opens = torch.tensor([5]), torch.tensor([5])
    assert call_trigger(logits, brackets, opens, k=10) == [5, 5]
    assert call_trigger(logits, brackets, opens, k=10, threshold=0.5) == [-1, 5]


def test_calibrate_picks_the_threshold_that_separates_and_reports_the_papers_f1():
    # items 0-2 expect a call and have a high p('['); 3-5 do not and have a low one, but '['
    # is in the top 10 everywhere: the paper's rule calls on all six
    traces = [
        CallTrace([0.6, 0.1], [0, 3]),
        CallTrace([0.4], [1]),
        CallTrace([0.05, 0.5], [5, 0]),
        CallTrace([0.02], [2]),
        CallTrace([0.1, 0.01], [4, 9]),
        CallTrace([0.03], [1]),
    ]
    labels = [True, True, True, False, False, False]
    cal = calibrate(traces, labels)
    assert cal.f1 == 1.0 and cal.precision == 1.0 and cal.recall == 1.0
    assert (cal.call_top_k, cal.call_threshold) != (10, 0.0)
    assert [t.fires(cal.call_top_k, cal.call_threshold) for t in traces] == labels
    assert cal.paper_f1 == pytest.approx(2 * 3 / (2 * 3 + 3))
    assert cal.call_rate == 0.5 and cal.n == 6


def test_calibrate_keeps_the_papers_rule_when_nothing_beats_it():
    traces = [CallTrace([0.5], [0]), CallTrace([], [])]
    cal = calibrate(traces, [True, False])
    assert (cal.call_top_k, cal.call_threshold) == (10, 0.0) and cal.f1 == 1.0


@pytest.mark.parametrize("labels", [[], [True, True], [False, False]])
def test_calibrate_refuses_dev_items_that_cannot_tell_settings_apart(labels):
    with pytest.raises(UserError):
        calibrate([CallTrace([0.5], [0]) for _ in labels], labels)


def test_calibration_items_need_tools_and_a_question(tiny_model, smol_tokenizer):
    with pytest.raises(UserError, match="'tools'"):
        calibrate_trigger(tiny_model, smol_tokenizer, [{"question": "Hi"}])
    with pytest.raises(UserError, match="'question'"):
        calibrate_trigger(tiny_model, smol_tokenizer, [{"question": None, "tools": []}])


def test_trace_predicts_exactly_whether_greedy_generation_calls(smol_tokenizer):
    """The calibration's premise: a greedy row calls under (k, t) iff its tools-disabled path
    has a step with rank < k and p >= t."""
    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.tools.calculator import Calculator
    from toolformer.tools.executor import ToolExecutor

    model = make_tiny_model(len(smol_tokenizer), seed=3)
    prompts = [f"Q: What is {a} plus {b}?\nA:" for a, b in [(1, 2), (30, 4), (7, 77), (12, 9)]]
    prompts += ["Q: Say hello.\nA:", "Q: Write a haiku.\nA:"]
    traces = trace_call_scores(model, smol_tokenizer, prompts, max_new_tokens=12, batch_size=4)
    assert all(len(t.p_call) == len(t.rank) for t in traces)
    ranks = sorted({r for t in traces for r in t.rank})
    settings = [(k, 0.0) for k in (1, ranks[len(ranks) // 2] + 1, ranks[-1] + 1)]
    probs = sorted({p for t in traces for p in t.p_call})
    settings += [(len(smol_tokenizer), probs[len(probs) // 2])]
    checked = 0
    for k, t in settings:
        config = GenerationConfig(
            max_new_tokens=12,
            call_top_k=k,
            call_threshold=t,
            stop_strings=("\n",),
            constrained=False,
        )
        gen = ToolGenerator(model, smol_tokenizer, ToolExecutor([Calculator()]), config)
        for prompt, trace, out in zip(prompts, traces, gen.generate(prompts)):
            called = "[" in out.text
            assert called == trace.fires(k, t), (prompt, k, t, out.text)
            checked += called
    assert checked > 0  # some setting made calls: the test compared both outcomes


def test_manifest_trigger_round_trip_and_bad_values(tmp_path):
    write_manifest(tmp_path, {"base_model": "smollm2-135m", "tools": ["Calculator"]})
    assert manifest_call_trigger(str(tmp_path)) is None
    write_call_trigger(tmp_path, {"call_top_k": 5, "call_threshold": 0.25, "f1": 0.8, "n": 40})
    meta = json.loads((tmp_path / "toolformer.json").read_text())
    assert meta["tools"] == ["Calculator"]  # other fields kept
    assert manifest_call_trigger(str(tmp_path))["call_threshold"] == 0.25
    for bad in (
        {"call_top_k": -1, "call_threshold": 0.2},
        {"call_top_k": 5, "call_threshold": 1.5},
        {"call_top_k": "5", "call_threshold": 0.2},
        [5, 0.2],
    ):
        write_manifest(tmp_path, {"call_trigger": bad})
        with pytest.raises(UserError, match="call_t"):
            manifest_call_trigger(str(tmp_path))


def test_generation_config_refuses_a_threshold_out_of_range():
    from toolformer.generation import GenerationConfig

    for bad in (-0.1, 1.0):
        with pytest.raises(UserError, match="call_threshold"):
            GenerationConfig(call_threshold=bad)


def test_resolve_trigger_uses_the_manifest_unless_the_user_set_one(tmp_path):
    from toolformer.generation import GenerationConfig
    from toolformer.generation.trigger import resolve_trigger

    write_manifest(tmp_path, {"call_trigger": {"call_top_k": 3, "call_threshold": 0.4}})
    base = GenerationConfig()
    got = resolve_trigger(base, str(tmp_path), explicit=False)
    assert (got.call_top_k, got.call_threshold) == (3, 0.4)
    assert resolve_trigger(base, str(tmp_path), explicit=True) == base
    assert resolve_trigger(base, str(tmp_path / "none"), explicit=False) == base


def test_calibrate_command_stores_the_trigger_in_the_manifest(
    tmp_path, monkeypatch, smol_tokenizer
):
    from click.testing import CliRunner

    import toolformer.models
    from toolformer.cli.main import cli

    model = make_tiny_model(len(smol_tokenizer), seed=3)
    monkeypatch.setattr(toolformer.models, "load_model", lambda name, **kw: (model, smol_tokenizer))
    folder = tmp_path / "adapter"
    folder.mkdir()
    write_manifest(folder, {"tools": ["Calculator"]})
    dev = tmp_path / "dev.jsonl"
    rows = [{"question": f"What is {i} times 3?", "tools": ["Calculator"]} for i in range(4)]
    rows += [{"question": q, "tools": []} for q in ("Say hi.", "Write a haiku.", "Tell a joke.")]
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(
        cli, ["calibrate", str(folder), "--dev", str(dev), "--max-new-tokens", "6"]
    )
    assert result.exit_code == 0, result.output
    trigger = manifest_call_trigger(str(folder))
    assert trigger is not None and trigger["n"] == 7 and 0 <= trigger["f1"] <= 1
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Hi"}) + "\n")
    result = CliRunner().invoke(cli, ["calibrate", str(folder), "--dev", str(bad)])
    assert result.exit_code != 0 and "'tools'" in str(result.exception)


def test_calibrate_will_not_write_into_a_shipped_adapter(tmp_path):
    from click.testing import CliRunner

    from toolformer.cli.main import cli

    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        '{"question": "2 + 2?", "tools": ["Calculator"]}\n{"question": "Hi!", "tools": []}\n'
    )
    result = CliRunner().invoke(cli, ["calibrate", "smollm2-135m-calculator", "--dev", str(dev)])
    assert result.exit_code != 0 and "shipped in the package" in str(result.exception)


def test_macro_f1_refuses_always_call_where_call_f1_picks_it():
    # 4 of 6 items expect a call and p('[') separates them badly: call F1 prefers calling
    # everywhere (0.8 against 0.75 at threshold 0.05); macro F1 (0.4 there) picks 0.05
    traces = [
        CallTrace([0.30], [0]),
        CallTrace([0.20], [0]),
        CallTrace([0.05], [0]),
        CallTrace([0.03], [0]),
        CallTrace([0.25], [0]),
        CallTrace([0.04], [0]),
    ]
    labels = [True, True, True, True, False, False]
    f1 = calibrate(traces, labels, objective="f1")
    assert f1.call_rate == 1.0 and f1.f1 == pytest.approx(0.8)
    macro = calibrate(traces, labels, objective="macro_f1")
    assert macro.objective == "macro_f1" and macro.call_threshold == pytest.approx(0.05)
    assert macro.score == pytest.approx((0.75 + 0.5) / 2)
    assert macro.paper_score == pytest.approx(0.4) and macro.paper_f1 == pytest.approx(0.8)


def test_objective_scores_and_bad_objective():
    from toolformer.generation.trigger import objective_score

    fired, expects = [True, True, False, False], [True, False, False, True]
    assert objective_score(fired, expects, "f1") == pytest.approx(0.5)
    assert objective_score(fired, expects, "macro_f1") == pytest.approx(0.5)
    assert objective_score([True] * 4, [True, True, True, False], "balanced_accuracy") == 0.5
    with pytest.raises(UserError, match="objective"):
        calibrate([CallTrace([0.5], [0]), CallTrace([], [])], [True, False], objective="auc")
