"""Readers for the evaluation data formats: each turns a file (or folder) into :class:`Example` s.

Loaders keep the file's order (``--limit N`` takes the first N), except the multi-relation LAMA
sets, whose relations are interleaved round-robin so that a limited run covers every relation.
"""

from __future__ import annotations

import json
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

from toolformer.datasets.dateset import generate_dateset
from toolformer.datasets.notool import generate_notool
from toolformer.datasets.rows import check_row
from toolformer.errors import UserError
from toolformer.eval.metrics import LETTERS, parse_gold_number
from toolformer.records import RecordStats, iter_records
from toolformer.registry import Registry
from toolformer.text.numbers import drop_point_zero


@dataclass
class Example:
    """One evaluation item: the values for the prompt template, the gold answer, options."""

    id: str
    fields: Dict[str, str]  # e.g. {"question": ...} or {"text": ...}: fills the task's template
    gold: Any  # float (math), str (lama), list of aliases (qa), option index (multiple choice)
    choices: Optional[List[str]] = None  # multiple choice: the option texts, in letter order
    meta: Dict[str, Any] = field(default_factory=dict)


Loader = Callable[[Path], List[Example]]
LOADERS: Registry[Loader] = Registry("data format")


# --------------------------------------------------------------------------- file helpers


def _need(path: Path, what: str) -> Path:
    if not path.exists():
        raise UserError(
            f"{what} not found at {path}; set EvalConfig.data_dir (or $TOOLFORMER_DATA) "
            "to the folder that holds the evaluation data",
            field="EvalConfig.data_dir",
        )
    return path


def read_text(path: Path, what: str = "data file") -> str:
    """A UTF-8 file's text (a leading byte order mark dropped), or a one-line UserError naming
    the file and the first bad byte."""
    data = _need(path, what).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(
            f"{path}:{line} is not valid UTF-8 (byte 0x{data[exc.start]:02x}); "
            "convert the file to UTF-8"
        ) from None


def read_json(path: Path) -> Any:
    """Parse a JSON file, or raise a UserError naming the file."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None


def read_jsonl_located(
    path: Path, stats: Optional[RecordStats] = None
) -> List[Tuple[str, Dict[str, Any]]]:
    """``(where, row)`` for each JSON object of a JSONL file, read by the shared reader
    (:mod:`toolformer.records`); ``where`` is ``"PATH:N"`` with N the row's physical 1-based
    line (blank and skipped lines counted), for messages about that row.

    A malformed line, a line that is not an object or not UTF-8 is skipped with a warning naming
    the file and line, and counted in ``stats``."""
    stats = stats if stats is not None else RecordStats()
    rows = []
    for where, row in iter_records(str(_need(path, "data file")), stats=stats):
        if not isinstance(row, dict):
            stats.bad_line(path, where, "is not a JSON object", "not_a_record", "")
            continue
        line = where[len("line ") :] if where.startswith("line ") else None
        rows.append((f"{path}:{line}" if line else f"{path} {where}", row))
    return rows


def read_jsonl(path: Path, stats: Optional[RecordStats] = None) -> List[Dict[str, Any]]:
    """The JSON objects of a JSONL file (see :func:`read_jsonl_located`)."""
    return [row for _, row in read_jsonl_located(path, stats)]


def _require(row: Dict[str, Any], keys: Sequence[str], where: str) -> None:
    missing = [k for k in keys if k not in row]
    if missing:
        raise UserError(
            f"{where}: missing field(s) {', '.join(missing)}; "
            f"found {', '.join(sorted(row)) or 'none'}"
        )


def _gold_number(value: Any, where: str) -> float:
    number = parse_gold_number(value)
    if number is None:
        raise UserError(f"{where}: answer {value!r} is not a number")
    if not math.isfinite(number):  # NaN never equals a prediction; no answer reads as infinity
        raise UserError(f"{where}: answer {value!r} is not a finite number; fix or remove the row")
    return number


def _interleave(groups: Iterable[List[Example]]) -> List[Example]:
    """Round-robin over groups: a first-N slice then spans all of them."""
    groups = [list(g) for g in groups]
    out: List[Example] = []
    for i in range(max((len(g) for g in groups), default=0)):
        out.extend(g[i] for g in groups if i < len(g))
    return out


# --------------------------------------------------------------------------- math


@LOADERS.register("svamp")
def load_svamp(path: Path) -> List[Example]:
    """SVAMP.json: the question is ``Body + " " + Question``; the gold is ``Answer``."""
    rows = read_json(path)
    out = []
    for i, row in enumerate(rows):
        _require(row, ("Body", "Question", "Answer"), f"{path} item {i}")
        question = f"{row['Body'].strip()} {row['Question'].strip()}"
        out.append(
            Example(
                str(row.get("ID", i)),
                {"question": question},
                _gold_number(row["Answer"], f"{path} item {i}"),
                meta={"type": row.get("Type"), "equation": row.get("Equation")},
            )
        )
    return out


@LOADERS.register("mawps_subset")
def load_mawps_subset(path: Path) -> List[Example]:
    """MAWPS component sets (AddSub, MultiArith, SingleEq): ``sQuestion`` and ``lSolutions[0]``."""
    rows = read_json(path)
    out = []
    for i, row in enumerate(rows):
        where = f"{path} item {i}"
        _require(row, ("sQuestion", "lSolutions"), where)
        if not row["lSolutions"]:
            raise UserError(f"{where}: empty lSolutions")
        question = " ".join(row["sQuestion"].split())
        out.append(
            Example(
                str(row.get("iIndex", i)),
                {"question": question},
                _gold_number(row["lSolutions"][0], where),
                meta={"equations": row.get("lEquations")},
            )
        )
    return out


@LOADERS.register("mawps_jsonl")
def load_mawps_jsonl(path: Path) -> List[Example]:
    """The MAWPS union JSONL (question, answer). Its restored numbers read "56.0"; written
    back as "56" (MAWPS's original integers) so the question reads naturally."""
    out = []
    for i, (where, row) in enumerate(read_jsonl_located(path)):
        _require(row, ("question", "answer"), where)
        question = drop_point_zero(row["question"])
        out.append(
            Example(
                str(row.get("id", i)),
                {"question": question},
                _gold_number(row["answer"], where),
                meta={"fold": row.get("fold")},
            )
        )
    return out


@LOADERS.register("gsm8k")
def load_gsm8k(path: Path) -> List[Example]:
    """GSM8K: the gold is the number after ``####`` in the rationale."""
    out = []
    for i, (where, row) in enumerate(read_jsonl_located(path)):
        _require(row, ("question", "answer"), where)
        final = str(row["answer"]).rsplit("####", 1)
        if len(final) != 2:
            raise UserError(f"{where}: answer has no '#### <number>' line")
        out.append(
            Example(str(i), {"question": row["question"]}, _gold_number(final[1].strip(), where))
        )
    return out


# --------------------------------------------------------------------------- LAMA

# LAMA's Google-RE templates (facebookresearch/LAMA scripts/run_experiments.py); the T-REx
# templates come from relations.jsonl.
GOOGLE_RE_TEMPLATES = {
    "place_of_birth": "[X] was born in [Y] .",
    "date_of_birth": "[X] (born [Y]).",
    "place_of_death": "[X] died in [Y] .",
}
_TRAILING_PUNCT = re.compile(r"^[\s.!?,;:)\"']*$")


def cloze_prefix(template: str, mask: str, subject: Optional[str] = None) -> Optional[str]:
    """The text before ``mask`` when only punctuation follows it, else None.

    The paper keeps only LAMA queries whose mask is the final token, so that a left-to-right
    model can fill it in.
    """
    head, sep, tail = template.partition(mask)
    if not sep or not _TRAILING_PUNCT.match(tail):
        return None
    if subject is not None:
        head = head.replace("[X]", subject)
    return head.rstrip()


def _lama_facts(path: Path, template: str, relation: str) -> List[Example]:
    prefix = cloze_prefix(template, "[Y]", "\x00")
    if prefix is None:
        return []
    out = []
    for i, (where, row) in enumerate(read_jsonl_located(path)):
        _require(row, ("sub_label", "obj_label"), where)
        out.append(
            Example(
                str(row.get("uuid", f"{relation}-{i}")),
                {"text": prefix.replace("\x00", row["sub_label"])},
                row["obj_label"],
                meta={"relation": relation, "aliases": row.get("obj_aliases", [])},
            )
        )
    return out


@LOADERS.register("lama_trex")
def load_lama_trex(path: Path) -> List[Example]:
    """LAMA T-REx: ``path`` is the LAMA folder (``relations.jsonl`` and ``TREx/P*.jsonl``).

    Each fact becomes its relation's template with the subject filled in, cut at ``[Y]``;
    relations whose ``[Y]`` is not final (e.g. P413 "[X] plays in [Y] position .") are skipped.
    """
    templates = {r["relation"]: r["template"] for r in read_jsonl(path / "relations.jsonl")}
    files = sorted(_need(path / "TREx", "LAMA T-REx folder").glob("*.jsonl"))
    if not files:
        raise UserError(f"no relation files (P*.jsonl) in {path / 'TREx'}")
    groups = [_lama_facts(f, templates[f.stem], f.stem) for f in files if f.stem in templates]
    return _interleave(groups)


@LOADERS.register("lama_google_re")
def load_lama_google_re(path: Path) -> List[Example]:
    """LAMA Google-RE: ``path`` holds ``<relation>_test.jsonl`` files; LAMA's templates."""
    groups = []
    for relation, template in GOOGLE_RE_TEMPLATES.items():
        groups.append(
            _lama_facts(
                _need(path / f"{relation}_test.jsonl", "Google-RE file"), template, relation
            )
        )
    return _interleave(groups)


@LOADERS.register("lama_squad")
def load_lama_squad(path: Path) -> List[Example]:
    """LAMA SQuAD: the masked sentence cut at ``[MASK]``, kept only where the mask is final."""
    out = []
    for i, (where, row) in enumerate(read_jsonl_located(path)):
        _require(row, ("masked_sentences", "obj_label"), where)
        prefix = cloze_prefix(row["masked_sentences"][0], "[MASK]")
        if prefix is not None:
            out.append(Example(str(row.get("id", i)), {"text": prefix}, row["obj_label"]))
    return out


# --------------------------------------------------------------------------- QA


@LOADERS.register("nq_open")
def load_nq_open(path: Path) -> List[Example]:
    """NQ-open: ``question`` (lowercase, no "?"; one is added) and ``answer`` (aliases)."""
    out = []
    for i, (where, row) in enumerate(read_jsonl_located(path)):
        _require(row, ("question", "answer"), where)
        q = row["question"].strip()
        q = q if q.endswith("?") else q + "?"
        aliases = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        out.append(Example(str(i), {"question": q}, [str(a) for a in aliases]))
    return out


# --------------------------------------------------------------------------- multiple choice

_OPTION_LINE = re.compile(r"^\(([A-Z])\)\s*(.*)$")


def format_options(question: str, choices: Sequence[str]) -> str:
    """``question`` followed by an ``Options:`` block, BBH style: ``(A) ...`` one per line."""
    lines = [f"({LETTERS[i]}) {c}" for i, c in enumerate(choices)]
    return question.rstrip() + "\nOptions:\n" + "\n".join(lines)


@LOADERS.register("bbh_mc")
def load_bbh_mc(path: Path) -> List[Example]:
    """BIG-Bench-Hard multiple choice: options ``(A) ...`` inside ``input``; target ``(B)``."""
    data = read_json(path)
    rows = data["examples"] if isinstance(data, dict) and "examples" in data else None
    if rows is None:
        raise UserError(f"{path}: expected a BBH file with an 'examples' list")
    out = []
    for i, row in enumerate(rows):
        where = f"{path} example {i}"
        _require(row, ("input", "target"), where)
        choices = []
        for line in row["input"].splitlines():
            m = _OPTION_LINE.match(line.strip())
            if m and m.group(1) == LETTERS[len(choices)]:
                choices.append(m.group(2).strip())
        target = re.fullmatch(r"\(?([A-Z])\)?", row["target"].strip())
        if not choices or target is None or LETTERS.index(target.group(1)) >= len(choices):
            raise UserError(f"{where}: could not read the options or the target {row['target']!r}")
        out.append(
            Example(
                str(i), {"question": row["input"]}, LETTERS.index(target.group(1)), choices=choices
            )
        )
    return out


@LOADERS.register("bigbench_mc")
def load_bigbench_mc(path: Path) -> List[Example]:
    """BIG-bench JSON task (``target_scores``). The file lists the right option first in almost
    every example, so options are shuffled with a fixed per-example seed, then shown BBH style."""
    data = read_json(path)
    if not isinstance(data, dict) or "examples" not in data:
        raise UserError(f"{path}: expected a BIG-bench task.json with an 'examples' list")
    out = []
    for i, row in enumerate(data["examples"]):
        where = f"{path} example {i}"
        _require(row, ("input", "target_scores"), where)
        options = list(row["target_scores"].items())
        random.Random(f"bigbench-mc-{i}").shuffle(options)
        best = max(score for _, score in options)
        gold = [j for j, (_, score) in enumerate(options) if score == best]
        if len(gold) != 1 or best <= 0:
            raise UserError(f"{where}: needs exactly one option with the top score")
        choices = [str(o) for o, _ in options]
        out.append(
            Example(
                str(i),
                {"question": format_options(row["input"], choices)},
                gold[0],
                choices=choices,
            )
        )
    return out


# --------------------------------------------------------------------------- generated sets

# The evaluation split of the generated sets: how many items, drawn with which seed.
GENERATED_N = 300
GENERATED_SEED = 0


def _generated(rows: List[Dict[str, Any]]) -> List[Example]:
    out = []
    for row in rows:
        check_row(row)
        meta = {
            "date": row["date"],
            "tools": list(row["tools"]),
            "answer": row["answer"],
            "kind": row["kind"],
            "family": row.get("family"),
        }
        out.append(
            Example(row["id"], {"question": row["question"]}, list(row["answers"]), meta=meta)
        )
    return out


@LOADERS.register("dateset")
def load_dateset(path: Path) -> List[Example]:
    """The generated Dateset's eval split (``path`` is not read); gold: the accepted forms,
    ``meta["date"]``: the reference date the Calendar returns for the example."""
    return _generated(generate_dateset(GENERATED_N, GENERATED_SEED, "eval"))


@LOADERS.register("notool")
def load_notool(path: Path) -> List[Example]:
    """The generated no-tool prompts' eval split (``path`` is not read); gold: none."""
    return _generated(generate_notool(GENERATED_N, GENERATED_SEED, "eval"))


# --------------------------------------------------------------------------- perplexity


@LOADERS.register("text")
def load_text(path: Path) -> List[Example]:
    """A raw text file as one example (CRLF normalised to LF), for perplexity."""
    text = read_text(path, "text file").replace("\r\n", "\n")
    return [Example(path.name, {"text": text}, None)]


# --------------------------------------------------------------------------- generic JSONL


def _iso_date(value: Any, where: str) -> str:
    import datetime as dt

    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise UserError(f"{where}: date {value!r} is not YYYY-MM-DD, e.g. 2023-01-30") from None


@LOADERS.register("jsonl")
def load_generic_jsonl(path: Path) -> List[Example]:
    """Any JSONL with ``question`` and ``answer`` (a number, a string, or a list of strings),
    and optionally ``date`` (``YYYY-MM-DD``: what the Calendar returns for that question) and
    ``tools`` (the tools that fit it; ``[]`` with no ``answer``: a prompt no tool helps).

    Each example's ``meta["numeric"]`` says whether its answer is a number; the task scores
    with the math metric when every answer is, with ``no_call`` when every row is a no-tool
    prompt, and with the QA metric otherwise. ``meta["tools"]`` holds a row's ``tools``.
    """
    if not path.is_file():  # the user's own file: --data-dir is no help here
        raise UserError(f"{path}: no such file; pass a JSONL file with question and answer fields")
    rows = read_jsonl_located(path)
    if not rows:
        raise UserError(f"{path} holds no examples")
    out = []
    for i, (where, row) in enumerate(rows):
        no_tool = row.get("tools") == [] and row.get("answer") is None
        _require(row, ("question",) if no_tool else ("question", "answer"), where)
        question = row["question"]
        # a null or empty question would be asked as "None" or as nothing; a number is text enough
        if not (
            isinstance(question, str)
            and question.strip()
            or isinstance(question, (int, float))
            and not isinstance(question, bool)
            and math.isfinite(question)
        ):
            raise UserError(
                f"{where}: question must be a non-empty string, got {question!r}; "
                "fix or remove the row"
            )
        answer = row.get("answer")
        number = None if no_tool else parse_gold_number(answer)
        tools = row.get("tools")
        if tools is not None and not (
            isinstance(tools, list) and all(isinstance(t, str) for t in tools)
        ):
            raise UserError(f"{where}: tools must be a list of tool names, got {tools!r}")
        if no_tool:
            gold: Any = None
        elif number is not None:
            gold: Any = _gold_number(answer, where)
        elif isinstance(answer, str) and answer.strip():
            gold = [answer]
        elif (
            isinstance(answer, list)
            and answer
            and all(
                isinstance(a, str)
                and a.strip()
                or isinstance(a, (int, float))
                and not isinstance(a, bool)
                and math.isfinite(a)
                for a in answer
            )
        ):
            gold = [str(a) for a in answer]
        else:
            raise UserError(
                f"{where}: answer must be a finite number, a string or a non-empty "
                f"list of them, got {answer!r}; fix or remove the row"
            )
        meta = {"numeric": number is not None, "answer": answer, "no_tool": no_tool}
        if tools is not None:
            meta["tools"] = list(tools)
        if row.get("date") is not None:  # the Calendar's date for this question
            meta["date"] = _iso_date(row["date"], where)
        out.append(Example(str(row.get("id", i)), {"question": str(question)}, gold, meta=meta))
    return out
