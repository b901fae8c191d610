"""WikiSearch BM25: the library (bm25s, what WikiSearch uses) against our former hand-written
sparse index, side by side in one run, on the same tokens.

Both use Lucene's idf and the same tokenizer (lowercase, accents folded, stopwords, S-stemmer);
both rank identically (asserted on every question). Measured per corpus: tokenizing (shared),
index build, save + reload, query time (median over the questions, many repeats), top-1 title.

Corpora and questions (the plain questions the tests use; a list of 30 is quoted in RESULTS.md
but is not stored in the repository):

- the shared 97k passages (``$TOOLFORMER_SHARED/data/wiki_corpus/passages.jsonl``, default
  /work/shared/data/...): SHARED_QUESTIONS of tests/test_wiki_search.py;
- gensim's Wikipedia sample (the default corpus): DEFAULT_QUESTIONS of the same file.

    python benchmarks/bm25_bench.py                 # both corpora
    python benchmarks/bm25_bench.py --limit 20000   # the first 20k shared passages only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's package, not an installed one


class HandWrittenBM25:
    """The index WikiSearch used before bm25s (Lucene idf, term-major sparse weights)."""

    def __init__(self, vocab, indptr, indices, weights, n_docs):
        self.vocab, self.indptr, self.indices, self.weights, self.n_docs = (
            vocab,
            indptr,
            indices,
            weights,
            n_docs,
        )

    @classmethod
    def build(cls, docs: Sequence[Sequence[str]], k1: float = 1.5, b: float = 0.75):
        vocab = {w: i for i, w in enumerate(sorted({t for d in docs for t in d}))}
        rows: List[int] = []
        cols: List[int] = []
        tfs: List[int] = []
        doc_len = np.zeros(len(docs))
        for j, doc in enumerate(docs):
            doc_len[j] = len(doc)
            for w, tf in Counter(doc).items():
                rows.append(vocab[w])
                cols.append(j)
                tfs.append(tf)
        rows_a, cols_a = np.asarray(rows), np.asarray(cols)
        tf_a = np.asarray(tfs, dtype=np.float64)
        df = np.bincount(rows_a, minlength=len(vocab)).astype(np.float64)
        idf = np.log1p((len(docs) - df + 0.5) / (df + 0.5))
        dl = doc_len[cols_a]
        w = idf[rows_a] * tf_a / (tf_a + k1 * (1 - b + b * dl / doc_len.mean()))
        order = np.lexsort((cols_a, rows_a))
        indptr = np.zeros(len(vocab) + 1, dtype=np.int64)
        np.add.at(indptr, rows_a + 1, 1)
        np.cumsum(indptr, out=indptr)
        return cls(
            vocab, indptr, cols_a[order].astype(np.int32), w[order].astype(np.float32), len(docs)
        )

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        out = np.zeros(self.n_docs)
        for term, count in Counter(terms).items():
            row = self.vocab.get(term)
            if row is not None:
                lo, hi = self.indptr[row], self.indptr[row + 1]
                out[self.indices[lo:hi]] += count * self.weights[lo:hi]
        return out

    def save(self, path: Path) -> None:
        words = sorted(self.vocab, key=self.vocab.get)
        np.savez(
            path,
            indptr=self.indptr,
            indices=self.indices,
            weights=self.weights,
            n_docs=np.int64(self.n_docs),
            vocab=np.asarray("\n".join(words)),
        )

    @classmethod
    def load(cls, path: Path):
        with np.load(path) as z:
            words = str(z["vocab"]).split("\n")
            return cls(
                {w: i for i, w in enumerate(words)},
                z["indptr"],
                z["indices"],
                z["weights"],
                int(z["n_docs"]),
            )


def _top1(scores: np.ndarray) -> int:
    return int(np.lexsort((np.arange(len(scores)), -scores))[0])


def bench(name: str, passages, questions: List[Tuple[str, str]], repeats: int) -> Dict[str, float]:
    from toolformer.retrieval.bm25 import BM25Index
    from toolformer.retrieval.terms import tokenize

    t = time.perf_counter()
    docs = [tokenize(f"{p.title} {p.text}") for p in passages]
    tok_s = time.perf_counter() - t
    queries = [tokenize(q) for q, _ in questions]
    out: Dict[str, float] = {}
    tops: Dict[str, List[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, cls, path in (
            ("hand-written", HandWrittenBM25, Path(tmp) / "h.npz"),
            ("bm25s", BM25Index, Path(tmp) / "bm25s"),
        ):
            t = time.perf_counter()
            index = cls.build(docs)
            out[f"{label} build s"] = time.perf_counter() - t
            t = time.perf_counter()
            index.save(path)
            index = cls.load(path)
            out[f"{label} save+reload s"] = time.perf_counter() - t
            times = []
            for q in queries:
                for _ in range(repeats):
                    t = time.perf_counter()
                    index.scores(q)
                    times.append(time.perf_counter() - t)
            out[f"{label} query ms (median)"] = 1000 * statistics.median(times)
            tops[label] = [_top1(index.scores(q)) for q in queries]
            out[f"{label} top-1"] = sum(
                passages[i].title == title for i, (_, title) in zip(tops[label], questions)
            )
    assert tops["hand-written"] == tops["bm25s"], "the two indexes rank differently"
    print(
        f"\n## {name}: {len(passages)} passages, {len(questions)} questions "
        f"(tokenizing {tok_s:.1f} s, shared)"
    )
    for what in ("build s", "save+reload s", "query ms (median)", "top-1"):
        a, b = out[f"hand-written {what}"], out[f"bm25s {what}"]
        ratio = f"{b / a:.2f}x" if a else "-"
        fmt = "{:.0f}/" + str(len(questions)) if what == "top-1" else "{:.3f}"
        print(
            f"{what:20s} hand-written {fmt.format(a):>10s}  bm25s {fmt.format(b):>10s}  "
            f"bm25s/hand-written: {ratio}"
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=None, help="first N shared passages only")
    ap.add_argument("--repeats", type=int, default=20, help="timed repeats of each query")
    ap.add_argument("--skip-default", action="store_true", help="only the shared passages")
    args = ap.parse_args()
    from test_wiki_search import DEFAULT_QUESTIONS, SHARED_QUESTIONS

    from toolformer.retrieval.corpus import CorpusConfig, load_passages

    shared = Path(os.environ.get("TOOLFORMER_SHARED", "/work/shared")) / "data" / "wiki_corpus"
    passages = load_passages(
        config=CorpusConfig(source=str(shared / "passages.jsonl"), limit=args.limit)
    )
    bench("shared wiki_corpus", passages, SHARED_QUESTIONS, args.repeats)
    if not args.skip_default:
        bench("default corpus (gensim sample)", load_passages(), DEFAULT_QUESTIONS, args.repeats)


if __name__ == "__main__":
    main()
