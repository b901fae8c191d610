"""Whether pickle weight files may be loaded.

Weights in pickle files (pytorch_model.bin, *.pt) can run code when loaded: only safetensors
are read unless the user says they trust the files (``toolformer --trust-pickle-weights``, which
sets ``$TOOLFORMER_TRUST_PICKLE_WEIGHTS`` for this process and its workers).
"""

from __future__ import annotations

import os
from pathlib import Path

from toolformer.errors import ModelLoadError

TRUST_PICKLE_ENV = "TOOLFORMER_TRUST_PICKLE_WEIGHTS"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def trust_pickle_weights() -> bool:
    """Whether the user allowed pickle weight files (``--trust-pickle-weights`` or
    ``$TOOLFORMER_TRUST_PICKLE_WEIGHTS=1``)."""
    return os.environ.get(TRUST_PICKLE_ENV, "").strip().lower() in ("1", "true", "yes")


def check_weight_files(target: str, original: str) -> None:
    """Refuse a local model folder whose weights are only pickle files, unless trusted.

    Raises :class:`~toolformer.errors.ModelLoadError` naming the file and the way out.
    """
    folder = Path(os.path.expanduser(target))
    if trust_pickle_weights() or not folder.is_dir() or any(folder.glob("*.safetensors")):
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickles:
        raise ModelLoadError(
            f"could not load model {original}: its weights ({pickles[0]}) are a pickle file, "
            "which can run code when loaded; convert them to safetensors, or set "
            f"${TRUST_PICKLE_ENV}=1 if you trust where they came from",
            field=f"${TRUST_PICKLE_ENV}=1",
        )
