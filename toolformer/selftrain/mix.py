"""The mixed curriculum (``--corpus mix[:N]`` with ``--mix math=0.4,facts=0.25,...``): items of
several kinds, each with its gold answer(s), the tools that fit it (none for ``notool``) and,
for dates, its own reference date (the Calendar returns it during Grow).

Kinds and their sources:

- ``math``: the generated easy word problems (:mod:`toolformer.selftrain.word_problems`) ->
  Calculator;
- ``facts``: :mod:`toolformer.selftrain.facts` (disjointness from the evaluation sets checked on
  every build) -> QA, WikiSearch;
- ``dates``: ``toolformer.datasets.dateset.generate_dateset(n, seed, "train")`` -> Calendar;
- ``notool``: ``toolformer.datasets.notool.generate_notool(n, seed, "train")``: no tool; the
  right output has no call.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from toolformer.errors import UserError
from toolformer.selftrain import word_problems
from toolformer.selftrain.spec import is_sized_spec, parse_sized_spec

_MIX = "SelfTrainConfig.data.mix"  # the field the errors below name

NAME = "mix"
DEFAULT_SIZE = 3000
KINDS = ("math", "facts", "dates", "notool")
DEFAULT_MIX = {"math": 0.4, "facts": 0.25, "dates": 0.2, "notool": 0.15}
# the tools that fit each kind (an item needs at least one of them offered)
KIND_TOOLS: Dict[str, Tuple[str, ...]] = {
    "math": ("Calculator",),
    "facts": ("QA", "WikiSearch"),
    "dates": ("Calendar",),
    "notool": (),
}


def is_spec(spec: str) -> bool:
    """True for ``mix`` / ``mix:N`` (a generated corpus rather than a path)."""
    return is_sized_spec(spec, NAME)


def parse_spec(spec: str) -> int:
    """The size in ``mix`` or ``mix:N``; raises :class:`UserError` otherwise."""
    return parse_sized_spec(spec, NAME, DEFAULT_SIZE)


def parse_mix(value: Union[str, Mapping[str, Any], None]) -> Dict[str, float]:
    """``"math=0.4,facts=0.25"`` (or a dict) -> ``{"math": 0.4, "facts": 0.25}``: kinds not named
    get weight 0; weights are relative (they need not sum to 1).

    Raises :class:`UserError` (one line) for an unknown kind, a weight that is not a number or is
    negative, or weights that sum to zero."""
    if value is None:
        return dict(DEFAULT_MIX)
    if isinstance(value, str):
        items = {}
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            kind, sep, weight = part.partition("=")
            if not sep:
                raise UserError(
                    f"SelfTrainConfig.data.mix: {part!r} is not "
                    "kind=weight (e.g. math=0.4,notool=0.15)",
                    field=_MIX,
                )
            items[kind.strip()] = weight.strip()
    else:
        items = dict(value)
    out = {}
    for kind, weight in items.items():
        if kind not in KINDS:
            raise UserError(
                f"SelfTrainConfig.data.mix: unknown kind {kind!r}; kinds: {', '.join(KINDS)}",
                field=_MIX,
            )
        try:
            w = float(weight)
        except (TypeError, ValueError):
            raise UserError(
                f"SelfTrainConfig.data.mix: the weight of {kind} must be a number, got {weight!r}",
                field=_MIX,
            ) from None
        if not w >= 0:  # also NaN
            raise UserError(
                f"SelfTrainConfig.data.mix: the weight of {kind} must be >= 0, got {weight!r}",
                field=_MIX,
            )
        out[kind] = w
    if not sum(out.values()) > 0:
        raise UserError(
            f"SelfTrainConfig.data.mix: the weights sum to zero ({value!r}); give at least "
            "one kind a weight > 0, e.g. math=0.4,facts=0.25,dates=0.2,notool=0.15",
            field=_MIX,
        )
    return {k: out.get(k, 0.0) for k in KINDS}


def counts(size: int, weights: Mapping[str, float]) -> Dict[str, int]:
    """Items per kind for a corpus of ``size``: shares of the weights, the remainder given to the
    largest fractional parts (they sum to ``size``)."""
    total = sum(weights.values())
    exact = {k: size * w / total for k, w in weights.items()}
    out = {k: int(v) for k, v in exact.items()}
    for k in sorted(exact, key=lambda k: -(exact[k] - out[k]))[: size - sum(out.values())]:
        out[k] += 1
    return out


def check_tools(
    tools_of_items: Sequence[Tuple[str, Sequence[str]]], offered: Sequence[str]
) -> None:
    """Raise :class:`UserError` for an item none of whose fitting tools is offered.

    ``tools_of_items``: ``(what, tools)`` pairs (an item id or a kind, and its tools); an empty
    tool list (no tool helps) always fits."""
    have = set(offered)
    for what, tools in tools_of_items:
        if tools and not have & set(tools):
            raise UserError(
                f"curriculum item {what} needs the tool {' or '.join(tools)}, which "
                f"SelfTrainConfig.tools ({', '.join(offered)}) does not offer; add it "
                "to SelfTrainConfig.tools or give that kind weight 0 in "
                "SelfTrainConfig.data.mix",
                field=("SelfTrainConfig.tools", _MIX),
            )


def _other_kind(kind: str, n: int, seed: int) -> List[Dict[str, Any]]:
    """``dates`` / ``notool`` rows from the dataset generators (train split)."""
    try:
        if kind == "dates":
            from toolformer.datasets.dateset import generate_dateset as gen
        else:
            from toolformer.datasets.notool import generate_notool as gen
    except ImportError:
        raise UserError(
            f"the {kind} generator (toolformer.datasets) is not installed here; "
            f"give {kind} weight 0 in SelfTrainConfig.data.mix",
            field=_MIX,
        ) from None
    rows = list(gen(n, seed, "train"))
    for r in rows:
        if kind == "dates" and not r.get("date"):
            raise UserError(
                f"dates item {r.get('id')!r} has no reference date; the Calendar "
                "needs one (YYYY-MM-DD)"
            )
    return rows


def _answers(row: Dict[str, Any]) -> List[str]:
    if row.get("answers") is not None:
        return [str(a) for a in row["answers"]]
    return [] if row.get("answer") is None else [str(row["answer"])]


def build_mix(
    size: int,
    weights: Mapping[str, float],
    seed: int,
    data_dir: Optional[Any] = None,
) -> Tuple[List[Dict[str, Any]], Dict[str, Any]]:
    """``(rows, report)``: ``size`` items in the proportions ``weights``, in a seeded order.

    Math rows are GSM8K-shaped (``question``, ``answer`` with ``#### n``) plus ``kind``/``tools``;
    the others have the curriculum shape (``id``, ``question``, ``answer``, ``answers``,
    ``date``, ``tools``, ``kind``). ``report``: items per kind and the facts check's drops."""
    import random
    from pathlib import Path

    from toolformer.eval.tasks import default_data_dir
    from toolformer.selftrain.facts import (
        FactsReport,
        check_disjoint,
        eval_references,
        generate_facts,
    )

    want = counts(size, weights)
    data_dir = Path(data_dir) if data_dir else default_data_dir()
    refs = eval_references(data_dir)  # every build checks against the evaluation sets
    rows: List[Dict[str, Any]] = []
    report: Dict[str, Any] = {"requested": want}
    if want["math"]:
        for i, r in enumerate(word_problems.generate_problems(want["math"], seed=seed), 1):
            rows.append({**r, "id": f"math-{i}", "kind": "math", "tools": ["Calculator"]})
    if want["facts"]:
        facts, rep = generate_facts(want["facts"], seed=seed, data_dir=data_dir, refs=refs)
        rows += facts
        report["facts_check"] = rep.to_dict()
    for kind in ("dates", "notool"):
        if want[kind]:
            rows += [{**r, "kind": kind} for r in _other_kind(kind, want[kind], seed)]
    # the other kinds pass the same check (NQ-open dev question, WikiText-2 13-gram)
    others = FactsReport()
    rows = [r for r in rows if r["kind"] == "facts"] + check_disjoint(
        [
            {"question": r["question"], "answers": _answers(r), "_row": r}
            for r in rows
            if r["kind"] != "facts"
        ],
        refs,
        others,
    )
    rows = [r.get("_row", r) for r in rows]
    report["others_check"] = others.dropped
    random.Random(seed).shuffle(rows)
    got: Dict[str, int] = {}
    for r in rows:
        got[r["kind"]] = got.get(r["kind"], 0) + 1
    report["items"] = got
    return rows, report
