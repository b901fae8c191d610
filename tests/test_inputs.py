"""Loading documents: every file format, saved datasets, dates, ids, bad inputs, default corpus."""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import json
import logging
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from toolformer.data_aug.inputs import (
    DEFAULT_CORPUS_DATE,
    InputStats,
    date_from_url,
    document_id,
    load_documents,
    parse_date,
)
from toolformer.errors import UserError
from toolformer.text.split import PARAGRAPH_MAX_WORDS, PARAGRAPH_MIN_WORDS, split_paragraphs

RECORDS = [
    {"text": "The bridge is 120 metres long and 30 metres wide.", "date": "2023-01-30", "id": "a"},
    {
        "text": "Paris is the capital of France.",
        "url": "https://news.example.com/2021/07/04/paris",
        "id": "b",
    },
    {"text": "No date at all here.", "id": "c"},
]


def _write_jsonl(path, records):
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _texts(docs):
    return [d.text for d in docs]


def _check_standard(docs):
    assert _texts(docs) == [r["text"] for r in RECORDS]
    assert docs[0].date == dt.date(2023, 1, 30)
    assert docs[1].date == dt.date(2021, 7, 4)  # read from the URL
    assert docs[2].date is None


# --------------------------------------------------------------------------- formats


def test_jsonl(tmp_path):
    docs = list(load_documents(str(_write_jsonl(tmp_path / "d.jsonl", RECORDS))))
    _check_standard(docs)
    assert docs[0].meta["id"] == "a" and "text" not in docs[0].meta


def test_jsonl_gz_and_ndjson(tmp_path):
    gz = tmp_path / "d.jsonl.gz"
    with gzip.open(gz, "wt", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r) + "\n" for r in RECORDS)
    _check_standard(list(load_documents(str(gz))))
    _check_standard(list(load_documents(str(_write_jsonl(tmp_path / "d.ndjson", RECORDS)))))


def test_json_array_and_wrapped_object(tmp_path):
    arr = tmp_path / "a.json"
    arr.write_text(json.dumps(RECORDS))
    _check_standard(list(load_documents(str(arr))))
    wrapped = tmp_path / "w.json"
    wrapped.write_text(json.dumps({"version": 1, "data": RECORDS}))
    _check_standard(list(load_documents(str(wrapped))))
    lines = tmp_path / "l.json"  # JSON lines under a .json name
    _write_jsonl(lines, RECORDS)
    _check_standard(list(load_documents(str(lines))))


@pytest.mark.parametrize("suffix,delimiter", [(".csv", ","), (".tsv", "\t")])
def test_csv_tsv(tmp_path, suffix, delimiter):
    path = tmp_path / f"d{suffix}"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=["id", "text", "date", "url"], delimiter=delimiter)
        w.writeheader()
        for r in RECORDS:
            w.writerow(r)
    docs = list(load_documents(str(path)))
    _check_standard(docs)


def test_parquet(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [
        {"id": r["id"], "text": r["text"], "date": r.get("date"), "url": r.get("url")}
        for r in RECORDS
    ]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    _check_standard(list(load_documents(str(path))))


def test_txt_blocks(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("First document,\nsecond line.\n\n\nSecond document.\n  \nThird.\n")
    assert _texts(load_documents(str(path))) == [
        "First document,\nsecond line.",
        "Second document.",
        "Third.",
    ]


def test_saved_dataset_and_dataset_dict(tmp_path):
    from datasets import Dataset, DatasetDict

    rows = [
        {"id": r["id"], "text": r["text"], "date": r.get("date"), "url": r.get("url")}
        for r in RECORDS
    ]
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "ds"))
    _check_standard(list(load_documents(str(tmp_path / "ds"))))
    DatasetDict({"validation": Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "dd"))
    _check_standard(list(load_documents(str(tmp_path / "dd"), split="validation")))
    with pytest.raises(UserError, match=r"no split 'train'.*validation.*iter_records.split"):
        load_documents(str(tmp_path / "dd"))


def test_hub_id_offline_is_a_clear_error(monkeypatch):
    import datasets.config
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # fail fast instead of retrying
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        UserError, match=r"could not load HF dataset 'someone/no-such-dataset'.*offline"
    ):
        load_documents("someone/no-such-dataset")


# --------------------------------------------------------------------------- fields, ids, limit


def test_text_field_id_field_date_field(tmp_path):
    path = _write_jsonl(
        tmp_path / "d.jsonl",
        [
            {"body": "One.", "key": 7, "published": "March 3, 2020"},
            {"body": "Two.", "key": 8, "published": "2020-03-04T10:00:00Z"},
        ],
    )
    docs = list(
        load_documents(str(path), text_field="body", id_field="key", date_field="published")
    )
    assert [d.id for d in docs] == ["7", "8"]
    assert [d.date for d in docs] == [dt.date(2020, 3, 3), dt.date(2020, 3, 4)]


def test_default_ids_are_stable_and_unique(tmp_path):
    path = _write_jsonl(
        tmp_path / "d.jsonl", [{"text": "same"}, {"text": "same"}, {"text": "other"}]
    )
    first = [d.id for d in load_documents(str(path))]
    assert first == [d.id for d in load_documents(str(path))]
    assert len(set(first)) == 3
    assert first[0] == document_id(0, "same") and first[0].startswith("00000000-")


def test_duplicate_given_ids_are_counted(tmp_path, caplog):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": "a", "id": 1}, {"text": "b", "id": 1}])
    stats = InputStats()
    with caplog.at_level(logging.WARNING, logger="toolformer.augment"):
        assert len(list(load_documents(str(path), id_field="id", stats=stats))) == 2
    assert stats.notes["duplicate_id"] == 1
    assert "repeats document id" in caplog.text


def test_limit_stops_reading(tmp_path):
    path = _write_jsonl(
        tmp_path / "d.jsonl", [{"text": f"doc {i}"} for i in range(10)] + [{"x": 1}]
    )
    stats = InputStats()
    docs = list(load_documents(str(path), limit=4, stats=stats))
    assert _texts(docs) == [f"doc {i}" for i in range(4)] and stats.documents == 4


# --------------------------------------------------------------------------- bad inputs


def test_missing_file():
    with pytest.raises(UserError, match="does not exist"):
        load_documents("/no/such/file.jsonl")


def test_unknown_extension(tmp_path):
    path = tmp_path / "d.xlsx"
    path.write_bytes(b"PK\x03\x04")
    with pytest.raises(UserError, match=r"unknown input format '\.xlsx'.*\.jsonl"):
        load_documents(str(path))


def test_broken_json_array(tmp_path):
    path = tmp_path / "d.json"
    path.write_text('[{"text": "a"},\n {"text": ]')
    with pytest.raises(UserError, match=r"not valid JSON \(line 2"):
        list(load_documents(str(path)))


def test_folder_that_is_not_a_dataset(tmp_path):
    with pytest.raises(UserError, match="not a saved HF dataset"):
        load_documents(str(tmp_path))


def test_missing_text_field_lists_the_fields(tmp_path):
    path = _write_jsonl(tmp_path / "d.jsonl", [{"body": "x", "title": "t"}])
    with pytest.raises(
        UserError, match=r"no text field 'text'.*fields: body, title.*AugmentConfig.text_field"
    ):
        list(load_documents(str(path)))
    with pytest.raises(UserError, match=r"no id field 'uid'"):
        list(load_documents(str(path), text_field="body", id_field="uid"))


def test_malformed_json_lines_are_counted_and_reported(tmp_path, caplog):
    path = tmp_path / "d.jsonl"
    path.write_text(
        '{"text": "good one"}\n{"text": broken\n\n{"text": '
        '"good two"}\n[1, 2\n{"text": "good three"}\n'
    )
    stats = InputStats()
    with caplog.at_level(logging.WARNING, logger="toolformer.augment"):
        docs = list(load_documents(str(path), stats=stats))
    assert _texts(docs) == ["good one", "good two", "good three"]
    assert stats.skipped["malformed_json"] == 2
    assert stats.malformed_lines == [2, 5]
    assert "line 2 is not valid JSON" in caplog.text and "line 5" in caplog.text


def test_junk_documents_are_counted_skips(tmp_path):
    junk = [
        {"text": "   \n\t "},
        {"text": ""},
        {"text": None},
        {"text": 42},
        {"other": "no text key"},
        {"text": "bin\x00ary"},
        {"text": "\ufffd\ufffd\x01\x02\x03\x04 garbage \ufffd\x05\x06"},
        "a bare string",
        {"text": "Real prose survives, with a tab\tand a newline\n."},
    ]
    path = _write_jsonl(tmp_path / "d.jsonl", [{"text": "First."}] + junk)
    stats = InputStats()
    docs = list(load_documents(str(path), stats=stats))
    assert _texts(docs) == ["First.", "Real prose survives, with a tab\tand a newline\n."]
    assert dict(stats.skipped) == {
        "empty": 2,
        "missing_text": 2,
        "not_text": 1,
        "binary": 2,
        "not_a_record": 1,
    }
    assert stats.to_dict()["skipped_total"] == 8


def test_binary_file_bytes_are_skipped(tmp_path):
    path = tmp_path / "d.txt"
    junk = bytes(b for b in range(256) if b not in (10, 13)) * 4
    path.write_bytes(b"Good text here.\n\n" + junk + b"\n\nMore good text.\n")
    stats = InputStats()
    assert _texts(load_documents(str(path), stats=stats)) == ["Good text here.", "More good text."]
    assert stats.skipped["binary"] == 1


def test_bad_date_is_noted_not_fatal(tmp_path):
    path = _write_jsonl(
        tmp_path / "d.jsonl",
        [{"text": "x", "date": "someday"}, {"text": "y", "date": "2022-02-30"}],
    )
    stats = InputStats()
    docs = list(load_documents(str(path), stats=stats))
    assert [d.date for d in docs] == [None, None] and stats.notes["bad_date"] == 2


# --------------------------------------------------------------------------- dates


@settings(deadline=None)  # the machine may be busy; correctness is what is tested
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2099, 12, 31)))
def test_dates_round_trip(d):
    assert parse_date(d.isoformat()) == d
    assert parse_date(dt.datetime(d.year, d.month, d.day, 13, 5).isoformat() + "Z") == d
    assert parse_date(d.strftime("%B %d, %Y")) == d
    assert (
        date_from_url(
            f"https://www.example.org/news/{d.year}/{d.month:02d}/{d.day:02d}/some-title.html"
        )
        == d
    )
    assert date_from_url(f"https://blog.example.org/{d.year}-{d.month:02d}-{d.day:02d}-post") == d


@settings(deadline=None)
@given(st.text(max_size=60))
def test_date_parsers_never_raise(text):
    parse_date(text)
    date_from_url(text)


def test_url_without_a_valid_date():
    assert date_from_url("https://example.com/2023/13/45/x") is None
    assert date_from_url("https://example.com/item/123456") is None
    assert date_from_url(None) is None


# --------------------------------------------------------------------------- default corpus


_WORD = st.sampled_from(
    "the a river town of was built in and by many people who lived there".split()
)
_SENTENCE = st.lists(_WORD, min_size=3, max_size=40).map(lambda ws: " ".join(ws).capitalize() + ".")
_PARAGRAPH = st.lists(_SENTENCE, min_size=1, max_size=30).map(" ".join)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_PARAGRAPH, min_size=1, max_size=5))
def test_split_paragraphs_keeps_all_prose_in_bounded_pieces(paragraphs):
    pieces = split_paragraphs("\n\n".join(paragraphs))
    kept = [p for p in paragraphs if len(p.split()) >= PARAGRAPH_MIN_WORDS]
    assert " ".join(pieces).split() == " ".join(kept).split()  # nothing lost, nothing repeated
    for piece in pieces:
        n = len(piece.split())
        longest = max(len(s.split()) for s in re.split(r"(?<=\.) ", piece))
        assert n >= PARAGRAPH_MIN_WORDS or piece in kept
        assert n <= PARAGRAPH_MAX_WORDS * 1.25 or longest > PARAGRAPH_MAX_WORDS


def test_split_paragraphs_drops_non_prose():
    text = "Short heading\n\n" + "| 1 | 2 | 3 | 4 |" * 10 + "\n\n" + "Word " * 40 + "end."
    assert split_paragraphs(text) == [("Word " * 40).strip() + " end."]


@pytest.mark.slow
def test_default_corpus_is_real_dated_prose(smol_tokenizer):
    stats = InputStats()
    docs = list(load_documents(None, limit=60, stats=stats))
    assert len(docs) == 60 and stats.documents == 60
    assert len({d.id for d in docs}) == 60
    assert all(d.id.startswith("wiki:") and d.date == DEFAULT_CORPUS_DATE for d in docs)
    assert len({d.meta["title"] for d in docs}) >= 20  # spread over many articles
    assert docs[0].meta["title"] == "Anarchism"
    lengths = [len(smol_tokenizer(d.text).input_ids) for d in docs]
    assert max(lengths) <= 400 and sum(lengths) / len(lengths) > 60
    assert sum(bool(re.search(r"\d", d.text)) for d in docs) >= 20  # numbers for the Calculator
    assert not any("[[" in d.text or "{{" in d.text or "'''" in d.text for d in docs)
