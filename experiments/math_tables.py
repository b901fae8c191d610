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
    ap.add_argument(
        "--write-results",
        type=Path,
        default=None,
        help="also write ADAPTER_DIR/eval_results.json (its model card's numbers) from the runs",
    )
    ap.add_argument("--name", default=None, help="the adapter's name in eval_results.json")
    ap.add_argument(
        "--limitation", action="append", default=[], help="a known limit for the card (repeat)"
    )
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
    if a.write_results:
        _write_results(a)


KEEP = ("metric", "correct", "n", "score", "tool_call_rate", "calls", "failed_calls", "windows")


def _write_results(a: argparse.Namespace) -> None:
    """eval_results.json for the adapter's model card (toolformer models card)."""
    name = a.name or a.write_results.name

    def run(label: str, folders, tools: bool) -> dict:
        tasks = {t: r for folder in folders for t, r in _tasks(folder).items()}
        return {
            "name": label,
            "tools_enabled": tools,
            "tasks": {t: {k: r[k] for k in KEEP if k in r} for t, r in tasks.items()},
        }

    out = {
        "format": "toolformer-eval-results",
        "version": 1,
        "source": "RESULTS.md, 'Math depth' (experiments/math_full.sh; evaluated in float32, "
        "shipped in float16)",
        "protocol": "zero-shot 'Q: ...\\nA:' prompts, greedy decoding, the paper's math metric "
        "(the first number of the output, a call's result included); the full SVAMP (1,000) "
        "and MAWPS (1,920); Calculator with numbers_from_text; WikiText-2 perplexity on the "
        "first 40 windows",
        "limitations": list(a.limitation),
        "runs": [
            run("SmolLM2-135M (base)", [a.base, Path(f"{a.base}-ppl")], False),
            run(name, [a.run / "toolformer", a.run / "ppl"], True),
            run(f"{name}, tools disabled", [a.run / "disabled"], False),
        ],
    }
    path = a.write_results / "eval_results.json"
    path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
