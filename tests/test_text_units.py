"""Calls go where a word or number starts, never inside one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.data_aug.prefix_cache import chunk_document
from toolformer.text_units import first_visible, token_starts_unit, unit_starts


def starts_of(text):
    return sorted(text[s:].split()[0] for s in unit_starts(text))


def test_units_of_numbers_abbreviations_and_leading_symbols():
    text = "It costs $5 or 3.14 in the U.S. (see 1,000 well-known don't) -3 A380 12:30."
    assert starts_of(text) == sorted(
        [
            "It",
            "costs",
            "$5",
            "or",
            "3.14",
            "in",
            "the",
            "U.S.",
            "(see",
            "1,000",
            "well-known",
            "don't)",
            "-3",
            "A380",
            "12:30.",
        ]
    )
    assert unit_starts("is 16, which") == {0, 3, 7}
    assert unit_starts("") == set() and unit_starts(" , ; ") == set()


_piece = st.one_of(
    st.from_regex(r"[A-Za-z]{1,8}", fullmatch=True),
    st.from_regex(r"[0-9]{1,6}([.,][0-9]{1,3})?", fullmatch=True),
    st.sampled_from([",", ".", "(", ")", "$", "-", "'", "%", "[", "\n", "é", "ß"]),
)
_text = st.lists(st.tuples(_piece, st.sampled_from(["", " ", "  ", "\n"])), max_size=30).map(
    lambda parts: "".join(a + b for a, b in parts)
)


@settings(max_examples=300, deadline=None)
@given(_text)
def test_a_unit_never_starts_between_two_word_characters(text):
    for s in unit_starts(text):
        assert s == 0 or not (text[s - 1].isalnum() and text[s].isalnum()), (text, s)
        assert not text[s].isspace()
    # every whitespace-separated word that begins with a letter or digit begins a unit
    pos = 0
    for word in text.split():
        pos = text.index(word, pos)
        if word[0].isalnum():
            assert pos in unit_starts(text), (text, word)
        pos += len(word)


def test_token_starts_unit_uses_the_first_visible_character():
    text = "is 16, ok"
    # tokens as SmolLM2 cuts " 16": a bare space, then one token per digit
    offsets = [(0, 2), (2, 3), (3, 4), (4, 5), (5, 6), (6, 9)]
    assert token_starts_unit(text, offsets) == [True, True, True, False, False, True]
    assert first_visible(text, 2) == 3 and first_visible("a  ", 1) == 3


def test_smollm2_digit_tokens_inside_a_number_are_not_call_positions(smol_tokenizer):
    text = "The stadium holds 16,500 people and 3.14 is pi in the U.S. today."
    (chunk,) = chunk_document(smol_tokenizer, text, 256)
    pieces = smol_tokenizer.convert_ids_to_tokens(chunk.ids)
    allowed = chunk.call_positions()
    # where a call before each allowed token goes (the annotator's offsets): a unit start
    starts = unit_starts(text)
    for j in allowed:
        assert first_visible(text, chunk.insert_at[j]) in starts, (j, pieces[j])
    # and every digit after the first of a number is excluded
    inside = [j for j, p in enumerate(pieces) if p.isdigit() and j > 0 and pieces[j - 1].isdigit()]
    assert inside and not set(inside) & set(allowed)
    assert chunk.call_positions(5) == [j for j in allowed if j >= 5]
