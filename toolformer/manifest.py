"""The checkpoint manifest ``toolformer.json``: what a fine-tuned model (or LoRA adapter) folder
says about itself: the base model, the tools it was trained to call, the call syntax, metrics.

Written by ``finetune`` and ``selftrain``; read by ``generate``/``chat`` and ``eval`` (the tools to
offer) and by the model loader (an adapter's base model). This module is the only one that
opens the file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple, Union

from toolformer.atomic import atomic_write_json
from toolformer.errors import UserError

MANIFEST_FILE = "toolformer.json"
PathLike = Union[str, "os.PathLike[str]"]


def manifest_path(folder: PathLike) -> Path:
    """``folder/toolformer.json``."""
    return Path(os.path.expanduser(str(folder))) / MANIFEST_FILE


def write_manifest(folder: PathLike, payload: Dict[str, Any]) -> Path:
    """Write ``toolformer.json`` into ``folder`` atomically (readers see the old or the new file)."""
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
        raise UserError(f"{path} is not a JSON object; expected {{\"tools\": [...], \"base_model\": ...}}")
    return data


def _field(model: str, key: str) -> Tuple[str, Any]:
    """``(folder, value)``: the manifest folder of ``model`` (a folder, or an adapter's short
    name) and its manifest's ``key``, None when there is no manifest or no such key."""
    from toolformer.models import manifest_dir  # an adapter's short name -> its folder

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
        raise UserError(f"{manifest_path(folder)}: 'tools' must be a list of tool names, "
                        f"e.g. [\"Calculator\"]; fix it or pass --tools")
    return list(tools) or None


def manifest_base_model(folder: PathLike) -> Optional[str]:
    """The ``base_model`` a manifest names (an adapter's base), or None."""
    meta = read_manifest(folder)
    base = None if meta is None else meta.get("base_model")
    return str(base) if base else None


def manifest_tool_options(model: str) -> Dict[str, Dict[str, Any]]:
    """The tool constructor options a checkpoint (a folder, or an adapter's short name) was
    trained with (``"tool_options"``, e.g. ``{"Calculator": {"numbers_from_text": true}}`` from
    ``selftrain``), or ``{}``. ``generate``, ``chat`` and ``eval`` use them unless the user
    gives the same option.

    Raises :class:`~toolformer.errors.UserError` when ``"tool_options"`` is not an object of objects.
    """
    folder, opts = _field(model, "tool_options")
    if opts is None:
        return {}
    if not (isinstance(opts, dict) and all(isinstance(v, dict) for v in opts.values())):
        raise UserError(f"{manifest_path(folder)}: 'tool_options' must map tool names to objects, "
                        "e.g. {\"Calculator\": {\"numbers_from_text\": true}}")
    return {str(k): dict(v) for k, v in opts.items()}


def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr, flush=True)


def _shown(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def run_tool_options(model: str, user: Optional[Dict[str, Dict[str, Any]]] = None,
                     say: Optional[Callable[[str], None]] = None) -> Dict[str, Dict[str, Any]]:
    """The tool options a run of ``model`` uses: the user's (``user``), over those of the
    checkpoint's manifest that each tool declares safe (``Tool.manifest_safe_options``).

    A manifest comes from whoever made the checkpoint: options it sets beyond a tool's list
    (a corpus file, an index folder, a reader model) are dropped, unless the user gives the
    same option (then the user's value is used). ``say`` (default: a line on stderr) gets one
    line naming the options taken from the manifest and one naming those dropped.

    Raises :class:`~toolformer.errors.UserError` for a malformed ``tool_options`` or an unknown
    tool in it (see :func:`manifest_tool_options`).
    """
    from toolformer.tools.assembly import canonical_options
    from toolformer.tools.base import get_tool_class

    say = say or _stderr
    user = canonical_options(user or {})
    taken: Dict[str, Dict[str, Any]] = {}
    dropped: List[str] = []
    for tool, opts in canonical_options(manifest_tool_options(model)).items():
        safe = getattr(get_tool_class(tool), "manifest_safe_options", frozenset())
        for key, value in opts.items():
            if key in user.get(tool, {}):
                continue  # the user's own value wins: nothing of the manifest's is used
            if key in safe:
                taken.setdefault(tool, {})[key] = value
            else:
                dropped.append(f"{tool}.{key}")
    if taken or dropped:
        where = manifest_path(_field(model, "tool_options")[0])
        if taken:
            shown = ", ".join(f"{t}.{k}={_shown(v)}"
                              for t, o in taken.items() for k, v in o.items())
            say(f"tool options from {where}: {shown}")
        if dropped:
            say(f"ignored tool options from {where}: {', '.join(dropped)} (a checkpoint's "
                "manifest may not choose files, folders or models; to use one, pass it yourself: "
                "--tool-option TOOL.OPTION=VALUE)")
    return merge_tool_options(taken, user)


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
        isinstance(roles.get(k), str) and roles[k].strip() and "\n" not in roles[k] for k in ("user", "assistant"))
    if not ok:
        raise UserError(f"{manifest_path(folder)}: 'chat_roles' must be {{\"user\": \"Q\", \"assistant\": \"A\"}} "
                        "(one-line labels); fix or delete it")
    return roles["user"].strip(), roles["assistant"].strip()


def chat_roles_of_template(prompt_template: str) -> Optional[Dict[str, str]]:
    """``{"user": "Q", "assistant": "A"}`` for a prompt template ``"Q: {question}\nA:"`` (a label,
    the question, a line break, a label), else None."""
    import re

    m = re.fullmatch(r"([^\s:{}]+): \{question\}\n([^\s:{}]+):", prompt_template)
    return {"user": m.group(1), "assistant": m.group(2)} if m else None


def merge_tool_options(*layers: Optional[Dict[str, Dict[str, Any]]]) -> Dict[str, Dict[str, Any]]:
    """Tool options layered per option (later layers win), tool names in their registered spelling."""
    from toolformer.tools.assembly import canonical_options

    out: Dict[str, Dict[str, Any]] = {}
    for layer in layers:
        for tool, opts in canonical_options(layer or {}).items():
            out.setdefault(tool, {}).update(opts)
    return out


def manifest_call_trigger(model: str) -> Optional[Dict[str, Any]]:
    """The call trigger a checkpoint was calibrated with (the manifest's ``"call_trigger"``:
    ``{"call_top_k": 10, "call_threshold": 0.31, "f1": ..., "n": ...}``, written by
    :func:`write_call_trigger`), or None. ``generate``, ``chat`` and ``eval`` decode with it
    unless the user sets ``call_top_k`` or ``call_threshold``.

    Raises :class:`~toolformer.errors.UserError` when the trigger is out of range.
    """
    folder, trigger = _field(model, "call_trigger")
    if trigger is None:
        return None
    if not isinstance(trigger, dict):
        raise UserError(f"{manifest_path(folder)}: 'call_trigger' must be an object like "
                        "{\"call_top_k\": 10, \"call_threshold\": 0.3}; fix or delete it")
    k, t = check_trigger(trigger.get("call_top_k"), trigger.get("call_threshold"),
                         str(manifest_path(folder)))
    return {**trigger, "call_top_k": k, "call_threshold": t}


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
    ok_t = (isinstance(call_threshold, (int, float)) and not isinstance(call_threshold, bool)
            and 0 <= call_threshold < 1)
    if not (ok_k and ok_t):
        raise UserError(f"{where}: a call trigger needs call_top_k >= 0 (an integer) and "
                        f"call_threshold in [0, 1); got {call_top_k!r}, {call_threshold!r}")
    return call_top_k, float(call_threshold)
