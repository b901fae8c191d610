"""Splitting prose: sentences, fixed-size passages at sentence ends, and paragraphs of prose.

``split_passages`` cuts search corpora into ~100-word passages (:mod:`toolformer.retrieval.corpus`);
``split_paragraphs`` cuts the default annotation corpus into paragraphs that fit one model
window (:mod:`toolformer.data_aug.inputs`); QA's reader picks the best sentence of a passage.
"""

from __future__ import annotations

import re
from typing import List

# Paragraphs of the default corpus: enough words to be prose, few enough for one model window.
PARAGRAPH_MIN_WORDS = 30
PARAGRAPH_MAX_WORDS = 160  # ~200-240 SmolLM2 tokens; the annotator's window is 256


_SENT_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+(?=[\"'\u201c(]?[A-Z0-9])")
_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "mt",
    "ft",
    "vs",
    "etc",
    "no",
    "vol",
    "c",
    "ca",
    "e.g",
    "i.e",
    "approx",
    "inc",
    "ltd",
    "co",
    "gen",
    "col",
    "lt",
    "sgt",
    "rev",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "fig",
    "u.s",
    "u.k",
    "d.c",
    "op",
    "ed",
    "eds",
    "al",
}


def split_sentences(text: str) -> List[str]:
    """Split prose at sentence ends, not after common abbreviations or initials ("S. N. Bose")."""
    pieces: List[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        before = text[start : m.start()].rstrip("\"'\u201d\u2019)")
        last = before.rsplit(None, 1)[-1] if before.split() else ""
        word = last.rstrip(".!?").lower()
        if last.endswith(".") and (word in _ABBREV or (len(word) == 1 and word.isalpha())):
            continue
        pieces.append(text[start : m.start() + len(m.group(0))].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return [p for p in pieces if p]


def split_passages(text: str, words: int = 100) -> List[str]:
    """Cut ``text`` into windows of about ``words`` words that end at sentence ends.

    A window does not cross a paragraph break once it is half full; a sentence longer than
    twice the target is cut at word boundaries.
    """
    out: List[str] = []
    current: List[str] = []
    count = 0

    def flush() -> None:
        nonlocal current, count
        if current:
            out.append(" ".join(current))
        current, count = [], 0

    for paragraph in re.split(r"\n\s*\n", text):
        if count >= words // 2:
            flush()
        for sentence in split_sentences(" ".join(paragraph.split())):
            n = len(sentence.split())
            if n > 2 * words:
                flush()
                tokens = sentence.split()
                for i in range(0, len(tokens), words):
                    out.append(" ".join(tokens[i : i + words]))
                continue
            if count and count + n > words:
                flush()
            current.append(sentence)
            count += n
    flush()
    return out


def _is_prose(text: str) -> bool:
    if len(text.split()) < PARAGRAPH_MIN_WORDS or text[-1] not in ".!?\"')\u201d":
        return False
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 0.7 * sum(not ch.isspace() for ch in text)


def split_paragraphs(text: str, max_words: int = PARAGRAPH_MAX_WORDS) -> List[str]:
    """Prose paragraphs (blank-line separated) of an article, long ones cut at sentence ends.

    Paragraphs under ``PARAGRAPH_MIN_WORDS`` words or made mostly of digits and symbols are
    dropped. A paragraph longer than ``max_words`` becomes pieces of whole sentences, each at most
    ``max_words`` words (unless one sentence alone is longer); a short last piece joins the one
    before it when that stays within 1.25 x ``max_words``.
    """
    out: List[str] = []
    for block in re.split(r"\n\s*\n", text):
        para = " ".join(block.split())
        if not para or not _is_prose(para):
            continue
        if len(para.split()) <= max_words:
            out.append(para)
            continue
        pieces: List[str] = []
        piece: List[str] = []
        count = 0
        for sentence in split_sentences(para):
            n = len(sentence.split())
            if piece and count + n > max_words:
                pieces.append(" ".join(piece))
                piece, count = [], 0
            piece.append(sentence)
            count += n
        tail = " ".join(piece)
        if (
            pieces
            and count < PARAGRAPH_MIN_WORDS
            and len(pieces[-1].split()) + count <= max_words * 1.25
        ):
            pieces[-1] = f"{pieces[-1]} {tail}"
        elif tail:
            pieces.append(tail)
        out.extend(p for p in pieces if _is_prose(p))
    return out
