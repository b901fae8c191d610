"""Self-training rounds that teach a model to use its tools (``toolformer selftrain``).

Round 0 is the paper's pipeline (annotate with the base model, loss filter, fine-tune); every
later round is one ReST iteration (Gulcehre et al. 2023): Grow samples outputs with calls from
the current model, Improve keeps those a filter plug-in scores above a rising threshold, and a
LoRA adapter is fine-tuned on them; each round is scored on a dev split, the best one is kept.
Importing this package is cheap: torch loads only when a run starts.
"""

from toolformer.selftrain.candidates import Candidate  # noqa: F401
from toolformer.selftrain.config import SelfTrainConfig  # noqa: F401
from toolformer.selftrain.filters import (  # noqa: F401
    FILTERS,
    CandidateFilter,
    FilterContext,
    build_filter,
    get_filter,
    register_filter,
)
from toolformer.selftrain.loop import SelfTrainResult, selftrain  # noqa: F401
from toolformer.selftrain.schedule import Schedule  # noqa: F401

__all__ = [
    "Candidate",
    "CandidateFilter",
    "FILTERS",
    "FilterContext",
    "Schedule",
    "SelfTrainConfig",
    "SelfTrainResult",
    "build_filter",
    "get_filter",
    "register_filter",
    "selftrain",
]
