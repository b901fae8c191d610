"""Wiki markup to readable prose: templates, references, tables, lists, captions, categories and
trailing reference sections dropped; ``{{convert}}`` and ``{{lang}}``-like templates rendered.

Used for gensim's Wikipedia sample (:mod:`toolformer.retrieval.corpus`), which is both the default
search corpus and the default annotation corpus. The ``mwparserfromhell`` alternative was
measured in ``benchmarks/markup_bench.py`` and left more markup behind (RESULTS.md).
"""

from __future__ import annotations

import re
from typing import List, Sequence

from toolformer.text.numbers import is_numeral


def _drop_balanced(text: str, opener: str, closer: str, starts: Sequence[str]) -> str:
    """Remove every ``opener...closer`` block (nesting respected) whose head is in ``starts``."""
    marks = re.compile(re.escape(opener) + "|" + re.escape(closer))
    out: List[str] = []
    pos = 0  # text[pos:] is not yet copied
    depth = 0
    drop_from = -1
    for m in marks.finditer(text):
        if depth == 0:
            if m.group() != opener:
                continue
            head = text[m.end() : m.end() + 12].lstrip().lower()
            if any(head.startswith(s) for s in starts):
                drop_from, depth = m.start(), 1
        elif m.group() == opener:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                out.append(text[pos:drop_from])
                pos = m.end()
    if depth:  # unclosed block: drop to the end
        out.append(text[pos:drop_from])
        pos = len(text)
    out.append(text[pos:])
    return "".join(out)


_UNIT_SEPS = {
    "-": "\u2013",
    "\u2013": "\u2013",
    "to": "to",
    "and": "and",
    "or": "or",
    "by": "by",
    "x": "\u00d7",
    "\u00d7": "\u00d7",
    "+/-": "\u00b1",
}
_CONVERT = re.compile(r"\{\{\s*(?:convert|cvt)\s*\|([^{}]*)\}\}", re.IGNORECASE)
_KEEP_LAST = re.compile(
    r"\{\{\s*(?:lang(?:-[a-z]+)?|nowrap|nobr|nowr)\s*\|([^{}]*)\}\}", re.IGNORECASE
)


def _render_convert(m: "re.Match[str]") -> str:
    """``{{convert|135765|km2|...}}`` -> "135765 km2" (gensim would drop the whole template)."""
    params = [p.strip() for p in m.group(1).split("|") if "=" not in p]
    if len(params) < 2 or not is_numeral(params[0]):
        return ""
    if params[1] in _UNIT_SEPS and len(params) >= 4:
        return f"{params[0]} {_UNIT_SEPS[params[1]]} {params[2]} {params[3]}".replace(
            " \u2013 ", "\u2013"
        )
    if len(params) >= 4 and is_numeral(params[2]):  # 6|ft|4|in
        return f"{params[0]} {params[1]} {params[2]} {params[3]}"
    return f"{params[0]} {params[1]}"


def _render_keep_last(m: "re.Match[str]") -> str:
    params = [p for p in m.group(1).split("|") if "=" not in p]
    return params[-1].strip() if params else ""


_END_SECTIONS = re.compile(
    r"^==+\s*(see also|references|notes|external links|further reading|bibliography|sources|"
    r"citations|footnotes|works cited|notes and references|references and notes)\s*==+\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING = re.compile(r"^=+.*=+\s*$")
_PROSE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*$")
_EMPTY_PARENS = re.compile(r"\(\s*(?:[,;:\u2013-]\s*)*\)")
_PAREN_LEAD = re.compile(r"\(\s*(?:[,;:]\s*)+")
_PAREN_TAIL = re.compile(r"(?:\s*[,;:])+\s*\)")
_SPACE_PUNCT = re.compile(r"\s+([,.;:!?])")
_MULTI_SPACE = re.compile(r"[ \t\u00a0\u200a\u2009]+")
_BOLD_ITALIC = re.compile(r"'{2,}")
_LEFTOVER = re.compile(r"\b(?:thumb|thumbnail|upright|left|right|center)\|", re.IGNORECASE)
_MIN_LINE_WORDS = 6


def clean_wikitext(wikitext: str) -> str:
    """Wiki markup -> plain prose paragraphs separated by blank lines.

    gensim's ``filter_wiki`` strips templates, references, links and tags; before it we drop
    file/image links with their captions, tables and galleries, and after it everything that is
    not running prose: headings, lists, captions and leftovers (a kept line ends like a sentence).
    """
    from gensim.corpora.wikicorpus import filter_wiki

    text = wikitext
    end = _END_SECTIONS.search(text)
    if end:
        text = text[: end.start()]
    text = _CONVERT.sub(_render_convert, text)
    text = _KEEP_LAST.sub(_render_keep_last, text)
    text = _drop_balanced(text, "[[", "]]", ("file:", "image:", "category:", "media:"))
    text = _drop_balanced(text, "{|", "|}", ("",))
    text = re.sub(r"<gallery.*?</gallery>", "", text, flags=re.DOTALL | re.IGNORECASE)
    return prose_lines(filter_wiki(text))


def prose_lines(text: str) -> str:
    """The running prose of markup-free text (what :func:`clean_wikitext` keeps after gensim's
    ``filter_wiki``): headings, lists, captions and leftovers dropped, spacing tidied, each kept
    line ending like a sentence; paragraphs separated by blank lines."""
    paragraphs: List[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "*#:;|!{}=" or _HEADING.match(line):
            continue
        line = _BOLD_ITALIC.sub("", line)
        line = _LEFTOVER.sub("", line)
        line = _EMPTY_PARENS.sub("", line)
        line = _PAREN_LEAD.sub("(", line)
        line = _PAREN_TAIL.sub(")", line)
        line = _MULTI_SPACE.sub(" ", line)
        line = _SPACE_PUNCT.sub(r"\1", line).strip()
        if len(line.split()) < _MIN_LINE_WORDS or not _PROSE_END.search(line):
            continue  # captions, list intros, template debris
        paragraphs.append(line)
    return "\n\n".join(paragraphs)
