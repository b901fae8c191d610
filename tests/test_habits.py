"""Comments and docstrings say what they mean, never only a tracker number.

A reader outside the project cannot open a reference to an issue, a fault or an item of a
tracker by its number; a comment names the behaviour or the bug it guards against instead (the
examples are in ``test_citations_are_found``). Scanned: Python comments and bare string
statements (docstrings), shell and YAML comments, and Markdown files, under toolformer/, tests/,
benchmarks/ and experiments/.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("toolformer", "tests", "benchmarks", "experiments")

# an issue, fault or seam with its number, an item "of" something, a number in parentheses after
# "#", or a section rule naming only an item; word boundaries keep a word that merely ends in
# "fault" out (test_legitimate_text_is_not_flagged)
CITATION = re.compile(
    r"\b(?:issues?|faults?|seams?)\s+#?\d+"
    r"|\bitems?\s+\d+\s+of\b"
    r"|\(#\d+\)"
    r"|-{3,}\s*items?\s+\d+",
    re.IGNORECASE,
)


def python_texts(source: str) -> Iterator[Tuple[int, str]]:
    """``(line, text)`` of every comment and every bare string statement (module, class and
    function docstrings, attribute docstrings) of a Python source."""
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            yield tok.start[0], tok.string
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            yield node.lineno, node.value.value


def hash_comments(source: str) -> Iterator[Tuple[int, str]]:
    """``(line, text)`` of every ``#`` comment of a shell script or YAML file (a ``#`` at the
    start of a line or after a space)."""
    for number, line in enumerate(source.splitlines(), 1):
        m = re.search(r"(?:^|\s)(#.*)", line)
        if m:
            yield number, m.group(1)


def texts(path: Path) -> Iterator[Tuple[int, str]]:
    """The comment and docstring texts of ``path`` that this test reads (nothing for data)."""
    source = path.read_text(encoding="utf-8")
    if path.suffix == ".py":
        yield from python_texts(source)
    elif path.suffix in (".sh", ".yaml", ".yml"):
        yield from hash_comments(source)
    elif path.suffix == ".md":
        yield from enumerate(source.splitlines(), 1)


def scanned_files() -> List[Path]:
    """Every source, script, config and Markdown file under the scanned folders."""
    files = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*")):
            if (
                path.is_file()
                and path.suffix in (".py", ".sh", ".yaml", ".yml", ".md")
                and "__pycache__" not in path.parts
            ):
                files.append(path)
    return files


def test_no_comment_or_docstring_cites_a_tracker_number():
    files = scanned_files()
    assert any(p.name == "pipeline.py" for p in files)  # the scan found the package
    offenders = [
        f"{path.relative_to(ROOT)}:{line}: {m.group(0)!r}"
        for path in files
        for line, text in texts(path)
        for m in CITATION.finditer(text)
    ]
    assert offenders == [], "say what is meant instead of a number:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    "text",
    [
        "only where a word or number starts (issue 12, fault 5).",
        "Issue 12, fault 4: every call is read back the same way",
        "(issue 13 item 3); one options grammar",
        "the default until issue 12, did per window",
        "a thread-safe setup (issue 14 seam 2)",
        "issue 12 faults 5-7",
        "see item 3 of the cleanup list",
        "the merge fixed it (#12)",
        "Issue #7: the stop string",
        "# --------------------------------------------------------------------------- item 4",
    ],
)
def test_citations_are_found(text):
    assert CITATION.search(text)


@pytest.mark.parametrize(
    "text",
    [
        "Section 2 of the paper (Schick et al. 2023), Table 3, Appendix A",
        "the server answered 404; a 500 is retried, HTTP 429 waits",
        "(N items, default 3000): the kinds' relative weights",
        "first eligible position (default 0: the paper)",
        "kept by round 0 (``wiki:Ayn_Rand#0``)",
        "items 0-2 expect a call and have a high p('[')",
        "item 0: answer nan is not a finite number",
        (
            "# --------------------------------------------------------------------------- "
            "start of text"
        ),
        "the issue is that the cache is cold",
    ],
)
def test_legitimate_text_is_not_flagged(text):
    assert not CITATION.search(text)


def test_only_comments_and_docstrings_of_python_are_read():
    source = '"""Module doc."""\nx = "a string"  # a comment\n\ndef f():\n    """Function doc."""\n'
    assert [t for _, t in python_texts(source)] == ["# a comment", "Module doc.", "Function doc."]
