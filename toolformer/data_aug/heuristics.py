"""Per-tool document prefilters: the paper's rules for which texts a tool is worth trying on.

- Calculator: at least ``min_numbers`` (3) numbers within ``window_tokens`` (100) tokens where
  one is the result of + - * / on two others, or one of "=", "equals", "equal to", "total of",
  "average of" followed by a number. Texts that only have the three numbers are kept with
  probability ``random_keep`` (1%), decided by a hash of the seed and the document id
  (deterministic, the same in every process).
- Calendar: the document must have a date (``Document.date``); the Calendar answers with it.
- MT: a non-English chunk of >= ``min_foreign_tokens`` (10) words inside English text
  (:func:`toolformer.text.langdetect.find_foreign_spans`).
- WikiSearch, QA and tools without a rule: every document.

A rule's options are a dataclass (:class:`CalculatorPrefilterOptions`, :class:`MTPrefilterOptions`)
registered with it; ``AnnotatorConfig.prefilter_options`` gives them by tool name, checked and
built by :func:`prefilter_options` (:mod:`toolformer.plugin_options`, as tool options are).

"Tokens" for the Calculator window are words, numbers and punctuation marks
(:func:`toolformer.text.numbers.prose_tokens`; :func:`~toolformer.text.numbers.prose_numbers`
reads their numbers), close to the paper's GPT-J tokens and independent of the model's
tokenizer (SmolLM2 splits numbers into one token per digit). Operations with an identity or
absorbing operand (x + 0, x * 1, x / 1, x * 0) and degenerate ones (x - x, x / x) are not
counted: any text with a "1" and a number written twice would pass.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, List, Mapping, Optional, Tuple

from toolformer.errors import UserError
from toolformer.plugin_options import build_options
from toolformer.registry import Registry
from toolformer.text.numbers import Number, prose_numbers

CALCULATOR_KEYWORDS = ("=", "equals", "equal to", "total of", "average of")

_KEYWORD_RE = re.compile(
    r"(?:=|\bequals\b|\bequal\s+to\b|\btotal\s+of\b|\baverage\s+of\b)\s*[-+−]?\s*[$€£¥]?\s*\d",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PrefilterDecision:
    """Whether a tool should try a text, and why (for counters and debugging)."""

    keep: bool
    reason: str


@dataclass
class PrefilterInput:
    """What a prefilter may look at: one text (a document or one of its chunks) and its
    document; ``options``: the rule's options object (None: its defaults)."""

    text: str
    doc_id: str = ""
    date: Optional[_dt.date] = None
    chunk: int = 0
    seed: int = 0
    options: Any = None
    warnings: Counter = field(default_factory=Counter)  # e.g. langdetect_unavailable


@dataclass(frozen=True)
class CalculatorPrefilterOptions:
    """Options of the Calculator's rule (paper: 3 numbers within 100 tokens, 1% kept at random)."""

    window_tokens: int = field(
        default=100, metadata={"help": "window (in word tokens) for the numbers"}
    )
    min_numbers: int = field(default=3, metadata={"help": "numbers needed within the window"})
    random_keep: float = field(
        default=0.01,
        metadata={
            "help": "share of texts kept that only have enough numbers (seeded by document id)"
        },
    )


@dataclass(frozen=True)
class MTPrefilterOptions:
    """Options of the MT rule."""

    min_foreign_tokens: int = field(
        default=10, metadata={"help": "words in a non-English chunk of English text"}
    )


Prefilter = Callable[[PrefilterInput], PrefilterDecision]
# keyed by tool name; a plugin tool brings its rule through the "toolformer.prefilters" group
PREFILTERS: Registry[Prefilter] = Registry("prefilter", entry_points="toolformer.prefilters")


def register_prefilter(
    tool_name: str, options: Optional[type] = None
) -> Callable[[Prefilter], Prefilter]:
    """Decorator: use ``fn(PrefilterInput) -> PrefilterDecision`` for the tool ``tool_name``
    (replacing a rule registered before); ``options``: the dataclass of the rule's options
    (set as ``fn.options_class``; a plugin rule may set that attribute itself)."""

    def add(fn: Prefilter) -> Prefilter:
        if options is not None:
            fn.options_class = options  # type: ignore[attr-defined]
        PREFILTERS.register(tool_name, fn, overwrite=True)
        return fn

    return add


def prefilter_options(tool_name: str, options: Optional[Mapping[str, Any]] = None) -> Any:
    """The options object of ``tool_name``'s rule built from ``options`` (None when the rule
    takes none and none are given).

    Raises :class:`~toolformer.errors.UserError` (one line) for a tool without a rule (with a
    "did you mean"), an option the rule does not take, or a value of the wrong type."""
    rule = PREFILTERS.get(tool_name)
    options_class = getattr(rule, "options_class", None)
    if options_class is None:
        if options:
            raise UserError(
                f"the {PREFILTERS.canonical(tool_name)} prefilter takes no options, "
                f"got {sorted(options)}"
            )
        return None
    return build_options(options_class, options, f"{PREFILTERS.canonical(tool_name)} prefilter")


def prefilter(tool_name: str, item: PrefilterInput) -> PrefilterDecision:
    """Apply the rule of ``tool_name`` (case-insensitive); tools without a rule keep everything."""
    if tool_name not in PREFILTERS:
        return PrefilterDecision(True, "no rule")
    return PREFILTERS.get(tool_name)(item)


# --------------------------------------------------------------------------- Calculator


def _results(a: Number, b: Number) -> List[float]:
    """Values an operation on ``a`` and ``b`` can give (identity/absorbing operands excluded)."""
    out: List[float] = []
    for x in {a.value, a.value / 100} if a.percent else {a.value}:
        for y in {b.value, b.value / 100} if b.percent else {b.value}:
            if x != 0 and y != 0:
                out.append(x + y)
            if x != 0 and y != 0 and x != y:  # x - x = 0 and x / x = 1 say nothing
                out.append(abs(x - y))
            if x not in (0, 1) and y not in (0, 1):
                out.append(x * y)
                if x != y:
                    out += [x / y, y / x]
    return out


def _matches(c: Number, v: float) -> bool:
    """``c`` is ``v`` written to ``c``'s precision (a percentage may also be ``100 v``)."""
    tol = 0.5 * 10 ** (-c.decimals) + 1e-9
    if abs(c.value - v) <= tol:
        return True
    return c.percent and abs(c.value - 100 * v) <= tol


def find_operation(numbers: List[Number], window: int) -> Optional[Tuple[Number, Number, Number]]:
    """Three numbers within ``window`` tokens where one results from an operation on the others."""
    if len(numbers) < 3:
        return None
    order = sorted(range(len(numbers)), key=lambda k: numbers[k].value)
    values = [numbers[k].value for k in order]
    for p in range(len(numbers)):
        a = numbers[p]
        for q in range(p + 1, len(numbers)):
            b = numbers[q]
            if b.token - a.token >= window:
                break
            lo_tok, hi_tok = b.token - window + 1, a.token + window - 1
            for v in _results(a, b):
                for target in (v, 100 * v):
                    # candidates c lie within 0.5 of the target (the widest rounding tolerance)
                    lo = bisect.bisect_left(values, target - 0.5 - 1e-9)
                    hi = bisect.bisect_right(values, target + 0.5 + 1e-9)
                    for r in range(lo, hi):
                        c = numbers[order[r]]
                        if c is a or c is b or not lo_tok <= c.token <= hi_tok:
                            continue
                        if _matches(c, v):
                            return a, b, c
    return None


def has_numbers_in_window(numbers: List[Number], count: int, window: int) -> bool:
    """At least ``count`` numbers within some span of ``window`` tokens."""
    if count <= 0:
        return True
    for k in range(len(numbers) - count + 1):
        if numbers[k + count - 1].token - numbers[k].token < window:
            return True
    return False


def random_keep(seed: int, doc_id: str, chunk: int, rate: float, salt: str = "Calculator") -> bool:
    """A deterministic coin with probability ``rate`` from (seed, document id, chunk)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}\x00{salt}\x00{doc_id}\x00{chunk}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


@register_prefilter("Calculator", options=CalculatorPrefilterOptions)
def calculator_prefilter(item: PrefilterInput) -> PrefilterDecision:
    """The paper's Calculator rule (see the module docstring)."""
    opts = item.options or CalculatorPrefilterOptions()
    text = item.text
    if _KEYWORD_RE.search(text):
        return PrefilterDecision(True, "keyword")
    numbers = prose_numbers(text)
    if not has_numbers_in_window(numbers, opts.min_numbers, opts.window_tokens):
        return PrefilterDecision(False, "too few numbers")
    if find_operation(numbers, opts.window_tokens) is not None:
        return PrefilterDecision(True, "operation")
    if random_keep(item.seed, item.doc_id, item.chunk, opts.random_keep):
        return PrefilterDecision(True, "random")
    return PrefilterDecision(False, "numbers without operation")


# --------------------------------------------------------------------------- Calendar, MT


@register_prefilter("Calendar")
def calendar_prefilter(item: PrefilterInput) -> PrefilterDecision:
    """The Calendar returns the document's date, so a document without one cannot use it."""
    if item.date is None:
        return PrefilterDecision(False, "no document date")
    return PrefilterDecision(True, "has date")


@register_prefilter("MT", options=MTPrefilterOptions)
def mt_prefilter(item: PrefilterInput) -> PrefilterDecision:
    """A non-English chunk of enough words inside English text."""
    opts = item.options or MTPrefilterOptions()
    try:
        from toolformer.text.langdetect import find_foreign_spans
    except ImportError:
        item.warnings["langdetect_unavailable"] += 1
        return PrefilterDecision(False, "language detector unavailable")
    if find_foreign_spans(item.text, min_tokens=opts.min_foreign_tokens):
        return PrefilterDecision(True, "foreign span")
    return PrefilterDecision(False, "no foreign span")
