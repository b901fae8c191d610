"""Text utilities shared by the stages: sentence, passage and paragraph splitting
(:mod:`~toolformer.text.split`), wiki markup to prose (:mod:`~toolformer.text.wikitext`) and
language identification (:mod:`~toolformer.text.langdetect`). Importing this package is cheap.
"""

from toolformer.text.split import split_paragraphs, split_passages, split_sentences  # noqa: F401
from toolformer.text.wikitext import clean_wikitext  # noqa: F401
