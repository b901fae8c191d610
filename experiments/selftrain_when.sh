#!/usr/bin/env bash
# When and which tool: self-train SmolLM2-135M on the mixed curriculum, calibrate its call
# trigger, then the paper's protocol per task for the base model, the new adapter and the
# adapter with tools disabled (RESULTS.md, "When and which"). Every stage resumes when rerun;
# settings are environment variables; the defaults are the run in RESULTS.md (2 CPU cores).
#
# Curriculum (`--corpus mix`): generated word problems (Calculator), fact questions (QA: T-REx
# relations that no built-in task scores, and EfficientQA; checked disjoint from LAMA, NQ-open
# dev and WikiText-2 on every build), generated date questions with their own reference date
# (Calendar), prompts where no tool helps. Grow samples each prompt with tools (3) and once
# without (the same model without a call); the `when` filter keeps a call only where the
# no-call sample is wrong and the tool fits, and keeps no-call outputs where no tool fits or the
# model is right without help. After the round the best adapter's call trigger is calibrated on
# held-out items of each kind and stored in its toolformer.json (generate, chat, eval use it).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/when}
N=${N:-300}                 # examples per task (math, dateset, notool)
N_FACTS=${N_FACTS:-100}     # examples per LAMA task (each QA call runs the reader LM)
PPL_WINDOWS=${PPL_WINDOWS:-40}
THREADS=${THREADS:-2}
TOOLS=Calculator,QA,Calendar
export OMP_NUM_THREADS=$THREADS

toolformer selftrain --output "$OUT/run" --threads "$THREADS" --no-progress \
    --corpus mix:2000 --mix math=0.35,facts=0.2,dates=0.25,notool=0.2 --tools "$TOOLS" \
    --filter when --max-problem-steps 2 --dev-max-problem-steps 2 --round0-docs 0 \
    --corpus-size 120 --samples 3 --no-call-samples 1 --max-new-tokens 40 \
    --max-rounds 1 --patience 1 --calibration-size 40
ADAPTER="$OUT/run/best_adapter"
# QA reads the shared Wikipedia passages (the LAMA evidence is there: the paper's QA setting)
QA_CORPUS="--tool-option QA.corpus=$(cd ..; pwd)/shared/data/wiki_corpus/passages.jsonl"
OPT="--tools $TOOLS $QA_CORPUS"

run() { # name model extra-args...
    local name=$1 model=$2; shift 2
    toolformer eval --model "$model" --tasks svamp,mawps,dateset,notool --limit "$N" \
        --threads "$THREADS" -q -o "$OUT/eval/$name" --name "$name" "$@"
    toolformer eval --model "$model" --tasks lama_squad,lama_google_re,lama_trex \
        --limit "$N_FACTS" --threads "$THREADS" -q -o "$OUT/eval/${name}_facts" \
        --name "$name" "$@"
}
run base smollm2-135m --no-tools
run toolformer "$ADAPTER" $OPT
run disabled "$ADAPTER" --no-tools
run paper_trigger "$ADAPTER" $OPT --call-top-k 10 --call-threshold 0
PPL="toolformer eval --tasks wikitext2 --limit $PPL_WINDOWS --no-tools --threads $THREADS -q"
$PPL --model smollm2-135m -o "$OUT/eval/base_ppl"
$PPL --model "$ADAPTER"   -o "$OUT/eval/toolformer_ppl"
toolformer eval --compare "$OUT/eval/base" "$OUT/eval/toolformer" "$OUT/eval/disabled" \
    "$OUT/eval/paper_trigger"
