"""What a model name stands for now: a fingerprint of the files ``load_model`` would read.

A resumed run (``eval``, ``augment``, ``selftrain``, ``finetune --resume``) keeps outputs made
earlier; a name or a path says nothing about whether the model behind it is still the same (an
adapter retrained into the same folder). The run records :func:`model_fingerprint` and refuses to
resume when it changed (:func:`check_same_model`).

The fingerprint is of the contents, not of modification times, so that a copied or moved folder
still resumes. Files up to :data:`FULL_HASH_BYTES` (adapters, configs, tokenizers) are hashed
whole; a larger weights file is hashed by its size, its first and last MiB and
:data:`SAMPLED_BLOCKS` blocks spread over it (a second for a 7B model instead of a minute): a
fine-tuning run changes every weight matrix of a layer it trains, so a retrained model changes
the sampled blocks; an edit that keeps the size and misses every block would go unnoticed.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

from toolformer.errors import UserError, fields_in

FULL_HASH_BYTES = 64 * 2**20
EDGE_BYTES = 2**20
SAMPLED_BLOCKS = 64
BLOCK_BYTES = 64 * 2**10

# the files of a model or adapter folder that decide its outputs (not logs or training args)
_EXACT = {
    "config.json",
    "generation_config.json",
    "adapter_config.json",
    "toolformer.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "adapter_model.bin",
}
_SUFFIXES = (".safetensors", ".safetensors.index.json", ".gguf")


def _model_file(name: str) -> bool:
    if name.startswith("."):  # temporary files of an atomic write
        return False
    return (
        name in _EXACT
        or name.endswith(_SUFFIXES)
        or (name.startswith("pytorch_model") and name.endswith((".bin", ".bin.index.json")))
    )


def file_digest(path: Path) -> str:
    """``"<size>:<sha256 prefix>"`` of a file: hashed whole up to :data:`FULL_HASH_BYTES`,
    else its size, first and last MiB and :data:`SAMPLED_BLOCKS` evenly spread blocks."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as fh:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: fh.read(2**20), b""):
                h.update(block)
        else:
            h.update(b"sampled")
            offsets = [0, size - EDGE_BYTES] + [
                EDGE_BYTES + i * (size - 2 * EDGE_BYTES - BLOCK_BYTES) // (SAMPLED_BLOCKS - 1)
                for i in range(SAMPLED_BLOCKS)
            ]
            for offset in offsets:
                fh.seek(offset)
                h.update(fh.read(EDGE_BYTES if offset in (0, size - EDGE_BYTES) else BLOCK_BYTES))
    return f"{size}:{h.hexdigest()[:32]}"


def folder_fingerprint(folder: Path) -> Dict[str, str]:
    """File name -> :func:`file_digest` of the files at the top of ``folder`` that decide a
    model's outputs (weights, configs, tokenizer, toolformer.json)."""
    return {
        p.name: file_digest(p)
        for p in sorted(Path(folder).iterdir())
        if p.is_file() and _model_file(p.name)
    }


def _alias_version(alias: Any) -> Optional[str]:
    import importlib.metadata as md

    try:  # the package the install command names; else a (slower) scan of every distribution
        return md.version(alias.install.split()[-1])
    except md.PackageNotFoundError:
        pass
    for name in md.packages_distributions().get(alias.package) or []:
        try:
            return md.version(name)
        except md.PackageNotFoundError:
            continue
    return None


def _hub_revision(repo_id: str) -> Optional[str]:
    """The commit of the cached snapshot of a Hub model, or None when it is not cached."""
    try:
        from huggingface_hub import try_to_load_from_cache

        found = try_to_load_from_cache(repo_id, "config.json")
    except Exception:  # noqa: BLE001 - not a valid repo id, no hub library: nothing to record
        return None
    return Path(found).parent.name if isinstance(found, str) else None


def model_fingerprint(name_or_path: Optional[str]) -> Dict[str, Any]:
    """What ``load_model(name_or_path)`` would load, as a JSON-ready dict: an adapter's files and
    its base model's fingerprint; a folder's files; an alias's package version; a Hub id's cached
    revision; else only the name (a path that does not exist yet). Never raises for a name it
    cannot resolve: loading reports that."""
    from toolformer.models import ALIASES, adapter_base, adapter_dir

    if not name_or_path:
        return {}
    name = str(name_or_path)
    adapter = adapter_dir(name)
    if adapter is not None:
        try:
            base: Dict[str, Any] = model_fingerprint(adapter_base(adapter))
        except UserError:
            base = {}
        return {"adapter": folder_fingerprint(adapter), "base": base}
    alias = ALIASES.get(name) or ALIASES.get(name.lower())
    if alias is not None:
        return {"alias": alias.name, "version": _alias_version(alias)}
    path = Path(os.path.expanduser(name))
    if path.is_dir():
        return {"files": folder_fingerprint(path)}
    if path.is_file():
        return {"files": {path.name: file_digest(path)}}
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return {"hub": name, "revision": _hub_revision(name)}
    return {"name": name}


def options_fingerprint(options: Optional[Dict[str, Dict[str, Any]]]) -> Dict[str, Any]:
    """``"Tool.option"`` -> fingerprint, for each tool option naming an existing file (a search
    corpus) or model folder (a reader model): what else a resumed run's outputs depend on.
    Other folders (an index cache, which changes as it fills) are left out."""
    out: Dict[str, Any] = {}
    for tool, opts in sorted((options or {}).items()):
        for key, value in sorted((opts or {}).items()):
            if not isinstance(value, str) or not value:
                continue
            path = Path(os.path.expanduser(value))
            if path.is_file():
                out[f"{tool}.{key}"] = file_digest(path)
            elif path.is_dir() and any(
                (path / f).is_file() for f in ("config.json", "adapter_config.json")
            ):
                out[f"{tool}.{key}"] = model_fingerprint(value)
    return out


def changed_parts(old: Any, new: Any, prefix: str = "") -> List[str]:
    """The keys (``base/files/model.safetensors``) where two fingerprints differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out: List[str] = []
        for key in sorted(set(old) | set(new)):
            out += changed_parts(old.get(key), new.get(key), f"{prefix}{key}/")
        return out
    return [] if old == new else [prefix.rstrip("/") or "model"]


def check_same_model(
    recorded: Optional[Dict[str, Any]], current: Dict[str, Any], model: str, where: Any, remedy: str
) -> None:
    """Refuse to resume ``where`` when the model it was made with changed since.

    ``recorded``: the fingerprint the run recorded (None: a run recorded before fingerprints
    were; nothing to compare). Raises :class:`~toolformer.errors.UserError` with one line:
    which files changed and ``remedy`` (what to do instead).
    """
    if recorded is None or recorded == current:
        return
    parts = changed_parts(recorded, current)
    shown = ", ".join(parts[:3]) + (f" and {len(parts) - 3} more" if len(parts) > 3 else "")
    raise UserError(
        f"{where} holds outputs made with {model} as its files were then, and they "
        f"changed since ({shown}); {remedy}",
        field=fields_in(remedy),
    )
