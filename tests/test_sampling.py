"""Positions (p of the bracket token, tau_s, top k), candidate sampling, parsing and dedup."""

from __future__ import annotations

import copy

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.data_aug.prefix_cache import (
    PromptCache,
    ToolPrompt,
    cache_kv,
    chunk_document,
    encode,
    lm_parts,
    tokenize_document,
)
from toolformer.data_aug.sampling import (
    BracketTokens,
    bracket_probs,
    could_be_call,
    dedupe,
    parse_candidate,
    row_seed,
    sample_calls,
    select_positions,
)
from toolformer.syntax import APICall
from toolformer.tools.base import Tool

PROMPT = (
    "Add numbers with [Add(a, b)].\nInput: 2 and 3 make 5\nOutput: 2 and 3 make [Add(2, 3)] 5\n"
    "Input: {text}\nOutput:"
)
DOC = "They had 10 apples and 5 pears, 15 fruits in all, and then some more."


class Add(Tool):
    name = "Add"
    description = "adds integers"
    prompt = PROMPT

    def run(self, args, context=None):
        return str(sum(int(x) for x in args.split(",")))


def biased(model, tok, bias):
    """A copy of ``model`` whose output head adds ``bias[token text]`` to the logits."""
    m = copy.deepcopy(model)
    head = torch.nn.Linear(m.lm_head.in_features, m.lm_head.out_features, bias=True)
    with torch.no_grad():
        head.weight.copy_(m.lm_head.weight)
        head.bias.zero_()
        for text, value in bias.items():
            ids = [int(text)] if isinstance(text, int) else encode(tok, text)
            head.bias[ids[0]] = value
    m.lm_head = head
    return m


_BRACKETS = {}


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """One torch thread for this module's tiny models (conftest's ``one_torch_thread``)."""


def setup(model, tok, text=DOC):
    parts = lm_parts(model)
    cache = PromptCache(parts, ToolPrompt(tok, Add(), [tok.bos_token_id]))
    chunk = chunk_document(tok, text, 256)[0]
    rest = cache.prompt.rest_ids(chunk.text)
    brackets = _BRACKETS.get(id(tok)) or _BRACKETS.setdefault(
        id(tok), BracketTokens(tok, parts.head.out_features)
    )
    openers = [brackets.opener(s) for s in chunk.space_opener]
    return parts, cache, chunk, rest, brackets, openers


# --------------------------------------------------------------------------- tokens and positions


def test_bracket_tokens_of_smollm2(smol_tokenizer):
    b = BracketTokens(smol_tokenizer)
    assert (
        b.opener(True) == encode(smol_tokenizer, " [")[0]
        and b.opener(False) == encode(smol_tokenizer, "[")[0]
    )
    for piece in ("]", ")]", "]."):
        assert b.stop[encode(smol_tokenizer, piece)[0]]
    assert not b.stop[encode(smol_tokenizer, " [")[0]] and smol_tokenizer.eos_token_id in b.end


def test_openers_follow_the_inserted_text(smol_tokenizer):
    text = "Out of 1400 people,\nmany came"
    ids, insert_at, space = tokenize_document(smol_tokenizer, text)
    pieces = smol_tokenizer.convert_ids_to_tokens(ids)
    assert pieces[:4] == ["ĠOut", "Ġof", "Ġ", "1"]
    # before "Ġ" (a space token after "of"): " ["; before "1" (after the bare space): "["
    assert space[:4] == [True, True, True, False]
    assert space[pieces.index("many")] is False  # after the newline
    assert [text[a:] for a in insert_at[:4]] == [
        text,
        " of 1400 people,\nmany came",
        " 1400 people,\nmany came",
        "1400 people,\nmany came",
    ]


def test_chunks_cover_the_document(smol_tokenizer):
    text = " ".join(f"word{i}" for i in range(300))
    ids, _, _ = tokenize_document(smol_tokenizer, text)
    chunks = chunk_document(smol_tokenizer, text, 64)
    assert [t for c in chunks for t in c.ids] == ids and all(len(c) <= 64 for c in chunks)
    assert chunks[0].char_start == 0 and chunks[-1].char_end == len(text)
    for c in chunks:
        assert c.text == text[c.char_start : c.char_end].strip()
        assert c.token_start == sum(len(d) for d in chunks[: c.index])


def test_select_positions_threshold_and_top_k():
    probs = [0.01, 0.5, 0.2, 0.06, 0.5, 0.05, 0.9]
    assert select_positions(probs, 0.05, 3) == [1, 4, 6]  # in text order
    assert select_positions(probs, 0.05, 10) == [1, 2, 3, 4, 6]  # 0.05 is not > 0.05
    assert select_positions(probs, 0.0, 2) == [1, 6]  # ties: the earlier position wins
    assert select_positions(probs, 0.95, 5) == []
    assert select_positions(probs, 0.0, 3, eligible=range(2, 7)) == [2, 4, 6]


def test_bracket_probs_match_a_full_forward_pass(tiny_model, smol_tokenizer):
    model = biased(tiny_model, smol_tokenizer, {" [": 11.0, "[": 10.0})
    parts, cache, chunk, rest, brackets, openers = setup(model, smol_tokenizer)
    probs, kv = bracket_probs(parts, cache, rest, chunk.ids, openers)
    ids = cache.prompt.prompt_ids(chunk.text) + chunk.ids
    with torch.no_grad():
        p = model(input_ids=torch.tensor([ids])).logits[0].float().softmax(-1)
    start = len(ids) - len(chunk.ids) - 1
    want = torch.stack([p[start + i, openers[i]] for i in range(len(chunk))])
    assert torch.allclose(probs, want, atol=1e-5)
    assert probs.min() > 0.05  # the bias makes the bracket likely everywhere
    assert kv.get_seq_length() == len(ids) - 1
    top = select_positions(probs.tolist(), 0.05, 5)
    assert len(top) == 5 and min(probs[top]) >= max(
        probs[[i for i in range(len(chunk)) if i not in top]]
    )


# --------------------------------------------------------------------------- sampling


def sample(model, tok, positions, m, **kw):
    parts, cache, chunk, rest, brackets, openers = setup(model, tok)
    _, kv = bracket_probs(parts, cache, rest, chunk.ids, openers)
    seeds = kw.pop("seeds", lambda p, j: row_seed(0, "doc", 0, "Add", p, j))
    return sample_calls(
        parts,
        tok,
        cache_kv(kv),
        len(cache.prompt.prefix_ids) + len(rest),
        positions,
        {p: openers[p] for p in positions},
        m,
        seeds,
        brackets,
        **kw,
    )


def test_sampling_stops_at_the_first_bracket_token(tiny_model, smol_tokenizer):
    model = biased(tiny_model, smol_tokenizer, {")]": 30.0})
    out = sample(model, smol_tokenizer, [2, 5], 3)
    assert len(out) == 6
    assert all(
        s.closed and s.tokens == encode(smol_tokenizer, ")]") and s.text == ")]" for s in out
    )
    assert all(parse_candidate(s.text, "Add") is None for s in out)  # closed but malformed


def test_unclosed_samples_run_to_the_limit_and_are_not_closed(tiny_model, smol_tokenizer):
    tok = smol_tokenizer
    b = BracketTokens(tok)
    bias = {int(i): -1e4 for i in torch.nonzero(b.stop).flatten()}
    bias[tok.eos_token_id] = -1e4
    model = biased(tiny_model, tok, bias)
    out = sample(model, tok, [1, 4], 2, max_new_tokens=7)
    assert all(not s.closed and not s.abandoned and len(s.tokens) == 7 for s in out)
    # with the tool given, rows stop as soon as they cannot spell "Add(" any more
    out = sample(model, tok, [1, 4], 2, max_new_tokens=7, tool="Add")
    assert all(s.abandoned and not s.closed and len(s.tokens) < 7 for s in out)


@pytest.mark.parametrize("shared", [True, False])
def test_sampling_does_not_depend_on_batching(tiny_model, smol_tokenizer, shared):
    model = biased(tiny_model, smol_tokenizer, {")]": 3.0, "Add": 3.0, "(": 2.0})
    kw = dict(max_new_tokens=5, shared_attention=shared)
    big = sample(model, smol_tokenizer, [1, 8], 3, batch_size=64, **kw)
    one = sample(model, smol_tokenizer, [1, 8], 3, batch_size=1, **kw)
    two = sample(model, smol_tokenizer, [1, 8], 3, batch_size=2, max_batch_tokens=10_000, **kw)
    assert [s.tokens for s in big] == [s.tokens for s in one] == [s.tokens for s in two]
    assert len({tuple(s.tokens) for s in big}) > 1  # real sampling, not one repeated sample
    other = sample(
        model,
        smol_tokenizer,
        [1, 8],
        3,
        seeds=lambda p, j: row_seed(1, "doc", 0, "Add", p, j),
        **kw,
    )
    assert [s.tokens for s in other] != [s.tokens for s in big]


def test_shared_prefix_attention_matches_copied_cache(tiny_model, smol_tokenizer):
    model = biased(tiny_model, smol_tokenizer, {")]": 1.0})
    a = sample(model, smol_tokenizer, [0, 6, 12], 2, max_new_tokens=6, shared_attention=True)
    b = sample(model, smol_tokenizer, [0, 6, 12], 2, max_new_tokens=6, shared_attention=False)
    assert [s.tokens for s in a] == [s.tokens for s in b]
    assert model.config._attn_implementation != "toolformer_shared_prefix"  # restored


def test_sampling_matches_one_full_forward_per_step(tiny_model, smol_tokenizer):
    """Greedy decoding from the shared cache equals argmax over a fresh full pass per token."""
    tok = smol_tokenizer
    model = biased(tiny_model, tok, {")]": 1.5})
    out = sample(model, tok, [4], 1, max_new_tokens=5, temperature=0.0)[0]
    parts, cache, chunk, rest, brackets, openers = setup(model, tok)
    ids = cache.prompt.prompt_ids(chunk.text) + chunk.ids[:4] + [openers[4]]
    want = []
    for _ in range(len(out.tokens)):
        with torch.no_grad():
            t = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
        want.append(t)
        ids.append(t)
    assert out.tokens == want


def _rows_run(model):
    """A counter of the rows the decoder stack runs (its input batch size, summed over passes)."""
    seen = []
    handle = model.model.register_forward_pre_hook(
        lambda mod, args, kwargs: seen.append(kwargs["input_ids"].shape[0]), with_kwargs=True
    )
    return seen, handle


@pytest.mark.parametrize("shared", [True, False])
@pytest.mark.parametrize("constrained", [True, False])
def test_rows_with_the_same_prefix_share_one_model_row_and_draw_the_same_samples(
    tiny_model, smol_tokenizer, shared, constrained
):
    """Grouped sampling (one model row per distinct prefix, split when the rows' draws differ)
    gives exactly the samples of one model row per sample, with fewer rows run."""
    from toolformer.constrain import token_index
    from toolformer.grammar import call_grammar

    tok = smol_tokenizer
    # peaked enough that rows share their first tokens, flat enough that they then split
    model = biased(
        tiny_model, tok, {"Add": 12.0, "(": 11.0, "1": 3.0, "2": 3.0, ")]": 2.0, "]": 2.0}
    )
    kw = dict(max_new_tokens=7, shared_attention=shared, tool="Add")
    if constrained:
        kw.update(
            grammars={p: call_grammar([Add()], "]") for p in (1, 5, 9)}, index=token_index(tok)
        )
    runs = {}
    for grouped in (True, False):
        seen, handle = _rows_run(model)
        try:
            runs[grouped] = (
                sample(model, tok, [1, 5, 9], 8, group_prefixes=grouped, **kw),
                sum(seen),
            )
        finally:
            handle.remove()
    (a, rows_a), (b, rows_b) = runs[True], runs[False]
    assert [(s.position, s.index, s.tokens, s.closed, s.abandoned) for s in a] == [
        (s.position, s.index, s.tokens, s.closed, s.abandoned) for s in b
    ]
    assert len({tuple(s.tokens) for s in a}) > 3  # real sampling: the groups did split
    assert max(len(s.tokens) for s in a) > 2
    assert rows_a < rows_b
    if constrained:
        assert all(s.closed for s in a)


# --------------------------------------------------------------------------- parsing and dedup


@pytest.mark.parametrize(
    "sampled, want",
    [
        ("Add(1, 2)]", APICall("Add", "1, 2")),
        ("add( 3 )]", APICall("Add", "3")),
        ("Add(1) -> 7]", APICall("Add", "1")),  # the model's own result is dropped
        ("Add()]", APICall("Add", "")),
        ("Mul(1, 2)]", None),
        (")]", None),
        ("Add 1, 2]", None),
        (" Add(1)]", None),
    ],
)
def test_parse_candidate(sampled, want):
    assert parse_candidate(sampled, "Add") == want


def test_dedupe_counts_identical_position_call_pairs():
    calls = [
        (3, APICall("Add", "1, 2")),
        (3, APICall("Add", "1, 2")),
        (4, APICall("Add", "1, 2")),
        (3, APICall("Add", "2, 1")),
        (3, APICall("Add", "1, 2")),
    ]
    unique, dropped = dedupe(calls)
    assert unique == [calls[0], calls[2], calls[3]] and dropped == 2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=30))
def test_could_be_call_is_prefix_logic(text):
    ok = could_be_call(text, "Add")
    assert ok == ("add(".startswith(text.lower()) or text.lower().startswith("add("))
    if parse_candidate(text, "Add") is not None:
        assert ok  # never abandon a row that would parse


def test_row_seeds_are_stable_and_distinct():
    assert row_seed(0, "d", 0, "Add", 3, 1) == row_seed(0, "d", 0, "Add", 3, 1)
    seeds = {
        row_seed(0, "d", 0, t, p, j) for t in ("Add", "QA") for p in range(20) for j in range(10)
    }
    assert len(seeds) == 400 and all(0 <= s < 2**63 for s in seeds)


def tiny_gemma3(vocab_size: int):
    """A tiny random Gemma 3: sliding-window layers (window 12, shorter than the prompt) and
    final-logit soft-capping, the features the shared-prefix attention must honour."""
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    cfg = Gemma3TextConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=8,
        sliding_window=12,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"],
        max_position_embeddings=1024,
        final_logit_softcapping=30.0,
    )
    return Gemma3ForCausalLM(cfg).eval()


def test_sliding_window_model_samples_like_full_passes(smol_tokenizer):
    tok = smol_tokenizer
    model = biased(tiny_gemma3(len(tok)), tok, {")]": 3.0, "Add": 3.0, "(": 2.0})
    a = sample(model, tok, [1, 8, 15], 2, max_new_tokens=4, shared_attention=True)
    b = sample(model, tok, [1, 8, 15], 2, max_new_tokens=4, shared_attention=False)
    assert [s.tokens for s in a] == [s.tokens for s in b]
    parts, cache, chunk, rest, brackets, openers = setup(model, tok)
    for out in sample(model, tok, [4, 12], 1, max_new_tokens=4, temperature=0.0):
        ids = (
            cache.prompt.prompt_ids(chunk.text)
            + chunk.ids[: out.position]
            + [openers[out.position]]
        )
        want = []
        for _ in range(len(out.tokens)):
            with torch.no_grad():
                want.append(int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax()))
            ids.append(want[-1])
        assert out.tokens == want
