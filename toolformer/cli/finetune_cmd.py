"""``toolformer finetune``: a thin click layer over :func:`toolformer.finetune.finetune`.

Every option maps onto a :class:`~toolformer.finetune.FinetuneConfig` field and takes its
default and help from it. torch and transformers are imported only when the command runs.
Under ``accelerate launch`` the same command trains on several processes (DDP, FSDP, ZeRO-3).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import click

from toolformer.finetune import FinetuneConfig  # light: no torch at import

_FIELDS = {f.name: f for f in dataclasses.fields(FinetuneConfig)}


def _opt(flag: str, name: str, **kwargs: Any):
    """A click option whose default and help come from the FinetuneConfig field ``name``."""
    f = _FIELDS[name]
    kwargs.setdefault("default", f.default)
    kwargs.setdefault("show_default", f.default is not None)
    return click.option(flag, name, help=f.metadata.get("help", ""), **kwargs)


_OPTIONS = [
    _opt("--data", "data", required=True, default=None, type=str),
    _opt("--output", "output_dir", required=True, default=None, type=str),
    _opt("--model", "model", type=str),
    _opt("--text-column", "text_column", type=str),
    _opt("--mix-plain", "mix_plain", type=str),
    _opt("--mix-ratio", "mix_ratio", type=float),
    _opt("--eval-fraction", "eval_fraction", type=float),
    _opt("--eval-data", "eval_data", type=str),
    _opt("--max-eval-docs", "max_eval_docs", type=int),
    _opt("--max-seq-len", "max_seq_len", type=int),
    click.option("--packing/--no-packing", "packing", default=True, show_default=True,
                 help=_FIELDS["packing"].metadata["help"]),
    _opt("--lr", "learning_rate", type=float),
    _opt("--warmup-ratio", "warmup_ratio", type=float),
    _opt("--weight-decay", "weight_decay", type=float),
    _opt("--max-grad-norm", "max_grad_norm", type=float),
    _opt("--batch-size", "batch_size", type=int),
    _opt("--effective-batch-size", "effective_batch_size", type=int),
    _opt("--grad-accum", "gradient_accumulation_steps", type=int),
    _opt("--max-steps", "max_steps", type=int),
    _opt("--epochs", "num_train_epochs", type=float),
    _opt("--eval-steps", "eval_steps", type=int),
    _opt("--save-steps", "save_steps", type=int),
    _opt("--save-total-limit", "save_total_limit", type=int),
    _opt("--logging-steps", "logging_steps", type=int),
    click.option("--lora", "lora", is_flag=True, help=_FIELDS["lora"].metadata["help"]),
    _opt("--lora-r", "lora_r", type=int),
    _opt("--lora-alpha", "lora_alpha", type=int),
    _opt("--lora-dropout", "lora_dropout", type=float),
    _opt("--lora-target-modules", "lora_target_modules", type=str),
    _opt("--init-adapter", "init_adapter", type=str),
    click.option("--bf16/--no-bf16", "bf16", default=None,
                 help=_FIELDS["bf16"].metadata["help"] + " [default: auto]"),
    click.option("--gradient-checkpointing", "gradient_checkpointing", is_flag=True,
                 help=_FIELDS["gradient_checkpointing"].metadata["help"]),
    _opt("--seed", "seed", type=int),
    click.option("--resume", "resume_from_checkpoint", is_flag=False, flag_value="latest", default=None,
                 help="resume training: from the newest checkpoint in OUTPUT, or from the checkpoint PATH given"),
    _opt("--workers", "dataloader_num_workers", type=int),
    click.option("--progress/--no-progress", "progress", default=True, show_default=True,
                 help=_FIELDS["progress"].metadata["help"]),
]


def _with_options(fn):
    for deco in reversed(_OPTIONS):
        fn = deco(fn)
    return fn


@click.command(name="finetune")
@_with_options
def finetune(**options: Any) -> None:
    """Fine-tune a model on augmented text (LM loss on the whole text, calls and results included).

    DATA is the annotation output folder (data.jsonl / dataset/), a JSONL/parquet file or a saved
    dataset with a `text` column. The best checkpoint by held-out perplexity is saved in OUTPUT
    with toolformer.json, so `toolformer generate --model OUTPUT` loads it. Several processes:
    `accelerate launch --config_file toolformer/configs/accelerate/ddp.yaml -m toolformer.cli.main finetune ...`
    """
    from toolformer.finetune import finetune as run

    config = FinetuneConfig(**options)
    result = run(config)
    m = result.metrics
    _echo_main(json.dumps({
        "output_dir": result.output_dir,
        "best_checkpoint": result.best_checkpoint,
        "global_step": m["global_step"],
        "train_loss": m["train_loss"],
        "eval_perplexity_before": m["eval_perplexity_before"],
        "eval_perplexity_after": m["eval_perplexity_after"],
        "tokens_trained": m["tokens_trained"],
    }, indent=2))


def _echo_main(text: str, rank: Optional[int] = None) -> None:
    """Print once per run, not once per process."""
    import os

    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    if rank == 0:
        click.echo(text)
