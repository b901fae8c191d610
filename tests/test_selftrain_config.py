"""The grouped self-training settings against the flat ones of before: config files and
``from_dict`` with the old keys (moved, one warning), and run folders recorded with the flat
fingerprint (they resume with the same options; a change is named by its old key)."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import pytest
from test_selftrain import Interrupt, files  # noqa: F401  (files: a fixture)

from toolformer.cli.selftrain_cmd import build_config
from toolformer.cli.selftrain_cmd import selftrain as selftrain_command
from toolformer.errors import UserError
from toolformer.selftrain import SelfTrainConfig, selftrain
from toolformer.selftrain.config import GrowConfig, grow_generation

# What `fingerprint()` returned before the settings were grouped (copied once from that code's
# output) for the options of _OPTIONS; MODEL, CORPUS and EVALS are filled in by the test.
FLAT_FINGERPRINT = {
    "accumulate": False,
    "annotator": {
        "abandon_samples": True,
        "batch_size": 256,
        "calc_min_numbers": 3,
        "calc_random_keep": 0.01,
        "calc_window_tokens": 100,
        "constrained": True,
        "k": None,
        "m": None,
        "max_batch_tokens": 16384,
        "max_call_tokens": 40,
        "max_length": 256,
        "min_position": 0,
        "mt_min_foreign_tokens": 10,
        "prefilter": False,
        "record_candidates": False,
        "repeat_window": 10,
        "seed": 0,
        "settings": {},
        "shared_prefix_attention": True,
        "start_token": None,
        "tau_f": None,
        "tau_s": None,
        "temperature": 1.0,
        "weight_horizon": 5,
    },
    "annotator_factory": None,
    "answer_only": True,
    "call_top_k": 10,
    "contamination_threshold": 0.5,
    "continue_adapter": True,
    "corpus": "CORPUS",
    "data_dir": None,
    "demonstrations": "calculator",
    "demonstrations_rounds": 1,
    "dev_data": None,
    "dev_max_problem_steps": 1,
    "dev_size": 2,
    "doc_template": "Q: {question}\nA: {answer}",
    "dtype": "fp32",
    "eval_max_new_tokens": None,
    "eval_options": {"call_top_k": 3},
    "eval_sets": ["jsonl:EVALS"],
    "filter": "answer",
    "filter_options": {},
    "finetune": {
        "data": "",
        "dataset_text_field": "text",
        "effective_batch_size": 8,
        "eval_data": None,
        "eval_fraction": 0.0,
        "init_adapter": None,
        "lora": True,
        "lora_alpha": 32,
        "lora_dropout": 0.05,
        "lora_r": 16,
        "lora_target_modules": "all-linear",
        "max_eval_docs": 2000,
        "max_length": 128,
        "mix_plain": None,
        "mix_ratio": 0.0,
        "model": "smollm2-135m",
        "output_dir": "toolformer-finetuned",
        "packing": True,
        "progress": True,
        "resume_from_checkpoint": None,
        "training_args": {
            "bf16": None,
            "dataloader_num_workers": 0,
            "eval_steps": 20,
            "gradient_accumulation_steps": None,
            "gradient_checkpointing": False,
            "learning_rate": 0.0002,
            "logging_steps": 10,
            "max_grad_norm": 1.0,
            "max_steps": 1,
            "num_train_epochs": 12.0,
            "per_device_train_batch_size": 8,
            "save_steps": 20,
            "save_total_limit": 1,
            "seed": 42,
            "warmup_ratio": 0.1,
            "weight_decay": 0.0,
        },
    },
    "forced_call_samples": None,
    "grow_options": {"top_k": 5},
    "improve_steps": 1,
    "init_adapter": None,
    "max_calls": 2,
    "max_kept_per_kind": None,
    "max_kept_per_prompt": 2,
    "max_new_tokens": 8,
    "max_problem_steps": 1,
    "mix": None,
    "model": "MODEL",
    "no_call_samples": None,
    "perplexity_sets": ["wikitext2"],
    "plain_ratio": 1.0,
    "prompt_template": "Q: {question}\nA:",
    "rotate_corpus": True,
    "round0_docs": 0,
    "samples_per_prompt": 2,
    "seed": 0,
    "temperature": 0.5,
    "thresholds": None,
    "tool_options": {"Calculator": {"numbers_from_text": True}},
    "tools": ["Calculator"],
    "top_p": 0.95,
    "wiki_docs": 0,
}

_OPTIONS = [
    "--round0-docs",
    "0",
    "--max-rounds",
    "1",
    "--samples",
    "2",
    "--temperature",
    "0.5",
    "--max-new-tokens",
    "8",
    "--max-calls",
    "2",
    "--grow-option",
    "top_k=5",
    "--eval-option",
    "call_top_k=3",
    "--dev-size",
    "2",
    "--finetune-option",
    "max_steps=1",
    "--no-progress",
]


def _cli(out: Path, model: str, corpus: Path, evals: Path, *extra: str) -> SelfTrainConfig:
    args = [
        "--output",
        str(out),
        "--model",
        model,
        "--corpus",
        str(corpus),
        "--eval-sets",
        f"jsonl:{evals}",
        *_OPTIONS,
        *extra,
    ]
    return build_config(dict(selftrain_command.make_context("selftrain", args).params))


def _stop(event, info):
    raise Interrupt(info)


def test_a_run_folder_recorded_flat_resumes_with_the_same_options(tmp_path, tiny_dir, files):  # noqa: F811
    corpus, evals = files
    out = tmp_path / "run"
    recorded = {
        **FLAT_FINGERPRINT,
        "model": tiny_dir,
        "corpus": str(corpus),
        "eval_sets": [f"jsonl:{evals}"],
    }
    (out / "round_0").mkdir(parents=True)
    (out / "run.json").write_text(
        json.dumps({"fingerprint": recorded, "config": {"output": str(out)}})
    )
    (out / "round_0" / "state.json").write_text(json.dumps({"fingerprint": recorded, "stages": {}}))
    same = _cli(out, tiny_dir, corpus, evals)
    assert same.changed_since(recorded) == []
    with pytest.raises(Interrupt) as stopped:  # accepted: the first stage starts
        selftrain(same, hook=_stop)
    assert stopped.value.args[0] == {"round": 0, "stage": "corpus"}
    changes = [
        (["--samples", "3"], "samples_per_prompt"),
        (["--temperature", "0.9"], "temperature"),
        (["--max-calls", "1"], "max_calls"),
        (["--eval-option", "call_top_k=4"], "eval_options"),
        (["--grow-option", "top_k=6"], "grow_options"),
        (["--dev-size", "3"], "dev_size"),
    ]
    for extra, key in changes:
        with pytest.raises(UserError) as exc:
            selftrain(_cli(out, tiny_dir, corpus, evals, *extra), hook=_stop)
        assert f"(changed: {key})" in str(exc.value) and "\n" not in str(exc.value)
    # a round folder alone is checked the same way
    (out / "run.json").unlink()
    with pytest.raises(
        UserError,
        match=r"round_0 was made with another config "
        r"\(changed: temperature\)",
    ):
        selftrain(_cli(out, tiny_dir, corpus, evals, "--temperature", "0.9"), hook=_stop)


def test_a_recorded_field_given_twice_is_the_same_setting():
    """Before the grouping ``grow_options`` could name a field with a key of its own; the
    recorded run decoded with the option's value, as the nested config does."""
    recorded = SelfTrainConfig().fingerprint()
    recorded["grow_options"] = {"max_calls": 2, "batch_size": 4}
    cfg = SelfTrainConfig(grow=GrowConfig(generation=replace(grow_generation(), max_calls=2)))
    # Grow made 2 calls, the dev eval 1: in today's spelling max_calls 2, eval_options max_calls 1
    assert cfg.changed_since(recorded) == [] and SelfTrainConfig().changed_since(recorded) == [
        "eval_options",
        "max_calls",
    ]


def test_flat_keys_move_to_their_places_with_one_warning():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        cfg = SelfTrainConfig.from_dict(
            {
                "temperature": 0.5,
                "dev_size": 50,
                "max_calls": 2,
                "eval_options": {"call_top_k": 3},
                "seed": 4,
                "calibrate": True,
                "improve_steps": 2,
            }
        )
    assert len(caught) == 1 and issubclass(caught[0].category, FutureWarning)
    assert "temperature -> grow.generation.temperature" in str(caught[0].message)
    assert "\n" not in str(caught[0].message)
    assert cfg.grow.generation.temperature == 0.5 and cfg.dev.size == 50 and cfg.seed == 4
    assert cfg.grow.generation.max_calls == cfg.dev.generation.max_calls == 2
    assert cfg.dev.generation.call_top_k == 3 and cfg.grow.generation.call_top_k == 10
    assert cfg.calibration.enabled is True and cfg.improve.steps == 2
    assert cfg.grow.generation.do_sample and cfg.grow.generation.top_p == 0.95  # group defaults
    nested = SelfTrainConfig.from_dict(
        {
            "grow": {"generation": {"temperature": 0.5, "max_calls": 2}},
            "dev": {"size": 50, "generation": {"max_calls": 2, "call_top_k": 3}},
            "seed": 4,
            "calibration": {"enabled": True},
            "improve": {"steps": 2},
        }
    )
    assert nested == cfg and nested.fingerprint() == cfg.fingerprint()
    # the flat dict run folders record reads back to the same settings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        again = SelfTrainConfig.from_dict(cfg.flat_dict())
    assert again.fingerprint() == cfg.fingerprint()
    with (
        pytest.raises(UserError, match="grow_options: unknown GenerationConfig field"),
        pytest.warns(FutureWarning),
    ):
        SelfTrainConfig.from_dict({"grow_options": {"temprature": 0.5}})
    with pytest.raises(UserError, match=r"unknown self-training setting\(s\) \['temprature'\]"):
        SelfTrainConfig.from_dict({"temprature": 0.5})


def test_a_flat_config_file_loads_with_a_one_line_warning(tmp_path, capsys):
    path = tmp_path / "old.json"
    path.write_text(
        json.dumps(
            {
                "dev_size": 7,
                "temperature": 0.4,
                "grow_options": {"top_k": 3},
                "filter_options": {"placement": "prefix"},
                "filter": "loss",
                "max_rounds": 2,
            }
        )
    )
    cfg = build_config(
        {"config_file": str(path), "temperature": 0.6, "filter_option": ("horizon=3",)}
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"Warning: --config {path}: flat self-training settings are deprecated")
    assert "\n" not in err and "dev_size -> dev.size" in err
    assert cfg.dev.size == 7 and cfg.grow.generation.temperature == 0.6  # the option wins
    assert cfg.grow.generation.top_k == 3 and cfg.max_rounds == 2
    assert cfg.improve.filter_options == {"placement": "prefix", "horizon": 3}
    path.write_text(json.dumps({"dev": {"size": 7}, "grow": {"generation": {"top_k": 3}}}))
    cfg = build_config({"config_file": str(path), "max_calls": 3})
    assert capsys.readouterr().err == "" and cfg.dev.size == 7 and cfg.grow.generation.top_k == 3
    assert cfg.grow.generation.max_calls == cfg.dev.generation.max_calls == 3
    # a run's run.json "config" (nested) is a config file of the same run
    path.write_text(json.dumps(cfg.to_dict()))
    assert build_config({"config_file": str(path)}).fingerprint() == cfg.fingerprint()


def test_help_shows_each_fields_default_while_the_option_stays_unset(tmp_path):
    """--help writes the config's defaults; an option not given stays None, so a --config file
    still decides (the file's 0.7 wins over the default 0.5 shown)."""
    from click.testing import CliRunner

    out = CliRunner().invoke(selftrain_command, ["--help"], terminal_width=200).output
    assert "[default: 0.5]" in out.split("--climb-at", 1)[1].split("--start-level")[0]
    assert "[default: 0.25]" in out.split("--review-fraction", 1)[1].split("\n  --")[0]
    assert "[default: answer-only]" in out.split("--answer-only / --whole-output", 1)[1]
    assert "(0.5)" not in out  # click's parentheses for a described default
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"grow": {"climb_at": 0.7}}))
    assert build_config({"config_file": str(path), "climb_at": None}).grow.climb_at == 0.7
