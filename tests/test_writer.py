"""Crash-safe output: atomic files, shard chunks, resume bookkeeping, the merged dataset."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections import Counter

import pytest

from toolformer.atomic import atomic_write_text
from toolformer.data_aug.types import AnnotationResult, Document, KeptCall
from toolformer.data_aug.writer import (
    ShardStore,
    data_row,
    file_lock,
    list_shard_dirs,
    result_record,
    shard_name,
    write_data,
)
from toolformer.errors import UserError

FP = {"model": "m", "tools": ["Calculator"], "num_shards": 1}


def _record(index: int, with_call: bool = True):
    doc = Document(
        id=f"d{index}",
        text=f"Doc {index} costs 5 plus 7 = 12.",
        date=dt.date(2023, 1, 30),
        meta={"src": "t"},
    )
    calls = [KeptCall("Calculator", "5+7", "12", 26, 8, 1.0, 2.0, 2.0, 2.5)] if with_call else []
    text = doc.text[:26] + " [Calculator(5+7) -> 12]" + doc.text[26:] if with_call else doc.text
    res = AnnotationResult(
        doc.id, text, doc.text, calls, Counter(calls_kept=len(calls)), {"score": 0.5}
    )
    return result_record(index, doc, res)


def test_atomic_write_leaves_no_temporary(tmp_path):
    target = tmp_path / "f.json"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_result_record_and_data_row():
    rec = _record(3)
    assert rec["index"] == 3 and rec["date"] == "2023-01-30" and rec["meta"] == {"src": "t"}
    assert rec["calls"][0]["call"] == "[Calculator(5+7) -> 12]"
    assert rec["calls"][0]["score"] == pytest.approx(1.0)
    assert rec["stats"] == {"calls_kept": 1}
    row = data_row(rec)
    assert row["text"] == "Doc 3 costs 5 plus 7 = 12. [Calculator(5+7) -> 12]"
    assert row["original"] == "Doc 3 costs 5 plus 7 = 12."
    plain = _record(4, with_call=False)
    assert "text" not in plain and plain["calls"] == []  # the text is the original


def test_chunks_resume_bookkeeping(tmp_path):
    store = ShardStore(tmp_path / shard_name(0, 1))
    store.prepare(FP)
    store.start_session()
    store.write_chunk([_record(0), _record(1, False)])
    store.write_chunk([_record(2)])
    store.finish_session()
    # a killed writer leaves a temporary chunk behind: never read, removed on resume
    stray = store.chunks_dir / ".chunk-000002.jsonl.tmp-999"
    stray.write_text('{"index": 3, "calls": []}\n{"trunc')
    again = ShardStore(store.folder)
    again.prepare(FP)
    assert again.done == {0, 1, 2}
    assert not stray.exists()
    again.start_session()
    path = again.write_chunk([_record(3)])
    assert path.name == "chunk-000002.jsonl"
    assert [r["index"] for r in again.iter_records()] == [0, 1, 2, 3]
    progress = json.loads((store.folder / "progress.json").read_text())
    assert (
        progress["documents_done"] == 4 and progress["calls_kept"] == 3 and progress["chunks"] == 3
    )
    assert len(progress["sessions"]) == 2 and progress["sessions"][0]["documents"] == 3


def test_progress_is_rebuilt_from_chunks(tmp_path):
    store = ShardStore(tmp_path / "s")
    store.prepare(FP)
    store.write_chunk([_record(0), _record(1)])
    (store.folder / "progress.json").unlink()  # killed between the chunk and its progress record
    again = ShardStore(store.folder)
    again.prepare(FP)
    again.start_session()
    again.write_chunk([_record(2)])
    progress = json.loads((store.folder / "progress.json").read_text())
    assert progress["documents_done"] == 3


def test_other_settings_are_refused(tmp_path):
    store = ShardStore(tmp_path / "out" / "shards" / shard_name(0, 1))
    store.prepare(FP)
    store.write_chunk([_record(0)])
    with pytest.raises(
        UserError, match=r"other settings \(changed: model, tools\).*AugmentConfig.overwrite=True"
    ):
        ShardStore(store.folder).prepare({**FP, "model": "x", "tools": ["QA"]})
    fresh = ShardStore(store.folder)
    fresh.prepare({**FP, "model": "x"}, overwrite=True)
    assert fresh.done == set() and not fresh.chunk_files()


def test_shard_lock_refuses_a_second_process(tmp_path):
    store = ShardStore(tmp_path / "s")
    with store.lock() as first:
        assert first
        with ShardStore(tmp_path / "s").lock() as second:
            assert not second
    with store.lock() as again:
        assert again
    with file_lock(tmp_path / "m.lock") as got:
        assert got


def test_list_shard_dirs(tmp_path):
    for i in range(2):
        (tmp_path / "shards" / shard_name(i, 2)).mkdir(parents=True)
    (tmp_path / "shards" / shard_name(0, 3)).mkdir()
    (tmp_path / "shards" / "notes").mkdir()
    found = list_shard_dirs(tmp_path)
    assert sorted(found) == [2, 3] and [p.name for p in found[2]] == [
        shard_name(0, 2),
        shard_name(1, 2),
    ]


def test_write_data_jsonl_and_dataset(tmp_path):
    from datasets import load_from_disk

    rows = [data_row(_record(i)) for i in range(3)]
    rows[1]["calls"][0]["extra_field"] = "kept in JSONL only"
    (tmp_path / ".dataset.tmp-1").mkdir()  # debris of a killed merge does not matter
    assert write_data(tmp_path, iter(rows)) == 3
    lines = [json.loads(x) for x in (tmp_path / "data.jsonl").read_text().splitlines()]
    assert lines == json.loads(json.dumps(rows))
    ds = load_from_disk(str(tmp_path / "dataset"))
    assert ds.num_rows == 3 and ds[0]["text"] == rows[0]["text"] and ds[0]["num_calls"] == 1
    assert ds[2]["calls"][0]["tool"] == "Calculator" and ds[2]["calls"][0][
        "score"
    ] == pytest.approx(1.0)
    # a second merge replaces the first
    assert write_data(tmp_path, iter(rows[:1])) == 1
    assert load_from_disk(str(tmp_path / "dataset")).num_rows == 1
    leftovers = [p for p in os.listdir(tmp_path) if p.startswith(".") and p != ".dataset.tmp-1"]
    assert leftovers == []


def test_write_data_with_no_rows(tmp_path):
    from datasets import load_from_disk

    assert write_data(tmp_path, iter([])) == 0
    assert (tmp_path / "data.jsonl").read_text() == ""
    ds = load_from_disk(str(tmp_path / "dataset"))
    assert ds.num_rows == 0 and "calls" in ds.column_names


def test_recorded_candidates_are_kept_in_records_and_rows():
    doc = Document(id="d", text="Price: 5 plus 7.")
    rejected = KeptCall("Calculator", "5*7", "35", 8, 3, 3.0, 2.0, 2.0, 2.1)
    res = AnnotationResult("d", doc.text, doc.text, candidates=[rejected])
    rec = result_record(0, doc, res)
    assert (
        rec["candidates"][0]["call"] == "[Calculator(5*7) -> 35]"
        and rec["candidates"][0]["score"] == -1.0
    )
    assert data_row(rec)["candidates"] == rec["candidates"]
    assert "candidates" not in _record(1)
