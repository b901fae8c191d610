"""The one registry type behind tools, prefilters, tasks, metrics and data loaders."""

import sys
import textwrap

import pytest

from toolformer.errors import UserError
from toolformer.registry import Registry, RegistryLoadError, UnknownNameError


def test_lazy_entries_are_imported_once_on_first_use():
    reg: Registry[int] = Registry("widget")
    reg.register("lazy", "toolformer.eval.metrics:LAMA_WORDS")
    assert not reg.is_loaded("lazy") and reg.names() == ["lazy"]
    assert reg.get("LAZY") == 5 and reg.is_loaded("lazy")


def test_decorator_overwrite_and_mapping_protocol():
    reg: Registry = Registry("widget")

    @reg.register("f")
    def f():
        return 1

    assert reg["F"] is f and "f" in reg and len(reg) == 1 and list(reg) == ["f"]
    with pytest.raises(ValueError, match="widget 'F' is already registered"):
        reg.register("F", 2)
    reg["F"] = 2  # replaces, keeping one spelling
    assert reg.names() == ["F"] and reg.get("f") == 2
    assert reg.get("nope", None) is None
    del reg["f"]
    assert "f" not in reg and len(reg) == 0


def test_unknown_name_is_a_one_line_user_error_and_a_key_error():
    reg: Registry[int] = Registry("metric")
    for name in ("accuracy", "perplexity"):
        reg.register(name, 0)
    with pytest.raises(UnknownNameError) as info:
        reg.get("acuracy")
    err = info.value
    assert (
        str(err)
        == "unknown metric 'acuracy'. Did you mean 'accuracy'? Known metrics: accuracy, perplexity."
    )
    assert isinstance(err, UserError) and isinstance(err, KeyError)
    assert err.name == "acuracy" and err.known == ["accuracy", "perplexity"]
    assert "Did you mean" not in str(reg.unknown("zzzz", extra_hint=", or x:PATH"))
    assert str(reg.unknown("zzzz", extra_hint=", or x:PATH")).endswith("perplexity, or x:PATH.")


def test_validate_and_load_errors():
    reg: Registry = Registry(
        "scorer", validate=lambda name, obj: callable(obj) or "is not callable"
    )
    reg.register("const", "toolformer.eval.metrics:LAMA_WORDS")
    reg.register("missing", "toolformer_no_such_module_xyz:f")
    reg.register("noattr", "toolformer.eval.metrics:no_such_function")
    with pytest.raises(RegistryLoadError, match="scorer 'const': .* is not callable"):
        reg.get("const")
    with pytest.raises(RegistryLoadError, match="is not installed"):
        reg.get("missing")
    with pytest.raises(RegistryLoadError, match="has no attribute 'no_such_function'"):
        reg.get("noattr")


def test_entry_points_join_lazily_and_never_shadow(tmp_path, monkeypatch):
    dist = tmp_path / "tf_reg_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: tf-reg-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        textwrap.dedent("""
        [toolformer.test_widgets]
        shiny = tf_reg_plugin_mod:SHINY
        base = tf_reg_plugin_mod:SHINY
    """)
    )
    (tmp_path / "tf_reg_plugin_mod.py").write_text("SHINY = 'shiny!'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    reg: Registry[str] = Registry("widget", entry_points="toolformer.test_widgets")
    reg.register("base", "built-in")
    assert reg.names() == ["base", "shiny"]
    assert "tf_reg_plugin_mod" not in sys.modules  # listed, not imported
    assert reg.get("Shiny") == "shiny!" and reg.get("base") == "built-in"
    copy = reg.copy()
    copy.register("extra", 1)
    assert "extra" not in reg and copy.get("shiny") == "shiny!"
