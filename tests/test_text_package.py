"""Text utilities have one home, toolformer/text: the stages import them from there, and no
other module re-exports them."""

from __future__ import annotations


def test_one_home_for_text_utilities():
    import importlib.util

    import toolformer.data_aug.inputs as inputs
    import toolformer.retrieval.corpus as corpus

    assert importlib.util.find_spec("toolformer.tools.langdetect") is None
    assert importlib.util.find_spec("toolformer.tools.corpus") is None
    assert not hasattr(corpus, "split_sentences")  # it used to re-export it
    assert not hasattr(inputs, "PARAGRAPH_MIN_WORDS")


def test_text_package_is_light():
    import subprocess
    import sys

    code = (
        "import sys, toolformer.text; print('torch' in sys.modules, 'transformers' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.split() == ["False", "False"]
