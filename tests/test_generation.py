"""Tool-calling generation: the KV-cache loop against the re-encoding reference, batching,
call limits, every fault case, streaming; one integration test on the real SmolLM2."""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest
import torch
from conftest import make_tiny_model
from hypothesis import example, given, settings
from hypothesis import strategies as st
from transformers import LlamaForCausalLM

from toolformer.generation import (
    UNCLOSED,
    CallRecord,
    GenerationConfig,
    ToolGenerator,
    call_token_ids,
    generate_reencode,
)
from toolformer.generation.detok import _Detokenizer
from toolformer.generation.row import _split_partial_call
from toolformer.grammar import CalculatorArgs
from toolformer.syntax import parse_call
from toolformer.tools.base import Tool, ToolContext, ToolError
from toolformer.tools.executor import ToolExecutor


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run 10x faster on one thread on a busy machine (no OpenMP spinning)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------- a scripted model


class ScriptedLlama(LlamaForCausalLM):
    """A tiny random Llama plus a bigram bias: after token ``a`` the token ``script[a]`` gets
    +``strength``. The bias depends only on each position's own input token, so it acts the same
    on a KV cache and on a full re-encoding: calls become deterministic, everything else stays
    the random model's (and so depends on the cache being right)."""

    def set_script(self, pairs, strength: float = 30.0) -> "ScriptedLlama":
        table = torch.full((self.config.vocab_size,), -1, dtype=torch.long)
        for a, b in pairs:
            table[a] = b
        self.table, self.strength = table, strength
        return self

    def forward(self, input_ids=None, logits_to_keep=0, **kwargs):
        out = super().forward(input_ids=input_ids, logits_to_keep=logits_to_keep, **kwargs)
        k = out.logits.shape[1]
        nxt = self.table.to(input_ids.device)[input_ids[:, -k:]]
        hit = nxt >= 0
        bias = torch.zeros_like(out.logits)
        bias[hit.nonzero(as_tuple=True) + (nxt[hit],)] = self.strength
        out.logits = out.logits + bias
        return out


@pytest.fixture(scope="module")
def base_model(smol_tokenizer):
    base = make_tiny_model(len(smol_tokenizer), seed=3)
    model = ScriptedLlama(base.config)
    model.load_state_dict(base.state_dict())
    sharpen(model)
    return model.eval()


def sharpen(model):
    """Make attention sharp and strong: a random init barely looks at its context, so a wrong
    position or a missing token would go unnoticed. After this, most next tokens change."""
    with torch.no_grad():
        for layer in model.model.layers:
            attn = layer.self_attn
            attn.q_proj.weight *= 10
            attn.k_proj.weight *= 10
            attn.v_proj.weight *= 5
            attn.o_proj.weight *= 5
    return model


def chain(tok, *pieces):
    """Bigram pairs that make the model write ``pieces`` in order (each piece one or more
    tokens)."""
    ids = []
    for p in pieces:
        ids += tok.encode(p, add_special_tokens=False)
    return list(zip(ids[:-1], ids[1:]))


CALC_CALL = (":", " [", "Calcul", "ator", "(", "3", "*", "4", ")", " ->")


@pytest.fixture
def scripted(base_model, smol_tokenizer):
    """``scripted(*chains)`` sets the model's script; ':' opens a Calculator call by default."""

    def make(*chains):
        pairs = []
        for c in chains:
            pairs += chain(smol_tokenizer, *c)
        return base_model.set_script(pairs)

    return make


class Calc(Tool):
    name = "Calculator"
    description = "multiplies a*b"
    arg_grammar = CalculatorArgs()

    def run(self, args, context=None):
        a, b = self.parse_args(args).split("*")
        return str(int(a) * int(b))


class Padded(Tool):
    """A result whose length depends on the row's context (different forced chunk lengths)."""

    name = "Calculator"
    description = "a*b, padded by the context's day"
    uses_context = True

    def run(self, args, context=None):
        a, b = args.split("*")
        return str(int(a) * int(b)) + " ok" * context.date.day


def calc_executor(**kw):
    return ToolExecutor([Calc()], **kw)


def strip_timing(calls):
    return [(c.tool, c.args, c.result, c.error, c.start, c.end) for c in calls]


def assert_same(a, b):
    assert a.text == b.text
    assert strip_timing(a.calls) == strip_timing(b.calls)
    assert a.num_tokens == b.num_tokens
    assert a.finish_reason == b.finish_reason


def gen_for(model, tok, executor=None, **cfg):
    return ToolGenerator(model, tok, executor or calc_executor(), GenerationConfig(**cfg))


# --------------------------------------------------------------------------- the basic path


def test_call_token_ids_are_the_brackets(smol_tokenizer):
    open_ids, bracket_ids = call_token_ids(smol_tokenizer)
    assert {smol_tokenizer.decode([i]) for i in open_ids} == {"[", " ["}
    assert set(open_ids) <= set(bracket_ids)
    assert all(smol_tokenizer.decode([i]).lstrip().startswith("[") for i in bracket_ids)
    assert len(bracket_ids) > len(open_ids)  # "[[", " [(", ... block too


def test_call_is_made_and_result_inserted(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=20).generate("Compute:")[0]
    assert out.text.startswith(" [Calculator(3*4) -> 12] so")
    (call,) = out.calls
    assert (call.tool, call.args, call.result, call.error) == ("Calculator", "3*4", "12", None)
    assert out.text[call.start : call.end] == "[Calculator(3*4) -> 12]"
    assert out.num_tokens == 20 and out.finish_reason == "length"


def test_kv_cache_matches_reencoding_reference_token_for_token(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " and", " then", ":"), ("Well", " now", " see", ":"))
    prompts = ["Compute:", "Well", "A longer prompt that never asks for anything at all", "x"]
    ex = ToolExecutor([Padded()])
    contexts = [ToolContext(date=dt.date(2023, 1, d)) for d in (3, 1, 7, 2)]
    cfg = dict(max_new_tokens=48, max_calls=2, call_top_k=3)
    ours = gen_for(model, smol_tokenizer, ex, **cfg).generate(prompts, contexts=contexts)
    ref = generate_reencode(
        model, smol_tokenizer, prompts, ex, GenerationConfig(**cfg), contexts=contexts
    )
    # two calls in each of the first two rows, at different steps, with results of different lengths
    assert [len(o.calls) for o in ours] == [2, 2, 0, 0]
    assert ours[0].calls[0].result == "12 ok ok ok" and ours[1].calls[0].result == "12 ok"
    for a, b in zip(ours, ref):
        assert_same(a, b)
    # feeding the forced result one token per step gives the same tokens too
    slow = gen_for(model, smol_tokenizer, ex, chunked_results=False, **cfg).generate(
        prompts, contexts=contexts
    )
    for a, b in zip(ours, slow):
        assert_same(a, b)


def test_batch_rows_pause_independently_equals_each_row_alone(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"), ("Well", " now", " see", " that", ":"))
    prompts = ["Well", "Compute:", "Nothing to compute here, only words and more words", "Hi"]
    gen = gen_for(model, smol_tokenizer, max_new_tokens=32, call_top_k=3)
    batched = gen.generate(prompts)
    alone = [gen.generate(p)[0] for p in prompts]
    assert batched[0].calls[0].ok and batched[1].calls[0].ok
    assert batched[0].calls[0].start != batched[1].calls[0].start  # calls at different steps
    for a, b in zip(batched, alone):
        assert_same(a, b)
    # a small batch size splits the prompts into several caches; same answers
    for a, b in zip(
        gen.generate(prompts, GenerationConfig(max_new_tokens=32, call_top_k=3, batch_size=3)),
        alone,
    ):
        assert_same(a, b)


def test_tools_disabled_never_opens_a_bracket(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    _, bracket_ids = call_token_ids(smol_tokenizer)
    gen = gen_for(
        model,
        smol_tokenizer,
        max_new_tokens=24,
        tools_enabled=False,
        call_top_k=len(smol_tokenizer),
    )
    for out in gen.generate(["Compute:", "Well: Compute:"]):
        assert out.calls == []
        ids = smol_tokenizer.encode(out.text, add_special_tokens=False)
        assert not set(ids) & set(bracket_ids)
        assert "[" not in out.text


def test_max_calls_is_respected(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " and", ":"))
    for max_calls in (0, 1, 3):
        out = gen_for(model, smol_tokenizer, max_new_tokens=60, max_calls=max_calls).generate(
            "Compute:"
        )[0]
        assert len(out.calls) == max_calls
        assert out.text.count("[") == max_calls
        assert all(c.result == "12" for c in out.calls)


def test_call_top_k_triggers_a_call_the_model_would_not_make(base_model, smol_tokenizer):
    model = base_model.set_script([])  # the random model alone: '[' is never its top token
    assert gen_for(model, smol_tokenizer, max_new_tokens=6).generate("Hello")[0].calls == []
    out = gen_for(model, smol_tokenizer, max_new_tokens=6, call_top_k=len(smol_tokenizer)).generate(
        "Hello"
    )[0]
    assert len(out.calls) == 1 and out.text.lstrip().startswith("[")


def test_eos_ends_the_output(scripted, smol_tokenizer):
    model = scripted(("Bye", " now", "<|im_end|>"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=20).generate("Bye")[0]
    assert out.finish_reason == "eos" and out.text == " now" and out.num_tokens == 2
    forced = gen_for(model, smol_tokenizer, max_new_tokens=5, min_new_tokens=5).generate("Bye")[0]
    assert forced.num_tokens == 5 and forced.finish_reason == "length"


def test_stop_strings_cut_the_text_outside_calls(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so", " end", "."))
    full = gen_for(model, smol_tokenizer, max_new_tokens=16).generate("Compute:")[0]
    assert ") ->" in full.text and " end." in full.text
    # "->" occurs inside the call: it must not stop the output there
    out = gen_for(model, smol_tokenizer, max_new_tokens=16, stop_strings=("->", " end")).generate(
        "Compute:"
    )[0]
    assert out.finish_reason == "stop"
    assert out.text == full.text[: full.text.index(" end")]
    assert out.calls[0].result == "12"


def test_stop_string_ends_the_output_only_after_some_text(scripted, smol_tokenizer):
    # "\n12 jars.\n" with stop "\n" once lost the answer (cut before any text)
    model = scripted((":", "\n", "1", "2", " jars", ".", "\n"))
    out = gen_for(
        model, smol_tokenizer, max_new_tokens=12, stop_strings=("\n",), tools_enabled=False
    ).generate("Compute:")[0]
    assert out.finish_reason == "stop" and out.text == "\n12 jars.", repr(out.text)


@pytest.mark.parametrize(
    "text, expect",
    [
        ("\n12 jars.\n", 9),
        ("\n \nx", None),
        ("a\n", 1),
        ("  \n\n", None),
        ("x Q:", 2),
        ("Q: x", None),
    ],
)
def test_find_stop_needs_text_before_the_stop_string(text, expect):
    from toolformer.generation.detok import find_stop

    assert find_stop(text, 0, len(text), ("\n", "Q:")) == expect


# --------------------------------------------------------------------------- sampling


def test_sampling_is_seeded_and_top_k_1_is_greedy(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    gen = gen_for(model, smol_tokenizer)
    prompts = ["Compute:", "Tell me a story"]
    a = gen.generate(prompts, GenerationConfig(max_new_tokens=16, do_sample=True, seed=1))
    b = gen.generate(prompts, GenerationConfig(max_new_tokens=16, do_sample=True, seed=1))
    c = gen.generate(prompts, GenerationConfig(max_new_tokens=16, do_sample=True, seed=2))
    assert [o.text for o in a] == [o.text for o in b]
    assert [o.text for o in a] != [o.text for o in c]
    assert a[0].calls[0].result == "12"  # the forced bracket and scripted call survive sampling
    greedy = gen.generate(prompts, GenerationConfig(max_new_tokens=16))
    top1 = gen.generate(
        prompts, GenerationConfig(max_new_tokens=16, do_sample=True, top_k=1, seed=5)
    )
    nucleus = gen.generate(
        prompts, GenerationConfig(max_new_tokens=16, do_sample=True, top_p=1e-6, seed=5)
    )
    assert [o.text for o in top1] == [o.text for o in greedy] == [o.text for o in nucleus]


# --------------------------------------------------------------------------- faults


def test_call_closed_before_arrow_is_unclosed(scripted, smol_tokenizer):
    model = scripted((":", " [", "Calcul", "ator", "(", "3", "*", "4", ")]", " so"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=14, constrained=False).generate("Compute:")[
        0
    ]
    (call,) = out.calls
    assert call.error == UNCLOSED and call.result is None
    assert (call.tool, call.args) == ("Calculator", "3*4")
    assert out.text[call.start : call.end] == "[Calculator(3*4)]"
    assert out.text.startswith(" [Calculator(3*4)] so")  # decoding went on after the fault


def test_bracket_token_the_model_picks_itself_opens_a_call(scripted, smol_tokenizer):
    model = scripted((":", " []", " so"))
    # call_top_k=0: no forcing; the model's own " []" still opens (and at once closes) a call
    out = gen_for(
        model, smol_tokenizer, max_new_tokens=6, call_top_k=0, constrained=False
    ).generate("Compute:")[0]
    (call,) = out.calls
    assert call.error == UNCLOSED and out.text[call.start : call.end] == "[]"
    assert out.text.startswith(" [] so")
    # with call_top_k=10 the trigger forces the plain opener instead of " []"
    out = gen_for(model, smol_tokenizer, max_new_tokens=6, constrained=False).generate("Compute:")[
        0
    ]
    assert out.text.startswith(" [") and not out.text.startswith(" []")


def test_call_without_arrow_ends_at_max_call_tokens(scripted, smol_tokenizer):
    model = scripted((":", " [", "Calcul", "ator", "(", " x"), (" x", " x"))
    out = gen_for(
        model, smol_tokenizer, max_new_tokens=30, max_call_tokens=8, constrained=False
    ).generate("Compute:")[0]
    (call,) = out.calls
    assert call.error == UNCLOSED and call.tool == "Calculator"
    assert (
        smol_tokenizer.encode(out.text[call.start : call.end], add_special_tokens=False).__len__()
        <= 9
    )
    assert out.num_tokens == 30 and "x x" in out.text[call.end :]  # continued as plain text


def test_output_ending_inside_a_call_is_unclosed(scripted, smol_tokenizer):
    model = scripted((":", " [", "Calcul", "ator", "(", "3", "*", "4"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=6).generate("Compute:")[0]
    (call,) = out.calls
    assert call.error == UNCLOSED and call.end == len(out.text) and out.finish_reason == "length"


def test_unknown_tool_inserts_an_empty_result(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    out = gen_for(model, smol_tokenizer, ToolExecutor([]), max_new_tokens=14).generate("Compute:")[
        0
    ]
    (call,) = out.calls
    assert call.result is None and "unknown tool 'Calculator'" in call.error
    assert out.text.startswith(" [Calculator(3*4) ->] so")


def test_malformed_call_inserts_an_empty_result(scripted, smol_tokenizer):
    model = scripted((":", " [", "Calcul", "ator", " ->"), ("]", " so"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=10, constrained=False).generate("Compute:")[
        0
    ]
    (call,) = out.calls
    assert call.error.startswith("malformed call") and call.tool == "Calculator"
    assert out.text.startswith(" [Calculator ->] so")


def test_constrained_call_cannot_close_before_the_arrow(scripted, smol_tokenizer):
    # the same script as above: under the grammar ")]" is not allowed after the arguments
    model = scripted((":", " [", "Calcul", "ator", "(", "3", "*", "4", ")]", " so"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=24).generate("Compute:")[0]
    (call,) = out.calls
    assert call.error != UNCLOSED and call.tool == "Calculator" and call.args.startswith("3*4")
    assert out.text.startswith(" [Calculator(3*4") and ")]" not in out.text[call.start : call.end]
    assert "->" in out.text[call.start : call.end]  # the tool ran


def test_constrained_generation_writes_a_call_where_the_model_would_not(scripted, smol_tokenizer):
    # the model writes "[Calculator ->": the grammar makes it write a call of a tool instead
    model = scripted((":", " [", "Calcul", "ator", " ->"), ("]", " so"))
    out = gen_for(model, smol_tokenizer, max_new_tokens=30).generate("Compute:")[0]
    (call,) = out.calls
    assert (
        call.tool == "Calculator"
        and call.error != UNCLOSED
        and not (call.error or "").startswith("malformed")
    )
    assert parse_call(out.text[call.start : call.end]).tool == "Calculator"


class Echo(Tool):
    name = "Echo"
    description = "echoes its argument"

    def run(self, args, context=None):
        return args


def test_arrow_inside_an_argument_does_not_end_the_call(scripted, smol_tokenizer):
    # the call was once cut at the first "->" ("malformed call")
    model = scripted(
        (":", " [", "Echo", "(", "what", " does", " ->", " mean", ")", " ->"), ("]", " ok")
    )
    gen = ToolGenerator(
        model,
        smol_tokenizer,
        ToolExecutor([Echo()]),
        GenerationConfig(max_new_tokens=24, constrained=False),
    )
    out = gen.generate("Compute:")[0]
    assert out.calls[0].error is None, out.text
    assert (out.calls[0].tool, out.calls[0].args) == ("Echo", "what does -> mean"), out.text
    assert out.calls[0].result == "what does - mean"  # the executor keeps "->" out of results


def number_calculator():
    from toolformer.tools.assembly import create_tools

    return create_tools("Calculator", {"Calculator": {"numbers_from_text": True}})["Calculator"]


@pytest.mark.parametrize(
    "prompt", ["What is the capital of France:", "Which one is it? The other one:"]
)
def test_no_number_in_the_text_no_calculator_call(scripted, smol_tokenizer, prompt):
    """With numbers_from_text, a text without any number (digits or words) admits no Calculator
    call: the "[" is never written (the model wrote "[Calculator(3*4)" after such questions)."""
    model = scripted(CALC_CALL, ("]", " so"))
    gen = ToolGenerator(
        model,
        smol_tokenizer,
        ToolExecutor([number_calculator()]),
        GenerationConfig(max_new_tokens=16, call_top_k=50),
    )
    out = gen.generate(prompt)[0]
    assert out.calls == [] and "[" not in out.text, out.text
    # the same script after a text with a number (in words) calls the Calculator on it
    out = gen.generate("Multiply three by four:")[0]
    (call,) = out.calls
    assert (call.tool, call.args, call.result) == ("Calculator", "3*4", "12"), out.text


def test_no_number_in_the_text_leaves_the_other_tools(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    gen = ToolGenerator(
        model,
        smol_tokenizer,
        ToolExecutor([number_calculator(), Echo()]),
        GenerationConfig(max_new_tokens=40, max_call_tokens=16),
    )
    out = gen.generate("What is the capital of France:")[0]
    assert out.calls and out.calls[0].tool == "Echo", out.text
    assert "Calculator" not in out.text


# a few-shot demonstration with the numbers the script computes (3*4), then a problem without them
DEMO = "Q: What is 3 times 4?\nA: 12\n\n"


def _number_gen(model, tok, **cfg):
    return ToolGenerator(
        model,
        tok,
        ToolExecutor([number_calculator()]),
        GenerationConfig(**{"max_new_tokens": 16, "call_top_k": 50, **cfg}),
    )


def test_demonstrations_before_the_grammar_start_lend_no_numbers(scripted, smol_tokenizer):
    """Grow puts few-shot demonstrations before each problem: with ``numbers_from_text`` the
    model computed with a demonstration's number. From ``grammar_starts`` on, only the
    problem's numbers (5, 7) may be written in a call; without it the demonstration's may."""
    model = scripted(CALC_CALL, ("]", " so"))
    gen = _number_gen(model, smol_tokenizer)
    problem = "Q: Tom has 5 bags of 7 apples. Apples:"
    prompt = DEMO + problem
    (free,) = gen.generate([prompt])
    (call,) = free.calls
    assert (call.tool, call.args, call.result) == ("Calculator", "3*4", "12"), free.text
    for out in (
        gen.generate([prompt], grammar_starts=[len(DEMO)])[0],
        generate_reencode(
            model, smol_tokenizer, [prompt], gen.executor, gen.config, grammar_starts=[len(DEMO)]
        )[0],
        next(e.output for e in gen.stream(prompt, grammar_start=len(DEMO)) if e.kind == "done"),
    ):
        (call,) = out.calls
        assert call.tool == "Calculator" and not call.error, out.text
        numbers = re.findall(r"\d+", call.args)
        assert numbers and set(numbers) <= {"5", "7"}, out.text
    # the rows of a batch keep their own starts (the batch is sorted by prompt length)
    outs = gen.generate([problem, prompt, prompt], grammar_starts=[0, 0, len(DEMO)])
    args = [o.calls[0].args for o in outs]
    assert args[1] == "3*4" and all(set(re.findall(r"\d+", a)) <= {"5", "7"} for a in args[::2])


def test_a_call_may_open_only_where_the_text_from_the_grammar_start_has_a_number(
    scripted, smol_tokenizer
):
    """Whether a Calculator call may open is judged on the text from the start: a question
    without a number after demonstrations with numbers admits none."""
    model = scripted(CALC_CALL, ("]", " so"))
    gen = _number_gen(model, smol_tokenizer)
    prompt = DEMO + "Q: What is the capital of France:"
    out = gen.generate([prompt], grammar_starts=[len(DEMO)])[0]
    assert out.calls == [] and "[" not in out.text, out.text
    (call,) = gen.generate([prompt])[0].calls  # the whole prompt: the demonstration's 3 and 4
    assert call.args == "3*4"
    (call,) = gen.generate([prompt], grammar_starts=[0])[0].calls
    assert call.args == "3*4"


@pytest.mark.parametrize("starts", [[0, 0], [-1], [40], [True]])
def test_grammar_starts_must_be_one_offset_per_prompt_inside_it(smol_tokenizer, base_model, starts):
    gen = _number_gen(base_model, smol_tokenizer)
    with pytest.raises(ValueError, match="grammar_starts"):
        gen.generate(["Add 2 and 3:"], grammar_starts=starts)


def test_constrained_call_never_ends_inside_a_character(base_model, smol_tokenizer):
    """The model writes "[Echo(caf", the byte 0xC3 alone (the first half of "é") and then
    ") ->": the grammar let the call close there, and the output held U+FFFD. Now only a
    byte that continues the character may follow, and the call ends on whole characters."""
    tok = smol_tokenizer
    ids = [tok.encode(p, add_special_tokens=False) for p in (":", " [", "Echo", "(", "caf")]
    lead = tok.convert_tokens_to_ids("\u00c3")  # byte-level BPE's name for the byte 0xC3
    script = sum(ids, []) + [lead] + tok.encode(") ->", add_special_tokens=False)
    model = base_model.set_script(list(zip(script[:-1], script[1:])))
    config = GenerationConfig(max_new_tokens=40, max_call_tokens=16)
    gen = ToolGenerator(model, tok, ToolExecutor([Echo()]), config)
    out = gen.generate("Compute:")[0]
    (call,) = out.calls
    assert call.tool == "Echo" and call.args.startswith("caf"), out.text
    assert "\ufffd" not in out.text and "\ufffd" not in (call.result or ""), out.text
    assert call.result == call.args
    assert out.text[call.start : call.end] == f"[Echo({call.args}) -> {call.args}]"


def test_call_trigger_fires_only_where_a_word_or_number_starts(scripted, smol_tokenizer):
    # with "[" among the top-k after "1" of "16", a call once split the number
    model = scripted(("Total", ":", " 1", "6", " jars"), ("6", " jars"))
    big = len(smol_tokenizer)  # the trigger fires wherever it may
    out = gen_for(model, smol_tokenizer, max_new_tokens=4, call_top_k=big, max_calls=1).generate(
        "Total: 1"
    )[0]
    assert out.text.startswith("6"), out.text  # no call between "1" and "6"
    (call,) = out.calls
    assert out.text[: call.start].rstrip() == "6"  # the call opens before the next word


def test_word_start_rule(smol_tokenizer):
    from toolformer.generation.rules import _TokenTensors, _vocab_for, at_word_start

    sets = _TokenTensors.build(_vocab_for(smol_tokenizer, None), "cpu")
    six, jars = (
        smol_tokenizer.encode("6", add_special_tokens=False)[0],
        smol_tokenizer.encode(" jars", add_special_tokens=False)[0],
    )
    logits = torch.zeros((3, len(smol_tokenizer)))
    logits[0, six] = logits[1, jars] = logits[2, six] = 5
    assert at_word_start(logits, sets.brackets, sets.continues_word, [True, True, False]) == [
        False,
        True,
        True,
    ]


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
@example(seed=133908)
def test_constrained_sampled_calls_always_parse(tiny_model, smol_tokenizer, seed):
    """Random seeds, a random model, the trigger firing everywhere: every call is a well-formed
    call of a tool (never unclosed or malformed)."""
    from toolformer.tools.assembly import create_tools

    tools = list(create_tools("Calculator,Calendar").values()) + [Echo()]
    gen = ToolGenerator(
        tiny_model,
        smol_tokenizer,
        ToolExecutor(tools),
        GenerationConfig(
            max_new_tokens=60,
            do_sample=True,
            seed=seed,
            call_top_k=50,
            max_calls=3,
            max_call_tokens=24,
        ),
    )
    out = gen.generate("The sum of 12 and 30 is")[0]
    for call in out.calls:
        # max_new_tokens may end the output inside the last call (seed 133908 opened `[` as the
        # 60th token): unclosed only then, and only that call
        cut = out.finish_reason == "length" and call.end == len(out.text)
        assert call.error is None or not (
            (call.error == UNCLOSED and not cut) or call.error.startswith("malformed")
        ), call
        assert cut or call.tool in ("Calculator", "Calendar", "Echo")
        if (
            call.end is not None and out.text[call.end - 1 : call.end] == "]"
        ):  # not cut by max_new_tokens
            assert parse_call(out.text[call.start : call.end]).tool == call.tool


class Broken(Tool):
    name = "Calculator"
    description = "always fails"

    def run(self, args, context=None):
        raise ToolError("cannot compute 3*4")


class Crashing(Broken):
    def run(self, args, context=None):
        return 1 / 0


class Slow(Broken):
    def run(self, args, context=None):
        time.sleep(3)
        return "late"


class Huge(Broken):
    def run(self, args, context=None):
        return "word " * 2000


@pytest.mark.parametrize(
    "tool,expect",
    [
        (Broken(), "cannot compute 3*4"),
        (Crashing(), "ZeroDivisionError"),
        (Slow(), "timed out"),
    ],
)
def test_tool_failures_are_recorded_and_generation_goes_on(scripted, smol_tokenizer, tool, expect):
    model = scripted(CALC_CALL, ("]", " so"))
    ex = ToolExecutor([tool], timeout=0.3)
    out = gen_for(model, smol_tokenizer, ex, max_new_tokens=14).generate(["Compute:", "Hello"])[0]
    (call,) = out.calls
    assert call.result is None and expect in call.error
    assert out.text.startswith(" [Calculator(3*4) ->] so") and out.num_tokens == 14


def test_long_result_is_capped_by_the_executor(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    ex = ToolExecutor([Huge()], max_result_chars=50)
    out = gen_for(model, smol_tokenizer, ex, max_new_tokens=40).generate("Compute:")[0]
    (call,) = out.calls
    assert call.ok and len(call.result) <= 50
    assert out.text[call.start : call.end] == f"[Calculator(3*4) -> {call.result}]"


def test_result_goes_in_whole_past_max_new_tokens(scripted, smol_tokenizer):
    """A result cut by the token budget wrote "[Calculator(...)-> 4" while the record said 46:
    now the result goes in whole, with its "]", and the text and the record agree."""
    model = scripted(CALC_CALL)
    ex = ToolExecutor([Huge()], max_result_chars=300)
    out = gen_for(model, smol_tokenizer, ex, max_new_tokens=15).generate("Compute:")[0]
    assert out.num_tokens > 15 and out.finish_reason == "length"
    (call,) = out.calls
    assert call.ok and call.end == len(out.text) and out.text.endswith("]")
    assert parse_call(out.text[call.start : call.end]).result == call.result


@pytest.mark.parametrize("constrained", [False, True])
def test_text_and_call_record_agree_at_every_budget(scripted, smol_tokenizer, constrained):
    """Every budget from before the call to after it: a result in the record is in the text
    as " -> result]"; without one, nothing after "->"; the KV cache agrees with re-encoding."""
    model = scripted(CALC_CALL, ("]", " so", " end", "."))
    for budget in range(1, 16):
        gen = gen_for(model, smol_tokenizer, max_new_tokens=budget, constrained=constrained)
        (out,) = gen.generate("Compute:")
        for call in out.calls:
            written = out.text[call.start : call.end]
            if call.ok:
                assert written.endswith(f" -> {call.result}]"), (budget, written)
                assert parse_call(written).result == call.result
            else:
                bare = "->" not in written or written.rstrip().endswith(("->", "->]"))
                assert bare, (budget, written)
        assert out.num_tokens <= budget or out.calls[-1].end == len(out.text)
        ref = generate_reencode(model, smol_tokenizer, "Compute:", calc_executor(), gen.config)[0]
        assert_same(out, ref)


def test_a_closing_budget_writes_the_arrow_with_its_space(smol_tokenizer):
    """Where the budget closed a call, it wrote ")->" (the shortest ending), not ") ->"."""
    from toolformer.constrain import CallConstraint, token_index
    from toolformer.grammar import call_grammar

    index = token_index(smol_tokenizer)
    g = call_grammar([Calc()], "->")
    assert g.accepts("Calculator(3*4) ->") and not g.accepts("Calculator(3*4)->")
    con = CallConstraint(index, g, max_tokens=3, reserve=0)
    for tok in smol_tokenizer.encode("Calculator(3*4", add_special_tokens=False):
        con.push(tok)
    ids = []
    while not con.done:
        allowed = con.allowed().nonzero().flatten().tolist()
        ids.append(max(allowed, key=lambda i: len(index.bytes_of[i])))
        con.push(ids[-1])
    assert smol_tokenizer.decode(ids).endswith(") ->")


def test_no_call_opens_inside_a_character(smol_tokenizer):
    """A "[" after half a character split it (the output held U+FFFD before the call)."""
    from toolformer.generation.row import _Row
    from toolformer.generation.rules import _vocab_for

    row = _Row(0, "Compute:", smol_tokenizer.encode("Compute:"), smol_tokenizer, None, [], 0)
    config = GenerationConfig()
    assert row.call_allowed(config)
    é = smol_tokenizer.encode("é", add_special_tokens=False)
    lead = smol_tokenizer.convert_tokens_to_ids("\u00c3")
    cont = smol_tokenizer.convert_tokens_to_ids(smol_tokenizer.convert_ids_to_tokens(é)[0][1:])
    row.push(lead, _vocab_for(smol_tokenizer, None), config, forced=False)
    assert not row.call_allowed(config)
    row.push(cont, _vocab_for(smol_tokenizer, None), config, forced=False)
    assert row.text == "é" and row.call_allowed(config)


def test_max_new_tokens_that_leaves_no_room_for_the_prompt_is_refused(smol_tokenizer):
    """max_new_tokens >= the context kept the prompt's last token and wrote past the context."""
    from toolformer.errors import UserError

    base = make_tiny_model(len(smol_tokenizer), seed=4)
    base.config.max_position_embeddings = 64
    for budget in (64, 100):
        expect = (
            r"max_new_tokens \(%d\) must leave room for the prompt: "
            r"context 64, prompt 3 tokens"
        )
        with pytest.raises(UserError, match=expect % budget):
            gen_for(base, smol_tokenizer, max_new_tokens=budget).generate("a b c")
    out = gen_for(base, smol_tokenizer, max_new_tokens=61, min_new_tokens=61).generate("a b c")[0]
    assert out.prompt_tokens + out.num_tokens <= 64


def test_a_result_the_context_cannot_hold_is_left_out(scripted, smol_tokenizer, base_model):
    """Results go in whole, but never past the model's context: one that does not fit is
    recorded as the call's error, and the text holds no result either."""
    model = scripted(CALC_CALL, ("]", " so"))
    before = model.config.max_position_embeddings
    model.config.max_position_embeddings = 40
    try:
        gen = gen_for(
            model, smol_tokenizer, ToolExecutor([Huge()], max_result_chars=400), max_new_tokens=20
        )
        out = gen.generate("Compute:")[0]
    finally:
        model.config.max_position_embeddings = before
    (call,) = out.calls
    assert not call.ok and "does not fit in the model's context" in call.error
    assert out.text[call.start : call.end] == "[Calculator(3*4) ->]"
    assert out.prompt_tokens + out.num_tokens <= 40


def test_prompt_longer_than_the_context_is_cut_from_the_left(smol_tokenizer):
    base = sharpen(make_tiny_model(len(smol_tokenizer), seed=4))
    base.config.max_position_embeddings = 64
    prompt = " ".join(f"w{i}" for i in range(80))
    gen = gen_for(base, smol_tokenizer, max_new_tokens=8)
    out = gen.generate(prompt)[0]
    assert out.num_tokens == 8 and out.prompt_tokens == 56
    assert "truncated" in out.warnings[0] and "last 56 tokens" in out.warnings[0]
    ref = generate_reencode(
        base, smol_tokenizer, prompt, calc_executor(), GenerationConfig(max_new_tokens=8)
    )[0]
    assert_same(out, ref)


def test_empty_prompt_and_bad_config(tiny_model, smol_tokenizer):
    from toolformer.errors import UserError

    out = gen_for(tiny_model, smol_tokenizer, max_new_tokens=3).generate("")[0]
    assert out.num_tokens == 3
    for bad in (
        dict(max_new_tokens=0),
        dict(temperature=0),
        dict(top_p=0),
        dict(stop_strings=("",)),
    ):
        with pytest.raises(UserError):
            GenerationConfig(**bad)


# --------------------------------------------------------------------------- streaming


def test_callback_streams_exactly_the_final_text(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so", " end", "."))
    gen = gen_for(model, smol_tokenizer, max_new_tokens=20, stop_strings=(" end.",))
    pieces = {0: [], 1: []}
    outs = gen.generate(["Compute:", "Héllo wörld ✓"], on_text=lambda row, t: pieces[row].append(t))
    for row, out in enumerate(outs):
        assert "".join(pieces[row]) == out.text
    assert outs[0].finish_reason == "stop" and len(pieces[0]) > 3


def test_stream_events_mark_calls(scripted, smol_tokenizer):
    model = scripted(CALC_CALL, ("]", " so"))
    events = list(gen_for(model, smol_tokenizer, max_new_tokens=16).stream("Compute:"))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "done" and kinds.count("call_start") == kinds.count("call_end") == 1
    out = events[-1].output
    assert "".join(e.text for e in events if e.kind in ("text", "call_text")) == out.text
    call_text = "".join(e.text for e in events if e.kind == "call_text")
    assert call_text == "[Calculator(3*4) -> 12]"
    assert kinds.index("call_start") < kinds.index("call_end")
    end = next(e for e in events if e.kind == "call_end")
    assert isinstance(end.call, CallRecord) and end.call.result == "12"


# --------------------------------------------------------------------------- text helpers


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=49151), min_size=1, max_size=30))
def test_detokenizer_concatenation_is_the_decoded_text(smol_tokenizer, ids):
    detok = _Detokenizer(smol_tokenizer, [])
    text = "".join(detok.push(i) for i in ids) + detok.flush()
    assert text == smol_tokenizer.decode(
        ids, skip_special_tokens=True, clean_up_tokenization_spaces=False
    )


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="[]()->abc *3 _", max_size=30))
def test_split_partial_call_never_raises(text):
    tool, args = _split_partial_call("[" + text)
    assert isinstance(tool, str) and isinstance(args, str)


# --------------------------------------------------------------------------- the real model


def _real_calculator():
    """The project's Calculator; a minimal + - * / one while that module is not written yet."""
    try:
        from toolformer.tools.assembly import create_tool

        return create_tool("Calculator")
    except ImportError:
        import ast
        import operator

        ops = {
            ast.Add: operator.add,
            ast.Sub: operator.sub,
            ast.Mult: operator.mul,
            ast.Div: operator.truediv,
        }

        class Calculator(Tool):
            name = "Calculator"
            description = "+ - * / rounded to 2 decimals"

            def run(self, args, context=None):
                def ev(n):
                    if isinstance(n, ast.BinOp) and type(n.op) in ops:
                        return ops[type(n.op)](ev(n.left), ev(n.right))
                    if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)):
                        return n.value
                    raise ToolError(f"not arithmetic: {args}")

                value = round(ev(ast.parse(self.parse_args(args), mode="eval").body), 2)
                return str(int(value)) if value == int(value) else str(value)

        return Calculator()


@pytest.mark.slow
def test_real_smollm2_makes_a_calculator_call(real_model):
    model, tok = real_model
    prompt = (
        "Your task is to add calls to a Calculator API to a piece of text. You can call the API by "
        'writing "[Calculator(expression)]" where "expression" is the expression to be computed.\n'
        "Input: The number in the next term is 18 + 12 x 3 = 54.\n"
        "Output: The number in the next term is 18 + 12 x 3 = [Calculator(18 + 12 * 3) -> 54] 54.\n"
        "Input: Out of 1400 participants, 400 passed the test.\n"
        "Output: Out of 1400 participants, 400 "
        "[Calculator(400 / 1400) -> 0.29] or 29% passed the test.\n"
        "Input: A pack holds 25 pencils, so 12 packs hold 300 pencils.\n"
        "Output: A pack holds 25 pencils, so 12 packs hold"
    )
    calculator = _real_calculator()
    gen = ToolGenerator(
        model,
        tok,
        ToolExecutor([calculator]),
        GenerationConfig(max_new_tokens=24, call_top_k=10, stop_strings=("\n",)),
    )
    out = gen.generate(prompt)[0]
    assert len(out.calls) == 1, out
    call = out.calls[0]
    assert call.tool == "Calculator" and call.ok, call
    # the tool's own answer went into the text (the 135M model's arithmetic is its own business)
    assert call.result == calculator.run(call.args)
    assert out.text[call.start : call.end] == f"[Calculator({call.args}) -> {call.result}]"
    ref = generate_reencode(model, tok, prompt, ToolExecutor([_real_calculator()]), gen.config)[0]
    assert_same(out, ref)
