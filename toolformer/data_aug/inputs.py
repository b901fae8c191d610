"""Documents to annotate: JSONL / JSON / CSV / TSV / parquet / text files, saved HF datasets,
HF dataset ids, or (by default) the Wikipedia sample that ships with gensim.

Every source yields :class:`~toolformer.data_aug.types.Document` in a fixed order with a stable
id, so that sharding (``index % num_shards``) and resumption see the same stream every time.
Files are read by the shared :func:`toolformer.records.iter_records`. Bad records (malformed JSON,
bytes that are not UTF-8, empty or binary text) are counted in :class:`InputStats` and skipped;
a bad source (missing file, unknown format, no such text field) raises :class:`UserError`.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import re
from typing import Any, Dict, Iterable, Iterator, Mapping, Optional, Tuple

from toolformer import records
from toolformer.data_aug.types import Document
from toolformer.errors import UserError
from toolformer.retrieval.corpus import iter_wikipedia_articles
from toolformer.text.split import PARAGRAPH_MAX_WORDS, split_paragraphs

logger = logging.getLogger("toolformer.augment")

# gensim's sample is a slice of the English Wikipedia dump of 1 May 2016 (its newest revision is
# 2016-05-01T07:08:29Z): its documents get that date so that the Calendar tool has one to use.
DEFAULT_CORPUS_DATE = _dt.date(2016, 5, 1)
DEFAULT_CORPUS_NAME = "gensim Wikipedia sample (enwiki, 2016-05-01)"
PARAGRAPHS_PER_ARTICLE = 3  # spread a small --limit over many articles (topics, numbers, dates)

_WARN_LINES = records.WARN_LINES  # repeated ids reported one by one; the rest only in the counts
InputStats = records.RecordStats  # what the loader read and why it skipped records


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


# --------------------------------------------------------------------------- records

# the reader is shared with corpora, fine-tuning data and eval loaders (toolformer.records)
iter_records = records.iter_records


# --------------------------------------------------------------------------- documents


def _field_error(
    source: str, what: str, name: str, rec: Any, field: str, alternative: str = ""
) -> UserError:
    have = ", ".join(map(str, rec)) if isinstance(rec, Mapping) else type(rec).__name__
    return UserError(
        f"{source}: no {what} field {name!r} in the first record (fields: {have}); "
        f"set {field}{alternative}",
        field=field,
    )


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
                raise _field_error(source, "text", text_field, rec, "AugmentConfig.text_field")
            if id_field and id_field not in rec:
                raise _field_error(
                    source, "id", id_field, rec, "AugmentConfig.id_field", " or leave it out"
                )
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


def default_corpus_records(
    per_article: int = PARAGRAPHS_PER_ARTICLE, max_words: int = PARAGRAPH_MAX_WORDS
) -> Iterator[Tuple[str, Dict[str, Any]]]:
    """Paragraph records (id, title, text, date) of gensim's Wikipedia sample, in dump order."""
    for article in iter_wikipedia_articles():
        title = str(article.get("title", "")).strip()
        paragraphs = split_paragraphs(str(article.get("text", "")), max_words)[:per_article]
        for k, para in enumerate(paragraphs):
            yield (
                f"{title} #{k}",
                {
                    "id": f"wiki:{title.replace(' ', '_')}#{k}",
                    "title": title,
                    "paragraph": k,
                    "text": para,
                    "date": DEFAULT_CORPUS_DATE.isoformat(),
                },
            )


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
    encoding_errors: str = "skip",
) -> Iterator[Document]:
    """Documents of ``source`` (None: the default Wikipedia corpus), at most ``limit`` of them.

    ``encoding_errors``: ``"skip"`` records with bytes that are not UTF-8 (warned, counted in
    ``stats.skipped["bad_encoding"]``) or ``"replace"`` those bytes with U+FFFD.

    Records are read lazily. A missing file, unknown format or unreachable dataset raises
    :class:`UserError` at once; a missing text field when the first record is read.
    """
    stats = stats if stats is not None else InputStats()
    if source is None:
        return documents_from_records(
            default_corpus_records(),
            source=DEFAULT_CORPUS_NAME,
            text_field="text",
            date_field="date",
            url_field=None,
            id_field="id",
            stats=stats,
            limit=limit,
        )
    rows = iter_records(source, split=split, stats=stats, encoding_errors=encoding_errors)
    return documents_from_records(
        rows,
        source=source,
        text_field=text_field,
        date_field=date_field,
        url_field=url_field,
        id_field=id_field,
        stats=stats,
        limit=limit,
    )
