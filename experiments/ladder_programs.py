"""Ablation for RESULTS.md ("Math depth"): what the ladder's own programs teach when they are
given, not found.

The self-training run (``experiments/selftrain_climb.sh``) keeps only the calls the model writes
itself and that reach the gold answer: 95 texts in its best round. This script writes every
ladder problem of the run's *training* split as a training text with the template's gold
expression as its call (``Q: ...\\nA: [Calculator(5 * 8 + 3) -> 43] 43``, the result from the
Calculator itself), then fine-tunes a fresh LoRA adapter on them with the same rehearsal
paragraphs and settings as a self-training round. It is supervised learning from the corpus's
programs (an upper bound on what the curriculum's problems can teach), not Toolformer's
self-supervision; RESULTS.md reports it as such.

The split is the self-training run's (same corpus, contamination guard and seed, so the dev
split is the same 100 problems and no dev or evaluation-set near-duplicate trains).

    python experiments/ladder_programs.py --out runs/programs --max-steps 200
    python experiments/ladder_programs.py --out runs/programs_gsm8k --gsm8k --max-steps 300
    python experiments/ladder_programs.py --out runs/programs_onestep --levels 1,2 --max-steps 200

Resumes: the corpus and the texts are written once; the fine-tuning resumes from its newest
checkpoint.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from toolformer.selftrain import SelfTrainConfig
from toolformer.selftrain.loop import SelfTrainer


def gold_text(question: str, expression: str, calculator) -> str:
    """``Q: {question}\\nA: [Calculator(expression) -> result] result``: the eval prompt, then
    the call as the runtime writes it (the Calculator's own result string)."""
    from toolformer.syntax import APICall, format_call

    result = calculator(expression)
    return f"Q: {question}\nA: {format_call(APICall('Calculator', expression, result))} {result}"


def gsm8k_rows(trainer: SelfTrainer, config: SelfTrainConfig, calc) -> list:
    """GSM8K-train problems as program texts: those whose marks compose into one expression
    over the question's numbers, minus near-duplicates of the run's evaluation sets (the
    run's contamination guard and threshold)."""
    from toolformer.selftrain.contamination import ContaminationGuard, eval_questions
    from toolformer.selftrain.programs import gsm8k_programs

    data_dir = trainer._data_dir()
    raw = [json.loads(line) for line in (data_dir / "gsm8k" / "train.jsonl").open()]
    programs = gsm8k_programs(raw)
    guard = ContaminationGuard(
        eval_questions(config.data.eval_sets, str(data_dir)), config.data.contamination_threshold
    )
    keep, report = guard.check([q for q, _, _ in programs])
    print(f"GSM8K train: {len(raw)} problems, {len(programs)} compose; {report.line()}")
    return [
        {"text": gold_text(q, expr, calc), "source": "gsm8k"}
        for (q, expr, _), k in zip(programs, keep)
        if k
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/programs")
    ap.add_argument("--corpus", default="ladder:4000")
    ap.add_argument("--max-steps", type=int, default=200)
    ap.add_argument("--plain-ratio", type=float, default=1.0)
    ap.add_argument("--learning-rate", type=float, default=2e-4)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument(
        "--levels",
        default="1,2,3,4",
        help="ladder levels whose problems train (comma-separated; the dev split is unchanged)",
    )
    ap.add_argument(
        "--gsm8k",
        action="store_true",
        help="also GSM8K-train problems whose calculator marks compose into one expression "
        "over the question's numbers (toolformer.selftrain.programs), near-duplicates of any "
        "evaluation set dropped",
    )
    args = ap.parse_args()

    import torch

    from toolformer.finetune import finetune, latest_checkpoint
    from toolformer.tools import create_tools

    torch.set_num_threads(args.threads)
    levels = {int(v) for v in args.levels.split(",")}
    out = Path(args.out)
    config = SelfTrainConfig(output=str(out / "split"), tools=["Calculator"]).validate()
    config.data.corpus = args.corpus
    config.data.max_problem_steps = None
    config.dev.max_problem_steps = None
    config.dev.size = 100
    trainer = SelfTrainer(config)
    rd = trainer.round_dir(0)
    if not rd.done("corpus"):
        rd.record("corpus", trainer._corpus(rd))
    corpus = rd.path / "corpus"
    train = [json.loads(line) for line in (corpus / "train.jsonl").open()]
    dev = {json.loads(line)["question"] for line in (corpus / "dev.jsonl").open()}
    assert not any(d["question"] in dev for d in train), "a dev problem is in the training split"

    texts = out / "programs.jsonl"
    if not texts.is_file():
        calc = create_tools(["Calculator"])["Calculator"]
        rows = [
            {"text": gold_text(d["question"], d["expression"], calc), "level": d.get("level")}
            for d in train
            if d.get("expression") and d.get("level") in levels
        ]
        if args.gsm8k:
            rows += gsm8k_rows(trainer, config, calc)
        texts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    n = sum(1 for _ in texts.open())  # noqa: SIM115
    print(f"{n} program texts, {len(dev)} dev problems held out; {corpus / 'plain.jsonl'}")

    model_dir = out / "model"
    resume = "latest" if latest_checkpoint(str(model_dir), say=False) else None
    ft = replace(
        config.finetune,
        data=str(texts),
        output_dir=str(model_dir),
        model=config.model,
        lora=True,
        mix_plain=str(corpus / "plain.jsonl"),
        mix_ratio=args.plain_ratio / (1 + args.plain_ratio),
        resume_from_checkpoint=resume,
        training_args={
            **config.finetune.training_args,
            "max_steps": args.max_steps,
            "learning_rate": args.learning_rate,
            "save_steps": 50,
            "eval_steps": 50,
            "seed": config.seed,
        },
    )
    result = finetune(ft)
    print(json.dumps(result.metrics, indent=1, default=str))


if __name__ == "__main__":
    main()
