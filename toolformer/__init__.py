"""toolformer: language models that teach themselves to use tools (Schick et al. 2023).

The public API (``from toolformer import ...``); each name is imported on first use, so
``import toolformer`` loads neither torch nor transformers:

* models: :func:`load_model` ``(name) -> (model, tokenizer)`` for an alias (``smollm2-135m``),
  a shipped adapter (``smollm2-135m-calculator``), a folder or a Hugging Face id;
  :func:`load_tokenizer`;
* tools: :class:`Tool` (subclass it: ``name``, ``description``, ``run(args, context)``),
  :func:`register_tool` (class decorator), :data:`TOOLS` (the registry), :func:`create_tool`,
  :func:`create_tools`, :func:`available_tools`, :func:`function_tool` (a tool from a plain
  function), :class:`ToolContext`, :class:`ToolExecutor` (timeouts, cache, failure counts);
* annotation (the paper's data generation): :func:`augment` with :class:`AugmentConfig`;
* fine-tuning: :func:`run_finetune` (``toolformer.finetune.finetune``) with
  :class:`FinetuneConfig`;
* self-training rounds: :func:`run_selftrain` (``toolformer.selftrain.selftrain``) with
  :class:`SelfTrainConfig` (the two are renamed here: ``toolformer.finetune`` and
  ``toolformer.selftrain`` are modules);
* generation with tool calls: :class:`ToolGenerator` with :class:`GenerationConfig`, giving
  :class:`GenerationOutput` s with their :class:`CallRecord` s;
* evaluation: :func:`evaluate` with :class:`EvalConfig`;
* the call syntax: :class:`APICall`, :func:`find_calls`, :func:`format_call`,
  :func:`parse_call`, :func:`strip_calls`.
"""

from typing import Any, List

__version__ = "0.1.0"

from toolformer.syntax import (  # noqa: E402
    APICall,
    find_calls,
    format_call,
    parse_call,
    strip_calls,
)

# name -> the module that defines it, or (module, its name there); imported on first use
_LAZY = {
    "load_model": "toolformer.models",
    "load_tokenizer": "toolformer.models",
    "Tool": "toolformer.tools.base",
    "ToolContext": "toolformer.tools.base",
    "TOOLS": "toolformer.tools.base",
    "register_tool": "toolformer.tools.base",
    "create_tool": "toolformer.tools.assembly",
    "create_tools": "toolformer.tools.assembly",
    "available_tools": "toolformer.tools.base",
    "function_tool": "toolformer.tools.base",
    "ToolExecutor": "toolformer.tools.executor",
    "augment": "toolformer.data_aug.pipeline",
    "AugmentConfig": "toolformer.data_aug.config",
    "run_finetune": ("toolformer.finetune", "finetune"),
    "FinetuneConfig": "toolformer.finetune_config",
    "run_selftrain": ("toolformer.selftrain", "selftrain"),
    "SelfTrainConfig": "toolformer.selftrain",
    "ToolGenerator": "toolformer.generation",
    "GenerationConfig": "toolformer.generation",
    "GenerationOutput": "toolformer.generation",
    "CallRecord": "toolformer.generation",
    "evaluate": "toolformer.eval",
    "EvalConfig": "toolformer.eval",
}

__all__ = [
    "APICall",
    "find_calls",
    "format_call",
    "parse_call",
    "strip_calls",
    "__version__",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (keeps ``import toolformer`` fast)."""
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'toolformer' has no attribute {name!r}")
    import importlib

    module, attr = where if isinstance(where, tuple) else (where, name)
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(_LAZY))
