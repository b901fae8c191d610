"""``toolformer augment`` through click's CliRunner (the fake annotator of test_pipeline)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolformer.cli.augment_cmd import parse_thresholds
from toolformer.cli.main import cli
from toolformer.cli.options import field_default
from toolformer.data_aug.config import DEFAULT_TOOLS, AugmentConfig
from toolformer.tools.assembly import parse_tool_options

FACTORY = f"{Path(__file__).resolve().parent / 'test_pipeline.py'}:fake_factory"


def _corpus(tmp_path, n=7):
    path = tmp_path / "in.jsonl"
    path.write_text(
        "".join(json.dumps({"text": f"Item {i} weighs {i + 2} kg."}) + "\n" for i in range(n))
    )
    return path


def _run(*args):
    return CliRunner().invoke(cli, ["augment", *map(str, args)], catch_exceptions=False)


def _saved_config(out: Path):
    return json.loads(next(out.glob("shards/*/config.json")).read_text())


def test_help_lists_the_options():
    result = _run("--help")
    assert result.exit_code == 0
    for flag in (
        "--input",
        "--output",
        "--model",
        "--tools",
        "--limit",
        "--dtype",
        "--num-shards",
        "--shard-index",
        "--text-field",
        "--date-field",
        "--seed",
        "--batch-size",
        "--tau-s",
        "--k",
        "--m",
        "--tau-f",
        "--merge",
        "--overwrite",
    ):
        assert flag in result.output
    assert "smollm2-135m" in result.output and "runs/augment" in result.output


def test_defaults_match_the_dataclass():
    cfg = AugmentConfig()
    assert cfg.input is None and cfg.model == "smollm2-135m" and cfg.output == "runs/augment"
    assert cfg.tools == list(DEFAULT_TOOLS) == ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]
    assert cfg.limit == field_default(AugmentConfig, "limit") and cfg.limit > 0
    params = {
        p.name: p
        for p in __import__("toolformer.cli.augment_cmd", fromlist=["augment"]).augment.params
    }
    assert params["limit"].default == cfg.limit and params["output"].default == cfg.output
    assert params["batch_size"].default == cfg.batch_size and params["dtype"].default == cfg.dtype
    assert params["tools"].default == ",".join(DEFAULT_TOOLS)


def test_run_writes_outputs_and_prints_a_summary(tmp_path):
    src = _corpus(tmp_path)
    out = tmp_path / "out"
    result = _run(
        "--input",
        src,
        "--output",
        out,
        "--annotator-factory",
        FACTORY,
        "--tools",
        "calculator,CALENDAR",
        "--limit",
        5,
        "--seed",
        3,
        "--batch-size",
        2,
        "--tau-f",
        "0.7",
        "--tau-f",
        "Calendar=1.5",
        "--k",
        "Calculator=3",
        "--m",
        "4",
        "--tau-s",
        "0.1",
        "--chunk-size",
        2,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert "5 documents, 5 with calls" in result.output and "Calculator 5" in result.output
    assert "[Calculator(" in result.output and str(out / "data.jsonl") in result.output
    assert len((out / "data.jsonl").read_text().splitlines()) == 5
    saved = _saved_config(out)
    assert saved["tools"] == ["Calculator", "Calendar"] and saved["seed"] == 3
    ann = saved["annotator"]
    assert (ann["tau_f"], ann["m"], ann["tau_s"], ann["k"]) == (0.7, 4, 0.1, None)
    assert ann["settings"] == {"Calendar": {"tau_f": 1.5}, "Calculator": {"k": 3}}
    # resuming the finished run does nothing new; --merge re-merges the shards
    again = _run(
        "--input",
        src,
        "--output",
        out,
        "--annotator-factory",
        FACTORY,
        "--tools",
        "Calculator,Calendar",
        "--limit",
        5,
        "--seed",
        3,
        "--batch-size",
        2,
        "--tau-f",
        "0.7",
        "--tau-f",
        "Calendar=1.5",
        "--k",
        "Calculator=3",
        "--m",
        "4",
        "--tau-s",
        "0.1",
        "-q",
    )
    assert again.exit_code == 0 and "Annotated 0 documents now" in again.output
    merged = _run("--merge", out)
    assert (
        merged.exit_code == 0
        and "Merged 1 shard(s)" in merged.output
        and "Calculator 5" in merged.output
    )


def test_tool_options_reach_the_config(tmp_path):
    src = _corpus(tmp_path, 2)
    out = tmp_path / "out"
    result = _run(
        "-i",
        src,
        "-o",
        out,
        "--annotator-factory",
        FACTORY,
        "--tools",
        "WikiSearch",
        "--tool-option",
        "WikiSearch.corpus=/data/p.jsonl",
        "--tool-option",
        "WikiSearch.top_k=2",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert _saved_config(out)["tool_options"] == {
        "WikiSearch": {"corpus": "/data/p.jsonl", "top_k": 2}
    }


@pytest.mark.parametrize(
    "args,message",
    [
        (["--tools", "Calculater"], "Did you mean 'Calculator'"),
        (["--tau-f", "high"], "expected a number or Tool=number"),
        (["--tool-option", "corpus=x"], "expected Tool.option=value"),
        (["--limit", "-3"], "-3 is not in the range"),
        (["--num-shards", "2", "--shard-index", "5"], "out of range for --num-shards 2"),
        (["--dtype", "int4"], "'int4' is not one of"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path, args, message):
    src = _corpus(tmp_path, 2)
    result = CliRunner().invoke(
        cli,
        [
            "augment",
            "-i",
            str(src),
            "-o",
            str(tmp_path / "o"),
            "--annotator-factory",
            FACTORY,
            *args,
        ],
    )
    assert result.exit_code != 0
    assert message in result.output
    assert "Traceback" not in result.output


def test_user_errors_are_clean(tmp_path):
    result = CliRunner().invoke(
        cli, ["augment", "-i", str(tmp_path / "missing.jsonl"), "-o", str(tmp_path / "o")]
    )
    assert (
        result.exit_code == 1
        and "Error: input" in result.output
        and "does not exist" in result.output
    )
    result = CliRunner().invoke(cli, ["augment", "--merge", str(tmp_path / "nothing")])
    assert result.exit_code == 1 and "no shards" in result.output


def test_parsers():
    assert parse_thresholds("tau_f", ["0.5", "QA=2", "MT=0.25"], float) == (
        0.5,
        {"QA": 2.0, "MT": 0.25},
    )
    assert parse_thresholds("k", [], int) == (None, {})
    assert parse_tool_options(["A.x=1", "A.y=[1, 2]", "B.path=a=b"]) == {
        "A": {"x": 1, "y": [1, 2]},
        "B": {"path": "a=b"},
    }
