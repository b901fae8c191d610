"""Leaving the annotated document out of retrieval results (self-retrieval).

``toolformer augment`` by default annotates gensim's Wikipedia sample while WikiSearch searches
an index of the same sample: a search then finds the very paragraph being annotated, its result
holds the document's next words, and the call passes the loss filter by handing them to the
model. Fine-tuning on such calls teaches copying, not search. So while a document is annotated
(:class:`~toolformer.tools.base.SourceDocument` in the call's context) a retrieval result never
holds a passage

- of the same document: the passage's id is the document's id (or ``<id>#<part>``, a cut
  record of a user corpus), or its title is the document's title (gensim's sample: the same
  article);
- holding the text right after the call: a run of :data:`RUN_WORDS` normalised words (all of
  them when fewer follow, at least :data:`MIN_RUN_WORDS`) from the next :data:`FOLLOWING_WORDS`
  words of the document (a copy of the document under another id or title).

Such passages are dropped before ranking is cut to ``k`` (more candidates are fetched, so ``k``
results still come back) and counted as :data:`SELF_EXCLUDED`. At generation time no document
is known and nothing is left out.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any, Callable, FrozenSet, List, Mapping, Optional, Sequence, Tuple, TypeVar

from toolformer.tools.base import SourceDocument, ToolContext

SELF_EXCLUDED = "retrieval_self_excluded"  # the counter: passages left out as the document
FOLLOWING_WORDS = 20  # the document's next words a passage may not hold
RUN_WORDS = 8  # a passage holding this many of them in a row is the document (or a copy)
MIN_RUN_WORDS = 5  # shorter runs (the end of a document) are too common to tell
EXTRA_CANDIDATES = 8  # fetched beyond k at first; doubled while too few are left

_WORD = re.compile(r"[^\W_]+")
_SPACE = re.compile(r"\s+")

H = TypeVar("H")  # a hit: (passage, score)


def words(text: str) -> List[str]:
    """Lowercase words with accents folded and punctuation dropped (stopwords kept: a run of
    the document's words is matched as written)."""
    text = text.lower()
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    return _WORD.findall(text)


def following_text(text: str, at: int, n_words: int = FOLLOWING_WORDS) -> str:
    """The first ``n_words`` whitespace-separated words of ``text[at:]`` (a call's next words)."""
    return " ".join(text[at : at + 40 * n_words].split()[:n_words])


_DEFAULT_CORPUS_ID = re.compile(r"wiki:(.+)#\d+")  # data_aug.inputs.default_corpus_records


def default_corpus_title(doc_id: Any) -> Optional[str]:
    """The article title in an id of augment's default corpus (``wiki:Ayn_Rand#0`` -> ``Ayn
    Rand``; selftrain keeps these ids but not the title), else None."""
    m = _DEFAULT_CORPUS_ID.fullmatch(str(doc_id))
    return m.group(1).replace("_", " ") if m else None


def text_after(text: str, prompt: str, n_words: int = FOLLOWING_WORDS) -> str:
    """The ``n_words`` words of ``text`` after ``prompt`` when ``prompt`` is its opening (word
    for word), else "" (what a continuation of ``prompt`` would copy from the document)."""
    head, words_ = prompt.split(), text.split()
    if not head or words_[: len(head)] != head:
        return ""
    return " ".join(words_[len(head) : len(head) + n_words])


def normal_title(title: Optional[str]) -> str:
    """A title compared case-, space- and underscore-blind ("Ayn_Rand" is "ayn rand")."""
    return _SPACE.sub(" ", str(title or "").replace("_", " ")).strip().casefold()


@dataclass(frozen=True)
class SelfExclusion:
    """What marks a passage as the annotated document (see the module docstring)."""

    doc_id: str
    title: str  # normalised; "" when the document has none
    runs: FrozenSet[Tuple[str, ...]]  # word runs of the text after the call
    run_words: int

    @classmethod
    def of(cls, document: Optional[SourceDocument]) -> Optional["SelfExclusion"]:
        """The rule for ``document``; None when there is none (generation) or nothing in it
        can identify a passage."""
        if document is None:
            return None
        following = words(document.following or "")[:FOLLOWING_WORDS]
        n = min(RUN_WORDS, len(following))
        runs: FrozenSet[Tuple[str, ...]] = frozenset()
        if n >= MIN_RUN_WORDS:
            runs = frozenset(tuple(following[i : i + n]) for i in range(len(following) - n + 1))
        doc_id = "" if document.id is None else str(document.id)
        title = normal_title(document.title)
        if not (doc_id or title or runs):
            return None
        return cls(doc_id, title, runs, n)

    @classmethod
    def from_context(cls, context: Optional[ToolContext]) -> Optional["SelfExclusion"]:
        return cls.of(getattr(context, "document", None))

    def reason(self, passage: Any) -> Optional[str]:
        """Why ``passage`` (anything with ``id``, ``title``, ``text``) is the annotated
        document: ``"id"``, ``"title"`` or ``"text"``; None when it is not."""
        pid = str(getattr(passage, "id", "") or "")
        if self.doc_id and (pid == self.doc_id or pid.startswith(self.doc_id + "#")):
            return "id"
        if self.title and normal_title(getattr(passage, "title", "")) == self.title:
            return "title"
        if self.runs:
            w = words(str(getattr(passage, "text", "") or ""))
            n = self.run_words
            if any(tuple(w[i : i + n]) in self.runs for i in range(len(w) - n + 1)):
                return "text"
        return None

    def excludes(self, passage: Any) -> bool:
        return self.reason(passage) is not None


def search_excluding(
    search: Callable[[int], Sequence[H]],
    k: int,
    exclusion: Optional[SelfExclusion],
    total: Optional[int] = None,
) -> Tuple[List[H], int]:
    """The ``k`` best hits of ``search(n)`` (the ``n`` best ``(passage, score)``, best first)
    that ``exclusion`` does not leave out, and how many it left out ranked above the last one
    returned (all it saw when fewer than ``k`` are left). ``n`` starts at ``k`` +
    :data:`EXTRA_CANDIDATES` and doubles while too few are left, until ``search`` returns fewer
    than asked or ``n`` reaches ``total`` (the corpus size). No exclusion: ``search(k)``."""
    if exclusion is None:
        return list(search(k))[:k], 0
    n = k + EXTRA_CANDIDATES
    while True:
        hits = list(search(n))
        kept: List[H] = []
        dropped = 0
        for hit in hits:
            if exclusion.excludes(hit[0]):  # type: ignore[index]
                dropped += 1
                continue
            kept.append(hit)
            if len(kept) == k:
                return kept, dropped
        if len(hits) < n or (total is not None and n >= total):
            return kept, dropped
        n *= 2


E = TypeVar("E", bound=BaseException)


def with_notes(error: E, notes: Mapping[str, int]) -> E:
    """``error`` carrying counts (``error.notes``), as a :class:`~toolformer.tools.base.ToolOutput`
    does: a search that left out every passage still reports how many."""
    error.notes = {k: int(v) for k, v in notes.items() if v}  # type: ignore[attr-defined]
    return error
