#!/usr/bin/env bash
# Self-training SmolLM2-135M to use the Calculator (issue 10), then the paper's protocol on SVAMP
# and MAWPS (first 300 examples each) and WikiText-2 perplexity (first 40 windows) for the base
# model, Toolformer and Toolformer (disabled). Every stage resumes when rerun; settings are
# environment variables; the defaults are the run in RESULTS.md (2 CPU cores, about 60 min).
#
# 1. `toolformer selftrain`, with the settings of the measured run (pinned here where the defaults
#    have moved since): round 0 = the paper's pipeline on 24 GSM8K-train documents of 1-2 steps;
#    round 1 = Grow with the shipped demonstrations on 320 problems x 4 samples (constrained calls,
#    numbers only from the question), Improve with the answer filter, LoRA fine-tuning.
# 2. The kept texts of rounds 0 and 1 fine-tuned for longer (100 steps) with three times as many plain
#    Wikipedia paragraphs (the run's round_0/corpus/plain.jsonl: the augment corpus minus anything
#    sharing a word 13-gram with WikiText-2), so that language modelling is rehearsed.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/selftrain}
N=${N:-300}                 # examples per math task
PPL_WINDOWS=${PPL_WINDOWS:-40}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

toolformer selftrain --output "$OUT/run" --threads "$THREADS" --no-progress \
    --round0-docs 24 --corpus-sizes 320 --samples 4 --max-rounds 1 --demonstrations calculator --accumulate \
    --max-problem-steps 2 --dev-max-problem-steps 2 --max-new-tokens 20 --plain-ratio 0 \
    --finetune-option num_train_epochs=4 --finetune-option max_steps=60

MODEL="$OUT/model"
[ -f "$MODEL/toolformer.json" ] || toolformer finetune --data "$OUT/run/round_1/train_0.jsonl" \
    --mix-plain "$OUT/run/round_0/corpus/plain.jsonl" --mix-ratio 0.75 \
    --output "$MODEL" --lora --lr 2e-4 --max-length 128 --batch-size 8 --effective-batch-size 8 \
    --epochs 40 --max-steps 100 --eval-fraction 0 --save-steps 0 --no-progress
ADAPTER="$MODEL/adapter"
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
