"""Weighted losses, the keep rule and the batched scorer against the formula."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.data_aug.prefix_cache import encode, lm_parts
from toolformer.data_aug.reference import textbook_loss
from toolformer.data_aug.scoring import (
    Scorer,
    keep_decision,
    loss_weights,
    plan_batches,
    weighted_loss,
)


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """One torch thread for this module's tiny models (conftest's ``one_torch_thread``)."""


def test_weights_are_the_papers():
    assert loss_weights(5) == pytest.approx([1.0, 0.8, 0.6, 0.4, 0.2])
    w = loss_weights(5)
    assert [x / sum(w) for x in w] == pytest.approx([1 / 3, 0.8 / 3, 0.2, 0.4 / 3, 0.2 / 3])


def test_weighted_loss_arithmetic_and_end_of_text():
    nll = {j: float(j + 1) for j in range(10)}  # nll of token j is j + 1
    # L_2 = (1*3 + .8*4 + .6*5 + .4*6 + .2*7) / 3
    assert weighted_loss(nll, 2, 10) == pytest.approx((3 + 3.2 + 3 + 2.4 + 1.4) / 3)
    # two tokens left: weights 1 and .8, normalised over them
    assert weighted_loss(nll, 8, 10) == pytest.approx((9 + 0.8 * 10) / 1.8)
    assert weighted_loss(nll, 9, 10) == pytest.approx(10.0)
    with pytest.raises(ValueError):
        weighted_loss(nll, 10, 10)


@pytest.mark.parametrize(
    "plus, empty, none, tau, keep, minus",
    [
        (1.0, 2.0, 1.75, 0.5, True, 1.75),  # L- = min(2.0, 1.75); 0.75 >= 0.5
        (1.0, 2.0, 1.75, 1.0, False, 1.75),
        (1.0, 1.5, 3.0, 0.5, True, 1.5),  # exactly tau_f: kept (>=)
        (2.0, 1.0, 1.25, 0.0, False, 1.0),  # the call makes things worse
        (1.0, 1.0, 1.0, 0.0, True, 1.0),
    ],
)
def test_keep_rule(plus, empty, none, tau, keep, minus):
    assert keep_decision(plus, empty, none, tau) == (keep, minus)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), max_size=60), st.integers(1, 16), st.integers(1, 4000))
def test_plan_batches_covers_rows_within_caps(lengths, batch_size, max_tokens):
    lengths = sorted(lengths, reverse=True)
    plan = plan_batches(lengths, batch_size, max_tokens)
    assert [i for lo, hi in plan for i in range(lo, hi)] == list(range(len(lengths)))
    for lo, hi in plan:
        assert hi - lo <= batch_size
        assert hi - lo == 1 or (hi - lo) * lengths[lo] <= max_tokens


def direct_losses(model, start, prefix, doc, positions, horizon=5):
    """The formula, written out independently: one full pass, log-softmax, weighted sums."""
    ids = list(start) + list(prefix) + list(doc)
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([ids])).logits[0].double().log_softmax(-1)
    head = len(start) + len(prefix)
    out = {}
    for i in positions:
        num = den = 0.0
        for t in range(horizon):
            j = i + t
            if j >= len(doc):
                break
            w = max(0.0, 1 - t / horizon)
            num += w * -float(logp[head + j - 1, doc[j]])
            den += w
        out[i] = num / den
    return out


@pytest.mark.parametrize("start", [[1], []])
def test_batched_scorer_equals_direct_formula(tiny_model, smol_tokenizer, start):
    tok = smol_tokenizer
    doc = encode(tok, " Out of 1400 participants, 400 (or 29%) passed the test in the spring.")
    prefixes = [[]] + [
        encode(tok, z)
        for z in (
            "[Calculator(400 / 1400) -> 0.29]",
            "[Calculator(400 / 1400) -> ]",
            "[QA(Who passed the test?) -> many]",
            "[Calendar() -> Today is Monday, January 30, 2023.]",
        )
    ]
    rng = random.Random(0)
    positions = [
        sorted(rng.sample(range(1, len(doc)), 4)) + [len(doc) - 1, len(doc) - 3] for _ in prefixes
    ]
    if start:
        positions[0].append(0)
    scorer = Scorer(lm_parts(tiny_model), start, horizon=5, batch_size=2, max_batch_tokens=80)
    got = scorer.losses(doc, prefixes, positions)
    assert scorer.stats.forwards >= 3  # several batches, with padding
    for prefix, ps, row in zip(prefixes, positions, got):
        assert set(row) == set(ps)
        want = direct_losses(tiny_model, start, prefix, doc, ps)
        for i in ps:
            assert row[i] == pytest.approx(want[i], abs=1e-5)
    i = positions[1][0]  # the reference implementation's loss agrees too
    assert textbook_loss(tiny_model, start, prefixes[1], doc, i, 5) == pytest.approx(
        got[1][i], abs=1e-5
    )


def test_scorer_without_start_token_cannot_score_position_zero(tiny_model, smol_tokenizer):
    doc = encode(smol_tokenizer, " Hello there, general.")
    scorer = Scorer(lm_parts(tiny_model), [], horizon=5)
    empty, with_call = scorer.losses(
        doc, [[], encode(smol_tokenizer, "[QA(x) -> y]")], [[0, 1], [0, 1]]
    )
    assert set(empty) == {1} and set(with_call) == {0, 1}


def test_scorer_truncates_rows_after_the_last_weighted_token(tiny_model, smol_tokenizer):
    doc = encode(smol_tokenizer, " " + " ".join(["word"] * 60))
    scorer = Scorer(lm_parts(tiny_model), [1], horizon=5)
    scorer.losses(doc, [[]], [[3]])
    assert scorer.stats.tokens == 1 + 3 + 5  # start + x_0..x_7
