"""``from toolformer import ...``: the public names, imported lazily, and the README's example."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import toolformer

README = Path(__file__).resolve().parents[1] / "README.md"


def test_import_toolformer_loads_neither_torch_nor_transformers():
    code = (
        "import sys, toolformer; "
        "print(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=README.parent
    )
    assert out.stdout.strip() == "[]"


def test_every_public_name_resolves_and_is_documented():
    for name in toolformer.__all__:
        value = getattr(toolformer, name)
        if name not in ("__version__", "TOOLS"):
            assert (value.__doc__ or "").strip(), f"{name} has no docstring"
        assert name == "__version__" or name in toolformer.__doc__, f"{name} is not described"
    assert set(toolformer.__all__) <= set(dir(toolformer))
    with pytest.raises(AttributeError):
        toolformer.no_such_name
    from toolformer.finetune import finetune
    from toolformer.selftrain import selftrain

    assert toolformer.run_finetune is finetune and toolformer.run_selftrain is selftrain
    import toolformer.finetune as module  # the submodule keeps its name

    assert module.finetune is finetune


def readme_example() -> str:
    section = README.read_text(encoding="utf-8").split("## Python API", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_example_runs(monkeypatch, smol_tokenizer, capsys):
    """The example as written, on a tiny model scripted to call the Calculator (fast)."""
    from conftest import make_tiny_model
    from test_generation import ScriptedLlama, chain, sharpen

    from toolformer import models
    from toolformer.tools import base

    example = readme_example()
    assert 8 <= len([line for line in example.splitlines() if line.strip()]) <= 16
    tiny = make_tiny_model(len(smol_tokenizer), seed=3)
    model = ScriptedLlama(tiny.config)
    model.load_state_dict(tiny.state_dict())
    sharpen(model).eval()
    model.set_script(
        chain(smol_tokenizer, ":", " [", "Calcul", "ator", "(", "24", " -", " 9", ")", " ->")
    )
    fake = lambda *a, **k: (model, smol_tokenizer)  # noqa: E731
    monkeypatch.setattr(models, "load_model", fake)
    monkeypatch.setattr(toolformer, "load_model", fake, raising=False)  # cached by an earlier use
    before = set(base.TOOLS.names())
    try:
        exec(compile(example, "README.md", "exec"), {})
    finally:  # the example registers a tool
        for name in set(base.TOOLS.names()) - before:
            base.TOOLS.unregister(name)
    out = capsys.readouterr().out
    assert "[Calculator(24 - 9) -> 15]" in out and "Calculator 24 - 9 -> 15" in out


@pytest.mark.slow
def test_the_readme_example_runs_on_the_shipped_adapter(capsys):
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out
    assert "Calculator" in out and "->" in out
