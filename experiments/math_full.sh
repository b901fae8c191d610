#!/usr/bin/env bash
# The paper's math protocol on the FULL SVAMP (1,000) and MAWPS (1,920) sets and WikiText-2
# perplexity, for the base model, a Calculator adapter with tools, and the same adapter with tools
# disabled; then the table (95% Wilson intervals) with python experiments/math_tables.py "$OUT".
# Every run resumes when rerun (the harness keeps its finished samples). About 40 min per model
# on 2 shared CPU cores.
#
#   ADAPTER=toolformer/adapters/smollm2-135m-calculator bash experiments/math_full.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ADAPTER=${ADAPTER:-toolformer/adapters/smollm2-135m-calculator}
OUT=${OUT:-runs/math_full/$(basename "$ADAPTER")}
BASE_OUT=${BASE_OUT:-runs/math_full/base}   # shared by every adapter's table
PPL_WINDOWS=${PPL_WINDOWS:-40}
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS
OPT="--tools Calculator --tool-option Calculator.numbers_from_text=true"
EVAL="toolformer eval --tasks svamp,mawps --threads $THREADS -q"
PPL="toolformer eval --tasks wikitext2 --limit $PPL_WINDOWS --no-tools --threads $THREADS -q"

$EVAL --model smollm2-135m --no-tools -o "$BASE_OUT"          --name "SmolLM2-135M (base)"
$EVAL --model "$ADAPTER" $OPT         -o "$OUT/toolformer"    --name "Toolformer"
$EVAL --model "$ADAPTER" --no-tools   -o "$OUT/disabled"      --name "Toolformer (disabled)"
$PPL  --model smollm2-135m            -o "$BASE_OUT-ppl"
$PPL  --model "$ADAPTER"              -o "$OUT/ppl"
python experiments/math_tables.py "$OUT" --base "$BASE_OUT"
