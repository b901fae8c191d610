"""``toolformer generate`` and ``toolformer chat`` through click's CliRunner on tiny models."""

from __future__ import annotations

import json

import click
import pytest
import torch
from click.testing import CliRunner
from conftest import make_tiny_model
from test_generation import CALC_CALL, Calc, ScriptedLlama, chain, sharpen

from toolformer.cli import generate_cmd
from toolformer.cli.main import cli
from toolformer.generation.chat import ChatSession
from toolformer.tools import base as tool_base
from toolformer.tools.base import UnknownToolError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, smol_tokenizer):
    """A tiny random model and the SmolLM2 tokenizer saved like a fine-tuned checkpoint."""
    path = tmp_path_factory.mktemp("ckpt")
    make_tiny_model(len(smol_tokenizer), seed=1).save_pretrained(path)
    smol_tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def test_tools(monkeypatch):
    """A registry entry for the test Calculator, removed after the test."""
    monkeypatch.setitem(tool_base.TOOLS, "TestCalculator", Calc)


@pytest.fixture
def scripted_load(monkeypatch, smol_tokenizer):
    """Make the commands load a tiny model scripted to call ``Calculator(3*4)`` after ':'."""
    base = make_tiny_model(len(smol_tokenizer), seed=3)
    model = ScriptedLlama(base.config)
    model.load_state_dict(base.state_dict())
    sharpen(model).eval()
    model.set_script(chain(smol_tokenizer, *CALC_CALL) + chain(smol_tokenizer, "]", " so", " that"))
    monkeypatch.setattr(generate_cmd, "load", lambda *a, **k: (model, smol_tokenizer))
    return model


def invoke(args, **kw):
    return CliRunner().invoke(cli, args, catch_exceptions=True, **kw)


def test_generate_one_prompt_from_a_saved_checkpoint(checkpoint):
    result = invoke(
        ["generate", str(checkpoint), "Hello there", "--max-new-tokens", "5", "--no-tools"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Hello there") and len(result.stdout) > len("Hello there\n")


def test_generate_and_chat_take_threads(checkpoint):
    import torch

    before = torch.get_num_threads()
    try:
        result = invoke(
            [
                "generate",
                str(checkpoint),
                "Hi",
                "--max-new-tokens",
                "2",
                "--no-tools",
                "--threads",
                "1",
            ]
        )
        assert result.exit_code == 0, result.output
        assert torch.get_num_threads() == 1
        result = invoke(["chat", str(checkpoint), "--no-tools", "--threads", "0"], input="/quit\n")
        assert result.exit_code != 0 and "--threads" in result.output
    finally:
        torch.set_num_threads(before)


def test_generate_prompts_file_to_jsonl_and_resume(checkpoint, tmp_path, test_tools):
    prompts = tmp_path / "prompts.jsonl"
    # each prompt ends where a word may start: the call trigger fires at once (calls open only
    # where a word or number starts)
    prompts.write_text(
        "\n".join(json.dumps({"prompt": p}) for p in ["One:", "Two: three.", "Four,"]) + "\n"
    )
    out = tmp_path / "out.jsonl"
    args = [
        "generate",
        str(checkpoint),
        "--prompts-file",
        str(prompts),
        "--output",
        str(out),
        "--max-new-tokens",
        "6",
        "--tools",
        "TestCalculator",
        "--call-top-k",
        "100000",
    ]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == ["One:", "Two: three.", "Four,"]
    for r in rows:
        assert set(r) >= {"prompt", "text", "calls", "num_tokens", "finish_reason"}
        assert len(r["calls"]) == 1 and r["text"].lstrip().startswith("[")  # forced by call_top_k
    # an interrupted run (one row and half a line written) resumes after the finished rows
    out.write_text(out.read_text().splitlines()[0] + "\n" + '{"prompt": "Tw')
    result = invoke(args)
    assert result.exit_code == 0 and "resuming" in result.output
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert again == rows  # greedy: the redone rows are the same
    # outputs of other prompts are refused instead of mixed
    prompts.write_text(json.dumps({"prompt": "Other"}) + "\n")
    result = invoke(args)
    assert result.exit_code != 0 and "--overwrite" in str(result.exception)


def test_generate_text_prompts_file_no_tools(checkpoint, tmp_path):
    prompts = tmp_path / "p.txt"
    prompts.write_text("first prompt\n\nsecond prompt\n")
    result = invoke(
        [
            "generate",
            str(checkpoint),
            "--prompts-file",
            str(prompts),
            "--max-new-tokens",
            "4",
            "--no-tools",
            "--call-top-k",
            "100000",
        ]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["prompt"] for r in rows] == ["first prompt", "second prompt"]
    assert all(r["calls"] == [] and "[" not in r["text"] for r in rows)


def test_tools_come_from_the_checkpoint_metadata(checkpoint, test_tools, scripted_load):
    (checkpoint / "toolformer.json").write_text(json.dumps({"tools": ["TestCalculator"]}))
    try:
        assert generate_cmd._tool_names(str(checkpoint), None) == ["TestCalculator"]
        result = invoke(["generate", str(checkpoint), "Compute:", "--max-new-tokens", "14"])
    finally:
        (checkpoint / "toolformer.json").unlink()
    assert result.exit_code == 0, result.output
    assert "Compute: [Calculator(3*4) -> 12] so" in result.output
    assert "⚙ Calculator(3*4) -> 12" in result.output


def test_generate_user_errors(checkpoint, tmp_path):
    result = invoke(["generate", str(checkpoint), "x", "--tools", "NoSuchTool"])
    assert isinstance(result.exception, UnknownToolError)
    result = invoke(["generate", str(checkpoint)])
    assert "PROMPT" in str(result.exception)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "no prompt field"}\n')
    result = invoke(["generate", str(checkpoint), "--prompts-file", str(bad)])
    assert "prompt" in str(result.exception)
    result = invoke(["generate", str(checkpoint), "x", "--no-tools", "--top-p", "0"])
    assert "top_p" in str(result.exception)


def test_chat_shows_calls_and_commands(scripted_load, test_tools):
    result = invoke(
        ["chat", "tiny", "--tools", "TestCalculator", "--no-template", "--max-new-tokens", "14"],
        input="/help\n/tools\nCompute\n/reset\n/bogus\n/quit\n",
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert "/quit" in out and "Calculator: multiplies a*b" in out
    assert "[⚙ Calculator(3*4) -> 12] so" in out  # the prompt ends with "Assistant:" -> call
    assert "conversation cleared" in out and "unknown command /bogus" in out
    assert out.rstrip().endswith("bye")


def test_chat_transcript_of_piped_input_shows_what_was_said(scripted_load, test_tools):
    """Piped input is not echoed by a terminal: 'you> bot> ...' on one line before."""
    result = invoke(
        ["chat", "tiny", "--tools", "TestCalculator", "--no-template", "--max-new-tokens", "14"],
        input="Compute\n/quit\n",
    )
    assert result.exit_code == 0, result.output
    assert "you> Compute\nbot> " in result.output and "you> bot>" not in result.output


def test_generate_prompt_argument_takes_escapes():
    from toolformer.cli.generate_cmd import unescape_prompt

    assert unescape_prompt("Q: What is 3+4?\\nA:") == "Q: What is 3+4?\nA:"
    assert unescape_prompt("a\\tb\\\\n") == "a\tb\\n"  # an escaped backslash stays one backslash
    assert unescape_prompt("C:\\frac x") == "C:\\frac x"  # other backslashes are kept


def test_chat_ctrl_c_stops_an_answer_and_ctrl_d_exits(scripted_load, monkeypatch, test_tools):
    class Interrupting(Calc):
        def run(self, args, context=None):
            raise KeyboardInterrupt  # as if the user pressed Ctrl-C while the tool ran

    monkeypatch.setitem(tool_base.TOOLS, "TestCalculator", Interrupting)
    result = invoke(
        ["chat", "tiny", "--tools", "TestCalculator", "--no-template", "--max-new-tokens", "14"],
        input="Compute\n/tools\n",
    )  # then end of input (Ctrl-D)
    assert result.exit_code == 0, result.output
    assert "[stopped]" in result.output and "multiplies" in result.output
    assert result.output.rstrip().endswith("bye")


def test_chat_ctrl_c_at_the_prompt_exits(scripted_load, monkeypatch, test_tools):
    class CtrlC:
        def readline(self):
            raise KeyboardInterrupt

    real = click.get_binary_stream  # chat reads bytes and decodes each line itself
    monkeypatch.setattr(
        generate_cmd.click,
        "get_binary_stream",
        lambda name, *a, **k: CtrlC() if name == "stdin" else real(name, *a, **k),
    )
    result = invoke(["chat", "tiny", "--tools", "TestCalculator"], input="Compute\n")
    assert result.exit_code == 0 and "bye" in result.output and "bot>" not in result.output


def test_chat_input_that_is_not_utf8_is_a_notice_not_a_traceback(scripted_load, test_tools):
    result = invoke(
        ["chat", "tiny", "--tools", "TestCalculator", "--no-template", "--max-new-tokens", "14"],
        input=b"\xef\xbb\xbfCaf\xe9 compute\n/tools\n/quit\n",
    )
    assert result.exit_code == 0, result.output
    assert result.exception is None
    assert "note: input line 1 is not valid utf-8 (byte 0xe9)" in result.output
    assert "you> Caf\ufffd compute\nnote: " in result.output  # the BOM is dropped
    assert "multiplies" in result.output and result.output.rstrip().endswith("bye")


def test_chat_session_uses_the_chat_template(smol_tokenizer):
    session = ChatSession(smol_tokenizer, None, "Be brief.")
    prompt = session.prompt("hi")
    assert "<|im_start|>user\nhi<|im_end|>" in prompt and prompt.endswith("<|im_start|>assistant\n")
    session.add("hi", " hello ")
    assert "hello<|im_end|>" in session.prompt("again")
    plain = ChatSession(smol_tokenizer, False, None)
    assert plain.prompt("hi") == "User: hi\nAssistant:" and plain.stop_strings == ("\nUser:",)


def test_chat_talks_in_the_turns_an_adapter_was_trained_on(smol_tokenizer, tmp_path):
    """A selftrain adapter's manifest names its plain turns (``Q:`` / ``A:``): chat uses them by
    default (the model never saw the chat template), ``--template`` still wins, and a typed
    ``Q:`` is not doubled."""
    from toolformer.errors import UserError
    from toolformer.manifest import chat_roles_of_template, write_manifest
    from toolformer.models import manifest_chat_roles
    from toolformer.selftrain import SelfTrainConfig
    from toolformer.selftrain.config import CorpusConfig
    from toolformer.selftrain.loop import adapter_manifest

    meta = adapter_manifest(SelfTrainConfig(), 1, 3)
    assert meta["chat_roles"] == {"user": "Q", "assistant": "A"}
    assert "chat_roles" not in adapter_manifest(
        SelfTrainConfig(data=CorpusConfig(prompt_template="{question} =")), 1, 3
    )
    assert chat_roles_of_template("Question: {question}\nAnswer:") == {
        "user": "Question",
        "assistant": "Answer",
    }
    write_manifest(tmp_path, meta)
    roles = manifest_chat_roles(str(tmp_path))
    assert roles == ("Q", "A")
    session = ChatSession(smol_tokenizer, None, None, roles)
    assert not session.use_template
    assert (
        session.prompt("A box has 6 eggs. How many in 7 boxes?")
        == "Q: A box has 6 eggs. How many in 7 boxes?\nA:"
    )
    assert session.prompt(
        "Q: 3 and 4 more?"
    ) == "Q: 3 and 4 more?\nA:" and session.stop_strings == ("\nQ:",)
    session.add("Q: 3 and 4 more?", " [Calculator(3 + 4) -> 7] 7 ")
    assert (
        session.prompt("5 less 2?")
        == "Q: 3 and 4 more?\nA: [Calculator(3 + 4) -> 7] 7\nQ: 5 less 2?\nA:"
    )
    assert ChatSession(smol_tokenizer, True, None, roles).use_template
    write_manifest(tmp_path, {**meta, "chat_roles": {"user": "Q"}})
    with pytest.raises(UserError, match="chat_roles"):
        manifest_chat_roles(str(tmp_path))


def test_max_new_tokens_past_the_context_is_one_line_before_any_output(checkpoint, tmp_path):
    """--max-new-tokens larger than the context kept the prompt's last token and wrote past
    the context; now it is refused before anything is written (the checkpoint's context: 1024)."""
    result = invoke(
        ["generate", str(checkpoint), "Hello there", "--max-new-tokens", "2000", "--no-tools"]
    )
    assert result.exit_code != 0
    expect = "max_new_tokens (2000) must leave room for the prompt: context 1024, prompt"
    assert expect in str(result.exception)
    assert "Hello there" not in result.stdout  # refused before the prompt was echoed
    out = tmp_path / "out.jsonl"
    prompts = tmp_path / "p.txt"
    prompts.write_text("one\ntwo\n")
    result = invoke(
        [
            "generate",
            str(checkpoint),
            "--prompts-file",
            str(prompts),
            "--output",
            str(out),
            "--max-new-tokens",
            "1024",
            "--no-tools",
        ]
    )
    assert "must leave room for the prompt" in str(result.exception) and not out.exists()
