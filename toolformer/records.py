"""The one record reader: JSONL / JSON / CSV / TSV / parquet / TXT files, saved HF datasets and
HF dataset ids, as ``(where, record)`` pairs in file order.

Used by every stage that reads user data: augment inputs (:mod:`toolformer.data_aug.inputs`),
search corpora (:mod:`toolformer.retrieval.corpus`), fine-tuning data (:mod:`toolformer.finetune`)
and the JSONL evaluation loaders (:mod:`toolformer.eval.loaders`). The rules are the same
everywhere:

- a bad line (malformed JSON, bytes that are not UTF-8) is counted in :class:`RecordStats`,
  reported with its file and line (the first :data:`WARN_LINES` of each kind), and skipped
  (``on_bad_line="raise"`` turns it into a :class:`~toolformer.errors.UserError` instead);
- text that is not valid UTF-8 never becomes U+FFFD silently: files are decoded with
  ``surrogateescape`` and a record holding an undecodable byte is skipped with a warning, unless
  the caller opts in with ``encoding_errors="replace"`` (the bytes become U+FFFD and the record
  is kept, counted under ``notes["replaced_encoding"]``);
- lines end at ``\n``, ``\r\n`` or ``\r`` only, never at U+2028, U+2029 or U+0085 (where
  ``str.splitlines`` would split), which are ordinary characters inside a record; a UTF-8 byte
  order mark at the start of a file is dropped;
- a file compressed with gzip, bzip2 or xz (``.gz``, ``.bz2``, ``.xz`` after the format's
  suffix, e.g. ``data.jsonl.xz``) is decompressed; a truncated or mislabelled one is a
  one-line ``UserError`` naming the file;
- a TXT file holds one record ``{"text": ...}`` per block of lines separated by a blank line;
- a folder is a saved HF dataset when :func:`is_saved_dataset` says so;
- a bad source (missing file, unknown format, unreadable parquet) raises ``UserError`` at once.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import io
import json
import logging
import lzma
import os
import re
import sys
import zlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from toolformer.errors import UserError

logger = logging.getLogger("toolformer.records")

SUFFIXES = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".jsonl.gz": "jsonl",
    ".json.gz": "json",
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".txt": "txt",
}
WARN_LINES = 10  # bad lines reported one by one (per kind); the rest only in the counts
ON_BAD_LINE = ("skip", "raise")
ENCODING_ERRORS = ("skip", "replace")
_UNDECODED = re.compile("[\udc80-\udcff]")  # what surrogateescape makes of a byte that is not UTF-8
# compressed text files: suffix -> (name, opener, magic bytes at the start of such a file)
COMPRESSIONS: Dict[str, Tuple[str, Callable[..., Any], bytes]] = {
    ".gz": ("gzip", gzip.open, b"\x1f\x8b"),
    ".bz2": ("bzip2", bz2.open, b"BZh"),
    ".xz": ("xz", lzma.open, b"\xfd7zXZ\x00"),
}
# what a truncated or corrupt compressed stream raises (gzip.BadGzipFile is an OSError)
_DECOMPRESS_ERRORS = (EOFError, OSError, lzma.LZMAError, zlib.error)

Record = Tuple[str, Any]  # (where, record): ("line 3", {...}), ("row 2", {...}), ("record[0]", ...)


@dataclass
class RecordStats:
    """What a reader read and why it skipped records (kept in a run's stats)."""

    documents: int = 0  # records the consumer kept (documents, passages, texts)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    notes: Counter = field(default_factory=Counter)  # e.g. no_date, duplicate_id, replaced_encoding
    malformed_lines: List[int] = field(default_factory=list)  # first few malformed JSON lines
    bad_lines: List[str] = field(default_factory=list)  # first few "file:line: reason"

    def to_dict(self) -> Dict[str, Any]:
        return {
            "documents": self.documents,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "notes": dict(sorted(self.notes.items())),
            "malformed_lines": list(self.malformed_lines),
            "bad_lines": list(self.bad_lines),
        }

    def bad_line(self, path: Any, where: str, reason: str, kind: str, message: str) -> None:
        """Count a skipped line under ``kind`` and warn about the first few of each kind."""
        self.skipped[kind] += 1
        if self.skipped[kind] <= WARN_LINES:
            self.bad_lines.append(f"{path}: {where}: {reason}")
            logger.warning("%s: %s %s; skipped%s", path, where, reason, message)


# --------------------------------------------------------------------------- helpers


def compression_suffix(path: Path) -> Optional[str]:
    """``".gz"``, ``".bz2"`` or ``".xz"`` when the file name ends in one, else None."""
    name = Path(path).name.lower()
    return next((s for s in COMPRESSIONS if name.endswith(s)), None)


def source_kind(path: Path) -> Optional[str]:
    """``"jsonl"``, ``"csv"``... from a file name (a compression suffix after a text format's
    suffix allowed: ``data.csv.gz``), or None for an unknown suffix."""
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    compressed = compression_suffix(path)
    if compressed:
        inner = source_kind(Path(name[: -len(compressed)]))
        return inner if inner not in (None, "parquet") else None  # arrow reads parquet itself
    return None


def is_saved_dataset(path: Path) -> bool:
    """Whether ``path`` is a folder written by ``Dataset(Dict).save_to_disk``."""
    path = Path(path)
    return path.is_dir() and any(
        (path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json")
    )


def looks_like_hub_id(source: str) -> bool:
    """``org/name`` or ``name`` without a file suffix: an HF dataset id rather than a path."""
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return False
    return (
        source_kind(Path(source)) is None
        and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source) is not None
    )


def open_text(path: Path):
    """A text stream of ``path`` in which a byte that is not UTF-8 becomes a lone surrogate
    (``surrogateescape``), found later by :func:`undecodable`.

    A leading byte order mark is dropped (``utf-8-sig``); lines are split at ``\n``, ``\r\n``
    and ``\r`` only (``newline=""``: never at U+2028, U+2029 or U+0085, unlike
    ``str.splitlines``). A ``.gz``, ``.bz2`` or ``.xz`` file is decompressed.

    Raises :class:`UserError` when a file named as compressed is not (its first bytes differ).
    """
    path = Path(path)
    suffix = compression_suffix(path)
    if suffix is None:
        return open(path, encoding="utf-8-sig", errors="surrogateescape", newline="")
    name, opener, magic = COMPRESSIONS[suffix]
    with open(path, "rb") as fh:
        head = fh.read(len(magic))
    if head and head != magic:
        raise UserError(
            f"{path} is not {name}-compressed although its name ends in {suffix} "
            f"(it starts with {head!r}); rename it without {suffix} or compress it"
        )
    return io.TextIOWrapper(
        opener(path, "rb"), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )


def _unreadable(path: Path, exc: BaseException) -> UserError:
    """The one-line error for a file that could not be read to its end."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    suffix = compression_suffix(path)
    if suffix is None:
        return UserError(f"could not read {path}: {reason}")
    name = COMPRESSIONS[suffix][0]
    return UserError(
        f"{path} is not a complete {name} file ({reason}); it is truncated or "
        f"corrupt: download or compress it again, or pass the uncompressed file"
    )


def _guarded(records: Iterator[Record], path: Path) -> Iterator[Record]:
    """``records`` with a read error (a truncated or corrupt compressed stream, an I/O error)
    turned into a one-line :class:`UserError` naming ``path``."""
    try:
        yield from records
    except _DECOMPRESS_ERRORS as exc:
        raise _unreadable(path, exc) from None


def undecodable(value: Any) -> Optional[str]:
    """``"byte 0xe9 at character 3"`` for the first byte of ``value`` (a string, or the strings of
    a record) that was not UTF-8, else None."""
    if isinstance(value, str):
        m = _UNDECODED.search(value)
        return (
            None
            if m is None
            else f"byte 0x{ord(m.group()) - 0xDC00:02x} at character {m.start() + 1}"
        )
    if isinstance(value, Mapping):
        for v in value.values():
            found = undecodable(v)
            if found:
                return found
    elif isinstance(value, (list, tuple)):
        for v in value:
            found = undecodable(v)
            if found:
                return found
    return None


def _looks_binary(value: Any) -> bool:
    """NUL bytes or many control characters: not text in a wrong encoding but no text at all."""
    texts = (
        [value]
        if isinstance(value, str)
        else [v for v in value.values() if isinstance(v, str)]
        if isinstance(value, Mapping)
        else []
    )
    for text in texts:
        sample = text[:4096]
        control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\n\r\t\f\v")
        if "\x00" in sample or control > max(2, 0.05 * len(sample)):
            return True
    return False


def replace_undecodable(value: Any) -> Any:
    """``value`` with every undecodable byte as U+FFFD (what ``errors="replace"`` would give)."""
    if isinstance(value, str):
        return _UNDECODED.sub("\ufffd", value)
    if isinstance(value, Mapping):
        return {k: replace_undecodable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_undecodable(v) for v in value]
    return value


# --------------------------------------------------------------------------- file readers


def _read_jsonl(path: Path, stats: RecordStats, on_bad_line: str) -> Iterator[Record]:
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                if on_bad_line == "raise":
                    raise UserError(
                        f"{path}:{lineno} is not valid JSON ({exc.msg}); fix or remove that line"
                    ) from None
                if len(stats.malformed_lines) < WARN_LINES:
                    stats.malformed_lines.append(lineno)
                stats.bad_line(
                    path, f"line {lineno}", f"is not valid JSON ({exc.msg})", "malformed_json", ""
                )
                continue
            yield f"line {lineno}", value


def _read_json(path: Path, stats: RecordStats, on_bad_line: str) -> Iterator[Record]:
    """A JSON array of records, an object holding one list of records, or JSON lines."""
    try:
        with open_text(path) as fh:
            whole = json.load(fh)
    except json.JSONDecodeError as exc:
        with open_text(path) as fh:
            is_array = fh.read(1 << 16).lstrip().startswith("[")
        if is_array:
            raise UserError(
                f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix it or use JSON lines"
            ) from None
        yield from _read_jsonl(path, stats, on_bad_line)  # JSON lines under a .json name
        return
    where, records = "record", whole if isinstance(whole, list) else [whole]
    if isinstance(whole, dict):
        lists = [k for k, v in whole.items() if isinstance(v, list)]
        if len(lists) == 1:
            where, records = lists[0], whole[lists[0]]
    for i, rec in enumerate(records):
        yield f"{where}[{i}]", rec


def _read_csv(
    path: Path, stats: RecordStats, on_bad_line: str, delimiter: str = ","
) -> Iterator[Record]:
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # C long is 32 bits on some platforms
        csv.field_size_limit(2**31 - 1)
    with open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for row in reader:
                yield f"line {reader.line_num}", row
        except csv.Error as exc:
            raise UserError(f"{path}: CSV error near line {reader.line_num}: {exc}") from None


def _read_tsv(path: Path, stats: RecordStats, on_bad_line: str) -> Iterator[Record]:
    return _read_csv(path, stats, on_bad_line, delimiter="\t")


def _read_parquet(
    path: Path, stats: RecordStats, on_bad_line: str, columns: Optional[Sequence[str]] = None
) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
        keep = [c for c in (columns or ()) if c in pf.schema_arrow.names] or None
        batches = pf.iter_batches(batch_size=1024, columns=keep)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path} is not a readable parquet file: {first}") from None
    i = 0
    for batch in batches:
        for rec in batch.to_pylist():
            yield f"row {i}", rec
            i += 1


def _read_txt(path: Path, stats: RecordStats, on_bad_line: str) -> Iterator[Record]:
    """Plain text: one record per block of lines separated by a blank line."""
    block: List[str] = []
    start = 1
    with open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                if not block:
                    start = lineno
                block.append(line.rstrip("\r\n"))
            elif block:
                yield f"line {start}", {"text": "\n".join(block)}
                block = []
    if block:
        yield f"line {start}", {"text": "\n".join(block)}


_READERS: Dict[str, Callable[..., Iterator[Record]]] = {
    "jsonl": _read_jsonl,
    "json": _read_json,
    "csv": _read_csv,
    "tsv": _read_tsv,
    "parquet": _read_parquet,
    "txt": _read_txt,
}


# --------------------------------------------------------------------------- datasets


def _hf_rows(ds: Any) -> Iterator[Record]:
    for i, rec in enumerate(ds):
        yield f"row {i}", rec


def pick_split(dd: Mapping[str, Any], split: str, where: str) -> Any:
    """``dd[split]`` of a DatasetDict, or a UserError listing its splits."""
    if split in dd:
        return dd[split]
    raise UserError(
        f"{where} has no split {split!r}; its splits: {', '.join(dd)}; pass one as "
        "iter_records.split",
        field="iter_records.split",
    )


def load_saved_dataset(path: Path, split: str = "train") -> Any:
    """The ``Dataset`` saved at ``path`` (its ``split`` when it is a DatasetDict)."""
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"{path} could not be loaded as a saved HF dataset: {first}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = pick_split(ds, split, str(path))
    return ds


def _read_hub_dataset(name: str, split: str) -> Iterator[Record]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise UserError(
                f"HF dataset {name!r}: {exc}; pass iter_records.split", field="iter_records.split"
            ) from None
        raise UserError(f"could not load HF dataset {name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"could not load HF dataset {name!r} ({first}); if you are offline, download it "
            "elsewhere and pass the saved folder (save_to_disk) or a JSONL/parquet file"
        ) from None
    return _hf_rows(ds)


# --------------------------------------------------------------------------- entry point


def _checked(
    records: Iterator[Record],
    path: Path,
    stats: RecordStats,
    encoding_errors: str,
    on_bad_line: str,
) -> Iterator[Record]:
    """Records of a text file with undecodable bytes skipped (or replaced when opted in)."""
    for where, rec in records:
        found = undecodable(rec)
        if found is None:
            yield where, rec
            continue
        if encoding_errors == "replace":
            stats.notes["replaced_encoding"] += 1
            yield where, replace_undecodable(rec)
            continue
        if on_bad_line == "raise":
            raise UserError(
                f"{path}: {where} is not valid UTF-8 ({found}); fix the file's encoding"
            )
        if _looks_binary(rec):
            stats.bad_line(path, where, "holds binary data", "binary", "")
            continue
        stats.bad_line(
            path,
            where,
            f"is not valid UTF-8 ({found})",
            "bad_encoding",
            " (convert the file to UTF-8, or pass --encoding-errors replace to keep it "
            "with U+FFFD)",
        )


def iter_records(
    source: str,
    *,
    split: str = "train",
    stats: Optional[RecordStats] = None,
    on_bad_line: str = "skip",
    encoding_errors: str = "skip",
    columns: Optional[Sequence[str]] = None,
) -> Iterator[Record]:
    """``(where, record)`` pairs of a file, saved dataset folder or HF dataset id, lazily.

    ``on_bad_line``: ``"skip"`` (count in ``stats.skipped``, warn with file and line) or
    ``"raise"`` (:class:`UserError`). ``encoding_errors``: ``"skip"`` a record with bytes that
    are not UTF-8 (like a bad line), or ``"replace"`` them with U+FFFD. ``columns``: read only
    these parquet columns when present (a speed-up; other formats give every field).

    Raises :class:`UserError` at once for a missing source, an unknown format or a folder that
    is not a saved dataset.
    """
    if on_bad_line not in ON_BAD_LINE:
        raise ValueError(f"on_bad_line must be one of {ON_BAD_LINE}, got {on_bad_line!r}")
    if encoding_errors not in ENCODING_ERRORS:
        raise UserError(
            f"encoding errors must be one of {', '.join(ENCODING_ERRORS)}, got {encoding_errors!r}"
        )
    stats = stats if stats is not None else RecordStats()
    path = Path(os.path.expanduser(str(source)))
    if path.is_dir():
        if not is_saved_dataset(path):
            raise UserError(
                f"folder {source} is not a saved HF dataset (no "
                "dataset_info.json or dataset_dict.json); pass a JSONL, "
                "CSV or parquet file, or a folder written by save_to_disk"
            )
        return _hf_rows(load_saved_dataset(path, split))
    if path.is_file():
        kind = source_kind(path)
        if kind is None:
            raise UserError(
                f"unknown input format {path.suffix or path.name!r} for {source}; use one of "
                f"{', '.join(sorted(SUFFIXES))}, a saved HF dataset folder or an HF dataset id"
            )
        if kind == "parquet":  # arrow has decoded (and checked) the text already
            return _read_parquet(path, stats, on_bad_line, columns)
        records = _guarded(_READERS[kind](path, stats, on_bad_line), path)
        return _checked(records, path, stats, encoding_errors, on_bad_line)
    if looks_like_hub_id(str(source)):
        return _read_hub_dataset(str(source), split)
    raise UserError(
        f"input {source} does not exist; pass an existing file or folder, or an HF dataset id"
    )
