"""BM25 over tokenised passages, by the ``bm25s`` library (sparse matrices, no pickle)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

from toolformer.atomic import atomic_write
from toolformer.errors import UserError
from toolformer.retrieval.fusion import top_k

BM25_VERSION = 3  # 3: bm25s (Lucene), 2: own Lucene idf, 1: rank_bm25; part of the cache key


class BM25Index:
    """BM25 scores of passages for a query's terms.

    Scores follow Lucene: idf(t) = log(1 + (N - n_t + 0.5) / (n_t + 0.5)), > 0 for every term
    however common (rank_bm25's log((N - n_t + 0.5) / (n_t + 0.5)) is <= 0 once a term is in half
    the passages, which were then never found), times tf / (tf + k1 (1 - b + b |d| / avgdl)).
    ``benchmarks/bm25_bench.py`` compares it with the hand-written index it replaced.
    """

    def __init__(self, retriever: Any):
        self.retriever = retriever
        self.vocab: Dict[str, int] = retriever.vocab_dict
        self.n_docs = int(retriever.scores["num_docs"])

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75) -> "BM25Index":
        """Index ``docs[passage] = [term, ...]`` (raises UserError when no passage has a term)."""
        import bm25s

        if not any(docs):
            raise UserError(
                "the corpus has no searchable words (all passages are empty or stopwords)"
            )
        retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
        retriever.index([list(d) for d in docs], show_progress=False)
        return cls(retriever)

    def scores(self, terms: Sequence[str]):
        """BM25 score of every passage, ``float64[n_docs]`` (query terms counted with
        repetition)."""
        import numpy as np

        known = [t for t in terms if t and t in self.vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float64)

    def search(self, terms: Sequence[str], k: int) -> List[Tuple[int, float]]:
        """The ``k`` best ``(passage index, score)`` with a score > 0, best first."""
        return top_k(self.scores(terms), k)

    def save(self, path: Path) -> None:
        """Write the index into the folder ``path`` (numpy arrays and JSON; replaced whole)."""
        atomic_write(
            path, lambda tmp: self.retriever.save(str(tmp), allow_pickle=False, show_progress=False)
        )

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        """Read a saved index (``np.load`` with ``allow_pickle=False``): OSError/ValueError when
        the folder is not one."""
        import bm25s

        if not path.is_dir():
            raise OSError(f"{path} is not a BM25 index folder")
        return cls(bm25s.BM25.load(str(path), allow_pickle=False, show_progress=False, verbosity=0))
