"""``toolformer export``: hand-made augmented rows to inline text and to Hugging Face chat
messages with tool calls, rendered through a real chat template that supports tools."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from toolformer.cli.main import cli
from toolformer.data_aug.export import messages_text, to_messages, tool_schema
from toolformer.tools.base import get_tool_class

TEXT = "Out of 1400 participants, 400 (or 29%) passed the test. It was held in Paris today."
ROW = {
    "id": "doc-1",
    "original": TEXT,
    "text": "(inline text)",
    "date": "2016-05-01",
    "calls": [
        {
            "tool": "WikiSearch",
            "args": "Paris",
            "result": "Paris is the capital of France.",
            "offset": TEXT.index(" Paris"),
        },
        {
            "tool": "Calculator",
            "args": "400 / 1400",
            "result": "0.29",
            "offset": TEXT.index(" 29%"),
        },
        {
            "tool": "Calendar",
            "args": "",
            "result": "Today is Sunday, May 1, 2016.",
            "offset": TEXT.index(" today"),
        },
    ],
}


def tools():
    return {n: get_tool_class(n) for n in ("Calculator", "Calendar", "WikiSearch")}


def test_row_becomes_messages_with_tool_calls_and_tool_turns():
    conv = to_messages(ROW, tools())
    roles = [m["role"] for m in conv["messages"]]
    assert roles == [
        "user",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
        "tool",
        "assistant",
    ]
    assert messages_text(conv["messages"]) == TEXT  # the turns give the document back
    calls = [m["tool_calls"][0]["function"] for m in conv["messages"] if m.get("tool_calls")]
    assert calls == [
        {"name": "Calculator", "arguments": {"expression": "400 / 1400"}},
        {"name": "WikiSearch", "arguments": {"query": "Paris"}},
        {"name": "Calendar", "arguments": {}},
    ]
    assert [m["content"] for m in conv["messages"] if m["role"] == "tool"] == [
        "0.29",
        "Paris is the capital of France.",
        "Today is Sunday, May 1, 2016.",
    ]
    names = [t["function"]["name"] for t in conv["tools"]]
    assert names == ["Calculator", "WikiSearch", "Calendar"]


def test_schemas_come_from_the_tool_definitions():
    calc = tool_schema(get_tool_class("Calculator"))["function"]
    assert calc["description"] == get_tool_class("Calculator").description
    assert calc["parameters"]["required"] == ["expression"]
    assert calc["parameters"]["properties"]["expression"]["type"] == "string"
    assert tool_schema(get_tool_class("Calendar"))["function"]["parameters"]["properties"] == {}
    assert (
        tool_schema(get_tool_class("WikiSearch"))["function"]["parameters"]["properties"]["query"][
            "maxLength"
        ]
        == 120
    )


def test_round_trip_through_a_real_tool_chat_template(smol_tokenizer):
    """Llama 4's chat template (shipped in transformers) renders tools, tool_calls and tool
    turns; the calls, their arguments, results and schemas read back from the rendered text."""
    from transformers.models.llama4.processing_llama4 import chat_template

    conv = to_messages(ROW, tools())
    rendered = smol_tokenizer.apply_chat_template(
        conv["messages"], tools=conv["tools"], chat_template=chat_template, tokenize=False
    )
    back = [
        json.loads(m)
        for m in re.findall(r'\{"name": "[A-Za-z]+", "parameters": \{[^}]*\}\}', rendered)
    ]
    assert back == [
        {"name": "Calculator", "parameters": {"expression": "400 / 1400"}},
        {"name": "WikiSearch", "parameters": {"query": "Paris"}},
        {"name": "Calendar", "parameters": {}},
    ]
    for m in conv["messages"]:
        if m["role"] == "tool":
            # (the template writes a string result as JSON)
            assert f"ipython<|header_end|>\n\n{json.dumps(m['content'])}<|eot|>" in rendered
    for schema in conv["tools"]:
        assert json.dumps(schema, indent=4) in rendered
    assert (
        "Out of 1400 participants, 400 (or" in rendered
        and " passed the test. It was held in" in rendered
    )


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
    assert result.exit_code == 0 and json.loads(result.stdout) == {
        "id": "doc-1",
        "text": "(inline text)",
    }


@pytest.mark.parametrize(
    "make, expect",
    [
        (lambda p: p.mkdir(), "holds no augmented data (no data.jsonl)"),
        (lambda p: None, "does not exist"),
        (
            lambda p: (p.mkdir(), (p / "data.jsonl").write_text("")),
            "only documents with a kept call",
        ),
        (
            lambda p: (p.mkdir(), (p / "data.jsonl").write_text("{oops\n")),
            "data.jsonl:1 is not valid JSON",
        ),
        (
            lambda p: (p.mkdir(), (p / "data.jsonl").write_text('\n{"id": "x", "text": "t"}\n')),
            "data.jsonl line 2: row x is not an augmented row",
        ),
    ],
)
def test_bad_input_is_one_line(tmp_path, make, expect):
    run = tmp_path / "run"
    make(run)
    result = CliRunner().invoke(cli, ["export", str(run), "--format", "chat"])
    assert result.exit_code != 0 and expect in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output


# A chat template with the tool-call contract of Mistral-7B-Instruct-v0.3's: every call needs an
# id of length 9, every tool turn the id of its call (written here, not copied from Mistral).
_MISTRAL_LIKE = (
    "{%- for m in messages %}"
    "{%- if m.tool_calls is defined and m.tool_calls is not none %}"
    "{%- for c in m.tool_calls %}"
    "{%- if c.id is not defined or c.id|length != 9 %}"
    "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}"
    "{%- endif %}[CALL {{ c.id }} {{ c.function|tojson }}]"
    "{%- endfor %}"
    "{%- elif m.role == 'tool' %}"
    "{%- if m.tool_call_id is not defined or m.tool_call_id|length != 9 %}"
    "{{ raise_exception('Tool call IDs should be alphanumeric strings with length 9!') }}"
    "{%- endif %}[RESULT {{ m.tool_call_id }} {{ m.content }}]"
    "{%- else %}[{{ m.role }}] {{ m.content }}{%- endif %}"
    "{%- endfor %}"
)


def test_chat_export_gives_every_call_an_id_and_every_tool_turn_its_call_id(smol_tokenizer):
    """Rows without ids made Mistral-7B-Instruct-v0.3's template raise: each call now has 9
    letters and digits, the tool turn after it the same id, and the ids do not change
    between exports."""
    conv = to_messages(ROW, tools())
    calls = [c for m in conv["messages"] for c in m.get("tool_calls", [])]
    ids = [c["id"] for c in calls]
    assert len(set(ids)) == 3 and all(len(i) == 9 and i.isalnum() and i.isascii() for i in ids)
    assert [m["tool_call_id"] for m in conv["messages"] if m["role"] == "tool"] == ids
    assert to_messages(json.loads(json.dumps(ROW)), tools()) == conv  # deterministic per row
    other = to_messages({**ROW, "id": "doc-2"}, tools())
    assert [c["id"] for m in other["messages"] for c in m.get("tool_calls", [])] != ids
    rendered = smol_tokenizer.apply_chat_template(
        conv["messages"], tools=conv["tools"], chat_template=_MISTRAL_LIKE, tokenize=False
    )
    for i in ids:
        assert f"[CALL {i} " in rendered and f"[RESULT {i} " in rendered


_CALL = {"tool": "Calculator", "args": "1+2", "result": "3", "offset": 0}


@pytest.mark.parametrize("fmt", ["chat", "jsonl"])
@pytest.mark.parametrize(
    "row, expect",
    [
        ([1, 2], "the row is a list, not an object"),
        ("text", "the row is a string, not an object"),
        ({"id": "r", "original": "t", "text": "t", "calls": None}, "'calls' is null, not a list"),
        (
            {"id": "r", "original": "t", "text": "t", "calls": ["[Calculator(1+2)]"]},
            "call 1 is a string, not an object",
        ),
        (
            {"id": "r", "original": "t", "text": "t", "calls": [{**_CALL, "offset": "0"}]},
            "call 1: 'offset' is a string, not an integer",
        ),
        (
            {"id": "r", "original": "t", "text": "t", "calls": [_CALL, {**_CALL, "offset": 9}]},
            "call 2: offset 9 is outside the text (length 1)",
        ),
        (
            {"id": "r", "original": "t", "text": "t", "calls": [{**_CALL, "tool": None}]},
            "call 1: 'tool' is null, not a string",
        ),
        (
            {"id": "r", "original": "t", "text": "t", "calls": [{**_CALL, "result": 3}]},
            "call 1: 'result' is a number, not a string or null",
        ),
    ],
)
def test_malformed_rows_are_one_line_naming_the_line(tmp_path, fmt, row, expect):
    """A row that is a list, 'calls' null, a call that is a string, an offset that is a
    string: each was a traceback; now the export stops with one line naming the line."""
    if fmt == "jsonl" and not isinstance(row, list) and not isinstance(row, str):
        expect = None  # the inline text needs only 'text'
    good = json.dumps(ROW)
    (tmp_path / "data.jsonl").write_text(f"{good}\n\n{json.dumps(row)}\n{good}\n")
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(cli, ["export", str(tmp_path), "--format", fmt, "-o", str(out)])
    if expect is None:
        assert result.exit_code == 0, result.output
        return
    assert result.exit_code == 1, result.output
    assert f"data.jsonl line 3: {expect}" in result.output, result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    assert not out.exists()


def test_an_output_file_in_a_missing_folder_gets_its_folder(tmp_path):
    """The output lock makes the output file's folder, as every command makes its output."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(json.dumps(ROW) + "\n")
    out = tmp_path / "missing" / "out.jsonl"
    result = CliRunner().invoke(cli, ["export", str(run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.is_file() and out.read_text().strip()


@pytest.mark.parametrize(
    "target, expect",
    [
        (lambda p: p, "it is a folder"),
    ],
)
def test_output_errors_name_the_path_given(tmp_path, target, expect):
    """Errors writing -o named the temporary file next to it ('out.jsonl.tmp-1234')."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "data.jsonl").write_text(json.dumps(ROW) + "\n")
    out = target(tmp_path)
    result = CliRunner().invoke(cli, ["export", str(run), "-o", str(out)])
    assert result.exit_code == 1, result.output
    assert f"cannot use {out} as the output file: {expect}" in result.output, result.output
    assert "tmp" not in result.output.replace(str(tmp_path), ""), result.output
    assert len(result.output.strip().splitlines()) == 1
