"""Answer-level majority over several sampled outputs per question: self-consistency (Wang et
al. 2023, "Self-Consistency Improves Chain of Thought Reasoning in Language Models", arXiv
2203.11171, section 2: sample k outputs, answer with the most frequent final answer).

The harness scores each of a question's k outputs with the task's metric as usual; the question's
record is then the output whose extracted answer is the most common one (ties go to the answer
reached first in sample order), with every sample, the vote counts and whether any sample was
right (pass@k) beside it. Outputs without an answer do not vote. The paper's own protocol is
k = 1 (greedy); a score under voting is another protocol and is reported as such.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Dict, List, Optional, Sequence


def _key(extracted: Any) -> Optional[str]:
    """The answer a sample votes for (None: no answer, no vote)."""
    if extracted is None:
        return None
    if isinstance(extracted, float) and extracted.is_integer():  # 7.0 votes as "7"
        extracted = int(extracted)
    text = str(extracted).strip()
    return text or None


def majority_record(records: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """One question's record from its samples' records (each as :func:`score_sample` writes
    it: ``output``, ``calls``, ``extracted``, ``correct``, ``num_tokens``, ...).

    Returns the record of the first sample that gave the winning answer, with ``votes``
    (answer -> count, most common first), ``agreement`` (the winner's share of all k samples),
    ``any_correct`` (pass@k) and ``samples`` (each sample's ``output``, ``calls``,
    ``extracted``, ``correct``, ``num_tokens`` and ``finish_reason``); ``num_tokens`` and
    ``seconds`` are the k samples' sums (the cost of the answer). With no answer in any
    sample, the first sample's record stands. Raises ValueError for no records."""
    if not records:
        raise ValueError("majority_record needs at least one sample record")
    keys = [_key(r.get("extracted")) for r in records]
    counts = Counter(k for k in keys if k is not None)
    if counts:
        top = max(counts.values())
        winner = next(k for k in keys if k is not None and counts[k] == top)
        chosen = records[keys.index(winner)]
    else:
        winner, chosen = None, records[0]
    return {
        **chosen,
        "num_tokens": sum(int(r.get("num_tokens") or 0) for r in records),
        "seconds": sum(float(r.get("seconds") or 0.0) for r in records),
        "votes": dict(counts.most_common()),
        "agreement": (counts[winner] / len(records)) if winner is not None else 0.0,
        "any_correct": any(bool(r.get("correct")) for r in records),
        "samples": [
            {
                "output": r.get("output", ""),
                "calls": r.get("calls", []),
                "extracted": r.get("extracted"),
                "correct": bool(r.get("correct")),
                "num_tokens": int(r.get("num_tokens") or 0),
                "finish_reason": r.get("finish_reason"),
            }
            for r in records
        ],
    }


def voting_summary(samples: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
    """A task's voting statistics (empty when its records were not voted): ``k`` (samples per
    question), ``pass_at_k`` (share of questions with a right sample) and ``mean_agreement``."""
    voted: List[Dict[str, Any]] = [s for s in samples if isinstance(s.get("samples"), list)]
    if not voted or len(voted) != len(samples):
        return {}
    n = len(voted)
    return {
        "k": max(len(s["samples"]) for s in voted),
        "pass_at_k": sum(bool(s.get("any_correct")) for s in voted) / n,
        "mean_agreement": sum(float(s.get("agreement") or 0.0) for s in voted) / n,
    }
