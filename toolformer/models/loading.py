"""Load a causal LM and its tokenizer: an offline alias (:mod:`toolformer.models.aliases`), a
shipped or local LoRA adapter merged into its base, a local folder, or any Hugging Face id.

Every ``from_pretrained`` of the project goes through :func:`load_pretrained`: local files
first, safetensors only unless pickle weights are trusted, one-line errors.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple

from toolformer.errors import ModelLoadError, UserError
from toolformer.models.adapters import peft_from_pretrained
from toolformer.models.aliases import ALIASES, DEFAULT_MODEL
from toolformer.models.checkpoint import adapter_base, adapter_dir, weight_files
from toolformer.models.resolution import prepare
from toolformer.models.trust import check_weight_files, trust_pickle_weights
from toolformer.paths import check_dtype, torch_dtype


def load_pretrained(
    loader: Any, target: str, original: str, *, weights: bool = True, **kwargs: Any
) -> Any:
    """``loader.from_pretrained(target)`` the one safe way: local files first (no network for
    anything cached), then the hub; safetensors only unless pickle weights are trusted; any
    failure (missing files, a truncated safetensors file, a bad config) is one
    :class:`~toolformer.errors.ModelLoadError` line: ``could not load model DIR: ...``.

    ``weights``: False for tokenizers and configs (no weight files involved).
    """
    if weights:
        check_weight_files(target, original)
        folder = Path(os.path.expanduser(target))
        if folder.is_dir() and (folder / "config.json").is_file() and not weight_files(folder):
            raise ModelLoadError(
                f"model folder {original} lacks its weights (model.safetensors, or its shards "
                "and index); copy them into it, or pass the folder that holds them"
            )
        if not trust_pickle_weights():
            kwargs.setdefault("use_safetensors", True)
    try:
        return loader.from_pretrained(target, local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SafetensorError, UnpicklingError, OSError...: one line
        local_error = exc
    if os.path.isdir(os.path.expanduser(target)) or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise _load_error(original, local_error, local=os.path.isdir(os.path.expanduser(target)))
    try:
        return loader.from_pretrained(target, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _load_error(original, exc)


def _load_error(original: str, exc: Exception, local: bool = False) -> ModelLoadError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if local:
        return ModelLoadError(f"could not load model {original}: {type(exc).__name__}: {first}")
    return ModelLoadError(
        f"could not load model {original!r}: {first} "
        f"(offline? use an alias: {', '.join(ALIASES)}, or a local folder)"
    )


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    """The tokenizer of an alias, folder or HF id (an adapter: its base's), with a pad token set."""
    adapter = adapter_dir(name_or_path)
    if adapter is not None:
        return load_tokenizer(adapter_base(adapter))
    target = prepare(name_or_path)
    from transformers import AutoTokenizer

    tok = load_pretrained(AutoTokenizer, target, name_or_path, weights=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    dtype: Optional[str] = "fp32",
    device: Optional[str] = None,
) -> Tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode. ``dtype``: fp32, bf16 or fp16.

    ``name_or_path``: an alias (converted from its package's GGUF on first use), a local model
    folder, or a Hugging Face id (from the local cache; the hub only when online). Mistakes
    raise :class:`UserError` with one line; a missing alias package raises
    :class:`MissingModelPackageError` (a UserError) naming the install command.

    A LoRA adapter (a folder with adapter_config.json, or a short name from
    :func:`list_adapters`) is loaded on top of the base model its toolformer.json names (see
    :func:`adapter_base`) and merged into it, so generation runs at the base model's speed.
    """
    check_dtype(dtype)
    adapter = adapter_dir(name_or_path)
    if adapter is not None:
        return _load_adapter(adapter, dtype, device)
    target = prepare(name_or_path)  # user mistakes fail before transformers is imported
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(target)
    model = load_pretrained(AutoModelForCausalLM, target, name_or_path, dtype=torch_dtype(dtype))
    if device:
        model.to(device)
    model.eval()
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _load_adapter(folder: Path, dtype: Optional[str], device: Optional[str]) -> Tuple[Any, Any]:
    base = adapter_base(folder)
    if adapter_dir(base) is not None:
        raise UserError(
            f"adapter {folder} names another adapter ({base}) as its base; name a model"
        )
    # adapter_model.bin is a pickle: refused unless trusted
    check_weight_files(str(folder), str(folder))
    model, tok = load_model(base, dtype=dtype, device=device)
    try:
        model = peft_from_pretrained(model, str(folder)).merge_and_unload()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError of a truncated adapter too: one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"could not load adapter {folder} on {base!r}: {first}") from None
    model.eval()
    return model, tok


def count_parameters(model: Any) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())
