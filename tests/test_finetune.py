"""Fine-tuning: data loading, packing, training, best checkpoint, LoRA merge, resume, CLI,
accelerate configs and a 2-process (gloo) run. All on a tiny random model saved to tmp."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_tiny_model
from hypothesis import given, settings
from hypothesis import strategies as st

from toolformer.errors import UserError
from toolformer.finetune import (
    CHECKPOINTS_DIR,
    MANIFEST_FILE,
    PAPER_TRAINING_ARGS,
    CausalCollator,
    FinetuneConfig,
    accelerate_config,
    accumulation_steps,
    build_blocks,
    finetune,
    latest_checkpoint,
    pack_sequences,
    read_texts,
    resolve_bf16,
    split_and_mix,
    total_steps,
)
from toolformer.records import RecordStats

REPO = Path(__file__).resolve().parents[1]

CALC_TEXTS = [
    f"The shop sold {a} boxes of {b} eggs, that is [Calculator({a}*{b}) -> {a * b}] {a * b} eggs."
    for a, b in [(3, 4), (5, 6), (7, 8), (9, 2), (12, 3), (4, 11), (6, 6), (8, 5)]
]
SEARCH_TEXT = (
    "Paris is the capital of [WikiSearch(capital of "
    "France) -> Paris is the capital of France.] France."
)


def _write_annotation_output(folder: Path, texts, with_dataset: bool = True) -> Path:
    """The annotation pipeline's layout: data.jsonl (+ dataset/ saved with save_to_disk)."""
    from toolformer.syntax import find_calls

    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, t in enumerate(texts):
        calls = [
            {"tool": m.call.tool, "args": m.call.args, "result": m.call.result, "offset": m.start}
            for m in find_calls(t)
        ]
        rows.append({"id": str(i), "text": t, "original": t, "calls": calls, "meta": {}})
    with open(folder / "data.jsonl", "w") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
    if with_dataset:
        from datasets import Dataset

        Dataset.from_list([{k: v for k, v in r.items() if k != "meta"} for r in rows]).save_to_disk(
            str(folder / "dataset")
        )
    return folder


def _config(tiny_dir, data, out, **kw) -> FinetuneConfig:
    """A small run; keywords that are no FinetuneConfig field go to training_args."""
    base = dict(
        model=tiny_dir,
        data=str(data),
        output_dir=str(out),
        max_length=32,
        effective_batch_size=4,
        progress=False,
        eval_fraction=0.25,
    )
    training = dict(
        per_device_train_batch_size=4,
        learning_rate=3e-3,
        max_steps=6,
        eval_steps=3,
        logging_steps=1,
    )
    own = {f.name for f in dataclasses.fields(FinetuneConfig)}
    for key, value in kw.items():
        (base if key in own else training)[key] = value
    return FinetuneConfig(**base, training_args=training)


# --------------------------------------------------------------------------- packing


@settings(max_examples=60, deadline=None)
@given(
    seqs=st.lists(
        st.lists(st.integers(0, 50), min_size=1, max_size=40).map(lambda s: s + [99]),
        min_size=1,
        max_size=12,
    ),
    block=st.integers(1, 33),
)
def test_pack_sequences_keeps_every_token_in_full_blocks(seqs, block):
    blocks = pack_sequences(seqs, block)
    flat = [t for s in seqs for t in s]
    assert [t for b in blocks for t in b] == flat  # order kept, nothing lost or added
    assert all(len(b) == block for b in blocks[:-1])
    assert 1 <= len(blocks[-1]) <= block
    assert len(blocks) == math.ceil(len(flat) / block)


def test_build_blocks_separates_documents_with_eos(smol_tokenizer):
    texts = ["first doc [Calculator(2*3) -> 6] 6", "second one", "a third, longer document " * 5]
    blocks = build_blocks(texts, smol_tokenizer, max_length=16, packing=True)
    eos = smol_tokenizer.eos_token_id
    flat = [t for b in blocks for t in b]
    assert all(len(b) == 16 for b in blocks[:-1])
    expected = []
    for t in texts:
        expected += smol_tokenizer(t)["input_ids"] + [eos]
    assert flat == expected
    assert flat.count(eos) == len(texts)
    docs = smol_tokenizer.decode(flat).split(smol_tokenizer.eos_token)
    assert docs[:-1] == texts and docs[-1] == ""
    # without packing: one row per text, truncated, each ending in EOS when it fits
    rows = build_blocks(texts, smol_tokenizer, max_length=16, packing=False)
    assert len(rows) == 3 and rows[1][-1] == eos and len(rows[2]) == 16


def test_collator_masks_padding_but_keeps_eos_labels():
    eos = 2  # SmolLM2: the pad token IS the EOS token
    batch = CausalCollator(pad_id=eos)([{"input_ids": [5, 6, eos, 7]}, {"input_ids": [8, eos]}])
    assert batch["input_ids"].tolist() == [[5, 6, eos, 7], [8, eos, eos, eos]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[5, 6, eos, 7], [8, eos, -100, -100]]


def test_split_and_mix():
    texts = [f"aug {i}" for i in range(40)]
    plain = [f"plain {i}" for i in range(100)]
    train, held, n_plain = split_and_mix(texts, plain, 0.1, 0.5, 1000, seed=1)
    assert len(held) == 4 and not set(held) & set(train)
    assert all(h.startswith("aug") for h in held)
    assert n_plain == 36 and sum(t.startswith("plain") for t in train) == 36
    assert split_and_mix(texts, plain, 0.1, 0.5, 1000, seed=1) == (train, held, n_plain)
    with pytest.raises(UserError, match="too few"):
        split_and_mix(["only one"], [], 0.5, 0.0, 10, seed=0)


def test_steps_accumulation_and_bf16_choice(monkeypatch):
    cfg = FinetuneConfig(data="x", training_args={"per_device_train_batch_size": 8})
    assert accumulation_steps(cfg, 1) == 16 and accumulation_steps(cfg, 4) == 4  # effective 128
    assert (
        accumulation_steps(
            FinetuneConfig(data="x", training_args={"gradient_accumulation_steps": 3}), 2
        )
        == 3
    )
    assert total_steps(cfg, 10_000, 1, 16) == 2000
    epochs = FinetuneConfig(data="x", training_args={"num_train_epochs": 2.0, "max_steps": 0})
    assert total_steps(epochs, 1000, 1, 16) == math.ceil(2 * 125 / 16)
    assert (
        total_steps(
            FinetuneConfig(data="x", training_args={"num_train_epochs": 100.0}), 10_000, 1, 16
        )
        == 2000
    )
    monkeypatch.delenv("ACCELERATE_MIXED_PRECISION", raising=False)
    import torch

    assert resolve_bf16(None) == bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    assert resolve_bf16(True) is True
    assert resolve_bf16(False) is False and os.environ["ACCELERATE_MIXED_PRECISION"] == "no"


# --------------------------------------------------------------------------- inputs


def test_read_texts_from_every_layout(tmp_path):
    folder = _write_annotation_output(tmp_path / "aug", CALC_TEXTS[:3] + [SEARCH_TEXT])
    texts, tools = read_texts(str(folder))  # prefers dataset/
    assert texts == CALC_TEXTS[:3] + [SEARCH_TEXT]
    assert tools == {"Calculator": 3, "WikiSearch": 1}
    assert read_texts(str(folder / "data.jsonl")) == (texts, tools)
    assert read_texts(str(folder / "dataset")) == (texts, tools)
    import shutil

    shutil.rmtree(folder / "dataset")
    assert read_texts(str(folder)) == (texts, tools)  # falls back to data.jsonl
    from datasets import Dataset

    Dataset.from_dict({"text": texts + ["   "]}).to_parquet(str(tmp_path / "x.parquet"))
    t2, tools2 = read_texts(str(tmp_path / "x.parquet"))  # no calls column: parsed from text
    assert t2 == texts and tools2 == {"Calculator": 3, "WikiSearch": 1}
    (tmp_path / "plain.txt").write_text("line one\n\nline two\r\n")
    assert read_texts(str(tmp_path / "plain.txt"))[0] == ["line one", "line two"]


def _one_line(excinfo) -> None:
    assert "\n" not in str(excinfo.value) and len(str(excinfo.value)) < 300


def test_bad_inputs_are_user_errors(tmp_path, tiny_dir):
    with pytest.raises(UserError, match="does not exist") as e:
        read_texts(str(tmp_path / "missing.jsonl"))
    _one_line(e)
    (tmp_path / "notext.jsonl").write_text(json.dumps({"body": "hi"}) + "\n")
    with pytest.raises(UserError, match="no 'text' field"):
        read_texts(str(tmp_path / "notext.jsonl"))
    from datasets import Dataset

    Dataset.from_dict({"body": ["a"]}).save_to_disk(str(tmp_path / "ds"))
    with pytest.raises(UserError, match=r"no 'text' column \(columns: body\)") as e:
        read_texts(str(tmp_path / "ds"))
    _one_line(e)
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(UserError, match="no non-empty"):
        read_texts(str(tmp_path / "empty.jsonl"))
    (tmp_path / "blank.jsonl").write_text(json.dumps({"text": "  "}) + "\n")
    with pytest.raises(UserError, match="no non-empty"):
        read_texts(str(tmp_path / "blank.jsonl"))
    # a bad line is skipped and counted, as in every reader (toolformer.records)
    (tmp_path / "broken.jsonl").write_text('{"text": "ok"}\n{"text": \n')
    stats = RecordStats()
    assert read_texts(str(tmp_path / "broken.jsonl"), stats=stats)[0] == ["ok"]
    assert stats.skipped["malformed_json"] == 1 and "line 2" in stats.bad_lines[0]
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match="without data.jsonl"):
        read_texts(str(tmp_path / "folder"))
    (tmp_path / "x.xml").write_text("<a/>")
    with pytest.raises(UserError, match="unsupported data file"):
        read_texts(str(tmp_path / "x.xml"))
    with pytest.raises(UserError, match="mix_plain"):
        FinetuneConfig(data="x", mix_ratio=0.3)
    with pytest.raises(UserError, match="multiple of eval_steps"):
        FinetuneConfig(data="x", training_args={"eval_steps": 10, "save_steps": 15})
    with pytest.raises(UserError, match="no checkpoint to resume"):
        finetune(
            _config(
                tiny_dir,
                _write_annotation_output(tmp_path / "d", CALC_TEXTS),
                tmp_path / "o",
                resume_from_checkpoint="latest",
            )
        )


# --------------------------------------------------------------------------- training


def test_training_reduces_loss_and_writes_manifest(tmp_path, tiny_dir):
    from toolformer.models import load_model

    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS + [SEARCH_TEXT] * 2)
    out = tmp_path / "model"
    res = finetune(_config(tiny_dir, data, out, max_steps=12, eval_steps=4, eval_fraction=0.2))
    m = res.metrics
    assert m["global_step"] == 12 and m["start_step"] == 0
    assert m["eval_loss_after"] < m["eval_loss_before"] - 0.5
    assert m["eval_perplexity_after"] == pytest.approx(math.exp(m["eval_loss_after"]))
    assert m["tokens_trained"] > 0 and m["eval_documents"] == 2 and m["train_documents"] == 8
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["call_syntax"] == {
        "start": "[",
        "arrow": "->",
        "end": "]",
        "result_sep": " -> ",
    }
    assert manifest["tools"] == ["Calculator", "WikiSearch"]
    assert manifest["tool_calls"] == {"Calculator": 8, "WikiSearch": 2}
    assert manifest["base_model"] == tiny_dir and manifest["lora"] is None
    assert manifest["metrics"]["eval_perplexity_before"] == pytest.approx(
        m["eval_perplexity_before"]
    )
    assert manifest["config"]["training_args"]["learning_rate"] == 3e-3
    assert manifest["config"]["training_args"]["seed"] == 42  # in full: defaults included
    # the saved model loads by path with the project loader and its held-out loss is the best one
    model, tok = load_model(str(out))
    assert tok.eos_token_id == 2
    assert _eval_loss(model, tok, res) == pytest.approx(m["eval_loss_after"], rel=1e-4)


def _eval_loss(model, tok, res) -> float:
    """Mean held-out loss of ``model`` over the same eval blocks the Trainer used."""
    import torch

    from toolformer.finetune import split_and_mix

    cfg = FinetuneConfig(**json.loads((Path(res.output_dir) / MANIFEST_FILE).read_text())["config"])
    texts, _ = read_texts(cfg.data)
    _, held, _ = split_and_mix(texts, [], cfg.eval_fraction, 0.0, cfg.max_eval_docs, cfg.seed)
    blocks = build_blocks(held, tok, cfg.max_length, cfg.packing)
    losses = []
    with torch.no_grad():
        size = cfg.arg("per_device_train_batch_size")
        for i in range(0, len(blocks), size):
            batch = CausalCollator(tok.pad_token_id)(
                [{"input_ids": b} for b in blocks[i : i + size]]
            )
            losses.append(model(**batch).loss.item())
    return sum(losses) / len(losses)


def test_best_checkpoint_is_the_lowest_eval_perplexity(tmp_path, tiny_dir):
    # training on one kind of text, evaluating on another: held-out loss first falls (shared
    # tokens), then rises as the model memorises its training text, so the best is not the last
    train = _write_annotation_output(tmp_path / "train", [CALC_TEXTS[0]] * 8)
    held = tmp_path / "held.jsonl"
    held.write_text("".join(json.dumps({"text": t}) + "\n" for t in CALC_TEXTS[1:]))
    out = tmp_path / "model"
    res = finetune(
        _config(
            tiny_dir,
            train,
            out,
            eval_data=str(held),
            max_steps=12,
            eval_steps=2,
            learning_rate=4e-2,
            warmup_ratio=0.0,
            save_total_limit=2,
        )
    )
    history = res.metrics["eval_history"]
    best_step, best_loss = min(history, key=lambda h: h[1])
    assert best_step != history[-1][0], f"run did not overfit; history {history}"
    assert res.best_checkpoint.endswith(f"checkpoint-{best_step}")
    assert res.metrics["eval_loss_after"] == pytest.approx(best_loss)
    from safetensors.torch import load_file

    final = load_file(str(out / "model.safetensors"))
    best = load_file(str(Path(res.best_checkpoint) / "model.safetensors"))
    assert latest_checkpoint(str(out)).endswith("checkpoint-12")  # best and last are both kept
    last = load_file(str(out / CHECKPOINTS_DIR / "checkpoint-12" / "model.safetensors"))
    assert all((final[k] == best[k]).all() for k in best)
    assert any((final[k] != last[k]).any() for k in last)


def test_lora_saves_merged_model_equal_to_base_plus_adapter(tmp_path, tiny_dir):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    out = tmp_path / "lora"
    res = finetune(
        _config(
            tiny_dir,
            data,
            out,
            lora=True,
            lora_r=4,
            lora_alpha=8,
            lora_dropout=0.0,
            max_steps=4,
            eval_steps=2,
            learning_rate=1e-2,
        )
    )
    assert (out / "adapter" / "adapter_config.json").exists()
    assert (out / "config.json").exists() and (out / "model.safetensors").exists()
    merged = AutoModelForCausalLM.from_pretrained(str(out)).eval()
    base = AutoModelForCausalLM.from_pretrained(tiny_dir).eval()
    ids = torch.tensor([[5, 100, 2000, 7, 42, 9]])
    with torch.no_grad():
        base_logits = base(ids).logits
        adapted = PeftModel.from_pretrained(base, str(out / "adapter")).eval()
        want = adapted(ids).logits
        got = merged(ids).logits
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, base_logits, atol=1e-4)  # the adapter learned something
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    assert manifest["lora"]["merged"] is True and manifest["lora"]["r"] == 4
    assert res.metrics["eval_loss_after"] <= res.metrics["eval_loss_before"]


def test_resume_continues_the_step_count(tmp_path, tiny_dir):
    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    out = tmp_path / "model"
    first = finetune(_config(tiny_dir, data, out, max_steps=4, eval_steps=2))
    assert first.metrics["global_step"] == 4
    assert latest_checkpoint(str(out)).endswith("checkpoint-4")
    resumed = finetune(
        _config(tiny_dir, data, out, max_steps=6, eval_steps=2, resume_from_checkpoint="latest")
    )
    assert resumed.metrics["start_step"] == 4 and resumed.metrics["global_step"] == 6
    assert (
        resumed.metrics["eval_loss_before"] == first.metrics["eval_loss_before"]
    )  # kept on resume
    steps = [s for s, _ in resumed.metrics["eval_history"]]
    assert steps == [2, 4, 6]  # the history of the first run is carried on
    explicit = finetune(
        _config(
            tiny_dir,
            data,
            tmp_path / "m2",
            max_steps=6,
            eval_steps=2,
            resume_from_checkpoint=str(out / CHECKPOINTS_DIR / "checkpoint-4"),
        )
    )
    assert explicit.metrics["start_step"] == 4
    with pytest.raises(UserError, match="not a Trainer checkpoint"):
        finetune(_config(tiny_dir, data, out, resume_from_checkpoint=str(tmp_path)))


def test_mix_plain_and_no_eval(tmp_path, tiny_dir):
    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    plain = tmp_path / "plain.jsonl"
    plain.write_text(
        "".join(json.dumps({"text": f"plain text number {i}."}) + "\n" for i in range(50))
    )
    res = finetune(
        _config(
            tiny_dir,
            data,
            tmp_path / "m",
            mix_plain=str(plain),
            mix_ratio=0.5,
            eval_fraction=0.0,
            max_steps=2,
            packing=False,
        )
    )
    m = res.metrics
    assert m["plain_documents"] == 8 and m["train_documents"] == 16 and m["train_blocks"] == 16
    assert m["eval_documents"] == 0 and m["eval_loss_after"] is None and res.best_checkpoint is None
    assert (tmp_path / "m" / "model.safetensors").exists()


# --------------------------------------------------------------------------- CLI


def test_cli_maps_options_onto_config(tmp_path, tiny_dir, monkeypatch):
    from click.testing import CliRunner

    from toolformer.cli import finetune_cmd
    from toolformer.cli.main import cli

    seen = {}

    def fake_run(config):
        seen["config"] = config
        from toolformer.finetune import FinetuneResult

        return FinetuneResult(
            config.output_dir,
            None,
            {
                k: 0
                for k in (
                    "global_step",
                    "train_loss",
                    "eval_perplexity_before",
                    "eval_perplexity_after",
                    "tokens_trained",
                )
            },
        )

    monkeypatch.setattr("toolformer.finetune.finetune", fake_run)
    r = CliRunner().invoke(
        cli,
        [
            "finetune",
            "--data",
            "d",
            "--output",
            "o",
            "--lora",
            "--max-steps",
            "7",
            "--lr",
            "2e-4",
            "--batch-size",
            "2",
            "--grad-accum",
            "3",
            "--max-seq-len",
            "64",
            "--no-bf16",
            "--mix-plain",
            "p.jsonl",
            "--mix-ratio",
            "0.2",
            "--eval-data",
            "dev.jsonl",
            "--resume",
        ],
    )
    assert r.exit_code == 0, r.output
    c = seen["config"]
    assert (c.data, c.output_dir, c.lora) == ("d", "o", True)
    assert c.training_args == {
        "max_steps": 7,
        "learning_rate": 2e-4,
        "per_device_train_batch_size": 2,
        "gradient_accumulation_steps": 3,
        "bf16": False,
    }
    assert (c.arg("max_steps"), c.arg("learning_rate"), c.max_length) == (7, 2e-4, 64)
    assert (c.mix_plain, c.mix_ratio, c.resume_from_checkpoint) == ("p.jsonl", 0.2, "latest")
    assert c.eval_data == "dev.jsonl"
    r = CliRunner().invoke(
        cli, ["finetune", "--data", "d", "--output", "o", "--resume", "ck/checkpoint-3"]
    )
    assert (
        seen["config"].resume_from_checkpoint == "ck/checkpoint-3"
        and seen["config"].arg("bf16") is None
    )
    assert seen["config"].arg("learning_rate") == 1e-5 and seen["config"].model == "smollm2-135m"
    assert seen["config"].training_args == {}
    assert finetune_cmd.finetune.name == "finetune"

    options = {p.name for p in finetune_cmd.finetune.params}
    own = {f.name for f in dataclasses.fields(FinetuneConfig)} - {"training_args"}
    assert own | set(PAPER_TRAINING_ARGS) <= options  # every field has an option


def test_cli_trains_and_reports_user_errors(tmp_path, tiny_dir, capsys):
    from toolformer.cli.main import main

    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "finetune",
                "--data",
                str(data),
                "--output",
                str(tmp_path / "m"),
                "--model",
                tiny_dir,
                "--max-steps",
                "2",
                "--eval-steps",
                "2",
                "--batch-size",
                "4",
                "--effective-batch-size",
                "4",
                "--max-seq-len",
                "32",
                "--eval-fraction",
                "0.25",
                "--no-progress",
            ]
        )
    assert exit_info.value.code == 0
    report = json.loads(capsys.readouterr().out)
    assert report["global_step"] == 2 and report["best_checkpoint"].endswith("checkpoint-2")
    with pytest.raises(SystemExit) as exit_info:
        main(["finetune", "--data", str(tmp_path / "nope"), "--output", str(tmp_path / "m2")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: data path") and "\n" not in err


# --------------------------------------------------------------------------- accelerate


@pytest.mark.parametrize(
    "name,kind",
    [
        ("cpu_2proc", "MULTI_GPU"),
        ("ddp", "MULTI_GPU"),
        ("fsdp", "FSDP"),
        ("deepspeed_zero3", "DEEPSPEED"),
    ],
)
def test_accelerate_configs_parse(name, kind):
    from accelerate.commands.config.config_args import load_config_from_file

    cfg = load_config_from_file(str(accelerate_config(name)))
    assert str(cfg.distributed_type).endswith(kind)
    if name == "fsdp":
        assert cfg.fsdp_config["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert cfg.fsdp_config["fsdp_reshard_after_forward"] is True  # full shard
    if name == "deepspeed_zero3":
        assert cfg.deepspeed_config["zero_stage"] == 3
    if name == "cpu_2proc":  # torchrun-launched; the processes form a MULTI_CPU gloo group
        assert cfg.num_processes == 2 and cfg.use_cpu
    with pytest.raises(UserError, match="shipped ones: cpu_2proc, ddp, deepspeed_zero3, fsdp"):
        accelerate_config("zero2")


def test_two_process_cpu_run_with_gloo(tmp_path, tiny_dir):
    """``accelerate launch`` with cpu_2proc.yaml: two ranks, gloo all-reduce, one saved model."""
    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS * 2)
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--config_file",
        str(accelerate_config("cpu_2proc")),
        "--main_process_port",
        "0",
        "-m",
        "toolformer.cli.main",
        "finetune",
        "--data",
        str(data),
        "--output",
        str(out),
        "--model",
        tiny_dir,
        "--max-steps",
        "3",
        "--eval-steps",
        "3",
        "--batch-size",
        "2",
        "--effective-batch-size",
        "8",
        "--max-seq-len",
        "32",
        "--eval-fraction",
        "0.25",
        "--lr",
        "3e-3",
        "--no-progress",
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(REPO))
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout[proc.stdout.index("{") :])
    assert report["global_step"] == 3
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    m = manifest["metrics"]
    assert (m["processes"], m["distributed_type"], m["backend"]) == (2, "MULTI_CPU", "gloo")
    assert m["gradient_accumulation_steps"] == 2  # 2 ranks x batch 2 x 2 = effective 8
    assert m["eval_loss_after"] < m["eval_loss_before"]
    assert (out / "model.safetensors").exists()


def test_training_args_reach_trainingarguments_by_name(tmp_path):
    """FinetuneConfig holds only its own fields: any TrainingArguments field passes through by
    name over the paper's defaults, the run's derived settings win, and a misspelt one is a
    user error with a hint."""
    from toolformer.finetune import training_arguments as _training_arguments

    cfg = FinetuneConfig(
        data="x",
        output_dir=str(tmp_path),
        training_args={
            "optim": "adafactor",
            "adam_beta2": 0.95,
            "learning_rate": 3e-4,
            "max_steps": 50,
        },
    )
    args = _training_arguments(cfg, 50, 2, True, False)
    assert (args.optim, args.adam_beta2, args.learning_rate) == ("adafactor", 0.95, 3e-4)
    assert (args.seed, args.weight_decay, args.save_total_limit) == (42, 0.0, 2)  # paper defaults
    assert (args.gradient_accumulation_steps, args.max_steps, args.warmup_steps) == (2, 50, 5)
    assert cfg.seed == 42 and not hasattr(FinetuneConfig, "learning_rate")
    bad = FinetuneConfig(data="x", output_dir=str(tmp_path), training_args={"lerning_rate": 1.0})
    with pytest.raises(
        UserError,
        match="'lerning_rate' is not a TrainingArguments field; did you mean 'learning_rate'",
    ):
        _training_arguments(bad, 10, 1, False, False)


def test_cli_passes_any_training_argument_and_old_flag_spellings(monkeypatch):
    from click.testing import CliRunner

    from toolformer.cli.main import cli

    seen = {}
    monkeypatch.setattr(
        "toolformer.finetune.finetune", lambda config: seen.update(c=config) or 1 / 0
    )
    CliRunner().invoke(
        cli,
        [
            "finetune",
            "--data",
            "d",
            "--output",
            "o",
            "--training-arg",
            "optim=adafactor",
            "--training-arg",
            "adam_beta2=0.95",
            "--text-column",
            "body",
            "--max-seq-len",
            "48",
            "--learning-rate",
            "2e-4",
        ],
    )
    c = seen["c"]
    assert c.training_args == {"optim": "adafactor", "adam_beta2": 0.95, "learning_rate": 2e-4}
    assert (c.dataset_text_field, c.max_length) == ("body", 48)
    CliRunner().invoke(
        cli,
        [
            "finetune",
            "--data",
            "d",
            "--output",
            "o",
            "--dataset-text-field",
            "t",
            "--max-length",
            "40",
        ],
    )
    assert (seen["c"].dataset_text_field, seen["c"].max_length) == ("t", 40)


def test_config_from_a_flat_dict_takes_old_names_and_trainingarguments_fields():
    cfg = FinetuneConfig.from_dict(
        {
            "data": "d",
            "max_seq_len": 64,
            "text_column": "body",
            "batch_size": 2,
            "learning_rate": 2e-4,
            "optim": "adafactor",
            "training_args": {"learning_rate": 1.0, "seed": 3},
        }
    )
    assert (cfg.max_length, cfg.dataset_text_field, cfg.seed) == (64, "body", 3)
    assert cfg.training_args == {
        "per_device_train_batch_size": 2,
        "learning_rate": 2e-4,
        "optim": "adafactor",
        "seed": 3,
    }
    assert FinetuneConfig.from_dict(cfg.to_dict()) == FinetuneConfig.from_dict(
        {**cfg.to_dict(), "training_args": cfg.all_training_args}
    )


def test_a_fresh_lora_model_is_made_without_peft_s_future_warning(smol_tokenizer):
    """peft's PeftModel reads transformers' deprecated is_gradient_checkpointing when it is made
    (fresh LoRA as well as a loaded adapter): the user should not see that warning."""
    import warnings

    from toolformer.finetune import FinetuneConfig, _apply_lora

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        peft = _apply_lora(make_tiny_model(len(smol_tokenizer)), FinetuneConfig(lora=True))
    assert not [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]
    assert sum(p.numel() for p in peft.parameters() if p.requires_grad) > 0
