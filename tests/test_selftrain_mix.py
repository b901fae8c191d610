"""The mixed self-training curriculum: the facts source's disjointness check (it catches planted
overlaps), ``--mix`` parsing and its bad inputs (one line each, nothing written), the ``when``
Improve filter on scripted candidates, and Grow giving the Calendar each item's own date."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolformer.errors import UserError
from toolformer.finetune import FinetuneConfig
from toolformer.generation import CallRecord, GenerationOutput
from toolformer.selftrain import Candidate, SelfTrainConfig, build_filter, facts, mix, selftrain
from toolformer.selftrain.config import CorpusConfig, GrowConfig, ImproveConfig
from toolformer.selftrain.facts import EvalReferences, FactsReport, WikitextGuard, check_disjoint
from toolformer.syntax import APICall, format_call

# --------------------------------------------------------------------------- facts check


def _fact(question, answers, subject=None, relation=None):
    return {"question": question, "answers": answers, "subject": subject, "relation": relation}


def test_facts_check_drops_each_planted_overlap_and_counts_it():
    wiki = (
        "The castle was rebuilt in stone after the great fire of the winter of the year "
        "when the old king died in the north"
    )
    refs = EvalReferences(
        lama_facts={(facts.norm("Ada Lovelace"), "P19")},
        squad_subjects={facts.norm("Kraków")},
        nq_questions={facts.norm("who wrote the iliad")},
        wikitext=WikitextGuard([wiki]),
    )
    rows = [
        _fact("Where was Ada Lovelace born?", ["London"], "Ada  lovelace", "P19"),  # LAMA fact
        _fact("What is the profession of Ada Lovelace?", ["mathematician"], "Ada Lovelace", "P106"),
        _fact("Which country is Kraków in?", ["Poland"], "Kraków", "P17"),  # a SQuAD subject
        _fact("Who wrote the Iliad?", ["Homer"]),  # NQ-open dev, normalised
        _fact("after the great fire of the winter of the year when the old king died?", ["x"]),
        _fact("the old king died in", ["the north"]),  # short: whole sequence in WikiText
        _fact("Who painted the ceiling of a chapel?", ["Michelangelo"]),
    ]
    report = FactsReport()
    kept = check_disjoint(rows, refs, report)
    assert [r["question"] for r in kept] == [
        "What is the profession of Ada Lovelace?",
        "Who painted the ceiling of a chapel?",
    ]
    assert report.dropped == {
        "lama_fact": 1,
        "lama_squad_subject": 1,
        "nq_open_dev": 1,
        "wikitext2_13gram": 2,
    }
    assert report.kept == 2


def test_facts_built_from_the_real_data_avoid_every_eval_set_and_catch_planted_ones(shared_data):
    refs = facts.eval_references(shared_data)
    # the built-in lama_trex task scores relations whose [Y] is final; the source's are not
    assert not refs.evaluated_relations & set(facts.QUESTIONS)
    rows, report = facts.generate_facts(40, seed=1, data_dir=shared_data, refs=refs)
    assert len(rows) == 40 and {r["source"] for r in rows} == {"trex", "efficientqa"}
    for r in rows:
        assert r["kind"] == "facts" and r["tools"] == ["QA", "WikiSearch"] and r["answers"]
        assert r["answer"] == r["answers"][0] and r["date"] is None
    assert report.candidates["trex"] > 4000 and report.candidates["efficientqa"] > 3000
    # planted: a LAMA T-REx fact the harness scores, a Google-RE fact (as P19), an NQ dev
    # question, a WikiText-2 test sentence
    trex = json.loads((shared_data / "lama/TREx/P19.jsonl").read_text().splitlines()[0])
    gre = json.loads(
        (shared_data / "lama/Google_RE/place_of_birth_test.jsonl").read_text().splitlines()[0]
    )
    nq = json.loads((shared_data / "nq_open/NQ-open.dev.jsonl").read_text().splitlines()[3])
    wt = next(
        line
        for line in (shared_data / "wikitext2_raw/wiki.test.raw").read_text().splitlines()
        if len(line.split()) > 40
    )
    planted = [
        _fact(f"Where was {trex['sub_label']} born?", ["x"], trex["sub_label"], "P19"),
        _fact(f"Where was {gre['sub_label']} born?", ["x"], gre["sub_label"], "P19"),
        _fact(nq["question"].upper() + "?", ["x"]),
        _fact(" ".join(wt.split()[5:25]), ["x"]),
    ]
    report = FactsReport()
    assert check_disjoint(planted, refs, report) == []
    assert report.dropped == {
        "lama_fact": 2,
        "lama_squad_subject": 0,
        "nq_open_dev": 1,
        "wikitext2_13gram": 1,
    }


# --------------------------------------------------------------------------- --mix


def test_mix_parsing():
    assert mix.parse_mix("math=0.4, facts=0.25,dates=0.2,notool=0.15") == mix.DEFAULT_MIX
    assert mix.parse_mix("math=2,notool=1") == {
        "math": 2.0,
        "facts": 0.0,
        "dates": 0.0,
        "notool": 1.0,
    }
    assert mix.parse_mix({"dates": 1}) == {"math": 0.0, "facts": 0.0, "dates": 1.0, "notool": 0.0}
    assert mix.parse_mix(None) == mix.DEFAULT_MIX
    assert mix.counts(10, mix.DEFAULT_MIX) == {"math": 4, "facts": 3, "dates": 2, "notool": 1}
    assert sum(mix.counts(7, {"math": 1, "facts": 1, "dates": 1, "notool": 0}).values()) == 7
    assert mix.parse_spec("mix") == mix.DEFAULT_SIZE and mix.parse_spec("mix:12") == 12
    assert mix.is_spec("mix:5") and not mix.is_spec("mixtures.jsonl")


@pytest.mark.parametrize(
    "value, match",
    [
        ("math=0,facts=0", "sum to zero"),
        ("math=0.5,poems=0.5", "unknown kind 'poems'"),
        ("math=-0.1,facts=1", "must be >= 0"),
        ("math=lots", "must be a number"),
        ("math", "is not kind=weight"),
        ("math=nan", "must be >= 0"),
    ],
)
def test_bad_mix_is_one_line(value, match):
    with pytest.raises(UserError, match=match) as exc:
        mix.parse_mix(value)
    assert "\n" not in str(exc.value)


def test_bad_mix_settings_are_one_line_and_nothing_is_written(tmp_path, capsys):
    from toolformer.cli.main import main

    bad = [
        (["--corpus", "mix", "--mix", "math=0,notool=0"], "sum to zero"),
        (["--corpus", "mix", "--mix", "math=1,cooking=1"], "unknown kind"),
        (["--corpus", "mix", "--mix", "math=1,dates=-1"], ">= 0"),
        # facts need QA or WikiSearch; only the Calculator is offered
        (
            ["--corpus", "mix", "--mix", "math=1,facts=1", "--tools", "Calculator"],
            "needs the tool QA or WikiSearch",
        ),
        (["--corpus", "mix:x"], "whole number"),
        (["--mix", "math=1"], "needs --corpus mix"),
    ]
    for args, match in bad:
        out = tmp_path / "run"
        with pytest.raises(SystemExit) as exc:
            main(["selftrain", "--output", str(out), *args])
        assert exc.value.code != 0
        err = capsys.readouterr().err.strip()
        assert match in err and len(err.splitlines()) == 1, (args, err)
        assert not out.exists()
    # a kind of weight 0 needs no tool; no tool helps a notool item
    cfg = SelfTrainConfig(
        data=CorpusConfig(corpus="mix:10", mix={"math": 1, "facts": 0, "notool": 1}),
        tools=["Calculator"],
    ).validate()
    assert cfg.data.mix["facts"] == 0 and cfg.grow.demonstrations == "mix"


def test_an_item_whose_tool_is_not_offered_is_refused():
    mix.check_tools([("dates-1", ["Calendar"]), ("n-1", [])], ["Calendar"])
    with pytest.raises(UserError, match="item dates-1 needs the tool Calendar") as exc:
        mix.check_tools([("dates-1", ["Calendar"])], ["Calculator", "QA"])
    assert "\n" not in str(exc.value)


def test_mix_demonstrations_show_only_offered_tools():
    from toolformer.selftrain.loop import offered_demonstrations

    text = (Path(mix.__file__).parent / "demos" / "mix.txt").read_text()
    tools = [m for m in re.findall(r"\[(\w+)\(", text)]
    assert sorted(set(tools)) == ["Calculator", "Calendar", "QA", "WikiSearch"]
    shown = offered_demonstrations(text, ["Calculator", "Calendar"])
    assert "[Calculator(" in shown and "[Calendar(" in shown and "[QA(" not in shown
    assert "WikiSearch" not in shown and "greet a new neighbour" in shown  # the no-call example


# --------------------------------------------------------------------------- when


def _cand(doc, sample, text, calls=(), gold=None, kind=None, tools=None, prompt="Q: x\nA:"):
    recs = []
    for tool, args, result in calls:
        call = format_call(APICall(tool, args, result))
        start = text.index(call)
        recs.append(
            {
                "tool": tool,
                "args": args,
                "result": result,
                "error": None,
                "start": start,
                "end": start + len(call),
            }
        )
    return Candidate(doc, sample, prompt, text, recs, gold, "stop", kind, tools)


def test_when_filter_keeps_the_fewest_calls_that_make_the_answer_right():
    p = "Q: Ann has 3 apples and gets 4 more. How many apples?\nA:"
    calc = [("Calculator", "3 + 4", "7")]
    cands = [
        # m1: the model answers right without help -> its call samples are not kept
        _cand("m1", 0, " 7 apples.", gold=7.0, kind="math", tools=["Calculator"], prompt=p),
        _cand("m1", 1, " [Calculator(3 + 4) -> 7] 7", calc, 7.0, "math", ["Calculator"], p),
        # m2: wrong without help -> the right call sample is kept, the wrong one not
        _cand("m2", 0, " 12 apples.", gold=7.0, kind="math", tools=["Calculator"], prompt=p),
        _cand("m2", 1, " [Calculator(3 + 4) -> 7] 7", calc, 7.0, "math", ["Calculator"], p),
        _cand(
            "m2",
            2,
            " [Calculator(3 * 4) -> 12] 12",
            [("Calculator", "3 * 4", "12")],
            7.0,
            "math",
            ["Calculator"],
            p,
        ),
        # notool: any output without a call is right; a call never is
        _cand("n1", 0, " Roses are red.", gold=[], kind="notool", tools=[]),
        _cand(
            "n1", 1, " [Calculator(1 + 1) -> 2] 2", [("Calculator", "1 + 1", "2")], [], "notool", []
        ),
        # facts: right with QA where the no-call sample is wrong; the wrong tool is not kept
        _cand("f1", 0, " Madrid.", gold=["Paris"], kind="facts", tools=["QA", "WikiSearch"]),
        _cand(
            "f1",
            1,
            " [QA(capital of France?) -> Paris] Paris.",
            [("QA", "capital of France?", "Paris")],
            ["Paris"],
            "facts",
            ["QA", "WikiSearch"],
        ),
        _cand(
            "f1",
            2,
            " [Calendar() -> Paris] Paris.",
            [("Calendar", "", "Paris")],
            ["Paris"],
            "facts",
            ["QA", "WikiSearch"],
        ),
        # dates: lenient alias match
        _cand("d1", 0, " Monday.", gold=["Tuesday"], kind="dates", tools=["Calendar"]),
        _cand(
            "d1",
            1,
            " [Calendar() -> Today is Tuesday, May 2, 2023.] Tuesday.",
            [("Calendar", "", "Today is Tuesday, May 2, 2023.")],
            ["Tuesday"],
            "dates",
            ["Calendar"],
        ),
        # a failed call is never kept; no gold -> not judged
        _cand(
            "d2",
            0,
            " [Calendar()] Tuesday.",
            [("Calendar", "", None)],
            ["Tuesday"],
            "dates",
            ["Calendar"],
        ),
        _cand("w1", 0, " something", gold=None),
    ]
    scores = build_filter("when").scores(cands)
    assert scores == [1.0, 0.0, 0.0, 0.99, 0.0, 1.0, 0.0, 0.0, 0.99, 0.0, 0.0, 0.99, 0.0, None]


def test_when_filter_options_are_checked():
    with pytest.raises(UserError, match="call_cost"):
        SelfTrainConfig(
            improve=ImproveConfig(filter="when", filter_options={"call_cost": 0.7})
        ).validate()
    SelfTrainConfig(
        improve=ImproveConfig(filter="when", filter_options={"call_cost": 0.05})
    ).validate()


# --------------------------------------------------------------------------- Grow + dates


class DatedGenerator:
    """Grow's generator seam with tool contexts: a dates prompt gets a Calendar call run by the
    real executor with the prompt's context, a math prompt one sample without a call (wrong)
    and one with a Calculator call; records every context it saw."""

    contexts: list = []

    def __init__(self, model, tokenizer, executor, config):
        self.executor = executor

    def generate(self, prompts, contexts=None):
        contexts = contexts if contexts is not None else [None] * len(prompts)
        assert len(contexts) == len(prompts)
        type(self).contexts.extend(contexts)
        outs = []
        for k, (full, ctx) in enumerate(zip(prompts, contexts)):
            p = "Q:" + full.rsplit("Q:", 1)[-1]
            nums = re.findall(r"\d+", p)
            if ctx is not None and ctx.date is not None:
                call = APICall("Calendar", "")
            elif k % 2 == 0 or len(nums) < 2:
                outs.append(GenerationOutput(p, " 1000.", [], 3, "stop"))
                continue
            else:
                call = APICall("Calculator", f"{nums[0]} + {nums[1]}")
            res = self.executor.run_many([call], [ctx])[0]
            text = " " + format_call(call.with_result(res.output))
            rec = CallRecord(call.tool, call.args, res.output, res.error, 0.0, 1, len(text))
            outs.append(GenerationOutput(p, text + " ok", [rec], 10, "stop"))
        return outs


class Stop(Exception):
    pass


def _tiny_mix_run(out, tiny_dir, shared_data, factory, *, tools, corpus, mix, grow, **extra):
    """A mixed-curriculum run on the tiny model with Grow's generator ``factory``, stopped
    before round 1's fine-tuning (what Grow and Improve wrote stays); returns its config."""
    cfg = SelfTrainConfig.from_dict(
        dict(
            output=str(out),
            model=tiny_dir,
            tools=tools,
            round0_docs=0,
            max_rounds=1,
            progress=False,
            threads=1,
            plain_ratio=0.0,
            data=dict(corpus=corpus, mix=mix, data_dir=str(shared_data), eval_sets=[]),
            grow=grow,
            improve=dict(filter="when"),
            dev=dict(size=2, max_new_tokens=4, generation=dict(batch_size=4)),
            finetune=FinetuneConfig(
                lora=True,
                lora_r=4,
                lora_alpha=8,
                max_length=64,
                effective_batch_size=2,
                eval_fraction=0.0,
                progress=False,
                training_args=dict(max_steps=1),
            ),
            **extra,
        )
    )

    def hook(event, info):
        if event == "stage" and info["stage"] == "finetune_0" and info["round"] == 1:
            raise Stop

    with pytest.raises(Stop):
        selftrain(cfg, hook=hook, generator_factory=factory)
    return cfg


def test_grow_gives_the_calendar_each_items_own_date(tmp_path, tiny_dir, shared_data):
    out = tmp_path / "run"
    DatedGenerator.contexts = []
    _tiny_mix_run(
        out,
        tiny_dir,
        shared_data,
        DatedGenerator,
        tools=["Calculator", "Calendar"],
        corpus="mix:16",
        mix={"math": 1, "dates": 1},
        grow=dict(
            corpus_size=14,
            samples_per_prompt=2,
            no_call_samples=0,
            generation=dict(max_new_tokens=8, batch_size=3),
        ),
    )
    train = {d["id"]: d for d in map(json.loads, (out / "round_0/corpus/train.jsonl").open())}
    grown = [json.loads(line) for line in (out / "round_1/grow.jsonl").open()]
    dated = [g for g in grown if g["kind"] == "dates"]
    assert dated and len({train[g["doc_id"]]["date"] for g in dated}) > 1
    from toolformer.tools.calendar import as_date, format_date

    for g in dated:  # the Calendar's result is the item's own date, not today's
        assert g["calls"][0]["result"] == format_date(as_date(train[g["doc_id"]]["date"]))
        assert g["tools"] == ["Calendar"]
    assert DatedGenerator.contexts and all(
        c is None or c.date is None
        for c, g in zip(DatedGenerator.contexts, grown)
        if g["kind"] == "math"
    )
    state = json.loads((out / "round_1/state.json").read_text())["stages"]
    assert set(state["grow"]["by_kind"]) == {"math", "dates"}
    kept = [json.loads(line) for line in (out / "round_1/kept_0.jsonl").open()]
    by_kind = state["improve_0"]["by_kind"]
    assert sum(v["with_call"] + v["no_call"] for v in by_kind.values()) == len(kept)
    mixed = json.loads((out / "round_0/corpus/mix.json").read_text())
    assert mixed["items"] == {"math": 8, "dates": 8} and "others_check" in mixed


def test_mix_demonstrations_are_shuffled_per_item_and_sample():
    from toolformer.selftrain.loop import offered_demonstrations, shuffled_demonstrations

    text = offered_demonstrations(
        (Path(mix.__file__).parent / "demos" / "mix.txt").read_text(),
        ["Calculator", "QA", "WikiSearch", "Calendar"],
    )
    blocks = sorted(b for b in text.split("\n\n") if b)
    orders = {shuffled_demonstrations(text, f"0-item{i}-0") for i in range(20)}
    assert len(orders) > 5  # the nearest example varies
    for o in orders:
        assert o.endswith("\n\n") and sorted(b for b in o.split("\n\n") if b) == blocks
    assert shuffled_demonstrations(text, "0-a-1") == shuffled_demonstrations(text, "0-a-1")


class CallingGenerator:
    """Grow's seam: with tools on, every output calls the Calculator (right on math); with tools
    off (the no-call samples), every output is a plain wrong number. Records the settings."""

    configs: list = []

    def __init__(self, model, tokenizer, executor, config):
        self.executor, self.config = executor, config
        type(self).configs.append(config)

    def generate(self, prompts, contexts=None):
        outs = []
        for full in prompts:
            p = "Q:" + full.rsplit("Q:", 1)[-1]
            nums = re.findall(r"\d+", p)
            if not self.config.tools_enabled or len(nums) < 2:
                outs.append(
                    GenerationOutput(
                        p,
                        " 1000." if self.config.tools_enabled is False else " Hello.",
                        [],
                        3,
                        "stop",
                    )
                )
                continue
            call = APICall("Calculator", f"{nums[0]} + {nums[1]}")
            res = self.executor.run_many([call], [None])[0]
            text = f" [Calculator({call.args}) -> {res.output}] {res.output}."
            rec = CallRecord("Calculator", call.args, res.output, res.error, 0.0, 1, len(text))
            outs.append(GenerationOutput(p, text, [rec], 9, "stop"))
        return outs


def test_grow_samples_the_model_without_a_call_and_when_keeps_them_for_notool(
    tmp_path, tiny_dir, shared_data
):
    out = tmp_path / "run"
    CallingGenerator.configs = []
    cfg = _tiny_mix_run(
        out,
        tiny_dir,
        shared_data,
        CallingGenerator,
        tools=["Calculator"],
        corpus="mix:16",
        mix={"math": 1, "notool": 1},
        grow=dict(
            corpus_size=14,
            samples_per_prompt=2,
            forced_call_samples=0,
            generation=dict(max_new_tokens=8, batch_size=4),
        ),
        calibration=dict(enabled=False),
    )
    assert cfg.grow_no_call_samples == 1  # the mix's default
    grown = [json.loads(line) for line in (out / "round_1/grow.jsonl").open()]
    by_doc: dict = {}
    for g in grown:
        by_doc.setdefault(g["doc_id"], []).append(g)
    assert by_doc and all(
        sorted(r["sample"] for r in rows) == [0, 1, 2] for rows in by_doc.values()
    )
    assert all(not r["calls"] for r in grown if r["sample"] == 2)  # tools off: no call
    assert any(not c.tools_enabled for c in CallingGenerator.configs)
    kept = [json.loads(line) for line in (out / "round_1/kept_0.jsonl").open()]
    kinds = {d: rows[0]["kind"] for d, rows in by_doc.items()}
    kept_notool = [k for k in kept if kinds.get(k.get("doc_id")) == "notool"]
    kept_math = [k for k in kept if kinds.get(k.get("doc_id")) == "math"]
    assert kept_notool and all("[" not in k["text"] for k in kept_notool)
    # math: the no-call sample is wrong, so only right Calculator calls are kept, no plain output
    assert all("[Calculator(" in k["text"] for k in kept_math)


class StartsGenerator(CallingGenerator):
    """:class:`CallingGenerator` that takes ``grammar_starts`` and records, per call, its
    settings, prompts and starts."""

    seen: list = []

    def generate(self, prompts, contexts=None, grammar_starts=None):
        type(self).seen.append((self.config, list(prompts), grammar_starts))
        return super().generate(prompts, contexts)


def test_grow_tells_the_generator_where_each_problem_starts_after_its_demonstrations(
    tmp_path, tiny_dir, shared_data
):
    """The call grammars read the problem only: a demonstration's numbers are no Calculator
    argument (``numbers_from_text``). Grow passes each prompt's start for the free, the no-call
    and the forced samples alike."""
    from toolformer.selftrain.loop import FORCE_CALL_TOP_K

    out = tmp_path / "run"
    StartsGenerator.configs, StartsGenerator.seen = [], []
    _tiny_mix_run(
        out,
        tiny_dir,
        shared_data,
        StartsGenerator,
        tools=["Calculator"],
        corpus="mix:16",
        mix={"math": 1, "notool": 1},
        grow=dict(
            corpus_size=8,
            samples_per_prompt=2,
            no_call_samples=1,
            forced_call_samples=1,
            generation=dict(max_new_tokens=8, batch_size=4),
        ),
        calibration=dict(enabled=False),
    )
    problems = {json.loads(line)["prompt"] for line in (out / "round_1/grow.jsonl").open()}
    kinds = set()
    for config, prompts, starts in StartsGenerator.seen:
        assert starts is not None and len(starts) == len(prompts)
        for prompt, start in zip(prompts, starts):
            assert prompt[start:] in problems  # the problem, whole
            # the demonstrations (mixed), with numbers the problem's calls must not take
            assert prompt[:start].strip().startswith("Q:") and re.search(r"\d", prompt[:start])
        kinds.add(
            "forced"
            if config.call_top_k == FORCE_CALL_TOP_K
            else ("free" if config.tools_enabled else "no_call")
        )
    assert kinds == {"free", "no_call", "forced"}


def test_forced_samples_cover_each_fitting_offered_tool():
    from toolformer.selftrain.loop import forced_samples

    docs = [
        {"id": "a", "tools": ["QA", "WikiSearch"]},
        {"id": "b", "tools": []},
        {"id": "c"},
        {"id": "d", "tools": ["Calendar"]},
    ]
    picks = forced_samples(docs, {"QA": 1, "Calendar": 1}, 2)
    assert [(d["id"], t, s) for d, t, s in picks] == [
        ("a", "QA", 0),
        ("a", "QA", 1),
        ("d", "Calendar", 0),
        ("d", "Calendar", 1),
    ]
    assert forced_samples(docs, {"QA": 1}, 0) == []


def test_cap_per_kind_spreads_over_prompts_and_keeps_order():
    from toolformer.selftrain.loop import cap_per_kind

    def row(doc, kind, tool, score):
        return {
            "doc_id": doc,
            "kind": kind,
            "score": score,
            "calls": [{"tool": tool}] if tool else [],
        }

    kept = [
        row("d1", "dates", "Calendar", 0.99),
        row("d1", "dates", "Calendar", 0.98),
        row("d2", "dates", "Calendar", 0.97),
        row("d3", "dates", "Calendar", 0.99),
        row("m1", "math", "Calculator", 0.99),
        row("n1", "notool", None, 1.0),
        row("n2", "notool", None, 1.0),
        row("d4", "dates", None, 1.0),
    ]
    out = cap_per_kind(kept, 2)
    # Calendar texts of dates items: each prompt's best first (d1's second waits), then the
    # higher score (d1 and d3 at 0.99 before d2); a no-call dates text is its own group
    assert [(r["doc_id"], r["score"]) for r in out] == [
        ("d1", 0.99),
        ("d3", 0.99),
        ("m1", 0.99),
        ("n1", 1.0),
        ("n2", 1.0),
        ("d4", 1.0),
    ]
    assert cap_per_kind(kept, 1) == [kept[0], kept[4], kept[5], kept[7]]


def test_a_run_folder_without_a_setting_added_later_still_resumes():
    cfg = SelfTrainConfig(output="x")
    old = cfg.fingerprint()
    for added in ("forced_call_samples", "max_kept_per_kind"):
        old.pop(added)
    assert cfg.changed_since(old) == []  # the new settings at their defaults: same run
    cfg.improve.max_kept_per_kind = 5
    assert cfg.changed_since(old) == ["max_kept_per_kind"]
    assert SelfTrainConfig(output="x", grow=GrowConfig(samples_per_prompt=9)).changed_since(
        old
    ) == ["samples_per_prompt"]


class ForcingGenerator(CallingGenerator):
    """With the forced trigger (every '[' in the top k), calls the one tool its executor holds;
    otherwise as :class:`CallingGenerator`. Records the tools each forced batch was offered."""

    offered: list = []

    def generate(self, prompts, contexts=None):
        from toolformer.selftrain.loop import FORCE_CALL_TOP_K

        if self.config.call_top_k != FORCE_CALL_TOP_K:
            return super().generate(prompts, contexts)
        names = sorted(self.executor.tools)
        type(self).offered.append(names)
        outs = []
        for full, ctx in zip(prompts, contexts or [None] * len(prompts)):
            p = "Q:" + full.rsplit("Q:", 1)[-1]
            call = APICall(names[0], "")
            res = self.executor.run_many([call], [ctx])[0]
            text = f" [{names[0]}() -> {res.output}] x"
            rec = CallRecord(names[0], "", res.output, res.error, 0.0, 1, len(text) - 2)
            outs.append(GenerationOutput(p, text, [rec], 9, "stop"))
        return outs


def test_grow_forces_a_call_of_each_fitting_tool(tmp_path, tiny_dir, shared_data):
    out = tmp_path / "run"
    ForcingGenerator.offered = []
    cfg = _tiny_mix_run(
        out,
        tiny_dir,
        shared_data,
        ForcingGenerator,
        tools=["Calculator", "Calendar"],
        corpus="mix:24",
        mix={"math": 1, "dates": 1, "notool": 1},
        grow=dict(
            corpus_size=20, samples_per_prompt=1, generation=dict(max_new_tokens=8, batch_size=5)
        ),
        calibration=dict(enabled=False),
    )
    assert cfg.grow_forced_call_samples == 1  # the mix's default
    # the dev split of a mixed run has a file per kind, and its score is their mean
    base = json.loads((out / "round_0/state.json").read_text())["stages"]["baseline"]
    assert set(base["by_kind"]) == {"math", "dates", "notool"}
    assert base["score"] == pytest.approx(sum(base["by_kind"].values()) / 3, abs=1e-3)
    notool = [json.loads(x) for x in (out / "round_0/corpus/dev_notool.jsonl").open()]
    assert notool and all(r["tools"] == [] and r["answer"] is None for r in notool)
    assert base["n"] == 2 + 1 + 1
    grown = [json.loads(line) for line in (out / "round_1/grow.jsonl").open()]
    by_doc: dict = {}
    for g in grown:
        by_doc.setdefault(g["doc_id"], []).append(g)
    kinds = {d: rows[0]["kind"] for d, rows in by_doc.items()}
    assert set(kinds.values()) == {"math", "dates", "notool"}
    fitting = {"math": "Calculator", "dates": "Calendar"}
    for d, rows in by_doc.items():
        samples = sorted(r["sample"] for r in rows)
        # free sample 0, no-call sample 1, and the forced call of the fitting tool: sample 2
        assert samples == ([0, 1] if kinds[d] == "notool" else [0, 1, 2])
        for r in rows:
            if r["sample"] == 2:
                assert r["calls"][0]["tool"] == fitting[kinds[d]]
                if kinds[d] == "dates":
                    assert r["calls"][0]["result"].startswith("Today is")
    assert sorted(map(tuple, ForcingGenerator.offered)) and all(
        len(o) == 1 for o in ForcingGenerator.offered
    )
    kept = [json.loads(line) for line in (out / "round_1/kept_0.jsonl").open()]
    assert kept  # the no-tool items' plain outputs at least
