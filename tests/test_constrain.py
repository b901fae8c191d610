"""Argument grammars and constrained decoding: the grammars themselves, token masks
on the SmolLM2 and Gemma-3 tokenizers, samples drawn under them with random seeds, plug-in
tools, and the bad-input cases."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.constrain import CallConstraint, apply_masks, token_bytes, token_index
from toolformer.data_aug.sampling import parse_candidate, pick_tokens
from toolformer.errors import UserError
from toolformer.grammar import (
    NO_CALL,
    PERMISSIVE,
    ArgGrammar,
    CalculatorArgs,
    CallGrammar,
    EmptyArgs,
    GrammarError,
    TextArgs,
    call_grammar,
)
from toolformer.syntax import call_progress, parse_call
from toolformer.text.numbers import numbers_in
from toolformer.tools.assembly import create_tools
from toolformer.tools.base import Tool


class Lookup(Tool):
    """A plug-in tool with its own grammar: up to four digits."""

    name = "Lookup"
    description = "looks a number up"

    class Digits(ArgGrammar):
        max_bytes = 4

        def start(self):
            return 0

        def step(self, state, byte):
            return state + 1 if 0x30 <= byte <= 0x39 and state < 4 else None

        def can_close(self, state):
            return state > 0

        def __eq__(self, other):
            return type(other) is type(self)

        def __hash__(self):
            return hash(type(self))

    arg_grammar = Digits()

    def run(self, args, context=None):
        return args


class Plain(Tool):
    """A plug-in tool that declares nothing: the permissive default."""

    name = "Plain"
    description = "echoes"

    def run(self, args, context=None):
        return args


class Search(Tool):
    name = "WikiSearch"
    description = "a search stand-in with the real WikiSearch grammar"
    arg_grammar = TextArgs(max_bytes=120)

    def run(self, args, context=None):
        return args


TOOLS = [
    create_tools("Calculator")["Calculator"],
    create_tools("Calendar")["Calendar"],
    Search(),
    Lookup(),
    Plain(),
]


@pytest.fixture(scope="module", params=["smollm2-135m", "gemma3-270m"])
def tokenizer(request):
    from toolformer.models import load_tokenizer

    try:
        return load_tokenizer(request.param)
    except UserError as exc:  # the Gemma package is optional
        pytest.skip(str(exc))


# --------------------------------------------------------------------------- grammars


def test_calculator_grammar():
    g = CalculatorArgs()
    for ok in ("3 * 4", "(1+2) / 3", "400 / 1400", "-2 * 3.5", "1 + (2 * (3 - 1))"):
        assert g.accepts(ok), ok
    for bad in ("12", "3 ** 4", "a + b", "3 +", "(1 + 2", "1..5 * 2", "3 * 4)", "", "1,248 / 10"):
        assert not g.accepts(bad), bad
    assert CalculatorArgs(require_operator=False).accepts("12")


def test_calculator_numbers_from_the_text():
    before = "the population of Alabama was 4,858,979 on July 1, 2015; 0.5 of it"
    nums = numbers_in(before)
    assert {"4858979", "1", "2015", "0.5"} <= nums
    g = CalculatorArgs(numbers=nums)
    assert g.accepts("4858979 * 1") and g.accepts("2015 - 1") and g.accepts("0.5 * 2015")
    assert not g.accepts("4858980 * 1") and not g.accepts("20 * 1")
    tool = create_tools("Calculator", {"Calculator": {"numbers_from_text": True}})["Calculator"]
    assert tool.argument_grammar(before) == g
    # a text without any number admits no Calculator call at all (it computed "10 * 11" before)
    assert tool.argument_grammar("no numbers here") is NO_CALL
    assert tool.argument_grammar() == CalculatorArgs()  # any text: every number


def test_text_and_empty_grammars():
    g = TextArgs(max_bytes=20)
    for ok in ("who is he", "f(x) and g", "a - b > c", "héllo ✓"):
        assert g.accepts(ok), ok
    for bad in ("a -> b", "[x]", "a\nb", "back\\slash", "  ", "(open", "close)"):
        assert not g.accepts(bad), bad
    assert EmptyArgs().accepts("") and not EmptyArgs().accepts(" ")
    assert Plain().argument_grammar() is PERMISSIVE


def test_call_grammar_accepts_whole_calls():
    g = call_grammar(TOOLS, "]")
    for ok in (
        "Calculator(3 * 4)]",
        "Calendar()]",
        "Calendar() ]",
        "WikiSearch(heron)]",
        "Lookup(1234)]",
    ):
        assert g.accepts(ok), ok
    for bad in (
        "Calculator(3 * 4) -> 12]",
        "calculator(3*4)]",
        "Calendar(x)]",
        "Lookup(12345)]",
        "Nope(1)]",
        "Calculator(3 * 4)",
        "Calculator(3*4)] ",
    ):
        assert not g.accepts(bad), bad
    assert call_grammar(TOOLS, "->").accepts("Calculator(3 * 4) ->")


@pytest.mark.parametrize("ending", ["]", "->"])
def test_call_grammar_reads_arguments_as_utf8(ending):
    """The grammar took every byte >= 0x80 as text: 0xFF, and a ")" in the middle of a
    character (the output then held U+FFFD)."""
    tail = ")]" if ending == "]" else ") ->"
    for tool in (Search(), Plain()):
        g = call_grammar([tool], ending)
        assert g.accepts(f"{tool.name}(café ✓ 🙂{tail}"), tool
        for bad in (
            b"caf\xc3",
            b"\xe2\x9c",
            b"\xf0\x9f\x99",
            b"\xff",
            b"a\xc0\xaf",
            b"\xed\xa0\x80",
            b"\x80",
            b"\xe0\x80\x80",
            b"\xf4\x90\x80\x80",
            b"\xc3 x",
        ):
            state, _ = g.advance(g.start(), tool.name.encode() + b"(" + bad + tail.encode())
            assert state is None or not g.done(state), bad


def test_masks_keep_characters_whole(smol_tokenizer):
    """After half a character only the bytes that continue it may follow; the masks agree
    with stepping every token through the grammar (the plain-text shortcut included)."""
    import numpy as np

    index = token_index(smol_tokenizer)
    g = call_grammar([Search()], "->")
    for prefix in (
        b"WikiSearch(",
        b"WikiSearch(caf",
        b"WikiSearch(caf\xc3",
        b"WikiSearch(x \xe2\x9c",
        b"WikiSearch(x (y",
    ):
        state = g.advance(g.start(), prefix)[0]
        mask = index.mask(g, state).numpy()
        after = [g.advance(state, b)[0] if b else None for b in index.bytes_of]
        assert (mask == np.array([a is not None for a in after])).all(), prefix
        left = np.array([g.distance(a) if a is not None else 1 << 30 for a in after])
        assert (index.mask(g, state, True).numpy() == (left == left.min())).all(), prefix
        if prefix.endswith((b"\xc3", b"\x9c")):
            assert 0 < mask.sum() <= 64
            assert all(0x80 <= index.bytes_of[i][0] <= 0xBF for i in np.flatnonzero(mask))
    start = g.advance(g.start(), b"WikiSearch(")[0]
    assert not index.mask(g, start)[smol_tokenizer.convert_tokens_to_ids("ÿ")]  # the byte 0xFF


# ------------------------------------------------------------------------ sampling under a grammar


def draw(index, grammar, seed, max_tokens=40, temperature=1.0):
    """One call sampled from random logits under the grammar (as the annotator samples)."""
    gen = torch.Generator().manual_seed(seed)
    con = CallConstraint(index, grammar, max_tokens)
    ids = []
    while not con.done and not con.failed and len(ids) < max_tokens:
        logits = torch.randn((1, index.vocab_size), generator=gen) * 4
        apply_masks(logits, [con.allowed()])
        t = int(pick_tokens(logits, [gen], temperature)[0])
        ids.append(t)
        con.push(t)
    return ids, con


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), which=st.integers(0, len(TOOLS) - 1))
def test_every_constrained_sample_parses_as_a_call_of_the_tool(tokenizer, seed, which):
    index = token_index(tokenizer)
    tool = TOOLS[which]
    grammar = call_grammar([tool], "]")
    ids, con = draw(index, grammar, seed)
    assert con.done, (tokenizer.decode(ids), con.state)
    text = tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    call = parse_candidate(text, tool.name)
    assert call is not None, text
    assert tool.argument_grammar().accepts(parse_call("[" + text).args), text
    assert all(index.bytes_of[i] is not None for i in ids)  # no special token inside a call


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_generation_grammar_ends_in_a_pending_call(tokenizer, seed):
    index = token_index(tokenizer)
    ids, con = draw(index, call_grammar(TOOLS, "->"), seed)
    text = "[" + tokenizer.decode(ids, clean_up_tokenization_spaces=False)
    state, call = call_progress(text)
    assert con.done and state == "pending", text
    assert call.tool in {t.name for t in TOOLS}


def test_masks_handle_tokens_that_span_parts_of_a_call(smol_tokenizer):
    index = token_index(smol_tokenizer)
    g = call_grammar(TOOLS, "]")
    inside = g.advance(g.start(), b"Calculator(3 * 4")[0]
    allowed = {
        smol_tokenizer.decode([i]) for i in index.mask(g, inside).nonzero().flatten().tolist()
    }
    assert ")]" in allowed and ")" in allowed and "]" not in allowed and " ->" not in allowed
    assert not any(a and a[0].isalpha() for a in allowed)
    gen = call_grammar(TOOLS, "->")
    inside = gen.advance(gen.start(), b"Calculator(3 * 4")[0]
    allowed = {
        smol_tokenizer.decode([i]) for i in index.mask(gen, inside).nonzero().flatten().tolist()
    }
    assert ")]" not in allowed and ")" in allowed
    after = gen.advance(gen.start(), b"Calculator(3 * 4)")[0]
    allowed = {
        smol_tokenizer.decode([i]) for i in index.mask(gen, after).nonzero().flatten().tolist()
    }
    assert allowed == {" ->", " -", "->", "-", " "} & allowed and " ->" in allowed
    # multi-byte characters split over tokens are checked byte by byte
    state = g.advance(g.start(), "WikiSearch(caf".encode())[0]
    for i in smol_tokenizer.encode("é ✓", add_special_tokens=False):
        assert index.mask(g, state)[i]
        state = g.advance(state, index.bytes_of[i])[0]


def test_budget_forces_the_call_to_close(smol_tokenizer):
    index = token_index(smol_tokenizer)
    g = call_grammar([Search()], "]")
    for seed in range(5):
        ids, con = draw(index, g, seed, max_tokens=8)
        assert con.done and len(ids) <= 8


# --------------------------------------------------------------------------- bad input


def test_a_grammar_that_admits_nothing_is_one_clear_error():
    class Never(ArgGrammar):
        def start(self):
            return 0

        def step(self, state, byte):
            return None

        def can_close(self, state):
            return False

    class Broken(Plain):
        name = "Broken"
        arg_grammar = Never()

    with pytest.raises(
        GrammarError, match="argument grammar of tool Broken admits no argument text"
    ) as err:
        call_grammar([Broken()], "]")
    assert isinstance(err.value, UserError) and "\n" not in str(err.value)
    with pytest.raises(GrammarError):
        CallGrammar((), "]")


def test_a_tokenizer_the_grammar_cannot_be_built_for_is_one_clear_error():
    class WordPiece:
        all_special_ids = []

        def __len__(self):
            return 3

        def convert_ids_to_tokens(self, ids):
            return ["[", "##x", "call"][: len(ids)] if isinstance(ids, list) else "["

        def __call__(self, text, add_special_tokens=False):
            class Out:
                input_ids = [0]

            return Out()

    with pytest.raises(GrammarError, match="cannot build call grammars for tokenizer WordPiece"):
        token_bytes(WordPiece())


def test_a_tool_no_token_can_write_is_one_clear_error():
    class Letters:
        """A byte-level tokenizer whose vocabulary has letters but no digits or parentheses."""

        all_special_ids = []
        pieces = ["Ġ[", "[", "L", "o", "k", "u", "p", "Lookup", "]"]

        def __len__(self):
            return len(self.pieces)

        def convert_ids_to_tokens(self, ids):
            return [self.pieces[i] for i in ids]

        def __call__(self, text, add_special_tokens=False):
            class Out:
                input_ids = [0]

            return Out()

    with pytest.raises(
        GrammarError, match="argument grammar of tool Lookup cannot be built for this tokenizer"
    ):
        token_index(Letters()).check(call_grammar([Lookup()], "]"))
