"""Model fingerprints: what a resumed run compares instead of trusting a model's name."""

from __future__ import annotations

import json
import shutil

import pytest

import toolformer.fingerprint as fp
from toolformer.errors import UserError


def test_a_folder_fingerprint_follows_contents_not_times(tmp_path):
    model = tmp_path / "m"
    model.mkdir()
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"a" * 1000)
    (model / "results.json").write_text("{}")  # not a model file: may change freely
    before = fp.model_fingerprint(str(model))
    assert set(before["files"]) == {"config.json", "model.safetensors"}
    copy = tmp_path / "copy"
    shutil.copytree(model, copy)
    assert fp.model_fingerprint(str(copy)) == before
    (model / "results.json").write_text('{"x": 1}')
    assert fp.model_fingerprint(str(model)) == before
    (model / "model.safetensors").write_bytes(b"b" * 1000)
    after = fp.model_fingerprint(str(model))
    assert fp.changed_parts(before, after) == ["files/model.safetensors"]
    with pytest.raises(UserError) as exc:
        fp.check_same_model(before, after, "m", tmp_path / "run", "pass another --output")
    assert "files/model.safetensors" in str(exc.value) and "\n" not in str(exc.value)
    fp.check_same_model(None, after, "m", tmp_path / "run", "")  # nothing recorded: trusted


def test_a_large_file_is_sampled_and_a_retrained_one_still_differs(tmp_path, monkeypatch):
    monkeypatch.setattr(fp, "FULL_HASH_BYTES", 4096)
    monkeypatch.setattr(fp, "EDGE_BYTES", 256)
    monkeypatch.setattr(fp, "BLOCK_BYTES", 16)
    monkeypatch.setattr(fp, "SAMPLED_BLOCKS", 8)
    path = tmp_path / "model.safetensors"
    data = bytearray(range(256)) * 64  # 16 KiB
    path.write_bytes(bytes(data))
    first = fp.file_digest(path)
    data[len(data) // 2 : len(data) // 2 + 2048] = b"x" * 2048  # a layer in the middle retrained
    path.write_bytes(bytes(data))
    assert fp.file_digest(path) != first and fp.file_digest(path).startswith("16384:")


def test_aliases_hub_ids_and_missing_paths(tmp_path):
    alias = fp.model_fingerprint("smollm2-135m")
    assert alias["alias"] == "smollm2-135m" and alias["version"]
    assert fp.model_fingerprint(str(tmp_path / "nothing")) == {"name": str(tmp_path / "nothing")}
    assert fp.model_fingerprint("org/model")["hub"] == "org/model"
    json.dumps(alias)


def test_tool_options_naming_a_file_or_model_are_fingerprinted_but_not_a_cache(tmp_path):
    corpus = tmp_path / "passages.jsonl"
    corpus.write_text('{"text": "a"}\n')
    reader = tmp_path / "reader"
    reader.mkdir()
    (reader / "config.json").write_text("{}")
    cache = tmp_path / "cache"
    cache.mkdir()
    opts = {
        "WikiSearch": {"corpus": str(corpus), "cache_dir": str(cache), "top_k": 2},
        "QA": {"model": str(reader)},
    }
    before = fp.options_fingerprint(opts)
    assert set(before) == {"WikiSearch.corpus", "QA.model"}
    (cache / "index.npy").write_bytes(b"filled")
    assert fp.options_fingerprint(opts) == before
    corpus.write_text('{"text": "b"}\n')
    assert fp.changed_parts(before, fp.options_fingerprint(opts)) == ["WikiSearch.corpus"]
