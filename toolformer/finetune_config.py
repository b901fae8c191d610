"""The settings of a fine-tuning run: what is specific to Toolformer fine-tuning (data, mixing,
packing, LoRA), plus ``training_args`` handed to transformers' ``TrainingArguments`` by name.

The shape is TRL's ``SFTConfig``: the config holds only its own fields, and everything the
``Trainer`` already knows (learning rate, steps, seed, ...) is passed on under its own name, so any
``TrainingArguments`` field works (``{"optim": "adafactor"}``) without a copy here. The paper's
values for the fields it fixes are :data:`PAPER_TRAINING_ARGS`; ``training_args`` overrides them.
:func:`training_arguments` turns a config into the ``TrainingArguments`` of a run. No torch or
transformers at import.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, Optional

from toolformer.config_types import check_field_types
from toolformer.errors import UserError
from toolformer.models import DEFAULT_MODEL

# The paper's fine-tuning setup (Section 4.1 / App. B: lr 1e-5, 10% linear warm-up then linear
# decay, up to 2k steps, best checkpoint by held-out perplexity), as TrainingArguments fields.
# None means "derived here": gradient_accumulation_steps from effective_batch_size,
# num_train_epochs unused (max_steps decides), save_steps = eval_steps, bf16 auto.
PAPER_TRAINING_ARGS: Dict[str, Any] = {
    "learning_rate": 1e-5,
    "warmup_ratio": 0.1,
    "weight_decay": 0.0,
    "max_grad_norm": 1.0,
    "per_device_train_batch_size": 8,
    "gradient_accumulation_steps": None,
    "max_steps": 2000,
    "num_train_epochs": None,
    "eval_steps": 100,
    "save_steps": None,
    "save_total_limit": 2,
    "logging_steps": 10,
    "bf16": None,
    "gradient_checkpointing": False,
    "seed": 42,
    "dataloader_num_workers": 0,
}

# Names FinetuneConfig had before it passed TrainingArguments fields on by name (old config files
# and ``KEY=VALUE`` options still use them; see FinetuneConfig.from_dict).
RENAMED: Dict[str, str] = {
    "max_seq_len": "max_length",
    "text_column": "dataset_text_field",
    "batch_size": "per_device_train_batch_size",
}

# What the values above mean in this run (the CLI's help for their options).
TRAINING_ARGS_HELP: Dict[str, str] = {
    "learning_rate": "peak learning rate (paper: 1e-5)",
    "warmup_ratio": (
        "linear warm-up over this fraction of the steps, then linear decay to 0 (paper: 10%)"
    ),
    "weight_decay": "AdamW weight decay",
    "max_grad_norm": "gradient clipping norm",
    "per_device_train_batch_size": "blocks per device per forward pass (also for evaluation)",
    "gradient_accumulation_steps": "override the accumulation derived from effective_batch_size",
    "max_steps": (
        "optimizer steps (paper: up to 2000); with num_train_epochs, the smaller wins; <= 0: no cap"
    ),
    "num_train_epochs": "train for this many epochs (capped by max_steps)",
    "eval_steps": "evaluate held-out perplexity every N steps (and at the end)",
    "save_steps": (
        "checkpoint every N steps (default: eval_steps; must be a multiple of it); 0 = "
        "no checkpoints: the final model is the last one, and the run cannot be resumed"
    ),
    "save_total_limit": "checkpoints kept on disk (the best one is always kept)",
    "logging_steps": "log the training loss every N steps",
    "bf16": (
        "bf16 mixed precision; None = auto (on for CUDA GPUs "
        "that support bf16; off on CPU, where it measured slower)"
    ),
    "gradient_checkpointing": "recompute activations in backward to save memory",
    "seed": "the run's one seed: the split, mixing, shuffling and initialisation",
    "dataloader_num_workers": "data-loader worker processes",
}


@dataclass
class FinetuneConfig:
    """Settings of a fine-tuning run (defaults: the paper's setup, see
    :data:`PAPER_TRAINING_ARGS`); ``training_args`` reaches ``TrainingArguments`` by name."""

    data: str = field(
        default="",
        metadata={
            "help": (
                "annotation output folder (data.jsonl / dataset/), a JSONL, JSON, "
                "parquet, CSV or TXT file, or a saved HF dataset with a text column"
            )
        },
    )
    output_dir: str = field(
        default="toolformer-finetuned",
        metadata={"help": "where the final model, adapter, checkpoints and toolformer.json go"},
    )
    model: str = field(
        default=DEFAULT_MODEL,
        metadata={"help": "base model: alias (smollm2-135m, gemma3-270m), local folder or HF id"},
    )
    dataset_text_field: str = field(
        default="text", metadata={"help": "column holding the (augmented) text"}
    )
    mix_plain: Optional[str] = field(
        default=None,
        metadata={"help": "optional plain-text dataset (same formats) mixed into training"},
    )
    mix_ratio: float = field(
        default=0.0,
        metadata={"help": "fraction of training documents drawn from mix_plain, in [0, 1)"},
    )
    eval_fraction: float = field(
        default=0.05,
        metadata={
            "help": (
                "held-out fraction of the documents for perplexity "
                "/ best-checkpoint selection (0 = no eval)"
            )
        },
    )
    eval_data: Optional[str] = field(
        default=None,
        metadata={
            "help": "a separate held-out dataset (same formats); replaces the eval_fraction split"
        },
    )
    max_eval_docs: int = field(default=2000, metadata={"help": "cap on held-out documents"})
    max_length: int = field(
        default=512, metadata={"help": "tokens per training block (the paper does not state one)"}
    )
    packing: bool = field(
        default=True,
        metadata={
            "help": (
                "join tokenized texts with EOS and cut them into max_length "
                "blocks (False: one padded row per text, truncated)"
            )
        },
    )
    effective_batch_size: int = field(
        default=128,
        metadata={
            "help": (
                "blocks per optimizer step over all devices "
                "(paper: 128); sets gradient accumulation"
            )
        },
    )
    lora: bool = field(
        default=False,
        metadata={
            "help": "train a LoRA adapter instead of all weights; the saved model has it merged"
        },
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling alpha"})
    lora_dropout: float = field(default=0.05, metadata={"help": "LoRA dropout"})
    lora_target_modules: str = field(
        default="all-linear",
        metadata={"help": "comma-separated module names for LoRA, or 'all-linear'"},
    )
    init_adapter: Optional[str] = field(
        default=None,
        metadata={
            "help": (
                "with lora: go on training this LoRA adapter folder "
                "(adapter_config.json) instead of a fresh one (self-training rounds)"
            )
        },
    )
    resume_from_checkpoint: Optional[str] = field(
        default=None,
        metadata={
            "help": "a checkpoint folder, or 'latest' for the newest one in output_dir/checkpoints"
        },
    )
    progress: bool = field(default=True, metadata={"help": "show tqdm progress bars"})
    training_args: Dict[str, Any] = field(
        default_factory=dict,
        metadata={
            "help": (
                "TrainingArguments fields by name, over PAPER_TRAINING_ARGS "
                "(e.g. {'learning_rate': 3e-4, 'optim': 'adafactor'})"
            )
        },
    )

    def __post_init__(self) -> None:
        check_field_types(self, "finetune.")  # a config file's "max_length": "128": one line
        if not isinstance(self.training_args, dict):
            raise UserError("training_args must be a dict of TrainingArguments fields")
        for name in _NUMERIC_ARGS:  # compared below: a string is one line, not a TypeError
            value = self.arg(name)
            if value is None and name in _MAY_BE_NONE:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                null = " or null" if name in _MAY_BE_NONE else ""
                raise UserError(
                    f"training_args: {name} must be a number{null}, got "
                    f"{type(value).__name__} {value!r:.60}"
                )
        if not 0.0 <= self.eval_fraction < 1.0:
            raise UserError(f"eval_fraction must be in [0, 1), got {self.eval_fraction}")
        if not 0.0 <= self.mix_ratio < 1.0:
            raise UserError(f"mix_ratio must be in [0, 1), got {self.mix_ratio}")
        if self.mix_ratio > 0 and not self.mix_plain:
            raise UserError(
                "FinetuneConfig.mix_ratio needs a plain-text dataset: set FinetuneConfig.mix_plain",
                field=("FinetuneConfig.mix_ratio", "FinetuneConfig.mix_plain"),
            )
        for name, value in (
            ("per_device_train_batch_size", self.arg("per_device_train_batch_size")),
            ("effective_batch_size", self.effective_batch_size),
            ("eval_steps", self.arg("eval_steps")),
            ("logging_steps", self.arg("logging_steps")),
        ):
            if value < 1:
                raise UserError(f"{name} must be >= 1, got {value}")
        if self.max_length < 2:
            raise UserError("max_length must be >= 2")
        accum, epochs = self.arg("gradient_accumulation_steps"), self.arg("num_train_epochs")
        if accum is not None and accum < 1:
            raise UserError("gradient_accumulation_steps must be >= 1")
        if epochs is not None and epochs <= 0:
            raise UserError("num_train_epochs must be > 0")
        if epochs is None and self.arg("max_steps") <= 0:
            raise UserError("set max_steps > 0 or num_train_epochs")
        has_eval = self.eval_fraction > 0 or bool(self.eval_data)
        save_steps, eval_steps = self.arg("save_steps"), self.arg("eval_steps")
        if save_steps is not None and save_steps < 0:
            raise UserError("save_steps must be >= 0 (0 = no checkpoints)")
        if save_steps and has_eval and save_steps % eval_steps:
            raise UserError(
                f"save_steps must be a multiple of eval_steps ({eval_steps}) so that the best "
                "checkpoint is on disk"
            )
        if not 0.0 <= self.arg("warmup_ratio") < 1.0:
            raise UserError(f"warmup_ratio must be in [0, 1), got {self.arg('warmup_ratio')}")

    def arg(self, name: str) -> Any:
        """A ``TrainingArguments`` value of this run: ``training_args`` over the paper's."""
        if name in self.training_args:
            return self.training_args[name]
        return PAPER_TRAINING_ARGS.get(name)

    @property
    def all_training_args(self) -> Dict[str, Any]:
        """:data:`PAPER_TRAINING_ARGS` with ``training_args`` over them."""
        return {**PAPER_TRAINING_ARGS, **self.training_args}

    @classmethod
    def from_dict(cls, values: Dict[str, Any]) -> "FinetuneConfig":
        """A config from one flat dict (a config file, ``KEY=VALUE`` options): own fields by
        name, ``training_args`` nested, and every other key (a ``TrainingArguments`` field; old
        names via :data:`RENAMED`) into ``training_args``, over the nested ones."""
        own = {f.name for f in fields(cls)}
        kwargs: Dict[str, Any] = {}
        training = dict(values.get("training_args") or {})
        for key, value in values.items():
            if key == "training_args":
                continue
            key = RENAMED.get(key, key)
            (kwargs if key in own else training)[key] = value
        return cls(**kwargs, training_args=training)

    def to_dict(self) -> Dict[str, Any]:
        """The fields, with ``training_args`` in full (paper defaults included): what a
        manifest records, and ``FinetuneConfig(**d)`` rebuilds the same run."""
        return {**asdict(self), "training_args": self.all_training_args}

    @property
    def seed(self) -> int:
        """The run's one seed (``TrainingArguments.seed``; also the split and the mixing)."""
        return self.arg("seed")


# --------------------------------------------------------------------------- Trainer settings


def resolve_bf16(setting: Optional[bool]) -> bool:
    """Whether to train with bf16 autocast. Auto: on for CUDA GPUs with bf16 support.

    On CPU it stays off: on the 2-core AMD EPYC we develop on, bf16-autocast training steps of
    SmolLM2-135M ran slower than fp32 (benchmarks/finetune_bench.py --precision), although a
    bare bf16 matmul is ~3x faster there: autocast re-casts the weights every step and the
    backward pass and optimizer stay in fp32. Pass ``bf16=True`` to force it.
    """
    import torch

    if setting is not None:
        if not setting:
            # an explicit "no" also overrides an accelerate config that asked for bf16
            os.environ["ACCELERATE_MIXED_PRECISION"] = "no"
            return False
        if torch.cuda.is_available() and not torch.cuda.is_bf16_supported():
            raise UserError(
                "this GPU does not support bf16; set TrainingArguments.bf16=False",
                field="TrainingArguments.bf16=False",
            )
        return True  # on CPU, autocast to bf16 works; the user asked for it
    if os.environ.get("ACCELERATE_MIXED_PRECISION", "no") != "no":
        return False  # the accelerate config decides; Trainer reads it from the environment
    return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())


def world_size() -> int:
    """Processes in this run (``accelerate launch`` / ``torchrun`` set WORLD_SIZE)."""
    return max(1, int(os.environ.get("WORLD_SIZE", "1")))


def accumulation_steps(config: FinetuneConfig, processes: int) -> int:
    """Micro-batches per optimizer step so that the effective batch is ``effective_batch_size``."""
    if config.arg("gradient_accumulation_steps") is not None:
        return config.arg("gradient_accumulation_steps")
    batch = config.arg("per_device_train_batch_size")
    return max(1, math.ceil(config.effective_batch_size / (batch * processes)))


def total_steps(config: FinetuneConfig, n_blocks: int, processes: int, accum: int) -> int:
    """Optimizer steps: ``max_steps``, or the steps of ``num_train_epochs`` capped by it."""
    epochs, max_steps = config.arg("num_train_epochs"), config.arg("max_steps")
    if epochs is None:
        return max_steps
    micro = math.ceil(n_blocks / (config.arg("per_device_train_batch_size") * processes))
    steps = max(1, math.ceil(epochs * micro / accum))
    return min(steps, max_steps) if max_steps > 0 else steps


# TrainingArguments fields that this module turns into others (warmup_ratio -> warmup_steps, ...)
# or decides from the run (steps, evaluation and checkpoint strategy): not passed on as given.
# the training_args this module compares with numbers itself
_NUMERIC_ARGS = (
    "per_device_train_batch_size",
    "eval_steps",
    "logging_steps",
    "save_steps",
    "max_steps",
    "num_train_epochs",
    "gradient_accumulation_steps",
    "warmup_ratio",
)
_MAY_BE_NONE = ("save_steps", "max_steps", "num_train_epochs", "gradient_accumulation_steps")
_CONSUMED = (
    "warmup_ratio",
    "gradient_accumulation_steps",
    "max_steps",
    "num_train_epochs",
    "eval_steps",
    "save_steps",
    "bf16",
    "gradient_checkpointing",
)


def check_training_args(args: Dict[str, Any]) -> None:
    """Raise :class:`UserError` (one line) for a ``training_args`` key that is no
    ``TrainingArguments`` field, or a value not of the field's type (``learning_rate`` given as
    ``"fast"``): a config file's mistake is found before any stage of a run, not when training
    starts."""
    import dataclasses
    from typing import get_type_hints

    from transformers import TrainingArguments

    from toolformer.config_types import describe_type, fits

    known = {f.name for f in dataclasses.fields(TrainingArguments)}
    unknown = sorted(set(args) - known - set(_CONSUMED))
    if unknown:
        from toolformer.registry import closest

        close = closest(unknown[0], known, cutoff=0.6)
        hint = f"; did you mean {close!r}?" if close else ""
        raise UserError(f"training_args: {unknown[0]!r} is not a TrainingArguments field{hint}")
    try:
        hints = get_type_hints(TrainingArguments)
    except Exception:  # an annotation this Python cannot evaluate: names only
        return
    for key, value in args.items():
        # the keys this project reads itself take None too (bf16: auto, ...)
        tp = Optional[hints[key]] if key in _CONSUMED and key in hints else hints.get(key)
        if tp is not None and not fits(value, tp):
            raise UserError(
                f"training_args: {key} must be {describe_type(tp)}, got "
                f"{type(value).__name__} {value!r:.60}"
            )


def training_arguments(
    config: FinetuneConfig,
    steps: int,
    accum: int,
    do_eval: bool,
    bf16: bool,
    checkpoints_dir: str = "checkpoints",
) -> Any:
    """``TrainingArguments``: the run's derived settings over ``config.all_training_args``
    (passed by name), over this project's defaults (linear decay, no reporting).

    ``steps``/``accum``: from :func:`total_steps` and :func:`accumulation_steps`; ``bf16``: from
    :func:`resolve_bf16`. Raises :class:`UserError` for a name that is no ``TrainingArguments``
    field.
    """

    import torch
    from transformers import TrainingArguments

    args = config.all_training_args
    eval_steps = args["eval_steps"]
    checkpoints = args["save_steps"] != 0
    passed = {k: v for k, v in args.items() if k not in _CONSUMED}
    check_training_args(passed)
    return TrainingArguments(
        **{
            # this project's defaults; training_args may change them
            "lr_scheduler_type": "linear",
            "per_device_eval_batch_size": args["per_device_train_batch_size"],
            "report_to": "none",
            "dataloader_pin_memory": torch.cuda.is_available(),
            "include_num_input_tokens_seen": "non_padding",
            **passed,
            # decided by this run
            "output_dir": str(Path(config.output_dir) / checkpoints_dir),
            "gradient_accumulation_steps": accum,
            "warmup_steps": math.ceil(args["warmup_ratio"] * steps),
            "max_steps": steps,
            "eval_strategy": "steps" if do_eval else "no",
            "eval_steps": eval_steps if do_eval else None,
            "save_strategy": "steps" if checkpoints else "no",
            "save_steps": args["save_steps"] or eval_steps,
            "load_best_model_at_end": do_eval and checkpoints,
            "metric_for_best_model": "eval_loss" if do_eval else None,
            "greater_is_better": False if do_eval else None,
            "bf16": bf16,
            "activation_checkpointing": args["gradient_checkpointing"],
            "remove_unused_columns": False,  # the collator reads input_ids only
            # without a GPU, several processes (torchrun / accelerate launch) form a gloo CPU group
            "use_cpu": not torch.cuda.is_available(),
            "disable_tqdm": not config.progress,
        }
    )
