"""A resumed run compares the model's files with those it was made with, not only its name:
augment, selftrain and finetune --resume refuse to continue after the weights behind the same
name changed (eval: tests/test_adapter_trust.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer.errors import UserError

TESTS = Path(__file__).resolve().parent


def _fake_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_augment_refuses_to_resume_after_the_models_weights_changed(tmp_path):
    import sys

    sys.path.insert(0, str(TESTS))
    from test_pipeline import _config, _corpus

    from toolformer.data_aug.pipeline import augment

    model = _fake_model(tmp_path / "model", b"a" * 100)
    src = _corpus(tmp_path / "in.jsonl", 6)
    augment(_config(tmp_path, src, model=str(model), limit=3))
    augment(_config(tmp_path, src, model=str(model), limit=6))  # same model: resumes
    _fake_model(model, b"b" * 100)
    with pytest.raises(UserError) as exc:
        augment(_config(tmp_path, src, model=str(model), limit=6))
    assert "model.safetensors" in str(exc.value) and "--overwrite" in str(exc.value)
    augment(_config(tmp_path, src, model=str(model), limit=6, overwrite=True))
