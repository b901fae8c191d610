"""The shared record reader (toolformer.records) and the stages that read through it: bytes that
are not UTF-8 are warned about with file and line, counted and never turned into U+FFFD unless
the user opts in; bad lines are skipped and counted the same way everywhere."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.data_aug.inputs import InputStats, load_documents
from toolformer.records import RecordStats, is_saved_dataset, iter_records

LATIN1_ONE = b'{"text": "Le caf\xe9 co\xfbte 3 euros."}\n'
LATIN1_FOUR = b'{"text": "\xc9t\xe9: le caf\xe9 \xe0 3 euros."}\n'
GOOD = b'{"text": "A good line with 4 apples."}\n'


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


def _texts(docs):
    return [d.text for d in docs]


@pytest.mark.parametrize("bad", [LATIN1_ONE, LATIN1_FOUR], ids=["one byte", "four bytes"])
def test_jsonl_record_with_latin1_bytes_is_skipped_with_file_and_line(tmp_path, caplog, bad):
    path = _write(tmp_path / "in.jsonl", GOOD + bad + GOOD)
    stats = InputStats()
    texts = _texts(load_documents(str(path), stats=stats))
    assert texts == ["A good line with 4 apples."] * 2
    assert stats.skipped == {"bad_encoding": 1}
    assert f"{path}: line 2 is not valid UTF-8 (byte 0x" in caplog.text
    assert stats.to_dict()["bad_lines"][0].startswith(f"{path}: line 2")


def test_replacement_characters_only_when_asked(tmp_path):
    path = _write(tmp_path / "in.jsonl", LATIN1_ONE)
    stats = InputStats()
    texts = _texts(load_documents(str(path), stats=stats, encoding_errors="replace"))
    assert texts == ["Le caf\ufffd co\ufffdte 3 euros."]
    assert stats.notes["replaced_encoding"] == 1 and not stats.skipped


@pytest.mark.parametrize(
    "name,data",
    [
        ("in.csv", b"text\nA good row with 4 apples.\nLe caf\xe9 3 euros.\n"),
        ("in.tsv", b"text\nA good row with 4 apples.\nLe caf\xe9 3 euros.\n"),
        ("in.txt", b"A good row with 4 apples.\n\nLe caf\xe9 3 euros.\n"),
        ("in.json", b'[{"text": "A good row with 4 apples."}, {"text": "caf\xe9"}]'),
    ],
)
def test_every_text_format_skips_undecodable_records(tmp_path, caplog, name, data):
    path = _write(tmp_path / name, data)
    stats = InputStats()
    assert _texts(load_documents(str(path), stats=stats)) == ["A good row with 4 apples."]
    assert stats.skipped == {"bad_encoding": 1}
    assert "is not valid UTF-8 (byte 0xe9" in caplog.text and str(path) in caplog.text


def test_binary_junk_is_still_called_binary_with_its_line(tmp_path, caplog):
    path = _write(tmp_path / "in.txt", b"Good text.\n\n\x00\x01\x02\xff\xfe junk\n")
    stats = InputStats()
    assert _texts(load_documents(str(path), stats=stats)) == ["Good text."]
    assert stats.skipped == {"binary": 1} and "line 3 holds binary data" in caplog.text


def test_finetune_data_skips_undecodable_lines(tmp_path):
    from toolformer.finetune import read_texts

    path = _write(tmp_path / "train.jsonl", GOOD + LATIN1_ONE)
    stats = RecordStats()
    texts, _ = read_texts(str(path), stats=stats)
    assert texts == ["A good line with 4 apples."] and stats.skipped == {"bad_encoding": 1}


def test_search_corpus_skips_undecodable_lines(tmp_path):
    from toolformer.retrieval.corpus import load_passages

    path = _write(tmp_path / "c.jsonl", GOOD + LATIN1_FOUR)
    assert [p.text for p in load_passages(str(path))] == ["A good line with 4 apples."]


def test_on_bad_line_raise(tmp_path):
    from toolformer.errors import UserError

    path = _write(tmp_path / "in.jsonl", GOOD + b"{oops\n")
    with pytest.raises(UserError, match=r"in.jsonl:2 is not valid JSON"):
        list(iter_records(str(path), on_bad_line="raise"))
    path = _write(tmp_path / "in.jsonl", GOOD + LATIN1_ONE)
    with pytest.raises(UserError, match=r"line 2 is not valid UTF-8"):
        list(iter_records(str(path), on_bad_line="raise"))


def test_one_saved_dataset_test(tmp_path):
    from datasets import Dataset, DatasetDict

    Dataset.from_dict({"text": ["a"]}).save_to_disk(str(tmp_path / "ds"))
    DatasetDict({"train": Dataset.from_dict({"text": ["a"]})}).save_to_disk(str(tmp_path / "dd"))
    (tmp_path / "plain").mkdir()
    assert is_saved_dataset(tmp_path / "ds") and is_saved_dataset(tmp_path / "dd")
    assert not is_saved_dataset(tmp_path / "plain") and not is_saved_dataset(tmp_path / "missing")
    assert [r["text"] for _, r in iter_records(str(tmp_path / "dd"))] == ["a"]


_text = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=30)


@settings(max_examples=60, deadline=None)
@given(
    texts=st.lists(_text, min_size=1, max_size=6),
    bad=st.lists(st.sampled_from([b"\xe9 ", b"\xff", b"\xc3 ", b"\x80"]), max_size=3),
    where=st.integers(min_value=0, max_value=5),
)
def test_property_text_is_kept_exactly_and_bad_bytes_never_become_fffd(
    tmp_path_factory, texts, bad, where
):
    """Valid UTF-8 records come back exactly; a record with raw bytes is dropped (counted), and
    U+FFFD appears only where the input itself had it."""
    folder = tmp_path_factory.mktemp("prop")
    lines = [json.dumps({"text": t}, ensure_ascii=False).encode("utf-8") + b"\n" for t in texts]
    spoiled = None
    if bad:
        spoiled = min(where, len(lines) - 1)
        head = b'{"text": "x' + b"".join(bad) + b'"}\n'
        lines[spoiled] = head
    path = folder / "p.jsonl"
    path.write_bytes(b"".join(lines))
    stats = RecordStats()
    got = [r["text"] for _, r in iter_records(str(path), stats=stats)]
    want = [t for i, t in enumerate(texts) if i != spoiled]
    assert got == want
    assert stats.skipped.get("bad_encoding", 0) == (1 if bad else 0)
