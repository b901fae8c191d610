#!/usr/bin/env bash
# One adapter on the quick math protocol of RESULTS.md ("Math depth"): the self-training run's
# ladder dev split (100 held-out problems of every level), the first LIMIT questions of SVAMP and
# MAWPS (paper's protocol: zero-shot, greedy, first number of the answer with a call's result),
# and WikiText-2 perplexity over the first 40 windows with tools off. Resumes when rerun.
#
#   ADAPTER=runs/programs/model/adapter DEV=runs/programs/split/round_0/corpus/dev.jsonl \
#       bash experiments/math_quick.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTER=${ADAPTER:?set ADAPTER to an adapter folder or a shipped adapter name}
DEV=${DEV:-runs/programs/split/round_0/corpus/dev.jsonl}
OUT=${OUT:-runs/quick/$(basename "$(dirname "$ADAPTER")")-$(basename "$ADAPTER")}
LIMIT=${LIMIT:-300}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
OPT="--tools Calculator --tool-option Calculator.numbers_from_text=true --threads $THREADS -q"
toolformer eval --model "$ADAPTER" $OPT --tasks "jsonl:$DEV" -o "$OUT/dev" >/dev/null
toolformer eval --model "$ADAPTER" $OPT --tasks svamp,mawps --limit "$LIMIT" -o "$OUT/math" >/dev/null
toolformer eval --model "$ADAPTER" --no-tools --tasks wikitext2 --limit 40 --threads "$THREADS" -q \
    -o "$OUT/ppl" >/dev/null
python - "$OUT" "$DEV" <<'EOF'
import json, sys
from pathlib import Path
from toolformer.selftrain.loop import score_by_level
out, dev = Path(sys.argv[1]), Path(sys.argv[2])
levels = {r["id"]: r["level"] for r in map(json.loads, dev.read_text().splitlines()) if "level" in r}
samples = next((out / "dev" / "samples").glob("*.jsonl"))
by_level = score_by_level(map(json.loads, samples.read_text().splitlines()), levels)
print(out.name, "dev by level:", {k: f"{c}/{n}" for k, (c, n) in by_level.items()})
for part in ("dev", "math", "ppl"):
    res = json.loads((out / part / "results.json").read_text())
    for name, t in res["tasks"].items():
        score = t.get("perplexity") or t["score"]
        print(f"{out.name}\t{name[:40]}\t{score:.4g}\tn={t.get('n', t.get('windows'))}")
EOF
