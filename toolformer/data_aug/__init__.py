"""Loss-filtered annotation of a corpus with tool calls (paper, Section 2) and its runner.

``augment(AugmentConfig(...))`` is the Python form of ``toolformer augment``. Importing this
package is cheap: torch and transformers load only when a run starts.
"""

from toolformer.data_aug.config import AugmentConfig  # noqa: F401
from toolformer.data_aug.inputs import InputStats, load_documents  # noqa: F401
from toolformer.data_aug.pipeline import AugmentSummary, augment, merge_shards  # noqa: F401
from toolformer.data_aug.types import AnnotationResult, AnnotatorConfig, Document, KeptCall  # noqa: F401

__all__ = [
    "AnnotationResult",
    "AnnotatorConfig",
    "AugmentConfig",
    "AugmentSummary",
    "Document",
    "InputStats",
    "KeptCall",
    "augment",
    "load_documents",
    "merge_shards",
]
