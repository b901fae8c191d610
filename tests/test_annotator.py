"""The Annotator end to end: a scripted tiny model, the reference implementation, failures."""

from __future__ import annotations

import datetime as dt
import random

import pytest
import torch
from conftest import make_tiny_model

from toolformer.data_aug.annotator import Annotator, call_offset, merge_calls
from toolformer.data_aug.prefix_cache import start_ids
from toolformer.data_aug.reference import ReferenceAnnotator, textbook_loss
from toolformer.data_aug.types import AnnotatorConfig, Document, KeptCall
from toolformer.errors import UserError
from toolformer.syntax import APICall, find_calls, format_call, strip_calls
from toolformer.tools.base import AnnotationSettings, Tool, ToolInputError

ADD_PROMPT = (
    "Add numbers with [Add(a, b)].\nInput: 2 and 3 make 5\nOutput: 2 and 3 make [Add(2, 3)] 5\n"
    "Input: {text}\nOutput:"
)
TODAY_PROMPT = (
    "Say the date with [Today()].\nInput: It is Monday.\n"
    "Output: It is [Today()] Monday.\nInput: {text}\nOutput:"
)
DOC = "They had 10 apples and 5 pears, 15 fruits in all, and they ate 3 of them, and 2 more."


class Add(Tool):
    name = "Add"
    description = "adds integers"
    prompt = ADD_PROMPT
    annotation = AnnotationSettings(tau_s=0.05, k=4, m=6, tau_f=0.0)

    def run(self, args, context=None):
        try:
            return str(sum(int(x) for x in args.split(",")))
        except ValueError:
            raise ToolInputError(f"Add needs integers, got {args!r}") from None


class Today(Tool):
    name = "Today"
    description = "the document's date"
    prompt = TODAY_PROMPT
    annotation = AnnotationSettings(tau_s=0.05, k=2, m=4, tau_f=-100.0)
    uses_context = True

    def run(self, args, context=None):
        if context is None or context.date is None:
            raise ToolInputError("no date")
        return context.date.isoformat()


# Next-token scores of the scripted model: after token A, token B gets ALPHA[A][B] (+ noise).
SCRIPT = {
    " and": {" [": 13.0},
    ",": {" [": 11.0, "2": 12.0},
    " [": {"Add": 20.0, "Mul": 19.0, "Today": 20.0},
    "[": {"Add": 20.0},
    "Add": {"(": 20.0},
    "Mul": {"(": 20.0},
    "Today": {"(": 20.0},
    "(": {"1": 20.0, "2": 20.0, ")]": 19.0, "]": 19.0},
    "1": {")]": 20.0, ",": 20.0, "1": 19.5},
    "2": {")]": 20.0, " ->": 19.5},
    " ->": {"3": 20.0},
    "3": {")]": 20.0},
}


def scripted_model(tok, mix: float = 0.3, seed: int = 0):
    """A tiny random Llama whose next-token logits follow SCRIPT (a bigram table), plus a little
    attention and MLP so that contexts, caches and masks still matter.

    The table's context tokens get orthonormal embedding directions that no other token and no
    other output row uses, so ``logit[B] = ALPHA[A][B]`` after A and ~0 elsewhere.
    """
    model = make_tiny_model(len(tok), seed=seed)
    ids = lambda s: tok(s, add_special_tokens=False)["input_ids"][0]  # noqa: E731
    emb = model.model.embed_tokens.weight
    hidden = emb.shape[1]
    g = torch.Generator().manual_seed(seed)
    basis, _ = torch.linalg.qr(torch.randn(hidden, hidden, generator=g))
    ctx = [ids(a) for a in SCRIPT]
    q = basis[:, : len(ctx)].T  # one direction per context token
    with torch.no_grad():
        head = torch.nn.Linear(hidden, emb.shape[0], bias=False)
        out = emb.detach().clone()
        new_emb = emb.detach().clone()
        new_emb -= (new_emb @ q.T) @ q
        out -= (out @ q.T) @ q
        norm = emb.norm(dim=1).mean()
        for k, (a, nxt) in enumerate(SCRIPT.items()):
            new_emb[ids(a)] = q[k] * norm
            for b, alpha in nxt.items():
                out[ids(b)] += alpha * q[k] / hidden**0.5
        model.model.embed_tokens.weight = torch.nn.Parameter(new_emb)
        head.weight.copy_(out)
        model.lm_head = head
        model.config.tie_word_embeddings = False
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.mul_(mix)
            layer.mlp.down_proj.weight.mul_(mix)
    return model.eval()


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """One torch thread for this module's tiny models (conftest's ``one_torch_thread``)."""


@pytest.fixture(scope="module")
def model(smol_tokenizer):
    return scripted_model(smol_tokenizer)


def annotator(model, tok, tools=None, **cfg):
    cfg.setdefault("record_candidates", True)
    cfg.setdefault("max_call_tokens", 8)
    return Annotator(model, tok, tools or [Add()], AnnotatorConfig(**cfg))


def key(c):
    return (c.tool, c.position, c.args, c.result, c.offset)


def assert_same(a, b, tol=1e-5):
    assert a.error is None and b.error is None
    assert dict(a.stats) == dict(b.stats)
    assert [key(c) for c in a.candidates] == [key(c) for c in b.candidates]
    for x, y in zip(a.candidates, b.candidates):
        for f in ("loss_plus", "loss_minus", "loss_empty", "loss_no_result"):
            assert getattr(x, f) == pytest.approx(getattr(y, f), abs=tol)
    assert [key(c) for c in a.calls] == [key(c) for c in b.calls] and a.text == b.text


# --------------------------------------------------------------------------- the pipeline


def test_annotator_matches_the_reference(model, smol_tokenizer):
    tok = smol_tokenizer
    doc = Document("d1", DOC, date=dt.date(2023, 1, 30))
    tools = [Add(), Today()]
    # unconstrained sampling: the scripted model writes every kind of broken call
    cfg = dict(record_candidates=True, max_call_tokens=8, constrained=False)
    ours = Annotator(model, tok, tools, AnnotatorConfig(**cfg)).annotate(doc)
    ref = ReferenceAnnotator(model, tok, tools, AnnotatorConfig(**cfg)).annotate(doc)
    assert_same(ours, ref)
    s = ours.stats
    # the script produces every kind of sample
    for name in (
        "positions_kept",
        "candidates_sampled",
        "candidates_closed",
        "candidates_malformed",
        "candidates_abandoned",
        "candidates_deduplicated",
        "candidates_executed",
        "tool_failures",
        "calls_kept",
    ):
        assert s[name] > 0, name
    assert s["Add/candidates_sampled"] == s["Add/positions_kept"] * 6
    assert s["Today/candidates_sampled"] == s["Today/positions_kept"] * 4
    assert s["candidates_closed"] + s["candidates_abandoned"] <= s["candidates_sampled"]
    assert (
        s["candidates_closed"]
        - s["candidates_malformed"]
        - s["candidates_invalid"]
        - s["candidates_deduplicated"]
        == s["candidates_executed"]
    )
    assert s["candidates_executed"] - s["tool_failures"] == len(ours.candidates)
    # the Today tool got the document's date through the executor's context
    assert {c.result for c in ours.candidates if c.tool == "Today"} == {"2023-01-30"}
    assert all("->" not in c.args for c in ours.candidates)  # "Add(2 -> 3)" failed in the tool


def test_constrained_sampling_matches_the_reference_and_writes_only_calls(model, smol_tokenizer):
    doc = Document("d1", DOC, date=dt.date(2023, 1, 30))
    tools = [Add(), Today()]
    cfg = AnnotatorConfig(record_candidates=True, max_call_tokens=8)
    assert cfg.constrained  # calls follow their tool's argument grammar by default
    ours = Annotator(model, smol_tokenizer, tools, cfg).annotate(doc)
    ref = ReferenceAnnotator(model, smol_tokenizer, tools, cfg).annotate(doc)
    assert_same(ours, ref)
    s = ours.stats
    assert s["candidates_sampled"] > 0
    assert s["candidates_closed"] == s["candidates_sampled"]  # every sample is a closed call
    assert s["candidates_malformed"] == s["candidates_abandoned"] == 0


def test_kept_calls_satisfy_the_keep_rule_and_are_merged(model, smol_tokenizer):
    res = annotator(model, smol_tokenizer).annotate(Document("d2", DOC))
    tau = Add.annotation.tau_f
    assert res.candidates
    for c in res.candidates:
        assert c.loss_minus == min(c.loss_empty, c.loss_no_result)
    kept = {key(c) for c in res.calls}
    for c in res.candidates:
        if key(c) in kept:
            assert c.loss_minus - c.loss_plus >= tau
    offsets = [c.offset for c in res.calls]
    assert offsets == sorted(set(offsets))  # one call per place, in text order
    for c in res.candidates:  # the best-scoring candidate of each place was kept
        if c.loss_minus - c.loss_plus >= tau:
            best = next(k for k in res.calls if k.offset == c.offset)
            assert best.score >= c.score
    found = find_calls(res.text)
    assert [(m.call.tool, m.call.args, m.call.result) for m in found] == [
        (c.tool, c.args, c.result) for c in res.calls
    ]
    assert strip_calls(res.text) == DOC  # nothing but the calls was added


def test_threshold_drops_everything(model, smol_tokenizer):
    res = annotator(model, smol_tokenizer, tau_f=100.0).annotate(Document("d3", DOC))
    assert res.candidates and not res.calls and res.text == DOC and res.error is None
    assert res.stats["calls_kept"] == 0


def test_chunked_document_matches_reference_and_maps_offsets(model, smol_tokenizer):
    tok = smol_tokenizer
    text = " ".join([DOC] * 3)
    doc = Document("long", text)
    cfg = dict(record_candidates=True, max_call_tokens=8, max_length=20, tau_f=-100.0, k=2, m=2)
    ours = Annotator(model, tok, [Add()], AnnotatorConfig(**cfg)).annotate(doc)
    ref = ReferenceAnnotator(model, tok, [Add()], AnnotatorConfig(**cfg)).annotate(doc)
    assert_same(ours, ref)
    ids = tok(" " + text, add_special_tokens=False)
    assert max(c.position for c in ours.candidates) >= 20  # positions are global
    for c in ours.candidates:
        start = ids.token_to_chars(c.position).start - 1  # offset of that token in the text
        assert c.offset in (start, start - 1, start + 1) and 0 <= c.offset <= len(text)
    assert ours.calls and ours.text != text
    # a window's last positions are scored on the tokens after it (x_i..x_i+4 as in a long text)
    dense = Annotator(
        model, tok, [Add()], AnnotatorConfig(**{**cfg, "tau_s": 0.0, "k": 20, "m": 3})
    )
    late = [c for c in dense.annotate(doc).candidates if c.position % 20 >= 16]
    assert late
    for c in late:
        w0 = c.position - c.position % 20
        want = textbook_loss(
            model, start_ids(tok), [], ids["input_ids"][w0 : w0 + 24], c.position - w0, 5
        )
        assert c.loss_empty == pytest.approx(want, abs=1e-5)


def _full_run(model, tok, doc, **cfg):
    """Every loss of every candidate (record_candidates): the unoptimised scoring."""
    ann = Annotator(
        model,
        tok,
        [Add(), Today()],
        AnnotatorConfig(record_candidates=True, max_call_tokens=8, **cfg),
    )
    return ann.annotate(doc), ann.scorer.stats


@pytest.mark.parametrize("share", [0.0, 0.25, 0.6, 1.0])
def test_lazy_losses_keep_exactly_the_calls_of_full_scoring(model, smol_tokenizer, share):
    """L+ only where L(empty) >= tau_f, L(e(c, empty)) only where L(empty) - L+ >= tau_f: the
    same calls kept with the same losses as when every loss is computed, with fewer tokens."""
    tok = smol_tokenizer
    doc = Document("lazy", DOC, date=dt.date(2023, 1, 30))
    base, _ = _full_run(model, tok, doc, tau_f=-100.0, k=4, m=6)
    gaps = sorted({round(c.loss_empty - c.loss_plus, 4) for c in base.candidates})
    assert len(gaps) >= 4
    # tau_f between two candidates' L(empty) - L+ (never on one: no float tie), so that a
    # share of them passes the first test
    at = min(len(gaps) - 1, int(share * len(gaps)))
    tau = (
        gaps[0] - 1.0
        if share == 0
        else (gaps[-1] + 1.0 if share == 1 else (gaps[at - 1] + gaps[at]) / 2)
    )
    full, full_work = _full_run(model, tok, doc, tau_f=tau, k=4, m=6)
    ann = Annotator(
        model, tok, [Add(), Today()], AnnotatorConfig(max_call_tokens=8, tau_f=tau, k=4, m=6)
    )
    lazy = ann.annotate(doc)
    assert lazy.error is None and dict(lazy.stats) == dict(full.stats)
    assert [key(c) for c in lazy.calls] == [key(c) for c in full.calls] and lazy.text == full.text
    for a, b in zip(lazy.calls, full.calls):
        for f in ("loss_plus", "loss_minus", "loss_empty", "loss_no_result"):
            assert getattr(a, f) == pytest.approx(getattr(b, f), abs=1e-5)
    passing = sum(c.loss_empty - c.loss_plus >= tau for c in full.candidates)
    if share > 0:
        # the rows (or a row's positions) no decision needed were not computed
        assert ann.scorer.stats.tokens < full_work.tokens
    if share == 1.0:  # no call passes the first test: no L(e(c, empty)) row at all
        assert passing == 0 and not lazy.calls
        plus_texts = {format_call(APICall(c.tool, c.args, c.result)) for c in full.candidates}
        assert ann.scorer.stats.rows <= 1 + len(plus_texts)
    if share == 0.0:  # every call passes the first test: every row is needed
        assert (
            passing == len(full.candidates)
            and lazy.calls
            and ann.scorer.stats.tokens == full_work.tokens
        )


def test_no_call_is_scored_where_the_text_alone_is_below_tau_f(model, smol_tokenizer):
    """L+ >= 0, so where L(empty) < tau_f nothing can be kept: only the L(empty) row is run."""
    doc = Document("bound", DOC, date=dt.date(2023, 1, 30))
    base, _ = _full_run(model, smol_tokenizer, doc, tau_f=-100.0, k=4, m=6)
    tau = max(c.loss_empty for c in base.candidates) + 0.5
    full, _ = _full_run(model, smol_tokenizer, doc, tau_f=tau, k=4, m=6)
    ann = Annotator(
        model,
        smol_tokenizer,
        [Add(), Today()],
        AnnotatorConfig(max_call_tokens=8, tau_f=tau, k=4, m=6),
    )
    lazy = ann.annotate(doc)
    assert (
        full.candidates
        and not full.calls
        and not lazy.calls
        and dict(lazy.stats) == dict(full.stats)
    )
    assert ann.scorer.stats.rows == 1


def test_settings_precedence():
    tool = Add()
    assert AnnotatorConfig().settings_for(tool) == Add.annotation
    cfg = AnnotatorConfig(settings={"add": {"k": 7}}, m=3)
    assert cfg.settings_for(tool) == AnnotationSettings(tau_s=0.05, k=7, m=3, tau_f=0.0)
    cfg = AnnotatorConfig(settings={"Add": AnnotationSettings(0.1, 1, 1, 2.0)}, tau_f=0.5)
    assert cfg.settings_for(tool) == AnnotationSettings(0.1, 1, 1, 0.5)
    with pytest.raises(UserError):
        AnnotatorConfig(settings={"Add": {"kk": 1}}).settings_for(tool)


def test_bad_configuration_is_a_user_error(model, smol_tokenizer):
    class NoPrompt(Tool):
        name = "NoPrompt"
        description = "x"

        def run(self, args, context=None):
            return args

    with pytest.raises(UserError, match="prompt"):
        Annotator(model, smol_tokenizer, [NoPrompt()])
    with pytest.raises(UserError, match="tau_s"):
        Annotator(model, smol_tokenizer, [Add()], AnnotatorConfig(tau_s=1.5))
    with pytest.raises(UserError):
        Annotator(model, smol_tokenizer, [])


# --------------------------------------------------------------------------- never raises


def test_prefiltered_documents_are_counted(model, smol_tokenizer):
    from toolformer.tools.calculator import Calculator

    doc = Document("p", "The cat sat on the mat.")  # no numbers
    res = Annotator(model, smol_tokenizer, [Calculator()], AnnotatorConfig(k=1, m=1)).annotate(doc)
    assert res.skipped and res.stats["docs_prefiltered_out"] == 1
    assert res.stats["Calculator/docs_prefiltered_out"] == 1 and res.stats["positions_kept"] == 0
    both = Annotator(
        model, smol_tokenizer, [Calculator(), Today()], AnnotatorConfig(k=1, m=1, tau_s=0.0)
    ).annotate(doc)
    assert not both.skipped and both.stats["docs_prefiltered_out"] == 0  # Today has no rule
    assert (
        both.stats["Calculator/docs_prefiltered_out"] == 1
        and both.stats["Today/positions_kept"] == 1
    )
    assert res.text == res.original and res.calls == []


_RNG = random.Random(0)
ODD = [
    "",
    "   \n\t ",
    "\x00\x01\x02 binary \xff\xfe junk \ufffd \u200b\u202e",
    "".join(chr(_RNG.randrange(1, 0x2FFF)) for _ in range(300)),
]


@pytest.mark.parametrize("text", ODD, ids=["empty", "whitespace", "control", "random-unicode"])
def test_odd_texts_never_raise(model, smol_tokenizer, text):
    res = annotator(model, smol_tokenizer, tools=[Add()], k=2, m=2).annotate(Document("odd", text))
    assert res.error is None
    assert res.original == text and (res.calls or res.text == text)
    if not text.strip():
        assert res.skipped == "empty text"


def test_very_long_document(model, smol_tokenizer):
    text = " ".join(f"Item {i} and {i + 1}, then {2 * i + 1}." for i in range(150))
    res = annotator(model, smol_tokenizer, k=1, m=1, max_length=256).annotate(
        Document("long", text)
    )
    assert res.error is None and res.stats["positions_kept"] >= 5  # one per chunk


def test_failures_become_errors_not_exceptions(model, smol_tokenizer, monkeypatch):
    ann = annotator(model, smol_tokenizer)
    res = ann.annotate(Document("b", b"bytes are not text"))
    assert res.error.startswith("TypeError")

    def boom(*a, **k):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ann.scorer, "losses", boom)
    res = ann.annotate(Document("c", DOC))
    assert res.error == "RuntimeError: out of memory" and res.text == DOC and res.calls == []
    assert ann.annotate_batch([Document("e", ""), Document("f", DOC)])[1].error is not None


# --------------------------------------------------------------------------- merge helpers


def test_call_offset_moves_before_a_bare_space():
    text = "Out of 1400 people, 400 (or 29%) passed."
    i = text.index("29")
    assert (
        call_offset(text, i) == i - 1
        and call_offset(text, i - 1) == i - 1
        and call_offset(text, 0) == 0
    )
    kc = KeptCall("Calculator", "400 / 1400", "0.29", i - 1, 5, 1.0, 2.0, 2.0, 2.5)
    merged, calls = merge_calls(
        text, [kc, KeptCall("Calculator", "4 / 14", "0.29", i - 1, 6, 1.5, 2.0, 2.0, 2.5)]
    )
    assert calls == [kc]  # one call per place: the best score
    assert merged == "Out of 1400 people, 400 (or [Calculator(400 / 1400) -> 0.29] 29%) passed."
    first = KeptCall("Calculator", "1400", "1400", 0, 0, 1.0, 2.0, 2.0, 2.5)
    merged, _ = merge_calls(text, [first, kc])
    assert merged.startswith("[Calculator(1400) -> 1400] Out of 1400 people, 400 (or [Calculator(")


# --------------------------------------------------------------------------- real model


@pytest.mark.slow
def test_real_smollm2_calculator(real_model, shared_data):
    """The real SmolLM2 and Calculator on real text: runs, and every kept call obeys the rule."""
    from toolformer.tools.calculator import Calculator

    model, tok = real_model
    docs = [
        Document("paper", "Out of 1400 participants, 400 (or 29%) passed the test."),
        Document(
            "farm",
            "The farm sold 36 crates of apples at 15 dollars each, earning 540 dollars in total.",
        ),
    ]
    cfg = AnnotatorConfig(k=5, m=3, max_call_tokens=16, record_candidates=True)
    ann = Annotator(model, tok, [Calculator()], cfg)
    results = ann.annotate_batch(docs)
    tau = cfg.settings_for(Calculator()).tau_f
    for res in results:
        assert res.error is None
        assert res.stats["positions_kept"] == 5 and res.stats["candidates_sampled"] == 15
        for c in res.candidates:
            assert c.loss_minus == min(c.loss_empty, c.loss_no_result)
        for c in res.calls:
            assert c.loss_minus - c.loss_plus >= tau
            assert format_call(APICall(c.tool, c.args, c.result)) in res.text
        print(
            res.doc_id,
            dict(res.stats),
            [(c.args, c.result, round(c.score, 3)) for c in res.calls],
            res.text,
        )
    assert sum(r.stats["candidates_executed"] for r in results) > 0


# ---------------------------------------------------------------- where calls go, which are valid


def test_calls_go_only_where_a_word_or_number_starts(model, smol_tokenizer):
    # every position is tried (tau_s 0, k 40): SmolLM2 splits "10" and "15" into digit tokens,
    # and a call before the second digit would split the number ("1 [Add(1, 1)]0")
    from toolformer.text_units import first_visible, unit_starts

    tok = smol_tokenizer
    doc = Document("digits", DOC)
    cfg = dict(record_candidates=True, max_call_tokens=8, tau_s=0.0, k=40, m=2, tau_f=-100.0)
    ours = Annotator(model, tok, [Add()], AnnotatorConfig(**cfg)).annotate(doc)
    ref = ReferenceAnnotator(model, tok, [Add()], AnnotatorConfig(**cfg)).annotate(doc)
    assert_same(ours, ref)
    starts = unit_starts(DOC)
    assert ours.candidates and ours.calls
    for c in ours.candidates:
        assert first_visible(DOC, c.offset) in starts, (c.position, DOC[c.offset :])
    pieces = tok.convert_ids_to_tokens(tok(" " + DOC, add_special_tokens=False)["input_ids"])
    digits_inside = {j for j, p in enumerate(pieces) if p.isdigit() and pieces[j - 1].isdigit()}
    assert digits_inside and not digits_inside & {c.position for c in ours.candidates}


class Pair(Add):
    """Add that states its valid calls: odd numbers only (the scripted model writes Add(1) and
    Add(2), and the other counters stay apart: Add() is malformed-free, Add(1 -> 3) fails)."""

    name = "Pair"
    prompt = ADD_PROMPT.replace("Add", "Pair")

    def check_call(self, args):
        return None if args.isdigit() and int(args) % 2 else "Pair takes an odd number: Pair(1)"


SCRIPT_PAIR = {"Pair": {"(": 20.0}}


def test_invalid_calls_are_counted_and_dropped_before_scoring(smol_tokenizer):
    tok = smol_tokenizer
    SCRIPT.update({" [": {**SCRIPT[" ["], "Pair": 20.0}, **SCRIPT_PAIR})
    try:
        model = scripted_model(tok)
    finally:
        SCRIPT[" ["].pop("Pair")
        SCRIPT.pop("Pair")
    cfg = dict(record_candidates=True, max_call_tokens=8, tau_f=-100.0)
    doc = Document("pairs", DOC)
    ours = Annotator(model, tok, [Pair()], AnnotatorConfig(**cfg)).annotate(doc)
    ref = ReferenceAnnotator(model, tok, [Pair()], AnnotatorConfig(**cfg)).annotate(doc)
    assert_same(ours, ref)
    s = ours.stats
    assert s["candidates_invalid"] > 0 and s["Pair/candidates_invalid"] == s["candidates_invalid"]
    assert ours.candidates and all(int(c.args) % 2 for c in ours.candidates)
    assert (
        s["candidates_closed"]
        - s["candidates_malformed"]
        - s["candidates_invalid"]
        - s["candidates_deduplicated"]
        == s["candidates_executed"]
    )


def test_the_built_in_tools_state_their_valid_calls():
    from toolformer.tools.calculator import Calculator
    from toolformer.tools.calendar import Calendar

    calendar, calc = Calendar(), Calculator()
    assert calendar.check_call("") is None and calendar.check_call("  ") is None
    assert "no arguments" in calendar.check_call("\\)\\(")
    assert "no arguments" in calendar.check_call("today")
    for ok in ("18 * 25", "400 / 1400", "(3 + 4) * 2", "-3 - 4", "1/3"):
        assert calc.check_call(ok) is None, ok
    for bad in ("180000", "-5", "(3)", "+(7)", "", "3 +", "x * 2"):
        assert calc.check_call(bad), bad
    assert "operation" in calc.check_call("180000")
    assert Add().check_call("1, 2") is None and Add().check_call("")  # the default: parse_args


def test_the_same_call_is_kept_once_per_window():
    text = "paying 18 for 25 days, 450 in all"
    at = text.index("450")

    def kc(pos, offset, score, args="18 * 25"):
        return KeptCall("Calculator", args, "450", offset, pos, 1.0, 1.0 + score, 1.0 + score, 3.0)

    near = [kc(3, text.index(" for"), 0.8), kc(9, at - 1, 1.2), kc(30, len(text), 0.9)]
    merged, calls = merge_calls(text, near, repeat_window=10)
    assert [c.position for c in calls] == [
        9,
        30,
    ]  # the better of the two neighbours, and the far one
    assert merged.count("[Calculator(18 * 25) -> 450]") == 2
    other = kc(4, text.index(" 25"), 0.5, args="18 + 25")  # another call nearby stays
    assert len(merge_calls(text, near + [other], repeat_window=10)[1]) == 3
    assert len(merge_calls(text, near, repeat_window=0)[1]) == 3  # 0: no limit
