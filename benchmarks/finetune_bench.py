"""Fine-tuning throughput: toolformer's finetune() against a plain transformers Trainer run.

Both train the same model on the same augmented-like texts (Wikipedia passages with inline
``[WikiSearch(...) -> ...]`` / ``[Calculator(...) -> ...]`` calls) for the same number of steps
with the same per-device batch. The plain run is the usual recipe: one row per text, padded
batches from ``DataCollatorForLanguageModeling``. Ours packs texts (joined with EOS) into
``max_seq_len`` blocks, so no compute goes to padding. Throughput counts non-padding tokens
trained on (the Trainer's ``num_input_tokens_seen``, non_padding), timed from the end of the
first step (warm-up) to the end of the last.

    python benchmarks/finetune_bench.py                       # ours vs plain, fp32
    python benchmarks/finetune_bench.py --precision           # also ours with bf16 autocast

The last line is ``speed-up: <x>x`` (ours / plain tokens per second).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List

from transformers import TrainerCallback

DEFAULT_PASSAGES = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "wiki_corpus" / "passages.jsonl"
)


def augmented_texts(path: Path, n: int, seed: int) -> List[str]:
    """``n`` Wikipedia passages with a WikiSearch call after the first sentence and, where the
    text has two numbers, a Calculator call on them (results included, as the pipeline writes)."""
    from toolformer.syntax import APICall, insert_calls

    rows = [json.loads(line) for line in open(path, encoding="utf-8")]
    rng = random.Random(seed)
    rng.shuffle(rows)
    out: List[str] = []
    for r in rows:
        text = r["text"].strip()
        if len(text.split()) < 20:
            continue
        calls = []
        first = text.find(". ")
        if first > 0:
            snippet = " ".join(text.split()[:12])
            calls.append((first + 1, APICall("WikiSearch", r["title"], snippet)))
        nums = [m for m in re.finditer(r"\b\d{1,4}\b", text)]
        if len(nums) >= 2:
            a, b = int(nums[0].group()), int(nums[1].group())
            at = nums[1].start()
            at -= text[at - 1] == " "  # before the space, as the pipeline inserts at a token start
            calls.append((at, APICall("Calculator", f"{b} - {a}", str(b - a))))
        out.append(insert_calls(text, calls))
        if len(out) == n:
            break
    return out


class StepTimer(TrainerCallback):
    """Wall time and non-padding tokens between the end of the first and of the last step."""

    def __init__(self) -> None:
        self.marks: List[tuple] = []

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
        self.marks.append((time.perf_counter(), state.num_input_tokens_seen, state.global_step))

    def tokens_per_second(self) -> Dict[str, float]:
        (t0, n0, _), (t1, n1, steps) = self.marks[0], self.marks[-1]
        return {
            "tokens_per_s": (n1 - n0) / (t1 - t0),
            "tokens": n1 - n0,
            "seconds": t1 - t0,
            "timed_steps": steps - self.marks[0][2],
        }


def run_ours(data_dir: Path, out: Path, args: argparse.Namespace, bf16: bool) -> Dict[str, float]:
    from toolformer.finetune import FinetuneConfig, finetune

    timer = StepTimer()
    config = FinetuneConfig(
        model=args.model,
        data=str(data_dir),
        output_dir=str(out),
        max_length=args.max_seq_len,
        eval_fraction=0.0,
        progress=False,
        training_args=dict(
            per_device_train_batch_size=args.batch_size,
            gradient_accumulation_steps=1,
            max_steps=args.steps,
            learning_rate=1e-5,
            bf16=bf16,
            save_steps=10**6,
            logging_steps=10**6,
            seed=args.seed,
        ),
    )
    finetune(config, callbacks=[timer])
    return timer.tokens_per_second()


def run_plain(texts: List[str], out: Path, args: argparse.Namespace) -> Dict[str, float]:
    """The common recipe: tokenize each text, pad batches with DataCollatorForLanguageModeling."""
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from toolformer.models import load_tokenizer, resolve

    path = resolve(args.model)
    tok = load_tokenizer(path)
    ds = Dataset.from_dict({"text": texts}).map(
        lambda b: tok(b["text"], truncation=True, max_length=args.max_seq_len),
        batched=True,
        remove_columns=["text"],
        keep_in_memory=True,
    )
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
    timer = StepTimer()
    targs = TrainingArguments(
        output_dir=str(out),
        per_device_train_batch_size=args.batch_size,
        max_steps=args.steps,
        learning_rate=1e-5,
        lr_scheduler_type="linear",
        warmup_steps=0.1,
        save_strategy="no",
        logging_steps=10**6,
        report_to="none",
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=True,
        seed=args.seed,
        dataloader_pin_memory=False,
    )
    trainer = Trainer(
        model=model,
        args=targs,
        train_dataset=ds,
        processing_class=tok,
        data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
        callbacks=[timer],
    )
    trainer.train()
    return timer.tokens_per_second()


def main(argv: List[str] = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--passages", type=Path, default=DEFAULT_PASSAGES)
    p.add_argument("--docs", type=int, default=300)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-seq-len", type=int, default=256)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", action="store_true", help="also time ours with bf16 autocast")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    texts = augmented_texts(args.passages, args.docs, args.seed)
    tmp = Path(tempfile.mkdtemp(prefix="ft-bench-"))
    try:
        data = tmp / "data"
        data.mkdir()
        with open(data / "data.jsonl", "w", encoding="utf-8") as fh:
            for i, t in enumerate(texts):
                fh.write(json.dumps({"id": str(i), "text": t}) + "\n")
        from toolformer.models import load_tokenizer

        tok = load_tokenizer(args.model)
        lengths = [min(len(ids), args.max_seq_len) for ids in tok(texts)["input_ids"]]
        print(
            f"{len(texts)} texts, mean {sum(lengths) / len(lengths):.0f} tokens "
            f"(max {max(lengths)}), batch {args.batch_size}, {args.steps} "
            f"steps, max_seq_len {args.max_seq_len}, {args.threads} threads",
            flush=True,
        )
        results: Dict[str, Dict[str, float]] = {}
        results["plain"] = run_plain(texts, tmp / "plain", args)
        print(
            f"plain Trainer (padded):   {results['plain']['tokens_per_s']:8.1f} tokens/s",
            flush=True,
        )
        results["ours"] = run_ours(data, tmp / "ours", args, bf16=False)
        print(
            f"ours (packed, fp32):      {results['ours']['tokens_per_s']:8.1f} tokens/s", flush=True
        )
        if args.precision:
            results["ours_bf16"] = run_ours(data, tmp / "ours_bf16", args, bf16=True)
            r = results["ours_bf16"]["tokens_per_s"] / results["ours"]["tokens_per_s"]
            print(
                f"ours (packed, bf16):      {results['ours_bf16']['tokens_per_s']:8.1f} tokens/s "
                f"(bf16 / fp32: {r:.2f}x)",
                flush=True,
            )
        print(json.dumps(results), flush=True)
        print(
            f"speed-up: {results['ours']['tokens_per_s'] / results['plain']['tokens_per_s']:.2f}x"
        )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
