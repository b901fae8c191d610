"""The paper's lenient zero-shot metrics, and answer extraction from a generated output.

Every metric reads the *answer text* (:func:`answer_text`): the model's output with each tool call
replaced by its result. ``"[Calculator(3*4) -> 12] 12 apples"`` reads ``"12 12 apples"``. The
result is what the model saw and built on, and in the paper's protocol a call's result is part of
the prediction (a model that calls ``[Calculator(400/1400) -> 0.29]`` and stops has answered
0.29); the call's name and arguments are not (the arguments of ``[QA(Who founded X?)]`` must not
count as words of the answer, nor the numbers in ``Calculator(3*4)`` as predicted numbers).

Metrics (paper, Section 4.2):

- ``lama``: the gold object (case-insensitive, on word boundaries) within the first 5 words.
- ``math``: the FIRST number of the output equals the gold answer (see :func:`numbers_match`).
- ``qa``: a gold alias, normalised SQuAD-style (lowercase, no punctuation, no articles; "3,000"
  reads "3000" and "U.S." reads "US"), appears as whole words within the first 20 words.
- ``multiple_choice``: the first option the output names, by letter ``(B)`` or by option text
  (see :func:`choice_prediction`), is the gold one.
- ``contains``: a gold form (a list of accepted forms) within the first 20 words, on word
  boundaries (the generated Dateset; the paper: the gold contained in the output).
- ``no_call``: the output has no call (prompts where no tool helps); it reads the output as
  generated, calls included.

When and which tool (:func:`call_statistics`): per task the call rate, the call precision (calls
of a tool that fits the task / all calls), recall (examples with a call of a fitting tool /
examples, for a task that a tool fits), a confusion table (expected x called tool, ``none`` on
both axes), accuracy with and without a call (the paper's Table 9) and failed calls per tool.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from toolformer.datasets.rows import answer_matches
from toolformer.registry import Registry
from toolformer.syntax import UNCLOSED, iter_calls
from toolformer.text.numbers import (
    Number,
    answer_numbers,
    drop_thousands_separators,
    first_answer_number,
)

LAMA_WORDS = 5
QA_WORDS = 20

# --------------------------------------------------------------------------- answer text

_OPEN_CALL = re.compile(r"\[[A-Za-z_][A-Za-z0-9_.]*\(")
_SPACES = re.compile(r"[ \t]+")


def _span(call: Any) -> tuple:
    get = call.get if isinstance(call, dict) else (lambda k, d=None: getattr(call, k, d))
    return get("start"), get("end"), get("result"), get("error")


def answer_text(output: str, calls: Optional[Sequence[Any]] = None) -> str:
    """The output with every call replaced by its result (a failed call by nothing).

    ``calls``: the generator's call records (objects or dicts with ``start``, ``end``,
    ``result``, ``error``); their spans also cover calls the model never closed properly
    (``[Calc(3*4]``), whose text is no answer. An unclosed span that never reached ``Name(`` is
    bracketed text, not a call, and is kept: under the top-k rule the generator opens ``[`` and
    the model may answer ``[A]``. Without records the calls are parsed from the text, and a call
    left open at the end (the token budget ran out inside it) is dropped. Text that merely
    contains brackets (``[1]``) is kept.
    """
    spans = [_span(c) for c in calls or ()]
    usable = bool(spans) and all(
        isinstance(s, int) and 0 <= s < len(output) and output[s] == "[" for s, _, _, _ in spans
    )
    parts: List[str] = []
    pos = 0
    if usable:
        for start, end, result, error in sorted(spans, key=lambda sp: sp[0]):
            end = len(output) if end is None else end
            if start < pos:
                continue
            if error == UNCLOSED and not _OPEN_CALL.match(output, start):
                continue  # closed before it became a call: the text stays
            parts.append(output[pos:start])
            parts.append(f" {result} " if result and not error else " ")
            pos = end
        parts.append(output[pos:])
        return _SPACES.sub(" ", "".join(parts)).strip(" ")
    for m in iter_calls(output):
        parts.append(output[pos : m.start])
        parts.append(f" {m.call.result} " if m.call.result else " ")
        pos = m.end
    tail = output[pos:]
    opened = None
    for opened in _OPEN_CALL.finditer(tail):
        pass
    if opened is not None and "]" not in tail[opened.start() :]:
        tail = tail[: opened.start()]
    parts.append(tail)
    return _SPACES.sub(" ", "".join(parts)).strip(" ")


def first_words(text: str, n: int) -> List[str]:
    """The first ``n`` whitespace-separated words of ``text``."""
    return text.split()[:n]


# --------------------------------------------------------------------------- numbers


def parse_gold_number(value: Any) -> Optional[float]:
    """A gold answer as a float: a JSON number, or a string holding exactly one number."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        nums = answer_numbers(value.strip())
        if len(nums) == 1 and nums[0].text.strip() == value.strip().rstrip("."):
            return nums[0].value
    return None


def numbers_match(pred: Union[Number, float, None], gold: float) -> bool:
    """Numeric equality with a float tolerance.

    Equal within a relative 1e-6; a prediction written with at least 2 decimals also matches
    the gold rounded to that many decimals ("0.29" for 2/7), as the paper's Calculator rounds
    its results to 2 decimals. "12" never matches 120, and "4" never matches 4.33.
    """
    if pred is None:
        return False
    value = pred.value if isinstance(pred, Number) else float(pred)
    if math.isclose(value, gold, rel_tol=1e-6, abs_tol=1e-9):
        return True
    decimals = pred.decimals if isinstance(pred, Number) else None
    return (
        decimals is not None
        and decimals >= 2
        and math.isclose(round(gold, decimals), value, abs_tol=10 ** -(decimals + 3))
    )


# --------------------------------------------------------------------------- text answers

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation) | {"\u2018", "\u2019", "\u201c", "\u201d", "\u2013", "\u2014"}


# "U.S." / "D.C." / "e.g.": the dots of an abbreviation written letter by letter. They are
# dropped, not turned into spaces, as are the commas of a grouped number, so that "3,000" reads
# "3000" and "U.S." reads "US"; a decimal point stays ("3.14" is not "314").
_LETTER_ABBREVIATION = re.compile(r"(?<![\w.])[^\W\d_](?:\.[^\W\d_])+\.?(?!\w)")


def fold_numbers_and_abbreviations(text: str) -> str:
    """``"3,000"`` -> ``"3000"``, ``"U.S."`` -> ``"US"``; other text unchanged."""
    text = drop_thousands_separators(text)
    return _LETTER_ABBREVIATION.sub(lambda m: m.group().replace(".", ""), text)


def normalize_answer(text: str) -> str:
    """SQuAD normalisation (lowercase, drop punctuation and articles, collapse whitespace),
    after :func:`fold_numbers_and_abbreviations`; a decimal point between digits is kept."""
    text = fold_numbers_and_abbreviations(text.lower())
    last = len(text) - 1
    text = "".join(
        " "
        if ch in _PUNCT
        and not (ch == "." and 0 < i < last and text[i - 1].isdigit() and text[i + 1].isdigit())
        else ch
        for i, ch in enumerate(text)
    )
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def contains_words(haystack: str, needle: str) -> bool:
    """``needle`` occurs in ``haystack`` on word boundaries, ignoring case."""
    needle = needle.strip()
    if not needle:
        return False
    pattern = r"(?<!\w)" + re.escape(needle) + r"(?!\w)"
    return re.search(pattern, haystack, flags=re.IGNORECASE) is not None


def lama_correct(text: str, gold: str, n_words: int = LAMA_WORDS) -> bool:
    """The gold object is among the first ``n_words`` words (case-insensitive, whole words,
    both sides through :func:`fold_numbers_and_abbreviations`)."""
    window = " ".join(first_words(text, n_words))
    fold = fold_numbers_and_abbreviations
    return contains_words(fold(window), fold(gold))


def qa_correct(text: str, aliases: Sequence[str], n_words: int = QA_WORDS) -> bool:
    """A normalised alias appears as whole words within the first ``n_words`` words."""
    window = " " + normalize_answer(" ".join(first_words(text, n_words))) + " "
    for alias in aliases:
        norm = normalize_answer(alias)
        if norm and f" {norm} " in window:
            return True
    return False


# --------------------------------------------------------------------------- multiple choice

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def choice_prediction(text: str, choices: Sequence[str]) -> Optional[int]:
    """The index of the first option that ``text`` names, or None.

    An option is named by its letter in parentheses or brackets ``(B)`` / ``[B]``, by ``B)`` /
    ``B.`` / ``B:`` as a word, by a bare ``B`` as the whole first line or after "answer" ("the
    answer is B"), or by its text (case-insensitive, on word boundaries). The earliest mention
    wins; at equal positions the longer one.
    """
    letters = LETTERS[: len(choices)]
    found: List[tuple] = []  # (start, -length, index)
    if letters:
        for m in re.finditer(
            rf"\(([{letters}])\)|\[([{letters}])\]|(?<!\w)([{letters}])[\).:](?!\w)", text
        ):
            letter = m.group(1) or m.group(2) or m.group(3)
            found.append((m.start(), -(m.end() - m.start()), letters.index(letter)))
        m = re.match(rf"\s*([{letters}])\s*$|\s*([{letters}])\s*\n", text)
        if m:
            letter = m.group(1) or m.group(2)
            found.append((m.start(1) if m.group(1) else m.start(2), -1, letters.index(letter)))
        for m in re.finditer(rf"(?i:\banswer(?:\s+is)?:?)\s+([{letters}])(?![\w(])", text):
            found.append((m.start(1), -1, letters.index(m.group(1))))
    for i, choice in enumerate(choices):
        choice = choice.strip()
        if not choice:
            continue
        m = re.search(r"(?<!\w)" + re.escape(choice) + r"(?!\w)", text, flags=re.IGNORECASE)
        if m:
            found.append((m.start(), -(m.end() - m.start()), i))
    if not found:
        return None
    return min(found)[2]


# --------------------------------------------------------------------------- metric specs

# What a task asks of the model (lm-evaluation-harness' names): a generated continuation, scored
# per example, or the log-likelihood of a whole text in rolling windows (perplexity).
GENERATE_UNTIL = "generate_until"
LOGLIKELIHOOD_ROLLING = "loglikelihood_rolling"
OUTPUT_TYPES = (GENERATE_UNTIL, LOGLIKELIHOOD_ROLLING)


@dataclass
class Scored:
    """An output's extracted answer (JSON-ready) and whether it is correct."""

    extracted: Any
    correct: bool


# scorer(answer_text, gold, choices) -> Scored; answer_text as from :func:`answer_text`
Scorer = Callable[[str, Any, Optional[Sequence[str]]], Scored]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: how an example is scored, which way is better, how a score is shown.

    A per-example metric (``output_type`` generate_until) has a ``scorer``, and a task's score
    is the mean of its examples' ``correct``, shown in percent. A corpus metric (perplexity) has
    none: its runner computes the score.
    """

    name: str
    description: str = ""
    scorer: Optional[Scorer] = None
    output_type: str = GENERATE_UNTIL
    higher_is_better: bool = True
    percent: bool = True  # show score x 100 with one decimal (else the value with two)
    # the scorer reads the output as generated (calls in it) instead of its answer text
    reads_calls: bool = False

    def __post_init__(self) -> None:
        if self.output_type not in OUTPUT_TYPES:
            raise ValueError(f"metric {self.name}: output_type must be one of {OUTPUT_TYPES}")

    def score(
        self,
        output: str,
        gold: Any,
        choices: Optional[Sequence[str]] = None,
        calls: Optional[Sequence[Any]] = None,
    ) -> Scored:
        """Score one generated ``output`` (calls still in it; ``calls``: see
        :func:`answer_text`). Raises ``ValueError`` for a corpus metric."""
        if self.scorer is None:
            raise ValueError(f"{self.name} is computed over a whole text, not per output")
        if self.reads_calls:
            return self.scorer(output, gold, choices)
        return self.scorer(answer_text(output, calls), gold, choices)

    def format(self, score: float) -> str:
        """``score`` for a table: percent with one decimal, or the value with two."""
        return f"{100 * score:.1f}" if self.percent else f"{score:.2f}"


METRICS: Registry[MetricSpec] = Registry("metric", entry_points="toolformer.metrics")


def register_metric(spec: MetricSpec, overwrite: bool = False) -> MetricSpec:
    """Add a metric (a plugin's or a user's own) to :data:`METRICS`."""
    return METRICS.register(spec.name, spec, overwrite=overwrite)


def _math(text: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    num = first_answer_number(text)
    return Scored(None if num is None else num.value, numbers_match(num, float(gold)))


def _lama(text: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    return Scored(" ".join(first_words(text, LAMA_WORDS)), lama_correct(text, str(gold)))


def _qa(text: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    aliases = [gold] if isinstance(gold, str) else list(gold)
    return Scored(" ".join(first_words(text, QA_WORDS)), qa_correct(text, aliases))


def _multiple_choice(text: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    if choices is None:
        raise ValueError("multiple_choice scoring needs the choices")
    idx = choice_prediction(text, choices)
    extracted: Dict[str, Any] = {"index": idx, "letter": None if idx is None else LETTERS[idx]}
    return Scored(extracted, idx is not None and idx == int(gold))


def _contains(text: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    forms = [gold] if isinstance(gold, str) else [str(g) for g in gold]
    return Scored(" ".join(first_words(text, QA_WORDS)), answer_matches(text, forms, QA_WORDS))


def output_calls(output: str) -> List[str]:
    """The tool names of the calls in a generated ``output``, in order: every ``[Name(`` (a
    call closed or not; a bracket that never reached a name is no call)."""
    return [m.group(0)[1:-1] for m in _OPEN_CALL.finditer(output)]


def _no_call(output: str, gold: Any, choices: Optional[Sequence[str]]) -> Scored:
    called = output_calls(output)
    return Scored(called, not called)


for _spec in (
    MetricSpec("math", "the first number equals the gold answer", _math),
    MetricSpec("lama", f"the gold object within the first {LAMA_WORDS} words", _lama),
    MetricSpec("qa", f"a normalised gold alias within the first {QA_WORDS} words", _qa),
    MetricSpec("multiple_choice", "the first option named is the gold one", _multiple_choice),
    MetricSpec("contains", f"a gold form within the first {QA_WORDS} words", _contains),
    MetricSpec("no_call", "the output has no tool call", _no_call, reads_calls=True),
    MetricSpec(
        "perplexity",
        "token-level perplexity of the text (rolling windows)",
        output_type=LOGLIKELIHOOD_ROLLING,
        higher_is_better=False,
        percent=False,
    ),
):
    register_metric(_spec)


def score_output(
    kind: str,
    output: str,
    gold: Any,
    choices: Optional[Sequence[str]] = None,
    calls: Optional[Sequence[Any]] = None,
) -> Scored:
    """Score one generated ``output`` (calls still in it) against ``gold`` with metric ``kind``.

    ``gold`` is a float (math), a string (lama), a list of aliases (qa) or the index of the
    right option (multiple_choice, with ``choices``); ``calls``: see :func:`answer_text`.
    Raises :class:`~toolformer.registry.UnknownNameError` for an unknown metric.
    """
    return METRICS.get(kind).score(output, gold, choices, calls)


# --------------------------------------------------------------------------- when and which

NO_TOOL = "none"  # the confusion table's label for "no tool expected" / "no call made"


def called_tools(calls: Sequence[Any]) -> List[str]:
    """The tool names of a sample's call records (dicts or objects with ``tool``), in order.

    A record without a name (the call rule opened ``[`` but the model wrote no tool name, e.g.
    ``[A]``) is no call, as in :func:`answer_text`.
    """
    names = []
    for c in calls or ():
        name = c.get("tool") if isinstance(c, dict) else getattr(c, "tool", None)
        if name:
            names.append(str(name))
    return names


def expected_label(expected: Sequence[str]) -> str:
    """A confusion-table row label: ``QA/WikiSearch``, ``Calculator``, or ``none``."""
    return "/".join(expected) if expected else NO_TOOL


def _rate(num: int, den: int) -> Optional[float]:
    return num / den if den else None


def call_statistics(samples: Sequence[Dict[str, Any]], expected: Sequence[str]) -> Dict[str, Any]:
    """When and which tool the model called on one task.

    ``samples``: records with ``calls`` (call records as dicts: ``tool``, ``error``) and
    ``correct``; ``expected``: the tools that fit the task (``()``: none does). Returns:

    - ``call_rate``: share of examples with at least one call;
    - ``precision``: calls of an expected tool / all calls (None without calls); its complement
      ``wrong_tool_calls`` / ``calls`` is the share of calls to a tool that does not fit;
    - ``recall``: examples with a call of an expected tool / examples (None when no tool fits);
    - ``f1`` of the two (None unless both are defined);
    - ``confusion``: ``{expected_label: {called: count}}``; a cell counts examples: one that
      called tools counts once under each tool it called, one without a call under ``none``;
    - ``called`` / ``not_called``: ``{"correct", "n", "accuracy"}`` over the examples with and
      without a call (the paper's Table 9);
    - ``failed_calls_by_tool``: calls that returned no result, per tool.
    Tool names compare case-insensitively.
    """
    fits = {t.lower() for t in expected}
    n = len(samples)
    n_calls = fitting_calls = with_call = with_fitting = 0
    row: Dict[str, int] = {}
    failed: Dict[str, int] = {}
    split = {True: [0, 0], False: [0, 0]}  # called -> [correct, n]
    for s in samples:
        names = called_tools(s.get("calls") or ())
        n_calls += len(names)
        fitting_calls += sum(1 for t in names if t.lower() in fits)
        with_call += bool(names)
        with_fitting += any(t.lower() in fits for t in names)
        for t in dict.fromkeys(names) or (NO_TOOL,):
            row[t] = row.get(t, 0) + 1
        for c in s.get("calls") or ():
            if c.get("tool") and c.get("error"):
                failed[c["tool"]] = failed.get(c["tool"], 0) + 1
        cell = split[bool(names)]
        cell[0] += bool(s.get("correct"))
        cell[1] += 1
    precision = _rate(fitting_calls, n_calls)
    recall = _rate(with_fitting, n) if fits else None
    f1 = (
        2 * precision * recall / (precision + recall)
        if precision and recall
        else (0.0 if precision is not None and recall is not None else None)
    )
    return {
        "expected_tools": list(expected),
        "n": n,
        "call_rate": _rate(with_call, n) or 0.0,
        "calls": n_calls,
        "expected_calls": fitting_calls,
        "wrong_tool_calls": n_calls - fitting_calls,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "confusion": {expected_label(expected): dict(sorted(row.items()))},
        "called": {"correct": split[True][0], "n": split[True][1], "accuracy": _rate(*split[True])},
        "not_called": {
            "correct": split[False][0],
            "n": split[False][1],
            "accuracy": _rate(*split[False]),
        },
        "failed_calls_by_tool": dict(sorted(failed.items())),
    }


def merge_call_statistics(per_task: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """The run's totals over tasks' :func:`call_statistics`: calls, precision, the summed
    confusion table (rows: expected tools, columns: called tools) and failed calls."""
    confusion: Dict[str, Dict[str, int]] = {}
    failed: Dict[str, int] = {}
    calls = fitting = 0
    for stats in per_task:
        calls += stats["calls"]
        fitting += stats["expected_calls"]
        for label, row in stats["confusion"].items():
            target = confusion.setdefault(label, {})
            for tool, count in row.items():
                target[tool] = target.get(tool, 0) + count
        for tool, count in stats["failed_calls_by_tool"].items():
            failed[tool] = failed.get(tool, 0) + count
    return {
        "calls": calls,
        "expected_calls": fitting,
        "wrong_tool_calls": calls - fitting,
        "precision": _rate(fitting, calls),
        "confusion": confusion,
        "failed_calls_by_tool": failed,
    }
