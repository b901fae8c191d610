"""Moved to :mod:`toolformer.text.langdetect` (text utilities live in ``toolformer/text``); this
name stays importable for scripts written against it."""

from toolformer.text.langdetect import *  # noqa: F401,F403
