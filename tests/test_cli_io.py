"""Bad paths, failed runs and empty inputs through the real entry point (``main``): one line on
stderr, a non-zero exit, and nothing left behind that blocks the corrected command
(for every command that takes such a path or input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolformer.cli.main import main as cli_main

FACTORY = f"{Path(__file__).resolve().parent / 'test_pipeline.py'}:fake_factory"
UNWRITABLE = "/sys/toolformer-test"  # mkdir fails with EPERM there, even for root


def run_main(argv, capsys):
    """``(exit code, stderr)`` of ``toolformer ARGV``."""
    with pytest.raises(SystemExit) as exit_:
        cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exit_.value.code, captured.err + captured.out


def one_line_error(code, text, *needles):
    assert code not in (0, None), text
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], text


def _corpus(tmp_path: Path, rows) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def _svamp(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "svamp").mkdir(parents=True)
    (root / "svamp/SVAMP.json").write_text(
        json.dumps(
            [{"ID": "s0", "Body": "Tom has 3 apples.", "Question": "How many?", "Answer": 3.0}]
        )
    )
    return root


# --------------------------------------------------------------------------- bad paths


def _commands(tmp_path: Path, out: str):
    """Every command that writes to a folder or file the user names, writing to ``out``."""
    corpus = _corpus(tmp_path, [{"text": "It weighs 3 kg."}])
    return {
        "augment": ["augment", "-i", corpus, "-o", out, "--annotator-factory", FACTORY, "-q"],
        "eval": [
            "eval",
            "--tasks",
            "svamp",
            "--data-dir",
            _svamp(tmp_path),
            "-o",
            out,
            "--model",
            "no-such-model-folder/x/y",
        ],
        "finetune": ["finetune", "--data", corpus, "--output", out, "--model", "./no/such/model"],
        "generate": ["generate", "./no/such/model", "hi", "-o", f"{out}/gen.jsonl"],
    }


@pytest.mark.parametrize("command", ["augment", "eval", "finetune", "generate"])
def test_output_that_is_a_file_is_one_line(tmp_path, capsys, command):
    taken = tmp_path / "f"
    taken.write_text("not a folder")
    code, text = run_main(_commands(tmp_path, str(taken))[command], capsys)
    one_line_error(code, text, "cannot use", str(taken), "is a file")
    assert taken.read_text() == "not a folder"


@pytest.mark.parametrize("command", ["augment", "eval", "finetune", "generate"])
def test_output_without_permission_is_one_line(tmp_path, capsys, command):
    code, text = run_main(_commands(tmp_path, UNWRITABLE)[command], capsys)
    one_line_error(code, text, "cannot use", UNWRITABLE)


def test_eval_chart_path_is_checked_before_the_run(tmp_path, capsys):
    taken = tmp_path / "f"
    taken.write_text("x")
    code, text = run_main(
        [
            "eval",
            "--tasks",
            "svamp",
            "--data-dir",
            _svamp(tmp_path),
            "-o",
            tmp_path / "o",
            "--chart",
            taken / "c.png",
            "--model",
            "./no/such/model",
        ],
        capsys,
    )
    one_line_error(code, text, "cannot use", "is a file")


def test_any_os_error_on_a_path_is_one_line(tmp_path, capsys, monkeypatch):
    """An OSError nobody anticipated (disk full while writing a chunk) still gives one line."""
    import errno

    from toolformer.data_aug import writer

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "o" / "chunk"))

    monkeypatch.setattr(writer, "atomic_write_text", full)
    corpus = _corpus(tmp_path, [{"text": "It weighs 3 kg."}])
    code, text = run_main(
        ["augment", "-i", corpus, "-o", tmp_path / "o", "--annotator-factory", FACTORY, "-q"],
        capsys,
    )
    one_line_error(code, text, "no space left on device")


# --------------------------------------------------------------------------- failed runs


def test_failed_augment_does_not_lock_its_output(tmp_path, capsys):
    out = tmp_path / "o"
    code, text = run_main(
        ["augment", "-i", tmp_path / "nope.jsonl", "-o", out, "--annotator-factory", FACTORY, "-q"],
        capsys,
    )
    one_line_error(code, text, "does not exist")
    corpus = _corpus(tmp_path, [{"text": "It weighs 3 kg."}, {"text": "It costs 4 dollars."}])
    code, text = run_main(
        ["augment", "-i", corpus, "-o", out, "--annotator-factory", FACTORY, "-q"], capsys
    )
    assert code == 0, text
    assert len((out / "data.jsonl").read_text().splitlines()) >= 0
    assert json.loads((out / "stats.json").read_text())["documents"]["processed"] == 2


def test_augment_run_that_failed_on_the_model_does_not_lock_its_output(tmp_path, capsys):
    out = tmp_path / "o"
    corpus = _corpus(tmp_path, [{"text": "It weighs 3 kg."}])
    code, text = run_main(
        [
            "augment",
            "-i",
            corpus,
            "-o",
            out,
            "--model",
            "./no/such/model",
            "--tools",
            "Calculator",
            "-q",
        ],
        capsys,
    )
    one_line_error(code, text, "no/such/model")
    code, text = run_main(
        ["augment", "-i", corpus, "-o", out, "--annotator-factory", FACTORY, "-q"], capsys
    )
    assert code == 0, text


def test_failed_eval_does_not_lock_its_output(tmp_path, capsys):
    data, out = _svamp(tmp_path), tmp_path / "o"
    code, text = run_main(
        ["eval", "--tasks", "svamp", "--data-dir", data, "-o", out, "--model", "./no/such/model"],
        capsys,
    )
    one_line_error(code, text, "no/such/model")
    from toolformer.eval.harness import EvalConfig, evaluate
    from toolformer.generation import GenerationOutput

    class Scripted:
        def __init__(self, *args):
            pass

        def generate(self, prompts, config=None):
            return [
                GenerationOutput(prompt=p, text=" 3", calls=[], num_tokens=1, finish_reason="eos")
                for p in prompts
            ]

    config = EvalConfig(
        model="other",
        tasks="svamp",
        data_dir=str(data),
        output_dir=str(out),
        progress=False,
        tools_enabled=False,
    )
    result = evaluate(config, model=object(), tokenizer=object(), generator_factory=Scripted)
    assert result["tasks"]["svamp"]["n"] == 1


# --------------------------------------------------------------------------- empty inputs


@pytest.mark.parametrize("rows", [[], [{"text": "  "}, {"text": ""}]])
def test_augment_empty_input_is_an_error(tmp_path, capsys, rows):
    corpus = _corpus(tmp_path, rows)
    code, text = run_main(
        ["augment", "-i", corpus, "-o", tmp_path / "o", "--annotator-factory", FACTORY, "-q"],
        capsys,
    )
    one_line_error(code, text, "holds no documents")
    assert not (tmp_path / "o" / "data.jsonl").exists()


def test_eval_task_with_no_examples_is_an_error(tmp_path, capsys):
    data = tmp_path / "data"
    (data / "svamp").mkdir(parents=True)
    (data / "svamp/SVAMP.json").write_text("[]")
    code, text = run_main(
        ["eval", "--tasks", "svamp", "--data-dir", data, "-o", tmp_path / "o"], capsys
    )
    one_line_error(code, text, "holds no examples")


def test_finetune_empty_data_is_an_error(tmp_path, capsys):
    corpus = _corpus(tmp_path, [{"text": ""}])
    code, text = run_main(["finetune", "--data", corpus, "--output", tmp_path / "o"], capsys)
    one_line_error(code, text, "holds no")


# --------------------------------------------------------------------------- broken files


class _Payload:
    """Unpickling this runs ``open(marker, "w")``: a planted file that executes code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory, smol_tokenizer):
    """A good tiny checkpoint, one with a truncated model.safetensors, one with pickle weights."""
    import pickle

    from tests.conftest import make_tiny_model

    root = tmp_path_factory.mktemp("ckpts")
    good = root / "good"
    make_tiny_model(len(smol_tokenizer), layers=1, hidden=16).save_pretrained(good)
    smol_tokenizer.save_pretrained(good)
    truncated = root / "truncated"
    make_tiny_model(len(smol_tokenizer), layers=1, hidden=16).save_pretrained(truncated)
    smol_tokenizer.save_pretrained(truncated)
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 3])
    planted = root / "planted"
    planted.mkdir()
    (planted / "config.json").write_text((good / "config.json").read_text())
    smol_tokenizer.save_pretrained(planted)
    marker = root / "payload-ran"
    (planted / "pytorch_model.bin").write_bytes(pickle.dumps(_Payload(str(marker))))
    return {"good": good, "truncated": truncated, "planted": planted, "marker": marker}


def _model_commands(tmp_path, model):
    corpus = _corpus(tmp_path, [{"text": "It weighs 3 kg."}])
    return {
        "generate": ["generate", model, "hi", "--no-tools", "--max-new-tokens", "2"],
        "eval": [
            "eval",
            "--tasks",
            "svamp",
            "--data-dir",
            _svamp(tmp_path),
            "-o",
            tmp_path / "e",
            "--model",
            model,
            "--no-tools",
            "-q",
        ],
        "augment": [
            "augment",
            "-i",
            corpus,
            "-o",
            tmp_path / "a",
            "--model",
            model,
            "--tools",
            "Calculator",
            "-q",
        ],
        "finetune": [
            "finetune",
            "--data",
            corpus,
            "--output",
            tmp_path / "f",
            "--model",
            model,
            "--no-progress",
            "--eval-fraction",
            "0",
            "--max-steps",
            "1",
        ],
    }


@pytest.mark.parametrize("command", ["generate", "eval", "augment", "finetune"])
def test_truncated_safetensors_is_one_line(tmp_path, capsys, checkpoints, command):
    code, text = run_main(_model_commands(tmp_path, checkpoints["truncated"])[command], capsys)
    one_line_error(code, text, f"could not load model {checkpoints['truncated']}")


@pytest.mark.parametrize("command", ["generate", "eval", "augment", "finetune"])
def test_pickle_weights_are_never_unpickled_unless_trusted(tmp_path, capsys, checkpoints, command):
    code, text = run_main(_model_commands(tmp_path, checkpoints["planted"])[command], capsys)
    one_line_error(
        code,
        text,
        f"could not load model {checkpoints['planted']}",
        "pytorch_model.bin",
        "--trust-pickle-weights",
    )
    assert not checkpoints["marker"].exists()


def test_trusted_pickle_weights_still_fail_in_one_line(tmp_path, capsys, checkpoints, monkeypatch):
    monkeypatch.delenv("TOOLFORMER_TRUST_PICKLE_WEIGHTS", raising=False)
    code, text = run_main(
        ["--trust-pickle-weights", *_model_commands(tmp_path, checkpoints["planted"])["generate"]],
        capsys,
    )
    monkeypatch.delenv("TOOLFORMER_TRUST_PICKLE_WEIGHTS", raising=False)
    one_line_error(code, text, f"could not load model {checkpoints['planted']}")
    assert not checkpoints["marker"].exists()  # transformers reads .bin with weights_only=True


def test_good_checkpoint_still_loads(tmp_path, capsys, checkpoints):
    code, text = run_main(_model_commands(tmp_path, checkpoints["good"])["generate"], capsys)
    assert code == 0, text


def test_disk_full_without_a_file_name_is_one_line(tmp_path, capsys, monkeypatch):
    """Writing generate's --output when the disk fills: the OSError names no file, still one
    line."""
    import errno

    from toolformer.cli import generate_cmd

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(generate_cmd, "build_generator", full)
    code, text = run_main(["generate", "some-model", "hi", "-o", tmp_path / "g.jsonl"], capsys)
    one_line_error(code, text, "No space left on device")


def test_prompts_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    prompts = tmp_path / "p.txt"
    prompts.write_bytes(b"fine\nLe caf\xe9\n")
    code, text = run_main(["generate", "some-model", "--prompts-file", prompts], capsys)
    one_line_error(code, text, "p.txt:2 is not valid UTF-8 (byte 0xe9")
