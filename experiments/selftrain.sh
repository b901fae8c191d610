#!/usr/bin/env bash
# Self-training SmolLM2-135M to use the Calculator (issue 10), then the paper's protocol on SVAMP
# and MAWPS (first 300 examples each) and WikiText-2 perplexity (first 40 windows) for the base
# model, Toolformer and Toolformer (disabled). Every stage resumes when rerun; settings are
# environment variables; the defaults are the run in RESULTS.md (2 CPU cores).
#
# `toolformer selftrain`: round 0 = the paper's pipeline on 12 GSM8K-train documents; round 1 =
# Grow with the shipped demonstrations on 320 problems x 4 samples (constrained calls, numbers
# only from the question); round 2 = Grow zero-shot from round 1's model on the next 400 problems;
# each round: Improve with the answer filter, LoRA fine-tuning on the kept texts of all rounds so
# far plus as many plain Wikipedia paragraphs (rehearsal), eval on 100 held-out one-step problems
# (the dev split); the best round's adapter is copied to run/best_adapter.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/selftrain}
N=${N:-300}                 # examples per math task
PPL_WINDOWS=${PPL_WINDOWS:-40}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

toolformer selftrain --output "$OUT/run" --threads "$THREADS" --no-progress \
    --round0-docs 12 --corpus-sizes 320,400 --samples 4 --max-rounds 2 --demonstrations calculator --accumulate

ADAPTER="$OUT/run/best_adapter"
OPT="--tool-names Calculator --tool-options Calculator.numbers_from_text=true"

EVAL="toolformer eval --tasks svamp,mawps --limit $N --threads $THREADS -q"
PPL="toolformer eval --tasks wikitext2 --limit $PPL_WINDOWS --no-tools --threads $THREADS -q"
$EVAL --model smollm2-135m --no-tools      -o "$OUT/eval/base"       --name "SmolLM2-135M (base)"
$EVAL --model "$ADAPTER" $OPT              -o "$OUT/eval/toolformer" --name "Toolformer"
$EVAL --model "$ADAPTER" --no-tools        -o "$OUT/eval/disabled"   --name "Toolformer (disabled)"
$PPL  --model smollm2-135m                 -o "$OUT/eval/base_ppl"
$PPL  --model "$ADAPTER"                   -o "$OUT/eval/toolformer_ppl"
toolformer eval --compare "$OUT/eval/base" "$OUT/eval/toolformer" "$OUT/eval/disabled" \
    --chart "$OUT/eval/compare.png"
