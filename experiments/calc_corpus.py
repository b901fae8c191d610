"""Write the paragraphs of the default corpus that pass the Calculator prefilter to a JSONL file.

Usage: python experiments/calc_corpus.py OUT.jsonl
The default corpus (gensim's Wikipedia sample) is disjoint from every evaluation set.
"""

import json
import sys

from toolformer.data_aug.heuristics import PrefilterInput, prefilter
from toolformer.data_aug.inputs import DEFAULT_CORPUS_DATE
from toolformer.retrieval.corpus import iter_wikipedia_articles
from toolformer.text.split import split_paragraphs


def main(out: str) -> None:
    rows = []
    for article in iter_wikipedia_articles():
        for k, para in enumerate(split_paragraphs(article["text"], 160)):
            rows.append(
                {
                    "id": f"wiki:{article['title'].replace(' ', '_')}#{k}",
                    "title": article["title"],
                    "text": para,
                    "date": DEFAULT_CORPUS_DATE.isoformat(),
                }
            )
    kept = [
        r
        for r in rows
        if prefilter("Calculator", PrefilterInput(text=r["text"], doc_id=r["id"])).keep
    ]
    with open(out, "w", encoding="utf-8") as f:
        for r in kept:
            f.write(json.dumps(r) + "\n")
    print(f"{len(rows)} paragraphs, {len(kept)} pass the Calculator prefilter -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/calc_docs.jsonl")
