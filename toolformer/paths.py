"""The ground floor: where caches live and the dtype names every loader accepts.

Imports nothing of the project but :mod:`toolformer.errors`, so models, tools and retrieval
all stand on it without reaching sideways into each other.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional

from toolformer.errors import UserError

DTYPES = {
    "fp32": "float32",
    "float32": "float32",
    "bf16": "bfloat16",
    "bfloat16": "bfloat16",
    "fp16": "float16",
    "float16": "float16",
}


def cache_dir() -> Path:
    """Where converted models and indexes live (``$TOOLFORMER_CACHE`` or ~/.cache/toolformer).

    The folder is created if missing."""
    root = os.environ.get("TOOLFORMER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "toolformer"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def check_dtype(dtype: Any) -> None:
    """Raise :class:`UserError` for a dtype name we do not know (before any loading starts)."""
    if dtype is None or not isinstance(dtype, str):
        return
    if dtype.lower() not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; use one of fp32, bf16, fp16")


def torch_dtype(dtype: Optional[str]):
    """The ``torch.dtype`` for a name in :data:`DTYPES` (None: float32; a torch dtype passes)."""
    import torch

    if dtype is None:
        return torch.float32
    if not isinstance(dtype, str):
        return dtype
    check_dtype(dtype)
    return getattr(torch, DTYPES[dtype.lower()])
