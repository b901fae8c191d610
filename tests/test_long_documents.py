"""A very long document shows progress inside it (windows done / total), is warned about when it
is far longer than the rest, and keeps its finished windows across an interruption."""

from __future__ import annotations

import json
import logging

import pytest
from test_annotator import DOC, Add, scripted_model

from toolformer.data_aug.annotator import Annotator
from toolformer.data_aug.types import AnnotatorConfig, Document
from toolformer.data_aug.writer import WindowLog

CFG = dict(record_candidates=False, max_call_tokens=8, max_length=20, tau_f=-100.0, k=2, m=2)
LONG = Document("long", " ".join([DOC] * 4))


@pytest.fixture(scope="module", autouse=True)
def one_thread(one_torch_thread):
    """One torch thread for this module's tiny models (conftest's ``one_torch_thread``)."""


@pytest.fixture(scope="module")
def model(smol_tokenizer):
    return scripted_model(smol_tokenizer)


def _annotator(model, tok, log=None):
    ann = Annotator(model, tok, [Add()], AnnotatorConfig(**CFG))
    ann.window_log = log
    return ann


class Stop(BaseException):
    """Stands for a kill: not an Exception, so the annotator does not turn it into an error."""


def _same(a, b):
    assert a.text == b.text and [c.to_dict() for c in a.calls] == [c.to_dict() for c in b.calls]
    assert dict(a.stats) == dict(b.stats) and a.skipped == b.skipped and a.error is None


def test_progress_inside_a_document(model, smol_tokenizer, tmp_path):
    seen = []
    log = WindowLog(tmp_path, lambda done, total: seen.append((done, total)))
    _annotator(model, smol_tokenizer, log).annotate(LONG)
    total = seen[-1][1]
    assert total > 3 and seen == [(i, total) for i in range(1, total + 1)]


def test_finished_windows_survive_an_interruption(model, smol_tokenizer, tmp_path, monkeypatch):
    whole = _annotator(model, smol_tokenizer).annotate(LONG)
    assert whole.calls

    def stop_after_two(done, total):
        if done == 2:
            raise Stop()

    with pytest.raises(Stop):
        _annotator(model, smol_tokenizer, WindowLog(tmp_path, stop_after_two)).annotate(LONG)
    saved = json.loads((tmp_path / WindowLog.FILE).read_text())
    assert [s["done"] for s in saved.values()] == [2]

    windows = []
    original = Annotator._propose

    def spy(self, doc, chunk, name, stats, secs):
        windows.append(chunk.index)
        return original(self, doc, chunk, name, stats, secs)

    monkeypatch.setattr(Annotator, "_propose", spy)
    resumed = _annotator(model, smol_tokenizer, WindowLog(tmp_path)).annotate(LONG)
    assert windows and min(windows) == 2  # windows 0 and 1 were not annotated again
    _same(resumed, whole)


def test_saved_windows_of_another_text_are_not_used(model, smol_tokenizer, tmp_path):
    log = WindowLog(tmp_path)
    _annotator(model, smol_tokenizer, log).annotate(LONG)
    changed = Document("long", LONG.text.replace("apples", "pears"))
    _same(
        _annotator(model, smol_tokenizer, WindowLog(tmp_path)).annotate(changed),
        _annotator(model, smol_tokenizer).annotate(changed),
    )


def test_a_far_longer_document_is_warned_about(tmp_path, caplog):
    from test_pipeline import FACTORY

    from toolformer.data_aug.config import AugmentConfig
    from toolformer.data_aug.pipeline import augment

    rows = [{"text": f"Item {i} weighs {i + 2} kg."} for i in range(5)]
    rows.insert(3, {"text": "It weighs 3 kg. " * 1500})
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with caplog.at_level(logging.WARNING, logger="toolformer.augment"):
        augment(
            AugmentConfig(
                input=str(src),
                output=str(tmp_path / "o"),
                annotator_factory=FACTORY,
                limit=0,
                progress=False,
                tools=["Calculator"],
            )
        )
    warned = [r.getMessage() for r in caplog.records if "characters" in r.getMessage()]
    assert len(warned) == 1 and "index 3" in warned[0] and "24000 characters" in warned[0]
    assert "x the median so far" in warned[0]


_MODEL = {}


def scripted_factory(config):
    """An annotate factory: the real Annotator on the scripted tiny model (built once)."""
    from toolformer.models import load_tokenizer

    if not _MODEL:
        tok = load_tokenizer("smollm2-135m")
        _MODEL["pair"] = (scripted_model(tok), tok)
    model, tok = _MODEL["pair"]
    return Annotator(model, tok, [Add()], AnnotatorConfig(**CFG))


def test_augment_resumes_inside_a_long_document(tmp_path, monkeypatch):
    """Interrupted in the middle of its one long document, the run keeps the finished windows
    (windows.json), resumes after them, and writes what an uninterrupted run writes."""
    from toolformer.data_aug.config import AugmentConfig
    from toolformer.data_aug.pipeline import augment

    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"text": "Short: 1 and 2."}) + "\n" + json.dumps({"text": LONG.text}) + "\n"
    )
    factory = f"{__file__}:scripted_factory"

    def config(out):
        return AugmentConfig(
            input=str(src),
            output=str(tmp_path / out),
            annotator_factory=factory,
            limit=0,
            progress=False,
            tools=["Calculator"],
            chunk_size=1,
        )

    augment(config("whole"))
    calls = {"n": 0}
    original = WindowLog.progress

    def stop_in_the_long_one(self, done, total):
        original(self, done, total)
        if total > 1 and done == 3:
            calls["n"] += 1
            raise Stop()

    monkeypatch.setattr(WindowLog, "progress", stop_in_the_long_one)
    with pytest.raises(Stop):
        augment(config("cut"))
    shard = next((tmp_path / "cut" / "shards").iterdir())
    assert [s["done"] for s in json.loads((shard / WindowLog.FILE).read_text()).values()] == [3]
    monkeypatch.setattr(WindowLog, "progress", original)
    augment(config("cut"))
    assert (tmp_path / "cut" / "data.jsonl").read_bytes() == (
        tmp_path / "whole" / "data.jsonl"
    ).read_bytes()
    assert json.loads((shard / WindowLog.FILE).read_text()) == {}  # dropped once in a chunk
