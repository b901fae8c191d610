"""Loading a LoRA adapter with peft, checked: a folder without weights, or weights that do not
fill the model's LoRA layers, is refused with one line instead of running as the bare base
model. Which folder is an adapter, and its base model, is :mod:`toolformer.models.checkpoint`'s
business."""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, List

from toolformer.errors import ModelLoadError

ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning that every ``peft.PeftModel`` construction triggers (its
    ``__init__`` reads transformers' deprecated ``is_gradient_checkpointing``: peft's business,
    not the user's), for a fresh LoRA model and a loaded adapter alike."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning
        )
        yield


def peft_from_pretrained(model: Any, folder: str, **kwargs: Any) -> Any:
    """``peft.PeftModel.from_pretrained(model, folder, **kwargs)`` under :func:`quiet_peft`,
    checked: the one way every adapter is loaded (``load_model``, ``finetune``'s init_adapter
    and merge).

    Raises :class:`~toolformer.errors.ModelLoadError` (one line) when a local ``folder`` holds
    no weights file (peft would look it up on the Hub and report the offline message), and when
    its weights do not fill every LoRA weight of the model (no tensors, renamed keys, half of
    them): peft only warns, and the missing weights keep their initial values, so the model
    would run as the bare base model.
    """
    from peft import PeftModel

    local = Path(os.path.expanduser(str(folder)))
    if local.is_dir() and not any((local / name).is_file() for name in ADAPTER_WEIGHTS):
        raise ModelLoadError(
            f"adapter folder {folder} lacks its weights ({ADAPTER_WEIGHTS[0]}); copy that file "
            "into it, or save the adapter again (save_pretrained)"
        )
    with quiet_peft(), warnings.catch_warnings():
        # the mismatch peft warns about is checked below and refused with one line
        warnings.filterwarnings("ignore", message=".*(missing|unexpected) adapter keys.*")
        peft_model = PeftModel.from_pretrained(model, folder, **kwargs)
    if local.is_dir():
        check_adapter_keys(peft_model, local)
    return peft_model


def _saved_adapter_keys(folder: Path) -> List[str]:
    """The tensor names an adapter folder holds (safetensors: read from the header only)."""
    path = folder / ADAPTER_WEIGHTS[0]
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    from peft.utils import load_peft_weights

    return list(load_peft_weights(str(folder), device="cpu"))


def check_adapter_keys(peft_model: Any, folder: Path) -> None:
    """Refuse an adapter whose saved tensors do not match the LoRA weights of ``peft_model``
    one for one (compared by name, as ``save_pretrained`` writes them).

    Raises :class:`~toolformer.errors.ModelLoadError` naming the folder and how many matched.
    """
    from peft import get_peft_model_state_dict

    expected = set(get_peft_model_state_dict(peft_model))
    try:
        saved = set(_saved_adapter_keys(folder))
    except Exception as exc:  # noqa: BLE001 - a corrupt header: one line like any load failure
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"could not read the weights of adapter {folder}: {first}") from None
    matched = expected & saved
    unexpected = sorted(k for k in saved - expected if "lora_" in k)
    if expected and len(matched) == len(expected) and not unexpected:
        return
    example = sorted(expected - saved)[:1] or unexpected[:1]
    raise ModelLoadError(
        f"adapter {folder} does not fit its base model: {len(matched)} of the model's "
        f"{len(expected)} LoRA weights are in its file ({len(saved)} tensors"
        f"{f'; e.g. {example[0]} does not match' if example else ''}); it would load as the "
        "bare base model: check its base_model, or save the adapter again"
    )
