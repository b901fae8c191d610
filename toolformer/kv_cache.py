"""The KV cache's keyword in a model's forward pass, across transformers versions.

transformers 5.x renamed the forward argument and output field ``past_key_values`` to ``cache``
(``transformers.utils.deprecation.deprecate_kwarg("past_key_values", "5.40.0",
new_name="cache")``: the old name prints a FutureWarning now and fails from 5.40); transformers
4.x (this package supports >= 4.56) and remote-code models know only ``past_key_values``. Every
forward pass that continues a cache goes through :func:`cache_kwargs` and every cache read from
an output through :func:`returned_cache`, so the name is decided in one place, per model class,
from the forward's own signature.
"""

from __future__ import annotations

import inspect
from typing import Any, Dict

_NAMES: Dict[type, str] = {}


def _unwrapped(model: Any) -> Any:
    """The transformers model under a PEFT wrapper (whose forward takes ``**kwargs``)."""
    base = getattr(model, "get_base_model", None)
    return base() if callable(base) else model


def cache_name(model: Any) -> str:
    """``"cache"`` when ``model.forward`` takes a ``cache`` argument, else ``"past_key_values"``.

    A subclass whose forward passes ``**kwargs`` on (a wrapper, a test's scripted model) names
    neither: the first class up its MRO whose forward names one decides."""
    model = _unwrapped(model)
    kind = type(model)
    name = _NAMES.get(kind)
    if name is None:
        name = "past_key_values"
        for cls in kind.__mro__:
            forward = cls.__dict__.get("forward")
            if forward is None:
                continue
            try:
                params = inspect.signature(forward).parameters
            except (TypeError, ValueError):  # a forward without a readable signature
                continue
            if "cache" in params or "past_key_values" in params:
                name = "cache" if "cache" in params else "past_key_values"
                break
        _NAMES[kind] = name
    return name


def cache_kwargs(model: Any, cache: Any) -> Dict[str, Any]:
    """``{name: cache}`` for ``model(..., **cache_kwargs(model, cache), use_cache=True)``."""
    return {cache_name(model): cache}


def returned_cache(output: Any) -> Any:
    """The cache a forward pass returned (``output.cache``, or ``output.past_key_values`` before
    transformers 5), without the deprecated property's warning."""
    cache = output.get("cache") if hasattr(output, "get") else getattr(output, "cache", None)
    if cache is not None:
        return cache
    return (
        output.get("past_key_values")
        if hasattr(output, "get")
        else getattr(output, "past_key_values", None)
    )
