"""The tool interface and registry: validation, lookup, errors, entry-point plugins."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest

from toolformer.errors import MissingDependencyError
from toolformer.tools import base
from toolformer.tools.assembly import create_tool, create_tools
from toolformer.tools.base import (
    COMPUTE_SETTINGS,
    RETRIEVAL_SETTINGS,
    AnnotationSettings,
    Tool,
    ToolContext,
    ToolError,
    ToolInputError,
    ToolLoadError,
    ToolResult,
    UnknownToolError,
    available_tools,
    function_tool,
    get_tool_class,
    load_prompt,
    register_tool,
)

BUILTINS = {"Calculator", "Calendar", "WikiSearch", "QA", "MT"}


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Each test sees a fresh copy of the registry and re-reads entry points."""
    monkeypatch.setattr(base, "TOOLS", base._builtin_registry())


class Echo(Tool):
    name = "Echo"
    description = "Returns its argument."
    prompt = "Add Echo calls.\nInput: {text}\nOutput:"

    def run(self, args, context=None):
        return self.parse_args(args)


# --------------------------------------------------------------------------- the interface


def test_subclass_runs_and_formats_its_prompt():
    tool = Echo()
    assert tool("hi") == "hi"
    assert tool.format_prompt("doc") == "Add Echo calls.\nInput: doc\nOutput:"
    assert repr(tool) == "Echo(name='Echo')"
    assert tool.annotation == RETRIEVAL_SETTINGS and not tool.uses_context


def test_parse_args_strips_whitespace_and_quotes():
    tool = Echo()
    assert tool.parse_args('  "Who was Albert Einstein?" ') == "Who was Albert Einstein?"
    assert tool.parse_args("'x'") == "x"
    assert tool.parse_args("it's") == "it's"


@pytest.mark.parametrize("args", ["", "   ", '""', "' '"])
def test_empty_args_are_a_clear_input_error(args):
    with pytest.raises(ToolInputError, match=r"^Echo needs an argument"):
        Echo().parse_args(args)


def test_format_prompt_without_prompt():
    class NoPrompt(Tool):
        name = "NoPrompt"
        description = "x"

        def run(self, args, context=None):
            return "x"

    with pytest.raises(ToolError, match="no annotation prompt"):
        NoPrompt().format_prompt("doc")


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"description": "d"}, "non-empty 'name'"),
        ({"name": "X"}, "non-empty 'description'"),
        ({"name": "  ", "description": "d"}, "non-empty 'name'"),
        ({"name": "Bad Name", "description": "d"}, "must be an identifier"),
        ({"name": "B", "description": "d", "prompt": "no slot"}, "needs a {text} slot"),
        ({"name": "B", "description": "d", "annotation": {"tau_s": 0.1}}, "AnnotationSettings"),
    ],
)
def test_class_is_validated_when_defined(attrs, message):
    body = dict(attrs, run=lambda self, args, context=None: "x")
    with pytest.raises(TypeError, match=message):
        type("Broken", (Tool,), body)


def test_abstract_intermediate_classes_are_not_validated():
    class Base(Tool):  # no name, no run: an abstract helper base
        pass

    class Concrete(Base):
        name = "Concrete"
        description = "d"

        def run(self, args, context=None):
            return "ok"

    assert Concrete()("") == "ok"
    with pytest.raises(TypeError):
        Base()


def test_settings_follow_appendix_a():
    assert (
        RETRIEVAL_SETTINGS.tau_s,
        RETRIEVAL_SETTINGS.k,
        RETRIEVAL_SETTINGS.m,
        RETRIEVAL_SETTINGS.tau_f,
    ) == (0.05, 5, 5, 1.0)
    assert (
        COMPUTE_SETTINGS.tau_s,
        COMPUTE_SETTINGS.k,
        COMPUTE_SETTINGS.m,
        COMPUTE_SETTINGS.tau_f,
    ) == (0.0, 20, 10, 0.5)
    assert AnnotationSettings() == RETRIEVAL_SETTINGS


def test_tool_result_ok():
    assert ToolResult("A", "x", output="y").ok
    assert not ToolResult("A", "x", error="boom").ok
    assert not ToolResult("A", "x").ok


def test_context_is_hashable_for_caching():
    import datetime as dt

    assert hash(ToolContext(dt.date(2023, 1, 30))) == hash(ToolContext(dt.date(2023, 1, 30)))


def test_load_prompt():
    text = load_prompt("calculator.txt")
    assert text.endswith("Output:") and "{text}" in text
    with pytest.raises(ToolError, match="no prompt file"):
        load_prompt("nope.txt")


def test_missing_dependency_message_is_one_line():
    err = MissingDependencyError("tool 'MT'", "pip install sentencepiece")
    assert (
        str(err)
        == "tool 'MT' needs a package that is not installed: run `pip install sentencepiece`"
    )
    assert isinstance(err, ImportError) and err.install == "pip install sentencepiece"


# --------------------------------------------------------------------------- the registry


def test_builtins_are_listed_without_importing_them():
    import subprocess

    code = (
        "import sys\n"
        "from toolformer.tools.base import available_tools\n"
        "names = available_tools()\n"
        "loaded = [m for m in sys.modules if "
        "m.startswith('toolformer.tools.') and m != 'toolformer.tools.base'\n"
        "          and m not in ('toolformer.tools.executor', 'toolformer.tools.assembly')]\n"
        "print(names, loaded)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    names, loaded = out.stdout.strip().split("] [")
    assert all(repr(n) in names for n in BUILTINS)
    assert loaded == "]"  # no tool module was imported


def test_case_insensitive_lookup():
    from toolformer.tools.calculator import Calculator

    for name in ("Calculator", "calculator", "CALCULATOR", "cAlCuLaToR"):
        assert get_tool_class(name) is Calculator
    assert create_tool("calendar", today="2023-01-30")("") == "Today is Monday, January 30, 2023."


def test_register_tool_decorator_forms():
    @register_tool
    class Shout(Tool):
        name = "Shout"
        description = "Upper-cases its argument."

        def run(self, args, context=None):
            return self.parse_args(args).upper()

    @register_tool(name="Yell")
    class Loud(Shout):
        pass

    assert "Shout" in available_tools() and "Yell" in available_tools()
    assert get_tool_class("shout") is Shout and get_tool_class("yell") is Loud
    assert create_tool("Shout")("hi") == "HI"
    with pytest.raises(TypeError, match="expects a Tool subclass"):
        register_tool(object)


@pytest.mark.parametrize(
    "name, hint",
    [
        ("Calculater", "Calculator"),
        ("calculater", "Calculator"),
        ("wikisearh", "WikiSearch"),
        ("Calender", "Calendar"),
    ],
)
def test_unknown_tool_suggests_and_lists(name, hint):
    with pytest.raises(UnknownToolError) as info:
        get_tool_class(name)
    message = str(info.value)
    assert message.startswith(f"unknown tool {name!r}.")
    assert f"Did you mean {hint!r}?" in message
    assert "Known tools: Calculator, Calendar, MT, QA, WikiSearch." in message
    assert "\n" not in message
    assert isinstance(info.value, KeyError)


def test_unknown_tool_without_a_close_match():
    with pytest.raises(UnknownToolError) as info:
        create_tool("Zzzzzz")
    assert "Did you mean" not in str(info.value) and "Known tools:" in str(info.value)


def test_create_tools_by_list_and_string():
    tools = create_tools("calculator, Calendar", options={"Calendar": {"today": "2023-01-30"}})
    assert list(tools) == ["Calculator", "Calendar"]
    assert tools["Calendar"]("") == "Today is Monday, January 30, 2023."
    assert list(create_tools(["Calculator"])) == ["Calculator"]


def test_function_tool():
    @function_tool("Reverse", example_args="abc")
    def reverse(text: str) -> str:
        """Reverses a string."""
        return text[::-1]

    assert isinstance(reverse, type) and issubclass(reverse, Tool)
    tool = create_tool("reverse")
    assert tool('"abc"') == "cba"
    assert tool.description == "Reverses a string."
    assert not tool.uses_context
    with pytest.raises(ToolInputError, match=r"Reverse needs an argument, e.g. Reverse\(abc\)"):
        tool("")


def test_function_tool_with_context_and_validation():
    import datetime as dt

    @function_tool("Year", description="The document's year.")
    def year(text, context):
        return context.date.year if context and context.date else "unknown"

    tool = year()
    assert tool.uses_context
    assert tool.run("x", ToolContext(dt.date(1999, 1, 1))) == "1999"
    with pytest.raises(TypeError, match="must be an identifier"):
        function_tool("not valid", "d")(lambda s: s)


# --------------------------------------------------------------------------- broken registrations


@pytest.mark.parametrize(
    "spec, error, message",
    [
        ("toolformer_no_such_module_xyz:Tool", ToolLoadError, "is not installed"),
        ("toolformer.tools.calculator:NoSuchClass", ToolLoadError, "has no attribute"),
        ("toolformer.tools.calculator:calculate", ToolLoadError, "is not a Tool subclass"),
        ("toolformer.tools.base:Tool", ToolLoadError, "does not implement run"),
    ],
)
def test_broken_registrations_give_one_line_errors(spec, error, message):
    from toolformer.errors import UserError

    base.TOOLS["Broken"] = spec
    with pytest.raises(error, match=message) as info:
        get_tool_class("broken")
    assert "\n" not in str(info.value)
    assert isinstance(info.value, UserError)  # every command prints it on one line


def test_tool_module_missing_a_package(tmp_path, monkeypatch):
    (tmp_path / "tf_plugin_needs_pkg.py").write_text("import tf_surely_missing_pkg\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    base.TOOLS["Needy"] = "tf_plugin_needs_pkg:Needy"
    with pytest.raises(MissingDependencyError, match="pip install tf_surely_missing_pkg"):
        get_tool_class("Needy")


def test_tool_module_that_raises_on_import(tmp_path, monkeypatch):
    (tmp_path / "tf_plugin_crashes.py").write_text(
        "raise RuntimeError('bad config\\nmore lines')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    base.TOOLS["Crashy"] = "tf_plugin_crashes:X"
    with pytest.raises(ToolLoadError, match="RuntimeError: bad config$"):
        get_tool_class("Crashy")


# --------------------------------------------------------------------------- entry-point plugins

PLUGIN_SOURCE = textwrap.dedent(
    """
    from toolformer.tools.base import Tool

    class Weather(Tool):
        name = "Weather"
        description = "Says the weather."
        prompt = "Add Weather calls.\\nInput: {text}\\nOutput:"

        def run(self, args, context=None):
            return "sunny in " + self.parse_args(args)

    class Tools:
        class Nested(Tool):
            name = "Nested"
            description = "A class inside a namespace."

            def run(self, args, context=None):
                return "nested"
    """
)


def _write_distribution(root, module, entry_points: str):
    (root / f"{module}.py").write_text(PLUGIN_SOURCE)
    info = root / f"{module}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {module}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(entry_points)


def test_entry_point_plugin_from_an_installed_distribution(tmp_path, monkeypatch):
    """A real (fake) distribution on sys.path: discovered by importlib.metadata itself."""
    _write_distribution(
        tmp_path,
        "tf_weather_plugin",
        "[toolformer.tools]\nWeather = tf_weather_plugin:Weather\n"
        "Nested = tf_weather_plugin:Tools.Nested\nCalculator = tf_weather_plugin:Weather\n",
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    names = available_tools()
    assert {"Weather", "Nested"} <= set(names) and BUILTINS <= set(names)
    assert create_tool("weather")("Paris") == "sunny in Paris"
    assert create_tool("Nested")("") == "nested"
    # a plugin cannot silently replace a built-in
    from toolformer.tools.calculator import Calculator

    assert get_tool_class("Calculator") is Calculator


def test_entry_points_are_read_once(monkeypatch):
    calls = []

    def fake_entry_points(group=None):
        calls.append(group)
        return [
            importlib.metadata.EntryPoint("Fake", "toolformer.tools.calculator:Calculator", group)
        ]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert "Fake" in available_tools()
    assert "Fake" in available_tools()
    get_tool_class("fake")
    assert calls == ["toolformer.tools"]


def test_broken_entry_point_does_not_break_the_registry(monkeypatch):
    def fake_entry_points(group=None):
        return [importlib.metadata.EntryPoint("Ghost", "tf_ghost_module_xyz:Ghost", group)]

    monkeypatch.setattr(importlib.metadata, "entry_points", fake_entry_points)
    assert "Ghost" in available_tools()
    assert get_tool_class("Calculator").name == "Calculator"  # others still work
    with pytest.raises(ToolLoadError, match="tf_ghost_module_xyz is not installed"):
        create_tool("Ghost")


def test_entry_point_discovery_failure_is_tolerated(monkeypatch):
    def exploding_entry_points(group=None):
        raise RuntimeError("corrupt metadata")

    monkeypatch.setattr(importlib.metadata, "entry_points", exploding_entry_points)
    with pytest.warns(UserWarning, match="corrupt metadata"):
        assert BUILTINS <= set(available_tools())
