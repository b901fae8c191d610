"""What an annotation run reports: totals over its document records (:class:`RunStats`, written
to ``stats.json``) and the summary the CLI prints (:class:`AugmentSummary`, :func:`format_merged`).
"""

from __future__ import annotations

import heapq
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Tuple

from toolformer.data_aug.types import COUNTERS
from toolformer.data_aug.writer import DATA_FILE, DATASET_DIR, STATS_FILE, ShardStore
from toolformer.tools.self_retrieval import SELF_EXCLUDED

EXAMPLES_PER_TOOL = 3


# --------------------------------------------------------------------------- statistics


class RunStats:
    """Totals over annotated document records (one shard or all of them)."""

    def __init__(self) -> None:
        self.documents: Counter = Counter()
        self.counters: Counter = Counter()
        self.per_tool: Dict[str, Counter] = defaultdict(Counter)
        self.kept: Counter = Counter()
        self.seconds: Counter = Counter()
        self._top: Dict[str, List[Tuple[float, int, Dict[str, Any]]]] = defaultdict(list)

    def add(self, rec: Dict[str, Any]) -> None:
        d = self.documents
        d["processed"] += 1
        if rec.get("error"):
            d["failed"] += 1
        elif rec.get("skipped"):
            d["prefiltered"] += 1
        d["with_calls" if rec["calls"] else "without_calls"] += 1
        for key, value in (rec.get("stats") or {}).items():
            tool, sep, name = key.partition("/")
            if sep:
                self.per_tool[tool][name] += value
            else:
                self.counters[key] += value
        for stage, secs in (rec.get("seconds") or {}).items():
            self.seconds[stage] += secs
        for call in rec["calls"]:
            self.kept[call["tool"]] += 1
            heap = self._top[call["tool"]]
            item = (float(call.get("score", 0.0)), -rec["index"], {**call, "id": rec["id"]})
            if len(heap) < EXAMPLES_PER_TOOL:
                heapq.heappush(heap, item)
            else:
                heapq.heappushpop(heap, item)

    def examples(self, n: int = 5) -> List[Dict[str, Any]]:
        """A few kept calls: the best of each tool first, then the best of the rest."""
        ranked = {
            t: [c for _, _, c in sorted(h, key=lambda x: (-x[0], -x[1]))]
            for t, h in self._top.items()
        }
        out = [calls[0] for calls in ranked.values() if calls]
        rest = [c for calls in ranked.values() for c in calls[1:]]
        out = sorted(out, key=lambda c: -c.get("score", 0.0))[:n]
        out += sorted(rest, key=lambda c: -c.get("score", 0.0))[: max(0, n - len(out))]
        return out

    def to_dict(
        self, inputs: Dict[str, Any], wall_seconds: float, config: Dict[str, Any], **extra: Any
    ) -> Dict[str, Any]:
        processed = self.documents["processed"]
        tools = sorted(set(self.per_tool) | set(self.kept) | set(config.get("tools") or []))
        per_tool = {}
        for t in tools:
            row = {c: int(self.per_tool[t][c]) for c in COUNTERS if c != "calls_kept"}
            row.update({k: int(v) for k, v in self.per_tool[t].items() if k not in row})
            row["calls_kept"] = int(self.kept[t])
            per_tool[t] = row
        counters = {c: int(self.counters[c]) for c in COUNTERS}
        counters.update({k: int(v) for k, v in self.counters.items() if k not in counters})
        return {
            "documents": {
                "read": inputs.get("documents", processed),
                "processed": processed,
                "with_calls": self.documents["with_calls"],
                "without_calls": self.documents["without_calls"],
                "failed": self.documents["failed"],
                "prefiltered": self.documents["prefiltered"],
                "skipped_input": inputs.get("skipped", {}),
                "skipped_input_total": inputs.get("skipped_total", 0),
                "notes": inputs.get("notes", {}),
            },
            "calls_kept": {
                "total": int(sum(self.kept.values())),
                "per_tool": {t: per_tool[t]["calls_kept"] for t in tools},
            },
            "counters": counters,
            "per_tool": per_tool,
            "seconds": {k: round(v, 3) for k, v in sorted(self.seconds.items())},
            "wall_seconds": round(wall_seconds, 3),
            "docs_per_second": round(processed / wall_seconds, 4) if wall_seconds > 0 else None,
            **extra,
            "config": config,
        }


def wall_seconds(store: ShardStore, key: str = "seconds") -> float:
    """Annotation wall time of a shard over all its sessions (``key="load_seconds"``: loading)."""
    return round(sum(float(s.get(key, 0.0)) for s in store.sessions()), 3)


# --------------------------------------------------------------------------- summary


@dataclass
class AugmentSummary:
    """What a run did; ``str(summary)`` is the report the CLI prints."""

    output: Path
    shard_dir: Path
    num_shards: int
    shard_index: int
    processed_now: int  # documents annotated by this call
    seconds_now: float  # wall seconds of this call's annotation loop
    shard_stats: Dict[str, Any]
    merged: bool = False
    stats: Dict[str, Any] = field(
        default_factory=dict
    )  # merged stats when merged, else the shard's
    examples: List[Dict[str, Any]] = field(default_factory=list)

    @property
    def calls_kept(self) -> Dict[str, int]:
        return dict(self.stats["calls_kept"]["per_tool"])

    def __str__(self) -> str:
        where = (
            "all shards"
            if self.merged
            else f"shard index {self.shard_index} of {self.num_shards} shards"
        )
        rate = _rate(self.processed_now, self.seconds_now)
        lines = [
            f"Annotated {self.processed_now} documents now in {self.seconds_now:.1f}s ({rate}). "
            f"Totals, {where}:"
        ]
        lines += _stats_lines(self.stats, self.examples)
        if self.merged:
            lines.append(
                f"Output: {self.output / DATA_FILE}, "
                f"{self.output / DATASET_DIR}/, {self.output / STATS_FILE}"
            )
        else:
            lines.append(
                f"Shard output: {self.shard_dir} (merged when every shard is done, or: "
                f"toolformer augment --merge {self.output})"
            )
        return "\n".join(lines)


def _stats_lines(stats: Dict[str, Any], examples: List[Dict[str, Any]]) -> List[str]:
    d = stats["documents"]
    kept = stats["calls_kept"]
    lines = [
        f"  {d['processed']} documents, {d['with_calls']} with calls, {d['failed']} failed, "
        f"{d['prefiltered']} prefiltered out, {d['skipped_input_total']} input records skipped.",
        "  Calls kept: "
        + (", ".join(f"{t} {n}" for t, n in kept["per_tool"].items()) or "none")
        + f" (total {kept['total']}).",
    ]
    excluded = int((stats.get("counters") or {}).get(SELF_EXCLUDED, 0))
    if excluded:
        per_tool = (stats.get("per_tool") or {}).items()
        by_tool = ", ".join(f"{t} {r[SELF_EXCLUDED]}" for t, r in per_tool if r.get(SELF_EXCLUDED))
        lines.append(
            f"  Left out of search results as the annotated document itself: {excluded} "
            f"passages ({by_tool})."
        )
    limit = (stats.get("config") or {}).get("limit")
    if limit and d["read"] >= limit:
        lines.append(
            f"  Stopped at --limit {limit} documents (--limit 0 annotates the whole input)."
        )
    if examples:
        lines.append("  Examples (score = L- - L+):")
        lines += [
            f"    {c['tool']:<10} {c.get('score', 0.0):6.2f}  {_short(c['call'], 100)}"
            for c in examples
        ]
    return lines


def format_merged(output: str, stats: Dict[str, Any], examples: List[Dict[str, Any]]) -> str:
    """The report ``toolformer augment --merge`` prints."""
    out = Path(output)
    lines = [f"Merged {stats.get('shards', '?')} shard(s) of {out}:"] + _stats_lines(
        stats, examples
    )
    lines.append(f"Output: {out / DATA_FILE}, {out / DATASET_DIR}/, {out / STATS_FILE}")
    return "\n".join(lines)


def _rate(docs: int, seconds: float) -> str:
    if docs <= 0 or seconds <= 0:
        return "-"
    per_second = docs / seconds
    return f"{per_second:.2f} docs/s" if per_second >= 0.1 else f"{seconds / docs:.1f} s/doc"


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"
