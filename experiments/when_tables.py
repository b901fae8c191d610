"""Tables for RESULTS.md from the runs of experiments/selftrain_when.sh: per task accuracy (Wilson
95% interval), call rate, call precision and recall for each model, and the confusion table
(expected tool x called tool) of the Toolformer run.

    python experiments/when_tables.py runs/when/eval
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from toolformer.selftrain.loop import wilson_interval

RUNS = [
    ("base", "SmolLM2-135M (base, no tools)"),
    ("calculator", "smollm2-135m-calculator (paper's trigger)"),
    ("toolformer", "smollm2-135m-toolformer"),
    ("disabled", "smollm2-135m-toolformer, tools disabled"),
    ("paper_trigger", "smollm2-135m-toolformer, paper's top-10 trigger"),
]


def _pct(x):
    return "-" if x is None else f"{100 * x:.1f}"


def main(folder: str) -> None:
    root = Path(folder)
    tasks = {}
    for run, label in RUNS:
        for part in (run, f"{run}_facts"):
            path = root / part / "results.json"
            if path.is_file():
                for name, r in json.loads(path.read_text())["tasks"].items():
                    tasks.setdefault(name, {})[label] = r
    print("| task | model | n | accuracy % [95% CI] | call rate % | precision % | recall % |")
    print("|---|---|---|---|---|---|---|")
    for name, by_model in tasks.items():
        for _, label in RUNS:
            r = by_model.get(label)
            if r is None:
                continue
            lo, hi = wilson_interval(r["correct"], r["n"])
            w = r.get("when") or {}
            print(
                f"| {name} | {label} | {r['n']} | {100 * r['score']:.1f} "
                f"[{100 * lo:.1f}, {100 * hi:.1f}] | {_pct(w.get('call_rate'))} | "
                f"{_pct(w.get('precision'))} | {_pct(w.get('recall'))} |"
            )
    label = RUNS[2][1]
    confusion: dict = {}
    for name, by_model in tasks.items():
        w = (by_model.get(label) or {}).get("when") or {}
        for expected, row in (w.get("confusion") or {}).items():
            for called, count in row.items():
                key = (f"{name}: {expected}", called)
                confusion[key] = confusion.get(key, 0) + count
    called = sorted({c for _, c in confusion})
    print(f"\nConfusion ({label}), rows: task and expected tool, columns: tool called\n")
    print("| task: expected | " + " | ".join(called) + " |")
    print("|---|" + "---|" * len(called))
    for row in sorted({r for r, _ in confusion}):
        print(f"| {row} | " + " | ".join(str(confusion.get((row, c), 0)) for c in called) + " |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "runs/when/eval")
