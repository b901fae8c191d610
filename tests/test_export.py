"""``toolformer export``: hand-made augmented rows to inline text and to Hugging Face chat
messages with tool calls, rendered through a real chat template that supports tools."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from toolformer.cli.main import cli
from toolformer.data_aug.export import messages_text, tool_schema, to_messages
from toolformer.tools.base import get_tool_class

TEXT = "Out of 1400 participants, 400 (or 29%) passed the test. It was held in Paris today."
ROW = {
    "id": "doc-1",
    "original": TEXT,
    "text": "(inline text)",
    "date": "2016-05-01",
    "calls": [
        {"tool": "WikiSearch", "args": "Paris", "result": "Paris is the capital of France.",
         "offset": TEXT.index(" Paris")},
        {"tool": "Calculator", "args": "400 / 1400", "result": "0.29", "offset": TEXT.index(" 29%")},
        {"tool": "Calendar", "args": "", "result": "Today is Sunday, May 1, 2016.", "offset": TEXT.index(" today")},
    ],
}


def tools():
    return {n: get_tool_class(n) for n in ("Calculator", "Calendar", "WikiSearch")}


def test_row_becomes_messages_with_tool_calls_and_tool_turns():
    conv = to_messages(ROW, tools())
    roles = [m["role"] for m in conv["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "tool", "assistant"]
    assert messages_text(conv["messages"]) == TEXT  # the turns give the document back
    calls = [m["tool_calls"][0]["function"] for m in conv["messages"] if m.get("tool_calls")]
    assert calls == [{"name": "Calculator", "arguments": {"expression": "400 / 1400"}},
                     {"name": "WikiSearch", "arguments": {"query": "Paris"}},
                     {"name": "Calendar", "arguments": {}}]
    assert [m["content"] for m in conv["messages"] if m["role"] == "tool"] == [
        "0.29", "Paris is the capital of France.", "Today is Sunday, May 1, 2016."]
    names = [t["function"]["name"] for t in conv["tools"]]
    assert names == ["Calculator", "WikiSearch", "Calendar"]


def test_schemas_come_from_the_tool_definitions():
    calc = tool_schema(get_tool_class("Calculator"))["function"]
    assert calc["description"] == get_tool_class("Calculator").description
    assert calc["parameters"]["required"] == ["expression"]
    assert calc["parameters"]["properties"]["expression"]["type"] == "string"
    assert tool_schema(get_tool_class("Calendar"))["function"]["parameters"]["properties"] == {}
    assert tool_schema(get_tool_class("WikiSearch"))["function"]["parameters"]["properties"]["query"]["maxLength"] == 120


def test_round_trip_through_a_real_tool_chat_template(smol_tokenizer):
    """Llama 4's chat template (shipped in transformers) renders tools, tool_calls and tool
    turns; the calls, their arguments, results and schemas read back from the rendered text."""
    from transformers.models.llama4.processing_llama4 import chat_template

    conv = to_messages(ROW, tools())
    rendered = smol_tokenizer.apply_chat_template(conv["messages"], tools=conv["tools"], chat_template=chat_template,
                                                  tokenize=False)
    back = [json.loads(m) for m in re.findall(r'\{"name": "[A-Za-z]+", "parameters": \{[^}]*\}\}', rendered)]
    assert back == [{"name": "Calculator", "parameters": {"expression": "400 / 1400"}},
                    {"name": "WikiSearch", "parameters": {"query": "Paris"}},
                    {"name": "Calendar", "parameters": {}}]
    for m in conv["messages"]:
        if m["role"] == "tool":
            # (the template writes a string result as JSON)
            assert f"ipython<|header_end|>\n\n{json.dumps(m['content'])}<|eot|>" in rendered
    for schema in conv["tools"]:
        assert json.dumps(schema, indent=4) in rendered
    assert "Out of 1400 participants, 400 (or" in rendered and " passed the test. It was held in" in rendered


def test_cli_exports_chat_and_jsonl(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(json.dumps(ROW) + "\n")
    out = tmp_path / "chat.jsonl"
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "chat", "-o", str(out)])
    assert result.exit_code == 0, result.output
    (row,) = [json.loads(line) for line in out.read_text().splitlines()]
    assert row["id"] == "doc-1" and messages_text(row["messages"]) == TEXT
    result = CliRunner().invoke(cli, ["export", str(run / "data.jsonl"), "--format", "jsonl"])
    assert result.exit_code == 0 and json.loads(result.stdout) == {"id": "doc-1", "text": "(inline text)"}


@pytest.mark.parametrize("make, expect", [
    (lambda p: p.mkdir(), "holds no augmented data (no data.jsonl)"),
    (lambda p: None, "does not exist"),
    (lambda p: (p.mkdir(), (p / "data.jsonl").write_text("")), "only documents with a kept call"),
    (lambda p: (p.mkdir(), (p / "data.jsonl").write_text("{oops\n")), "data.jsonl:1 is not valid JSON"),
    (lambda p: (p.mkdir(), (p / "data.jsonl").write_text('\n{"id": "x", "text": "t"}\n')),
     "data.jsonl line 2: row x is not an augmented row"),
])
def test_bad_input_is_one_line(tmp_path, make, expect):
    run = tmp_path / "run"
    make(run)
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "chat"])
    assert result.exit_code != 0 and expect in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
