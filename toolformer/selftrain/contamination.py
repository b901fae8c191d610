"""The contamination guard: training texts that nearly duplicate an evaluation item are dropped
before any training, and the overlap is stated in the run's report.

Near-duplicate: the Jaccard similarity of the two texts' word sets (lowercased words and
numbers) is at least ``threshold`` (GSM8K's PROVENANCE.txt uses the same measure, > 0.5). Every
pair is not compared: an inverted index over the evaluation items' rarer words gives each
training text its candidates (items sharing at least one word that is in at most ``max_df`` of
the items), and the exact Jaccard is computed for those.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Sequence, Set, Tuple

_WORD = re.compile(r"[a-z0-9]+(?:[.,][0-9]+)*")


def word_set(text: str) -> Set[str]:
    """The set of lowercased words and numbers of ``text``."""
    return set(_WORD.findall(text.lower()))


def jaccard(a: Set[str], b: Set[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass
class OverlapReport:
    """What the guard found: per evaluation set, how many training texts nearly duplicate one of
    its items, and the largest similarity seen."""

    threshold: float
    checked: int
    eval_sizes: Dict[str, int]
    dropped: Dict[str, int] = field(default_factory=dict)  # per eval set
    max_similarity: Dict[str, float] = field(default_factory=dict)
    examples: List[Dict[str, object]] = field(default_factory=list)

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())

    def to_dict(self) -> Dict[str, object]:
        return {
            "measure": "Jaccard similarity of word sets",
            "threshold": self.threshold,
            "training_texts_checked": self.checked,
            "eval_sets": self.eval_sizes,
            "near_duplicates": self.dropped,
            "near_duplicate_share": {
                k: (v / self.checked if self.checked else 0.0) for k, v in self.dropped.items()
            },
            "max_similarity": {k: round(v, 4) for k, v in self.max_similarity.items()},
            "examples": self.examples[:5],
        }

    def line(self) -> str:
        """One line for the run's report."""
        parts = [
            (
                f"{name} {self.dropped.get(name, 0)} "
                f"({self.dropped.get(name, 0) / max(1, self.checked):.1%}, "
                f"max {self.max_similarity.get(name, 0.0):.2f})"
            )
            for name in self.eval_sizes
        ]
        return (
            f"contamination guard: {self.checked} training texts vs {', '.join(self.eval_sizes)} "
            f"(word-set Jaccard >= {self.threshold}): near-duplicates dropped: " + "; ".join(parts)
        )


class ContaminationGuard:
    """Index evaluation sets once; :meth:`check` flags training texts that nearly duplicate an
    item of any of them."""

    def __init__(
        self, eval_sets: Mapping[str, Sequence[str]], threshold: float = 0.5, max_df: float = 0.05
    ):
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {threshold}")
        self.threshold = threshold
        self.items: List[Tuple[str, Set[str], str]] = []
        for name, texts in eval_sets.items():
            for t in texts:
                self.items.append((name, word_set(t), t))
        self.sizes = {name: len(texts) for name, texts in eval_sets.items()}
        df: Counter = Counter(w for _, ws, _ in self.items for w in ws)
        cap = max(1, int(max_df * len(self.items)))
        self.index: Dict[str, List[int]] = defaultdict(list)
        for k, (_, ws, _) in enumerate(self.items):
            rare = [w for w in ws if df[w] <= cap] or list(ws)
            for w in rare:
                self.index[w].append(k)

    def best_match(self, text: str) -> Tuple[float, int]:
        """``(similarity, item index)`` of the closest evaluation item (-1 when none shares a
        word)."""
        ws = word_set(text)
        candidates = {k for w in ws for k in self.index.get(w, ())}
        best, arg = 0.0, -1
        for k in candidates:
            sim = jaccard(ws, self.items[k][1])
            if sim > best:
                best, arg = sim, k
        return best, arg

    def check(self, texts: Sequence[str]) -> Tuple[List[bool], OverlapReport]:
        """``(keep, report)``: ``keep[i]`` is False for a near-duplicate of an evaluation item."""
        report = OverlapReport(
            self.threshold,
            len(texts),
            dict(self.sizes),
            {n: 0 for n in self.sizes},
            {n: 0.0 for n in self.sizes},
        )
        keep: List[bool] = []
        for text in texts:
            sim, k = self.best_match(text)
            if k >= 0:
                name = self.items[k][0]
                report.max_similarity[name] = max(report.max_similarity[name], sim)
            dup = k >= 0 and sim >= self.threshold
            if dup:
                report.dropped[name] += 1
                report.examples.append(
                    {
                        "eval_set": name,
                        "similarity": round(sim, 3),
                        "training": text[:160],
                        "eval": self.items[k][2][:160],
                    }
                )
            keep.append(not dup)
        return keep, report


def word_ngrams(text: str, n: int = 13) -> Set[Tuple[str, ...]]:
    """The word ``n``-grams of ``text`` (lowercased words and numbers, as :func:`word_set`)."""
    words = _WORD.findall(text.lower())
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


class NgramGuard:
    """Drops training texts that share any word ``n``-gram with a reference text (GPT-3's
    contamination test, Brown et al. 2020, Appendix C: 13-grams): for plain text mixed into
    fine-tuning against a perplexity set such as WikiText-2, where a question-level Jaccard
    test does not apply. Texts shorter than ``n`` words are compared as a whole."""

    def __init__(self, references: Sequence[str], n: int = 13):
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        self.n = n
        self.grams: Set[Tuple[str, ...]] = set()
        for text in references:
            self.grams |= word_ngrams(text, n)

    def overlaps(self, text: str) -> bool:
        """Whether ``text`` shares an n-gram with the references."""
        grams = word_ngrams(text, self.n)
        if not grams:  # shorter than n words: the whole text as one gram
            words = tuple(_WORD.findall(text.lower()))
            return bool(words) and any(g[: len(words)] == words for g in self.grams)
        return not grams.isdisjoint(self.grams)


def eval_questions(names: Sequence[str], data_dir: str) -> Dict[str, List[str]]:
    """The texts of the named evaluation tasks' examples (a question with its fields; a perplexity
    task's text), by the harness's loaders and tasks."""
    from toolformer.eval.tasks import get_task, load_examples

    out: Dict[str, List[str]] = {}
    for name in names:
        spec, examples = load_examples(get_task(name), data_dir)
        out[spec.name] = [" ".join(str(v) for v in ex.fields.values()) for ex in examples]
    return out
