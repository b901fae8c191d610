"""The flat settings ``SelfTrainConfig`` had before it was grouped, and their nested places.

Two readers need them, and this table is the one place that maps them:

- a ``--config`` file or :meth:`SelfTrainConfig.from_dict` written with the old keys
  (``{"temperature": 0.5, "dev_size": 50}``): :func:`nest_flat` moves each value to its nested
  place (``grow.generation.temperature``, ``dev.size``); :func:`deprecation` is the one-line
  warning their readers give;
- a run folder's ``run.json`` and ``round_*/state.json``, which record the settings as that flat
  dict: :func:`flatten` writes a config in it, so that a run folder made before the grouping
  resumes, and a changed setting is named by its old key.
"""

from __future__ import annotations

from dataclasses import asdict, fields, is_dataclass, replace
from typing import Any, Dict, List, Mapping, Optional, Tuple

from toolformer.errors import UserError
from toolformer.generation.types import GenerationConfig

# old flat key -> its place(s) in the nested config. max_calls and call_top_k set Grow and the
# dev eval alike; the top-level settings (output, model, tools, seed, finetune, ...) kept their
# names and are not listed.
FLAT_KEYS: Dict[str, Tuple[str, ...]] = {
    "data_dir": ("data.data_dir",),
    "corpus": ("data.corpus",),
    "mix": ("data.mix",),
    "max_problem_steps": ("data.max_problem_steps",),
    "wiki_docs": ("data.wiki_docs",),
    "doc_template": ("data.doc_template",),
    "prompt_template": ("data.prompt_template",),
    "eval_sets": ("data.eval_sets",),
    "contamination_threshold": ("data.contamination_threshold",),
    "perplexity_sets": ("data.perplexity_sets",),
    "samples_per_prompt": ("grow.samples_per_prompt",),
    "no_call_samples": ("grow.no_call_samples",),
    "forced_call_samples": ("grow.forced_call_samples",),
    "demonstrations": ("grow.demonstrations",),
    "demonstrations_rounds": ("grow.demonstrations_rounds",),
    "answer_only": ("grow.answer_only",),
    "corpus_size": ("grow.corpus_size",),
    "corpus_sizes": ("grow.corpus_sizes",),
    "rotate_corpus": ("grow.rotate_corpus",),
    "temperature": ("grow.generation.temperature",),
    "top_p": ("grow.generation.top_p",),
    "max_new_tokens": ("grow.generation.max_new_tokens",),
    "grow_batch_size": ("grow.generation.batch_size",),
    "max_calls": ("grow.generation.max_calls", "dev.generation.max_calls"),
    "call_top_k": ("grow.generation.call_top_k", "dev.generation.call_top_k"),
    "filter": ("improve.filter",),
    "filter_options": ("improve.filter_options",),
    "thresholds": ("improve.thresholds",),
    "improve_steps": ("improve.steps",),
    "max_kept_per_prompt": ("improve.max_kept_per_prompt",),
    "max_kept_per_kind": ("improve.max_kept_per_kind",),
    "accumulate": ("improve.accumulate",),
    "dev_data": ("dev.data",),
    "dev_size": ("dev.size",),
    "dev_max_problem_steps": ("dev.max_problem_steps",),
    "eval_batch_size": ("dev.generation.batch_size",),
    "eval_max_new_tokens": ("dev.max_new_tokens",),
    "calibrate": ("calibration.enabled",),
    "calibration_size": ("calibration.size",),
    "calibration_objective": ("calibration.objective",),
}
# settings added after the grouping: run folders record them under these keys (read back to
# their places, without the flat keys' warning); a folder recorded before they existed resumes
# while they hold their defaults (SelfTrainConfig.changed_since)
RECORDED_KEYS: Dict[str, str] = {
    "preference": "improve.preference",
    "dpo": "improve.dpo",
    "climb_at": "grow.climb_at",
    "start_level": "grow.start_level",
    "review_fraction": "grow.review_fraction",
    "demonstrations_on_climb": "grow.demonstrations_on_climb",
}
# old dicts of GenerationConfig fields by name, over the named ones above
OPTION_KEYS: Dict[str, str] = {"grow_options": "grow.generation", "eval_options": "dev.generation"}
# the GenerationConfig fields named by a flat key of their own (the rest go to *_options)
_GROW_NAMED = {"temperature", "top_p", "max_new_tokens", "batch_size", "max_calls", "call_top_k"}
_DEV_NAMED = {"batch_size", "max_calls", "call_top_k"}
GENERATION_KEYS = (
    "temperature",
    "top_p",
    "max_new_tokens",
    "grow_batch_size",
    "max_calls",
    "call_top_k",
    "eval_batch_size",
    "grow_options",
    "eval_options",
)


def check_generation_fields(values: Mapping[str, Any], where: str) -> None:
    """Raise :class:`UserError` (one line, naming ``where``) for a key of ``values`` that is no
    :class:`GenerationConfig` field."""
    known = {f.name for f in fields(GenerationConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise UserError(
            f"{where}: unknown GenerationConfig field(s) {unknown}; known: "
            f"{', '.join(sorted(known))}"
        )


def _as_dict(value: Any) -> Any:
    """A nested group as a dict to set keys in (a dataclass given whole becomes its fields)."""
    return asdict(value) if is_dataclass(value) else value


def set_path(nested: Dict[str, Any], path: str, value: Any) -> None:
    """``nested["grow"]["generation"]["temperature"] = value`` for ``grow.generation.temperature``
    (the groups on the way made dicts). Raises :class:`UserError` (one line) where a group on the
    way is neither an object nor a dataclass."""
    *heads, leaf = path.split(".")
    node = nested
    for i, head in enumerate(heads):
        group = _as_dict(node.get(head)) or {}
        if not isinstance(group, Mapping):
            where = ".".join(heads[: i + 1])
            raise UserError(
                f"{where} must be an object (JSON {{...}}), got "
                f"{type(group).__name__} {group!r:.60}"
            )
        node[head] = dict(group)
        node = node[head]
    node[leaf] = value


def old_keys_in(values: Mapping[str, Any]) -> List[str]:
    """The flat keys of before the grouping among ``values``' keys, in their order."""
    return [k for k in values if k in FLAT_KEYS or k in OPTION_KEYS]


def deprecation(values: Mapping[str, Any]) -> Optional[str]:
    """One line naming the old flat keys of ``values`` and their nested places (None: none)."""
    old = old_keys_in(values)
    if not old:
        return None
    moved = ", ".join(
        f"{k} -> {FLAT_KEYS[k][0] if k in FLAT_KEYS else OPTION_KEYS[k] + '.*'}" for k in old
    )
    return f"flat self-training settings are deprecated; use the nested ones: {moved}"


def nest_flat(values: Mapping[str, Any]) -> Dict[str, Any]:
    """``values`` (a config file's object, ``from_dict``'s argument) with every old flat key
    moved to its nested place: ``{"dev_size": 50}`` -> ``{"dev": {"size": 50}}``; new keys pass
    through. An old key goes over a nested value given with it; ``grow_options`` /
    ``eval_options`` go over the named generation keys (as they did).

    Raises :class:`UserError` (one line) for an unknown field in ``grow_options`` /
    ``eval_options``."""
    nested: Dict[str, Any] = {
        k: v
        for k, v in values.items()
        if k not in FLAT_KEYS and k not in OPTION_KEYS and k not in RECORDED_KEYS
    }
    for key in old_keys_in(values):
        for path in FLAT_KEYS.get(key, ()):
            set_path(nested, path, values[key])
    for key in [k for k in values if k in RECORDED_KEYS]:  # a run folder's record read back
        set_path(nested, RECORDED_KEYS[key], values[key])
    for key, path in OPTION_KEYS.items():
        opts = values.get(key)
        if opts is None:
            continue
        if not isinstance(opts, Mapping):
            raise UserError(
                f"{key} must be an object (JSON {{...}}) of GenerationConfig fields, "
                f"got {type(opts).__name__} {opts!r:.60}"
            )
        check_generation_fields(opts, key)
        for name, value in opts.items():
            set_path(nested, f"{path}.{name}", value)
    return nested


def _get(config: Any, path: str) -> Any:
    for part in path.split("."):
        config = getattr(config, part)
    return config


def _differing(gen: GenerationConfig, default: GenerationConfig, skip: set) -> Dict[str, Any]:
    return {
        f.name: getattr(gen, f.name)
        for f in fields(GenerationConfig)
        if f.name not in skip and getattr(gen, f.name) != getattr(default, f.name)
    }


def flat_generation(
    grow: GenerationConfig,
    dev: GenerationConfig,
    grow_default: GenerationConfig,
    dev_default: GenerationConfig,
) -> Dict[str, Any]:
    """The flat generation keys (:data:`GENERATION_KEYS`) of Grow's and the dev eval's decoding:
    the named ones from Grow's (and the dev eval's batch size), every other field that differs
    from its group's default in ``grow_options`` / ``eval_options``, and the dev eval's
    max_calls / call_top_k there when they differ from Grow's."""
    eval_options = _differing(dev, dev_default, _DEV_NAMED)
    eval_options.update(
        {
            k: getattr(dev, k)
            for k in ("max_calls", "call_top_k")
            if getattr(dev, k) != getattr(grow, k)
        }
    )
    return {
        "temperature": grow.temperature,
        "top_p": grow.top_p,
        "max_new_tokens": grow.max_new_tokens,
        "grow_batch_size": grow.batch_size,
        "max_calls": grow.max_calls,
        "call_top_k": grow.call_top_k,
        "eval_batch_size": dev.batch_size,
        "grow_options": _differing(grow, grow_default, _GROW_NAMED),
        "eval_options": dict(sorted(eval_options.items())),
    }


def flatten(
    config: Any, grow_default: GenerationConfig, dev_default: GenerationConfig
) -> Dict[str, Any]:
    """``config`` (a :class:`SelfTrainConfig` with its groups built) as the flat dict of the old
    keys, the dataclass values as dicts (``finetune``, ``annotator``)."""
    out: Dict[str, Any] = {}
    for f in fields(config):
        value = getattr(config, f.name)
        if not is_dataclass(value) or f.name in ("finetune", "annotator"):
            out[f.name] = value
    for key, paths in FLAT_KEYS.items():
        out[key] = _get(config, paths[0])
    for key, path in RECORDED_KEYS.items():
        out[key] = _get(config, path)
    out.update(
        flat_generation(config.grow.generation, config.dev.generation, grow_default, dev_default)
    )
    return out


def canonical_generation(
    flat: Dict[str, Any], grow_default: GenerationConfig, dev_default: GenerationConfig
) -> Dict[str, Any]:
    """``flat`` (a recorded fingerprint, its missing keys at their defaults) with its generation
    keys rewritten as :func:`flat_generation` writes them: an older record may name a field in
    ``grow_options`` that has a key of its own (``{"max_calls": 1, "grow_options":
    {"max_calls": 2}}`` decoded with 2 calls)."""
    grow = {
        "temperature": flat["temperature"],
        "top_p": flat["top_p"],
        "max_new_tokens": flat["max_new_tokens"],
        "batch_size": flat["grow_batch_size"],
        "max_calls": flat["max_calls"],
        "call_top_k": flat["call_top_k"],
        **(flat.get("grow_options") or {}),
    }
    dev = {
        "batch_size": flat["eval_batch_size"],
        "max_calls": flat["max_calls"],
        "call_top_k": flat["call_top_k"],
        **(flat.get("eval_options") or {}),
    }
    try:
        gens = replace(grow_default, **grow), replace(dev_default, **dev)
    except (TypeError, UserError):  # a record no GenerationConfig takes: compared as it is
        return flat
    return {**flat, **flat_generation(*gens, grow_default, dev_default)}
