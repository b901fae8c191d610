"""Preference pairs from self-training samples, and DPO on a LoRA adapter (Rafailov et al. 2023).

Grow samples several outputs per word problem and Improve scores them (1.0 right, 0.0 wrong);
SFT then trains only on the right ones. The model's common mistake, the wrong operation
(``[Calculator(24 + 6)`` where ``24 - 6`` is right), is a right and a wrong sample on the same
problem: :func:`preference_pairs` makes such pairs, and :func:`dpo_train` trains the round's SFT
adapter on them with TRL's ``DPOTrainer``, the reference policy being that SFT adapter, frozen
(not the base model under it).

The DPO output folder has the layout of :func:`toolformer.finetune.finetune`'s LoRA output: the
adapter in ``ADAPTER_DIR``, the merged weights, tokenizer and ``toolformer.json`` beside it, so
``load_model`` and the self-training loop take either folder alike.

Needs the optional ``trl`` package (``pip install trl``); torch, transformers and trl load only
when training starts.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import shutil
import warnings
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Iterator, List, Optional, Sequence, Union

from toolformer.config_types import check_field_types
from toolformer.errors import MissingDependencyError, UserError, ensure_dir
from toolformer.finetune import FINETUNE_WRITES
from toolformer.manifest import read_manifest, write_manifest

if TYPE_CHECKING:  # the selftrain package imports this module's settings: no import cycle
    from toolformer.selftrain.candidates import Candidate

PREFERENCES = ("dpo",)  # the preference-training methods self-training offers
TRL_INSTALL = "pip install 'trl>=1.16'"
# what dpo_train writes at the top of its output folder (an input there would be overwritten):
# a LoRA fine-tuning run's layout
DPO_WRITES = FINETUNE_WRITES
RIGHT, WRONG = 1.0, 0.0  # the answer filter's scores


@dataclass
class DPOSettings:
    """DPO's hyper-parameters (TRL's ``DPOConfig`` / ``TrainingArguments`` names)."""

    beta: float = field(
        default=0.1,
        metadata={
            "help": (
                "DPO's beta: how far the policy may move from the reference (the SFT "
                "adapter); higher keeps it closer"
            )
        },
    )
    learning_rate: float = field(
        default=5e-5, metadata={"help": "peak learning rate of the LoRA weights (linear decay)"}
    )
    max_steps: int = field(
        default=40, metadata={"help": "optimizer steps at most (num_train_epochs may stop sooner)"}
    )
    num_train_epochs: float = field(
        default=3.0, metadata={"help": "passes over the pairs, capped by max_steps"}
    )
    per_device_train_batch_size: int = field(
        default=4, metadata={"help": "pairs per forward pass (each pair: chosen and rejected)"}
    )
    gradient_accumulation_steps: int = field(
        default=1, metadata={"help": "forward passes per optimizer step"}
    )
    max_length: int = field(
        default=256,
        metadata={"help": "tokens of prompt + output at most (longer pairs are cut at the end)"},
    )
    max_pairs_per_prompt: int = field(
        default=2, metadata={"help": "preference pairs per problem at most"}
    )
    precompute_ref_log_probs: bool = field(
        default=True,
        metadata={
            "help": (
                "compute the reference (SFT adapter) log-probabilities once before training "
                "instead of a second forward pass every step"
            )
        },
    )
    logging_steps: int = field(default=1, metadata={"help": "steps between logged metrics"})

    def check(self, where: str = "dpo") -> None:
        """Raise :class:`UserError` (one line, naming ``where``) for a setting that cannot
        train: a field of another type, a beta, learning rate, step or batch count <= 0."""
        check_field_types(self, f"{where}.")
        for name in (
            "beta",
            "learning_rate",
            "max_steps",
            "num_train_epochs",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "max_pairs_per_prompt",
            "logging_steps",
        ):
            value = getattr(self, name)
            if not value > 0:
                raise UserError(f"{where}.{name} must be > 0, got {value}")


@dataclass
class DPOTrainConfig:
    """One DPO run: the pairs, the base model with its SFT adapter, and where the result goes."""

    pairs: Union[str, List[Dict[str, Any]], None] = field(
        default=None,
        metadata={"help": "preference pairs: a JSONL file or a list of {prompt, chosen, rejected}"},
    )
    model: str = field(default="", metadata={"help": "base model: alias, folder or HF id"})
    adapter: str = field(
        default="",
        metadata={"help": "the SFT LoRA adapter folder: the starting policy and the reference"},
    )
    output_dir: str = field(default="", metadata={"help": "where the DPO adapter goes"})
    settings: DPOSettings = field(
        default_factory=DPOSettings, metadata={"help": "DPO's hyper-parameters"}
    )
    seed: int = field(default=0, metadata={"help": "seed of the data order"})
    threads: Optional[int] = field(default=None, metadata={"help": "torch CPU threads"})
    progress: bool = field(default=False, metadata={"help": "TRL's progress bars"})
    manifest: Dict[str, Any] = field(
        default_factory=dict,
        metadata={"help": "extra toolformer.json fields of the output folder (tools, ...)"},
    )


# --------------------------------------------------------------------------- pairs


def _sound(cand: "Candidate") -> bool:
    """Every call the sample made ran and is closed in its text (no failed call to learn from)."""
    return len(cand.ok_calls) == len(cand.calls)


def preference_pairs(
    candidates: Sequence["Candidate"],
    scores: Sequence[Optional[float]],
    max_pairs_per_prompt: int = 2,
) -> List[Dict[str, Any]]:
    """Right-vs-wrong pairs of samples on the same problem: ``[{"prompt", "chosen",
    "rejected", "doc_id"}]``.

    ``scores[i]`` is the Improve filter's score of ``candidates[i]`` (the answer filter: 1.0
    right, 0.0 wrong, None not judged). Chosen: a right sample none of whose calls failed.
    Rejected: a wrong sample that made a call and whose calls all ran (``ok_calls`` are all its
    ``calls``): it is wrong for what it computed (the operation, the operands), not for a broken
    or cut call. ``prompt`` is the candidate's prompt, ``chosen``/``rejected`` its output text
    (SFT trains on ``prompt + text``: :meth:`Candidate.training_text`). A problem with no right
    or no such wrong sample gives no pair; equal texts are one sample. Per problem at most
    ``max_pairs_per_prompt`` pairs: the i-th right with the i-th wrong first (each sample once),
    then the other combinations; problems in the order they first appear, samples by index.

    Raises ``ValueError`` when ``candidates`` and ``scores`` differ in length."""
    if len(candidates) != len(scores):
        raise ValueError(f"{len(candidates)} candidates but {len(scores)} scores")
    by_doc: Dict[str, Dict[str, List[Any]]] = {}
    for cand, score in sorted(zip(candidates, scores), key=lambda cs: (cs[0].doc_id, cs[0].sample)):
        if score is None:
            continue
        doc = by_doc.setdefault(cand.doc_id, {"right": [], "wrong": [], "prompt": [cand.prompt]})
        if score >= RIGHT and _sound(cand):
            doc["right"].append(cand.text)
        elif score <= WRONG and cand.calls and _sound(cand):
            doc["wrong"].append(cand.text)
    order = list(dict.fromkeys(c.doc_id for c in candidates))
    pairs: List[Dict[str, Any]] = []
    for doc_id in order:
        doc = by_doc.get(doc_id)
        if doc is None:
            continue
        right = list(dict.fromkeys(doc["right"]))
        wrong = [t for t in dict.fromkeys(doc["wrong"]) if t not in right]
        combos = sorted(
            ((r, w) for r in range(len(right)) for w in range(len(wrong))),
            key=lambda rw: (rw[0] != rw[1], rw),
        )
        for r, w in combos[:max_pairs_per_prompt]:
            pairs.append(
                {
                    "prompt": doc["prompt"][0],
                    "chosen": right[r],
                    "rejected": wrong[w],
                    "doc_id": doc_id,
                }
            )
    return pairs


# --------------------------------------------------------------------------- training


def require_trl() -> None:
    """Raise :class:`MissingDependencyError` (with the pip command) when trl is not installed."""
    if importlib.util.find_spec("trl") is None:
        raise MissingDependencyError("DPO (preference training)", TRL_INSTALL)


def read_pairs(pairs: Union[str, Path, Sequence[Dict[str, Any]], None]) -> List[Dict[str, Any]]:
    """The pairs of a JSONL file, or the list given. Raises :class:`UserError` (one line) for a
    missing file or a row without ``prompt``, ``chosen`` and ``rejected`` strings."""
    if pairs is None:
        raise UserError("no preference pairs: set DPOTrainConfig.pairs")
    if isinstance(pairs, (str, Path)):
        path = Path(pairs).expanduser()
        if not path.is_file():
            raise UserError(f"preference pairs file {pairs}: no such file")
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    else:
        rows = list(pairs)
    for i, row in enumerate(rows):
        if not all(isinstance(row.get(k), str) for k in ("prompt", "chosen", "rejected")):
            raise UserError(
                f"preference pair {i} needs prompt, chosen and rejected strings, got {sorted(row)}"
            )
    return rows


def dpo_steps(settings: DPOSettings, pairs: int) -> int:
    """Optimizer steps of a run on ``pairs`` pairs: ``num_train_epochs`` passes, at most
    ``max_steps``, at least one."""
    per_step = settings.per_device_train_batch_size * settings.gradient_accumulation_steps
    return max(1, min(settings.max_steps, math.ceil(settings.num_train_epochs * pairs / per_step)))


def build_trainer(config: DPOTrainConfig) -> Any:
    """TRL's ``DPOTrainer`` of ``config``, ready to ``train()``: the base model with the SFT
    adapter loaded trainable (peft adapter ``default``), the reference a frozen copy of it.

    The reference: TRL (>= 1.x), given a ``PeftModel`` and no ``ref_model``, copies the
    ``default`` adapter into a frozen ``ref`` adapter and computes the reference log-probs with
    it, i.e. with the SFT policy (with adapters disabled, the base model, only for a model
    without an adapter). With ``precompute_ref_log_probs`` they are computed once here, before
    any step. Raises :class:`UserError` when this TRL made no ``ref`` adapter (an older TRL
    would take the base model as the reference), :class:`MissingDependencyError` without trl.
    """
    require_trl()
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer

    from toolformer.finetune import recorded_model
    from toolformer.finetune_config import resolve_bf16
    from toolformer.models import (
        check_exists,
        load_pretrained,
        load_tokenizer,
        peft_from_pretrained,
        quiet_peft,
        resolve,
    )

    s = config.settings
    s.check("DPOTrainConfig.settings")
    rows = read_pairs(config.pairs)
    if not rows:
        raise UserError("no preference pairs to train on")
    if not (Path(config.adapter) / "adapter_config.json").is_file():
        raise UserError(
            f"DPOTrainConfig.adapter {config.adapter!r} is not a LoRA adapter folder "
            "(no adapter_config.json)"
        )
    if config.threads:
        torch.set_num_threads(config.threads)
    base_path = resolve(config.model)
    check_exists(base_path, config.model)
    base_path = recorded_model(base_path)
    tokenizer = load_tokenizer(base_path)
    model = load_pretrained(AutoModelForCausalLM, base_path, config.model, dtype=torch.float32)
    for cfg in (model.config, model.generation_config):
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = tokenizer.pad_token_id
    model = peft_from_pretrained(model, config.adapter, is_trainable=True)
    steps = dpo_steps(s, len(rows))
    with warnings.catch_warnings():  # TRL's own default of a field transformers renamed
        warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated.*")
        args = DPOConfig(
            output_dir=str(Path(config.output_dir) / "checkpoints"),
            beta=s.beta,
            learning_rate=s.learning_rate,
            lr_scheduler_type="linear",
            max_steps=steps,
            per_device_train_batch_size=s.per_device_train_batch_size,
            gradient_accumulation_steps=s.gradient_accumulation_steps,
            max_length=s.max_length,
            precompute_ref_log_probs=s.precompute_ref_log_probs,
            logging_steps=s.logging_steps,
            seed=config.seed,
            data_seed=config.seed,
            bf16=resolve_bf16(None),
            gradient_checkpointing=False,  # a small model: memory is not what limits it
            save_strategy="no",
            report_to="none",
            disable_tqdm=not config.progress,
            dataloader_pin_memory=torch.cuda.is_available(),
        )
    data = Dataset.from_list([{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in rows])
    with _quiet_datasets(not config.progress), quiet_peft():
        trainer = DPOTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer)
    if not config.progress:  # the Trainer prints each log line when its bars are off
        trainer.remove_callback(PrinterCallback)
    if "ref" not in trainer.model.peft_config:
        raise UserError(
            "this TRL version keeps no frozen copy of the SFT adapter as DPO's reference "
            f"(it would use the base model); upgrade it: {TRL_INSTALL}"
        )
    return trainer


@contextmanager
def _quiet_datasets(quiet: bool) -> Iterator[None]:
    """Without progress bars for TRL's dataset passes (tokenizing, reference log-probs) while
    ``quiet``; the global setting as it was afterwards."""
    import datasets

    was_on, tqdm_env = datasets.is_progress_bar_enabled(), os.environ.get("TQDM_DISABLE")
    if quiet:
        datasets.disable_progress_bars()
        os.environ["TQDM_DISABLE"] = "1"  # TRL's reference log-probs pass reads it
    try:
        yield
    finally:
        if quiet and was_on:
            datasets.enable_progress_bars()
        if quiet and tqdm_env is None:
            os.environ.pop("TQDM_DISABLE", None)
        elif quiet:
            os.environ["TQDM_DISABLE"] = tqdm_env


def _last(history: Sequence[Dict[str, Any]], key: str) -> Optional[float]:
    values = [h[key] for h in history if key in h]
    return float(values[-1]) if values else None


def dpo_train(config: DPOTrainConfig) -> Dict[str, Any]:
    """Train ``config.adapter`` (the SFT adapter on ``config.model``) with DPO on
    ``config.pairs`` and save the result in ``config.output_dir``: the adapter in
    ``ADAPTER_DIR`` (the trained ``default`` adapter only, not TRL's reference copy), the
    merged weights, tokenizer and a ``toolformer.json`` (:mod:`toolformer.manifest`) beside it,
    as :func:`toolformer.finetune.finetune` lays out a LoRA run.

    Returns the metrics: ``pairs``, ``global_step``, ``train_loss`` (mean over the run),
    ``loss_first``/``loss_last`` (logged), ``reward_accuracy``/``reward_margin`` (the last
    logged ``rewards/accuracies`` / ``rewards/margins``: the share of pairs whose chosen output
    gains more log-probability over the reference than the rejected one, and by how much,
    times beta), ``train_runtime_s``.

    Raises :class:`UserError` (one line) for no pairs, no adapter folder, bad settings, an
    output folder another run holds or that would overwrite an input;
    :class:`MissingDependencyError` without trl."""
    from toolformer.finetune import call_syntax, merge_adapter, recorded_model
    from toolformer.models import ADAPTER_DIR, quiet_peft, resolve
    from toolformer.output_lock import check_not_input, hold_output

    if not config.output_dir:
        raise UserError("no output folder: set DPOTrainConfig.output_dir")
    pairs_file = config.pairs if isinstance(config.pairs, (str, Path)) else None
    check_not_input(
        config.output_dir,
        {"DPOTrainConfig.pairs": pairs_file, "DPOTrainConfig.adapter": config.adapter},
        DPO_WRITES,
        option="DPOTrainConfig.output_dir",
    )
    out = ensure_dir(config.output_dir, "the output folder")
    with hold_output(out, option="DPOTrainConfig.output_dir"):
        trainer = build_trainer(config)
        with quiet_peft():  # transformers' deprecation, read by TRL's reference pass each step
            result = trainer.train()
        history = trainer.state.log_history
        losses = [h["loss"] for h in history if "loss" in h]
        metrics: Dict[str, Any] = {
            "pairs": len(trainer.train_dataset),
            "global_step": trainer.state.global_step,
            "train_loss": result.metrics.get("train_loss"),
            "loss_first": float(losses[0]) if losses else None,
            "loss_last": float(losses[-1]) if losses else None,
            "reward_accuracy": _last(history, "rewards/accuracies"),
            "reward_margin": _last(history, "rewards/margins"),
            "train_runtime_s": result.metrics.get("train_runtime"),
        }
        model = trainer.accelerator.unwrap_model(trainer.model)
        # the trained adapter alone: TRL's frozen "ref" copy is the starting point, not a result
        model.save_pretrained(str(out / ADAPTER_DIR), selected_adapters=["default"])
        base_path = recorded_model(resolve(config.model))
        merge_adapter(base_path, str(out / ADAPTER_DIR), str(out))
        trainer.processing_class.save_pretrained(str(out))
        sft = read_manifest(Path(config.adapter).parent) or {}
        write_manifest(
            str(out),
            {
                "format": "toolformer",
                "version": 1,
                "call_syntax": call_syntax(),
                "tools": sft.get("tools", []),
                **({"tool_calls": sft["tool_calls"]} if "tool_calls" in sft else {}),
                "base_model": recorded_model(config.model),
                "base_model_path": base_path,
                "lora": {**(sft.get("lora") or {}), "adapter_dir": ADAPTER_DIR, "merged": True},
                "preference": {
                    "method": "dpo",
                    "from_adapter": recorded_model(config.adapter),
                    "settings": asdict(config.settings),
                    "seed": config.seed,
                },
                "metrics": metrics,
                **config.manifest,
            },
        )
        shutil.rmtree(out / "checkpoints", ignore_errors=True)  # save_strategy "no": logs only
        del trainer, model
    return metrics
