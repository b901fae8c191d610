"""Tool options checked once (``Tool.from_options``), before any model loads, in every command
(a bad option is one line, not a traceback after minutes of loading); one options grammar,
one tool builder with the sharing rule, and a lazy, idempotent, thread-safe ``Tool.setup()``
(the tools' one lifecycle step)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Optional

import pytest

from toolformer.cli.main import main as cli_main
from toolformer.errors import ToolOptionError, UserError
from toolformer.tools import base
from toolformer.tools.assembly import (
    check_tool_options,
    create_tool,
    create_tools,
    parse_options,
    parse_tool_options,
    setup_tools,
)
from toolformer.tools.base import Tool, ToolContext, ToolOptionsError

FACTORY = f"{Path(__file__).resolve().parent / 'test_pipeline.py'}:fake_factory"


def run_main(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        cli_main([str(a) for a in argv])
    captured = capsys.readouterr()
    return exit_.value.code, captured.err + captured.out


@pytest.fixture
def no_model(monkeypatch):
    """Any model load fails the test: options must be refused before."""
    import toolformer.models

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the tool options were checked")

    monkeypatch.setattr(toolformer.models, "load_model", refuse)


def _one_line(code, text, *needles):
    assert code not in (0, None) and "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, text
    for needle in needles:
        assert needle in errors[0], text


# ----------------------------------------------------------------------- bad options, per command


@pytest.mark.parametrize(
    "option,needles",
    [
        ("decimals=abc", ("Calculator", "decimals", "expected an integer")),
        ("decimals=99", ("Calculator", "decimals=99", "from 0 to 10")),
        ("decimals=2.5", ("Calculator", "decimals", "expected an integer")),
        ("foo=1", ("Calculator has no option 'foo'", "Its options: decimals")),
        ("decimal=1", ("Did you mean 'decimals'",)),
    ],
)
def test_tools_run_bad_option_is_one_line(capsys, option, needles):
    code, text = run_main(["tools", "run", "Calculator", "1/3", "-o", option], capsys)
    _one_line(code, text, *needles)


@pytest.mark.parametrize(
    "option,needles",
    [
        ("Calculator.decimals=abc", ("Calculator", "decimals", "expected an integer")),
        ("Calculator.decimals=99", ("decimals=99", "from 0 to 10")),
        ("Calculator.foo=1", ("Calculator has no option 'foo'",)),
        ("Calculater.decimals=1", ("Did you mean 'Calculator'",)),
        ("WikiSearch.top_k=many", ("WikiSearch", "top_k", "expected an integer")),
        ("QA.passage=3", ("QA has no option 'passage'", "Did you mean 'passages'")),
        ("MT.beams=4", ("MT has no option 'beams'",)),
    ],
)
def test_augment_bad_tool_option_fails_before_the_model_loads(
    tmp_path, capsys, no_model, option, needles
):
    src = tmp_path / "in.jsonl"
    src.write_text('{"text": "It weighs 3 kg."}\n')
    code, text = run_main(
        ["augment", "-i", src, "-o", tmp_path / "o", "--tool-option", option, "-q"], capsys
    )
    _one_line(code, text, *needles)
    assert not (tmp_path / "o" / "shards").exists()


def test_eval_bad_tool_option_fails_before_the_model_loads(tmp_path, capsys, no_model):
    data = tmp_path / "data"
    (data / "svamp").mkdir(parents=True)
    (data / "svamp/SVAMP.json").write_text('[{"Body": "a", "Question": "b", "Answer": 1}]')
    code, text = run_main(
        [
            "eval",
            "--tasks",
            "svamp",
            "--data-dir",
            data,
            "-o",
            tmp_path / "o",
            "--tool-option",
            "Calculator.decimals=abc",
        ],
        capsys,
    )
    _one_line(code, text, "Calculator", "decimals", "expected an integer")


# --------------------------------------------------------------------------- from_options


def test_from_options_checks_types_and_constructor_values():
    with pytest.raises(ToolOptionsError, match=r"WikiSearch option top_k='3': expected an integer"):
        create_tool("WikiSearch", top_k="3")
    with pytest.raises(ToolOptionsError, match=r"QA option passages=True: expected an integer"):
        create_tool("QA", passages=True)
    with pytest.raises(
        UserError, match=r"WikiSearch options mode='sparse'.*unknown WikiSearch mode"
    ):
        create_tool("WikiSearch", mode="sparse")
    with pytest.raises(UserError, match="Calendar options today='soon'"):
        create_tool("Calendar", today="soon")
    assert create_tool("Calculator", decimals=4).decimals == 4
    assert (
        create_tool("WikiSearch", top_k=2, corpus=None).config.top_k == 2
    )  # Optional[str]: None is fine
    check_tool_options({"calculator": {"decimals": 3}, "QA": {"passages": 2}})


def test_one_grammar_for_every_command():
    assert parse_tool_options(["A.x=1", "A.y=[1, 2]", "B.path=a=b", '{"C": {"k": 2}}']) == {
        "A": {"x": 1, "y": [1, 2]},
        "B": {"path": "a=b"},
        "C": {"k": 2},
    }
    for bad in ("corpus=x", "A.=1", "{bad json", '{"A": 3}'):
        with pytest.raises(ToolOptionError):
            parse_tool_options([bad])
    from toolformer.cli import augment_cmd, eval_cmd

    # the commands call the one parser (only the flag named in messages differs)
    assert augment_cmd.parse_tool_options is eval_cmd.parse_tool_options is parse_tool_options
    items = ["WikiSearch.top_k=2", '{"QA": {"passages": 5}}']
    assert parse_tool_options(items, "--tool-options") == parse_tool_options(items)
    with pytest.raises(ToolOptionError, match="^--tool-options 'top_k=2'"):
        parse_tool_options(["top_k=2"], "--tool-options")


def test_one_tools_option_reads_values_like_the_run_options():
    """``toolformer tools run -o KEY=VALUE`` (one tool) reads values as ``Tool.KEY=VALUE`` does."""
    items = ["top_k=2", "y=[1, 2]", "path=a=b", "flag=true", "name=plain text"]
    assert (
        parse_options(items)
        == parse_tool_options([f"T.{i}" for i in items])["T"]
        == {"top_k": 2, "y": [1, 2], "path": "a=b", "flag": True, "name": "plain text"}
    )
    for bad in ("decimals", "=1"):
        with pytest.raises(ToolOptionError, match="use KEY=VALUE"):
            parse_options([bad])


# --------------------------------------------------------------------------- create_tools


def test_create_tools_owns_the_sharing_rule():
    model, tok = object(), object()
    tools = create_tools(
        ["QA", "Calculator"],
        {"WikiSearch": {"top_k": 2}},
        model=model,
        tokenizer=tok,
        model_name="smollm2-135m",
        dtype="fp32",
    )
    assert list(tools) == ["QA", "Calculator"]
    assert tools["QA"].reader() == (model, tok)
    assert tools["QA"].search.config.top_k == 2  # the run's WikiSearch options reach QA's retriever
    bf16 = create_tools(["QA"], model=model, tokenizer=tok, model_name="smollm2-135m", dtype="bf16")
    assert bf16["QA"]._model is None  # QA's fp32 reader is not the bf16 run model
    built = {}
    first = create_tools(["WikiSearch", "QA"], built=built)
    again = create_tools(["QA"], built=built)
    assert again["QA"] is first["QA"] and first["QA"].search is first["WikiSearch"]
    # QA with its own corpus searches alone; a comma-separated string and None still work
    own = create_tools("qa, WikiSearch", {"QA": {"corpus": "x.jsonl"}})
    assert own["QA"].search is not own["WikiSearch"] and own["QA"].search.config.corpus == "x.jsonl"
    assert list(create_tools()) == ["Calculator", "Calendar", "WikiSearch", "QA", "MT"]


def test_one_place_builds_tools():
    """create_tool (one tool) goes through create_tools, so QA made alone gets a WikiSearch by
    the same rule; tools.base builds none, and ToolGenerator's default list is the assembly's."""
    from toolformer.generation import types as generation_types
    from toolformer.tools.assembly import DEFAULT_TOOLS

    qa = create_tool("QA", passages=2)
    assert type(qa.search).__name__ == "WikiSearch" and qa.config.passages == 2
    assert create_tool("qa", retriever="dense").search.config.mode == "dense"
    assert not hasattr(base, "create_tools") and not hasattr(base, "create_tool")
    assert not hasattr(base, "reject_unknown_options")
    assert not hasattr(generation_types, "DEFAULT_TOOLS")
    assert tuple(DEFAULT_TOOLS["generator"]) == ("Calculator", "Calendar")


# --------------------------------------------------------------------------- setup


class Slow(Tool):
    name = "SlowSetupTool"
    description = "counts its setups"
    setup_at_start = True

    def __init__(self) -> None:
        self.setups = 0

    def _setup(self) -> None:
        self.setups += 1
        threading.Event().wait(0.05)  # long enough for the other threads to pile up

    def run(self, args: str, context: Optional[ToolContext] = None) -> str:
        return "ok"


def test_setup_is_lazy_idempotent_and_thread_safe():
    tool = Slow()
    assert tool.setups == 0  # nothing loads in the constructor
    threads = [threading.Thread(target=tool.setup) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert tool.setup() is tool and tool.setups == 1


def test_setup_tools_follows_the_class_flag_not_tool_names():
    class Lazy(Slow):
        name = "LazySetupTool"
        setup_at_start = False

    eager, lazy = Slow(), Lazy()
    setup_tools({"SlowSetupTool": eager, "LazySetupTool": lazy})
    assert eager.setups == 1 and lazy.setups == 0
