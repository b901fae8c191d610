"""BM25 terms: English stopwords, Harman's S-stemmer and the tokenizer built on them.

Shared by the BM25 index (passages and queries), WikiSearch's snippets and QA's answer cleaning
(which words a question and an answer have in common).
"""

from __future__ import annotations

import re
import unicodedata
from typing import List

TOKENIZER_VERSION = 1  # part of the BM25 cache key: bump when tokenize() changes

# NLTK's English stopword list (question words included: they carry no topic)
STOPWORDS = frozenset(
    """
a about above after again against ain all am an and any are aren arent as at be because been
before being below between both but by can couldn couldnt d did didn didnt do does doesn doesnt
doing don dont down during each few for from further had hadn hadnt has hasn hasnt have haven
havent having he her here hers herself him himself his how i if in into is isn isnt it its itself
just ll m ma me mightn mightnt more most mustn mustnt my myself needn neednt no nor not now o of
off on once only or other our ours ourselves out over own re s same shan shant she shes should
shouldn shouldnt shouldve so some such t than that thatll the their theirs them themselves then
there these they this those through to too under until up ve very was wasn wasnt we were weren
werent what when where which while who whom why will with won wont wouldn wouldnt y you youd
youll your youre yours yourself yourselves youve
""".split()
)

_WORD = re.compile(r"[^\W_]+")


def s_stem(word: str) -> str:
    """Harman's (1991) S-stemmer: folds English plurals ("aardvarks" -> "aardvark", "cities" ->
    "city") and leaves everything else alone; far gentler than Porter, and free."""
    if len(word) <= 3 or not word.endswith("s"):
        return word
    if word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if word.endswith(("us", "ss")):
        return word
    return word[:-1]


def tokenize(text: str, stem: bool = True) -> List[str]:
    """BM25 terms: lowercase, accents folded, punctuation dropped, English stopwords removed,
    plurals folded (``stem``)."""
    text = text.lower()
    if not text.isascii():
        text = "".join(
            c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c)
        )
    words = [t for t in _WORD.findall(text) if t not in STOPWORDS]
    return [s_stem(t) for t in words] if stem else words
