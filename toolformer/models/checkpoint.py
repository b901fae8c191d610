"""What a checkpoint name means: the folder it names (a model folder, a LoRA adapter folder, a
shipped adapter's short name, a fine-tuning output whose merged weights were removed), the base
model an adapter goes on, and what its ``toolformer.json`` declares (tools, tool options, chat
turns, call trigger).

The file itself is read and written by :mod:`toolformer.manifest`; this module decides which
folder's file describes a model, so that ``generate``, ``eval``, ``chat`` and the loader agree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple, Union

from toolformer.errors import UserError
from toolformer.manifest import check_trigger, manifest_base_model, manifest_path, read_manifest
from toolformer.models.aliases import ALIASES

ADAPTER_CONFIG = "adapter_config.json"
ADAPTERS_ENV = "TOOLFORMER_ADAPTERS"
# where ``toolformer finetune`` saves the LoRA adapter, beside the merged weights
ADAPTER_DIR = "adapter"
# the files that hold a saved model's weights (single file, shards, their index)
WEIGHT_FILES = (
    "*.safetensors",
    "*.safetensors.index.json",
    "pytorch_model*.bin",
    "pytorch_model*.bin.index.json",
)


SHIPPED_ADAPTERS_DIR = Path(__file__).resolve().parents[1] / "adapters"  # in the wheel


def adapter_search_dirs() -> List[Path]:
    """Folders whose subfolders are named adapters: ``$TOOLFORMER_ADAPTERS`` (os.pathsep-separated)
    first, then ``toolformer/adapters/`` inside the package (shipped in the wheel)."""
    dirs = [
        Path(os.path.expanduser(d)) for d in os.environ.get(ADAPTERS_ENV, "").split(os.pathsep) if d
    ]
    return dirs + [SHIPPED_ADAPTERS_DIR]


def list_adapters() -> Dict[str, Path]:
    """Short name -> folder of every named adapter (a subfolder holding adapter_config.json)."""
    out: Dict[str, Path] = {}
    for root in adapter_search_dirs():
        if root.is_dir():
            for sub in sorted(root.iterdir()):
                if (sub / ADAPTER_CONFIG).is_file():
                    out.setdefault(sub.name, sub)
    return out


def weight_files(folder: Path) -> List[Path]:
    """The weight files at the top of a saved model folder (not those of its ``adapter/``)."""
    return sorted(
        {f for pattern in WEIGHT_FILES for f in Path(folder).glob(pattern) if f.is_file()}
    )


def pruned_adapter(folder: Union[str, Path]) -> Optional[Path]:
    """The ``adapter/`` of a fine-tuning output whose merged weights were removed
    (``selftrain --keep-models best``), else None."""
    folder = Path(os.path.expanduser(str(folder)))
    adapter = folder / ADAPTER_DIR
    return adapter if (adapter / ADAPTER_CONFIG).is_file() and not weight_files(folder) else None


def adapter_dir(name_or_path: str) -> Optional[Path]:
    """The LoRA adapter folder that ``name_or_path`` names (a folder with adapter_config.json,
    a fine-tuning output whose merged weights were removed (``selftrain --keep-models best``):
    its ``adapter/``, or a short name from :func:`list_adapters`), else None."""
    name = str(name_or_path)
    path = Path(os.path.expanduser(name))
    if (path / ADAPTER_CONFIG).is_file():
        return path
    pruned = pruned_adapter(path)
    if pruned is not None:
        return pruned
    if name in ALIASES or name.lower() in ALIASES or "/" in name or os.sep in name:
        return None
    named = list_adapters()
    found = named.get(name) or {k.lower(): v for k, v in named.items()}.get(name.lower())
    return found


def manifest_dir(name_or_path: str) -> str:
    """The folder whose ``toolformer.json`` describes the model (an adapter's folder for a short
    adapter name; the argument itself otherwise)."""
    found = adapter_dir(name_or_path)
    return str(found) if found is not None else os.path.expanduser(str(name_or_path))


def adapter_base(folder: Path) -> str:
    """The base model an adapter goes on: ``base_model`` of its toolformer.json (an alias keeps
    it portable), else of the toolformer.json of the fine-tuning run it sits in, else
    adapter_config.json's ``base_model_name_or_path``.

    Raises :class:`~toolformer.errors.UserError` when none of them names one."""
    for where in (folder, folder.parent):
        base = manifest_base_model(where)
        if base:
            return base
    try:
        config = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8"))
        base = config.get("base_model_name_or_path")
    except (ValueError, AttributeError):
        base = None
    if not base:
        raise UserError(
            f"adapter {folder} names no base model; add toolformer.json with "
            '{"base_model": "smollm2-135m"}'
        )
    return str(base)


# --------------------------------------------------------------------------- what it declares


def _field(model: str, key: str) -> Tuple[str, Any]:
    """``(folder, value)``: the manifest folder of ``model`` (a folder, or an adapter's short
    name) and its manifest's ``key``, None when there is no manifest or no such key."""
    folder = manifest_dir(model)
    meta = read_manifest(folder)
    return folder, (None if meta is None else meta.get(key))


def manifest_tools(model: str) -> Optional[List[str]]:
    """The tools a fine-tuned checkpoint (a folder, or an adapter's short name) was trained with:
    the manifest's ``"tools"``, or None when there is no manifest or it names none.

    Raises :class:`~toolformer.errors.UserError` when ``"tools"`` is not a list of names.
    """
    folder, tools = _field(model, "tools")
    if tools is None:
        return None
    if not (isinstance(tools, list) and all(isinstance(t, str) for t in tools)):
        raise UserError(
            f"{manifest_path(folder)}: 'tools' must be a list of tool names, "
            f'e.g. ["Calculator"]; fix it or name the tools to use yourself'
        )
    return list(tools) or None


def manifest_tool_options(model: str) -> Dict[str, Dict[str, Any]]:
    """The tool constructor options a checkpoint (a folder, or an adapter's short name) was
    trained with (``"tool_options"``, e.g. ``{"Calculator": {"numbers_from_text": true}}`` from
    ``selftrain``), or ``{}``. ``generate``, ``chat`` and ``eval`` use them unless the user
    gives the same option (:func:`toolformer.tools.assembly.run_tool_options`).

    Raises :class:`~toolformer.errors.UserError` when ``"tool_options"`` is not an object of
    objects.
    """
    folder, opts = _field(model, "tool_options")
    if opts is None:
        return {}
    if not (isinstance(opts, dict) and all(isinstance(v, dict) for v in opts.values())):
        raise UserError(
            f"{manifest_path(folder)}: 'tool_options' must map tool names to objects, "
            'e.g. {"Calculator": {"numbers_from_text": true}}'
        )
    return {str(k): dict(v) for k, v in opts.items()}


def manifest_chat_roles(model: str) -> Optional[Tuple[str, str]]:
    """``(user, assistant)``: the plain-text turn labels a checkpoint was trained on (the
    manifest's ``"chat_roles"``, e.g. ``{"user": "Q", "assistant": "A"}`` written by ``selftrain``
    for its ``Q: ...\nA:`` texts), or None. ``chat`` then talks in those turns instead of the
    chat template, which the model never saw during fine-tuning.

    Raises :class:`~toolformer.errors.UserError` when ``"chat_roles"`` is not two one-line labels.
    """
    folder, roles = _field(model, "chat_roles")
    if roles is None:
        return None
    ok = isinstance(roles, dict) and all(
        isinstance(roles.get(k), str) and roles[k].strip() and "\n" not in roles[k]
        for k in ("user", "assistant")
    )
    if not ok:
        raise UserError(
            f"{manifest_path(folder)}: 'chat_roles' must be "
            '{"user": "Q", "assistant": "A"} (one-line labels); '
            "fix or delete it"
        )
    return roles["user"].strip(), roles["assistant"].strip()


def manifest_call_trigger(model: str) -> Optional[Dict[str, Any]]:
    """The call trigger a checkpoint was calibrated with (the manifest's ``"call_trigger"``:
    ``{"call_top_k": 10, "call_threshold": 0.31, "f1": ..., "n": ...}``, written by
    :func:`toolformer.manifest.write_call_trigger`), or None. ``generate``, ``chat`` and
    ``eval`` decode with it unless the user sets ``call_top_k`` or ``call_threshold``.

    Raises :class:`~toolformer.errors.UserError` when the trigger is out of range.
    """
    folder, trigger = _field(model, "call_trigger")
    if trigger is None:
        return None
    if not isinstance(trigger, dict):
        raise UserError(
            f"{manifest_path(folder)}: 'call_trigger' must be an object like "
            '{"call_top_k": 10, "call_threshold": 0.3}; fix or delete it'
        )
    k, t = check_trigger(
        trigger.get("call_top_k"), trigger.get("call_threshold"), str(manifest_path(folder))
    )
    return {**trigger, "call_top_k": k, "call_threshold": t}
