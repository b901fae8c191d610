"""The on-disk index cache's small parts: cache keys, arrays written atomically, and reading a
cached file that may be damaged or planted (never unpickled; a file that does not fit is rebuilt).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Callable, Optional

from toolformer.atomic import atomic_write


def cache_key(*parts: Any) -> str:
    """12 hex digits of a hash of ``parts`` (JSON, keys sorted): part of a cache file's name."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def save_npy(path: Path, array: Any) -> None:
    """Write a numpy array to ``path`` atomically (``np.save``, no pickle)."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.save(fh, array, allow_pickle=False)

    atomic_write(path, write)


def load_cached(
    load: Callable[[Path], Any], path: Path, fits: Callable[[Any], bool]
) -> Optional[Any]:
    """``load(path)`` when that file exists, reads without pickle and ``fits(value)``; else None
    (the caller rebuilds it). ``np.load`` refuses pickled data (``allow_pickle=False``)."""
    if not path.exists():
        return None
    try:
        value = load(path)
    except Exception:  # noqa: BLE001 - whatever a damaged or planted file raises: rebuild it
        return None
    return value if fits(value) else None
