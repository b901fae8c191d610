"""Passage corpora for retrieval: gensim's English Wikipedia sample, or a user's own file/dataset.

The DEFAULT corpus is the real Wikipedia dump excerpt that gensim ships as test data (about a
hundred articles, A...). Its wiki markup is turned into readable prose (no templates, references,
tables, lists, captions, categories or trailing reference sections) so that the articles can also
serve as annotation documents (:func:`iter_wikipedia_articles`), then cut into ~100-word passages
at sentence ends (:func:`load_passages`).

Any other corpus is a JSONL / JSON / CSV / TSV / parquet file, a ``save_to_disk`` dataset folder or
a Hugging Face dataset id, with a text field (default ``text``) and optional title and id fields.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import os
import re
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

from toolformer.atomic import atomic_write_jsonl
from toolformer.errors import UserError
from toolformer.records import RecordStats, source_kind
from toolformer.records import iter_records as read_records
from toolformer.text.split import split_passages
from toolformer.text.wikitext import clean_wikitext

GENSIM_WIKI_GLOB = "enwiki-latest-pages-articles*-shortened.bz2"
CLEANER_VERSION = 1  # bump when cleaning or splitting changes: it is part of every index key


@dataclass(frozen=True)
class Passage:
    """One retrievable unit of text, with the title of the article it comes from."""

    id: str
    title: str
    text: str

    def to_dict(self) -> Dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class CorpusConfig:
    """Where passages come from and how long records are cut."""

    source: Optional[str] = field(
        default=None,
        metadata={
            "help": "a .jsonl/.json/.csv/.tsv/.parquet file, a saved HF dataset folder or an "
            "HF dataset id; None: the Wikipedia sample in gensim's package data"
        },
    )
    text_field: str = field(default="text", metadata={"help": "record field holding the text"})
    title_field: Optional[str] = field(
        default="title", metadata={"help": "record field holding the title (used if present)"}
    )
    id_field: Optional[str] = field(
        default="id", metadata={"help": "record field holding the id (else the row number)"}
    )
    split: str = field(default="train", metadata={"help": "split of an HF dataset / DatasetDict"})
    passage_words: int = field(
        default=100, metadata={"help": "target passage length in words when texts are cut"}
    )
    max_words: int = field(
        default=200,
        metadata={
            "help": "records longer than this are cut into ~passage_words windows at "
            "sentence ends (articles of the default corpus are always cut)"
        },
    )
    limit: Optional[int] = field(
        default=None, metadata={"help": "keep only the first N records (quick experiments)"}
    )


# --------------------------------------------------------------------------- default corpus


def gensim_wiki_dump() -> Path:
    """The English Wikipedia dump excerpt inside gensim's installed test data."""
    import importlib.util

    spec = importlib.util.find_spec("gensim")
    if spec is None or not spec.submodule_search_locations:
        raise UserError("the default Wikipedia corpus comes with gensim: run `pip install gensim`")
    data = Path(list(spec.submodule_search_locations)[0]) / "test" / "test_data"
    found = sorted(data.glob(GENSIM_WIKI_GLOB))
    if not found:
        raise UserError(
            f"gensim's Wikipedia sample ({GENSIM_WIKI_GLOB}) is missing under {data}; "
            "reinstall gensim or pass a corpus file"
        )
    return found[0]


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def iter_pages(path: Path) -> Iterator[Dict[str, str]]:
    """(title, id, ns, wikitext) of each page of a MediaWiki XML dump (.bz2 or plain)."""
    opener = bz2.open if path.suffix == ".bz2" else open
    try:
        with opener(path, "rb") as fh:
            page: Dict[str, str] = {}
            for _event, elem in ET.iterparse(fh, events=("end",)):
                tag = _local(elem.tag)
                if tag in ("title", "ns") or (tag == "id" and "id" not in page):
                    page[tag] = elem.text or ""
                elif tag == "text":
                    page["text"] = elem.text or ""
                elif tag == "page":
                    yield page
                    page = {}
                    elem.clear()
    except (EOFError, OSError, ET.ParseError) as exc:  # a truncated or mislabelled dump
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise UserError(
            f"Wikipedia dump {path} could not be read to its end ({reason}); it is "
            "truncated or not a MediaWiki XML (.xml or .xml.bz2) dump: download "
            "it again (gensim's sample: reinstall gensim)"
        ) from None


def _clean_articles(path: Path, min_words: int) -> Iterator[Dict[str, str]]:
    for page in iter_pages(path):
        raw = page.get("text", "")
        if page.get("ns", "0") != "0" or raw.lstrip().lower().startswith("#redirect"):
            continue
        text = clean_wikitext(raw)
        if len(text.split()) < min_words:
            continue
        yield {"id": page.get("id", ""), "title": page.get("title", ""), "text": text}


def iter_wikipedia_articles(
    dump: Optional[os.PathLike] = None, min_words: int = 50, cache: bool = True
) -> Iterator[Dict[str, str]]:
    """Clean articles of a Wikipedia XML dump (default: gensim's sample) as dicts
    ``{"id", "title", "text"}``; ``text`` is prose paragraphs separated by blank lines.

    Redirects, non-article pages and stubs under ``min_words`` words are skipped. Cleaning the
    sample takes ~10 s, so the result is cached as JSONL under ``cache_dir()/corpora``.
    """
    path = Path(dump).expanduser() if dump is not None else gensim_wiki_dump()
    if not path.is_file():
        raise UserError(
            f"Wikipedia dump {str(path)!r} does not exist; pass a .xml or .xml.bz2 dump"
        )
    if not cache:
        yield from _clean_articles(path, min_words)
        return
    from toolformer.paths import cache_dir

    st = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{min_words}|{CLEANER_VERSION}".encode()
    ).hexdigest()[:16]
    cached = cache_dir() / "corpora" / f"{path.name.split('.')[0]}-{key}.jsonl"
    if not cached.exists():
        articles = list(_clean_articles(path, min_words))
        cached.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_jsonl(cached, articles)  # readers never see half a file
        yield from articles
        return
    with open(cached, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


# --------------------------------------------------------------------------- user corpora


def iter_records(
    config: CorpusConfig, stats: Optional[RecordStats] = None
) -> Iterator[Dict[str, Any]]:
    """Raw records of a user corpus (``config.source`` must be set), read by the shared reader
    (:func:`toolformer.records.iter_records`): a bad line or a record that is not an object is
    skipped, counted in ``stats`` and reported with its file and line."""
    stats = stats if stats is not None else RecordStats()
    source = str(config.source)
    path = Path(source).expanduser()
    if not path.exists() and (source.startswith((".", "/", "~")) or source_kind(path) is not None):
        raise UserError(
            f"corpus file {source!r} does not exist; pass a .jsonl/.csv/.parquet "
            "file, a saved dataset folder or an HF dataset id"
        )
    columns = [c for c in (config.text_field, config.title_field, config.id_field) if c]
    for where, record in read_records(source, split=config.split, stats=stats, columns=columns):
        if not isinstance(record, dict):
            stats.bad_line(source, where, "is not a JSON object", "not_a_record", "")
            continue
        yield record


def _passages_from_records(config: CorpusConfig) -> List[Passage]:
    passages: List[Passage] = []
    for row, record in enumerate(iter_records(config)):  # row: the passage id when there is none
        if config.limit is not None and row >= config.limit:
            break
        if config.text_field not in record:
            fields = ", ".join(map(str, record)) or "none"
            raise UserError(
                f"corpus {config.source!r} has no {config.text_field!r} field "
                f"(fields: {fields}); pass text_field=<name>"
            )
        text = record[config.text_field]
        if text is None:
            continue
        text = str(text).strip()
        if not text:
            continue
        title = record.get(config.title_field) if config.title_field else None
        title = "" if title is None else str(title)
        pid = record.get(config.id_field) if config.id_field else None
        pid = str(row) if pid is None or pid == "" else str(pid)
        if len(text.split()) > config.max_words:
            for j, chunk in enumerate(split_passages(text, config.passage_words)):
                passages.append(Passage(f"{pid}#{j}", title, chunk))
        else:
            passages.append(Passage(pid, title, text))
    if not passages:
        raise UserError(f"corpus {config.source!r} holds no non-empty {config.text_field!r} texts")
    return passages


def _default_passages(config: CorpusConfig) -> List[Passage]:
    passages: List[Passage] = []
    for n, article in enumerate(iter_wikipedia_articles()):
        if config.limit is not None and n >= config.limit:
            break
        for j, chunk in enumerate(split_passages(article["text"], config.passage_words)):
            passages.append(Passage(f"{article['id']}-{j}", article["title"], chunk))
    return passages


def load_passages(
    source: Optional[str] = None, config: Optional[CorpusConfig] = None, **options: Any
) -> List[Passage]:
    """All passages of a corpus: ``source`` (or ``config.source``) None means gensim's Wikipedia
    sample; ``options`` are :class:`CorpusConfig` fields (``text_field``, ``title_field``...)."""
    config = make_config(source, config, **options)
    if config.source is None:
        return _default_passages(config)
    return _passages_from_records(config)


def make_config(
    source: Optional[str] = None, config: Optional[CorpusConfig] = None, **options: Any
) -> CorpusConfig:
    """A :class:`CorpusConfig` from a source and field options (unknown names -> UserError)."""
    base = asdict(config) if config is not None else {}
    if source is not None:
        base["source"] = str(source)
    known = set(CorpusConfig.__dataclass_fields__)
    unknown = sorted(set(options) - known)
    if unknown:
        raise UserError(
            f"unknown corpus option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )
    base.update(options)
    if base.get("source") is not None:
        base["source"] = str(base["source"])
    return CorpusConfig(**base)


def corpus_fingerprint(config: CorpusConfig) -> str:
    """A short key that changes when the corpus files or the way they are read change.

    Local files count by path, size and modification time (no need to hash 30 MB); an HF dataset
    id counts by name and split.
    """
    h = hashlib.sha256()
    settings = asdict(config)
    settings["cleaner"] = CLEANER_VERSION
    h.update(json.dumps(settings, sort_keys=True, default=str).encode())
    if config.source is None:
        files = [gensim_wiki_dump()]
    else:
        path = Path(config.source).expanduser()
        files = (
            sorted(p for p in path.rglob("*") if p.is_file())
            if path.is_dir()
            else ([path] if path.exists() else [])
        )
    for p in files:
        st = p.stat()
        h.update(f"{p.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def corpus_name(config: CorpusConfig) -> str:
    """A readable label for cache folders and messages."""
    if config.source is None:
        return "gensim-enwiki"
    name = Path(str(config.source).rstrip("/")).name or "corpus"
    name = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
    return name[:40]
