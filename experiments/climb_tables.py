"""Dev scores by level, and by whether the question writes a number in words, for each round of a
self-training run on the ladder corpus (experiments/selftrain_climb.sh), from the dev evals'
samples: the starting model (``round_0/baseline``) and each round's ``eval``.

    python experiments/climb_tables.py runs/climb/run [--size 4000 --seed 0]

The levels come from the dev split when it records them (runs since the ladder corpus); for an
older run folder they are read back from the generator (ids ``ladder-N`` are its N-th row).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from toolformer.selftrain.ladder import generate_ladder
from toolformer.selftrain.loop import score_by_level, wilson_interval
from toolformer.text.numbers import operands


def _jsonl(path: Path) -> list:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _levels(run: Path, size: int, seed: int) -> dict:
    dev = _jsonl(run / "round_0" / "corpus" / "dev.jsonl")
    if all("level" in r for r in dev):
        return {r["id"]: r["level"] for r in dev}
    rows = generate_ladder(size, seed=seed)
    return {r["id"]: rows[int(r["id"].rsplit("-", 1)[1]) - 1]["level"] for r in dev}


def _words(question: str) -> bool:
    """The question writes a number in words (it reads more numbers with words than without)."""
    return len(operands(question, words=True)) > len(operands(question))


def _cell(c: int, n: int) -> str:
    lo, hi = wilson_interval(c, n)
    return f"{c}/{n} ({100 * c / n:.0f}%, {100 * lo:.0f}-{100 * hi:.0f})" if n else "-"


@click.command()
@click.argument("run", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--size", type=int, default=4000, show_default=True, help="the ladder:N size")
@click.option("--seed", type=int, default=0, show_default=True)
def main(run: Path, size: int, seed: int) -> None:
    """Per-level dev table of every round of RUN."""
    levels = _levels(run, size, seed)
    evals = [("start", run / "round_0" / "baseline")]
    evals += [
        (f"round {p.name.split('_')[1]}", p / "eval")
        for p in sorted(run.glob("round_[1-9]*"), key=lambda p: int(p.name.split("_")[1]))
        if (p / "eval" / "samples").is_dir()
    ]
    names = sorted({str(v) for v in levels.values()}, key=int)
    print(
        "| model | all | "
        + " | ".join(f"level {x}" for x in names)
        + " | number words | digits only |"
    )
    print("|---|---|" + "---|" * len(names) + "---|---|")
    for label, folder in evals:
        samples = [r for f in sorted((folder / "samples").glob("*.jsonl")) for r in _jsonl(f)]
        by = score_by_level(samples, levels)
        words = [r for r in samples if _words(re.sub(r"\nA:.*", "", r["prompt"], flags=re.S))]
        digits = [r for r in samples if r not in words]
        row = [_cell(sum(r["correct"] for r in samples), len(samples))]
        row += [_cell(*by.get(x, (0, 0))) for x in names]
        row += [_cell(sum(r["correct"] for r in g), len(g)) for g in (words, digits)]
        print(f"| {label} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
