"""``toolformer models card``: model cards written from an adapter's manifest and results."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from toolformer.cards import load_results, render_card, write_card
from toolformer.cli.main import cli
from toolformer.errors import UserError

ADAPTERS = Path(__file__).resolve().parents[1] / "toolformer" / "adapters"
SHIPPED = ADAPTERS / "smollm2-135m-calculator"


def front_matter(text: str) -> dict:
    head = text.split("---\n")[1]
    meta, key = {}, None
    for line in head.splitlines():
        if line.startswith("- "):
            meta[key].append(line[2:])
        else:
            key, _, value = line.partition(": ")
            key = key.rstrip(":")
            meta[key] = value if value else []
    return meta


def test_the_shipped_adapter_card_is_written_from_its_files(tmp_path):
    folder = tmp_path / "smollm2-135m-calculator"
    folder.mkdir()
    for name in ("toolformer.json", "adapter_config.json", "eval_results.json"):
        shutil.copy(SHIPPED / name, folder / name)
    result = CliRunner().invoke(cli, ["models", "card", str(folder)])
    assert result.exit_code == 0, result.output
    text = (folder / "README.md").read_text(encoding="utf-8")
    meta = front_matter(text)
    assert meta["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert meta["library_name"] == "peft" and meta["license"] == "apache-2.0"
    assert {"toolformer", "calculator"} <= set(meta["tags"])
    for heading in (
        "## Training data and method",
        "## Evaluation",
        "## Limitations",
        "## How to load",
    ):
        assert heading in text
    # RESULTS.md's numbers, with n and the intervals printed there
    assert "| smollm2-135m-calculator | svamp | 16.7% | 300 | [12.9, 21.3] |" in text
    assert "| smollm2-135m-calculator | mawps | 30.7% | 300 | [25.7, 36.1] |" in text
    assert "| smollm2-135m-calculator, tools disabled | svamp | 0.7% | 300 | [0.2, 2.4] |" in text
    assert "| SmolLM2-135M (base) | mawps | 3.0% | 300 | [1.6, 5.6] |" in text
    assert "training texts: 151" in text and "r = 16, alpha = 32" in text
    assert "PeftModel.from_pretrained" in text and 'load_model("smollm2-135m-calculator")' in text


@pytest.mark.parametrize(
    "folder",
    sorted(p for p in ADAPTERS.iterdir() if (p / "eval_results.json").is_file()),
    ids=lambda p: p.name,
)
def test_the_shipped_cards_are_up_to_date(folder):
    """Each committed README.md is what the command writes now (regenerate it after a change)."""
    assert (folder / "README.md").read_text(encoding="utf-8") == render_card(
        folder, load_results([folder / "eval_results.json"])
    )


def test_every_shipped_adapter_has_a_card_and_its_results():
    for folder in (p for p in ADAPTERS.iterdir() if (p / "adapter_config.json").is_file()):
        assert (folder / "README.md").is_file() and (folder / "eval_results.json").is_file()


def test_a_card_from_toolformer_eval_run_folders(tmp_path):
    folder = tmp_path / "my-adapter"
    folder.mkdir()
    (folder / "toolformer.json").write_text(
        json.dumps({"base_model": "gemma3-270m", "tools": ["Calendar"]})
    )
    run = tmp_path / "eval_run"
    run.mkdir()
    (run / "results.json").write_text(
        json.dumps(
            {
                "name": "mine",
                "model": str(folder),
                "tasks": {
                    "svamp": {
                        "metric": "accuracy",
                        "score": 0.5,
                        "correct": 5,
                        "n": 10,
                        "tool_call_rate": 0.8,
                        "calls": 8,
                        "failed_calls": 1,
                    }
                },
            }
        )
    )
    path = write_card(folder, [run], license="mit")
    text = path.read_text(encoding="utf-8")
    assert front_matter(text)["base_model"] == "google/gemma-3-270m"
    assert front_matter(text)["license"] == "mit"
    assert "| mine | svamp | 50.0% | 10 | [23.7, 76.3] | 80% (7 of 8 calls ran) |" in text
    assert "eval_run/results.json" in text


def test_card_user_errors(tmp_path):
    with pytest.raises(UserError, match="toolformer.json"):
        write_card(tmp_path)
    (tmp_path / "toolformer.json").write_text(json.dumps({"base_model": "smollm2-135m"}))
    with pytest.raises(UserError, match="does not exist"):
        write_card(tmp_path, [tmp_path / "missing.json"])
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(UserError, match="no evaluation runs"):
        write_card(tmp_path, [tmp_path / "bad.json"])
    assert "No evaluation results" in write_card(tmp_path).read_text(encoding="utf-8")
