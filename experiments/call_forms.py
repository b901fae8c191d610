"""How the harness reads a multi-step answer written as one compound Calculator call or as a
chain of calls.

(a) Each gold solution (GSM8K style: ``<<a op b=c>>`` marks, then ``#### n``) is written as a
model output in two forms and scored with the paper's ``math`` metric (the first number, a
call's result included):

- compound: one call of the whole expression, built from the marks by putting each earlier
  mark's expression in place of its result: ``[Calculator((24+39)+15) -> 78] 78``;
- chained: one call per mark, each using the previous call's result:
  ``[Calculator(24+39) -> 63] 63, so [Calculator(63+15) -> 78] 78``.

(b) With ``--model``, the model answers the questions twice: ``max_calls=1`` after the compound
demonstrations (``toolformer/selftrain/demos/calculator_compound.txt``) and ``max_calls=3``
after the chained ones (``calculator_chained.txt``; the same five invented problems), greedy,
and each run is scored under ``math``, with the share of outputs that made 2+ calls.

Without ``--problems`` the input is 300 generated two-step training problems
(``generate_problems(300, seed=0, two_step_fraction=1.0)``), not an evaluation set::

    python experiments/call_forms.py
    OMP_NUM_THREADS=1 nice -n 19 python experiments/call_forms.py --limit 40 \\
        --model toolformer/adapters/smollm2-135m-calculator
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import click

from toolformer.errors import UserError
from toolformer.eval.metrics import answer_text, numbers_match, score_output
from toolformer.selftrain.loop import cut_after_answer, wilson_interval
from toolformer.text.numbers import answer_numbers, next_answer_number
from toolformer.tools.calculator import calculate

MARK = re.compile(r"<<([^<>=]+)=([^<>]*)>>")
OPERAND = re.compile(r"\d[\d,]*(?:\.\d+)?|\.\d+")
DEMOS = Path(__file__).resolve().parent.parent / "toolformer" / "selftrain" / "demos"
FORMS = ("compound", "chained")


@dataclass
class Step:
    """One mark of a solution: its expression as written, its written result's value, and the
    two forms' expressions (``compound``: earlier marks' expressions substituted in;
    ``chained``: earlier results as the Calculator returned them)."""

    written: str
    value: float
    compound: str
    chained: str


def _value(number: str) -> Optional[float]:
    try:
        return round(float(number.replace(",", "").replace("$", "").strip()), 6)
    except ValueError:
        return None


def gold_answer(answer: str) -> Optional[float]:
    """The number after ``####`` in a GSM8K answer, or None."""
    _, sep, tail = answer.rpartition("####")
    return _value(tail) if sep else None


def solution_steps(answer: str) -> List[Step]:
    """The marks of ``answer`` as :class:`Step` s, in order. An operand equal to an earlier
    mark's result (the latest such) is that result. Raises ``ValueError`` for a mark the
    Calculator cannot compute."""
    steps: List[Step] = []
    results: List[str] = []  # each mark's result as the Calculator writes it
    for m in MARK.finditer(answer):
        expr, value = m.group(1).strip(), _value(m.group(2))
        if value is None:
            raise ValueError(f"mark {m.group(0)!r} has no number after '='")

        def substitute(op: "re.Match[str]", form: str) -> str:
            v = _value(op.group())
            for j in range(len(steps) - 1, -1, -1):
                if steps[j].value == v:
                    return f"({steps[j].compound})" if form == "compound" else results[j]
            return op.group().replace(",", "")

        compound = OPERAND.sub(lambda op: substitute(op, "compound"), expr)
        chained = OPERAND.sub(lambda op: substitute(op, "chained"), expr)
        calculate(compound)  # fails here for an expression the Calculator refuses
        results.append(calculate(chained))
        steps.append(Step(expr, value, compound, chained))
    return steps


def call_record(args: str, result: str, start: int, end: int) -> Dict[str, Any]:
    """A generator-style call record for a call at ``text[start:end]``."""
    return {
        "tool": "Calculator",
        "args": args,
        "result": result,
        "error": None,
        "start": start,
        "end": end,
    }


def write_form(steps: Sequence[Step], form: str) -> Tuple[str, List[Dict[str, Any]]]:
    """The model-style output of ``steps`` in ``form`` and its call records."""
    exprs = [steps[-1].compound] if form == "compound" else [s.chained for s in steps]
    text, calls = " ", []
    for k, expr in enumerate(exprs):
        if k:
            text += ", so "
        result = calculate(expr)
        start = len(text)
        text += f"[Calculator({expr}) -> {result}]"
        calls.append(call_record(expr, result, start, len(text)))
        text += f" {result}"
    return text, calls


def chain_length(text: str, calls: Sequence[Dict[str, Any]]) -> int:
    """How many calls of ``text`` form its answer chain: the calls Grow's answer cut keeps
    (:func:`~toolformer.selftrain.loop.cut_after_answer`), each after the first using the
    number written after the one before. Calls that do not chain count 1; so do calls written
    back to back with no number after the first (the cut leaves such an output whole)."""
    placed = [c for c in calls if isinstance(c.get("end"), int)]
    if not placed:
        return 0
    first = min(c["end"] for c in placed)
    m = next_answer_number(text, first)
    if m is None or "[" in text[first : m.start]:
        return 1
    return len(cut_after_answer(text, list(calls))[1])


def load_problems(path: Optional[str], limit: Optional[int]) -> List[Dict[str, Any]]:
    """Rows with ``question`` and ``answer`` from a JSONL file, or the generated default."""
    if path is None:
        from toolformer.selftrain.word_problems import generate_problems

        rows = generate_problems(300, seed=0, two_step_fraction=1.0)
    else:
        with open(path, encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh if line.strip()]
        if any("question" not in r or "answer" not in r for r in rows):
            raise UserError(f"{path}: every row needs 'question' and 'answer' fields")
    return rows[:limit] if limit else rows


def row(label: str, correct: int, n: int, extra: str = "") -> str:
    lo, hi = wilson_interval(correct, n)
    acc = correct / n if n else 0.0
    return f"| {label} | {n} | {100 * acc:.1f} | [{100 * lo:.1f}, {100 * hi:.1f}] |{extra}"


def score_gold_forms(rows: Sequence[Dict[str, Any]]) -> None:
    """Part (a): print the table of each form's accuracy under ``math``."""
    correct = {f: 0 for f in FORMS}
    last = {f: 0 for f in FORMS}  # control: the output's final number is the gold answer
    n, skipped = 0, 0
    examples: Dict[str, str] = {}
    for r in rows:
        gold = gold_answer(r["answer"])
        try:
            steps = solution_steps(r["answer"])
        except Exception:  # a mark the Calculator refuses (GSM8K has a few): not this form's fault
            steps = []
        if gold is None or not steps:
            skipped += 1
            continue
        n += 1
        for form in FORMS:
            text, calls = write_form(steps, form)
            examples.setdefault(form, text)
            correct[form] += score_output("math", text, gold, calls=calls).correct
            final = answer_numbers(answer_text(text, calls))[-1]
            last[form] += numbers_match(final, gold)
    print("(a) gold solutions written in each form, scored with the math metric")
    print("| form | n | accuracy % | 95% Wilson % | final number right % |")
    print("|---|---|---|---|---|")
    for form in FORMS:
        print(row(form, correct[form], n, f" {100 * last[form] / max(n, 1):.1f} |"))
    for form, text in examples.items():
        print(f"  e.g. {form}: {text}")
    if skipped:
        print(f"({skipped} problems skipped: no gold number or a mark the Calculator refuses)")


def run_model(
    rows: Sequence[Dict[str, Any]], model_name: str, batch_size: int, samples: Optional[str]
) -> None:
    """Part (b): the model after each form's demonstrations, scored under ``math``."""
    import torch

    from toolformer.generation import GenerationConfig, ToolGenerator
    from toolformer.models import load_model
    from toolformer.tools import ToolExecutor
    from toolformer.tools.assembly import create_tools

    torch.manual_seed(0)
    model, tok = load_model(model_name)
    tools = create_tools(["Calculator"], {"Calculator": {"numbers_from_text": True}})
    golds = [gold_answer(r["answer"]) for r in rows]
    out_rows = []
    print(f"(b) {model_name}, greedy, {len(rows)} problems, scored with the math metric")
    print(
        "| demonstrations, max_calls | n | accuracy % | 95% Wilson % | 2+ calls % "
        "| chain of 2+ % | any call % |"
    )
    print("|---|---|---|---|---|---|---|")
    for form, max_calls in (("compound", 1), ("chained", 3)):
        demo = (DEMOS / f"calculator_{form}.txt").read_text(encoding="utf-8")
        prompts = [demo + f"Q: {r['question']}\nA:" for r in rows]
        config = GenerationConfig(
            max_new_tokens=64,
            max_calls=max_calls,
            stop_strings=("\n",),
            batch_size=batch_size,
            seed=0,
            min_new_tokens=1,
        )
        executor = ToolExecutor(tools)
        try:
            # the demonstrations condition the model but lend no numbers to a call
            outputs = ToolGenerator(model, tok, executor, config).generate(
                prompts, grammar_starts=[len(demo)] * len(prompts)
            )
        finally:
            executor.close()
        correct = multi = chains = called = 0
        for r, gold, o in zip(rows, golds, outputs):
            calls = [c.to_dict() for c in o.calls]
            ok = gold is not None and score_output("math", o.text, gold, calls=calls).correct
            correct += ok
            multi += len(calls) >= 2
            chains += chain_length(o.text, calls) >= 2
            called += bool(calls)
            out_rows.append(
                {
                    "form": form,
                    "question": r["question"],
                    "gold": gold,
                    "text": o.text,
                    "calls": calls,
                    "ok": ok,
                }
            )
        n = len(rows)
        share = f" {100 * multi / n:.1f} | {100 * chains / n:.1f} | {100 * called / n:.1f} |"
        print(row(f"{form}, {max_calls}", correct, n, share))
    if samples:
        with open(samples, "w", encoding="utf-8") as fh:
            for r in out_rows:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")


@click.command()
@click.option("--problems", default=None, help="JSONL with question/answer (default: generated)")
@click.option("--limit", type=int, default=None, help="use the first N problems")
@click.option("--model", default=None, help="also run this model or adapter on the questions")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--samples", default=None, help="write part (b)'s outputs to this JSONL")
def main(
    problems: Optional[str],
    limit: Optional[int],
    model: Optional[str],
    batch_size: int,
    samples: Optional[str],
) -> None:
    """Score gold solutions written as compound and chained calls; optionally a model too."""
    rows = load_problems(problems, limit)
    score_gold_forms(rows)
    if model:
        run_model(rows, model, batch_size, samples)


if __name__ == "__main__":
    main()
