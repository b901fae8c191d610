"""Self-retrieval: while a document is annotated, WikiSearch and QA never return its own passage.

The default job annotates gensim's Wikipedia sample while WikiSearch searches an index of the
same sample; the search found the paragraph being annotated and every kept call copied the
document's next words. These tests annotate a document against a tiny index that holds it.
"""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from test_annotator import ADD_PROMPT, DOC, Add, assert_same, scripted_model

import toolformer.retrieval.search as search_mod
from toolformer.data_aug.annotator import Annotator, call_context, document_title
from toolformer.data_aug.reference import ReferenceAnnotator
from toolformer.data_aug.summary import RunStats, _stats_lines
from toolformer.data_aug.types import COUNTERS, AnnotatorConfig, Document
from toolformer.retrieval.corpus import Passage
from toolformer.retrieval.terms import tokenize
from toolformer.tools.base import SourceDocument, ToolContext
from toolformer.tools.executor import ToolExecutor
from toolformer.tools.qa import QA
from toolformer.tools.self_retrieval import (
    SELF_EXCLUDED,
    SelfExclusion,
    following_text,
    search_excluding,
)
from toolformer.tools.wiki_search import WikiSearch

RAND = (
    "Literary critics received Rand's fiction with mixed reviews, and academic philosophers "
    "generally ignored or rejected her philosophy. She was born and educated in Russia."
)
RECORDS = [
    {"id": "rand", "title": "Ayn Rand", "text": RAND},
    {
        "id": "critic",
        "title": "Literary criticism",
        "text": "Literary critics study and evaluate works of literature and fiction.",
    },
    {
        "id": "review",
        "title": "Book review",
        "text": "A book review is a form of literary criticism in which a book is analysed.",
    },
    {
        "id": "poe",
        "title": "Edgar Allan Poe",
        "text": "Poe was one of the first literary critics of American fiction.",
    },
]
ANNOTATED = Document(
    "wiki:Ayn_Rand#0", "Ayn Rand was a writer. " + RAND, meta={"title": "Ayn Rand"}
)
AT = len("Ayn Rand was a writer. ")  # the call goes before "Literary critics received ..."
QUERY = "critics received fiction reviews"


def corpus(tmp_path, records=RECORDS):
    path = tmp_path / "corpus.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return str(path)


def context(doc=ANNOTATED, at=AT):
    return call_context(doc, None, at)


class BagEncoder:
    """A deterministic stand-in for MiniLM (normalised bags of terms)."""

    def __init__(self):
        vocab = sorted({t for r in RECORDS for t in tokenize(f"{r['title']} {r['text']}")})
        self.vocab = {t: i for i, t in enumerate(vocab)}

    def encode(self, texts, **kwargs):
        out = np.zeros((len(texts), len(self.vocab)), dtype=np.float32)
        for r, text in enumerate(texts):
            for t in tokenize(text):
                if t in self.vocab:
                    out[r, self.vocab[t]] += 1
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(params=["bm25", "dense", "hybrid"])
def search(request, tmp_path, monkeypatch):
    encoder = BagEncoder()
    monkeypatch.setattr(search_mod, "load_encoder", lambda *a, **k: encoder)
    monkeypatch.setattr(search_mod, "dense_model_path", lambda *a, **k: tmp_path)
    return WikiSearch(
        corpus=corpus(tmp_path), mode=request.param, top_k=2, cache_dir=str(tmp_path / "cache")
    )


# --------------------------------------------------------------------------- WikiSearch


def test_wikisearch_leaves_out_the_annotated_document(search):
    # at generation time (no document) the search finds the passage, as before
    assert search.search(QUERY)[0][0].id == "rand"
    assert "received Rand's fiction" in search.run(QUERY)
    out = search.run(QUERY, context())
    assert "received Rand's fiction" not in out and "Ayn Rand" not in out
    assert out.notes == {SELF_EXCLUDED: 1}
    hits, dropped = search.search_excluding(QUERY, 2, SelfExclusion.from_context(context()))
    assert [p.id for p, _ in hits] == [p.id for p, _ in search.search(QUERY, 3)[1:]]  # k kept
    assert dropped == 1


@pytest.mark.parametrize(
    "doc",
    [
        Document("rand", "Ayn Rand was a writer. " + RAND),  # the passage's id
        Document("rand-doc", "A different text entirely.", meta={"title": "ayn_rand"}),  # its title
        Document(
            "x", "Ayn Rand was a writer. " + RAND, meta={"title": "Another title"}
        ),  # its text
    ],
)
def test_each_identity_of_the_document_is_left_out(tmp_path, doc):
    tool = WikiSearch(corpus=corpus(tmp_path), top_k=2, cache_dir=str(tmp_path / "cache"))
    out = tool.run(QUERY, context(doc, AT if doc.text.startswith("Ayn") else 0))
    assert "received Rand's fiction" not in out and out.notes == {SELF_EXCLUDED: 1}


def test_a_passage_holding_the_next_words_is_left_out_under_any_name():
    rule = SelfExclusion.of(SourceDocument("d", None, following_text(ANNOTATED.text, AT)))
    copy = Passage("other-7", "Other", "Intro words. " + RAND.upper().replace(",", ";"))
    assert rule.reason(copy) == "text"
    near = Passage("o", "O", "Critics received Rand's fiction with mixed feelings.")
    assert rule.reason(near) is None  # 5 words in a row, not 8: a passage about the same thing
    assert SelfExclusion.of(None) is None and SelfExclusion.of(SourceDocument()) is None
    assert following_text("a  b\nc d", 2, 2) == "b c"
    # a cut record of a user corpus ("<id>#<part>") is the document, another id is not
    rule = SelfExclusion.of(SourceDocument("42", None, ""))
    assert rule.reason(Passage("42#3", "", "x")) == "id"
    assert rule.reason(Passage("421", "", "x")) is None


def test_search_fetches_more_candidates_until_k_are_left():
    hits = [(Passage(str(i), "Self" if i < 12 else "", "t"), 1.0) for i in range(20)]
    asked = []

    def ranked(n):
        asked.append(n)
        return hits[:n]

    rule = SelfExclusion.of(SourceDocument(None, "self", ""))
    kept, dropped = search_excluding(ranked, 3, rule, len(hits))
    assert [p.id for p, _ in kept] == ["12", "13", "14"] and dropped == 12
    assert asked == [11, 22]
    assert search_excluding(ranked, 3, None) == (hits[:3], 0)


def test_a_search_that_finds_only_the_document_fails_and_counts(tmp_path):
    tool = WikiSearch(corpus=corpus(tmp_path, RECORDS[:1]), cache_dir=str(tmp_path / "c"))
    with ToolExecutor([tool]) as ex:
        res = ex.run(("WikiSearch", "Rand fiction"), context())
        assert not res.ok and res.notes == {SELF_EXCLUDED: 1}
        assert ex.run(("WikiSearch", "Rand fiction")).ok  # no document: found


def test_executor_caches_per_document_and_keeps_the_counts(tmp_path):
    tool = WikiSearch(corpus=corpus(tmp_path), top_k=1, cache_dir=str(tmp_path / "c"))
    with ToolExecutor([tool]) as ex:
        plain = ex.run(("WikiSearch", QUERY))
        own = ex.run(("WikiSearch", QUERY), context())
        again = ex.run(("WikiSearch", QUERY), context())
        other = ex.run(("WikiSearch", QUERY), ToolContext(document=SourceDocument("z", "Z", "")))
    assert "Rand" in plain.output and "Rand" not in own.output
    assert again.cached and again.output == own.output and again.notes == {SELF_EXCLUDED: 1}
    assert other.output == plain.output and other.notes == {}
    assert plain.notes == {}


# --------------------------------------------------------------------------- QA


class Retriever:
    """A retriever with only ``search(question, k)`` (an injected one): QA filters its hits."""

    def __init__(self, tool):
        self.tool = tool

    def search(self, question, k):
        return self.tool.search(question, k)


@pytest.mark.parametrize("wrap", [False, True])
def test_qa_reads_no_passage_of_the_annotated_document(tmp_path, wrap):
    tool = WikiSearch(corpus=corpus(tmp_path), cache_dir=str(tmp_path / "c"))
    qa = QA(search=Retriever(tool) if wrap else tool, passages=2)
    read = []

    def answer(question, passages):
        read.append([p.id for p in passages])
        return "mixed reviews" if any(p.id == "rand" for p in passages) else "literary critics"

    qa.answer = answer
    assert qa.run("How did critics received fiction reviews?") == "mixed reviews"
    out = qa.run("How did critics received fiction reviews?", context())
    assert out == "literary critics" and out.notes == {SELF_EXCLUDED: 1}
    assert "rand" in read[0] and "rand" not in read[1] and len(read[1]) == 2


# --------------------------------------------------------------------------- the annotator


class SearchAdd(Add):
    """The scripted model writes ``Add`` calls; this one answers them with a search (so that
    its result is what WikiSearch returns for the annotated document)."""

    prompt = ADD_PROMPT

    def __init__(self, search):
        self.search = search
        self.contexts = []

    def run(self, args, context=None):
        self.contexts.append(context)
        return self.search.run("apples pears fruits", context)


@pytest.fixture(scope="module")
def model(smol_tokenizer):
    return scripted_model(smol_tokenizer)


def test_annotating_a_document_that_is_in_the_index(
    model, smol_tokenizer, tmp_path, one_torch_thread
):
    records = [
        {"id": "d1", "title": "Fruit", "text": DOC},
        {"id": "o", "title": "Orchard", "text": "Apples and pears are fruits of orchards."},
    ]
    path = corpus(tmp_path, records)
    doc = Document("d1", DOC, date=dt.date(2023, 1, 30), meta={"title": "Fruit"})
    cfg = AnnotatorConfig(record_candidates=True, max_call_tokens=8)
    tool = SearchAdd(WikiSearch(corpus=path, cache_dir=str(tmp_path / "c")))
    ours = Annotator(model, smol_tokenizer, [tool], cfg).annotate(doc)
    ref = ReferenceAnnotator(
        model,
        smol_tokenizer,
        [SearchAdd(WikiSearch(corpus=path, cache_dir=str(tmp_path / "c")))],
        cfg,
    ).annotate(doc)
    assert_same(ours, ref)
    assert ours.candidates
    for c in ours.candidates:  # the document's own passage never came back
        assert "10 apples" not in c.result and "orchards" in c.result
    n = ours.stats[SELF_EXCLUDED]
    assert n == ours.stats["Add/candidates_executed"] and n == ours.stats[f"Add/{SELF_EXCLUDED}"]
    # each call was told the document and the words right after its place
    for ctx in tool.contexts:
        assert ctx.document.id == "d1" and ctx.document.title == "Fruit"
        assert ctx.date == dt.date(2023, 1, 30)
        assert ctx.document.following and ctx.document.following in DOC


def test_default_corpus_ids_carry_the_title():
    assert document_title(Document("wiki:Ayn_Rand#0", "x")) == "Ayn Rand"
    assert document_title(Document("7", "x", meta={"title": "T"})) == "T"
    assert document_title(Document("7", "x")) is None
    ctx = call_context(ANNOTATED, None, AT)
    assert ctx.document.following.startswith("Literary critics received Rand's fiction")
    assert len(ctx.document.following.split()) == 20


# --------------------------------------------------------------------------- stats


def test_the_run_counts_and_reports_left_out_passages():
    stats = RunStats()
    stats.add(
        {
            "index": 0,
            "id": "a",
            "calls": [],
            "stats": {SELF_EXCLUDED: 3, f"WikiSearch/{SELF_EXCLUDED}": 2, f"QA/{SELF_EXCLUDED}": 1},
        }
    )
    out = stats.to_dict({}, 1.0, {"tools": ["WikiSearch", "QA", "Calculator"]})
    assert SELF_EXCLUDED in COUNTERS and out["counters"][SELF_EXCLUDED] == 3
    assert out["per_tool"]["WikiSearch"][SELF_EXCLUDED] == 2
    assert out["per_tool"]["Calculator"][SELF_EXCLUDED] == 0
    text = "\n".join(_stats_lines(out, []))
    assert "annotated document itself: 3 passages (QA 1, WikiSearch 2)" in text


# --------------------------------------------------------------------------- selftrain's Grow


def test_grow_prompts_carry_their_source_document(tmp_path):
    from toolformer.generation import ToolGenerator
    from toolformer.selftrain.corpus import wiki_prompt
    from toolformer.selftrain.loop import _source_context, _takes

    text = "Ayn Rand was a writer. " + RAND
    doc = {"id": "wiki:Ayn_Rand#0", "text": text, "prompt": wiki_prompt(text)}
    ctx = _source_context(doc)
    assert ctx.date is None and ctx.document.title == "Ayn Rand"
    assert ctx.document.following.split()[:2] == text[len(doc["prompt"]) :].split()[:2]
    tool = WikiSearch(corpus=corpus(tmp_path), top_k=2, cache_dir=str(tmp_path / "c"))
    assert "received Rand's fiction" not in tool.run(QUERY, ctx)
    # the copy is caught by its words too, under another id and without a title
    copy = _source_context({"id": "gsm-3", "text": text, "prompt": "Ayn Rand was a writer."})
    assert copy.document.title is None
    assert "received Rand's fiction" not in tool.run(QUERY, copy)
    assert _takes(ToolGenerator.generate, "contexts")  # Grow passes them to the real generator
    assert not _takes(lambda prompts: prompts, "contexts")  # a scripted one without: still works
