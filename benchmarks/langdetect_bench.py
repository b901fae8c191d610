"""Language identification for the MT prefilter: our text/langdetect.py against lingua
(lingua-language-detector) and py3langid, side by side in one run.

Figures (the ones RESULTS.md quotes for ours):

1. held-out sentences: the language of each HELD_OUT sentence of tests/test_langdetect.py
   (42 sentences, 7 Latin-script languages; never used to tune ours);
2. foreign chunks in English text: every non-English sentence of TUNING and HELD_OUT with at
   least 10 words, each SCRIPTS sentence, set in three English frames, plus the EMBEDDED cases;
   found = a span of the right language that covers at least half of the chunk (py3langid has
   no span detection: it names the language of ours' windows instead);
3. false positives: share of shared Wikipedia passages (English) where a foreign chunk is
   flagged, and the seconds per passage;
4. English sentences full of foreign names (ENGLISH_WITH_NAMES and the names cases of
   tests/test_langdetect.py) that are still called English.

Languages are limited to the ones ours knows (LANGUAGE_NAMES) for every detector.

    python benchmarks/langdetect_bench.py                  # all 97k passages
    python benchmarks/langdetect_bench.py --passages 5000
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # this checkout's package, not an installed one

FRAMES = [
    ("The guide read the sign aloud: ", ", and then he walked on to the next room."),
    ('In her letter she wrote "', '" before signing it with her initials.'),
    ("According to the report, the inscription says ", " and it dates from the last century."),
]


def lingua_detector():
    from lingua import Language, LanguageDetectorBuilder

    from toolformer.text.langdetect import LANGUAGE_NAMES

    by_iso = {lang.iso_code_639_1.name.lower(): lang for lang in Language.all()}
    langs = [by_iso[c] for c in LANGUAGE_NAMES if c in by_iso]
    return LanguageDetectorBuilder.from_languages(*langs).build()


def py3langid_identifier():
    from py3langid.langid import MODEL_DIR, MODEL_FILE, LanguageIdentifier

    from toolformer.text.langdetect import LANGUAGE_NAMES

    ident = LanguageIdentifier.from_modelpath(Path(MODEL_DIR) / MODEL_FILE, norm_probs=True)
    ident.set_languages([c for c in LANGUAGE_NAMES if c in ident.labels])
    return ident


def detectors() -> Dict[
    str, Tuple[Callable[[str], str], Callable[[str], List[Tuple[int, int, str]]]]
]:
    """name -> (language of a text, foreign spans of a text)."""
    from toolformer.text.langdetect import detect_language, find_foreign_spans

    lingua = lingua_detector()
    langid = py3langid_identifier()

    def lingua_lang(text: str) -> str:
        lang = lingua.detect_language_of(text)
        return lang.iso_code_639_1.name.lower() if lang else "und"

    def lingua_spans(text: str, min_tokens: int = 10) -> List[Tuple[int, int, str]]:
        results = lingua.detect_multiple_languages_of(text)
        foreign = [
            r
            for r in results
            if r.language.iso_code_639_1.name.lower() != "en" and r.word_count >= min_tokens
        ]
        english = sum(
            r.word_count for r in results if r.language.iso_code_639_1.name.lower() == "en"
        )
        if not foreign or english == 0:  # the paper's rule: a chunk inside English text
            return []
        return [
            (r.start_index, r.end_index, r.language.iso_code_639_1.name.lower()) for r in foreign
        ]

    def langid_lang(text: str) -> str:
        return langid.classify(text)[0]

    def langid_spans(text: str) -> List[Tuple[int, int, str]]:
        return [
            (s, e, langid_lang(text[s:e]))
            for s, e, _ in find_foreign_spans(text)
            if langid_lang(text[s:e]) != "en"
        ]

    return {
        "ours": (lambda t: detect_language(t)[0], find_foreign_spans),
        "lingua": (lingua_lang, lingua_spans),
        "py3langid": (langid_lang, langid_spans),
    }


def chunks() -> List[Tuple[str, int, int, str]]:
    """(text, chunk start, chunk end, language) of every foreign chunk in English text."""
    from test_langdetect import EMBEDDED, HELD_OUT, SCRIPTS, TUNING

    out = []
    sentences = [
        (s, lang)
        for table in (TUNING, HELD_OUT)
        for lang, ss in table.items()
        if lang != "en"
        for s in ss
        if len(s.split()) >= 10
    ]
    sentences += [(s, lang) for lang, s in SCRIPTS.items()]
    for s, lang in sentences:
        body = s.rstrip(".!?")
        for before, after in FRAMES:
            out.append((before + body + after, len(before), len(before) + len(body), lang))
    for before, chunk, after, lang in EMBEDDED:
        out.append((before + chunk + after, len(before), len(before) + len(chunk), lang))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--passages", type=int, default=None, help="first N shared passages")
    args = ap.parse_args()
    from test_langdetect import ENGLISH_WITH_NAMES, HELD_OUT

    names = list(ENGLISH_WITH_NAMES) + [
        "Jean-Paul Sartre and Simone de Beauvoir met in Paris in 1929.",
        "Los Angeles and San Francisco are the largest cities in California.",
        "The Louvre is the most visited museum in the world.",
        "I went to the café and ordered a croissant.",
    ]

    shared = Path(os.environ.get("TOOLFORMER_SHARED", "/work/shared")) / "data" / "wiki_corpus"
    passages = []
    with open(shared / "passages.jsonl", encoding="utf-8") as fh:
        for line in fh:
            passages.append(json.loads(line)["text"])
            if args.passages and len(passages) == args.passages:
                break
    cases = chunks()
    held = [(s, lang) for lang, ss in HELD_OUT.items() for s in ss]
    rows = {}
    for name, (lang_of, spans_of) in detectors().items():
        right = sum(lang_of(s) == lang for s, lang in held)
        found = 0
        for text, lo, hi, lang in cases:
            for s, e, got in spans_of(text):
                if got == lang and min(e, hi) - max(s, lo) >= (hi - lo) / 2:
                    found += 1
                    break
        t = time.perf_counter()
        flagged = sum(bool(spans_of(p)) for p in passages)
        per = (time.perf_counter() - t) / len(passages)
        english = sum(lang_of(s) == "en" for s in names)
        rows[name] = (right, found, flagged, per)
        print(
            f"{name:10s} held-out {right}/{len(held)}  chunks found {found}/{len(cases)}  "
            f"English with names {english}/{len(names)}  "
            f"false positives {flagged}/{len(passages)} ({100 * flagged / len(passages):.2f}%)  "
            f"{1000 * per:.2f} ms/passage",
            flush=True,
        )
    base = rows["ours"]
    for name in ("lingua", "py3langid"):
        r = rows[name]
        print(
            f"{name}/ours: held-out {r[0] - base[0]:+d}, chunks {r[1] - base[1]:+d}, "
            f"false positives {r[2] - base[2]:+d}, time {r[3] / base[3]:.2f}x"
        )


if __name__ == "__main__":
    main()
