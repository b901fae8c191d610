"""A resumed run compares the model's files with those it was made with, not only its name:
augment, selftrain and finetune --resume refuse to continue after the weights behind the same
name changed (eval: tests/test_adapter_trust.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from toolformer.errors import UserError


def _fake_model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    return folder


def test_augment_refuses_to_resume_after_the_models_weights_changed(tmp_path):
    from test_pipeline import _config, _corpus

    from toolformer.data_aug.pipeline import augment

    model = _fake_model(tmp_path / "model", b"a" * 100)
    src = _corpus(tmp_path / "in.jsonl", 6)
    augment(_config(tmp_path, src, model=str(model), limit=3))
    augment(_config(tmp_path, src, model=str(model), limit=6))  # same model: resumes
    _fake_model(model, b"b" * 100)
    with pytest.raises(UserError) as exc:
        augment(_config(tmp_path, src, model=str(model), limit=6))
    message = str(exc.value)
    assert "model.safetensors" in message and "AugmentConfig.overwrite=True" in message
    augment(_config(tmp_path, src, model=str(model), limit=6, overwrite=True))


def test_selftrain_refuses_to_resume_after_the_base_models_weights_changed(
    tmp_path, smol_tokenizer
):
    import shutil

    from conftest import make_tiny_model
    from test_selftrain import EVAL_ITEMS, PROBLEMS, _config, _write_jsonl

    from toolformer.selftrain.loop import selftrain

    base = tmp_path / "base"
    make_tiny_model(len(smol_tokenizer), seed=0).save_pretrained(base)
    smol_tokenizer.save_pretrained(base)
    corpus = _write_jsonl(
        tmp_path / "train.jsonl", [{"question": q, "answer": a} for q, a in PROBLEMS]
    )
    evals = _write_jsonl(tmp_path / "evalset.jsonl", EVAL_ITEMS)
    cfg = _config(str(base), corpus, evals, tmp_path / "run", max_rounds=0, round0_docs=0)
    selftrain(cfg)
    moved = tmp_path / "moved"  # the same files copied back: still the same model
    shutil.copytree(base, moved)
    shutil.rmtree(base)
    shutil.copytree(moved, base)
    selftrain(cfg)
    make_tiny_model(len(smol_tokenizer), seed=1).save_pretrained(base)  # other weights, same path
    with pytest.raises(UserError) as exc:
        selftrain(cfg)
    assert "model.safetensors" in str(exc.value) and "\n" not in str(exc.value)


def test_finetune_resume_refuses_a_checkpoint_of_a_base_whose_weights_changed(
    tmp_path, smol_tokenizer
):
    from conftest import make_tiny_model
    from test_finetune import CALC_TEXTS, _config, _write_annotation_output

    from toolformer.finetune import finetune

    base = tmp_path / "base"
    make_tiny_model(len(smol_tokenizer), seed=0).save_pretrained(base)
    smol_tokenizer.save_pretrained(base)
    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    out = tmp_path / "model"
    finetune(_config(str(base), data, out, max_steps=2, eval_steps=1, lora=True))
    resumed = finetune(
        _config(
            str(base),
            data,
            out,
            max_steps=3,
            eval_steps=1,
            lora=True,
            resume_from_checkpoint="latest",
        )
    )
    assert resumed.metrics["start_step"] == 2
    make_tiny_model(len(smol_tokenizer), seed=1).save_pretrained(base)  # other weights, same path
    with pytest.raises(UserError) as exc:
        finetune(
            _config(
                str(base),
                data,
                out,
                max_steps=4,
                eval_steps=1,
                lora=True,
                resume_from_checkpoint="latest",
            )
        )
    msg = str(exc.value)
    assert (
        "model.safetensors" in msg
        and "leave FinetuneConfig.resume_from_checkpoint unset" in msg
        and "\n" not in msg
    )


def test_augment_refuses_to_resume_after_a_tool_options_corpus_changed(tmp_path):
    from test_pipeline import _config, _corpus

    from toolformer.data_aug.pipeline import augment

    passages = tmp_path / "passages.jsonl"
    passages.write_text('{"text": "one"}\n')
    src = _corpus(tmp_path / "in.jsonl", 6)
    opts = {"WikiSearch": {"corpus": str(passages)}}
    augment(_config(tmp_path, src, limit=3, tool_options=opts))
    passages.write_text('{"text": "two"}\n')
    with pytest.raises(UserError, match="WikiSearch.corpus"):
        augment(_config(tmp_path, src, limit=6, tool_options=opts))
