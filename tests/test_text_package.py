"""Text utilities have one home, toolformer/text (issue 14 seam 1): the stages import them from
there, and the old names are the same objects, not copies."""

from __future__ import annotations


def test_one_home_for_text_utilities():
    import toolformer.data_aug.inputs as inputs
    import toolformer.text as text
    import toolformer.text.langdetect as langdetect
    import toolformer.tools.corpus as corpus
    import toolformer.tools.langdetect as old_langdetect

    assert corpus.split_passages is text.split_passages and corpus.split_sentences is text.split_sentences
    assert corpus.clean_wikitext is text.clean_wikitext
    assert inputs.split_paragraphs is text.split_paragraphs
    assert old_langdetect.detect_language is langdetect.detect_language


def test_text_package_is_light():
    import subprocess
    import sys

    code = "import sys, toolformer.text; print('torch' in sys.modules, 'transformers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
