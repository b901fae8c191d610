"""Fact questions with gold answers for the retrieval tools (QA, WikiSearch): the ``facts`` kind
of the mixed self-training curriculum (:mod:`toolformer.selftrain.mix`).

Sources, both disjoint from every evaluation set by construction and by a check run on every
build (:func:`check_disjoint`):

- ``trex``: LAMA T-REx facts of the relations no built-in task evaluates. ``lama_trex`` scores
  only relations whose template ends in ``[Y]``; the others present here (P27 citizenship, P106
  profession, P136 genre, P140 religion, P413 position: 4,280 facts) become questions
  (:data:`QUESTIONS`). Which relations are evaluated is read from the harness's own loader at
  build time, so a relation the harness starts to score leaves this source by itself.
- ``efficientqa``: the EfficientQA dev and test questions (NQ questions annotated anew; 3,569),
  none of which is an NQ-open dev question (exact: 0, normalised: 0 when this was written; the
  check recomputes it).

The check drops an item whose (subject, relation) is a fact of any LAMA task (Google-RE's
relations mapped onto their T-REx ids; LAMA SQuAD has no relation, so any item about one of its
subjects), whose normalised question is an NQ-open dev question, or whose text shares a word
13-gram with WikiText-2's test set; what it dropped is counted in :class:`FactsReport`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Set, Tuple

from toolformer.errors import UserError

KIND = "facts"
TOOLS = ["QA", "WikiSearch"]
SOURCES = ("trex", "efficientqa")
# T-REx relations whose template's [Y] is not final (the harness skips them), as questions
QUESTIONS = {
    "P27": "Which country is {subject} a citizen of?",
    "P106": "What is the profession of {subject}?",
    "P136": "What kind of music does {subject} play?",
    "P140": "Which religion is {subject} affiliated with?",
    "P413": "What position does {subject} play?",
}
# Google-RE's relations are T-REx's P19 / P20 / P569 (same subject and relation = same fact)
GOOGLE_RE_RELATIONS = {"place_of_birth": "P19", "place_of_death": "P20", "date_of_birth": "P569"}
EFFICIENTQA_FILES = ("NQ-open.efficientqa.dev.1.1.jsonl", "NQ-open.efficientqa.test.1.1.jsonl")
NQ_DEV = "nq_open/NQ-open.dev.jsonl"


def norm(text: str) -> str:
    """Lowercased words and numbers joined by single spaces (question / subject comparison)."""
    return " ".join(re.findall(r"[a-z0-9]+", str(text).lower()))


def _read(path: Path) -> List[Dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


class WikitextGuard:
    """Word 13-grams shared with reference texts (GPT-3's test, as
    :class:`~toolformer.selftrain.contamination.NgramGuard`); a text shorter than 13 words
    overlaps when its whole word sequence occurs in a reference. Short texts are looked up in
    hashed k-gram sets built once per length k (NgramGuard scans every 13-gram for each short
    text: minutes for a few thousand questions)."""

    def __init__(self, references: Sequence[str], n: int = 13):
        from toolformer.selftrain.contamination import _WORD

        self.n = n
        self.words = [_WORD.findall(t.lower()) for t in references]
        self.by_len: Dict[int, Set[int]] = {}
        self._word = _WORD

    def _grams(self, k: int) -> Set[int]:
        if k not in self.by_len:
            self.by_len[k] = {
                hash(" ".join(ws[i : i + k])) for ws in self.words for i in range(len(ws) - k + 1)
            }
        return self.by_len[k]

    def overlaps(self, text: str) -> bool:
        """Whether ``text`` shares a word n-gram with the references (or, when shorter, occurs
        in one whole)."""
        words = self._word.findall(text.lower())
        if not words:
            return False
        k = min(len(words), self.n)
        grams = self._grams(k)
        return any(hash(" ".join(words[i : i + k])) in grams for i in range(len(words) - k + 1))


@dataclass
class EvalReferences:
    """What the evaluation sets hold that training items must not: LAMA facts as
    ``(normalised subject, relation id)``, LAMA SQuAD's subjects, NQ-open dev's normalised
    questions, and a WikiText-2 test 13-gram guard (None: not checked)."""

    lama_facts: Set[Tuple[str, str]] = field(default_factory=set)
    squad_subjects: Set[str] = field(default_factory=set)
    nq_questions: Set[str] = field(default_factory=set)
    wikitext: Optional[WikitextGuard] = None
    evaluated_relations: Set[str] = field(default_factory=set)


def evaluated_trex_relations(data_dir: Path) -> Set[str]:
    """The T-REx relations the built-in ``lama_trex`` task scores (by its own loader)."""
    from toolformer.eval.tasks import get_task, load_examples

    _, examples = load_examples(get_task("lama_trex"), str(data_dir))
    return {str(ex.meta.get("relation")) for ex in examples}


def eval_references(data_dir: Path, wikitext: bool = True) -> EvalReferences:
    """Read every evaluation set the facts must avoid from ``data_dir`` (the shared data folder).

    Raises :class:`UserError` when a file the check needs is missing: an unchecked source is
    never used."""
    from toolformer.selftrain.contamination import eval_questions

    lama = data_dir / "lama"
    need = [lama / "TREx", lama / "Google_RE", lama / "Squad" / "test.jsonl", data_dir / NQ_DEV]
    missing = [str(p) for p in need if not p.exists()]
    if missing:
        raise UserError(
            f"facts: cannot check disjointness, missing {', '.join(missing)}; "
            "set SelfTrainConfig.data.data_dir to the shared data",
            field="SelfTrainConfig.data.data_dir",
        )
    refs = EvalReferences(evaluated_relations=evaluated_trex_relations(data_dir))
    for rel in sorted(refs.evaluated_relations):
        path = lama / "TREx" / f"{rel}.jsonl"
        if path.is_file():
            refs.lama_facts |= {(norm(r["sub_label"]), rel) for r in _read(path)}
    for name, rel in GOOGLE_RE_RELATIONS.items():
        path = lama / "Google_RE" / f"{name}_test.jsonl"
        if path.is_file():
            refs.lama_facts |= {(norm(r["sub_label"]), rel) for r in _read(path)}
    refs.squad_subjects = {
        norm(r["sub_label"]) for r in _read(lama / "Squad" / "test.jsonl") if r.get("sub_label")
    }
    refs.nq_questions = {norm(r["question"]) for r in _read(data_dir / NQ_DEV)}
    if wikitext:
        texts = eval_questions(["wikitext2"], str(data_dir))
        refs.wikitext = WikitextGuard([t for ts in texts.values() for t in ts], 13)
    return refs


@dataclass
class FactsReport:
    """Per source: candidates read, and items dropped by each disjointness test."""

    candidates: Dict[str, int] = field(default_factory=dict)
    dropped: Dict[str, int] = field(
        default_factory=lambda: {
            "lama_fact": 0,
            "lama_squad_subject": 0,
            "nq_open_dev": 0,
            "wikitext2_13gram": 0,
        }
    )
    kept: int = 0
    trex_relations: List[str] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def check_disjoint(
    rows: Sequence[Dict[str, Any]], refs: EvalReferences, report: Optional[FactsReport] = None
) -> List[Dict[str, Any]]:
    """The rows none of whose facts or texts is in an evaluation set (see the module
    docstring); each drop is counted in ``report``. Rows: ``question``, ``answers``, and for
    LAMA-derived ones ``subject`` and ``relation``."""
    report = report if report is not None else FactsReport()
    out = []
    for row in rows:
        subject = norm(row.get("subject") or "")
        if subject and (subject, str(row.get("relation"))) in refs.lama_facts:
            report.dropped["lama_fact"] += 1
            continue
        if subject and subject in refs.squad_subjects:
            report.dropped["lama_squad_subject"] += 1
            continue
        if norm(row["question"]) in refs.nq_questions:
            report.dropped["nq_open_dev"] += 1
            continue
        text = " ".join([row["question"], *row.get("answers", [])])
        if refs.wikitext is not None and refs.wikitext.overlaps(text):
            report.dropped["wikitext2_13gram"] += 1
            continue
        out.append(row)
    report.kept += len(out)
    return out


def _row(
    id_: str, question: str, answers: Iterable[str], source: str, **extra: Any
) -> Dict[str, Any]:
    answers = [str(a) for a in answers if str(a).strip()]
    return {
        "id": id_,
        "question": question,
        "answer": answers[0] if answers else None,
        "answers": answers,
        "date": None,
        "tools": list(TOOLS),
        "kind": KIND,
        "split": "train",
        "source": source,
        **extra,
    }


def trex_rows(data_dir: Path, evaluated: Set[str]) -> List[Dict[str, Any]]:
    """Questions from the T-REx relations not in ``evaluated`` that :data:`QUESTIONS` covers."""
    out = []
    for rel, template in sorted(QUESTIONS.items()):
        path = data_dir / "lama" / "TREx" / f"{rel}.jsonl"
        if rel in evaluated or not path.is_file():
            continue
        for i, r in enumerate(_read(path)):
            out.append(
                _row(
                    f"trex-{rel}-{i}",
                    template.format(subject=r["sub_label"]),
                    [r["obj_label"]],
                    "trex",
                    subject=r["sub_label"],
                    relation=rel,
                )
            )
    return out


def efficientqa_rows(data_dir: Path) -> List[Dict[str, Any]]:
    """EfficientQA's dev and test questions (a question mark added, as the NQ-open task does)."""
    out = []
    for name in EFFICIENTQA_FILES:
        path = data_dir / "nq_open" / name
        if not path.is_file():
            continue
        for i, r in enumerate(_read(path)):
            q = str(r["question"]).strip()
            q = q[:1].upper() + q[1:] + ("" if q.endswith("?") else "?")
            out.append(
                _row(
                    f"eqa-{Path(name).stem.split('.')[2]}-{i}",
                    q,
                    r.get("answer") or [],
                    "efficientqa",
                )
            )
    return out


def generate_facts(
    n: int,
    seed: int = 0,
    data_dir: Optional[Path] = None,
    sources: Sequence[str] = SOURCES,
    refs: Optional[EvalReferences] = None,
) -> Tuple[List[Dict[str, Any]], FactsReport]:
    """``(rows, report)``: ``n`` fact questions drawn (seeded) from ``sources`` after the
    disjointness check, sources interleaved in equal shares; fewer when the sources hold fewer.

    Raises :class:`UserError` for an unknown source, missing data or no item left."""
    from toolformer.eval.tasks import default_data_dir

    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise UserError(f"facts: unknown source(s) {unknown}; use {', '.join(SOURCES)}")
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    refs = refs or eval_references(data_dir)
    report = FactsReport(trex_relations=sorted(set(QUESTIONS) - refs.evaluated_relations))
    pools = []
    for src in sources:
        rows = (
            trex_rows(data_dir, refs.evaluated_relations)
            if src == "trex"
            else efficientqa_rows(data_dir)
        )
        report.candidates[src] = len(rows)
        rows = [r for r in rows if r["answers"]]
        pools.append(check_disjoint(rows, refs, report))
    rng = random.Random(seed)
    for pool in pools:
        rng.shuffle(pool)
    out: List[Dict[str, Any]] = []
    while len(out) < n and any(pools):
        for pool in pools:
            if pool and len(out) < n:
                out.append(pool.pop())
    if not out:
        raise UserError(f"facts: no question left from {', '.join(sources)} in {data_dir}")
    return out, report
