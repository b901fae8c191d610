#!/usr/bin/env bash
# The climbing curriculum run of RESULTS.md ("Math depth"): SmolLM2-135M with the shipped
# smollm2-135m-calculator adapter as the starting policy, self-trained on the ladder corpus
# (4,000 generated problems in four levels; the contamination guard against SVAMP, MAWPS and
# GSM8K test drops near-duplicates first), round 1 at level 2 (the starting adapter was trained
# on level-1 problems), climbing a level once Grow is right on half its samples at its level;
# the dev split (100 held-out problems of every level) picks the best round. Then the tables:
# dev by level, and pass@k of round 1's Grow with DPO from its SFT adapter (the ablation).
# Every stage resumes when rerun. About 20-25 min per round on 2 idle CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/climb}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
mkdir -p "$OUT"
echo '{"data": {"max_problem_steps": null}, "dev": {"max_problem_steps": null}}' > "$OUT/config.json"
toolformer selftrain --config "$OUT/config.json" --output "$OUT/run" --threads "$THREADS" \
    --no-progress --init-adapter toolformer/adapters/smollm2-135m-calculator \
    --tools Calculator --corpus ladder:4000 --round0-docs 0 --dev-size 100 \
    --start-level 2 --climb-at 0.5 --review-fraction 0.25 \
    --demonstrations ladder --corpus-size 160 --samples 4 --max-rounds "$ROUNDS" --patience 2
python experiments/climb_tables.py "$OUT/run"
python experiments/round_ablation.py "$OUT/run" --round 1 --threads "$THREADS"
