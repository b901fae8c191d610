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
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence

from toolformer.errors import UserError
from toolformer.records import RecordStats, source_kind
from toolformer.records import iter_records as read_records

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


def _iter_pages(path: Path) -> Iterator[Dict[str, str]]:
    """(title, id, ns, wikitext) of each page of a MediaWiki XML dump (.bz2 or plain)."""
    opener = bz2.open if path.suffix == ".bz2" else open
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


def _drop_balanced(text: str, opener: str, closer: str, starts: Sequence[str]) -> str:
    """Remove every ``opener...closer`` block (nesting respected) whose head is in ``starts``."""
    marks = re.compile(re.escape(opener) + "|" + re.escape(closer))
    out: List[str] = []
    pos = 0  # text[pos:] is not yet copied
    depth = 0
    drop_from = -1
    for m in marks.finditer(text):
        if depth == 0:
            if m.group() != opener:
                continue
            head = text[m.end() : m.end() + 12].lstrip().lower()
            if any(head.startswith(s) for s in starts):
                drop_from, depth = m.start(), 1
        elif m.group() == opener:
            depth += 1
        else:
            depth -= 1
            if depth == 0:
                out.append(text[pos:drop_from])
                pos = m.end()
    if depth:  # unclosed block: drop to the end
        out.append(text[pos:drop_from])
        pos = len(text)
    out.append(text[pos:])
    return "".join(out)


_UNIT_SEPS = {
    "-": "\u2013",
    "\u2013": "\u2013",
    "to": "to",
    "and": "and",
    "or": "or",
    "by": "by",
    "x": "\u00d7",
    "\u00d7": "\u00d7",
    "+/-": "\u00b1",
}
_CONVERT = re.compile(r"\{\{\s*(?:convert|cvt)\s*\|([^{}]*)\}\}", re.IGNORECASE)
_KEEP_LAST = re.compile(
    r"\{\{\s*(?:lang(?:-[a-z]+)?|nowrap|nobr|nowr)\s*\|([^{}]*)\}\}", re.IGNORECASE
)
_NUMBER = re.compile(r"^[\d.,]+$")


def _render_convert(m: "re.Match[str]") -> str:
    """``{{convert|135765|km2|...}}`` -> "135765 km2" (gensim would drop the whole template)."""
    params = [p.strip() for p in m.group(1).split("|") if "=" not in p]
    if len(params) < 2 or not _NUMBER.match(params[0]):
        return ""
    if params[1] in _UNIT_SEPS and len(params) >= 4:
        return f"{params[0]} {_UNIT_SEPS[params[1]]} {params[2]} {params[3]}".replace(
            " \u2013 ", "\u2013"
        )
    if len(params) >= 4 and _NUMBER.match(params[2]):  # 6|ft|4|in
        return f"{params[0]} {params[1]} {params[2]} {params[3]}"
    return f"{params[0]} {params[1]}"


def _render_keep_last(m: "re.Match[str]") -> str:
    params = [p for p in m.group(1).split("|") if "=" not in p]
    return params[-1].strip() if params else ""


_END_SECTIONS = re.compile(
    r"^==+\s*(see also|references|notes|external links|further reading|bibliography|sources|"
    r"citations|footnotes|works cited|notes and references|references and notes)\s*==+\s*$",
    re.IGNORECASE | re.MULTILINE,
)
_HEADING = re.compile(r"^=+.*=+\s*$")
_PROSE_END = re.compile(r"[.!?][\"'\u201d\u2019)]*$")
_EMPTY_PARENS = re.compile(r"\(\s*(?:[,;:\u2013-]\s*)*\)")
_PAREN_LEAD = re.compile(r"\(\s*(?:[,;:]\s*)+")
_PAREN_TAIL = re.compile(r"(?:\s*[,;:])+\s*\)")
_SPACE_PUNCT = re.compile(r"\s+([,.;:!?])")
_MULTI_SPACE = re.compile(r"[ \t\u00a0\u200a\u2009]+")
_BOLD_ITALIC = re.compile(r"'{2,}")
_LEFTOVER = re.compile(r"\b(?:thumb|thumbnail|upright|left|right|center)\|", re.IGNORECASE)
_MIN_LINE_WORDS = 6


def clean_wikitext(wikitext: str) -> str:
    """Wiki markup -> plain prose paragraphs separated by blank lines.

    gensim's ``filter_wiki`` strips templates, references, links and tags; before it we drop
    file/image links with their captions, tables and galleries, and after it everything that is
    not running prose: headings, lists, captions and leftovers (a kept line ends like a sentence).
    """
    from gensim.corpora.wikicorpus import filter_wiki

    text = wikitext
    end = _END_SECTIONS.search(text)
    if end:
        text = text[: end.start()]
    text = _CONVERT.sub(_render_convert, text)
    text = _KEEP_LAST.sub(_render_keep_last, text)
    text = _drop_balanced(text, "[[", "]]", ("file:", "image:", "category:", "media:"))
    text = _drop_balanced(text, "{|", "|}", ("",))
    text = re.sub(r"<gallery.*?</gallery>", "", text, flags=re.DOTALL | re.IGNORECASE)
    text = filter_wiki(text)
    paragraphs: List[str] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "*#:;|!{}=" or _HEADING.match(line):
            continue
        line = _BOLD_ITALIC.sub("", line)
        line = _LEFTOVER.sub("", line)
        line = _EMPTY_PARENS.sub("", line)
        line = _PAREN_LEAD.sub("(", line)
        line = _PAREN_TAIL.sub(")", line)
        line = _MULTI_SPACE.sub(" ", line)
        line = _SPACE_PUNCT.sub(r"\1", line).strip()
        if len(line.split()) < _MIN_LINE_WORDS or not _PROSE_END.search(line):
            continue  # captions, list intros, template debris
        paragraphs.append(line)
    return "\n\n".join(paragraphs)


def _clean_articles(path: Path, min_words: int) -> Iterator[Dict[str, str]]:
    for page in _iter_pages(path):
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
    from toolformer.models import cache_dir

    st = path.stat()
    key = hashlib.sha256(
        f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{min_words}|{CLEANER_VERSION}".encode()
    ).hexdigest()[:16]
    cached = cache_dir() / "corpora" / f"{path.name.split('.')[0]}-{key}.jsonl"
    if not cached.exists():
        articles = list(_clean_articles(path, min_words))
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as fh:
            for article in articles:
                fh.write(json.dumps(article, ensure_ascii=False) + "\n")
        os.replace(tmp, cached)  # atomic: readers never see half a file
        yield from articles
        return
    with open(cached, encoding="utf-8") as fh:
        for line in fh:
            yield json.loads(line)


# --------------------------------------------------------------------------- splitting

_SENT_END = re.compile(r"(?<=[.!?])[\"'\u201d\u2019)]*\s+(?=[\"'\u201c(]?[A-Z0-9])")
_ABBREV = {
    "mr",
    "mrs",
    "ms",
    "dr",
    "prof",
    "sr",
    "jr",
    "st",
    "mt",
    "ft",
    "vs",
    "etc",
    "no",
    "vol",
    "c",
    "ca",
    "e.g",
    "i.e",
    "approx",
    "inc",
    "ltd",
    "co",
    "gen",
    "col",
    "lt",
    "sgt",
    "rev",
    "jan",
    "feb",
    "mar",
    "apr",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "fig",
    "u.s",
    "u.k",
    "d.c",
    "op",
    "ed",
    "eds",
    "al",
}


def split_sentences(text: str) -> List[str]:
    """Split prose at sentence ends, not after common abbreviations or initials ("S. N. Bose")."""
    pieces: List[str] = []
    start = 0
    for m in _SENT_END.finditer(text):
        before = text[start : m.start()].rstrip("\"'\u201d\u2019)")
        last = before.rsplit(None, 1)[-1] if before.split() else ""
        word = last.rstrip(".!?").lower()
        if last.endswith(".") and (word in _ABBREV or (len(word) == 1 and word.isalpha())):
            continue
        pieces.append(text[start : m.start() + len(m.group(0))].strip())
        start = m.end()
    tail = text[start:].strip()
    if tail:
        pieces.append(tail)
    return [p for p in pieces if p]


def split_passages(text: str, words: int = 100) -> List[str]:
    """Cut ``text`` into windows of about ``words`` words that end at sentence ends.

    A window does not cross a paragraph break once it is half full; a sentence longer than
    twice the target is cut at word boundaries.
    """
    out: List[str] = []
    current: List[str] = []
    count = 0

    def flush() -> None:
        nonlocal current, count
        if current:
            out.append(" ".join(current))
        current, count = [], 0

    for paragraph in re.split(r"\n\s*\n", text):
        if count >= words // 2:
            flush()
        for sentence in split_sentences(" ".join(paragraph.split())):
            n = len(sentence.split())
            if n > 2 * words:
                flush()
                tokens = sentence.split()
                for i in range(0, len(tokens), words):
                    out.append(" ".join(tokens[i : i + words]))
                continue
            if count and count + n > words:
                flush()
            current.append(sentence)
            count += n
    flush()
    return out


# --------------------------------------------------------------------------- user corpora


def iter_records(config: CorpusConfig, stats: Optional[RecordStats] = None) -> Iterator[Dict[str, Any]]:
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
