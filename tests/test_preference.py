"""Preference training: right-vs-wrong pairs from Grow samples, DPO on a tiny random model from
an SFT LoRA adapter (its reference the SFT adapter, not the base model), and the opt-in DPO stage
of a self-training run (pairs, a resumable dpo stage, the round's model)."""

from __future__ import annotations

import importlib.util
import json
import math
import re

import pytest
import torch
from test_selftrain import Interrupt, ScriptedGenerator, _config, files  # noqa: F401 - fixture

from toolformer.errors import MissingDependencyError, UserError
from toolformer.generation import CallRecord, GenerationOutput
from toolformer.models import (
    ADAPTER_DIR,
    load_model,
    load_tokenizer,
    peft_from_pretrained,
    quiet_peft,
)
from toolformer.preference import (
    DPOSettings,
    DPOTrainConfig,
    build_trainer,
    dpo_train,
    preference_pairs,
)
from toolformer.selftrain import Candidate, SelfTrainConfig, selftrain
from toolformer.selftrain.config import ImproveConfig
from toolformer.syntax import APICall, format_call


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    yield


# --------------------------------------------------------------------------- pairs


def _cand(doc_id, sample, a, op, b, result=None, error=None, prompt=None):
    """A Grow sample ``[Calculator(a op b) -> r] r`` on problem ``doc_id``; ``error``: the call
    failed (no result); ``op`` None: no call, just the number ``a``."""
    prompt = prompt or f"Q: problem {doc_id}?\nA:"
    if op is None:
        return Candidate(doc_id, sample, prompt, f" {a}.", [])
    args = f"{a} {op} {b}"
    res = None if error else (result if result is not None else str(eval(args)))  # noqa: S307
    text = " " + format_call(APICall("Calculator", args, res or ""))
    call = {"tool": "Calculator", "args": args, "result": res, "error": error}
    call.update(start=1, end=len(text))
    return Candidate(doc_id, sample, prompt, text + f" {res or ''}.", [call])


def test_pairs_put_a_right_sample_against_a_sound_wrong_one_of_the_same_problem():
    right_a = _cand("a", 0, 24, "-", 6)
    wrong_a = _cand("a", 1, 24, "+", 6)  # the wrong operation: a sound call, a wrong answer
    failed_a = _cand("a", 2, 24, "/", 0, error="division by zero")  # wrong, but its call failed
    plain_a = _cand("a", 3, 30, None, None)  # wrong, no call
    again_a = _cand("a", 4, 24, "+", 6)  # the same text as sample 1
    only_right = [_cand("b", 0, 3, "+", 2), _cand("b", 1, 3, "+", 2)]
    only_wrong = [_cand("c", 0, 3, "*", 2), _cand("c", 1, 3, "-", 2)]
    d = [_cand("d", 0, 4, "*", 6), _cand("d", 1, 4, "+", 6), _cand("d", 2, 6, "*", 4)]
    d += [_cand("d", 3, 4, "-", 6), _cand("d", 4, 4, "*", 5)]
    unjudged = [_cand("e", 0, 1, "+", 1), _cand("e", 1, 1, "*", 1)]
    cands = [right_a, wrong_a, failed_a, plain_a, again_a, *only_right, *only_wrong, *d]
    cands += unjudged
    scores = [1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, None, None]

    pairs = preference_pairs(cands, scores)
    assert [p["doc_id"] for p in pairs] == ["a", "d", "d"]
    assert pairs[0] == {
        "prompt": right_a.prompt,
        "chosen": right_a.text,
        "rejected": wrong_a.text,
        "doc_id": "a",
    }
    # SFT trains on prompt + text: the pair holds the same split
    assert pairs[0]["prompt"] + pairs[0]["chosen"] == right_a.training_text()
    # two right and three wrong samples on "d": the i-th right against the i-th wrong first
    assert [(p["chosen"], p["rejected"]) for p in pairs[1:]] == [
        (d[0].text, d[1].text),
        (d[2].text, d[3].text),
    ]
    more = [
        p for p in preference_pairs(cands, scores, max_pairs_per_prompt=10) if p["doc_id"] == "d"
    ]
    assert len(more) == 6 and len({(p["chosen"], p["rejected"]) for p in more}) == 6
    assert {p["chosen"] for p in more} == {d[0].text, d[2].text}
    assert {p["rejected"] for p in more} == {d[1].text, d[3].text, d[4].text}
    # the same order whatever order the samples come in
    shuffled = list(reversed(range(len(cands))))
    again = preference_pairs([cands[i] for i in shuffled], [scores[i] for i in shuffled])
    assert sorted(map(json.dumps, again)) == sorted(map(json.dumps, pairs))
    with pytest.raises(ValueError):
        preference_pairs(cands, scores[:-1])


# --------------------------------------------------------------------------- DPO

PAIRS = [
    {
        "prompt": "Q: Sam had 50 dollars and spent 18. How many dollars are left?\nA:",
        "chosen": " [Calculator(50 - 18) -> 32] 32.",
        "rejected": " [Calculator(50 + 18) -> 68] 68.",
    },
    {
        "prompt": "Q: A box holds 4 rows of 6 eggs. How many eggs are in the box?\nA:",
        "chosen": " [Calculator(4 * 6) -> 24] 24.",
        "rejected": " [Calculator(4 + 6) -> 10] 10.",
    },
]


@pytest.fixture(scope="module")
def sft_adapter(tmp_path_factory, tiny_dir):
    """An SFT LoRA adapter on the tiny model whose weights are far from zero (a fresh LoRA
    adapter is the base model exactly, which would hide which one the reference is)."""
    from peft import LoraConfig, get_peft_model

    model, _ = load_model(tiny_dir)
    torch.manual_seed(3)
    lora = LoraConfig(
        r=4,
        lora_alpha=256,  # a large scale: the tiny model's logits are nearly flat otherwise
        target_modules=["q_proj", "v_proj", "o_proj", "down_proj"],
        init_lora_weights=False,
        task_type="CAUSAL_LM",
    )
    path = tmp_path_factory.mktemp("sft") / ADAPTER_DIR
    get_peft_model(model, lora).save_pretrained(str(path))
    return str(path)


def _completion_logp(model, tok, prompt: str, completion: str) -> float:
    """log p(completion + EOS | prompt) summed over the completion's tokens."""
    prompt_ids = tok(prompt)["input_ids"]
    ids = tok(prompt + completion + tok.eos_token)["input_ids"]
    assert ids[: len(prompt_ids)] == prompt_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    logps = torch.log_softmax(logits[:-1], dim=-1)
    target = torch.tensor(ids[1:])
    per_token = logps.gather(1, target[:, None])[:, 0]
    return float(per_token[len(prompt_ids) - 1 :].sum())


def _settings(**kw) -> DPOSettings:
    base = dict(max_steps=2, per_device_train_batch_size=2, learning_rate=1e-2, max_length=64)
    return DPOSettings(**{**base, **kw})


@pytest.mark.parametrize("precompute", [True, False])
def test_the_reference_log_probs_are_the_sft_adapters_not_the_base_models(
    tmp_path, tiny_dir, sft_adapter, precompute
):
    trainer = build_trainer(
        DPOTrainConfig(
            pairs=PAIRS,
            model=tiny_dir,
            adapter=sft_adapter,
            output_dir=str(tmp_path / "dpo"),
            settings=_settings(precompute_ref_log_probs=precompute),
        )
    )
    if precompute:  # computed once, before training
        ref = [float(x) for x in trainer.train_dataset["ref_chosen_logps"]]
        ref_rejected = [float(x) for x in trainer.train_dataset["ref_rejected_logps"]]
    else:  # the forward pass each training step makes for the reference
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(PAIRS))])
        with quiet_peft():
            chosen, rejected = trainer.compute_ref_log_probs(trainer.model, batch)
        ref, ref_rejected = chosen.tolist(), rejected.tolist()
    base, tok = load_model(tiny_dir)
    sft = peft_from_pretrained(load_model(tiny_dir)[0], sft_adapter).eval()
    for i, pair in enumerate(PAIRS):
        want = _completion_logp(sft, tok, pair["prompt"], pair["chosen"])
        base_lp = _completion_logp(base, tok, pair["prompt"], pair["chosen"])
        assert abs(want - base_lp) > 0.5  # the SFT adapter moves them: the test can tell
        assert ref[i] == pytest.approx(want, abs=1e-3)
        assert ref_rejected[i] == pytest.approx(
            _completion_logp(sft, tok, pair["prompt"], pair["rejected"]), abs=1e-3
        )


def test_dpo_trains_the_sft_adapter_and_saves_a_loadable_adapter(tmp_path, tiny_dir, sft_adapter):
    from safetensors.torch import load_file

    pairs_file = tmp_path / "pairs.jsonl"
    pairs_file.write_text("".join(json.dumps(p) + "\n" for p in PAIRS), encoding="utf-8")
    out = tmp_path / "dpo"
    metrics = dpo_train(
        DPOTrainConfig(
            pairs=str(pairs_file),
            model=tiny_dir,
            adapter=sft_adapter,
            output_dir=str(out),
            settings=_settings(),
            threads=1,
        )
    )
    assert metrics["pairs"] == 2 and metrics["global_step"] == 2
    # the first step starts at the reference (the SFT adapter): no margin, the loss ln 2
    assert metrics["loss_first"] == pytest.approx(math.log(2), abs=1e-4)
    assert metrics["loss_last"] < metrics["loss_first"]  # it learns the preference
    assert metrics["reward_accuracy"] is not None and metrics["reward_margin"] > 0
    # the layout of a LoRA fine-tuning: adapter/ (only the trained adapter), merged weights beside
    adapter = out / ADAPTER_DIR
    assert (adapter / "adapter_config.json").is_file() and not (adapter / "ref").exists()
    before, after = (
        load_file(f"{sft_adapter}/adapter_model.safetensors"),
        load_file(adapter / "adapter_model.safetensors"),
    )
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    manifest = json.loads((out / "toolformer.json").read_text())
    assert manifest["preference"]["method"] == "dpo" and manifest["lora"]["merged"]
    assert manifest["metrics"]["global_step"] == 2
    tok = load_tokenizer(tiny_dir)
    with_adapter = peft_from_pretrained(load_model(tiny_dir)[0], str(adapter)).eval()
    merged, _ = load_model(str(out))
    p = PAIRS[0]
    lp_adapter = _completion_logp(with_adapter, tok, p["prompt"], p["chosen"])
    assert _completion_logp(merged, tok, p["prompt"], p["chosen"]) == pytest.approx(
        lp_adapter, abs=1e-3
    )
    sft = peft_from_pretrained(load_model(tiny_dir)[0], sft_adapter).eval()

    def margin(m):
        return _completion_logp(m, tok, p["prompt"], p["chosen"]) - _completion_logp(
            m, tok, p["prompt"], p["rejected"]
        )

    assert margin(with_adapter) > margin(sft)


def test_bad_dpo_inputs_are_one_line_errors(tmp_path, tiny_dir, sft_adapter, monkeypatch):
    base = dict(model=tiny_dir, adapter=sft_adapter, output_dir=str(tmp_path / "o"))
    with pytest.raises(UserError, match="no preference pairs"):
        dpo_train(DPOTrainConfig(pairs=[], **base))
    with pytest.raises(UserError, match="needs prompt, chosen and rejected"):
        dpo_train(DPOTrainConfig(pairs=[{"prompt": "Q", "chosen": "a"}], **base))
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        dpo_train(DPOTrainConfig(pairs=PAIRS, **{**base, "adapter": str(tmp_path)}))
    with pytest.raises(UserError, match="beta must be > 0"):
        dpo_train(DPOTrainConfig(pairs=PAIRS, settings=DPOSettings(beta=0.0), **base))
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "trl" else find_spec(name, *a)
    )
    with pytest.raises(MissingDependencyError, match="pip install 'trl"):
        dpo_train(DPOTrainConfig(pairs=PAIRS, **base))
    with pytest.raises(MissingDependencyError, match="pip install 'trl"):
        SelfTrainConfig(improve=ImproveConfig(preference="dpo")).validate()


# --------------------------------------------------------------------------- self-training


def test_preference_settings_are_checked_and_older_run_folders_still_resume():
    with pytest.raises(UserError, match="improve.preference must be one of dpo"):
        SelfTrainConfig(improve=ImproveConfig(preference="ppo")).validate()
    with pytest.raises(UserError, match="use filter answer or when"):
        SelfTrainConfig(improve=ImproveConfig(preference="dpo", filter="loss")).validate()
    said = r"improve.dpo: unknown field\(s\) \['betta'\] \(did you mean 'beta'\?\)"
    with pytest.raises(UserError, match=said):
        SelfTrainConfig.from_dict({"improve": {"preference": "dpo", "dpo": {"betta": 0.2}}})
    on = SelfTrainConfig.from_dict(
        {"improve": {"preference": "dpo", "dpo": {"beta": 0.2}}}
    ).validate()
    assert on.improve.dpo.beta == 0.2 and on.improve.dpo.max_steps == DPOSettings().max_steps
    # a run folder recorded before these settings existed
    old = {
        k: v
        for k, v in SelfTrainConfig().validate().fingerprint().items()
        if k not in ("preference", "dpo")
    }
    assert SelfTrainConfig().validate().changed_since(old) == []
    assert "preference" in on.changed_since(old)
    # DPO's settings matter only with DPO on
    off = SelfTrainConfig.from_dict({"improve": {"dpo": {"beta": 0.5}}}).validate()
    assert off.changed_since(old) == []
    assert on.changed_since(on.fingerprint()) == []
    other = SelfTrainConfig.from_dict({"improve": {"preference": "dpo", "dpo": {"beta": 0.3}}})
    assert other.validate().changed_since(on.fingerprint()) == ["dpo"]
    # the CLI sets them
    from toolformer.cli.selftrain_cmd import build_config

    cli = build_config({"preference": "dpo", "dpo_option": ("beta=0.2", "max_steps=3")})
    assert cli.improve.preference == "dpo"
    assert (cli.improve.dpo.beta, cli.improve.dpo.max_steps) == (0.2, 3)
    with pytest.raises(UserError, match="--dpo-option sets DPO, which runs only with --preference"):
        build_config({"dpo_option": ("beta=0.2",)})  # not silently ignored


class RightAndWrongGenerator(ScriptedGenerator):
    """Grow's seam: of the two samples of a prompt, the first adds the question's first two
    numbers and the second multiplies them, so each problem gets a right and a wrong sample
    (the wrong operation), every call run by the real executor."""

    def generate(self, prompts):
        outs = []
        for i, full in enumerate(prompts):
            p = "Q:" + full.rsplit("Q:", 1)[-1]
            a, b = re.findall(r"\d+", p)[:2]
            call = APICall("Calculator", f"{a}{'+*'[i % 2]}{b}")
            res = self.executor.run_many([call], [None])[0]
            text = " " + format_call(call.with_result(res.output))
            rec = CallRecord("Calculator", call.args, res.output, res.error, 0.0, 1, len(text))
            outs.append(GenerationOutput(p, text + f" {res.output}.", [rec], 10, "stop"))
        return outs


def test_a_run_with_dpo_writes_pairs_and_a_resumable_dpo_stage(tmp_path, tiny_dir, files):  # noqa: F811
    corpus, evals = files
    out = tmp_path / "run"
    cfg = _config(
        tiny_dir,
        corpus,
        evals,
        out,
        max_rounds=1,
        round0_docs=0,
        grow={"corpus_size": 4},
        improve={"preference": "dpo", "dpo": {"max_steps": 2, "per_device_train_batch_size": 2}},
    )
    stages = []

    def stop_at_dpo(event, info):
        if event == "stage":
            stages.append((info["round"], info["stage"]))
            if info["stage"] == "dpo_0":
                raise Interrupt(info)

    with pytest.raises(Interrupt):
        selftrain(cfg, hook=stop_at_dpo, generator_factory=RightAndWrongGenerator)
    assert stages[-3:] == [(1, "improve_0"), (1, "finetune_0"), (1, "dpo_0")]
    rd = out / "round_1"
    pairs = [json.loads(line) for line in (rd / "pairs_0.jsonl").read_text().splitlines()]
    grown = [json.loads(line) for line in (rd / "grow.jsonl").read_text().splitlines()]
    gold = {g["doc_id"]: g["gold"] for g in grown}
    assert pairs and all(set(p) == {"prompt", "chosen", "rejected", "doc_id"} for p in pairs)
    for p in pairs:  # the right answer chosen, the wrong operation rejected
        assert float(re.findall(r"-> (\d+)", p["chosen"])[0]) == gold[p["doc_id"]]
        assert float(re.findall(r"-> (\d+)", p["rejected"])[0]) != gold[p["doc_id"]]
    state = json.loads((rd / "state.json").read_text())
    assert state["stages"]["improve_0"]["pairs"] == len(pairs)
    assert "dpo_0" not in state["stages"]

    stages.clear()
    result = selftrain(cfg, generator_factory=RightAndWrongGenerator)
    state = json.loads((rd / "state.json").read_text())
    dpo = state["stages"]["dpo_0"]
    assert dpo["pairs"] == len(pairs) and dpo["global_step"] == 2
    assert dpo["from_adapter"] == state["stages"]["finetune_0"]["adapter"]
    assert (rd / "dpo_0" / ADAPTER_DIR / "adapter_model.safetensors").is_file()
    manifest = json.loads((rd / "dpo_0" / ADAPTER_DIR / "toolformer.json").read_text())
    assert manifest["preference"] == "dpo" and manifest["base_model"] == tiny_dir
    # the round's model is the DPO adapter: scored, reported, the best when it is best
    assert state["stages"]["eval"]["model"] == "round_1/dpo_0"
    assert result.rounds[-1]["adapter"].endswith("round_1/dpo_0/adapter")
