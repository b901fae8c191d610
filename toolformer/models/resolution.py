"""What a model name points at before anything loads: an alias's converted folder, a local
folder (which must exist and hold a model), or a Hugging Face id; typos of an alias or a shipped
adapter's name are caught here, before any network try."""

from __future__ import annotations

import os
from pathlib import Path

from toolformer.errors import UserError
from toolformer.models.aliases import ALIASES, ensure_converted
from toolformer.models.checkpoint import adapter_dir, list_adapters
from toolformer.registry import closest


def resolve(name_or_path: str) -> str:
    """An alias becomes its converted folder; anything else is returned as is."""
    if name_or_path in ALIASES:
        return str(ensure_converted(name_or_path))
    if name_or_path.lower() in ALIASES:
        return str(ensure_converted(name_or_path.lower()))
    return name_or_path


def looks_local(name: str) -> bool:
    """A path rather than a Hugging Face id (``org/name``) or an alias: ``runs/ckpt`` is local
    when ``runs/`` is a folder here (else a missing checkpoint is looked up on the Hub)."""
    return (
        name.startswith((".", "/", "~"))
        or (os.sep != "/" and os.sep in name)
        or name.count("/") >= 2
        or os.path.exists(os.path.expanduser(name))
        or ("/" in name and os.path.isdir(name.split("/", 1)[0]))
    )


def check_exists(target: str, original: str) -> None:
    """A clear error for a local path that is missing or is not a model folder.

    ``target``: what ``original`` (the user's spelling) resolved to. Raises
    :class:`~toolformer.errors.UserError` (one line); a Hub id passes unchecked."""
    if not looks_local(original) and not looks_local(target):
        return
    path = Path(os.path.expanduser(target))
    if not path.exists():
        raise UserError(
            f"model path {original!r} does not exist; pass an alias ({', '.join(ALIASES)}), "
            "a local folder or a Hugging Face model id"
        )
    if path.is_dir() and not (path / "config.json").exists():
        raise UserError(f"{original!r} is not a model folder (no config.json in it)")


def check_name(name: str) -> None:
    """A bare name close to an alias is a typo, not a hub id: say so before any network try.

    Raises :class:`~toolformer.errors.UserError` naming the closest alias or adapter."""
    if name in ALIASES or name.lower() in ALIASES or "/" in name or looks_local(name):
        return
    if adapter_dir(name) is not None:
        return
    # the nearest of all names: "smollm2-135m-calculater" is a typo of the adapter,
    # "smollm-135m" one of its base alias
    kinds = {**{a: "adapter" for a in list_adapters()}, **{a: "alias" for a in ALIASES}}
    close = closest(name, kinds, cutoff=0.6)
    if close:
        raise UserError(f"unknown model {name!r}; did you mean the {kinds[close]} {close!r}?")


def prepare(name_or_path: str) -> str:
    """The folder or Hub id to hand to ``from_pretrained`` for ``name_or_path``: typos refused
    (:func:`check_name`), an alias converted once (:func:`resolve`), a local path checked
    (:func:`check_exists`); all before transformers is imported."""
    name_or_path = str(name_or_path)
    check_name(name_or_path)
    target = resolve(name_or_path)
    check_exists(target, name_or_path)
    return target
