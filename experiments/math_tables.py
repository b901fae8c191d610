"""The full-set math table for RESULTS.md from experiments/math_full.sh: per task, accuracy with
its 95% Wilson interval for the base model, the adapter with tools and with tools disabled, the
gain over disabled, and WikiText-2 perplexity against the base model's.

    python experiments/math_tables.py runs/math_full/ADAPTER --base runs/math_full/base
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from toolformer.selftrain.loop import wilson_interval


def _tasks(folder: Path) -> dict:
    path = folder / "results.json"
    return json.loads(path.read_text())["tasks"] if path.is_file() else {}


def _cell(r: dict) -> str:
    lo, hi = wilson_interval(r["correct"], r["n"])
    return f"{100 * r['score']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _ppl(folder: Path):
    r = _tasks(folder).get("wikitext2")
    return None if r is None else r.get("perplexity", r.get("score"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="the adapter's folder (toolformer/, disabled/, ppl/)")
    ap.add_argument("--base", type=Path, required=True, help="the base model's eval folder")
    a = ap.parse_args()
    runs = {
        "base": _tasks(a.base),
        "toolformer": _tasks(a.run / "toolformer"),
        "disabled": _tasks(a.run / "disabled"),
    }
    print(
        "| task | n | base % [95% CI] | Toolformer % [95% CI] | disabled % [95% CI] | "
        "Toolformer - disabled (points) | call rate % |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in ("svamp", "mawps"):
        r = {k: v.get(name) for k, v in runs.items()}
        if not all(r.values()):
            continue
        gain = 100 * (r["toolformer"]["score"] - r["disabled"]["score"])
        rate = r["toolformer"].get("tool_call_rate")
        print(
            f"| {name} | {r['toolformer']['n']} | {_cell(r['base'])} | {_cell(r['toolformer'])} "
            f"| {_cell(r['disabled'])} | {gain:+.1f} | "
            f"{'-' if rate is None else f'{100 * rate:.1f}'} |"
        )
    base, mine = _ppl(Path(f"{a.base}-ppl")), _ppl(a.run / "ppl")
    if base and mine:
        print(
            f"\nWikiText-2 perplexity: base {base:.2f}, adapter {mine:.2f} "
            f"({100 * (mine / base - 1):+.1f}%)"
        )


if __name__ == "__main__":
    main()
