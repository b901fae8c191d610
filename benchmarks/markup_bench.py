"""Wiki markup to prose: text/wikitext.py's cleaner against gensim's ``filter_wiki`` and
mwparserfromhell's ``strip_code`` alone, side by side in one run, on every article page of
gensim's Wikipedia sample (the default corpus).

Ours is gensim's ``filter_wiki`` with steps before it (end sections, ``{{convert}}`` rendered,
file links with their captions, tables, galleries) and after it (headings, lists, captions and
debris lines dropped). Each library is also run with our after-steps (``+ lines``), so that the
comparison of the markup parsers themselves is fair.

Figures per cleaner: seconds for all pages, words kept, leftover markup per 1,000 words
(``{{ }} [[ ]] | <ref ''' == &nbsp; thumb|`` and HTML tags), and how many ``{{convert}}``
quantities survive (their number in the output).

    python benchmarks/markup_bench.py
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import Callable, Dict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's package, not an installed one

_LEFTOVER = re.compile(
    r"\{\{|\}\}|\[\[|\]\]|\||<ref|'''|==|&nbsp;|thumb\||</?[a-z]+[^>]*>", re.IGNORECASE
)
_CONVERT_NUMBER = re.compile(r"\{\{\s*(?:convert|cvt)\s*\|\s*([\d.,]+)", re.IGNORECASE)


def cleaners() -> Dict[str, Callable[[str], str]]:
    import mwparserfromhell
    from gensim.corpora.wikicorpus import filter_wiki

    from toolformer.text.wikitext import clean_wikitext, prose_lines

    def mwp(text: str) -> str:
        return mwparserfromhell.parse(text).strip_code(normalize=True, collapse=True)

    return {
        "ours (gensim + steps)": clean_wikitext,
        "gensim filter_wiki": filter_wiki,
        "gensim + lines": lambda t: prose_lines(filter_wiki(t)),
        "mwparserfromhell": mwp,
        "mwparserfromhell + lines": lambda t: prose_lines(mwp(t)),
    }


def main() -> None:
    from toolformer.retrieval.corpus import gensim_wiki_dump, iter_pages

    pages = [
        p.get("text", "")
        for p in iter_pages(gensim_wiki_dump())
        if p.get("ns", "0") == "0"
        and not p.get("text", "").lstrip().lower().startswith("#redirect")
    ]
    converts = [_CONVERT_NUMBER.findall(p) for p in pages]
    n_convert = sum(len(c) for c in converts)
    print(f"{len(pages)} article pages, {n_convert} {{{{convert}}}} quantities")
    rows = {}
    for name, clean in cleaners().items():
        t = time.perf_counter()
        outs = [clean(p) for p in pages]
        secs = time.perf_counter() - t
        words = sum(len(o.split()) for o in outs)
        left = sum(len(_LEFTOVER.findall(o)) for o in outs)
        kept = sum(sum(n in o for n in c) for o, c in zip(outs, converts))
        rows[name] = (secs, words, left, kept)
        print(
            f"{name:26s} {secs:6.1f} s  words {words:8d}  leftover markup "
            f"{1000 * left / max(1, words):6.2f} per 1k words  convert kept {kept}/{n_convert}",
            flush=True,
        )
    base = rows["ours (gensim + steps)"]
    for name, r in rows.items():
        if r is not base:
            print(
                f"{name} / ours: time {r[0] / base[0]:.2f}x, words {r[1] / base[1]:.2f}x, "
                f"leftover {(r[2] / max(1, r[1])) / max(1e-9, base[2] / max(1, base[1])):.2f}x"
            )


if __name__ == "__main__":
    main()
