"""GSM8K's row format, read by the self-training corpus and written by the generated problems:
a ``question`` and an ``answer`` whose rationale marks each calculation ``<<48/2=24>>`` and
ends in ``#### <number>``."""

from __future__ import annotations

import re
from typing import Any, Dict

from toolformer.errors import UserError

CALC_MARK = re.compile(r"<<[^<>]*>>")
FINAL = "####"


def strip_marks(rationale: str) -> str:
    """A GSM8K rationale without its ``<<48/2=24>>`` calculator annotations."""
    return CALC_MARK.sub("", rationale)


def parse_gsm8k(row: Dict[str, Any], where: str) -> tuple:
    """``(question, solution, answer)`` of a GSM8K row: the rationale's lines (marks stripped)
    joined into one line, and the number after ``####``.

    Raises :class:`~toolformer.errors.UserError` naming ``where`` for a row without a question,
    an answer or a ``#### <number>`` line."""
    # toolformer.eval's package imports its harness: only when a GSM8K row is read
    from toolformer.eval.metrics import parse_gold_number

    if not isinstance(row, dict) or "question" not in row or "answer" not in row:
        raise UserError(f"{where}: a GSM8K row needs 'question' and 'answer'")
    body, sep, final = str(row["answer"]).rpartition(FINAL)
    gold = parse_gold_number(final.strip().replace(",", "")) if sep else None
    if gold is None:
        raise UserError(f"{where}: answer has no '#### <number>' line")
    solution = " ".join(line.strip() for line in strip_marks(body).splitlines() if line.strip())
    return " ".join(str(row["question"]).split()), solution, gold
