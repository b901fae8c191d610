"""Documents to annotate: JSONL / JSON / CSV / TSV / parquet / text files, saved HF datasets,
HF dataset ids, or (by default) the Wikipedia sample that ships with gensim.

Every source yields :class:`~toolformer.data_aug.types.Document` in a fixed order with a stable
id, so that sharding (``index % num_shards``) and resumption see the same stream every time.
Bad records (malformed JSON, empty or binary text) are counted in :class:`InputStats` and skipped;
a bad source (missing file, unknown format, no such text field) raises :class:`UserError`.
"""

from __future__ import annotations

import csv
import datetime as _dt
import gzip
import hashlib
import io
import json
import logging
import os
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

from toolformer.data_aug.types import Document
from toolformer.errors import UserError

logger = logging.getLogger("toolformer.augment")

# gensim's sample is a slice of the English Wikipedia dump of 1 May 2016 (its newest revision is
# 2016-05-01T07:08:29Z): its documents get that date so that the Calendar tool has one to use.
DEFAULT_CORPUS_DATE = _dt.date(2016, 5, 1)
DEFAULT_CORPUS_NAME = "gensim Wikipedia sample (enwiki, 2016-05-01)"
# Paragraphs of the default corpus: enough words to be prose, few enough for one model window.
PARAGRAPH_MIN_WORDS = 30
PARAGRAPH_MAX_WORDS = 160  # ~200-240 SmolLM2 tokens; the annotator's window is 256
PARAGRAPHS_PER_ARTICLE = 3  # spread a small --limit over many articles (topics, numbers, dates)

SUFFIXES = {
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".jsonl.gz": "jsonl", ".json.gz": "json",
    ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet", ".txt": "txt",
}
_WARN_LINES = 10  # malformed records reported one by one; the rest only in the summary


@dataclass
class InputStats:
    """What the loader read and why it skipped records."""

    documents: int = 0  # documents yielded (before sharding)
    skipped: Counter = field(default_factory=Counter)  # reason -> count
    notes: Counter = field(default_factory=Counter)  # e.g. no_date, bad_date, duplicate_id
    malformed_lines: List[int] = field(default_factory=list)  # first few line numbers

    def to_dict(self) -> Dict[str, Any]:
        return {
            "documents": self.documents,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": sum(self.skipped.values()),
            "notes": dict(sorted(self.notes.items())),
            "malformed_lines": list(self.malformed_lines),
        }


# --------------------------------------------------------------------------- dates


_URL_DATE = re.compile(r"(?<!\d)((?:19|20)\d{2})[/_-](\d{1,2})[/_-](\d{1,2})(?!\d)")
_TEXT_FORMATS = ("%B %d, %Y", "%b %d, %Y", "%d %B %Y", "%d %b %Y", "%Y/%m/%d", "%d.%m.%Y")


def parse_date(value: Any) -> Optional[_dt.date]:
    """A date from a date/datetime, an ISO string (``2023-01-30``, ``2023-01-30T12:00:00Z``) or a
    few common written forms (``January 30, 2023``); None when it is not one."""
    from toolformer.tools.base import ToolInputError
    from toolformer.tools.calendar import as_date

    if value is None or isinstance(value, (bool, int, float)):
        return None
    try:
        return as_date(value)
    except ToolInputError:
        pass
    if not isinstance(value, str):
        return None
    for fmt in _TEXT_FORMATS:
        try:
            return _dt.datetime.strptime(value.strip(), fmt).date()
        except ValueError:
            continue
    return None


def date_from_url(url: Any) -> Optional[_dt.date]:
    """The date in a URL path such as ``.../2023/01/30/...`` or ``.../2023-01-30-title``."""
    if not isinstance(url, str):
        return None
    for m in _URL_DATE.finditer(url):
        try:
            return _dt.date(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        except ValueError:
            continue
    return None


# --------------------------------------------------------------------------- text checks


def _junk_reason(text: Any) -> Optional[str]:
    """Why a text is not usable (missing, not text, empty, binary), or None when it is."""
    if text is None:
        return "missing_text"
    if not isinstance(text, str):
        return "not_text"
    if not text.strip():
        return "empty"
    if "\x00" in text:
        return "binary"
    sample = text[:4096]
    bad = sum(1 for ch in sample if ch == "\ufffd" or (ord(ch) < 32 and ch not in "\n\r\t\f\v"))
    if bad > max(2, 0.05 * len(sample)):
        return "binary"
    return None


def document_id(index: int, text: str) -> str:
    """A stable id from the document's position and a hash of its text."""
    return f"{index:08d}-{hashlib.sha1(text.encode('utf-8', 'replace')).hexdigest()[:10]}"


# --------------------------------------------------------------------------- record readers


def _source_kind(path: Path) -> Optional[str]:
    name = path.name.lower()
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return SUFFIXES[suffix]
    return None


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace", newline="")


def _read_jsonl(path: Path, stats: InputStats) -> Iterator[Tuple[str, Any]]:
    """Every non-blank line parsed; malformed lines are counted and reported, not fatal."""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                stats.skipped["malformed_json"] += 1
                if len(stats.malformed_lines) < _WARN_LINES:
                    stats.malformed_lines.append(lineno)
                    logger.warning("%s: line %d is not valid JSON (%s); skipped", path, lineno, exc.msg)
                continue
            yield f"line {lineno}", value


def _read_json(path: Path, stats: InputStats) -> Iterator[Tuple[str, Any]]:
    """A JSON array of records, an object holding one list of records, or JSON lines."""
    try:
        with _open_text(path) as fh:
            whole = json.load(fh)
    except json.JSONDecodeError as exc:
        with _open_text(path) as fh:
            is_array = fh.read(1 << 16).lstrip().startswith("[")
        if is_array:
            raise UserError(f"{path} is not valid JSON (line {exc.lineno}: {exc.msg}); fix it or use JSON lines") from None
        yield from _read_jsonl(path, stats)  # JSON lines under a .json name
        return
    where, records = "record", whole if isinstance(whole, list) else [whole]
    if isinstance(whole, dict):
        lists = [k for k, v in whole.items() if isinstance(v, list)]
        if len(lists) == 1:
            where, records = lists[0], whole[lists[0]]
    for i, rec in enumerate(records):
        yield f"{where}[{i}]", rec


def _read_csv(path: Path, stats: InputStats, delimiter: str = ",") -> Iterator[Tuple[str, Any]]:
    try:
        csv.field_size_limit(sys.maxsize)
    except OverflowError:  # C long is 32 bits on some platforms
        csv.field_size_limit(2**31 - 1)
    with _open_text(path) as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        try:
            for i, row in enumerate(reader):
                yield f"row {i + 2}", row
        except csv.Error as exc:
            raise UserError(f"{path}: CSV error near line {reader.line_num}: {exc}") from None


def _read_tsv(path: Path, stats: InputStats) -> Iterator[Tuple[str, Any]]:
    return _read_csv(path, stats, delimiter="\t")


def _read_parquet(path: Path, stats: InputStats) -> Iterator[Tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for a bad file
        raise UserError(f"{path} is not a readable parquet file: {exc}") from None
    i = 0
    for batch in pf.iter_batches(batch_size=1024):
        for rec in batch.to_pylist():
            yield f"row {i}", rec
            i += 1


def _read_txt(path: Path, stats: InputStats) -> Iterator[Tuple[str, Any]]:
    """Plain text: one document per block of lines separated by a blank line."""
    block: List[str] = []
    start = 1
    with _open_text(path) as fh:
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


_READERS: Dict[str, Callable[[Path, InputStats], Iterator[Tuple[str, Any]]]] = {
    "jsonl": _read_jsonl, "json": _read_json, "csv": _read_csv, "tsv": _read_tsv,
    "parquet": _read_parquet, "txt": _read_txt,
}


def _hf_rows(ds: Any) -> Iterator[Tuple[str, Any]]:
    for i, rec in enumerate(ds):
        yield f"row {i}", rec


def _pick_split(dd: Mapping[str, Any], split: str, where: str) -> Any:
    if split in dd:
        return dd[split]
    raise UserError(f"{where} has no split {split!r}; its splits: {', '.join(dd)}; pass --split")


def _read_saved_dataset(path: Path, split: str) -> Iterator[Tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_from_disk(str(path))
    except Exception as exc:  # noqa: BLE001
        raise UserError(f"{path} could not be loaded as a saved HF dataset: {exc}") from None
    if isinstance(ds, datasets.DatasetDict):
        ds = _pick_split(ds, split, str(path))
    return _hf_rows(ds)


def _read_hub_dataset(name: str, split: str) -> Iterator[Tuple[str, Any]]:
    import datasets

    try:
        ds = datasets.load_dataset(name, split=split, streaming=True)
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise UserError(f"HF dataset {name!r}: {exc}; pass --split") from None
        raise UserError(f"could not load HF dataset {name!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - offline, unknown id, gated, ...
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(
            f"could not load HF dataset {name!r} ({first}); if you are offline, download it "
            "elsewhere and pass the saved folder (save_to_disk) or a JSONL/parquet file"
        ) from None
    return _hf_rows(ds)


def _looks_like_hub_id(source: str) -> bool:
    if source.startswith((".", "/", "~")) or "\\" in source or source.count("/") > 1:
        return False
    return _source_kind(Path(source)) is None and re.fullmatch(r"[\w.-]+(/[\w.-]+)?", source) is not None


def _is_saved_dataset(path: Path) -> bool:
    return any((path / name).exists() for name in ("dataset_info.json", "state.json", "dataset_dict.json"))


def iter_records(source: str, split: str = "train", stats: Optional[InputStats] = None) -> Iterator[Tuple[str, Any]]:
    """``(where, record)`` pairs of a file, saved dataset folder or HF dataset id."""
    stats = stats if stats is not None else InputStats()
    path = Path(os.path.expanduser(source))
    if path.is_dir():
        if not _is_saved_dataset(path):
            raise UserError(
                f"folder {source} is not a saved HF dataset (no dataset_info.json or dataset_dict.json); "
                "pass a JSONL, CSV or parquet file, or a folder written by save_to_disk"
            )
        return _read_saved_dataset(path, split)
    if path.is_file():
        kind = _source_kind(path)
        if kind is None:
            raise UserError(
                f"unknown input format {path.suffix or path.name!r} for {source}; use one of "
                f"{', '.join(sorted(SUFFIXES))}, a saved HF dataset folder or an HF dataset id"
            )
        return _READERS[kind](path, stats)
    if _looks_like_hub_id(source):
        return _read_hub_dataset(source, split)
    raise UserError(f"input {source} does not exist; pass an existing file or folder, or an HF dataset id")


# --------------------------------------------------------------------------- documents


def _field_error(source: str, what: str, name: str, rec: Any, option: str) -> UserError:
    have = ", ".join(map(str, rec)) if isinstance(rec, Mapping) else type(rec).__name__
    return UserError(f"{source}: no {what} field {name!r} in the first record (fields: {have}); pass {option}")


def documents_from_records(
    records: Iterable[Tuple[str, Any]],
    *,
    source: str,
    text_field: str = "text",
    date_field: Optional[str] = "date",
    url_field: Optional[str] = "url",
    id_field: Optional[str] = None,
    stats: Optional[InputStats] = None,
    limit: Optional[int] = None,
) -> Iterator[Document]:
    """Turn raw records into documents: checks fields, skips junk, reads dates, assigns ids."""
    stats = stats if stats is not None else InputStats()
    seen_ids: set = set()
    first = True
    for where, rec in records:
        if limit and stats.documents >= limit:
            return
        if not isinstance(rec, Mapping):
            stats.skipped["not_a_record"] += 1
            continue
        if first:
            first = False
            if text_field not in rec:
                raise _field_error(source, "text", text_field, rec, "--text-field")
            if id_field and id_field not in rec:
                raise _field_error(source, "id", id_field, rec, "--id-field or leave it out")
        text = rec.get(text_field)
        reason = _junk_reason(text)
        if reason is not None:
            stats.skipped[reason] += 1
            continue
        index = stats.documents
        if id_field:
            raw = rec.get(id_field)
            if raw is None or str(raw) == "":
                stats.skipped["missing_id"] += 1
                continue
            doc_id = str(raw)
            if doc_id in seen_ids:
                stats.notes["duplicate_id"] += 1
                if stats.notes["duplicate_id"] <= _WARN_LINES:
                    logger.warning("%s: %s repeats document id %r", source, where, doc_id)
            seen_ids.add(doc_id)
        else:
            doc_id = document_id(index, text)
        date = None
        if date_field and rec.get(date_field) not in (None, ""):
            date = parse_date(rec.get(date_field))
            if date is None:
                stats.notes["bad_date"] += 1
        if date is None and url_field:
            date = date_from_url(rec.get(url_field))
        if date is None:
            stats.notes["no_date"] += 1
        meta = {k: v for k, v in rec.items() if k != text_field and _jsonable_scalar(v)}
        stats.documents += 1
        yield Document(id=doc_id, text=text, date=date, meta=meta)


def _jsonable_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


# --------------------------------------------------------------------------- default corpus


def _is_prose(text: str) -> bool:
    if len(text.split()) < PARAGRAPH_MIN_WORDS or text[-1] not in ".!?\"')\u201d":
        return False
    letters = sum(ch.isalpha() for ch in text)
    return letters >= 0.7 * sum(not ch.isspace() for ch in text)


def split_paragraphs(text: str, max_words: int = PARAGRAPH_MAX_WORDS) -> List[str]:
    """Prose paragraphs (blank-line separated) of an article, long ones cut at sentence ends.

    Paragraphs under ``PARAGRAPH_MIN_WORDS`` words or made mostly of digits and symbols are
    dropped. A paragraph longer than ``max_words`` becomes pieces of whole sentences, each at most
    ``max_words`` words (unless one sentence alone is longer); a short last piece joins the one
    before it when that stays within 1.25 x ``max_words``.
    """
    from toolformer.tools.corpus import split_sentences

    out: List[str] = []
    for block in re.split(r"\n\s*\n", text):
        para = " ".join(block.split())
        if not para or not _is_prose(para):
            continue
        if len(para.split()) <= max_words:
            out.append(para)
            continue
        pieces: List[str] = []
        piece: List[str] = []
        count = 0
        for sentence in split_sentences(para):
            n = len(sentence.split())
            if piece and count + n > max_words:
                pieces.append(" ".join(piece))
                piece, count = [], 0
            piece.append(sentence)
            count += n
        tail = " ".join(piece)
        if pieces and count < PARAGRAPH_MIN_WORDS and len(pieces[-1].split()) + count <= max_words * 1.25:
            pieces[-1] = f"{pieces[-1]} {tail}"
        elif tail:
            pieces.append(tail)
        out.extend(p for p in pieces if _is_prose(p))
    return out


def default_corpus_records(
    per_article: int = PARAGRAPHS_PER_ARTICLE, max_words: int = PARAGRAPH_MAX_WORDS
) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Paragraph records (id, title, text, date) of gensim's Wikipedia sample, in dump order."""
    from toolformer.tools.corpus import iter_wikipedia_articles

    for article in iter_wikipedia_articles():
        title = str(article.get("title", "")).strip()
        paragraphs = split_paragraphs(str(article.get("text", "")), max_words)[:per_article]
        for k, para in enumerate(paragraphs):
            yield f"{title} #{k}", {
                "id": f"wiki:{title.replace(' ', '_')}#{k}",
                "title": title,
                "paragraph": k,
                "text": para,
                "date": DEFAULT_CORPUS_DATE.isoformat(),
            }


# --------------------------------------------------------------------------- entry point


def load_documents(
    source: Optional[str] = None,
    *,
    split: str = "train",
    text_field: str = "text",
    date_field: Optional[str] = "date",
    url_field: Optional[str] = "url",
    id_field: Optional[str] = None,
    limit: Optional[int] = None,
    stats: Optional[InputStats] = None,
) -> Iterator[Document]:
    """Documents of ``source`` (None: the default Wikipedia corpus), at most ``limit`` of them.

    Records are read lazily. A missing file, unknown format or unreachable dataset raises
    :class:`UserError` at once; a missing text field when the first record is read.
    """
    stats = stats if stats is not None else InputStats()
    if source is None:
        records = default_corpus_records()
        return documents_from_records(
            records, source=DEFAULT_CORPUS_NAME, text_field="text", date_field="date",
            url_field=None, id_field="id", stats=stats, limit=limit,
        )
    records = iter_records(source, split=split, stats=stats)
    return documents_from_records(
        records, source=source, text_field=text_field, date_field=date_field,
        url_field=url_field, id_field=id_field, stats=stats, limit=limit,
    )
