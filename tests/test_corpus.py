"""Passage corpora: wiki markup cleaning, sentence/passage splitting, file formats, errors."""

from __future__ import annotations

import bz2
import csv
import json
import os
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.errors import UserError
from toolformer.retrieval.corpus import (
    CorpusConfig,
    Passage,
    corpus_fingerprint,
    iter_wikipedia_articles,
    load_passages,
)
from toolformer.text.split import split_passages, split_sentences
from toolformer.text.wikitext import clean_wikitext

RECORDS = [
    {"id": "a1", "title": "Ulm", "text": "Ulm is a city on the Danube in Germany."},
    {"id": "a2", "title": "Montgomery", "text": "Montgomery is the capital of Alabama."},
    {"id": "a3", "title": "Thetis", "text": "Thetis was a sea nymph and the mother of Achilles."},
]
EXPECTED = [Passage(r["id"], r["title"], r["text"]) for r in RECORDS]


# --------------------------------------------------------------------------- splitting


def test_split_sentences_keeps_abbreviations_and_initials():
    text = (
        "The physicist S. N. Bose wrote to Einstein in 1924. He lived in the U.S. for years. "
        'Dr. Smith disagreed, c. 1930! Was it true? "Yes." It was.'
    )
    assert split_sentences(text) == [
        "The physicist S. N. Bose wrote to Einstein in 1924.",
        "He lived in the U.S. for years.",
        "Dr. Smith disagreed, c. 1930!",
        "Was it true?",
        '"Yes."',
        "It was.",
    ]


def test_split_passages_windows_end_at_sentences():
    sentences = [f"Sentence number {i} has exactly seven words." for i in range(40)]
    text = " ".join(sentences[:20]) + "\n\n" + " ".join(sentences[20:])
    passages = split_passages(text, words=30)
    for p in passages:
        assert p.endswith("words.")
        assert len(p.split()) <= 30
    assert " ".join(passages).split() == text.split()
    assert len(passages) == 10  # 4 sentences (28 words) per window, 20 per paragraph


_words = st.text(alphabet=st.characters(categories=("L", "N")), min_size=1, max_size=8)
_sentence = st.lists(_words, min_size=1, max_size=30).map(lambda ws: " ".join(ws) + ".")


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.lists(_sentence, min_size=1, max_size=12).map(" ".join), min_size=1, max_size=5),
    st.integers(min_value=5, max_value=60),
)
def test_split_passages_never_loses_or_reorders_words(paragraphs, words):
    text = "\n\n".join(paragraphs)
    passages = split_passages(text, words=words)
    assert " ".join(passages).split() == text.split()
    assert all(len(p.split()) <= 2 * words for p in passages)


# --------------------------------------------------------------------------- wiki markup

WIKITEXT = """{{Infobox person
| name = Jane Roe
| birth_place = [[Springfield]]
}}
'''Jane Roe''' ({{IPA|dʒeɪn}}; born 1 May 1950) was an [[United States|American]] chemist.<ref>{{cite web|url=http://x.org|title=X}}</ref> She lived {{convert|5|km|mi}} from [[Lake Tahoe]].
[[File:Roe.jpg|thumb|Jane Roe in [[1990]], at work]]
Her ''best-known'' work concerns [[catalysis]] and [[polymer]] chemistry, see her papers.

== Early life ==
{| class="wikitable"
|-
! Year !! Prize
|-
| 1980 || Gold medal
|}
* A list item that is not prose.
Roe studied at the [[University of Chicago]] and graduated in 1972 with honours.
A caption-like line without an end
[[Category:Chemists]]

== References ==
{{reflist}}
Text after the references that must be dropped.
"""  # noqa: E501 (wikitext keeps a paragraph on one line; the cleaner's output depends on it)


def test_clean_wikitext_leaves_readable_prose_only():
    assert clean_wikitext(WIKITEXT) == (
        "Jane Roe (born 1 May 1950) was an American chemist. She lived 5 km from Lake Tahoe.\n\n"
        "Her best-known work concerns catalysis and polymer chemistry, see her papers.\n\n"
        "Roe studied at the University of Chicago and graduated in 1972 with honours."
    )


def _write_dump(path, pages):
    body = "".join(
        f"<page><title>{t}</title><ns>{ns}</ns><id>{i}</id><revision><id>9{i}</id>"
        f'<text xml:space="preserve">{text}</text></revision></page>'
        for i, (t, ns, text) in enumerate(pages, 1)
    )
    xml = f'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/">{body}</mediawiki>'
    with bz2.open(path, "wt", encoding="utf-8") as fh:
        fh.write(xml)


def test_iter_wikipedia_articles_skips_redirects_other_namespaces_and_stubs(tmp_path):
    from xml.sax.saxutils import escape

    long_text = escape(WIKITEXT)
    dump = tmp_path / "mini.xml.bz2"
    _write_dump(
        dump,
        [
            ("Jane Roe", "0", long_text),
            ("Roe", "0", "#REDIRECT [[Jane Roe]]"),
            ("Talk:Jane Roe", "1", long_text),
            ("Stub", "0", "A stub article with few words."),
        ],
    )
    articles = list(iter_wikipedia_articles(dump, min_words=20, cache=False))
    assert [(a["id"], a["title"]) for a in articles] == [("1", "Jane Roe")]
    assert articles[0]["text"].startswith("Jane Roe (born 1 May 1950)")


def test_missing_dump_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        list(iter_wikipedia_articles(tmp_path / "nope.xml.bz2"))


@pytest.mark.slow
def test_default_corpus_is_clean_real_wikipedia():
    articles = list(iter_wikipedia_articles())
    titles = {a["title"] for a in articles}
    assert len(articles) >= 90
    assert {"Albert Einstein", "Alabama", "Animal Farm", "Aardvark", "Apollo 11"} <= titles
    for a in articles:
        assert len(a["text"].split()) >= 50
        for junk in (
            "{{",
            "}}",
            "[[",
            "]]",
            "<ref",
            "==",
            "||",
            "|-",
            "'''",
            "Category:",
            "thumb|",
        ):
            assert junk not in a["text"], (a["title"], junk)
        assert not re.search(r"\|\s*\w+\s*=", a["text"]), a["title"]  # template parameters
    einstein = next(a for a in articles if a["title"] == "Albert Einstein")
    assert "born in Ulm" in einstein["text"]
    assert einstein["text"].startswith(
        "Albert Einstein (14 March 1879 \u2013 18 April 1955) was a German-born"
    )

    passages = load_passages()
    assert 3000 < len(passages) < 10000
    assert len({p.id for p in passages}) == len(passages)
    assert {p.title for p in passages} == titles
    assert max(len(p.text.split()) for p in passages) <= 200
    assert sum(len(p.text.split()) for p in passages) / len(passages) > 50


# --------------------------------------------------------------------------- file formats


def _jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_load_jsonl(tmp_path):
    assert load_passages(str(_jsonl(tmp_path / "c.jsonl", RECORDS))) == EXPECTED


def test_load_json_list(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    assert load_passages(str(path)) == EXPECTED


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_load_csv_and_tsv(tmp_path, suffix, delimiter):
    path = tmp_path / f"c{suffix}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=["id", "title", "text"], delimiter=delimiter)
        writer.writeheader()
        writer.writerows(RECORDS)
    assert load_passages(str(path)) == EXPECTED


def test_load_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.Table.from_pylist(RECORDS), path)
    assert load_passages(str(path)) == EXPECTED


def test_load_saved_hf_dataset(tmp_path):
    import datasets

    folder = tmp_path / "ds"
    datasets.Dataset.from_list(RECORDS).save_to_disk(str(folder))
    assert load_passages(str(folder)) == EXPECTED
    dd = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_list(RECORDS)}).save_to_disk(str(dd))
    assert load_passages(str(dd)) == EXPECTED
    with pytest.raises(UserError, match="no split 'test'"):
        load_passages(str(dd), split="test")


def test_custom_fields_missing_ids_and_long_records(tmp_path):
    long_text = " ".join(f"Sentence {i} is here." for i in range(100))  # 400 words
    path = _jsonl(
        tmp_path / "c.jsonl",
        [
            {"body": "First text.", "name": "One"},
            {"body": "", "name": "Empty"},
            {"body": long_text, "name": "Long"},
        ],
    )
    passages = load_passages(str(path), text_field="body", title_field="name")
    assert passages[0] == Passage("0", "One", "First text.")
    long_parts = [p for p in passages if p.title == "Long"]
    assert [p.id for p in long_parts] == [f"2#{j}" for j in range(len(long_parts))]
    assert len(long_parts) == 4
    assert " ".join(p.text for p in long_parts) == long_text
    assert len(load_passages(str(path), text_field="body", limit=1)) == 1


# --------------------------------------------------------------------------- errors


def test_missing_file_is_a_one_line_user_error(tmp_path):
    with pytest.raises(UserError) as err:
        load_passages(str(tmp_path / "nope.jsonl"))
    message = str(err.value)
    assert "does not exist" in message and "\n" not in message


def test_malformed_jsonl_line_is_skipped_with_its_line(tmp_path, caplog):
    """As in every reader (toolformer.records): the bad line is counted, named and skipped."""
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "ok"}\n{"text": oops}\n[1]\n', encoding="utf-8")
    assert [p.text for p in load_passages(str(path))] == ["ok"]
    assert "bad.jsonl: line 2 is not valid JSON" in caplog.text
    assert "bad.jsonl: line 3 is not a JSON object" in caplog.text


def test_missing_text_field_lists_the_fields(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", [{"body": "x", "name": "y"}])
    with pytest.raises(UserError, match=r"no 'text' field \(fields: body, name\); pass text_field"):
        load_passages(str(path))


def test_txt_corpus_and_plain_folder(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text("hello there\n\nsecond block\nof text\n", encoding="utf-8")
    assert [p.text for p in load_passages(str(path))] == ["hello there", "second block\nof text"]
    (tmp_path / "c.xml").write_text("<a/>", encoding="utf-8")
    with pytest.raises(UserError, match="unknown input format '.xml'"):
        load_passages(str(tmp_path / "c.xml"))
    with pytest.raises(UserError, match="not a saved HF dataset"):
        load_passages(str(tmp_path))


def test_corrupt_parquet_and_empty_corpus(tmp_path):
    bad = tmp_path / "c.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(UserError, match="not a readable parquet file"):
        load_passages(str(bad))
    empty = _jsonl(tmp_path / "e.jsonl", [{"text": "  "}])
    with pytest.raises(UserError, match="holds no non-empty"):
        load_passages(str(empty))


def test_fingerprint_follows_file_and_settings(tmp_path):
    path = _jsonl(tmp_path / "c.jsonl", RECORDS)
    config = CorpusConfig(source=str(path))
    first = corpus_fingerprint(config)
    assert corpus_fingerprint(CorpusConfig(source=str(path))) == first
    assert corpus_fingerprint(CorpusConfig(source=str(path), text_field="body")) != first
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps({"text": "one more"}) + "\n")
    os.utime(path, ns=(1, 1))
    assert corpus_fingerprint(config) != first
    assert re.fullmatch(r"[0-9a-f]{16}", first)


@pytest.mark.slow
def test_shared_passages_file_loads(shared_data):
    path = shared_data / "wiki_corpus" / "passages.jsonl"
    if not path.exists():
        pytest.skip("wiki_corpus/passages.jsonl not in the shared data")
    passages = load_passages(str(path), limit=2000)
    assert passages[0].id == "gre-0" and passages[0].title == "Peter F. Martin"
    assert all(p.text for p in passages)
