"""Numbers in text: every reader and writer of numbers, each named for the reading it makes.

A number can be read many ways, and a caller that borrows another's reading gets wrong values
(an answer reader takes ``36 / 3`` for the fraction 12, which is right for an answer and wrong
for a Calculator call's two operands). So each reader here states what it reads, and each
caller picks the one it means:

=============================  =====  =====  ========  ======  ======  =======  =====
reader                         sign   ``$``  ``1,000``  ``.5``  ``a/b``  percent  words
=============================  =====  =====  ========  ======  ======  =======  =====
:func:`prose_numbers`          no     no     yes       no      no      flagged  no
:func:`answer_numbers`         yes    yes    yes       yes     yes     no       no
:func:`operands`               no     no     yes       yes     no      no       opt.
:func:`numbers_in`             no     no     yes       no      no      no       opt.
:func:`next_answer_number`     yes    yes    loose     no      no      no       no
:data:`EXPRESSION_NUMBER`      no     no     yes       yes     no      no       no
=============================  =====  =====  ========  ======  ======  =======  =====

- :func:`prose_numbers`: the Calculator prefilter's numbers, with their position in its word
  tokens (:func:`prose_tokens`) and whether a ``%`` or "percent" follows; a number glued to a
  following letter ("380km") is not read whole.
- :func:`answer_numbers` / :func:`first_answer_number`: a model's or a gold answer ("-$1,000.5",
  "1/2" as 0.5, but "12/25/1937" is a date, not a fraction; "x2" is no number).
- :func:`operands`: each written number on its own, as a Calculator call's operands
  (``"36 / 3"`` -> ``[36, 3]``), rounded to 6 decimals for comparison.
- :func:`numbers_in`: the strings a Calculator argument may use for the numbers of a text
  (``"4,858,979"`` -> ``"4858979"``; ``"1,5"`` -> ``"1.5"``).
- :func:`next_answer_number`: where the first number after a position is (to cut an output
  right after its answer); commas anywhere after the first digit.
- :data:`EXPRESSION_NUMBER` and :func:`exact_value`: a literal of an arithmetic expression
  (``"3."`` and ``".5"`` too), read exactly as a :class:`~fractions.Fraction`.

Writers: :func:`format_number` (a value as an answer or a Calculator result writes it).
Text rewrites: :func:`drop_thousands_separators`, :func:`drop_point_zero`;
a test: :func:`is_numeral` (digits, points and commas only).

Numbers written as words
------------------------

:func:`word_numbers` reads "thirty-five" (35), "three hundred and twelve" (312), "nine point
five" (9.5) with the ``text2num`` package (its ``find_numbers`` over word tokens; Rust, fast),
and adds the words it leaves out:

- "dozen" 12 ("two dozen": 2, 12 and 24; "half a dozen": 6 too);
- "half"/"halves" 0.5 and 2, "quarter(s)" 0.25 and 4: "half of 10" is computed as ``10 / 2``
  or ``10 * 0.5``, and either call is grounded; "two and a half" adds 2.5;
- "twice"/"double" 2, "thrice"/"triple" 3, "pair(s)" 2;
- ordinals are positions, not quantities ("the second day", "came first"): they are read only
  as the denominator of a fraction, after "a"/"an" or a count ("a third" 3, "two fifths" 2 and
  5); never "second", which after "a" is mostly the unit of time;
- "one" as a pronoun is no number: after a determiner or adjective-like word ("the other one",
  "this one", "which one", "no one", "each one") or before "another"; "ones", and the vague
  plurals "hundreds", "thousands", "millions", "billions", "dozens", are no numbers either.
  Known limit: "the red one" still reads 1 (only the listed words before it are recognised).

Measured to choose (this project's 2-core machine, shared with other jobs, so times are upper
bounds): accuracy on the 20 phrases of word problems and questions in ``tests/test_numbers.py``
(``PHRASES``), speed on the first 1,000 GSM8K test questions (238 characters on average, 513 of
them with a number word):

==============================  ==========  =====================  ==============================
reader                          phrases     per 1,000 questions    misses
==============================  ==========  =====================  ==============================
``text2num`` 3.1 alpha2digit    15 of 20    42 ms                  "dozen", "twice", "half", "two
                                                                   and a half", isolated "one dog"
``numerizer`` 0.2.4             14 of 20    2,100 ms               "a fifty" -> "1 50", "half" ->
                                                                   "/2", ordinals and the pronoun
                                                                   "one" read as numbers
``word2number`` 1.1             --          --                     reads a whole string as one
                                                                   number: no positions, no text
:func:`word_numbers`            20 of 20    340 ms                 (text2num's token API + the
                                                                   additions above)
==============================  ==========  =====================  ==============================

:func:`word_numbers` spends its time in the Python tokenizer; a text in which no word starts
like a number word (most questions without one) costs one regex search (0.3 ms for 2,000
characters), which matters to :meth:`~toolformer.tools.calculator.Calculator.available`, asked
at every decoding step.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import FrozenSet, List, Optional, Sequence, Union


@dataclass(frozen=True)
class Number:
    """A number read from text.

    ``value``: the number (a fraction ``a/b`` divided out); ``text``: as written;
    ``start``/``end``: its character span in the text read; ``decimals``: digits written after
    the point (None for a fraction or a number written in words); ``percent``: a ``%`` or
    "percent" follows (:func:`prose_numbers` only); ``token``: its index in
    :func:`prose_tokens` (:func:`prose_numbers` only, else None).
    """

    value: float
    text: str
    start: int = 0
    end: int = 0
    decimals: Optional[int] = None
    percent: bool = False
    token: Optional[int] = None


# --------------------------------------------------------------------------- prose (prefilter)

# 1,400 / 1,400.5 / 3.25 / 12 ; words that merely contain digits (A380) are not numbers
_PROSE_NUMBER = r"\d{1,3}(?:,\d{3})+(?!\d)(?:\.\d+)?|\d+(?:\.\d+)?"
_PROSE_TOKEN = re.compile(rf"(?P<num>{_PROSE_NUMBER})(?![A-Za-z])|\w+|[^\w\s]")
_PERCENT_WORDS = ("percent", "per cent", "pct")


def prose_tokens(text: str) -> List["re.Match[str]"]:
    """Words, numbers and single punctuation marks of ``text`` (a number's match has the group
    ``num``); close to GPT-J's tokens and independent of any model's tokenizer."""
    return list(_PROSE_TOKEN.finditer(text))


def prose_numbers(text: str) -> List[Number]:
    """Every number of ``text`` as plain prose writes it: digits, thousands separators and
    decimals; no sign, no ``$``, no fraction, no words; ``token`` is its index in
    :func:`prose_tokens` and ``percent`` tells a following ``%``/"percent"/"per cent"/"pct"."""
    toks = prose_tokens(text)
    out: List[Number] = []
    for i, tok in enumerate(toks):
        raw = tok.group("num")
        if raw is None:
            continue
        digits = raw.replace(",", "")
        value = float(digits)
        if not math.isfinite(value):
            continue
        decimals = len(digits.split(".", 1)[1]) if "." in digits else 0
        nxt = toks[i + 1].group(0).lower() if i + 1 < len(toks) else ""
        after = text[tok.end() :].lower().lstrip()
        percent = nxt == "%" or any(after.startswith(w) for w in _PERCENT_WORDS)
        out.append(Number(value, raw, tok.start(), tok.end(), decimals, percent, i))
    return out


# --------------------------------------------------------------------------- answers

# Not glued to a preceding letter/digit: optional minus, optional "$", then "1,000,000.5" |
# "3.50" | ".5", optionally a fraction "/7" (not part of a date like 12/25/1937).
_ANSWER_NUMBER = re.compile(
    r"(?<![\w.])(?P<neg>[-\u2212])?\$?"
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?(?![\d,])|\d+(?:\.\d+)?|\.\d+)"
    r"(?:\s*/\s*(?P<den>\d+(?:\.\d+)?)(?![\d/]))?"
)


def _answer_number(m: "re.Match[str]") -> Number:
    raw = m.group("num").replace(",", "")
    value = float(raw)
    decimals: Optional[int] = len(raw.split(".")[1]) if "." in raw else 0
    den = m.group("den")
    if den is not None and float(den) != 0:
        value, decimals = value / float(den), None
    if m.group("neg"):
        value = -value
    return Number(value, m.group(0), m.start(), m.end(), decimals)


def answer_numbers(text: str) -> List[Number]:
    """Every number of ``text`` as an answer writes it, in order ("1,000" -> 1000, "$5" -> 5,
    "-3" -> -3, "1/2" -> 0.5; "12/25/1937" -> 12, a date; "x2" none, glued to a word)."""
    return [_answer_number(m) for m in _ANSWER_NUMBER.finditer(text)]


def first_answer_number(text: str) -> Optional[Number]:
    """The first number of ``text`` as :func:`answer_numbers` reads it (the paper's math
    criterion), or None."""
    m = _ANSWER_NUMBER.search(text)
    return None if m is None else _answer_number(m)


# commas anywhere after the first digit ("1,200," too: the caller drops a trailing comma)
_LOOSE_NUMBER = re.compile(r"-?\$?\d[\d,]*(?:\.\d+)?")


def next_answer_number(text: str, pos: int = 0) -> Optional[Number]:
    """The first number of ``text`` at or after ``pos``: an optional ``-`` and ``$``, a digit,
    then digits and commas in any order, an optional decimal part; glued to anything. Only its
    span (``start``, ``end``, ``text``) is meant to be used: its ``value`` drops every comma."""
    m = _LOOSE_NUMBER.search(text, pos)
    if m is None:
        return None
    digits = m.group().replace("$", "").replace(",", "")
    return Number(float(digits), m.group(), m.start(), m.end())


# --------------------------------------------------------------------------- operands

# one written number: "1,000", "12", "0.5", ".5" (never a fraction: "36 / 3" is two operands)
_OPERAND = re.compile(r"(?<![\w.,])(?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|(?<![\w.])\.\d+")


def operands(text: str, words: bool = False) -> List[float]:
    """The numbers written in ``text``, each on its own (``"36 / 3"`` -> ``[36.0, 3.0]``,
    ``"1,200 - 0.5"`` -> ``[1200.0, 0.5]``), rounded to 6 decimals for comparison; with
    ``words``, then the numbers written in words (:func:`word_numbers`)."""
    out = [round(float(m.group().replace(",", "")), 6) for m in _OPERAND.finditer(text)]
    if words:
        out += [round(n.value, 6) for n in word_numbers(text)]
    return out


_DIGIT_RUN = re.compile(r"\d+(?:[.,]\d+)*")
_SEPARATOR = re.compile(r"[.,]")


def numbers_in(text: str, words: bool = False) -> FrozenSet[str]:
    """The numbers written in ``text`` as a Calculator argument would write them.

    Thousands separators go (``4,858,979`` -> ``4858979``); a decimal comma or point stays a
    point only when followed by fewer or more than three digits (``1,5`` -> ``1.5``); no sign.
    With ``words``, the numbers written in words too, as :func:`format_number` writes them
    ("a dozen" -> ``12``, "half" -> ``0.5`` and ``2``).
    """
    out = set()
    for m in _DIGIT_RUN.finditer(text):
        parts = _SEPARATOR.split(m.group(0))
        seps = _SEPARATOR.findall(m.group(0))
        grouped = len(parts) > 1 and all(len(p) == 3 for p in parts[1:])
        if grouped and len(set(seps)) == 1 and seps[0] == ",":
            out.add("".join(parts))
        elif len(parts) == 2:
            out.add(f"{parts[0]}.{parts[1]}")
            out.add(parts[0])
        else:
            out.update(parts)
    if words:
        out.update(format_number(abs(n.value)) for n in word_numbers(text))
    return frozenset(n for n in out if n)


def has_number(text: str, words: bool = True) -> bool:
    """Whether ``text`` holds a number: a digit, or (``words``) a number written in words."""
    return _DIGIT.search(text) is not None or (words and bool(word_numbers(text)))


_DIGIT = re.compile(r"\d")


# --------------------------------------------------------------------------- expressions

# A literal of an arithmetic expression: plain digits or digits grouped by thousands
# ("1,000,000"), an optional decimal part ("3." and ".5" too).
EXPRESSION_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"


def exact_value(literal: str) -> Fraction:
    """The exact value of an :data:`EXPRESSION_NUMBER` literal (``"1,000.5"`` -> 2001/2).
    Raises ValueError for text that is no such literal."""
    text = literal.replace(",", "")
    if text.endswith("."):
        text = text[:-1]
    return Fraction(text)


# --------------------------------------------------------------------------- writing


def format_number(value: Union[Fraction, float, int], decimals: Optional[int] = None) -> str:
    """A value as text.

    With ``decimals`` (the Calculator's results): rounded half away from zero to that many
    places, exactly (a float is taken at its exact binary value), no trailing zeros
    (2.50 -> ``"2.5"``, -0.001 -> ``"0"``). Without (a gold answer as GSM8K writes it): an
    integral value without a point (24.0 -> ``"24"``), else Python's shortest repr of the float
    (2.5 -> ``"2.5"``).
    """
    if decimals is None:
        x = float(value)
        return str(int(x)) if x.is_integer() else repr(x)
    value = Fraction(value)
    scale = 10**decimals
    scaled = abs(value) * scale
    rounded = int(scaled) + (1 if scaled - int(scaled) >= Fraction(1, 2) else 0)
    if rounded == 0:
        return "0"
    whole, frac = divmod(rounded, scale)
    text = str(whole)
    if decimals and frac:
        text += "." + str(frac).rjust(decimals, "0").rstrip("0")
    return ("-" if value < 0 else "") + text


# --------------------------------------------------------------------------- rewrites

# "3,000" / "1,234,567": the commas of a grouped number (not "3,4,5", a list)
_GROUPED_NUMBER = re.compile(r"(?<![\d,])\d{1,3}(?:,\d{3})+(?![\d]|,\d)")


def drop_thousands_separators(text: str) -> str:
    """``"3,000"`` -> ``"3000"``; a list such as ``"3,4,5"`` and all other text unchanged."""
    return _GROUPED_NUMBER.sub(lambda m: m.group().replace(",", ""), text)


_POINT_ZERO = re.compile(r"(?<![\d.])(\d+)\.0(?![\d])")


def drop_point_zero(text: str) -> str:
    """Integers written as floats written back as integers: ``"56.0 kg"`` -> ``"56 kg"``
    (``"56.05"`` and ``"1.2.0"`` unchanged)."""
    return _POINT_ZERO.sub(r"\1", text)


_NUMERAL = re.compile(r"^[\d.,]+$")


def is_numeral(text: str) -> bool:
    """Whether ``text`` is only digits, points and commas (``"135,765"``, ``"6.5"``)."""
    return _NUMERAL.match(text) is not None


# --------------------------------------------------------------------------- words

_WORD_TOKEN = re.compile(r"[A-Za-z]+|\d+(?:[.,]\d+)*|[^\w\s]")
# a cheap test before tokenizing (on the lowercased text; a word token starts after a
# non-letter): a text in which no word starts with one of these stems has no number word
_NUMBER_STEMS = re.compile(
    r"(?<![a-z])(?:zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twel|thir|fift|"
    r"twent|forty|hundred|thousand|million|billion|dozen|half|halves|quarter|twice|thrice|double|"
    r"triple|pair|first|second|fourth|sixth|ninth|point)"
)
# before "one" these make it a pronoun ("the other one", "no one", "which one")
_PRONOUN_BEFORE = frozenset(
    "the this that other another which each every no any some only last next same right wrong "
    "new old big small little first one".split()
)
_VAGUE = frozenset("ones hundreds thousands millions billions dozens".split())
# words text2num does not read: (values, multiplies a count before it)
_EXTRA = {
    "dozen": ((12.0,), True),
    "half": ((0.5, 2.0), False),
    "halves": ((0.5, 2.0), False),
    "quarter": ((0.25, 4.0), False),
    "quarters": ((0.25, 4.0), False),
    "twice": ((2.0,), False),
    "double": ((2.0,), False),
    "thrice": ((3.0,), False),
    "triple": ((3.0,), False),
    "pair": ((2.0,), False),
    "pairs": ((2.0,), False),
}


class _Token:
    """A word token for text2num's ``find_numbers`` (its Token protocol)."""

    __slots__ = ("_text", "start", "end", "lower", "pronoun")

    def __init__(self, m: "re.Match[str]"):
        self._text, self.start, self.end = m.group(), m.start(), m.end()
        self.lower = self._text.lower()
        self.pronoun = False

    def text(self) -> str:
        return self._text

    def nt_separated(self, previous: "_Token") -> bool:
        return False

    def not_a_number_part(self) -> bool:
        return self.pronoun or self.lower in _VAGUE


def _mark_pronouns(toks: Sequence[_Token]) -> None:
    for i, t in enumerate(toks):
        if t.lower != "one":
            continue
        before = toks[i - 1].lower if i > 0 else ""
        after = toks[i + 1].lower if i + 1 < len(toks) else ""
        t.pronoun = before in _PRONOUN_BEFORE or after == "another"


_SCALES = {"hundred": 100.0, "thousand": 1e3, "million": 1e6, "billion": 1e9}


def _digits_value(tok: _Token) -> Optional[float]:
    """A digit token's value ("3", "1.5", "1,200"), or None."""
    if not tok.lower[:1].isdigit():
        return None
    parts = tok.lower.split(",")
    if len(parts) > 1 and not all(len(p) == 3 for p in parts[1:]):
        return None
    try:
        return float("".join(parts))
    except ValueError:
        return None


def word_numbers(text: str) -> List[Number]:
    """The numbers of ``text`` written in words, in order of position (see the module docstring
    for what is read and why): ``"thirty-five"`` -> 35, ``"a dozen"`` -> 12, ``"half"`` -> 0.5
    and 2 (two entries with the same span), ``"3 dozen"`` -> 12 and 36. Numbers written in
    digits alone are not returned (the digit readers have them).

    Needs the ``text2num`` package (imported here, on first use).
    """
    if _NUMBER_STEMS.search(text.lower()) is None:
        return []
    from text_to_num import find_numbers

    toks = [_Token(m) for m in _WORD_TOKEN.finditer(text)]
    _mark_pronouns(toks)
    out: List[Number] = []

    def add(value: float, first: int, last: int) -> None:
        a, b = toks[first].start, toks[last].end
        out.append(Number(float(value), text[a:b], a, b))

    # a count right before token i: "two dozen", "two thirds", "3 dozen", "1.5 million"
    counts = {i + 1: v for i, t in enumerate(toks) if (v := _digits_value(t)) is not None}
    for occ in find_numbers(toks, "en", threshold=0):
        first = toks[occ.start].lower
        count = counts.get(occ.start)
        counts[occ.end] = occ.value
        if occ.is_ordinal:
            # a position ("the fourth day"), unless the denominator of a fraction ("a third")
            after_a = occ.start > 0 and toks[occ.start - 1].lower in ("a", "an")
            after_count = after_a or count is not None
            if occ.value < 3 or first.startswith("second") or not after_count:
                continue
        elif count is not None and occ.end - occ.start == 1 and first in _SCALES:
            add(count * _SCALES[first], occ.start - 1, occ.start)  # "1.5 million"
        add(occ.value, occ.start, occ.end - 1)
    for i, t in enumerate(toks):
        extra = _EXTRA.get(t.lower)
        if extra is None:
            continue
        values, multiplies = extra
        for v in values:
            add(v, i, i)
        before = [x.lower for x in toks[max(0, i - 3) : i]]
        if multiplies and i in counts:  # "two dozen"
            add(counts[i] * values[0], i - 1, i)
        if multiplies and before[-2:] == ["half", "a"]:  # "half a dozen"
            add(values[0] / 2, i - 2, i)
        if t.lower == "half" and before[-2:] == ["and", "a"] and i - 2 in counts:  # "2 and a half"
            add(counts[i - 2] + 0.5, i - 3, i)
    out.sort(key=lambda n: (n.start, n.end))
    return out
