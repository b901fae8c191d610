"""Generation settings and results: :class:`GenerationConfig`, :class:`CallRecord`,
:class:`GenerationOutput` and the streamed :class:`GenerationEvent`. No torch at import."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

FINISH_REASONS = ("eos", "length", "stop")


@dataclass
class GenerationConfig:
    """Decoding settings; the call settings default to the paper's (top-10 trigger, one call)."""

    max_new_tokens: int = field(
        default=128,
        metadata={
            "help": "cap on output tokens; a tool result being inserted goes in whole, even past it"
        },
    )
    do_sample: bool = field(default=False, metadata={"help": "sample instead of greedy decoding"})
    temperature: float = field(default=1.0, metadata={"help": "sampling temperature"})
    top_k: int = field(
        default=0, metadata={"help": "sample among the k most likely tokens (0 = off)"}
    )
    top_p: float = field(default=1.0, metadata={"help": "nucleus sampling mass (1.0 = off)"})
    call_top_k: int = field(
        default=10,
        metadata={"help": "start a call whenever '[' is among the top-k next tokens (paper: 10)"},
    )
    call_threshold: float = field(
        default=0.0,
        metadata={
            "help": (
                "also require p('[') >= this to start a call; then '[' is never chosen "
                "below it (0 = off, the paper's rule; a calibrated adapter stores its value)"
            )
        },
    )
    max_calls: int = field(default=1, metadata={"help": "calls per output (paper: 1)"})
    tools_enabled: bool = field(
        default=True, metadata={"help": "False = 'Toolformer (disabled)': p('[') set to 0"}
    )
    stop_strings: tuple = field(
        default=(),
        metadata={"help": "stop when text outside a call contains one (not kept in the output)"},
    )
    seed: Optional[int] = field(default=None, metadata={"help": "seed of the sampling generator"})
    max_call_tokens: int = field(
        default=64,
        metadata={"help": "tokens a call may take before '->'; more is an unclosed call"},
    )
    min_new_tokens: int = field(
        default=0, metadata={"help": "EOS is blocked before this many output tokens (benchmarks)"}
    )
    batch_size: int = field(
        default=16, metadata={"help": "prompts decoded together on one KV cache"}
    )
    constrained: bool = field(
        default=True,
        metadata={
            "help": (
                "write calls under the tools' argument grammars: after "
                "'[' only a tool's name, '(', its arguments, ')' and ' ->'"
            )
        },
    )
    chunked_results: bool = field(
        default=True,
        metadata={
            "help": "feed a forced tool result in one forward pass (False: one token per step)"
        },
    )

    def __post_init__(self) -> None:
        from toolformer.errors import UserError

        self.stop_strings = tuple(self.stop_strings or ())
        greedy = " (greedy decoding, GenerationConfig.do_sample=False, takes none)"
        checks = [  # (ok, the field, what it must be)
            (self.max_new_tokens >= 1, "max_new_tokens", "must be >= 1"),
            (self.temperature > 0, "temperature", "must be > 0" + greedy),
            (self.top_k >= 0, "top_k", "must be >= 0"),
            (0 < self.top_p <= 1, "top_p", "must be in (0, 1]"),
            (self.call_top_k >= 0, "call_top_k", "must be >= 0"),
            (0 <= self.call_threshold < 1, "call_threshold", "must be in [0, 1)"),
            (self.max_calls >= 0, "max_calls", "must be >= 0"),
            (self.max_call_tokens >= 1, "max_call_tokens", "must be >= 1"),
            (self.batch_size >= 1, "batch_size", "must be >= 1"),
            (
                all(isinstance(s, str) and s for s in self.stop_strings),
                "stop_strings",
                "must be non-empty strings",
            ),
        ]
        for ok, name, rule in checks:
            if not ok:
                named = [f"GenerationConfig.{name}"] + (
                    ["GenerationConfig.do_sample=False"] if greedy in rule else []
                )
                raise UserError(f"GenerationConfig.{name} {rule}", field=named)


@dataclass
class CallRecord:
    """One call made during generation; ``start``/``end``: its character span in the output."""

    tool: str
    args: str
    result: Optional[str]
    error: Optional[str]
    seconds: float
    start: int
    end: Optional[int] = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


@dataclass
class GenerationOutput:
    """The continuation of one prompt: ``prompt + text`` is the whole decoded sequence."""

    prompt: str
    text: str
    calls: List[CallRecord]
    num_tokens: int
    finish_reason: str  # "eos" | "length" | "stop"
    warnings: List[str] = field(default_factory=list)
    prompt_tokens: int = 0

    @property
    def tool_seconds(self) -> float:
        return sum(c.seconds for c in self.calls)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "prompt": self.prompt,
            "text": self.text,
            "calls": [c.to_dict() for c in self.calls],
            "num_tokens": self.num_tokens,
            "finish_reason": self.finish_reason,
            "warnings": list(self.warnings),
        }


@dataclass
class GenerationEvent:
    """A streamed event of one row.

    ``kind``: ``"text"`` (text outside calls), ``"call_start"`` (a call opens at ``offset``),
    ``"call_text"`` (the call's own text, as the model and the tool write it), ``"call_end"``
    (the call is over; ``call`` holds its record) and ``"done"`` (``output`` holds the result).
    The ``text`` of the "text" and "call_text" events of a row add up to its output text.
    """

    kind: str
    row: int = 0
    text: str = ""
    offset: int = 0
    call: Optional[CallRecord] = None
    output: Optional[GenerationOutput] = None
