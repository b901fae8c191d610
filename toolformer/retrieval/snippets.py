"""Snippets: the part of a retrieved passage that answers a query, cut to a length."""

from __future__ import annotations

import re

from toolformer.retrieval.corpus import Passage
from toolformer.retrieval.terms import tokenize
from toolformer.text.split import split_sentences


def snippet(passage: Passage, query: str, limit: int = 200, stem: bool = True) -> str:
    """The passage's sentence that shares most query terms (earliest on ties), followed by the
    next sentences while they fit in ``limit`` characters; the title leads unless present."""
    terms = set(tokenize(query, stem))
    sentences = split_sentences(passage.text) or [passage.text]
    best = max(
        range(len(sentences)),
        key=lambda i: (len(terms & set(tokenize(sentences[i], stem))), -i),
    )
    text = sentences[best]
    for nxt in sentences[best + 1 :]:
        if len(text) + 1 + len(nxt) > limit:
            break
        text = f"{text} {nxt}"
    title = re.sub(r"\s*\(.*\)$", "", passage.title).strip()
    if title and title.lower() not in text.lower():
        text = f"{title}: {text}"
    return clip(text, limit)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, at a word when one ends past half of it,
    with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
