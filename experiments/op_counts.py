"""How many operations an adapter's call wrote against how many the gold equation has, on SVAMP
or MAWPS eval samples: the table behind "over-compounding" in RESULTS.md ("Math depth").

    python experiments/op_counts.py runs/quick/programs/math/samples/svamp.jsonl --task svamp

Gold operations: SVAMP's ``Equation`` (infix) or MAWPS's ``equation_prefix`` (prefix), counted
as their ``+ - * /`` tokens; written: the operators in the output's first call's arguments.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import click

from toolformer.selftrain.programs import count_operations


def gold_operations(task: str, data_dir: Path) -> dict:
    """Example id -> operations of its gold equation."""
    if task == "svamp":
        rows = json.loads((data_dir / "svamp" / "SVAMP.json").read_text())
        return {r["ID"]: count_operations(r["Equation"]) for r in rows}
    path = data_dir / "mawps" / "mawps_demasked_from_svamp_cv.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return {str(r["id"]): count_operations(r["equation_prefix"]) for r in rows}


@click.command()
@click.argument("samples", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--task", type=click.Choice(["svamp", "mawps"]), required=True)
@click.option("--data-dir", type=click.Path(path_type=Path), default=Path("../shared/data"))
def main(samples: Path, task: str, data_dir: Path) -> None:
    """Table of gold operations x written operations (right / all) for SAMPLES."""
    gold = gold_operations(task, data_dir)
    rows = [json.loads(line) for line in samples.read_text().splitlines() if line]
    cells: Counter = Counter()
    right: Counter = Counter()
    for r in rows:
        g = min(gold.get(str(r["id"]), -1), 3)
        args = r["calls"][0]["args"] if r.get("calls") else ""
        w = min(count_operations(args), 3) if args else 0
        cells[(g, w)] += 1
        right[(g, w)] += bool(r["correct"])
    written = sorted({w for _, w in cells})
    print(f"{samples} (n = {len(rows)}): right / all, by gold operations (rows) and written (cols)")
    heads = " | ".join(f"{w}{'+' if w == 3 else ''}" for w in written)
    print(f"| gold \\ written | {heads} |")
    print("|---" * (len(written) + 1) + "|")
    for g in sorted({g for g, _ in cells}):
        row = [f"{right[(g, w)]}/{cells[(g, w)]}" if cells[(g, w)] else "-" for w in written]
        print(f"| {g if g >= 0 else '?'}{'+' if g == 3 else ''} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
