"""Fine-tune a causal LM on tool-augmented text (paper, Section 2: "Model Finetuning").

The objective is the plain language-modelling loss on the whole augmented text: the calls AND
their results are in the text, and nothing is masked. Texts are tokenized, joined with EOS and
cut into ``max_length`` blocks (packing), so no step is spent on padding. Training runs on
transformers' ``Trainer``: the same call works on one CPU, or under ``accelerate launch`` with
DDP, FSDP or DeepSpeed ZeRO-3 (configs in ``toolformer/configs/accelerate``). The checkpoint
with the lowest held-out perplexity is kept and saved with ``save_pretrained`` together with a
``toolformer.json`` manifest (call syntax, tools, base model, metrics).
"""

from __future__ import annotations

import json
import math
import os
import random
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

from toolformer.errors import EmptyInputError, UserError, ensure_dir
from toolformer.finetune_config import (  # noqa: F401 - the public names stay importable here
    PAPER_TRAINING_ARGS,
    FinetuneConfig,
    accumulation_steps,
    resolve_bf16,
    total_steps,
    training_arguments,
    world_size,
)
from toolformer.manifest import MANIFEST_FILE, write_manifest  # noqa: F401 - MANIFEST_FILE: public
from toolformer.models import (  # ADAPTER_DIR: public here too (where finetune saves the adapter)
    ADAPTER_DIR,
    check_exists,
    check_weight_files,
    load_pretrained,
    load_tokenizer,
    peft_from_pretrained,
    quiet_peft,
    resolve,
)
from toolformer.output_lock import check_not_input, hold_output
from toolformer.records import (
    SUFFIXES,
    RecordStats,
    is_saved_dataset,
    iter_records,
    load_saved_dataset,
    source_kind,
)
from toolformer.syntax import ARROW, CALL_END, CALL_START, RESULT_SEP, find_calls

CHECKPOINTS_DIR = "checkpoints"
# what finetune writes at the top of its output folder (an input there would be overwritten)
FINETUNE_WRITES = (
    CHECKPOINTS_DIR,
    ADAPTER_DIR,
    "*.json",
    "*.safetensors",
    "*.bin",
    "*.txt",
    "*.jinja",
    "*.model",
)
# a Trainer checkpoint is complete when it holds these (the Trainer writes trainer_state.json last)
_CKPT_WEIGHTS = (
    "model.safetensors",
    "adapter_model.safetensors",
    "pytorch_model.bin",
    "adapter_model.bin",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
)
_CKPT_OPTIMIZER = (("optimizer.pt", "optimizer.bin"), ("scheduler.pt",))
BASELINE_FILE = "baseline_eval.json"  # eval loss of the model before training (kept for resume)
BASE_RECORD = "base_model.json"  # fingerprint of the model the checkpoints were trained from


@dataclass
class FinetuneResult:
    """Where the model went, which checkpoint was best, and the run's metrics."""

    output_dir: str
    best_checkpoint: Optional[str]
    metrics: Dict[str, Any]


# --------------------------------------------------------------------------- data


def _rows_texts(
    rows: Iterable[Tuple[str, Any]], source: str, text_column: str, stats: RecordStats
) -> Tuple[List[str], Counter, bool]:
    """Texts and tool counts of reader records (JSON rows keep nested ``calls`` as they are)."""
    texts: List[str] = []
    tools: Counter = Counter()
    saw_calls = False
    first = True
    for _, row in rows:
        if not isinstance(row, Mapping):
            stats.skipped["not_a_record"] += 1
            continue
        if first and text_column not in row:
            raise UserError(
                f"{source}: a row has no {text_column!r} field "
                f"(fields: {', '.join(map(str, row))}); set "
                "FinetuneConfig.dataset_text_field or fix the file",
                field="FinetuneConfig.dataset_text_field",
            )
        first = False
        text = row.get(text_column)
        texts.append(text if isinstance(text, str) else "")
        calls = row.get("calls")
        if isinstance(calls, list):
            saw_calls = True
            tools.update(c["tool"] for c in calls if isinstance(c, dict) and c.get("tool"))
    return texts, tools, saw_calls


def _from_hf(ds: Any, source: str, text_column: str) -> Tuple[List[str], Counter, bool]:
    if text_column not in ds.column_names:
        raise UserError(
            f"{source} has no {text_column!r} column (columns: {', '.join(ds.column_names)}); "
            "set FinetuneConfig.dataset_text_field",
            field="FinetuneConfig.dataset_text_field",
        )
    texts = [t if isinstance(t, str) else "" for t in ds[text_column]]
    tools: Counter = Counter()
    saw_calls = "calls" in ds.column_names
    if saw_calls:
        for calls in ds["calls"]:
            tools.update(c["tool"] for c in (calls or []) if isinstance(c, dict) and c.get("tool"))
    return texts, tools, saw_calls


def read_texts(
    path: str, text_column: str = "text", stats: Optional[RecordStats] = None
) -> Tuple[List[str], Counter]:
    """The non-empty texts at ``path`` and how many calls of each tool they hold.

    ``path``: an annotation output folder (``dataset/`` or ``data.jsonl`` inside), a saved HF
    dataset (its ``train`` split), or a file the shared reader takes
    (:func:`toolformer.records.iter_records`: JSONL / JSON / CSV / TSV / parquet, or TXT with one
    text per blank-line-separated block). Bad lines are skipped and counted in ``stats``. Tool
    counts come from the ``calls`` column when there is one, else from parsing the calls in the
    text.
    """
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(
            f"data path {path!r} does not exist; pass the "
            "annotation output folder or a JSONL/parquet file"
        )
    stats = stats if stats is not None else RecordStats()
    if p.is_dir():
        if is_saved_dataset(p / "dataset"):
            p = p / "dataset"
        elif (p / "data.jsonl").exists():
            p = p / "data.jsonl"
        elif not is_saved_dataset(p):
            raise UserError(
                f"{path} is a folder without data.jsonl or a saved dataset; pass the annotation "
                "output folder, a dataset saved with save_to_disk, or a JSONL/parquet file"
            )
    if p.is_dir():
        texts, tools, saw_calls = _from_hf(load_saved_dataset(p, "train"), str(p), text_column)
    elif source_kind(p) is None:
        raise UserError(
            f"unsupported data file {p.name!r}; use one "
            f"of {', '.join(sorted(SUFFIXES))} or a folder"
        )
    else:
        column = "text" if source_kind(p) == "txt" else text_column
        texts, tools, saw_calls = _rows_texts(
            iter_records(str(p), stats=stats), str(p), column, stats
        )
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise EmptyInputError(
            f"{path} holds no non-empty {text_column!r} texts; nothing to train on"
        )
    stats.documents += len(texts)
    if not saw_calls:
        tools = Counter(m.call.tool for t in texts for m in find_calls(t))
    return texts, tools


def split_and_mix(
    texts: Sequence[str],
    plain: Sequence[str],
    eval_fraction: float,
    mix_ratio: float,
    max_eval_docs: int,
    seed: int,
) -> Tuple[List[str], List[str], int]:
    """Shuffle, hold out ``eval_fraction`` of the augmented documents, and mix plain documents
    into the training part so that they make up ``mix_ratio`` of it. Returns (train, eval,
    number of plain documents used)."""
    rng = random.Random(seed)
    docs = list(texts)
    rng.shuffle(docs)
    n_eval = 0
    if eval_fraction > 0:
        n_eval = min(max_eval_docs, max(1, round(len(docs) * eval_fraction)))
        if n_eval >= len(docs):
            raise UserError(
                f"only {len(docs)} document(s): too few to hold out {eval_fraction:.0%} for "
                "evaluation; add data or set FinetuneConfig.eval_fraction to 0",
                field="FinetuneConfig.eval_fraction",
            )
    eval_docs, train = docs[:n_eval], docs[n_eval:]
    n_plain = 0
    if mix_ratio > 0 and plain:
        want = round(len(train) * mix_ratio / (1 - mix_ratio))
        n_plain = min(want, len(plain))
        train = train + rng.sample(list(plain), n_plain)
        rng.shuffle(train)
    return train, eval_docs, n_plain


def tokenize_texts(texts: Sequence[str], tokenizer: Any, batch: int = 1000) -> List[List[int]]:
    """Token ids of each text with the tokenizer's usual special tokens, ending in EOS."""
    eos = tokenizer.eos_token_id
    if eos is None:
        raise UserError("the tokenizer has no EOS token; packing needs one to separate documents")
    out: List[List[int]] = []
    for i in range(0, len(texts), batch):
        for ids in tokenizer(list(texts[i : i + batch]))["input_ids"]:
            out.append(list(ids) if ids and ids[-1] == eos else list(ids) + [eos])
    return out


def pack_sequences(sequences: Iterable[Sequence[int]], block_size: int) -> List[List[int]]:
    """Concatenate the sequences (each already ending in EOS) and cut them into ``block_size``
    blocks; the remainder becomes a last, shorter block, so no token is lost."""
    blocks: List[List[int]] = []
    buf: List[int] = []
    for seq in sequences:
        buf.extend(seq)
        while len(buf) >= block_size:
            blocks.append(buf[:block_size])
            buf = buf[block_size:]
    if buf:
        blocks.append(buf)
    return blocks


def build_blocks(
    texts: Sequence[str], tokenizer: Any, max_length: int, packing: bool
) -> List[List[int]]:
    """Training rows: packed blocks, or (without packing) one truncated row per text."""
    seqs = tokenize_texts(texts, tokenizer)
    if packing:
        return pack_sequences(seqs, max_length)
    return [s[:max_length] for s in seqs]


class BlockDataset:
    """A list of token-id blocks as a map-style dataset of ``{"input_ids": [...]}`` rows."""

    def __init__(self, blocks: List[List[int]]):
        self.blocks = blocks

    def __len__(self) -> int:
        return len(self.blocks)

    def __getitem__(self, i: int) -> Dict[str, List[int]]:
        return {"input_ids": self.blocks[i]}


class CausalCollator:
    """Stack blocks; pad a short one (right) with ``pad_id``. Labels are the input ids, -100 on
    padding only: masking by the attention mask rather than by id keeps a real EOS trainable when
    the pad token is the EOS token."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: Sequence[Dict[str, List[int]]]) -> Dict[str, Any]:
        import torch

        width = max(len(r["input_ids"]) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.tensor(r["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        labels = ids.masked_fill(mask == 0, -100)
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}


# --------------------------------------------------------------------------- checkpoints


def accelerate_config(name: str) -> Path:
    """Path of a shipped ``accelerate`` config: cpu_2proc, ddp, fsdp or deepspeed_zero3."""
    folder = Path(__file__).resolve().parent / "configs" / "accelerate"
    path = folder / f"{name}.yaml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.yaml")))
        raise UserError(f"no accelerate config {name!r}; shipped ones: {known}")
    return path


def checkpoint_problem(path: Any) -> Optional[str]:
    """Why the Trainer checkpoint folder ``path`` cannot be resumed (a kill while it was being
    saved leaves it without its trainer_state.json, weights or optimizer files, or with a
    truncated file), or None when it is complete."""
    p = Path(path)
    try:
        state = json.loads((p / "trainer_state.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "no trainer_state.json"
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return "trainer_state.json is unreadable"
    if not isinstance(state, dict) or not isinstance(state.get("global_step"), int):
        return "trainer_state.json is unreadable"
    weights = [p / n for n in _CKPT_WEIGHTS if (p / n).is_file()]
    if not weights:
        return "no weights file"
    for w in weights:
        if w.stat().st_size == 0 or (w.suffix == ".safetensors" and not _safetensors_ok(w)):
            return f"{w.name} is unreadable"
    for names in _CKPT_OPTIMIZER:
        if not any((p / n).is_file() and (p / n).stat().st_size > 0 for n in names):
            return f"no {names[0]}"
    return None


def _safetensors_ok(path: Path) -> bool:
    """Whether a safetensors file's header parses and its data is all there (a truncated write
    fails this; the tensors themselves are not read)."""
    import struct

    try:
        with path.open("rb") as fh:
            n = struct.unpack("<Q", fh.read(8))[0]
            header = json.loads(fh.read(n))
        end = max(
            (v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0
        )
        return path.stat().st_size >= 8 + n + end
    except (OSError, ValueError, struct.error, KeyError, TypeError, IndexError):
        return False


def latest_checkpoint(output_dir: str, say: bool = True) -> Optional[str]:
    """The newest complete ``checkpoint-N`` folder of a run, or None.

    An incomplete one (:func:`checkpoint_problem`) is skipped with one line on stderr (when
    ``say``), so that the previous checkpoint is resumed, or training starts afresh."""
    import re

    folder = Path(output_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return None
    found = []
    for p in folder.iterdir():
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and p.is_dir():
            found.append((int(m.group(1)), p))
    for _, p in sorted(found, reverse=True):
        problem = checkpoint_problem(p)
        if problem is None:
            return str(p)
        if say:
            print(
                f"skipping the incomplete checkpoint {p} ({problem}; a run stopped while saving "
                "it)",
                file=sys.stderr,
                flush=True,
            )
    return None


def _resume_path(config: FinetuneConfig) -> Optional[str]:
    if not config.resume_from_checkpoint:
        return None
    if config.resume_from_checkpoint == "latest":
        found = latest_checkpoint(config.output_dir)
        if found is None:
            raise UserError(
                f"no checkpoint to resume in {Path(config.output_dir) / CHECKPOINTS_DIR}; "
                "leave FinetuneConfig.resume_from_checkpoint unset",
                field="FinetuneConfig.resume_from_checkpoint",
            )
        return found
    problem = checkpoint_problem(config.resume_from_checkpoint)
    if problem is not None:
        raise UserError(
            f"{config.resume_from_checkpoint!r} is not a Trainer checkpoint, or not a "
            f"complete one ({problem}); give another one or 'latest' as "
            "FinetuneConfig.resume_from_checkpoint, or leave it unset",
            field="FinetuneConfig.resume_from_checkpoint",
        )
    return config.resume_from_checkpoint


def _check_base_record(config: FinetuneConfig, resume: Optional[str]) -> None:
    """A checkpoint continues only on the base model whose files it was trained from (the
    record beside the checkpoints; :mod:`toolformer.fingerprint`), not on whatever the same
    name holds now; a fresh run records its base. Checkpoints recorded before are trusted.

    Raises :class:`~toolformer.errors.UserError` (one line) naming the changed files.
    """
    from toolformer.atomic import atomic_write_json
    from toolformer.data_aug.writer import read_json
    from toolformer.fingerprint import check_same_model, model_fingerprint

    current = {"model": model_fingerprint(config.model)}
    if resume is not None:
        check_same_model(
            read_json(Path(resume).parent / BASE_RECORD),
            current,
            config.model,
            resume,
            "leave FinetuneConfig.resume_from_checkpoint unset to train on it afresh",
        )
    record = Path(config.output_dir) / CHECKPOINTS_DIR / BASE_RECORD  # this run's checkpoints
    record.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(record, current)


# --------------------------------------------------------------------------- model


def _apply_lora(model: Any, config: FinetuneConfig) -> Any:
    from peft import LoraConfig, get_peft_model

    if config.init_adapter:
        if not (Path(config.init_adapter) / "adapter_config.json").is_file():
            raise UserError(
                f"init_adapter {config.init_adapter!r} is not a "
                "LoRA adapter folder (no adapter_config.json)"
            )
        return peft_from_pretrained(model, config.init_adapter, is_trainable=True)

    targets: Any = config.lora_target_modules
    if targets != "all-linear":
        targets = [t.strip() for t in targets.split(",") if t.strip()]
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=targets,
        task_type="CAUSAL_LM",
    )
    from transformers import set_seed

    # the LoRA matrices' random init is drawn here, before the Trainer seeds anything: seeded
    # with the run's seed, a resumed or repeated run builds the same adapter
    set_seed(config.seed)
    try:
        with quiet_peft():
            return get_peft_model(model, lora)
    except ValueError as exc:
        raise UserError(
            f"LoRA: {str(exc).splitlines()[0]} (check FinetuneConfig.lora_target_modules)",
            field="FinetuneConfig.lora_target_modules",
        ) from None


def recorded_model(name: str) -> str:
    """A model as a manifest records it: a local folder as its absolute path (a relative one
    would name another folder, or none, from another working directory); an alias or a Hugging
    Face id as it is."""
    path = os.path.expanduser(str(name))
    return os.path.abspath(path) if os.path.exists(path) else str(name)


def merge_adapter(base_path: str, adapter_dir: str, output_dir: str) -> None:
    """Load the base weights, merge the LoRA adapter into them and ``save_pretrained`` the
    result."""
    from transformers import AutoModelForCausalLM

    base = load_pretrained(AutoModelForCausalLM, base_path, base_path)
    merged = peft_from_pretrained(base, adapter_dir).merge_and_unload()
    merged.save_pretrained(output_dir)


# --------------------------------------------------------------------------- manifest


def call_syntax() -> Dict[str, str]:
    """The markers a generator needs to recognise calls in this model's output."""
    return {"start": CALL_START, "arrow": ARROW, "end": CALL_END, "result_sep": RESULT_SEP}


def _ppl(loss: Optional[float]) -> Optional[float]:
    if loss is None:
        return None
    return math.exp(loss) if loss < 50 else float("inf")


# --------------------------------------------------------------------------- training


@dataclass
class _Prepared:
    """The run's documents and token blocks."""

    train_texts: List[str]
    eval_texts: List[str]
    plain_used: int
    train_blocks: List[List[int]]
    eval_blocks: List[List[int]]
    tools: Counter
    skipped: Dict[str, int] = field(
        default_factory=dict
    )  # bad records of the training data, by reason


def _prepare(config: FinetuneConfig, tokenizer: Any) -> _Prepared:
    stats = RecordStats()
    field_ = config.dataset_text_field
    texts, tools = read_texts(config.data, field_, stats=stats)
    plain = read_texts(config.mix_plain, field_)[0] if config.mix_plain else []
    held_out = read_texts(config.eval_data, field_)[0] if config.eval_data else []
    train, held, n_plain = split_and_mix(
        texts,
        plain,
        0.0 if held_out else config.eval_fraction,
        config.mix_ratio,
        config.max_eval_docs,
        config.seed,
    )
    if held_out:
        held = held_out[: config.max_eval_docs]
    return _Prepared(
        train,
        held,
        n_plain,
        build_blocks(train, tokenizer, config.max_length, config.packing),
        build_blocks(held, tokenizer, config.max_length, config.packing) if held else [],
        tools,
        dict(stats.skipped),
    )


def _logging_callback(progress: bool) -> Any:
    """The Trainer's progress bars (when ``progress``) with its log lines as JSON on stderr, so
    that stdout stays free for a command's result."""
    from tqdm.auto import tqdm
    from transformers.trainer_callback import ProgressCallback

    class StderrLogs(ProgressCallback):
        def _bars(self, state: Any) -> bool:
            return progress and state.is_world_process_zero

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state):
                super().on_train_begin(args, state, control, **kwargs)

        def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state) and self.training_bar is not None:
                super().on_step_end(args, state, control, **kwargs)

        def on_prediction_step(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state):
                super().on_prediction_step(args, state, control, **kwargs)

        def on_evaluate(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state):
                super().on_evaluate(args, state, control, **kwargs)

        def on_predict(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state):
                super().on_predict(args, state, control, **kwargs)

        def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001
            if state.is_world_process_zero and logs:
                shown = {
                    k: (float(f"{v:.4g}") if isinstance(v, float) else v)
                    for k, v in logs.items()
                    if k != "total_flos"
                }
                tqdm.write(json.dumps({"step": state.global_step, **shown}), file=sys.stderr)

        def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001
            if self._bars(state) and self.training_bar is not None:
                super().on_train_end(args, state, control, **kwargs)

    return StderrLogs()


def _start_step_callback() -> Any:
    """A callback whose ``start`` is the step training (re)started from."""
    from transformers import TrainerCallback

    class StartStep(TrainerCallback):
        start = 0

        def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001
            self.start = state.global_step

    return StartStep()


def _baseline_eval_loss(trainer: Any, ckpt_dir: Path, resumed: bool) -> Optional[float]:
    """Held-out loss of the model before training; stored beside the checkpoints so that a
    resumed run still reports it."""
    path = ckpt_dir / BASELINE_FILE
    if resumed:
        return json.loads(path.read_text())["eval_loss"] if path.exists() else None
    loss = float(trainer.evaluate()["eval_loss"])
    if trainer.is_world_process_zero():
        ckpt_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"eval_loss": loss}) + "\n")
    return loss


def _save_outputs(
    trainer: Any,
    config: FinetuneConfig,
    base_path: str,
    tokenizer: Any,
    tools: Counter,
    metrics: Dict[str, Any],
    best: Optional[str],
) -> None:
    """save_pretrained of the final model (LoRA: merged, adapter kept) + tokenizer + manifest."""
    out = Path(config.output_dir)
    # save_model gathers sharded weights under FSDP / ZeRO-3; every process must call it
    trainer.save_model(str(out / ADAPTER_DIR) if config.lora else str(out))
    if trainer.is_world_process_zero():
        if config.lora:
            merge_adapter(base_path, str(out / ADAPTER_DIR), str(out))
        tokenizer.save_pretrained(str(out))
        write_manifest(
            str(out),
            {
                "format": "toolformer",
                "version": 1,
                "call_syntax": call_syntax(),
                "tools": sorted(tools),
                "tool_calls": dict(sorted(tools.items())),
                "base_model": recorded_model(config.model),
                "base_model_path": recorded_model(base_path),
                "lora": {
                    "r": config.lora_r,
                    "alpha": config.lora_alpha,
                    "dropout": config.lora_dropout,
                    "target_modules": config.lora_target_modules,
                    "adapter_dir": ADAPTER_DIR,
                    "merged": True,
                }
                if config.lora
                else None,
                "best_checkpoint": recorded_model(best) if best else None,
                "metrics": metrics,
                "config": config.to_dict(),
            },
        )
    trainer.accelerator.wait_for_everyone()


def finetune(config: FinetuneConfig, callbacks: Optional[Sequence[Any]] = None) -> FinetuneResult:
    """Fine-tune ``config.model`` on ``config.data``; see :class:`FinetuneConfig`.

    ``callbacks``: extra ``transformers.TrainerCallback`` objects (logging, timing, early stop).
    Raises :class:`UserError` (one line) when another run holds ``output_dir`` or when it would
    overwrite an input (``data``, ``mix_plain``, ``eval_data``, ``init_adapter``).
    """
    if not config.data:
        raise UserError("no training data: set FinetuneConfig.data", field="FinetuneConfig.data")
    check_not_input(
        config.output_dir,
        {
            "FinetuneConfig.data": config.data,
            "FinetuneConfig.mix_plain": config.mix_plain,
            "FinetuneConfig.eval_data": config.eval_data,
            "FinetuneConfig.init_adapter": config.init_adapter,
        },
        FINETUNE_WRITES,
        option="FinetuneConfig.output_dir",
    )
    ensure_dir(config.output_dir, "the output folder")  # before minutes of loading and tokenizing
    # one run per output folder: two would write each other's checkpoints and weights
    with hold_output(config.output_dir, option="FinetuneConfig.output_dir"):
        return _finetune(config, callbacks)


def _finetune(config: FinetuneConfig, callbacks: Optional[Sequence[Any]]) -> FinetuneResult:
    import torch
    from transformers import AutoModelForCausalLM, Trainer
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    resume = _resume_path(config)
    if resume is not None and config.arg("save_steps") == 0:
        raise UserError(
            "save_steps=0 writes no checkpoints, so there is nothing to resume; drop one of them"
        )
    base_path = resolve(config.model)
    check_exists(base_path, config.model)
    base_path = recorded_model(base_path)  # peft's adapter_config.json records it as loaded
    check_weight_files(base_path, config.model)  # untrusted pickle weights: refused before any work
    _check_base_record(config, resume)
    tokenizer = load_tokenizer(base_path)
    data = _prepare(config, tokenizer)
    processes = world_size()
    accum = accumulation_steps(config, processes)
    steps = total_steps(config, len(data.train_blocks), processes, accum)
    do_eval = bool(data.eval_blocks)
    bf16 = resolve_bf16(config.arg("bf16"))

    # TrainingArguments first: under DeepSpeed ZeRO-3 it must exist before the model is loaded
    args = training_arguments(config, steps, accum, do_eval, bf16, CHECKPOINTS_DIR)
    model = load_pretrained(AutoModelForCausalLM, base_path, config.model, dtype=torch.float32)
    for cfg in (model.config, model.generation_config):  # align with the tokenizer once, quietly
        if getattr(cfg, "pad_token_id", None) is None:
            cfg.pad_token_id = tokenizer.pad_token_id
    if config.lora:
        model = _apply_lora(model, config)

    start = _start_step_callback()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=BlockDataset(data.train_blocks),
        eval_dataset=BlockDataset(data.eval_blocks) if do_eval else None,
        data_collator=CausalCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
        callbacks=[start, *(callbacks or [])],
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    trainer.add_callback(_logging_callback(config.progress))

    ckpt_dir = Path(config.output_dir) / CHECKPOINTS_DIR
    eval_before = _baseline_eval_loss(trainer, ckpt_dir, resume is not None) if do_eval else None
    train_out = trainer.train(resume_from_checkpoint=resume)

    state = trainer.state
    train_losses = [h["loss"] for h in state.log_history if "loss" in h]
    eval_history = [(h["step"], h["eval_loss"]) for h in state.log_history if "eval_loss" in h]
    if do_eval and args.load_best_model_at_end:
        eval_after = state.best_metric
    elif do_eval:  # no checkpoints: the final model is the last one, scored by the final eval
        eval_after = eval_history[-1][1] if eval_history else float(trainer.evaluate()["eval_loss"])
    else:
        eval_after = None
    metrics: Dict[str, Any] = {
        "train_loss": train_out.metrics.get("train_loss"),
        "train_loss_last": train_losses[-1] if train_losses else None,
        "eval_loss_before": eval_before,
        "eval_perplexity_before": _ppl(eval_before),
        "eval_loss_after": eval_after,
        "eval_perplexity_after": _ppl(eval_after),
        "eval_history": eval_history,
        "global_step": state.global_step,
        "start_step": start.start,
        "train_runtime_s": train_out.metrics.get("train_runtime"),
        "tokens_trained": state.num_input_tokens_seen,
        "train_documents": len(data.train_texts),
        "skipped_records": data.skipped,
        "plain_documents": data.plain_used,
        "eval_documents": len(data.eval_texts),
        "train_blocks": len(data.train_blocks),
        "eval_blocks": len(data.eval_blocks),
        "gradient_accumulation_steps": accum,
        "processes": trainer.accelerator.num_processes,
        "distributed_type": str(trainer.accelerator.distributed_type).split(".")[-1],
        "backend": trainer.accelerator.state.backend,
        "bf16": bf16,
    }
    best = state.best_model_checkpoint if args.load_best_model_at_end else None
    _save_outputs(trainer, config, base_path, tokenizer, data.tools, metrics, best)
    return FinetuneResult(output_dir=str(config.output_dir), best_checkpoint=best, metrics=metrics)
