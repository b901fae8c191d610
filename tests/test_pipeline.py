"""The annotation runner: outputs and stats, failures, resume after kill -9, shards, torchrun.

Most tests drive ``augment`` with ``FakeAnnotator`` (selected with the ``annotator_factory``
option), which has the real annotator's interface and inserts one Calculator call after the first
number of a document; the last test runs the real SmolLM2 annotator end to end.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from toolformer.data_aug.config import AugmentConfig
from toolformer.data_aug.pipeline import augment, merge_shards
from toolformer.data_aug.types import AnnotationResult, KeptCall
from toolformer.errors import UserError
from toolformer.syntax import APICall, insert_calls

FACTORY = f"{Path(__file__).resolve()}:fake_factory"
REPO = Path(__file__).resolve().parents[1]


class FakeAnnotator:
    """``annotate_batch(docs) -> list[AnnotationResult]`` like the real one, without a model.

    Env knobs for the subprocess tests: FAKE_ANNOTATOR_DELAY (seconds per document),
    FAKE_ANNOTATOR_INTERRUPT_AFTER (raise KeyboardInterrupt in that batch, 1-based).
    """

    def __init__(self, config: AugmentConfig):
        self.delay = float(os.environ.get("FAKE_ANNOTATOR_DELAY", "0"))
        self.interrupt_after = int(os.environ.get("FAKE_ANNOTATOR_INTERRUPT_AFTER", "0"))
        self.batches = 0

    def annotate_batch(self, docs):
        self.batches += 1
        if self.batches == self.interrupt_after:
            raise KeyboardInterrupt
        if any("RAISE" in d.text for d in docs):
            raise RuntimeError("annotator bug")
        out = []
        for d in docs:
            time.sleep(self.delay)
            m = re.search(r"\d+", d.text)
            if "FAIL" in d.text:
                out.append(AnnotationResult(d.id, d.text, d.text, error="CUDA out of memory"))
            elif m is None:
                out.append(
                    AnnotationResult(
                        d.id,
                        d.text,
                        d.text,
                        stats=Counter(docs_prefiltered_out=1),
                        skipped="no tool applies",
                    )
                )
            else:
                n = int(m.group())
                call = KeptCall(
                    "Calculator",
                    f"{n}+1",
                    str(n + 1),
                    m.end(),
                    2,
                    0.5,
                    1.5 + n / 100,
                    1.5 + n / 100,
                    2.0,
                )
                text = insert_calls(
                    d.text, [(m.end(), APICall("Calculator", f"{n}+1", str(n + 1)))]
                )
                stats = Counter(
                    {
                        "positions_kept": 2,
                        "candidates_sampled": 3,
                        "candidates_executed": 2,
                        "tool_failures": 1,
                        "calls_kept": 1,
                        "Calculator/positions_kept": 2,
                        "Calculator/calls_kept": 1,
                    }
                )
                out.append(
                    AnnotationResult(
                        d.id, text, d.text, [call], stats, {"sample": 0.01, "score": 0.02}
                    )
                )
        return out


def fake_factory(config: AugmentConfig) -> FakeAnnotator:
    return FakeAnnotator(config)


def _corpus(path: Path, n: int, extra=()) -> Path:
    """Documents: every third without numbers (prefiltered), the rest with one number."""
    rows = [
        {
            "text": f"Document {i} lists {i * 3} apples."
            if i % 3
            else f"Plain document number {'x' * (i + 1)}."
        }
        for i in range(n)
    ]
    rows += list(extra)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _config(tmp_path, src, **kw) -> AugmentConfig:
    base = dict(
        input=str(src),
        output=str(tmp_path / "out"),
        annotator_factory=FACTORY,
        limit=0,
        batch_size=2,
        chunk_size=3,
        progress=False,
        tools=["Calculator", "Calendar"],
    )
    base.update(kw)
    return AugmentConfig(**base)


def _all_indices(out: Path):
    idx = []
    for chunk in sorted((out / "shards").glob("*/chunks/chunk-*.jsonl")):
        idx += [json.loads(line)["index"] for line in chunk.read_text().splitlines()]
    return idx


def _data(out: Path):
    return [json.loads(line) for line in (out / "data.jsonl").read_text().splitlines()]


def _expected_with_calls(n):
    return [i for i in range(n) if i % 3]


# --------------------------------------------------------------------------- one run


def test_outputs_and_stats(tmp_path):
    from datasets import load_from_disk

    src = _corpus(tmp_path / "in.jsonl", 12, extra=[{"text": "  "}, {"text": "FAIL 5 times"}])
    (src.open("a")).write("{not json\n")
    summary = augment(_config(tmp_path, src))
    out = tmp_path / "out"
    assert summary.merged and summary.processed_now == 13
    stats = json.loads((out / "stats.json").read_text())
    d = stats["documents"]
    assert (d["read"], d["processed"], d["with_calls"], d["failed"], d["prefiltered"]) == (
        13,
        13,
        8,
        1,
        4,
    )
    assert d["skipped_input"] == {"empty": 1, "malformed_json": 1} and d["skipped_input_total"] == 2
    assert stats["calls_kept"] == {"total": 8, "per_tool": {"Calculator": 8, "Calendar": 0}}
    c = stats["counters"]
    assert (
        c["positions_kept"],
        c["candidates_sampled"],
        c["tool_failures"],
        c["docs_prefiltered_out"],
    ) == (16, 24, 8, 4)
    assert stats["per_tool"]["Calculator"]["positions_kept"] == 16
    assert stats["seconds"] == {"sample": pytest.approx(0.08), "score": pytest.approx(0.16)}
    assert stats["docs_per_second"] > 0 and stats["config"]["tools"] == ["Calculator", "Calendar"]

    rows = _data(out)
    assert [r["original"] for r in rows] == [
        f"Document {i} lists {i * 3} apples." for i in _expected_with_calls(12)
    ]
    first = rows[0]
    assert first["text"] == "Document 1 [Calculator(1+1) -> 2] lists 3 apples."
    assert first["calls"][0]["call"] == "[Calculator(1+1) -> 2]" and first["calls"][0][
        "score"
    ] == pytest.approx(1.01)
    ds = load_from_disk(str(out / "dataset"))
    assert ds.num_rows == 8 and ds["text"] == [r["text"] for r in rows]

    text = str(summary)
    assert (
        "13 documents, 8 with calls, 1 failed, 4 prefiltered out, 2 input records skipped" in text
    )
    assert "Calculator 8" in text and "[Calculator(11+1) -> 12]" in text  # the best call is shown


def test_annotator_errors_fail_documents_not_the_run(tmp_path):
    src = _corpus(tmp_path / "in.jsonl", 6, extra=[{"text": "RAISE 1"}, {"text": "Tail 9."}])
    summary = augment(_config(tmp_path, src, batch_size=2))
    stats = summary.stats
    # the batch [RAISE 1, Tail 9.] raised: both documents failed and were counted
    assert stats["documents"]["failed"] == 2 and stats["documents"]["processed"] == 8
    recs = [
        json.loads(x)
        for c in sorted((tmp_path / "out").glob("shards/*/chunks/*"))
        for x in c.read_text().splitlines()
    ]
    assert [r["error"] for r in recs[-2:]] == ["RuntimeError: annotator bug"] * 2
    assert sorted(_all_indices(tmp_path / "out")) == list(range(8))


def test_bad_factory_is_a_user_error(tmp_path):
    src = _corpus(tmp_path / "in.jsonl", 2)
    with pytest.raises(UserError, match="has no attribute 'nope'"):
        augment(_config(tmp_path, src, annotator_factory=f"{Path(__file__)}:nope"))
    with pytest.raises(UserError, match="expected 'module:attr'"):
        augment(_config(tmp_path, src, annotator_factory="no_colon", overwrite=True))


def test_missing_text_field_fails_before_any_work(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text('{"body": "x"}\n')
    with pytest.raises(UserError, match="fields: body"):
        augment(_config(tmp_path, src))


def test_qa_shares_the_runs_retriever_and_model():
    from toolformer.data_aug.pipeline import make_tools

    model, tok = object(), object()
    cfg = AugmentConfig(tools=["QA", "WikiSearch", "Calendar"]).validate()
    tools = make_tools(cfg, model, tok)
    assert list(tools) == ["QA", "WikiSearch", "Calendar"]
    assert tools["QA"].search is tools["WikiSearch"] and tools["QA"].reader() == (model, tok)
    own = make_tools(
        AugmentConfig(
            tools=["QA", "WikiSearch"], dtype="bf16", tool_options={"qa": {"corpus": "other.jsonl"}}
        ).validate(),
        model,
        tok,
    )
    assert own["QA"].search is not own["WikiSearch"] and own["QA"].config.corpus == "other.jsonl"
    assert own["QA"]._model is None  # fp32 reader by default: not the bf16 annotating model


# --------------------------------------------------------------------------- resume


def test_interrupt_keeps_finished_documents_and_resumes(tmp_path, monkeypatch):
    src = _corpus(tmp_path / "in.jsonl", 20)
    cfg = _config(tmp_path, src, batch_size=2, chunk_size=5)
    monkeypatch.setenv("FAKE_ANNOTATOR_INTERRUPT_AFTER", "4")
    with pytest.raises(KeyboardInterrupt):
        augment(cfg)
    assert sorted(_all_indices(tmp_path / "out")) == list(range(6))  # 3 finished batches saved
    monkeypatch.delenv("FAKE_ANNOTATOR_INTERRUPT_AFTER")
    summary = augment(cfg)
    assert summary.processed_now == 14 and summary.merged
    assert sorted(_all_indices(tmp_path / "out")) == list(range(20))
    assert [r["original"] for r in _data(tmp_path / "out")] == [
        f"Document {i} lists {i * 3} apples." for i in _expected_with_calls(20)
    ]
    progress = json.loads(next((tmp_path / "out").glob("shards/*/progress.json")).read_text())
    assert [s["documents"] for s in progress["sessions"]] == [6, 14]
    again = augment(cfg)  # finished: nothing to do, the annotator is not even built
    assert again.processed_now == 0 and again.merged and again.stats["documents"]["processed"] == 20


def test_kill_9_at_random_moments_then_resume(tmp_path):
    n = 40
    src = _corpus(tmp_path / "in.jsonl", n)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "toolformer.cli.main",
        "augment",
        "-i",
        str(src),
        "-o",
        str(out),
        "--annotator-factory",
        FACTORY,
        "--limit",
        "0",
        "--batch-size",
        "2",
        "--chunk-size",
        "3",
        "--tools",
        "Calculator",
        "-q",
    ]
    env = {**os.environ, "FAKE_ANNOTATOR_DELAY": "0.02", "PYTHONPATH": str(REPO)}
    rng = random.Random(1234)
    chunks = lambda: len(list(out.glob("shards/*/chunks/chunk-*.jsonl")))  # noqa: E731
    kills = 0
    for _ in range(4):
        target = chunks() + rng.randint(1, 3)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.time() + 60
        while proc.poll() is None and chunks() < target and time.time() < deadline:
            time.sleep(0.002)
        time.sleep(rng.uniform(0, 0.05))  # anywhere: mid-batch, mid-write, between chunks
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
        idx = _all_indices(out)
        assert len(idx) == len(set(idx)), "a killed run left a document twice"
    assert kills >= 3
    assert 0 < len(_all_indices(out)) < n
    final = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert sorted(_all_indices(out)) == list(range(n))
    ids = [r["id"] for r in _data(out)]
    assert len(ids) == len(set(ids)) == len(_expected_with_calls(n))
    stats = json.loads((out / "stats.json").read_text())
    assert stats["documents"]["processed"] == n and stats["calls_kept"]["total"] == len(ids)
    assert "Calculator" in final.stdout and "documents, " in final.stdout


def test_raising_the_limit_continues_a_finished_run(tmp_path):
    src = _corpus(tmp_path / "in.jsonl", 20)
    first = augment(_config(tmp_path, src, limit=8))
    assert first.stats["documents"]["processed"] == 8
    assert "Stopped at --limit 8" in str(first)
    second = augment(_config(tmp_path, src, limit=15))
    assert second.processed_now == 7 and second.stats["documents"]["processed"] == 15
    assert sorted(_all_indices(tmp_path / "out")) == list(range(15))


def test_other_settings_are_refused_and_overwrite_restarts(tmp_path):
    src = _corpus(tmp_path / "in.jsonl", 6)
    augment(_config(tmp_path, src))
    with pytest.raises(UserError, match=r"changed: seed.*AugmentConfig.overwrite=True"):
        augment(_config(tmp_path, src, seed=5))
    with pytest.raises(UserError, match="split into 1 shard"):
        augment(_config(tmp_path, src, num_shards=2, shard_index=0))
    again = augment(_config(tmp_path, src, seed=5, overwrite=True))
    assert again.processed_now == 6 and sorted(_all_indices(tmp_path / "out")) == list(range(6))


# --------------------------------------------------------------------------- shards


def test_two_shards_cover_every_document_once_and_merge(tmp_path):
    n = 11
    src = _corpus(tmp_path / "in.jsonl", n)
    out = tmp_path / "out"
    s0 = augment(_config(tmp_path, src, num_shards=2, shard_index=0))
    assert not s0.merged and s0.processed_now == 6 and "--merge" in str(s0)
    assert not (out / "data.jsonl").exists()
    with pytest.raises(UserError, match=r"shard\(s\) 1 of 2 .* not finished"):
        merge_shards(str(out))
    s1 = augment(_config(tmp_path, src, num_shards=2, shard_index=1))
    assert s1.merged and s1.processed_now == 5 and s1.stats["documents"]["processed"] == n
    for k in range(2):
        shard = [
            json.loads(x)["index"]
            for c in sorted((out / "shards" / f"shard-{k:05d}-of-00002").glob("chunks/*"))
            for x in c.read_text().splitlines()
        ]
        assert shard == [i for i in range(n) if i % 2 == k]
    assert sorted(_all_indices(out)) == list(range(n))
    rows = _data(out)
    assert [r["original"] for r in rows] == [
        f"Document {i} lists {i * 3} apples." for i in _expected_with_calls(n)
    ]
    stats, examples = merge_shards(str(out))  # an explicit merge gives the same result
    assert stats["documents"]["processed"] == n and stats["shards"] == 2 and examples
    assert _data(out) == rows


def test_shard_from_environment(tmp_path, monkeypatch):
    src = _corpus(tmp_path / "in.jsonl", 7)
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    summary = augment(_config(tmp_path, src))
    assert (summary.num_shards, summary.shard_index) == (3, 2)
    assert sorted(_all_indices(tmp_path / "out")) == [2, 5]


@pytest.mark.parametrize(
    "env,options,expected",
    [
        ({}, {}, (1, 0)),
        ({"WORLD_SIZE": "4", "RANK": "3"}, {}, (4, 3)),
        ({"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, {}, (2, 1)),
        ({"WORLD_SIZE": "1", "RANK": "0"}, {}, (1, 0)),
        ({"WORLD_SIZE": "4", "RANK": "3"}, {"num_shards": 2, "shard_index": 0}, (2, 0)),
        ({"WORLD_SIZE": "2", "RANK": "1"}, {"num_shards": 2}, (2, 1)),
        ({}, {"num_shards": 1}, (1, 0)),
    ],
)
def test_resolve_shard(env, options, expected):
    assert AugmentConfig(**options).resolve_shard(env) == expected


@pytest.mark.parametrize(
    "options,env,message",
    [
        ({"num_shards": 3}, {}, "needs AugmentConfig.shard_index"),
        ({"shard_index": 1}, {}, "needs AugmentConfig.num_shards"),
        ({"num_shards": 2, "shard_index": 2}, {}, "out of range"),
        ({}, {"WORLD_SIZE": "two"}, "not an integer"),
    ],
)
def test_resolve_shard_errors(options, env, message):
    with pytest.raises(UserError, match=message):
        AugmentConfig(**options).validate().resolve_shard(env)


def test_torchrun_two_processes_take_their_rank_shards(tmp_path):
    n = 9
    src = _corpus(tmp_path / "in.jsonl", n)
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "toolformer.cli.main",
        "augment",
        "-i",
        str(src),
        "-o",
        str(out),
        "--annotator-factory",
        FACTORY,
        "--limit",
        "0",
        "--tools",
        "Calculator",
        "-q",
    ]
    env = {**os.environ, "PYTHONPATH": str(REPO), "FAKE_ANNOTATOR_DELAY": "0.01"}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    pids = set()
    for k in range(2):
        folder = out / "shards" / f"shard-{k:05d}-of-00002"
        shard = [
            json.loads(x)["index"]
            for c in sorted(folder.glob("chunks/*"))
            for x in c.read_text().splitlines()
        ]
        assert shard == [i for i in range(n) if i % 2 == k]
        pids.add(json.loads((folder / "progress.json").read_text())["sessions"][0]["pid"])
    assert len(pids) == 2  # two processes, one shard each
    assert sorted(_all_indices(out)) == list(range(n))
    assert json.loads((out / "stats.json").read_text())["documents"]["processed"] == n
    assert "all shards" in proc.stdout  # the last rank to finish merged


# --------------------------------------------------------------------------- the real thing


@pytest.mark.slow
def test_real_annotator_end_to_end_on_default_corpus(tmp_path):
    """SmolLM2 + Calculator + Calendar on the first default-corpus paragraphs, nothing faked."""
    from datasets import load_from_disk

    from toolformer.data_aug.inputs import DEFAULT_CORPUS_DATE
    from toolformer.syntax import find_calls, strip_calls

    out = tmp_path / "out"
    summary = augment(
        AugmentConfig(output=str(out), tools=["Calculator", "Calendar"], limit=3, progress=False)
    )
    assert summary.merged and summary.processed_now == 3
    stats = json.loads((out / "stats.json").read_text())
    d, c = stats["documents"], stats["counters"]
    assert (d["read"], d["processed"], d["failed"]) == (3, 3, 0)
    # the default documents are dated, so the Calendar is tried on every one of them
    assert stats["per_tool"]["Calendar"]["docs_prefiltered_out"] == 0
    assert (
        c["positions_kept"] >= 1
        and c["candidates_sampled"] >= c["candidates_closed"] >= c["candidates_executed"]
    )
    assert (
        stats["seconds"]["positions"] > 0
        and stats["wall_seconds"] > 0
        and stats["load_seconds"] > 0
    )
    rows = _data(out)
    assert stats["calls_kept"]["total"] == sum(len(r["calls"]) for r in rows) == c["calls_kept"]
    for row in rows:
        assert row["date"] == DEFAULT_CORPUS_DATE.isoformat() and row["id"].startswith("wiki:")
        assert [m.call.tool for m in find_calls(row["text"])] == [k["tool"] for k in row["calls"]]
        assert strip_calls(row["text"]) == row["original"]
        assert all(
            k["score"] >= {"Calculator": 0.5, "Calendar": 1.0}[k["tool"]] for k in row["calls"]
        )
    assert load_from_disk(str(out / "dataset")).num_rows == len(rows)
    assert "3 documents" in str(summary)


def test_one_seed_a_different_annotator_seed_is_an_error_not_silently_replaced(tmp_path):
    """AugmentConfig.seed is the run's one seed; an annotator.seed set to something else used to
    be replaced by it without a word."""
    from toolformer.data_aug.types import AnnotatorConfig

    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "x"}\n')
    with pytest.raises(UserError, match="annotator.seed 7 .* seed 3"):
        _config(tmp_path, src, seed=3, annotator=AnnotatorConfig(seed=7)).validate()
    _config(tmp_path, src, seed=3, annotator=AnnotatorConfig(seed=3)).validate()
    _config(tmp_path, src, seed=3).validate()  # annotator.seed left at its default: fine


def test_max_length_rename_keeps_the_recorded_fingerprint():
    """AnnotatorConfig.max_doc_tokens is max_length now; a run recorded before resumes (the id
    below is the one the code before the rename computed)."""
    from toolformer.data_aug.types import AnnotatorConfig

    # the settings of that code: no argument grammar, calls from the second token on
    old = AnnotatorConfig(constrained=False, min_position=1)
    c = AugmentConfig(input="x.jsonl", tools=["Calculator"], annotator=old).validate()
    assert AugmentConfig.fingerprint_id(c.fingerprint(1)) == "44afcea6711bef6a"
    # with the grammar (the default) the settings differ: such a run does not resume silently
    d = AugmentConfig(input="x.jsonl", tools=["Calculator"]).validate()
    assert AugmentConfig.fingerprint_id(d.fingerprint(1)) != "44afcea6711bef6a"
    # the rule itself: the recorded key, whatever the defaults
    ann = (
        AugmentConfig(
            input="x.jsonl", tools=["Calculator"], annotator=AnnotatorConfig(max_length=123)
        )
        .validate()
        .fingerprint(1)["annotator"]
    )
    assert ann["max_doc_tokens"] == 123 and "max_length" not in ann
