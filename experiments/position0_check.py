"""Is position 0 (before a document's first token) still special? Annotate Calculator documents
with min_position 0 and compare the scores (L- - L+) of the candidates at position 0 and later,
for each start token given (``default`` = toolformer.models.default_start_token).

Usage: python experiments/calc_corpus.py /tmp/calc_docs.jsonl
       python experiments/position0_check.py /tmp/calc_docs.jsonl 0 24 default "<|im_start|>"
"""

import json
import statistics
import sys
import time

import torch

from toolformer.data_aug.annotator import Annotator
from toolformer.data_aug.types import AnnotatorConfig, Document
from toolformer.models import load_model
from toolformer.tools.calculator import Calculator


def summarize(xs):
    """Count, mean, max and how many reach 0.5 of the scores ``xs``."""
    return {
        "n": len(xs),
        "mean": round(statistics.mean(xs), 3) if xs else None,
        "max": round(max(xs), 3) if xs else None,
        ">=0.5": sum(x >= 0.5 for x in xs),
    }


torch.set_num_threads(1)
lo, hi = int(sys.argv[2]), int(sys.argv[3])
docs = [json.loads(line) for line in open(sys.argv[1])][lo:hi]
model, tok = load_model("smollm2-135m")
for start in sys.argv[4:]:
    start = None if start == "default" else start
    t = time.time()
    ann = Annotator(
        model,
        tok,
        [Calculator()],
        AnnotatorConfig(
            min_position=0, start_token=start, record_candidates=True, max_call_tokens=16
        ),
    )
    s0, s1, kept = [], [], []
    for d in docs:
        r = ann.annotate(Document(d["id"], d["text"]))
        for c in r.candidates:
            (s0 if c.position == 0 else s1).append(c.score)
        kept += [(c.position, round(c.score, 2), c.args, c.result) for c in r.calls]
    print(
        json.dumps(
            {
                "start": start or "default",
                "docs": f"{lo}:{hi}",
                "score_at_0": summarize(s0),
                "score_later": summarize(s1),
                "kept": kept,
                "seconds": round(time.time() - t),
            }
        ),
        flush=True,
    )
