"""Run folders stay whole: one run per output in every command that writes one, no output that
replaces an input, paths recorded so that a run resumes from any directory, a checkpoint cut
short by a kill skipped, the LoRA initialisation seeded, and a bad selftrain config or an
emptied corpus one line before any stage runs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from test_finetune import CALC_TEXTS, _write_annotation_output
from test_finetune import _config as ft_config
from test_selftrain import (
    PROBLEMS,
    Interrupt,
    ScriptedGenerator,
    _write_jsonl,
)
from test_selftrain import (
    _config as st_config,
)

from toolformer.errors import EmptyInputError, UserError
from toolformer.eval.tasks import default_data_dir
from toolformer.output_lock import check_not_input, hold_output, lock_file

HELD = "another toolformer run holds"


@pytest.fixture()
def files(tmp_path):
    corpus = _write_jsonl(
        tmp_path / "gsm8k_train.jsonl", [{"question": q, "answer": a} for q, a in PROBLEMS]
    )
    evals = _write_jsonl(
        tmp_path / "evalset.jsonl",
        [{"question": "What is the capital of France?", "answer": "Paris"}],
    )
    return corpus, evals


def _one_line(exc) -> str:
    msg = str(exc.value)
    assert "\n" not in msg, msg
    return msg


# --------------------------------------------------------------------------- one run per output


def test_a_second_process_is_refused_while_the_first_holds_the_output(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\nfrom toolformer.output_lock import hold_output\n"
            f"with hold_output({str(out)!r}):\n    print('held', flush=True)\n    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=str(Path(__file__).resolve().parents[1]),
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError) as exc:
            with hold_output(out):
                pass
        msg = _one_line(exc)
        assert msg.startswith(f"{HELD} {out} (pid {holder.pid})") and msg.endswith(
            "pick another output"
        )
    finally:
        holder.kill()
        holder.wait()
    with hold_output(out):  # a killed holder holds nothing
        pass


def test_selftrain_refuses_an_output_another_run_holds(tmp_path, tiny_dir, files):
    corpus, evals = files
    out = tmp_path / "run"
    stages = []

    def hook(event, info):
        stages.append(info)
        raise Interrupt(info)

    with hold_output(out):
        with pytest.raises(UserError) as exc:
            from toolformer.selftrain import selftrain

            selftrain(st_config(tiny_dir, corpus, evals, out), hook=hook)
    assert HELD in _one_line(exc) and stages == []
    assert not (out / "run.json").exists()  # nothing of the holder's folder was touched


def test_finetune_refuses_an_output_another_run_holds(tmp_path, tiny_dir):
    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    out = tmp_path / "model"
    from toolformer.finetune import finetune

    with hold_output(out):
        # a model that does not exist: without the hold it fails on that instead
        with pytest.raises(UserError) as exc:
            finetune(ft_config(str(tmp_path / "no-model"), data, out))
    assert HELD in _one_line(exc)


def test_eval_refuses_an_output_another_run_holds(tmp_path):
    from toolformer.eval.harness import EvalConfig, evaluate

    qs = _write_jsonl(tmp_path / "qs.jsonl", [{"question": "What is 2+2?", "answer": 4}])
    out = tmp_path / "eval"
    with hold_output(out):
        with pytest.raises(UserError) as exc:
            evaluate(
                EvalConfig(
                    model=str(tmp_path / "no-model"),
                    tasks=f"jsonl:{qs}",
                    output_dir=str(out),
                    progress=False,
                )
            )
    assert HELD in _one_line(exc)


def _export(args):
    from click.testing import CliRunner

    from toolformer.cli.main import cli

    return CliRunner().invoke(cli, ["export", *args])


def test_export_refuses_an_output_file_another_run_holds(tmp_path):
    src = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    target = tmp_path / "out.jsonl"
    with hold_output(target, is_file=True):
        res = _export([str(src), "-o", str(target)])
    assert res.exit_code != 0 and HELD in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and not target.exists()
    assert lock_file(target, is_file=True).parent == tmp_path  # beside the file, not in it
    res = _export([str(src), "-o", str(target)])  # released: it runs
    assert res.exit_code == 0 and target.is_file(), res.output


def _main(args, capsys):
    """Exit code and stderr of ``toolformer ARGS`` (as the console script runs it)."""
    from toolformer.cli.main import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    return exc.value.code, capsys.readouterr().err.strip()


def test_generate_refuses_an_output_file_another_run_holds(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Q: 2+2?\nQ: 3+3?\n")
    target = tmp_path / "gen.jsonl"
    with hold_output(target, is_file=True):
        # a model that does not exist: without the hold it fails on that instead
        code, err = _main(
            [
                "generate",
                str(tmp_path / "no-model"),
                "--prompts-file",
                str(prompts),
                "-o",
                str(target),
            ],
            capsys,
        )
    assert code not in (0, None) and HELD in err and "\n" not in err, err


def test_generate_refuses_to_write_over_its_prompts_file(tmp_path, capsys):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("Q: 2+2?\nQ: 3+3?\n")
    code, err = _main(
        [
            "generate",
            str(tmp_path / "no-model"),
            "--prompts-file",
            str(prompts),
            "-o",
            str(prompts),
            "--overwrite",
        ],
        capsys,
    )
    assert code not in (0, None) and "would overwrite the input --prompts-file" in err, err
    assert "\n" not in err
    assert prompts.read_text() == "Q: 2+2?\nQ: 3+3?\n"  # --overwrite deleted it


def test_augment_refuses_a_shard_another_process_annotates(tmp_path):
    """augment's own per-shard lock (sharded runs share one output folder by design)."""
    from toolformer.data_aug import AugmentConfig, augment
    from toolformer.data_aug.writer import SHARDS_DIR, file_lock, shard_name

    docs = _write_jsonl(tmp_path / "docs.jsonl", [{"text": "It costs 3 dollars and 4 more."}])
    out = tmp_path / "aug"
    with file_lock(out / SHARDS_DIR / shard_name(0, 1) / ".lock"):
        with pytest.raises(UserError) as exc:
            augment(
                AugmentConfig(
                    input=str(docs), output=str(out), model="no-such-model", progress=False
                )
            )
    assert "another process" in _one_line(exc)


# --------------------------------------------------------------------------- output == input


def test_check_not_input_compares_resolved_paths(tmp_path):
    (tmp_path / "run").mkdir()
    data = tmp_path / "run" / "data.jsonl"
    data.write_text("{}\n")
    link = tmp_path / "link.jsonl"
    link.symlink_to(data)
    dotted = tmp_path / "x" / ".." / "run" / "data.jsonl"
    for output, written in [
        (data, None),
        (link, None),
        (dotted, None),
        (tmp_path / "run", ["data.jsonl"]),
        (tmp_path / "run", ["data.*"]),
    ]:
        with pytest.raises(UserError) as exc:
            check_not_input(output, {"SOURCE": str(data)}, written)
        assert "would overwrite the input SOURCE" in _one_line(exc)
    with pytest.raises(UserError):  # the output folder is the input folder itself
        check_not_input(tmp_path / "run", {"--data": str(tmp_path / "run")}, ["model.safetensors"])
    # an input in the folder that the command does not write, or elsewhere: fine
    check_not_input(tmp_path / "run", {"--input": str(data)}, ["stats.json", "round_*"])
    check_not_input(tmp_path / "other.jsonl", {"SOURCE": str(data)})
    check_not_input(tmp_path / "run", {"--input": "wikitext", "--dev": None}, ["*"])


def test_export_refuses_to_replace_the_data_it_reads(tmp_path):
    run = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    before = (run / "data.jsonl").read_bytes()
    for target in (run / "data.jsonl", tmp_path / "aug" / "." / "data.jsonl"):
        res = _export([str(run), "--format", "chat", "-o", str(target)])
        assert res.exit_code != 0 and "would overwrite the input SOURCE" in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1
        assert (run / "data.jsonl").read_bytes() == before


def test_augment_refuses_an_input_among_its_outputs(tmp_path):
    from toolformer.data_aug import AugmentConfig, augment

    run = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    before = (run / "data.jsonl").read_bytes()
    for given in (run / "data.jsonl", run):
        with pytest.raises(UserError) as exc:
            augment(
                AugmentConfig(
                    input=str(given), output=str(run), model="no-such-model", progress=False
                )
            )
        assert "would overwrite the input AugmentConfig.input" in _one_line(exc)
    assert (run / "data.jsonl").read_bytes() == before


def test_finetune_refuses_an_output_that_holds_its_input(tmp_path, tiny_dir):
    from toolformer.finetune import finetune

    run = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    missing = str(tmp_path / "no-model")  # without the check it fails on the model instead
    cases = [
        dict(data=run, out=run),  # model files written into the data folder
        dict(data=run, out=tmp_path / "m", init_adapter=str(tmp_path / "m" / "adapter")),
        dict(
            data=run,
            out=tmp_path / "m2",
            mix_ratio=0.5,
            mix_plain=str(tmp_path / "m2" / "checkpoints" / "p.jsonl"),
        ),
    ]
    for case in cases:
        data, out = case.pop("data"), case.pop("out")
        if case.get("init_adapter"):
            Path(case["init_adapter"]).mkdir(parents=True, exist_ok=True)
            (Path(case["init_adapter"]) / "adapter_config.json").write_text("{}")
        if case.get("mix_plain"):
            Path(case["mix_plain"]).parent.mkdir(parents=True, exist_ok=True)
            Path(case["mix_plain"]).write_text('{"text": "plain"}\n')
        with pytest.raises(UserError) as exc:
            finetune(ft_config(missing, data, out, **case))
        assert "would overwrite the input" in _one_line(exc), case


def test_eval_refuses_a_task_file_where_it_writes(tmp_path):
    from toolformer.eval.harness import EvalConfig, evaluate

    out = tmp_path / "eval"
    for name in ("samples/mine.jsonl", "results.json"):
        qs = out / name
        qs.parent.mkdir(parents=True, exist_ok=True)
        _write_jsonl(qs, [{"question": "What is 2+2?", "answer": 4}])
        with pytest.raises(UserError) as exc:
            evaluate(
                EvalConfig(
                    model=str(tmp_path / "no-model"),
                    tasks=f"jsonl:{qs}",
                    output_dir=str(out),
                    progress=False,
                )
            )
        assert "would overwrite the input EvalConfig.tasks" in _one_line(exc)
        assert json.loads(qs.read_text().splitlines()[0])["answer"] == 4


def test_selftrain_refuses_a_corpus_or_dev_set_inside_what_it_writes(tmp_path, tiny_dir, files):
    from toolformer.selftrain import selftrain

    corpus, evals = files
    out = tmp_path / "run"
    inside = out / "round_0" / "corpus" / "train.jsonl"
    inside.parent.mkdir(parents=True)
    shutil.copy(corpus, inside)
    dev = _write_jsonl(out / "report.json", [{"question": "What is 2+2?", "answer": 4}])

    def hook(event, info):
        raise Interrupt(info)

    for kw in (dict(corpus=str(inside)), dict(dev={"data": str(dev)})):
        cfg = st_config(tiny_dir, kw.pop("corpus", corpus), evals, out, **kw)
        with pytest.raises(UserError) as exc:
            selftrain(cfg, hook=hook)
        assert "would overwrite the input" in _one_line(exc)
    assert inside.read_bytes() == corpus.read_bytes()


# --------------------------------------------------------------------------- recorded paths


def _stopped_at_grow(tmp_path, tiny_dir, files, monkeypatch, output):
    """A run started in ``tmp_path/first`` as ``output`` and stopped at round 1's Grow:
    ``(first, other, data_dir)``, with ``other`` an empty second directory."""
    from toolformer.selftrain import selftrain

    corpus, evals = files
    first, other = tmp_path / "first", tmp_path / "other"
    first.mkdir()
    other.mkdir()
    data_dir = str(Path(default_data_dir()).resolve())  # the default is relative to the cwd
    monkeypatch.chdir(first)

    def stop_at_grow(event, info):
        if event == "stage" and (info["round"], info["stage"]) == (1, "grow"):
            raise Interrupt(info)

    with pytest.raises(Interrupt):
        selftrain(
            st_config(tiny_dir, corpus, evals, output, max_rounds=1, data={"data_dir": data_dir}),
            hook=stop_at_grow,
            generator_factory=ScriptedGenerator,
        )
    return first, other, data_dir


def test_a_run_resumes_from_another_directory(tmp_path, tiny_dir, files, monkeypatch):
    from toolformer.models import weight_files
    from toolformer.selftrain import selftrain

    corpus, evals = files
    first, other, data_dir = _stopped_at_grow(tmp_path, tiny_dir, files, monkeypatch, "runR")
    monkeypatch.chdir(other)  # the same run folder, named from elsewhere
    result = selftrain(
        st_config(
            tiny_dir, corpus, evals, "../first/runR", max_rounds=1, data={"data_dir": data_dir}
        ),
        generator_factory=ScriptedGenerator,
    )
    assert [r["round"] for r in result.rounds] == ["base", 0, 1]
    grow = json.loads((first / "runR" / "round_1" / "state.json").read_text())["stages"]["grow"]
    assert grow["policy"] == "round_0/model_0" and grow["samples"] > 0
    state = json.loads((first / "runR" / "round_0" / "state.json").read_text())
    ft = state["stages"]["finetune_0"]  # recorded relative to the run folder
    assert (ft["model"], ft["adapter"]) == ("round_0/model_0", "round_0/model_0/adapter")
    # the report's paths hold from any directory
    report = json.loads((first / "runR" / "report.json").read_text())
    assert Path(report["output"]).is_absolute() and Path(report["best_model"]).exists()
    for row in report["rounds"][1:]:
        assert Path(row["model"]).is_absolute() and Path(row["model"]).exists()
    latest = first / "runR" / "round_1" / "model_0"
    assert weight_files(latest)  # the latest round's merged weights are kept


def test_a_run_recorded_with_working_directory_paths_still_resumes(
    tmp_path, tiny_dir, files, monkeypatch
):
    """Runs recorded before paths were run-folder-relative: from their first directory, and
    from another one (their --output, recorded in run.json, is cut off)."""
    from toolformer.selftrain import selftrain

    corpus, evals = files
    first, other, data_dir = _stopped_at_grow(tmp_path, tiny_dir, files, monkeypatch, "runs/old")
    path = first / "runs" / "old" / "round_0" / "state.json"
    state = json.loads(path.read_text())
    state["stages"]["finetune_0"].update(
        model="runs/old/round_0/model_0", adapter="runs/old/round_0/model_0/adapter"
    )
    path.write_text(json.dumps(state))
    backup = tmp_path / "backup"
    shutil.copytree(first / "runs" / "old", backup)
    result = selftrain(
        st_config(tiny_dir, corpus, evals, "runs/old", max_rounds=1, data={"data_dir": data_dir}),
        generator_factory=ScriptedGenerator,
    )
    assert [r["round"] for r in result.rounds] == ["base", 0, 1]
    shutil.rmtree(first / "runs" / "old")
    shutil.copytree(backup, first / "runs" / "old")
    monkeypatch.chdir(other)
    result = selftrain(
        st_config(
            tiny_dir,
            corpus,
            evals,
            str(first / "runs" / "old"),
            max_rounds=1,
            data={"data_dir": data_dir},
        ),
        generator_factory=ScriptedGenerator,
    )
    assert [r["round"] for r in result.rounds] == ["base", 0, 1]


# --------------------------------------------------------------------------- checkpoints


def _checkpoints(out: Path):
    return sorted(
        (out / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1])
    )


def test_an_incomplete_checkpoint_is_skipped_on_resume(tmp_path, tiny_dir, capsys):
    from toolformer.finetune import finetune, latest_checkpoint

    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS)
    out = tmp_path / "m"
    finetune(
        ft_config(
            tiny_dir, data, out, max_steps=4, eval_steps=2, save_total_limit=3, eval_fraction=0.0
        )
    )
    two, four = [p for p in _checkpoints(out) if p.name in ("checkpoint-2", "checkpoint-4")]
    assert latest_checkpoint(str(out)) == str(four)
    # what a kill while saving leaves: each of these made every resume fail with a traceback
    breaks = {
        "trainer_state.json": lambda p: (p / "trainer_state.json").unlink(),
        "truncated state": lambda p: (p / "trainer_state.json").write_text('{"global_st'),
        "weights": lambda p: [f.unlink() for f in p.glob("*.safetensors")],
        "truncated weights": lambda p: [
            f.write_bytes(f.read_bytes()[: f.stat().st_size // 2]) for f in p.glob("*.safetensors")
        ],
        "optimizer": lambda p: (p / "optimizer.pt").unlink(),
    }
    saved = tmp_path / "saved"
    shutil.copytree(four, saved)
    for name, damage in breaks.items():
        shutil.rmtree(four)
        shutil.copytree(saved, four)
        damage(four)
        assert latest_checkpoint(str(out)) == str(two), name
        err = capsys.readouterr().err
        assert "skipping the incomplete checkpoint" in err and "checkpoint-4" in err, name
    resumed = finetune(
        ft_config(
            tiny_dir,
            data,
            out,
            max_steps=4,
            eval_steps=2,
            save_total_limit=3,
            eval_fraction=0.0,
            resume_from_checkpoint="latest",
        )
    )
    assert resumed.metrics["start_step"] == 2 and resumed.metrics["global_step"] == 4
    # no complete checkpoint at all: one line, and an explicit broken one too
    for p in _checkpoints(out):
        (p / "trainer_state.json").unlink()
    assert latest_checkpoint(str(out)) is None
    with pytest.raises(UserError) as exc:
        finetune(ft_config(tiny_dir, data, out, resume_from_checkpoint="latest"))
    assert "no checkpoint to resume" in _one_line(exc)
    with pytest.raises(UserError) as exc:
        finetune(ft_config(tiny_dir, data, out, resume_from_checkpoint=str(two)))
    assert "no trainer_state.json" in _one_line(exc)


def test_selftrain_resumes_past_a_checkpoint_cut_short(tmp_path, tiny_dir, files):
    from toolformer.selftrain import selftrain

    corpus, evals = files
    out = tmp_path / "run"
    cfg = st_config(tiny_dir, corpus, evals, out, max_rounds=0)

    def stop_at_finetune(event, info):
        if event == "stage" and info["stage"] == "finetune_0":
            raise Interrupt(info)

    with pytest.raises(Interrupt):
        selftrain(cfg, hook=stop_at_finetune, generator_factory=ScriptedGenerator)
    # a kill while the Trainer saved checkpoint-1: the weights are there, nothing else
    ckpt = out / "round_0" / "model_0" / "checkpoints" / "checkpoint-1"
    ckpt.mkdir(parents=True)
    (ckpt / "adapter_model.safetensors").write_bytes(b"\x08" + b"\0" * 7 + b'{"a"')
    result = selftrain(cfg, generator_factory=ScriptedGenerator)
    ft = json.loads((out / "round_0" / "state.json").read_text())["stages"]["finetune_0"]
    assert ft["global_step"] == 2 and [r["round"] for r in result.rounds] == ["base", 0]


# --------------------------------------------------------------------------- LoRA seed


def test_a_fresh_lora_is_the_same_for_the_same_seed(tiny_dir):
    from toolformer.finetune import FinetuneConfig, _apply_lora
    from toolformer.models import load_model

    def build(noise: int):
        model, _ = load_model(tiny_dir)
        torch.manual_seed(noise)  # whatever ran before (another stage, another process)
        torch.rand(noise)
        cfg = FinetuneConfig(lora=True, lora_r=4, lora_alpha=8, training_args={"seed": 7})
        peft = _apply_lora(model, cfg)
        return {k: v.detach().clone() for k, v in peft.state_dict().items() if "lora_" in k}

    a, b = build(1), build(123)
    assert a and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    other, _ = load_model(tiny_dir)
    from toolformer.finetune import FinetuneConfig as FC

    c = {
        k: v
        for k, v in _apply_lora(
            other, FC(lora=True, lora_r=4, lora_alpha=8, training_args={"seed": 8})
        )
        .state_dict()
        .items()
        if "lora_A" in k
    }
    assert any(not torch.equal(c[k], a[k]) for k in c)  # the seed does matter


# --------------------------------------------------------------------------- bad settings


def test_a_corpus_the_guard_empties_is_one_line_before_the_baseline(tmp_path, tiny_dir, files):
    from toolformer.selftrain import selftrain

    corpus, _ = files
    evals = _write_jsonl(
        tmp_path / "same.jsonl", [{"question": q, "answer": 1} for q, _ in PROBLEMS]
    )
    dev = _write_jsonl(tmp_path / "dev.jsonl", [{"question": "What is 2 plus 2?", "answer": 4}])
    seen = []
    cfg = st_config(
        tiny_dir, corpus, evals, tmp_path / "run", dev={"data": str(dev)}, round0_docs=0
    )
    with pytest.raises(EmptyInputError) as exc:
        selftrain(
            cfg, hook=lambda e, i: seen.append(i["stage"]), generator_factory=ScriptedGenerator
        )
    msg = _one_line(exc)
    assert "contamination guard dropped all 6" in msg and seen == ["corpus"]
    assert not (tmp_path / "run" / "round_0" / "baseline").exists()


@pytest.mark.parametrize(
    "content, expected",
    [
        ("[1, 2]", "must hold a JSON object"),
        ('"max_rounds"', "must hold a JSON object"),
        ('{"max_rounds": "3"}', "max_rounds must be int, got str '3'"),
        ('{"tools": "Calculator"}', "tools must be a list of str"),
        ('{"seed": 1.5}', "seed must be int"),
        ('{"improve": {"thresholds": ["high"]}}', "improve.thresholds must be a list of number"),
        (
            '{"grow": {"generation": {"temperature": "warm"}}}',
            "grow.generation.temperature must be number",
        ),
        ('{"grow": 3}', "grow must be an object"),
        ('{"grow": {"samples": 3}}', "grow: unknown field(s) ['samples']"),
        (
            '{"dev": {"generation": {"temprature": 0.5}}}',
            "dev.generation: unknown GenerationConfig field",
        ),
        ('{"tool_options": []}', "tool_options must be an object"),
        ('{"finetune": [1]}', "finetune must be an object"),
        ('{"finetune": {"max_length": "128"}}', "finetune.max_length must be int"),
        ('{"annotator": {"max_length": "x"}}', "annotator.max_length must be int"),
        ('{"grow": {"corpus_sizes": [10, "20"]}}', "grow.corpus_sizes must be a list of int"),
        # TrainingArguments fields: checked up front too (they failed when round 0's training began)
        ('{"finetune": {"max_steps": "100"}}', "training_args: max_steps must be a number"),
        ('{"finetune": {"learning_rate": "fast"}}', "training_args: learning_rate must be number"),
        (
            '{"finetune": {"lerning_rate": 0.001}}',
            "'lerning_rate' is not a TrainingArguments field",
        ),
    ],
)
def test_a_config_file_of_the_wrong_shape_is_one_line(tmp_path, capsys, content, expected):
    from toolformer.cli.main import main

    path = tmp_path / "cfg.json"
    path.write_text(content)
    with pytest.raises(SystemExit) as exc:
        main(["selftrain", "--config", str(path), "--output", str(tmp_path / "r")])
    assert exc.value.code not in (0, None)
    err = capsys.readouterr().err.strip()
    assert err.startswith("Error: ") and "\n" not in err and expected in err, err
    assert not (tmp_path / "r").exists()  # before anything ran


def test_an_adapter_names_its_local_base_so_it_loads_from_another_directory(
    tmp_path, tiny_dir, monkeypatch
):
    """A relative --model (a local folder) was recorded as given in the manifests and in peft's
    adapter_config.json: the adapter then loaded from its first directory only."""
    from toolformer.finetune import finetune
    from toolformer.models import load_model

    data = _write_annotation_output(tmp_path / "aug", CALC_TEXTS, with_dataset=False)
    monkeypatch.chdir(Path(tiny_dir).parent)
    finetune(
        ft_config(
            Path(tiny_dir).name,
            data,
            tmp_path / "m",
            lora=True,
            lora_r=4,
            lora_alpha=8,
            max_steps=1,
            eval_fraction=0.0,
        )
    )
    monkeypatch.chdir(tmp_path)
    manifest = json.loads((tmp_path / "m" / "toolformer.json").read_text())
    assert manifest["base_model"] == manifest["base_model_path"] == str(Path(tiny_dir).resolve())
    peft_cfg = json.loads((tmp_path / "m" / "adapter" / "adapter_config.json").read_text())
    assert Path(peft_cfg["base_model_name_or_path"]).is_absolute()
    model, _ = load_model(str(tmp_path / "m" / "adapter"))
    assert model is not None
