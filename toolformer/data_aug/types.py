"""Data passed between the annotation stages and the pipeline runner."""

from __future__ import annotations

import datetime as _dt
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional


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


@dataclass
class AnnotatorConfig:
    """Settings of the loss-filtered annotation (paper, Section 2 and Appendix A).

    Per-tool thresholds default to each tool's ``annotation`` settings (Appendix A table);
    ``settings`` overrides them by tool name, and the global fields, when set, override all.
    """

    settings: Dict[str, Any] = field(
        default_factory=dict, metadata={"help": "per-tool AnnotationSettings overrides by name"}
    )
    tau_s: Optional[float] = field(default=None, metadata={"help": "override: position threshold on p('[')"})
    k: Optional[int] = field(default=None, metadata={"help": "override: max positions per document"})
    m: Optional[int] = field(default=None, metadata={"help": "override: candidate calls per position"})
    tau_f: Optional[float] = field(default=None, metadata={"help": "override: keep if L- - L+ >= tau_f"})
    weight_horizon: int = field(default=5, metadata={"help": "tokens weighted by max(0, 1 - 0.2 t)"})
    max_call_tokens: int = field(default=40, metadata={"help": "max tokens sampled for one call"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature for calls"})
    max_doc_tokens: int = field(default=256, metadata={"help": "longer documents are chunked"})
    batch_size: int = field(default=32, metadata={"help": "rows per sampling/scoring batch"})
    seed: int = field(default=0, metadata={"help": "seed for candidate sampling"})
