"""Rank fusion and top-k selection over retriever scores."""

from __future__ import annotations

from typing import Dict, List, Sequence, Tuple


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> List[Tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1;
    ``[(doc, score)]`` best first, a tie to the lower doc."""
    fused: Dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


def top_k(scores, k: int) -> List[Tuple[int, float]]:
    """The ``k`` best ``(index, score)`` of the array ``scores[n]`` with score > 0, best first;
    ties go to the lower index."""
    import numpy as np

    k = min(k, len(scores))
    if k <= 0:
        return []
    cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    # widen to every document tied with the k-th score so that the tie rule is exact
    kth = scores[cand].min()
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))[:k]
    return [(int(cand[i]), float(scores[cand[i]])) for i in order if scores[cand[i]] > 0]
