"""Data passed between the annotation stages and the pipeline runner."""

from __future__ import annotations

import datetime as _dt
import warnings
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Iterable, List, Optional, Tuple

from toolformer.data_aug.heuristics import (
    PREFILTERS,
    CalculatorPrefilterOptions,
    MTPrefilterOptions,
    prefilter_options,
)
from toolformer.errors import UserError
from toolformer.tools.self_retrieval import SELF_EXCLUDED


def window_key(doc_id: Any, text: str) -> str:
    """The key of a document's saved windows: its id and a hash of its text (a changed text
    never picks up another text's windows)."""
    import hashlib

    return f"{doc_id}:{hashlib.sha1(text.encode('utf-8', 'surrogatepass')).hexdigest()[:16]}"


# AnnotationResult.stats counters, in the order stats.json lists them (also kept per tool as
# "<Tool>/<counter>"); the annotator counts them, the pipeline sums them
COUNTERS = (
    "docs_prefiltered_out",
    "positions_kept",
    "positions_no_call",
    "candidates_sampled",
    "candidates_closed",
    "candidates_malformed",
    "candidates_invalid",
    "candidates_abandoned",
    "candidates_deduplicated",
    "candidates_executed",
    "tool_failures",
    SELF_EXCLUDED,
    "calls_repeated",
    "calls_kept",
)


@dataclass
class Document:
    """One input text. ``date`` feeds the Calendar tool (the paper uses the document's date)."""

    id: str
    text: str
    date: Optional[_dt.date] = None
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass
class KeptCall:
    """A call that passed the loss filter, with where it went and why it was kept."""

    tool: str
    args: str
    result: str
    offset: int  # character offset in the ORIGINAL text where the call is inserted
    position: int  # token index i in the document
    loss_plus: float  # L+ = L_i(e(c, r))
    loss_minus: float  # L- = min(L_i(empty), L_i(e(c, empty)))
    loss_empty: float  # L_i(empty)
    loss_no_result: float  # L_i(e(c, empty))
    # a rejected candidate's loss that could not change the decision is NaN (not computed, see
    # Annotator._lazy_losses); AnnotatorConfig.record_candidates computes every one

    @property
    def score(self) -> float:
        """L- - L+; kept when >= tau_f."""
        return self.loss_minus - self.loss_plus

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["score"] = self.score
        return d


@dataclass
class AnnotationResult:
    """The outcome for one document: its augmented text, kept calls and stage counters."""

    doc_id: str
    text: str  # original text with every kept call inserted
    original: str
    calls: List[KeptCall] = field(default_factory=list)
    stats: Counter = field(default_factory=Counter)  # e.g. positions_kept, candidates_sampled
    seconds: Dict[str, float] = field(default_factory=dict)  # per stage
    error: Optional[str] = None  # set when the document failed (counted, never raised)
    skipped: Optional[str] = None  # reason, when no tool applied / empty text
    # every scored candidate (kept or not), only with AnnotatorConfig.record_candidates
    candidates: List[KeptCall] = field(default_factory=list)


@dataclass
class AnnotatorConfig:
    """Settings of the loss-filtered annotation (paper, Section 2 and Appendix A).

    Per-tool thresholds default to each tool's ``annotation`` settings (Appendix A table);
    ``settings`` overrides them by tool name, and the global fields, when set, override all.
    """

    settings: Dict[str, Any] = field(
        default_factory=dict, metadata={"help": "per-tool AnnotationSettings overrides by name"}
    )
    tau_s: Optional[float] = field(
        default=None, metadata={"help": "override: position threshold on p('[')"}
    )
    k: Optional[int] = field(
        default=None, metadata={"help": "override: max positions per document"}
    )
    m: Optional[int] = field(
        default=None, metadata={"help": "override: candidate calls per position"}
    )
    tau_f: Optional[float] = field(
        default=None, metadata={"help": "override: keep if L- - L+ >= tau_f"}
    )
    weight_horizon: int = field(
        default=5, metadata={"help": "tokens weighted by max(0, 1 - 0.2 t)"}
    )
    max_call_tokens: int = field(default=40, metadata={"help": "max tokens sampled for one call"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for calls"})
    max_length: int = field(
        default=256, metadata={"help": "document window in tokens; longer documents are chunked"}
    )
    batch_size: int = field(
        default=256,
        metadata={
            "help": "rows per sampling/scoring batch (scoring also obeys max_batch_tokens); "
            "with 2 CPU threads a Calculator document (200 sampled rows) ran 2.1x "
            "faster than with 32"
        },
    )
    seed: int = field(default=0, metadata={"help": "seed for candidate sampling"})
    min_position: int = field(
        default=0,
        metadata={
            "help": "first token index of a window where a call may go (paper: 0). 1 was "
            "the default while scored texts began with SmolLM2's chat-turn BOS and "
            "echo calls were kept: 41 of 51 kept Calculator calls sat before the "
            "first token ('[Calculator(250) -> 250] The state...'); with the "
            "<|endoftext|> start and invalid calls dropped, 0 of 8 documents kept one"
        },
    )
    repeat_window: int = field(
        default=10,
        metadata={
            "help": "the same call (tool and arguments) is kept at most once per this many "
            "tokens (the best-scoring one); 10 tokens: about 5 words of SmolLM2, "
            "whose numbers take a token per digit. 0: no limit"
        },
    )
    max_batch_tokens: int = field(
        default=16384,
        metadata={
            "help": "cap on rows x padded length of one scoring forward pass (and of a "
            "sampling batch without shared_prefix_attention): bounds memory"
        },
    )
    start_token: Optional[str] = field(
        default=None,
        metadata={
            "help": "token that starts prompts and scored sequences; None: the one the "
            "model saw before plain text (the BOS a tokenizer adds itself, else its "
            "end-of-text token: <|endoftext|> for SmolLM2, not its chat-turn BOS "
            "<|im_start|>), '' for none"
        },
    )
    prefilter: bool = field(
        default=True, metadata={"help": "apply the paper's per-tool document heuristics"}
    )
    prefilter_options: Dict[str, Dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "help": "options of the prefilters by tool name, e.g. {'Calculator': "
            "{'window_tokens': 100, 'min_numbers': 3, 'random_keep': 0.01}, "
            "'MT': {'min_foreign_tokens': 10}}"
        },
    )
    # the four knobs before prefilter_options: config files and run folders still name them
    calc_window_tokens: Optional[int] = field(
        default=None,
        metadata={"help": "deprecated: prefilter_options={'Calculator': {'window_tokens': N}}"},
    )
    calc_min_numbers: Optional[int] = field(
        default=None,
        metadata={"help": "deprecated: prefilter_options={'Calculator': {'min_numbers': N}}"},
    )
    calc_random_keep: Optional[float] = field(
        default=None,
        metadata={"help": "deprecated: prefilter_options={'Calculator': {'random_keep': P}}"},
    )
    mt_min_foreign_tokens: Optional[int] = field(
        default=None,
        metadata={"help": "deprecated: prefilter_options={'MT': {'min_foreign_tokens': N}}"},
    )
    abandon_samples: bool = field(
        default=True,
        metadata={
            "help": "stop sampling a call as soon as its text can no longer be a call of "
            "the tool (counted as candidates_abandoned; kept calls do not change)"
        },
    )
    constrained: bool = field(
        default=True,
        metadata={
            "help": "sample calls under the tool's argument grammar: after '[' only "
            "the tool's name, '(', arguments it accepts, ')' and ']' can be sampled"
        },
    )
    shared_prefix_attention: bool = field(
        default=True,
        metadata={
            "help": "sample all calls of a document over one shared KV cache (custom "
            "attention); off: copy the cache per row (any model, more memory)"
        },
    )
    record_candidates: bool = field(
        default=False,
        metadata={
            "help": "keep every scored candidate in AnnotationResult.candidates (debugging); "
            "computes all three losses of every candidate (otherwise a loss that "
            "cannot change the keep decision is skipped: same calls kept, less time)"
        },
    )

    def __post_init__(self) -> None:
        """Map the deprecated prefilter fields into ``prefilter_options`` (once, here; the
        fields are then None)."""
        options = {str(k): dict(v) for k, v in dict(self.prefilter_options or {}).items()}
        given = [a for a in PREFILTER_ALIASES if getattr(self, a) is not None]
        for alias in given:
            tool, key = PREFILTER_ALIASES[alias]
            name = _same_name(tool, options) or tool
            value = getattr(self, alias)
            if options.get(name, {}).get(key, value) != value:
                raise UserError(
                    f"annotator.{alias}={value!r} and prefilter_options "
                    f"{name}.{key}={options[name][key]!r} disagree; set only "
                    "prefilter_options"
                )
            options.setdefault(name, {})[key] = value
            setattr(self, alias, None)
        if given:
            warnings.warn(
                f"AnnotatorConfig {', '.join(given)} are deprecated: use "
                "prefilter_options={tool: {option: value}}",
                DeprecationWarning,
                stacklevel=3,
            )
        self.prefilter_options = options

    def prefilter_settings(self, tools: Iterable[str]) -> Dict[str, Any]:
        """Tool name -> its prefilter's options object, for each of ``tools`` with a rule that
        takes options. Every entry of ``prefilter_options`` is checked, also those of tools not
        given: a name without a rule, an unknown option or a wrong type is a one-line
        :class:`~toolformer.errors.UserError`."""
        built = {
            PREFILTERS.canonical(name): prefilter_options(name, opts)
            for name, opts in self.prefilter_options.items()
        }
        out: Dict[str, Any] = {}
        for tool in tools:
            if tool in PREFILTERS:
                options = built.get(PREFILTERS.canonical(tool)) or prefilter_options(tool)
                if options is not None:
                    out[tool] = options
        return out

    def fingerprint(self) -> Dict[str, Any]:
        """The settings as a dict in the shape runs recorded before ``prefilter_options``: the
        built-in prefilters' options under their old names with the values in effect, and
        ``prefilter_options`` only when it holds more (a plugin prefilter's options), so that a
        run recorded then resumes."""
        d = asdict(self)
        options = {k: dict(v) for k, v in d.pop("prefilter_options").items()}
        for alias, (tool, key) in PREFILTER_ALIASES.items():
            name = _same_name(tool, options)
            value = options[name].pop(key, None) if name else None
            if name and not options[name]:
                del options[name]
            d[alias] = value if value is not None else _ALIAS_DEFAULTS[alias]
        if options:
            d["prefilter_options"] = options
        return d

    def settings_for(self, tool: Any) -> Any:
        """The AnnotationSettings of ``tool``: its Appendix A defaults, then ``settings[name]``
        (an AnnotationSettings or a dict of some of its fields), then the global overrides."""
        from dataclasses import fields as _fields
        from dataclasses import replace as _replace

        from toolformer.errors import UserError
        from toolformer.tools.base import AnnotationSettings

        base = getattr(tool, "annotation", None) or AnnotationSettings()
        names = {f.name for f in _fields(AnnotationSettings)}
        override = self.settings.get(tool.name)
        if override is None:  # settings keys are case-insensitive, like tool names
            lowered = {k.lower(): v for k, v in self.settings.items()}
            override = lowered.get(tool.name.lower())
        if isinstance(override, AnnotationSettings):
            base = override
        elif override:
            unknown = set(override) - names
            if unknown:
                raise UserError(
                    f"unknown annotation setting(s) {sorted(unknown)} for {tool.name}; "
                    f"use {sorted(names)}"
                )
            base = _replace(base, **{k: v for k, v in override.items() if v is not None})
        globals_ = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return _replace(base, **globals_) if globals_ else base


# deprecated AnnotatorConfig field -> (tool, option of its prefilter)
PREFILTER_ALIASES: Dict[str, Tuple[str, str]] = {
    "calc_window_tokens": ("Calculator", "window_tokens"),
    "calc_min_numbers": ("Calculator", "min_numbers"),
    "calc_random_keep": ("Calculator", "random_keep"),
    "mt_min_foreign_tokens": ("MT", "min_foreign_tokens"),
}
_ALIAS_DEFAULTS = {
    alias: getattr(
        {"Calculator": CalculatorPrefilterOptions, "MT": MTPrefilterOptions}[tool](), key
    )
    for alias, (tool, key) in PREFILTER_ALIASES.items()
}


def _same_name(tool: str, options: Dict[str, Any]) -> Optional[str]:
    """The key of ``options`` that names ``tool`` (tool names are case-insensitive), or None."""
    return next((k for k in options if k.lower() == tool.lower()), None)
