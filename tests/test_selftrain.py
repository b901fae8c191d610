"""Self-training: the loop on a tiny random model and a small corpus (every stage, resume after
an interruption at each stage), each Improve filter on hand-made cases, the contamination guard,
and the bad inputs (one line each, nothing lost)."""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from conftest import make_tiny_model

from toolformer.data_aug.types import AnnotationResult, KeptCall
from toolformer.errors import UserError
from toolformer.finetune import FinetuneConfig
from toolformer.generation import CallRecord, GenerationOutput
from toolformer.models import weight_files
from toolformer.selftrain import (
    FILTERS,
    Candidate,
    CandidateFilter,
    FilterContext,
    Schedule,
    SelfTrainConfig,
    build_filter,
    register_filter,
    selftrain,
)
from toolformer.selftrain.config import GrowConfig, ImproveConfig
from toolformer.selftrain.contamination import ContaminationGuard, jaccard, word_set
from toolformer.selftrain.corpus import load_corpus
from toolformer.selftrain.gsm8k import strip_marks
from toolformer.selftrain.loop import loadable
from toolformer.syntax import APICall, format_call

PROBLEMS = [
    (
        "Tom has 3 apples and buys 2 more. How many apples does Tom have?",
        "Tom has 3+2 = <<3+2=5>>5 apples.\n#### 5",
    ),
    (
        "A box holds 4 rows of 6 eggs. How many eggs are in the box?",
        "There are 4*6 = <<4*6=24>>24 eggs.\n#### 24",
    ),
    (
        "Mia reads 10 pages a day for 7 days. How many pages does she read?",
        "She reads 10*7 = <<10*7=70>>70 pages.\n#### 70",
    ),
    (
        "A shop sold 45 pens on Monday and 15 on Tuesday. How many pens were sold?",
        "It sold 45+15 = <<45+15=60>>60 pens.\n#### 60",
    ),
    (
        "Sam had 50 dollars and spent 18. How many dollars are left?",
        "He has 50-18 = <<50-18=32>>32 dollars left.\n#### 32",
    ),
    (
        "The zoo keeper feeds 8 lions 9 kilograms of meat each. How much meat is that?",
        "That is 8*9 = <<8*9=72>>72 kilograms.\n#### 72",
    ),
]
# an evaluation item that nearly duplicates the last training problem
EVAL_ITEMS = [
    {
        "question": (
            "The zoo keeper feeds 8 lions 9 kilograms of meat each. How much meat is that in all?"
        ),
        "answer": 72,
    },
    {"question": "What is the capital of France?", "answer": "Paris"},
]


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture()
def files(tmp_path):
    corpus = _write_jsonl(
        tmp_path / "gsm8k_train.jsonl", [{"question": q, "answer": a} for q, a in PROBLEMS]
    )
    evals = _write_jsonl(tmp_path / "evalset.jsonl", EVAL_ITEMS)
    return corpus, evals


class ScriptedAnnotator:
    """Round 0's annotator seam (``annotator_factory``): inserts ``[Calculator(a+b) -> c]`` right
    before the answer ``c`` of each "Q: ...\nA: c" document, as the real one would keep it."""

    def __init__(self, config):
        self.config = config

    def annotate_batch(self, docs):
        out = []
        for d in docs:
            m = re.search(r"\nA: (\d+)$", d.text)
            if m is None:
                out.append(AnnotationResult(d.id, d.text, d.text))
                continue
            a, b = re.findall(r"\d+", d.text)[:2]
            call = APICall("Calculator", f"{a}+{b}", m.group(1))
            offset = m.start(1)
            text = d.text[:offset] + format_call(call) + " " + d.text[offset:]
            kept = KeptCall("Calculator", call.args, call.result, offset, 5, 1.0, 2.0, 2.0, 2.5)
            out.append(AnnotationResult(d.id, text, d.text, [kept], Counter(calls_kept=1)))
        return out


class ScriptedGenerator:
    """Grow's generator seam: answers each prompt with a Calculator call on the question's first
    two numbers (right for the "+" and "*" problems, wrong for the others), the call run by the
    real executor; counts the prompts it saw."""

    prompts_seen = 0
    last_prompts: list = []
    all_prompts: list = []

    def __init__(self, model, tokenizer, executor, config):
        self.executor, self.config = executor, config

    def generate(self, prompts):
        type(self).prompts_seen += len(prompts)
        type(self).last_prompts = list(prompts)
        type(self).all_prompts.extend(prompts)
        outs = []
        for full in prompts:
            p = "Q:" + full.rsplit("Q:", 1)[-1]  # the problem after the demonstrations
            a, b = re.findall(r"\d+", p)[:2]
            op = "*" if any(w in p for w in ("rows", "day", "each")) else "+"
            call = APICall("Calculator", f"{a}{op}{b}")
            res = self.executor.run_many([call], [None])[0]
            text = " " + format_call(call.with_result(res.output))
            rec = CallRecord("Calculator", call.args, res.output, res.error, 0.0, 1, len(text))
            text += f" {res.output}."
            outs.append(GenerationOutput(p, text, [rec], 10, "stop"))
        return outs


def _merged(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on it, nested dicts merged key by key."""
    out = dict(base)
    for key, value in over.items():
        out[key] = (
            _merged(out[key], value)
            if isinstance(value, dict) and isinstance(out.get(key), dict)
            else value
        )
    return out


def _config(tiny_dir, corpus, evals, out, **kw) -> SelfTrainConfig:
    """A small run's config; ``kw`` over it, the groups (``grow={"generation": {...}}``) merged."""
    base = dict(
        output=str(out),
        model=tiny_dir,
        round0_docs=2,
        max_rounds=2,
        patience=5,
        progress=False,
        threads=1,
        annotator_factory=f"{Path(__file__).resolve()}:ScriptedAnnotator",
        data=dict(corpus=str(corpus), eval_sets=[f"jsonl:{evals}"]),
        grow=dict(
            corpus_size=3,
            samples_per_prompt=2,
            demonstrations="calculator",
            generation=dict(max_new_tokens=8, batch_size=2),
        ),
        improve=dict(filter="answer"),
        dev=dict(size=2, max_new_tokens=4, generation=dict(batch_size=4)),
        finetune=FinetuneConfig(
            lora=True,
            lora_r=4,
            lora_alpha=8,
            max_length=64,
            effective_batch_size=2,
            eval_fraction=0.0,
            progress=False,
            training_args=dict(
                learning_rate=1e-3,
                per_device_train_batch_size=2,
                max_steps=2,
                eval_steps=1,
                save_steps=1,
                logging_steps=1,
            ),
        ),
    )
    return SelfTrainConfig.from_dict(_merged(base, kw))


STAGES = [
    (0, "corpus"),
    (0, "baseline"),
    (0, "augment"),
    (0, "finetune_0"),
    (0, "eval"),
    (1, "grow"),
    (1, "improve_0"),
    (1, "finetune_0"),
    (1, "eval"),
    (2, "grow"),
    (2, "improve_0"),
    (2, "finetune_0"),
    (2, "eval"),
]


class Interrupt(Exception):
    pass


def test_loop_runs_every_stage_and_resumes_after_an_interruption_at_each(tmp_path, tiny_dir, files):
    corpus, evals = files
    out = tmp_path / "run"
    cfg = _config(tiny_dir, corpus, evals, out)
    ran = []

    def run_until(target):
        """One invocation that stops right before ``target`` (round, stage)."""
        seen = []

        def hook(event, info):
            if event == "stage":
                key = (info["round"], info["stage"])
                seen.append(key)
                if key == target:
                    raise Interrupt(key)

        with pytest.raises(Interrupt):
            selftrain(cfg, hook=hook, generator_factory=ScriptedGenerator)
        return seen

    for target in STAGES:
        ScriptedGenerator.prompts_seen = 0
        seen = run_until(target)
        # the rerun starts at the first unfinished stage: the one interrupted before
        assert seen[0] == (ran[-1] if ran else STAGES[0]), (target, seen)
        if ran and ran[-1] == (2, "grow"):  # resumed inside Grow: only the rest is generated
            assert (
                ScriptedGenerator.prompts_seen
                == (cfg.grow.corpus_size - 2) * cfg.grow.samples_per_prompt
            )
        ran.append(target)
        if target == (2, "grow"):
            # and an interruption inside Grow, after its first chunk of 2 prompts
            def grow_hook(event, info):
                if event == "grow_chunk" and info["done"] == 2:
                    raise Interrupt("mid-grow")

            ScriptedGenerator.prompts_seen = 0
            with pytest.raises(Interrupt):
                selftrain(cfg, hook=grow_hook, generator_factory=ScriptedGenerator)
            assert ScriptedGenerator.prompts_seen == 2 * cfg.grow.samples_per_prompt
    result = selftrain(cfg, generator_factory=ScriptedGenerator)
    grown = [json.loads(line) for line in (out / "round_2" / "grow.jsonl").read_text().splitlines()]
    assert len(grown) == cfg.grow.corpus_size * cfg.grow.samples_per_prompt
    assert len({(g["doc_id"], g["sample"]) for g in grown}) == len(grown)
    # round 1's Grow prompts start with the shipped demonstrations, round 2's (the last) do not
    # (demonstrations_rounds=1); the training text never holds them
    assert any(p.startswith("Q: A baker made 24 muffins") for p in ScriptedGenerator.all_prompts)
    assert not any("muffins" in p for p in ScriptedGenerator.last_prompts)
    assert all(g["prompt"].startswith("Q: ") and "muffins" not in g["prompt"] for g in grown)

    # every stage left its files and its stats
    for k, stage in STAGES:
        state = json.loads((out / f"round_{k}" / "state.json").read_text())
        assert stage in state["stages"], (k, stage)
    assert (out / "round_0" / "augment" / "data.jsonl").exists()
    assert (out / "round_0" / "model_0" / "adapter" / "adapter_config.json").exists()
    imp = json.loads((out / "round_1" / "state.json").read_text())["stages"]["improve_0"]
    # the "+"/"*" problems are right, "-" is wrong: the answer filter keeps only right ones
    kept = [
        json.loads(line) for line in (out / "round_1" / "kept_0.jsonl").read_text().splitlines()
    ]
    assert kept and all("[Calculator(" in r["text"] for r in kept)
    assert imp["texts_kept"] == len(kept) and imp["threshold"] == 0.5
    for r in kept:
        assert "-" not in r["calls"][0]["args"]
    # the contamination guard dropped the near-duplicate problem and says so
    corpus_stats = json.loads((out / "round_0" / "state.json").read_text())["stages"]["corpus"]
    assert corpus_stats["contamination"]["near_duplicates"] == {f"jsonl:{evals}": 1}
    train_ids = [
        json.loads(line)["question"]
        for line in (out / "round_0" / "corpus" / "train.jsonl").read_text().splitlines()
    ]
    dev = [
        json.loads(line)["question"]
        for line in (out / "round_0" / "corpus" / "dev.jsonl").read_text().splitlines()
    ]
    assert PROBLEMS[5][0] not in train_ids + dev and not set(train_ids) & set(dev)
    # fine-tuning rehearses as many plain Wikipedia paragraphs as it has kept texts (plain_ratio 1)
    plain = {
        json.loads(line)["text"]
        for line in (out / "round_0" / "corpus" / "plain.jsonl").read_text().splitlines()
    }
    trained = [
        json.loads(line)["text"]
        for line in (out / "round_1" / "train_0.jsonl").read_text().splitlines()
    ]
    ft = json.loads((out / "round_1" / "state.json").read_text())["stages"]["finetune_0"]
    assert plain and ft["plain_texts"] == ft["texts"] == len(trained) and not set(trained) & plain
    manifest = json.loads((out / "round_1" / "model_0" / "toolformer.json").read_text())
    assert manifest["metrics"]["plain_documents"] == ft["texts"]
    assert (
        manifest["config"]["mix_plain"].endswith("plain.jsonl")
        and manifest["config"]["mix_ratio"] == 0.5
    )
    # the report: a row per round (+ the base model), the best adapter names its base
    assert [r["round"] for r in result.rounds] == ["base", 0, 1, 2]
    report = json.loads((out / "report.json").read_text())
    assert report["stopped"].startswith("max_rounds")
    assert "Contamination guard" in (out / "report.md").read_text()
    for row in result.rounds:
        lo, hi = row["ci95"]
        assert 0.0 <= lo <= row["dev_score"] <= hi <= 1.0
    if result.best_adapter:
        manifest = json.loads((Path(result.best_adapter) / "toolformer.json").read_text())
        assert manifest["base_model"] == tiny_dir
    # keep_models="best": merged weights only for the best and the latest round (the next Grow's
    # policy); every other round loads from its adapter, and the report points there
    latest = (out / "round_2" / "model_0").resolve()
    keep = {latest, Path(result.best_model).resolve()}
    for folder in sorted(out.glob("round_*/model_0")):
        assert (folder / "adapter" / "adapter_config.json").exists()
        assert bool(weight_files(folder)) == (folder.resolve() in keep), folder
        assert Path(loadable(str(folder))) == (
            folder if folder.resolve() in keep else folder / "adapter"
        )
    pruned = [f for f in sorted(out.glob("round_*/model_0")) if f.resolve() not in keep]
    assert pruned  # at least one of the three fine-tuned models, and it still loads
    from toolformer.models import load_model

    model, _ = load_model(loadable(str(pruned[0])))
    assert model.config.vocab_size == len(load_model(tiny_dir)[1])
    # the pruned folder itself loads too (from its adapter), as `toolformer eval --model` gives it
    again, _ = load_model(str(pruned[0]))
    assert all(
        torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values())
    )
    for row in result.rounds[1:]:
        assert row["model"] == loadable(row["model"])
    # rerunning a finished run does nothing again
    calls = []
    selftrain(cfg, hook=lambda e, i: calls.append(i), generator_factory=ScriptedGenerator)
    assert calls == []


def test_round_folder_from_another_config_is_one_line_and_nothing_is_lost(
    tmp_path, tiny_dir, files
):
    corpus, evals = files
    out = tmp_path / "run"
    cfg = _config(tiny_dir, corpus, evals, out, max_rounds=0, round0_docs=0)
    selftrain(cfg)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    with pytest.raises(UserError) as exc:
        selftrain(
            _config(
                tiny_dir,
                corpus,
                evals,
                out,
                max_rounds=0,
                round0_docs=0,
                grow={"generation": {"temperature": 0.3}},
            )
        )
    msg = str(exc.value)
    assert "\n" not in msg and "temperature" in msg and "another config" in msg
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    # a round folder alone (run.json gone) is checked as well
    (out / "run.json").unlink()
    with pytest.raises(UserError, match="round_0 was made with another config"):
        selftrain(
            _config(
                tiny_dir,
                corpus,
                evals,
                out,
                max_rounds=0,
                round0_docs=0,
                grow={"generation": {"temperature": 0.3}},
            )
        )
    # raising max_rounds continues the run, and a round's size may shrink: not config changes
    fp = SelfTrainConfig().fingerprint()
    assert "max_rounds" not in fp and "corpus_sizes" not in fp and "temperature" in fp


def test_bad_inputs_are_one_line_errors(tmp_path, tiny_dir, files):
    corpus, evals = files
    with pytest.raises(UserError) as exc:
        SelfTrainConfig(improve=ImproveConfig(filter="lose")).validate()
    assert "did you mean 'loss'" in str(exc.value).lower() and "\n" not in str(exc.value)
    # the answer filter on a corpus without gold answers, before anything runs
    texts = _write_jsonl(
        tmp_path / "wiki.jsonl",
        [{"text": "Paris is the capital of France. It has 2 million people."}],
    )
    dev = _write_jsonl(tmp_path / "dev.jsonl", [{"question": "What is 2+2?", "answer": 4}])
    out = tmp_path / "nogold"
    with pytest.raises(UserError) as exc:
        selftrain(_config(tiny_dir, texts, evals, out, dev={"data": str(dev)}))
    assert "needs gold answers" in str(exc.value) and "\n" not in str(exc.value)
    assert not (out / "round_0" / "corpus").exists()
    with pytest.raises(UserError, match="unknown GenerationConfig field"):
        SelfTrainConfig.from_dict({"grow": {"generation": {"temprature": 0.5}}})
    with pytest.raises(UserError, match="keep_models must be one of best, all"):
        SelfTrainConfig(keep_models="none").validate()
    with pytest.raises(UserError, match="placement"):
        build_filter("loss", options={"placement": "middle"})
    with pytest.raises(UserError, match="filter 'answer' has no option 'nope'"):
        build_filter("answer", options={"nope": 1})


def test_filter_options_are_checked_before_the_run_starts(tmp_path, tiny_dir, files):
    """A bad filter option used to pass until round 1's Improve, after run.json had recorded it
    (so the corrected command was refused on the same folder)."""
    corpus, evals = files
    bad = [
        ("loss", {"placement": "sideways"}, "placement"),
        ("loss", {"horizon": 0}, "horizon"),
        ("loss", {"placment": "prefix"}, "Did you mean 'placement'"),
        ("answer", {"metric": "bleu-ish"}, "metric"),
        ("reward", {}, "needs a reward model"),
    ]
    for name, opts, match in bad:
        with pytest.raises(UserError, match=match) as exc:
            SelfTrainConfig(improve=ImproveConfig(filter=name, filter_options=opts)).validate()
        assert "\n" not in str(exc.value)
    out = tmp_path / "run"
    with pytest.raises(UserError, match="placement"):
        selftrain(
            _config(
                tiny_dir,
                corpus,
                evals,
                out,
                improve={"filter": "loss", "filter_options": {"placement": "sideways"}},
            )
        )
    assert not (out / "run.json").exists()
    SelfTrainConfig(
        improve=ImproveConfig(filter="loss", filter_options={"placement": "prefix", "horizon": 3})
    ).validate()


def test_cli_runs_and_reports_one_line_errors(tmp_path, tiny_dir, files, capsys):
    from toolformer.cli.main import main

    corpus, evals = files
    with pytest.raises(SystemExit) as exc:
        main(["selftrain", "--output", str(tmp_path / "r"), "--filter", "bogus"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: unknown filter 'bogus'") and "\n" not in err
    from toolformer.cli.selftrain_cmd import build_config

    cfg = build_config(
        {
            "output": "x",
            "filter": "loss",
            "filter_option": ("placement=prefix",),
            "thresholds": "0,0.5",
            "finetune_option": ("max_steps=7",),
            "tools": "calculator",
        }
    )
    assert cfg.improve.filter_options == {"placement": "prefix"} and cfg.improve.thresholds == [
        0.0,
        0.5,
    ]
    assert cfg.finetune.arg("max_steps") == 7 and cfg.finetune.lora and cfg.tools == ["Calculator"]
    cfg = build_config(
        {
            "corpus_sizes": "240,400",
            "grow_option": ("top_k=5",),
            "eval_option": ("call_top_k=3",),
            "answer_only": False,
        }
    )
    assert cfg.grow.corpus_sizes == [240, 400] and cfg.grow.generation.top_k == 5
    assert cfg.dev.generation.call_top_k == 3 and cfg.grow.generation.call_top_k == 10
    assert cfg.grow.answer_only is False
    # the same in the flat keys run folders record
    assert cfg.fingerprint()["grow_options"] == {"top_k": 5}
    assert cfg.fingerprint()["eval_options"] == {"call_top_k": 3}
    with pytest.raises(UserError, match="--grow-option: unknown GenerationConfig field"):
        build_config({"grow_option": ("temprature=0.5",)})
    assert cfg.tool_options == {"Calculator": {"numbers_from_text": True}}  # the default
    cfg = build_config(
        {"tool_option": ("Calculator.numbers_from_text=false", "Calculator.decimals=3")}
    )
    assert cfg.tool_options == {"Calculator": {"numbers_from_text": False, "decimals": 3}}
    with pytest.raises(UserError, match="numbers_from_text"):
        build_config({"tool_option": ("Calculator.numbers_from_txt=1",)})


# --------------------------------------------------------------------------- filters


class CopyLM:
    """A language model that predicts "a token seen before in the sequence" (an induction head
    in its simplest form): a call whose result is the next token makes that token likely."""

    def __init__(self, vocab: int, boost: float = 8.0):
        import torch

        self.vocab, self.boost = vocab, boost
        self.device = torch.device("cpu")

    def __call__(self, input_ids, attention_mask=None):
        import torch.nn.functional as F

        seen = F.one_hot(input_ids, self.vocab).cummax(dim=1).values.float()

        class Out:
            logits = seen * self.boost

        return Out()


def _cand(prompt, text, call, gold=None, result="ok", error=None):
    start = text.index("[")
    end = text.index("]", start) + 1
    rec = {
        "tool": "Calculator",
        "args": call,
        "result": result,
        "error": error,
        "start": start,
        "end": end,
    }
    return Candidate("d", 0, prompt, text, [rec], gold)


def test_loss_filter_keeps_a_call_whose_result_predicts_the_text(smol_tokenizer):
    model = CopyLM(len(smol_tokenizer))
    ctx = FilterContext(model=model, tokenizer=smol_tokenizer)
    useful = _cand(
        "Q: What is 123 times 7?\nA:",
        " [Calculator(123*7) -> 861] 861 apples.",
        "123*7",
        result="861",
    )
    useless = _cand(
        "Q: What is 123 times 7?\nA:", " [Calculator(2+2) -> 4] 861 apples.", "2+2", result="4"
    )
    for placement in ("inline", "prefix"):
        flt = build_filter("loss", ctx, {"placement": placement})
        s_keep, s_drop = flt.scores([useful, useless])
        thr = flt.default_schedule[0]
        assert s_keep >= thr > s_drop, (placement, s_keep, s_drop)
    # no call that ran: nothing to judge
    failed = _cand(
        "Q: x\nA:", " [Calculator(1/0) -> ] 5", "1/0", result=None, error="division by zero"
    )
    assert build_filter("loss", ctx).scores([failed]) == [None]


def test_answer_filter_keeps_right_answers_whose_calls_ran():
    flt = build_filter("answer")
    right = _cand("Q: 3+2?\nA:", " [Calculator(3+2) -> 5] 5 apples.", "3+2", gold=5.0, result="5")
    wrong = _cand("Q: 3+2?\nA:", " [Calculator(3*2) -> 6] 6 apples.", "3*2", gold=5.0, result="6")
    failed = _cand(
        "Q: 3+2?\nA:", " [Calculator(3+) -> ] 5 apples.", "3+", gold=5.0, result=None, error="bad"
    )
    no_gold = _cand("Q: 3+2?\nA:", " [Calculator(3+2) -> 5] 5.", "3+2", gold=None, result="5")
    no_call = Candidate("d", 0, "Q: 3+2?\nA:", " 5 apples.", [], 5.0)
    assert flt.scores([right, wrong, failed, no_gold, no_call]) == [1.0, 0.0, 0.0, None, 0.0]
    # the result counts as the answer (the paper's metric): a call that ends the output answers
    assert flt.scores(
        [_cand("Q: 3+2?\nA:", " [Calculator(3+2) -> 5]", "3+2", gold=5.0, result="5")]
    ) == [1.0]
    # right answers for wrong reasons: a number the question does not hold, or no computation
    made_up = _cand("Q: 3+2?\nA:", " [Calculator(4+1) -> 5] 5 apples.", "4+1", gold=5.0, result="5")
    copied = _cand("Q: 3+2 is 5?\nA:", " [Calculator(5) -> 5] 5 apples.", "5", gold=5.0, result="5")
    chained = Candidate(
        "d",
        0,
        "Q: 2 bags of 3 and 4 more?\nA:",
        " [Calculator(2*3) -> 6] [Calculator(6+4) -> 10] 10",
        [],
        6.0,
    )
    chained.calls = [
        {"tool": "Calculator", "args": "2*3", "result": "6", "error": None, "start": 1, "end": 23},
        {
            "tool": "Calculator",
            "args": "6+4",
            "result": "10",
            "error": None,
            "start": 24,
            "end": 47,
        },
    ]
    # (the second call's 6 is the first call's result: grounded; the first number answers)
    assert flt.scores([made_up, copied, chained]) == [0.0, 0.0, 1.0]
    assert build_filter("answer", options={"grounded": False}).scores([made_up]) == [1.0]
    # an output cut by max_new_tokens inside the result holds no finished call: it must not be
    # kept (round 1 kept " [Calculator(285 - 49 - 59)-> 17" for 177 before)
    text = " [Calculator(285 - 49 - 59)-> 17"
    cut = Candidate(
        "d",
        0,
        "Q: 285 sweets, 49 red, 59 green: how many neither?\nA:",
        text,
        [
            {
                "tool": "Calculator",
                "args": "285 - 49 - 59",
                "result": "177",
                "error": None,
                "start": 1,
                "end": len(text),
            }
        ],
        177.0,
        "length",
    )
    assert cut.ok_calls == [] and flt.scores([cut]) == [0.0]
    # a division's operands are two numbers, not the fraction 36/3 (every division was dropped)
    q = "Q: Hiro read 36 pages in 3 days, the same number each day. How many pages a day?\nA:"
    div = _cand(q, " [Calculator(36 / 3) -> 12] 12", "36 / 3", gold=12.0, result="12")
    big = _cand(
        "Q: 1,200 seats in 4 equal rows?\nA:",
        " [Calculator(1,200/4) -> 300] 300",
        "1,200/4",
        gold=300.0,
        result="300",
    )
    invented = _cand(q, " [Calculator(36 / 2 - 6) -> 12] 12", "36 / 2 - 6", gold=12.0, result="12")
    assert flt.scores([div, big, invented]) == [1.0, 1.0, 0.0]


def test_reward_filter_scores_the_margin_of_a_classifier(tmp_path, smol_tokenizer):
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        num_labels=2,
        pad_token_id=smol_tokenizer.pad_token_id,
    )
    clf_dir = tmp_path / "clf"
    LlamaForSequenceClassification(cfg).save_pretrained(clf_dir)
    smol_tokenizer.save_pretrained(clf_dir)
    flt = build_filter("reward", options={"model": str(clf_dir)})
    a = _cand("Q: 3+2?\nA:", " [Calculator(3+2) -> 5] 5 apples.", "3+2", result="5")
    b = _cand("Q: 9*9?\nA:", " It is [Calculator(9*9) -> 81] 81.", "9*9", result="81")
    sa, sb = flt.scores([a, b])
    # the margin is r(with the call) - r(without it), r = the last label's logit
    ra = flt.rewards([a.training_text(), a.prompt + a.without_calls()])
    assert sa == pytest.approx(ra[0] - ra[1])
    assert a.without_calls() == " 5 apples."
    # a threshold between the two margins keeps one and drops the other
    thr = (sa + sb) / 2
    assert sorted([sa >= thr, sb >= thr]) == [False, True]
    # a causal LM is not a classifier: one line, before any scoring
    lm_dir = tmp_path / "lm"
    make_tiny_model(len(smol_tokenizer)).save_pretrained(lm_dir)
    smol_tokenizer.save_pretrained(lm_dir)
    with pytest.raises(UserError) as exc:
        build_filter("reward", options={"model": str(lm_dir)})
    assert "not a sequence-classification model" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(UserError, match="needs a reward model"):
        build_filter("reward")


def test_a_user_filter_plugs_in_without_touching_the_loop():
    @register_filter("test_length")
    class LengthFilter(CandidateFilter):
        default_schedule = (10.0,)

        def scores(self, candidates):
            return [float(len(c.text)) for c in candidates]

    try:
        cfg = SelfTrainConfig(improve=ImproveConfig(filter="test_length")).validate()
        assert cfg.improve.schedule().at(0) == 10.0
        flt = build_filter("test_length")
        assert flt.scores([Candidate("d", 0, "p", "x" * 12)]) == [12.0]
    finally:
        FILTERS.unregister("test_length")


def test_threshold_schedules_rise_then_hold():
    s = Schedule.of([0.0, 0.25, 0.5])
    assert [s.at(i) for i in range(5)] == [0.0, 0.25, 0.5, 0.5, 0.5]
    assert Schedule.linear(0.0, 1.0, 3).values == (0.0, 0.5, 1.0)
    assert Schedule.of(0.7).at(3) == 0.7
    assert SelfTrainConfig(
        improve=ImproveConfig(filter="loss")
    ).validate().improve.schedule().values == (0.0, 0.25, 0.5)
    assert (
        SelfTrainConfig(improve=ImproveConfig(filter="loss", thresholds=[1.0]))
        .validate()
        .improve.schedule()
        .at(2)
        == 1.0
    )
    with pytest.raises(UserError):
        Schedule.of([])


# --------------------------------------------------------------------------- corpus, guard


def test_corpus_strips_the_calculator_marks(tmp_path, files):
    corpus, _ = files
    assert strip_marks("48/2 = <<48/2=24>>24 clips") == "48/2 = 24 clips"
    docs = load_corpus(
        str(corpus), "Q: {question}\nA: {solution} The answer is {answer}.", "Q: {question}\nA:"
    )
    assert len(docs) == 6 and docs[1].answer == 24.0 and docs[1].steps == 1
    assert docs[1].text == (
        "Q: A box holds 4 rows of 6 eggs. How many eggs are in the box?\n"
        "A: There are 4*6 = 24 eggs. The answer is 24."
    )
    assert "<<" not in "".join(d.text for d in docs)
    assert docs[1].prompt.endswith("\nA:")


def test_dev_split_holds_out_problems_with_at_most_the_given_steps():
    from toolformer.selftrain.corpus import CorpusDoc, split_corpus

    docs = [
        CorpusDoc(f"d{i}", f"t{i}", f"p{i}", f"q{i}", float(i), "gsm8k", 1 + i % 3)
        for i in range(30)
    ]
    train, dev = split_corpus(docs, 5, seed=0, dev_max_steps=1)
    assert len(dev) == 5 and all(d.steps == 1 for d in dev)
    assert len(train) == 25 and not {d.id for d in train} & {d.id for d in dev}
    train, dev = split_corpus(docs, 5, seed=0)
    assert len({d.steps for d in dev} | {d.steps for d in train}) == 3
    with pytest.raises(UserError, match="at most 1 steps"):
        split_corpus(docs, 11, seed=0, dev_max_steps=1)


def test_ngram_guard_drops_plain_text_that_shares_a_13_gram():
    from toolformer.selftrain.contamination import NgramGuard

    ref = (
        "Robert Boulter is an English film , television and theatre actor . He "
        "had a guest @-@ starring role on the television series The Bill in 2000 ."
    )
    guard = NgramGuard([ref], 13)
    copied = (
        "In other news, he had a guest starring role on "
        "the television series The Bill in 2000, it said."
    )
    # 12 words in a row at most
    near = "He had a guest starring role on a television series called The Bill."
    assert guard.overlaps(copied)
    assert not guard.overlaps(near)
    assert not guard.overlaps("Paris is the capital of France.")


def test_contamination_guard_drops_near_duplicates_only():
    evals = {
        "svamp": [
            "Jack has 5 marbles and wins 7 more. How many marbles does Jack have now?",
            "A train travels 60 miles in 2 hours. What is its speed?",
        ],
        "other": ["Who wrote Hamlet?"],
    }
    guard = ContaminationGuard(evals, threshold=0.5)
    texts = [
        "Jack has 5 marbles and wins 7 more. How many marbles does he have now?",  # near-dup
        "Lisa bakes 12 cakes and sells 4. How many cakes are left?",  # unrelated
        "A train travels 60 miles in 2 hours.",
    ]  # shares words, below the threshold?
    keep, report = guard.check(texts)
    sim = jaccard(word_set(texts[2]), word_set(evals["svamp"][1]))
    assert keep == [False, True, sim < 0.5]
    assert report.dropped["svamp"] == 1 + (sim >= 0.5) and report.dropped["other"] == 0
    assert report.max_similarity["svamp"] >= 0.8
    assert "svamp" in report.line() and report.to_dict()["near_duplicates"]["svamp"] >= 1


@pytest.mark.slow
def test_gsm8k_train_overlap_with_the_eval_sets(shared_data):
    """The overlap that PROVENANCE.txt states (Jaccard > 0.5: SVAMP 0.1%, MAWPS 0.8%, GSM8K test
    0.4%), measured by the guard on the real files."""
    from toolformer.selftrain.contamination import eval_questions

    docs = load_corpus(str(shared_data / "gsm8k" / "train.jsonl"), "{question}", "{question}")
    guard = ContaminationGuard(eval_questions(["svamp", "mawps", "gsm8k"], str(shared_data)), 0.5)
    keep, report = guard.check([d.question for d in docs])
    share = report.to_dict()["near_duplicate_share"]
    assert report.checked == 7473
    assert share["svamp"] < 0.01 and share["mawps"] < 0.02 and share["gsm8k"] < 0.01


def test_finetune_init_adapter_continues_the_given_adapter(tmp_path, tiny_dir):
    """A second fine-tuning with ``init_adapter`` and learning rate 0 saves the first adapter's
    weights unchanged; without it, a fresh adapter (zero B matrices) comes out."""
    from safetensors.torch import load_file

    from toolformer.finetune import finetune

    data = _write_jsonl(
        tmp_path / "d.jsonl", [{"text": "Q: 3+2?\nA: [Calculator(3+2) -> 5] 5."}] * 4
    )
    common = dict(
        data=str(data),
        model=tiny_dir,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        max_length=32,
        effective_batch_size=2,
        eval_fraction=0.0,
        progress=False,
    )
    args = dict(per_device_train_batch_size=2, max_steps=2, warmup_ratio=0.0, save_steps=0)
    first = finetune(
        FinetuneConfig(
            output_dir=str(tmp_path / "a"), **common, training_args={**args, "learning_rate": 5e-2}
        )
    )
    w1 = load_file(str(Path(first.output_dir) / "adapter" / "adapter_model.safetensors"))
    assert any("lora_B" in k and v.abs().sum() > 0 for k, v in w1.items())
    cont = finetune(
        FinetuneConfig(
            output_dir=str(tmp_path / "b"),
            training_args={**args, "learning_rate": 0.0},
            init_adapter=str(Path(first.output_dir) / "adapter"),
            **common,
        )
    )
    w2 = load_file(str(Path(cont.output_dir) / "adapter" / "adapter_model.safetensors"))
    assert w1.keys() == w2.keys() and all(torch_equal(w1[k], w2[k]) for k in w1)
    fresh = finetune(
        FinetuneConfig(
            output_dir=str(tmp_path / "c"), training_args={**args, "learning_rate": 0.0}, **common
        )
    )
    w3 = load_file(str(Path(fresh.output_dir) / "adapter" / "adapter_model.safetensors"))
    assert all(v.abs().sum() == 0 for k, v in w3.items() if "lora_B" in k)
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        finetune(
            FinetuneConfig(
                output_dir=str(tmp_path / "d"),
                init_adapter=str(tmp_path),
                training_args=args,
                **common,
            )
        )


def test_a_run_can_start_from_an_adapter(tmp_path, tiny_dir, files):
    """init_adapter: the baseline row scores the adapter, round 1 grows with it and fine-tunes
    on from it (a later run continues an earlier run's best adapter)."""
    from safetensors.torch import load_file

    from toolformer.finetune import finetune

    corpus, evals = files
    data = _write_jsonl(
        tmp_path / "d.jsonl", [{"text": "Q: 3+2?\nA: [Calculator(3+2) -> 5] 5."}] * 4
    )
    first = finetune(
        FinetuneConfig(
            output_dir=str(tmp_path / "a"),
            data=str(data),
            model=tiny_dir,
            lora=True,
            lora_r=4,
            lora_alpha=8,
            max_length=32,
            effective_batch_size=2,
            eval_fraction=0.0,
            progress=False,
            training_args=dict(
                per_device_train_batch_size=2, max_steps=2, learning_rate=5e-2, save_steps=0
            ),
        )
    )
    init = str(Path(first.output_dir) / "adapter")
    with pytest.raises(UserError, match="set SelfTrainConfig.round0_docs to 0"):
        _config(tiny_dir, corpus, evals, tmp_path / "x", init_adapter=init).validate()
    with pytest.raises(UserError, match="not a LoRA adapter folder"):
        _config(
            tiny_dir, corpus, evals, tmp_path / "x", init_adapter=str(tmp_path), round0_docs=0
        ).validate()
    with pytest.raises(UserError, match="was trained on"):
        _config(
            "smollm2-135m", corpus, evals, tmp_path / "x", init_adapter=init, round0_docs=0
        ).validate()
    out = tmp_path / "run"
    cfg = _config(
        tiny_dir,
        corpus,
        evals,
        out,
        init_adapter=init,
        round0_docs=0,
        max_rounds=1,
        finetune=replace(
            _config(tiny_dir, corpus, evals, out).finetune,
            training_args=dict(
                learning_rate=0.0,
                per_device_train_batch_size=2,
                max_steps=1,
                save_steps=0,
                warmup_ratio=0.0,
            ),
        ),
    )
    result = selftrain(cfg, generator_factory=ScriptedGenerator)
    state0 = json.loads((out / "round_0" / "state.json").read_text())["stages"]
    state1 = json.loads((out / "round_1" / "state.json").read_text())["stages"]
    assert state0["baseline"]["model"] == str(Path(init).resolve()) and "augment" not in state0
    assert state1["grow"]["policy"] == str(Path(init).resolve())
    # learning rate 0: round 1's adapter is the initial one, so it went on from it
    w0 = load_file(str(Path(init) / "adapter_model.safetensors"))
    # state.json records paths inside the run folder relative to it
    w1 = load_file(str(out / state1["finetune_0"]["adapter"] / "adapter_model.safetensors"))
    assert w0.keys() == w1.keys() and all(torch_equal(w0[k], w1[k]) for k in w0)
    assert result.rounds[0]["model"] == str(Path(init).resolve())
    assert "the base model" not in str(result) or result.best_round is not None


def test_a_run_that_failed_before_any_stage_takes_the_corrected_command(tmp_path, tiny_dir, files):
    """A bad corpus used to leave run.json behind, and the corrected command was refused."""
    corpus, evals = files
    bad = _write_jsonl(tmp_path / "noans.jsonl", [{"question": "What is 2+2?"}])
    out = tmp_path / "run"
    with pytest.raises(UserError):
        selftrain(_config(tiny_dir, bad, evals, out, max_rounds=0, round0_docs=0))
    result = selftrain(_config(tiny_dir, corpus, evals, out, max_rounds=0, round0_docs=0))
    assert result.rounds[0]["round"] == "base"
    # once a stage has finished, another config is still refused
    with pytest.raises(UserError, match="another config"):
        selftrain(
            _config(
                tiny_dir,
                corpus,
                evals,
                out,
                max_rounds=0,
                round0_docs=0,
                grow={"generation": {"temperature": 0.3}},
            )
        )


def torch_equal(a, b) -> bool:
    import torch

    return torch.equal(a, b)


def test_grow_keeps_the_answer_and_rounds_take_their_own_sizes():
    from toolformer.selftrain.loop import cut_after_answer

    calls = [
        {
            "tool": "Calculator",
            "args": "40 / 28",
            "result": "1.43",
            "error": None,
            "start": 1,
            "end": 30,
        }
    ]
    assert cut_after_answer(" [Calculator(40 / 28) -> 1.43] 1.43 hours, so", calls) == (
        " [Calculator(40 / 28) -> 1.43] 1.43",
        calls,
    )
    assert cut_after_answer(" [Calculator(2*600) -> 1200] 1,200. Then", [dict(calls[0], end=28)])[
        0
    ] == (" [Calculator(2*600) -> 1200] 1,200")
    # a second call before any number stays; no call or no number: unchanged
    two = " [Calculator(2*3) -> 6] [Calculator(6+4) -> 10] 10 eggs"
    c2 = [dict(calls[0], start=1, end=23), dict(calls[0], start=24, end=47)]
    assert cut_after_answer(two, c2) == (two, c2)
    assert cut_after_answer(" 12 eggs", []) == (" 12 eggs", [])
    cfg = SelfTrainConfig(grow=GrowConfig(corpus_sizes=[240, 400])).validate()
    assert [cfg.grow.round_size(k) for k in (1, 2, 3)] == [240, 400, 400]
    assert SelfTrainConfig(grow=GrowConfig(corpus_size=7)).validate().grow.round_size(5) == 7
    with pytest.raises(UserError):
        SelfTrainConfig(grow=GrowConfig(corpus_sizes=[])).validate()


def test_wikipedia_documents_have_no_gold_and_a_prompt_that_opens_them():
    from toolformer.selftrain.corpus import load_wikipedia, wiki_prompt

    docs = load_wikipedia(2)
    assert len(docs) == 2 and all(d.answer is None and d.source == "wikipedia" for d in docs)
    assert all(d.text.startswith(d.prompt) and len(d.prompt) < len(d.text) for d in docs)
    assert wiki_prompt("One two three four five six seven eight nine ten. Eleven twelve.") == (
        "One two three four five six seven eight nine ten."
    )


def test_reward_model_with_pickle_weights_is_refused_like_any_model(
    tmp_path, smol_tokenizer, monkeypatch
):
    """The reward classifier loads through ``models.load_pretrained``: pickle weights (which can
    run code when loaded) are refused in one line unless trusted, as for every other model."""
    import torch
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForSequenceClassification

    monkeypatch.delenv("TOOLFORMER_TRUST_PICKLE_WEIGHTS", raising=False)
    cfg = LlamaConfig(
        vocab_size=len(smol_tokenizer),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=2,
    )
    clf_dir = tmp_path / "pickled"
    LlamaForSequenceClassification(cfg).save_pretrained(clf_dir)
    smol_tokenizer.save_pretrained(clf_dir)
    # transformers writes safetensors only: turn the weights into the pickle file a user may have
    weights = clf_dir / "model.safetensors"
    torch.save(load_file(str(weights)), clf_dir / "pytorch_model.bin")
    weights.unlink()
    with pytest.raises(UserError) as exc:
        build_filter("reward", options={"model": str(clf_dir)})
    assert "pickle" in str(exc.value) and "\n" not in str(exc.value)


def test_a_run_grows_on_the_generated_arithmetic_corpus(tmp_path, tiny_dir, files):
    """``corpus="arithmetic:N"``: no file, the same stages; the scripted policy (first two numbers,
    ``*`` or ``+``) is right on some generated problems, and only those are kept and trained on."""
    _, evals = files
    out = tmp_path / "run"
    cfg = _config(
        tiny_dir,
        "arithmetic:30",
        evals,
        out,
        max_rounds=1,
        round0_docs=0,
        dev={"size": 4, "max_problem_steps": 1},
        grow={"corpus_size": 12},
        data={"max_problem_steps": 1},
    )
    result = selftrain(cfg, generator_factory=ScriptedGenerator)
    train = [
        json.loads(line)
        for line in (out / "round_0" / "corpus" / "train.jsonl").read_text().splitlines()
    ]
    assert {d["source"] for d in train} == {"arithmetic"} and all(d["steps"] == 1 for d in train)
    assert len(train) + 4 <= 30
    kept = [
        json.loads(line) for line in (out / "round_1" / "kept_0.jsonl").read_text().splitlines()
    ]
    grown = [json.loads(line) for line in (out / "round_1" / "grow.jsonl").read_text().splitlines()]
    right = {
        g["doc_id"]
        for g in grown
        if g["calls"]
        and g["calls"][0]["result"] is not None
        and float(g["calls"][0]["result"]) == g["gold"]
    }
    assert kept and {k["doc_id"] for k in kept} == right  # exactly the problems it got right
    assert result.rounds[1]["round"] == 1 and result.rounds[1]["texts_kept"] == len(kept)
