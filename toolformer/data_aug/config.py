"""``AugmentConfig``: one dataclass that drives ``toolformer augment`` and ``augment()``.

The annotation thresholds live in :class:`~toolformer.data_aug.types.AnnotatorConfig` (paper,
Appendix A, per tool); this file holds what the runner needs around them: where documents come
from, where output goes, which model and tools, sharding and resumption.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from toolformer.data_aug.types import AnnotatorConfig
from toolformer.errors import UserError
from toolformer.tools.assembly import PAPER_TOOLS

_SHARDS = ("AugmentConfig.num_shards", "AugmentConfig.shard_index")  # fields an error names

DEFAULT_TOOLS = PAPER_TOOLS  # the paper's five (one home: toolformer.tools.assembly)

# Fields whose change makes earlier chunks of a run incompatible with the rest of it: resuming a
# run with any of them changed would mix two different annotations (or two document streams).
# ``limit`` is deliberately absent: raising it continues a finished run.
FINGERPRINT_FIELDS = (
    "input",
    "split",
    "text_field",
    "date_field",
    "url_field",
    "id_field",
    "model",
    "dtype",
    "tools",
    "tool_options",
    "annotator",
    "seed",
    "num_shards",
)

# AnnotatorConfig fields added later, with the value that reproduces the code before them:
# constrained sampling (calls whose arguments follow the tool's grammar).
_ADDED_LATER = {"constrained": False}

# AnnotatorConfig fields that change speed or memory, not which calls are kept: a resumed run may
# change them (e.g. a smaller batch after running out of memory).
_THROUGHPUT_ONLY = ("batch_size", "max_batch_tokens", "record_candidates")


@dataclass
class AugmentConfig:
    """Settings of one annotation run (``toolformer augment``)."""

    input: Optional[str] = field(
        default=None,
        metadata={
            "help": "JSONL/CSV/parquet file, a saved HF dataset folder, or an HF dataset id; "
            "none: the Wikipedia sample shipped with gensim, split into paragraphs"
        },
    )
    split: str = field(default="train", metadata={"help": "split of an HF dataset (id or folder)"})
    text_field: str = field(default="text", metadata={"help": "field that holds the document text"})
    date_field: Optional[str] = field(
        default="date",
        metadata={"help": "field with the document's date (ISO date); the Calendar uses it"},
    )
    url_field: Optional[str] = field(
        default="url",
        metadata={
            "help": "field with a URL to read a date from (.../2023/01/30/...) "
            "when the date field is missing"
        },
    )
    id_field: Optional[str] = field(
        default=None,
        metadata={"help": "field with a unique document id (default: index + content hash)"},
    )
    encoding_errors: str = field(
        default="skip",
        metadata={
            "help": "a record with bytes that are not UTF-8: skip it (with a "
            "warning naming file and line) or replace the bytes with U+FFFD"
        },
    )
    output: str = field(
        default="runs/augment", metadata={"help": "output folder (resumed if it exists)"}
    )
    model: str = field(
        default="smollm2-135m", metadata={"help": "model alias, local folder or HF id"}
    )
    dtype: str = field(default="fp32", metadata={"help": "model dtype: fp32 or bf16"})
    device: Optional[str] = field(
        default=None,
        metadata={"help": "torch device (default: cuda:LOCAL_RANK when a GPU exists, else cpu)"},
    )
    tools: List[str] = field(
        default_factory=lambda: list(DEFAULT_TOOLS), metadata={"help": "tools to annotate with"}
    )
    tool_options: Dict[str, Dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "help": (
                "constructor options per tool, e.g. {'WikiSearch': {'corpus': 'passages.jsonl'}}"
            )
        },
    )
    limit: Optional[int] = field(
        default=60,
        metadata={
            "help": "annotate the first N documents of the input (0 or None: all); the default "
            "keeps a first run to minutes on a 2-core CPU"
        },
    )
    num_shards: Optional[int] = field(
        default=None,
        metadata={"help": "split the documents into N shards (default: WORLD_SIZE, else 1)"},
    )
    shard_index: Optional[int] = field(
        default=None,
        metadata={"help": "which shard this process annotates (default: RANK, else 0)"},
    )
    batch_size: int = field(
        default=1,
        metadata={
            "help": "documents per annotate_batch call (the Annotator batches inside each "
            "document; raise it for an annotator that batches across documents)"
        },
    )
    chunk_size: int = field(
        default=16, metadata={"help": "documents per output chunk (the unit of resumption)"}
    )
    annotator: AnnotatorConfig = field(
        default_factory=AnnotatorConfig,
        metadata={"help": "thresholds and sampling settings (paper, App. A)"},
    )
    annotator_factory: Optional[str] = field(
        default=None,
        metadata={
            "help": "advanced: 'module:attr' or 'file.py:attr' of a callable(config) returning an "
            "object with annotate_batch(docs); default loads the model, tools and Annotator"
        },
    )
    seed: int = field(
        default=0,
        metadata={
            "help": (
                "the run's one seed: candidate sampling and "
                "torch (the annotator's seed is set from it)"
            )
        },
    )
    overwrite: bool = field(
        default=False, metadata={"help": "delete an earlier run in the output folder"}
    )
    merge: bool = field(
        default=True,
        metadata={"help": "merge the shards into data.jsonl/dataset/stats.json when all are done"},
    )
    progress: bool = field(default=True, metadata={"help": "show a progress bar"})

    # -- derived ------------------------------------------------------------------------------
    def validate(self) -> "AugmentConfig":
        """Raise :class:`UserError` for settings that cannot work; return self."""
        default_seed = AnnotatorConfig.seed
        if self.annotator.seed not in (default_seed, self.seed):
            # the run's one seed is AugmentConfig.seed (it also seeds torch); the annotator gets it
            raise UserError(
                f"annotator.seed {self.annotator.seed} differs from the run's seed "
                f"{self.seed}; set only AugmentConfig.seed",
                field="AugmentConfig.seed",
            )
        if self.limit is not None and self.limit < 0:
            raise UserError(
                f"AugmentConfig.limit must be >= 0 (0: all documents), got {self.limit}",
                field="AugmentConfig.limit",
            )
        if self.batch_size < 1:
            raise UserError(
                f"AugmentConfig.batch_size must be >= 1, got {self.batch_size}",
                field="AugmentConfig.batch_size",
            )
        if self.chunk_size < 1:
            raise UserError(
                f"AugmentConfig.chunk_size must be >= 1, got {self.chunk_size}",
                field="AugmentConfig.chunk_size",
            )
        if self.dtype.lower() not in ("fp32", "float32", "bf16", "bfloat16", "fp16", "float16"):
            raise UserError(f"unknown dtype {self.dtype!r}; use fp32 or bf16")
        if not self.tools:
            raise UserError(
                "no tools given; set AugmentConfig.tools, e.g. Calculator,Calendar",
                field="AugmentConfig.tools",
            )
        self.tools = canonical_tools(self.tools)
        options = {}
        for name, opts in self.tool_options.items():
            if not isinstance(opts, dict):
                raise UserError(
                    f"tool options of {name} must be a dict of constructor options, got {opts!r}"
                )
            options.setdefault(canonical_tools([name])[0], {}).update(opts)
        self.tool_options = options
        self.annotator.prefilter_settings(self.tools)  # a bad prefilter option: one line, now
        if not self.text_field:
            raise UserError(
                "AugmentConfig.text_field must not be empty", field="AugmentConfig.text_field"
            )
        n, i = self.num_shards, self.shard_index
        if n is not None and n < 1:
            raise UserError(f"AugmentConfig.num_shards must be >= 1, got {n}", field=_SHARDS[0])
        if i is not None and i < 0:
            raise UserError(f"AugmentConfig.shard_index must be >= 0, got {i}", field=_SHARDS[1])
        if n is not None and i is not None and i >= n:
            raise UserError(
                f"AugmentConfig.shard_index {i} is out of range for "
                f"AugmentConfig.num_shards {n} (use 0..{n - 1})",
                field=_SHARDS,
            )
        return self

    def resolve_shard(self, env: Optional[Dict[str, str]] = None) -> Tuple[int, int]:
        """``(num_shards, shard_index)``: the options, else RANK/WORLD_SIZE
        (torchrun/accelerate)."""
        env = os.environ if env is None else env
        world = _env_int(env, "WORLD_SIZE")
        rank = _env_int(env, "RANK")
        if rank is None:
            rank = _env_int(env, "LOCAL_RANK")
        n, i = self.num_shards, self.shard_index
        if n is None:
            if i is not None:
                raise UserError(
                    "AugmentConfig.shard_index needs AugmentConfig.num_shards", field=_SHARDS
                )
            if world is not None and world > 1:
                n, i = world, rank or 0
            else:
                n, i = 1, 0
        elif i is None:
            if n == 1:
                i = 0
            elif world == n and rank is not None:
                i = rank
            else:
                raise UserError(
                    f"AugmentConfig.num_shards {n} needs AugmentConfig.shard_index (0..{n - 1}), "
                    f"or run under torchrun/accelerate launch with {n} processes",
                    field=_SHARDS,
                )
        if not 0 <= i < n:
            raise UserError(f"shard index {i} is out of range for {n} shards")
        return n, i

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def fingerprint(self, num_shards: int) -> Dict[str, Any]:
        """The settings a resumed run must share with the chunks already written."""
        d = self.to_dict()
        d["annotator"] = self.annotator.fingerprint()  # in the shape earlier runs recorded
        fp = {k: d[k] for k in FINGERPRINT_FIELDS if k != "num_shards"}
        fp["num_shards"] = num_shards
        if self.encoding_errors != "skip":  # only then: runs recorded before the option resume
            fp["encoding_errors"] = self.encoding_errors
        fp["tools"] = sorted(fp["tools"])
        fp["annotator"] = {k: v for k, v in fp["annotator"].items() if k not in _THROUGHPUT_ONLY}
        # settings added after runs were recorded: left out when they hold the value that does
        # what the code did before them, so such a run resumes with exactly that value (and
        # not silently with the new default, which keeps other calls)
        for name, before in _ADDED_LATER.items():
            if fp["annotator"].get(name, before) == before:
                fp["annotator"].pop(name, None)
        # the window was called max_doc_tokens when earlier runs recorded it: they still resume
        fp["annotator"]["max_doc_tokens"] = fp["annotator"].pop("max_length")
        return json.loads(json.dumps(fp, sort_keys=True, default=str))

    @staticmethod
    def fingerprint_id(fp: Dict[str, Any]) -> str:
        return hashlib.sha1(json.dumps(fp, sort_keys=True).encode()).hexdigest()[:16]


def _env_int(env: Dict[str, str], name: str) -> Optional[int]:
    value = env.get(name)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise UserError(f"environment variable {name}={value!r} is not an integer") from None


def canonical_tools(names: List[str]) -> List[str]:
    """Registered spelling of each tool name (case-insensitive, duplicates dropped), without
    importing the tools; raises :class:`UnknownToolError` with a "did you mean" hint."""
    from toolformer.tools.base import TOOLS

    out: List[str] = []
    for name in names:
        key = TOOLS.canonical(str(name).strip())
        if key not in out:
            out.append(key)
    return out
