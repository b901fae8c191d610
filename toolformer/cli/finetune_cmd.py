"""``toolformer finetune``: a thin click layer over :func:`toolformer.finetune.finetune`.

Every option maps onto a :class:`~toolformer.finetune_config.FinetuneConfig` field, or onto a
``TrainingArguments`` field with the paper's default (``PAPER_TRAINING_ARGS``), and takes its
default and help from there; ``--training-arg NAME=VALUE`` reaches any other one. torch and
transformers are imported only when the command runs.
Under ``accelerate launch`` the same command trains on several processes (DDP, FSDP, ZeRO-3).
"""

from __future__ import annotations

import json
from typing import Any, Optional

import click

from toolformer.cli.options import field_options, parse_key_values, value_option
from toolformer.finetune_config import (  # light: no torch at import
    PAPER_TRAINING_ARGS,
    TRAINING_ARGS_HELP,
    FinetuneConfig,
)


def _training(name: str, *flags: str, **overrides: Any):
    """An option for a TrainingArguments field, with the paper's default."""
    overrides.setdefault("help", TRAINING_ARGS_HELP[name])
    return value_option(name, PAPER_TRAINING_ARGS[name], "", *flags, **overrides)


# Old spellings stay as aliases: --max-seq-len, --text-column, --lr, --grad-accum, --epochs,
# --workers, --batch-size.
_OPTIONS = [
    field_options(
        FinetuneConfig,
        ("data", "--data", {"required": True, "default": None, "show_default": False}),
        ("output_dir", "--output", {"required": True, "default": None, "show_default": False}),
        "model",
        ("dataset_text_field", "--dataset-text-field", "--text-column"),
        ("mix_plain", "--mix-plain", {"type": str}),
        "mix_ratio",
        "eval_fraction",
        ("eval_data", "--eval-data", {"type": str}),
        "max_eval_docs",
        ("max_length", "--max-length", "--max-seq-len"),
        ("packing", "--packing/--no-packing"),
    ),
    _training("learning_rate", "--lr", "--learning-rate"),
    _training("warmup_ratio"),
    _training("weight_decay"),
    _training("max_grad_norm"),
    _training("per_device_train_batch_size", "--batch-size", "--per-device-train-batch-size"),
    field_options(FinetuneConfig, "effective_batch_size"),
    _training(
        "gradient_accumulation_steps", "--grad-accum", "--gradient-accumulation-steps", type=int
    ),
    _training("max_steps"),
    _training("num_train_epochs", "--epochs", "--num-train-epochs", type=float),
    _training("eval_steps"),
    _training("save_steps", type=int),
    _training("save_total_limit"),
    _training("logging_steps"),
    field_options(
        FinetuneConfig,
        ("lora", "--lora", {"is_flag": True}),
        "lora_r",
        "lora_alpha",
        "lora_dropout",
        "lora_target_modules",
        ("init_adapter", "--init-adapter", {"type": str}),
    ),
    _training("bf16", "--bf16/--no-bf16", help=TRAINING_ARGS_HELP["bf16"] + " [default: auto]"),
    _training("gradient_checkpointing", "--gradient-checkpointing", is_flag=True),
    _training("seed"),
    click.option(
        "--resume",
        "resume_from_checkpoint",
        is_flag=False,
        flag_value="latest",
        default=None,
        help=(
            "resume training: from the newest checkpoint "
            "in OUTPUT, or from the checkpoint PATH given"
        ),
    ),
    _training("dataloader_num_workers", "--workers", "--dataloader-num-workers"),
    field_options(FinetuneConfig, ("progress", "--progress/--no-progress")),
    click.option(
        "--training-arg",
        "extra_training_args",
        multiple=True,
        metavar="NAME=VALUE",
        help="any other TrainingArguments field, e.g. --training-arg optim=adafactor "
        "(value read as JSON when it parses); repeatable",
    ),
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
    `accelerate launch --config_file toolformer/configs/accelerate/ddp.yaml
    -m toolformer.cli.main finetune ...`
    """
    from toolformer.finetune import finetune as run

    extra = parse_key_values(options.pop("extra_training_args"), "--training-arg")
    training = {name: options.pop(name) for name in PAPER_TRAINING_ARGS}
    training = {k: v for k, v in training.items() if v != PAPER_TRAINING_ARGS[k]}  # overrides only
    config = FinetuneConfig(**options, training_args={**training, **extra})
    result = run(config)
    m = result.metrics
    _echo_main(
        json.dumps(
            {
                "output_dir": result.output_dir,
                "best_checkpoint": result.best_checkpoint,
                "global_step": m["global_step"],
                "train_loss": m["train_loss"],
                "eval_perplexity_before": m["eval_perplexity_before"],
                "eval_perplexity_after": m["eval_perplexity_after"],
                "tokens_trained": m["tokens_trained"],
            },
            indent=2,
        )
    )


def _echo_main(text: str, rank: Optional[int] = None) -> None:
    """Print once per run, not once per process."""
    import os

    rank = int(os.environ.get("RANK", "0")) if rank is None else rank
    if rank == 0:
        click.echo(text)
