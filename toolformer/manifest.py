"""The checkpoint manifest ``toolformer.json``: what a fine-tuned model (or LoRA adapter) folder
says about itself: the base model, the tools it was trained to call, the call syntax, metrics.

Written by ``finetune`` and ``selftrain``; read by ``generate``/``chat`` and ``eval`` (the tools to
offer) and by the model loader (an adapter's base model). This module is the only one that
opens the file; it knows folders, not model names: which folder describes a model (an
adapter's short name, say) and the checked fields it declares are
:mod:`toolformer.models.checkpoint`'s.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

from toolformer.atomic import atomic_write_json
from toolformer.errors import UserError

MANIFEST_FILE = "toolformer.json"
PathLike = Union[str, "os.PathLike[str]"]


def manifest_path(folder: PathLike) -> Path:
    """``folder/toolformer.json``."""
    return Path(os.path.expanduser(str(folder))) / MANIFEST_FILE


def write_manifest(folder: PathLike, payload: Dict[str, Any]) -> Path:
    """Write ``toolformer.json`` into ``folder`` atomically (readers see the old or the new
    file)."""
    path = manifest_path(folder)
    atomic_write_json(path, payload)
    return path


def read_manifest(folder: PathLike) -> Optional[Dict[str, Any]]:
    """The manifest of a model folder, or None when it has none (or ``folder`` is not a folder).

    Raises :class:`~toolformer.errors.UserError` (one line) when the file is unreadable or not
    a JSON object.
    """
    path = manifest_path(folder)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"could not read {path}: {first}; fix or delete it") from None
    if not isinstance(data, dict):
        raise UserError(
            f'{path} is not a JSON object; expected {{"tools": [...], "base_model": ...}}'
        )
    return data


def manifest_base_model(folder: PathLike) -> Optional[str]:
    """The ``base_model`` a manifest names (an adapter's base), or None."""
    meta = read_manifest(folder)
    base = None if meta is None else meta.get("base_model")
    return str(base) if base else None


def chat_roles_of_template(prompt_template: str) -> Optional[Dict[str, str]]:
    """``{"user": "Q", "assistant": "A"}`` for a prompt template ``"Q: {question}\nA:"`` (a label,
    the question, a line break, a label), else None."""
    import re

    m = re.fullmatch(r"([^\s:{}]+): \{question\}\n([^\s:{}]+):", prompt_template)
    return {"user": m.group(1), "assistant": m.group(2)} if m else None


def write_call_trigger(folder: PathLike, trigger: Dict[str, Any]) -> Path:
    """Store a calibrated trigger (``TriggerCalibration.to_dict()``) in ``folder``'s manifest,
    keeping its other fields."""
    meta = read_manifest(folder) or {}
    meta["call_trigger"] = dict(trigger)
    return write_manifest(folder, meta)


def check_trigger(call_top_k: Any, call_threshold: Any, where: str) -> Tuple[int, float]:
    """``(call_top_k, call_threshold)`` checked: an int >= 0 and a number in [0, 1).

    Raises :class:`UserError` naming ``where`` otherwise.
    """
    ok_k = isinstance(call_top_k, int) and not isinstance(call_top_k, bool) and call_top_k >= 0
    ok_t = (
        isinstance(call_threshold, (int, float))
        and not isinstance(call_threshold, bool)
        and 0 <= call_threshold < 1
    )
    if not (ok_k and ok_t):
        raise UserError(
            f"{where}: a call trigger needs call_top_k >= 0 (an integer) and "
            f"call_threshold in [0, 1); got {call_top_k!r}, {call_threshold!r}"
        )
    return call_top_k, float(call_threshold)
