#!/usr/bin/env bash
# Self-training SmolLM2-135M to use the Calculator, then the paper's protocol on SVAMP
# and MAWPS (first 300 examples each) and WikiText-2 perplexity (first 40 windows) for the base
# model, Toolformer and Toolformer (disabled). Every stage resumes when rerun; settings are
# environment variables; the defaults are the run in RESULTS.md (2 CPU cores, about 75 min).
#
# `toolformer selftrain` on the generated corpus of easy word problems (`--corpus arithmetic`:
# 3,000 one- and two-step problems, contamination-checked against SVAMP, MAWPS and GSM8K; GSM8K
# is too hard for a 135M model's own samples), without round 0 (the paper's one-pass filter kept
# nothing usable at this scale, RESULTS.md); three ReST rounds of Grow (200 problems x 4 samples,
# constrained calls on the question's numbers; round 1 with the shipped demonstrations, rounds 2-3
# zero-shot from the previous round's model), Improve with the answer filter, LoRA fine-tuning
# (continuing the previous adapter) with as many plain Wikipedia paragraphs as kept texts
# (rehearsal); the best round on the dev split (100 held-out generated problems) is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/selftrain}
N=${N:-300}                 # examples per math task
PPL_WINDOWS=${PPL_WINDOWS:-40}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

toolformer selftrain --output "$OUT/run" --threads "$THREADS" --no-progress \
    --corpus arithmetic --max-problem-steps 2 --dev-max-problem-steps 2 --round0-docs 0 \
    --corpus-size 200 --samples 4 --max-rounds 3 --patience 2
ADAPTER="$OUT/run/best_adapter"
OPT="--tools Calculator --tool-option Calculator.numbers_from_text=true"

EVAL="toolformer eval --tasks svamp,mawps --limit $N --threads $THREADS -q"
PPL="toolformer eval --tasks wikitext2 --limit $PPL_WINDOWS --no-tools --threads $THREADS -q"
$EVAL --model smollm2-135m --no-tools      -o "$OUT/eval/base"       --name "SmolLM2-135M (base)"
$EVAL --model "$ADAPTER" $OPT              -o "$OUT/eval/toolformer" --name "Toolformer"
$EVAL --model "$ADAPTER" --no-tools        -o "$OUT/eval/disabled"   --name "Toolformer (disabled)"
$PPL  --model smollm2-135m                 -o "$OUT/eval/base_ppl"
$PPL  --model "$ADAPTER"                   -o "$OUT/eval/toolformer_ppl"
toolformer eval --compare "$OUT/eval/base" "$OUT/eval/toolformer" "$OUT/eval/disabled" \
    --chart "$OUT/eval/compare.png"
