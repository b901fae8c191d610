"""The self-training corpus: GSM8K-train problems for the Calculator (the ``<<...>>`` marks of
its rationales stripped: they are the answers' calls), Wikipedia paragraphs for the other tools.

Each :class:`CorpusDoc` has a ``text`` (round 0 annotates it with the paper's pipeline), a
``prompt`` (later rounds sample continuations of it) and, for GSM8K, a gold ``answer``.
"""

from __future__ import annotations

import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Tuple

from toolformer.errors import UserError
from toolformer.records import iter_records
from toolformer.selftrain import ladder, word_problems
from toolformer.selftrain import mix as mixed
from toolformer.selftrain.gsm8k import CALC_MARK, parse_gsm8k
from toolformer.text.numbers import format_number


@dataclass
class CorpusDoc:
    """One training document."""

    id: str
    text: str  # the whole document (round 0 annotates it)
    prompt: str  # what later rounds continue
    question: str  # the part compared with the evaluation sets (contamination guard)
    answer: Optional[float] = None  # gold answer, when the source has one
    source: str = "gsm8k"
    steps: Optional[int] = None  # calculator annotations in the gold solution (GSM8K)
    # the mixed curriculum (toolformer.selftrain.mix): the item's kind, the tools that fit it
    # ([]: none), its gold aliases and its reference date (the Calendar's; YYYY-MM-DD)
    kind: Optional[str] = None
    tools: Optional[List[str]] = None
    answers: Optional[List[str]] = None
    date: Optional[str] = None
    # the leveled curriculum (toolformer.selftrain.ladder): the problem's level (1-4) and its
    # whole computation as one Calculator expression ("(45 + 15) / 4")
    level: Optional[int] = None
    expression: Optional[str] = None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def load_corpus(
    path: str,
    doc_template: str,
    prompt_template: str,
    seed: int = 0,
    mix: Optional[Dict[str, float]] = None,
    data_dir: Optional[str] = None,
    report: Optional[Dict[str, Any]] = None,
) -> List[CorpusDoc]:
    """Every row of a JSONL corpus as a :class:`CorpusDoc` (file order; ids ``<stem>-<line>``).

    A GSM8K row (``question``, ``answer`` ending in ``#### n``) becomes a problem with a gold
    answer: ``doc_template``/``prompt_template`` take ``{question}``, ``{solution}``,
    ``{answer}``. A row with only ``text`` is a document without gold (its opening is the
    prompt). ``path`` ``arithmetic`` or ``arithmetic:N`` is the generated corpus of easy word
    problems (:mod:`toolformer.selftrain.word_problems`, drawn with ``seed``) instead of a file,
    ``ladder`` or ``ladder:N`` the leveled one (:mod:`toolformer.selftrain.ladder`; each doc's
    ``level`` and ``expression`` set);
    ``mix`` or ``mix:N`` the mixed curriculum in the proportions ``mix``
    (:mod:`toolformer.selftrain.mix`; its build report is stored into ``report``)."""
    if mixed.is_spec(path):
        rows, built = mixed.build_mix(mixed.parse_spec(path), mixed.parse_mix(mix), seed, data_dir)
        if report is not None:
            report.update(built)
        return mix_docs(rows, doc_template, prompt_template)

    for generated, generate in (
        (word_problems, word_problems.generate_problems),
        (ladder, ladder.generate_ladder),
    ):
        if generated.is_spec(path):
            rows = generate(generated.parse_spec(path), seed=seed)
            return corpus_from_rows(
                ((f"row {i}", r) for i, r in enumerate(rows, 1)),
                generated.NAME,
                path,
                doc_template,
                prompt_template,
            )
    p = Path(path).expanduser()
    if not p.is_file():
        raise corpus_not_found(path)
    stem = "gsm8k" if "gsm8k" in str(p).lower() else p.stem
    return corpus_from_rows(
        iter_records(str(p), on_bad_line="raise"), stem, str(p), doc_template, prompt_template
    )


def mix_docs(
    rows: List[Dict[str, Any]], doc_template: str, prompt_template: str
) -> List[CorpusDoc]:
    """:class:`CorpusDoc` s of mixed-curriculum rows: a math row is read as GSM8K (its gold
    number is ``answer``, so it can be a dev problem); other kinds keep their aliases in
    ``answers`` and ``answer`` None (they train, the dev split is math)."""
    docs = []
    for row in rows:
        if row["kind"] == "math":
            doc = corpus_from_rows(
                [(str(row["id"]), row)], "math", "mix", doc_template, prompt_template
            )[0]
            doc.id, doc.kind, doc.tools = str(row["id"]), "math", list(row["tools"])
            doc.answers = [format_number(doc.answer)]
            docs.append(doc)
            continue
        answers = [str(a) for a in row.get("answers") or []]
        fields = {
            "question": row["question"],
            "solution": "",
            "answer": answers[0] if answers else "",
        }
        try:
            text, prompt = doc_template.format(**fields), prompt_template.format(**fields)
        except (KeyError, IndexError) as exc:
            raise UserError(
                f"template field {exc} unknown; use {{question}}, {{solution}}, {{answer}}"
            ) from None
        docs.append(
            CorpusDoc(
                str(row["id"]),
                text.rstrip(),
                prompt,
                row["question"],
                None,
                row["kind"],
                None,
                row["kind"],
                list(row.get("tools") or []),
                answers,
                row.get("date"),
            )
        )
    return docs


def corpus_not_found(path: Any) -> UserError:
    """The one-line error for a corpus file that does not exist."""
    return UserError(
        f"corpus {path} not found; set SelfTrainConfig.data.corpus to GSM8K's "
        "train.jsonl (or set SelfTrainConfig.data.data_dir), or to arithmetic for "
        "generated easy problems",
        field=("SelfTrainConfig.data.corpus", "SelfTrainConfig.data.data_dir"),
    )


def corpus_from_rows(
    rows: Iterable[Tuple[str, Any]], stem: str, source: str, doc_template: str, prompt_template: str
) -> List[CorpusDoc]:
    """:class:`CorpusDoc` s from ``(where, row)`` pairs (see :func:`load_corpus`); ids
    ``<stem>-<n>``; a row's ``level`` and ``expression`` (the ladder's) are kept. Raises
    :class:`UserError` for a malformed row or no documents."""
    docs: List[CorpusDoc] = []
    for lineno, (where, row) in enumerate(rows, 1):
        if isinstance(row, dict) and "answer" not in row and isinstance(row.get("text"), str):
            text = row["text"].strip()
            if text:
                docs.append(
                    CorpusDoc(f"{stem}-{lineno}", text, wiki_prompt(text), text, None, stem)
                )
            continue
        question, solution, gold = parse_gsm8k(row, f"{source} {where}")
        steps = len(CALC_MARK.findall(str(row["answer"])))
        fields = {"question": question, "solution": solution, "answer": format_number(gold)}
        try:
            text, prompt = doc_template.format(**fields), prompt_template.format(**fields)
        except (KeyError, IndexError) as exc:
            raise UserError(
                f"template field {exc} unknown; use {{question}}, {{solution}}, {{answer}}"
            ) from None
        docs.append(
            CorpusDoc(
                f"{stem}-{lineno}",
                text,
                prompt,
                question,
                gold,
                stem,
                steps,
                level=row.get("level"),
                expression=row.get("expression"),
            )
        )
    if not docs:
        raise UserError(f"corpus {source} holds no documents")
    return docs


def wiki_prompt(text: str, fraction: float = 1 / 3, min_words: int = 8) -> str:
    """The opening of a paragraph that later rounds continue: its first sentence, or the first
    ``fraction`` of its words when that is longer."""
    words = text.split()
    cut = max(min_words, int(len(words) * fraction))
    head = " ".join(words[:cut])
    m = re.search(r"(?<=[.!?])\s", text)
    if m and len(text[: m.start()].split()) >= cut:
        return text[: m.start()]
    return head


def load_wikipedia(n: int) -> List[CorpusDoc]:
    """``n`` paragraphs of the Wikipedia sample that ``toolformer augment`` uses by default."""
    if n <= 0:
        return []
    from toolformer.data_aug.inputs import load_documents

    out = []
    for d in load_documents(None, limit=n):
        doc_id = d.id if str(d.id).startswith("wiki") else f"wiki-{d.id}"
        out.append(CorpusDoc(doc_id, d.text, wiki_prompt(d.text), d.text, None, "wikipedia"))
    return out


def split_corpus(
    docs: List[CorpusDoc], dev_size: int, seed: int, dev_max_steps: Optional[int] = None
) -> tuple:
    """``(train, dev)``: a seeded shuffle of the problems with gold answers; the dev split is the
    last ``dev_size`` of those with at most ``dev_max_steps`` calculations (all when None; held
    out from every round's training), the rest trains."""
    order = list(docs)
    if not order:
        raise UserError(
            "no problem with a gold answer to hold out as the dev split; use a corpus "
            "with answers (GSM8K) or set SelfTrainConfig.dev.data to a JSONL file "
            "(question, answer)",
            field="SelfTrainConfig.dev.data",
        )
    random.Random(seed).shuffle(order)
    eligible = [
        d for d in order if dev_max_steps is None or d.steps is None or d.steps <= dev_max_steps
    ]
    if dev_size >= len(order) or dev_size > len(eligible):
        raise UserError(
            f"dev_size {dev_size} leaves no training problem out of {len(order)} "
            f"({len(eligible)} with at most {dev_max_steps} steps can be dev problems)"
        )
    dev = eligible[len(eligible) - dev_size :]
    held = {id(d) for d in dev}
    return [d for d in order if id(d) not in held], dev
