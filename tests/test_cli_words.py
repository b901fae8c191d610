"""One spelling per option across commands, the old spellings as hidden aliases that still
work (with a deprecation warning), and errors in the caller's words: an API caller reads the
config field, the command line reads the flag."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import typing
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolformer.cli.flags import COMMAND_FLAGS, FIELD_FLAGS, in_flags
from toolformer.cli.main import COMMANDS, cli
from toolformer.cli.main import main as cli_main
from toolformer.errors import UserError, fields_in
from toolformer.models.trust import TRUST_PICKLE_ENV
from toolformer.records import iter_records


def _eval_config(monkeypatch, argv):
    """``(EvalConfig, evaluate's keyword arguments, output)`` that ``toolformer eval ARGV``
    builds; nothing is evaluated."""
    seen = {}

    def fake_evaluate(config, **kwargs):
        seen.update(config=config, kwargs=kwargs)
        raise SystemExit(0)

    monkeypatch.setattr("toolformer.eval.harness.evaluate", fake_evaluate)
    result = CliRunner().invoke(cli, ["eval", *argv, "-o", "unused"])
    assert result.exit_code == 0, result.output
    return seen["config"], seen["kwargs"], result.output


def _generate_opts(monkeypatch, argv):
    """The options ``toolformer generate m hi ARGV`` hands to build_generator (no model loads)."""
    seen = {}

    def fake_build(model, opts):
        seen.update(opts)
        raise SystemExit(0)

    monkeypatch.setattr("toolformer.cli.generate_cmd.build_generator", fake_build)
    result = CliRunner().invoke(cli, ["generate", "m", "hi", *argv])
    assert result.exit_code == 0, result.output
    return seen, result.output


# --------------------------------------------------------------------------- eval's tools


@pytest.mark.parametrize(
    "argv, tools, enabled",
    [
        ([], None, True),
        (["--tools", "Calculator,QA"], ["Calculator", "QA"], True),
        (["--tools"], None, True),  # the old on-switch (the default): still accepted
        (["--tools", "--limit", "3"], None, True),
        (["--no-tools"], None, False),
    ],
)
def test_eval_tools_names_the_tools_and_no_tools_disables_them(monkeypatch, argv, tools, enabled):
    config, _, output = _eval_config(monkeypatch, argv)
    assert (config.tools, config.tools_enabled) == (tools, enabled)
    assert "deprecated" not in output


def test_eval_old_spellings_still_work_with_a_warning(monkeypatch):
    config, _, output = _eval_config(monkeypatch, ["--tool-names", "Calculator"])
    assert config.tools == ["Calculator"]
    assert "--tool-names is deprecated" in output and "use --tools" in output
    config, _, output = _eval_config(
        monkeypatch, ["--tool-option", "A.x=1", "--tool-options", "B.y=2"]
    )
    assert config.tool_options == {"A": {"x": 1}, "B": {"y": 2}}
    assert "--tool-options is deprecated" in output


def test_both_spellings_of_one_value_is_a_usage_error():
    result = CliRunner().invoke(cli, ["eval", "--tools", "A", "--tool-names", "B", "-o", "x"])
    assert result.exit_code == 2 and "give only --tools" in result.output


# --------------------------------------------------------------------------- do_sample


@pytest.mark.parametrize(
    "argv, sample, warned",
    [
        ([], False, None),
        (["--do-sample"], True, None),
        (["--no-do-sample"], False, None),
        (["--sample"], True, "--sample is deprecated"),
        (["--greedy"], False, "--greedy is deprecated"),
    ],
)
def test_do_sample_is_one_spelling_in_eval_and_generate(monkeypatch, argv, sample, warned):
    config, _, output = _eval_config(monkeypatch, argv)
    opts, gen_output = _generate_opts(monkeypatch, argv)
    assert config.generation.do_sample is sample and opts["do_sample"] is sample
    for text in (output, gen_output):
        assert (warned in text) if warned else "deprecated" not in text


def test_generate_shares_the_tool_options(monkeypatch):
    opts, _ = _generate_opts(monkeypatch, ["--tools", "Calculator", "--tool-option", "A.x=1"])
    assert (opts["tool_names"], opts["tool_option"], opts["no_tools"]) == (
        "Calculator",
        ("A.x=1",),
        False,
    )


# --------------------------------------------------------------------------- --help


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_help_works_and_hides_the_old_spellings(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert result.exit_code == 0, result.output
    shown = set(result.output.replace(",", " ").replace("/", " ").split())
    for old in ("--tool-names", "--tool-options", "--sample", "--greedy"):
        assert old not in shown, (command, old)


def test_decoding_options_are_the_same_in_every_decoding_command():
    def flags(name):
        spec = COMMANDS[name]
        command = getattr(importlib.import_module(spec.partition(":")[0]), spec.partition(":")[2])
        return {
            opt
            for p in command.params
            if not getattr(p, "hidden", False)
            for opt in p.opts + p.secondary_opts
        }

    decoding = {
        "--max-new-tokens",
        "--do-sample",
        "--no-do-sample",
        "--temperature",
        "--top-k",
        "--top-p",
        "--seed",
        "--call-top-k",
        "--call-threshold",
        "--max-calls",
        "--max-call-tokens",
        "--min-new-tokens",
        "--constrained",
        "--unconstrained",
        "--tools",
        "--no-tools",
        "--tool-option",
    }
    for name in ("generate", "chat", "serve", "eval"):
        assert decoding <= flags(name), (name, decoding - flags(name))


# --------------------------------------------------------------------------- field -> flag


def test_an_api_caller_reads_the_field_and_the_cli_prints_the_flag(capsys):
    from toolformer.generation.types import GenerationConfig

    with pytest.raises(UserError) as exc:
        GenerationConfig(temperature=0)
    message = str(exc.value)
    assert message.startswith("GenerationConfig.temperature must be > 0") and "--" not in message
    assert exc.value.field == "GenerationConfig.temperature"
    with pytest.raises(SystemExit) as exit_:
        cli_main(["generate", "m", "hi", "--no-tools", "--temperature", "0"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2
    assert "Error: --temperature must be > 0 (greedy decoding, --no-do-sample, takes none)" in err
    assert "GenerationConfig" not in err


def test_augment_errors_name_the_field_for_the_api_and_the_flag_on_the_command_line(tmp_path):
    from toolformer.data_aug.config import AugmentConfig

    with pytest.raises(
        UserError,
        match=r"^AugmentConfig.shard_index 5 is out of range for "
        r"AugmentConfig.num_shards 2",
    ) as exc:
        AugmentConfig(num_shards=2, shard_index=5).validate()
    assert set(exc.value.fields) == {"AugmentConfig.num_shards", "AugmentConfig.shard_index"}
    result = CliRunner().invoke(
        cli, ["augment", "-o", str(tmp_path / "o"), "--num-shards", "2", "--shard-index", "5"]
    )
    assert result.exit_code != 0
    assert "--shard-index 5 is out of range for --num-shards 2" in result.output


def test_eval_data_dir_error_reads_the_flag_on_the_command_line(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli_main(
            ["eval", "--tasks", "svamp", "--data-dir", str(tmp_path), "-o", str(tmp_path / "o")]
        )
    err = capsys.readouterr().err
    assert "set --data-dir" in err and "EvalConfig" not in err


def test_a_command_spells_a_field_its_own_way():
    error = UserError(
        "GenerationConfig.batch_size must be >= 1", field="GenerationConfig.batch_size"
    )
    assert in_flags(str(error), error.fields, "serve") == "--max-batch must be >= 1"
    assert in_flags(str(error), error.fields, "generate") == "--batch-size must be >= 1"
    assert in_flags("EvalConfig.resume=False", ["EvalConfig.resume=False"]) == "--no-resume"
    assert in_flags("Unmapped.field here", ["Unmapped.field"]) == "Unmapped.field here"
    message = (
        "set AugmentConfig.overwrite=True to start again, or choose another AugmentConfig.output"
    )
    assert in_flags(message, fields_in(message)) == (
        "set --overwrite to start again, or choose another --output"
    )
    nested = "no dev problem left from SelfTrainConfig.dev.data x.jsonl"
    assert fields_in(nested) == ("SelfTrainConfig.dev.data",)
    assert in_flags(nested, fields_in(nested)) == "no dev problem left from --dev-data x.jsonl"


def test_the_field_table_names_real_fields_and_real_flags():
    from toolformer.data_aug.config import AugmentConfig
    from toolformer.data_aug.types import AnnotatorConfig
    from toolformer.eval.harness import EvalConfig
    from toolformer.finetune_config import PAPER_TRAINING_ARGS, FinetuneConfig
    from toolformer.generation.types import GenerationConfig
    from toolformer.selftrain.config import SelfTrainConfig

    classes = {
        c.__name__: c
        for c in (
            AugmentConfig,
            AnnotatorConfig,
            EvalConfig,
            FinetuneConfig,
            GenerationConfig,
            SelfTrainConfig,
        )
    }
    declared = {o for p in cli.params for o in p.opts + p.secondary_opts}  # the group's own
    for spec in COMMANDS.values():
        module, _, attr = spec.partition(":")
        command = getattr(importlib.import_module(module), attr)
        for c in [command] + list(getattr(command, "commands", {}).values()):
            declared |= {o for p in c.params for o in p.opts + p.secondary_opts}
    table = dict(FIELD_FLAGS)
    for overrides in COMMAND_FLAGS.values():
        table.update(overrides)
    for field, flag in table.items():
        cls, _, name = field.partition("=")[0].partition(".")
        if cls == "TrainingArguments":
            assert name in PAPER_TRAINING_ARGS, field
        elif cls == "iter_records":  # the reader's own keyword arguments
            assert name in inspect.signature(iter_records).parameters, field
        elif cls.startswith("$"):  # an environment variable that a flag of the group sets
            assert cls == f"${TRUST_PICKLE_ENV}", field
        else:
            assert _is_field(classes[cls], name), field
        assert all(part in declared for part in flag.split("/")), (field, flag)


def _is_field(cls, dotted: str) -> bool:
    """Whether ``dotted`` (``data.corpus``) names a field of dataclass ``cls``, group by group."""
    for part in dotted.split("."):
        if not dataclasses.is_dataclass(cls) or part not in {
            f.name for f in dataclasses.fields(cls)
        }:
            return False
        cls = typing.get_type_hints(cls).get(part)
    return True


def _raise_strings(node: ast.AST):
    """The string constants of a ``raise`` statement (f-strings' literal parts included)."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            yield sub.lineno, sub.value


def test_no_library_error_names_a_command_line_flag():
    """An API caller never set a flag: what the library raises names config fields (the CLI
    writes them as flags through FIELD_FLAGS); only toolformer/cli/ speaks in flags."""
    root = Path(__file__).resolve().parents[1] / "toolformer"
    flag = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")
    found = []
    for path in sorted(root.rglob("*.py")):
        if "cli" in path.relative_to(root).parts[:1]:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise) and node.exc is not None:
                for line, text in _raise_strings(node.exc):
                    hit = flag.search(text)
                    if hit and not text[: hit.start()].rstrip().endswith("pip install"):
                        found.append(f"{path.relative_to(root.parent)}:{line}: {hit.group()}")
    assert not found, "library errors that name a flag: " + "; ".join(found)


def test_eval_passes_its_command_line_to_the_harness(monkeypatch):
    _, kwargs, _ = _eval_config(monkeypatch, [])
    assert kwargs["command"] is sys.argv
