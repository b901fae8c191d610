"""The passages of a corpus, read once from the source and then from a parquet cache."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from toolformer.atomic import atomic_write
from toolformer.retrieval.corpus import (
    CorpusConfig,
    Passage,
    corpus_fingerprint,
    corpus_name,
    load_passages,
)

PASSAGE_COLUMNS = ("id", "title", "text")


class PassageStore:
    """A corpus's passages and its cache folder ``root/<corpus>-<fingerprint>/`` (where the
    indexes of those passages are kept too).

    No pickle: a cache folder may be shared, and unpickling a planted file runs its code. A cache
    file that is not a readable parquet table of (id, title, text) strings is rebuilt from the
    source.
    """

    FILE = "passages.parquet"

    def __init__(self, passages: List[Passage], folder: Path):
        self.passages = passages
        self.folder = folder

    @classmethod
    def open(cls, corpus: CorpusConfig, root: Path) -> "PassageStore":
        """The passages of ``corpus``: from the cache under ``root`` when it holds them, else
        read from the source (:func:`~toolformer.retrieval.corpus.load_passages`) and cached."""
        folder = root / f"{corpus_name(corpus)}-{corpus_fingerprint(corpus)}"
        path = folder / cls.FILE
        if path.exists():
            columns = read_passage_table(path)
            if columns is not None:
                return cls([Passage(*row) for row in zip(*columns)], folder)
        passages = load_passages(config=corpus)
        folder.mkdir(parents=True, exist_ok=True)
        write_passage_table(path, passages)
        return cls(passages, folder)

    def __len__(self) -> int:
        return len(self.passages)


def write_passage_table(path: Path, passages: Sequence[Passage]) -> None:
    """Write ``passages`` as a parquet table of (id, title, text) strings, atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table(
        {
            name: pa.array([getattr(p, name) for p in passages], pa.string())
            for name in PASSAGE_COLUMNS
        }
    )
    atomic_write(path, lambda tmp: pq.write_table(table, tmp))


def read_passage_table(path: Path) -> Optional[Tuple[List[str], List[str], List[str]]]:
    """(ids, titles, texts) of a cached table, or None when the file is not one (then rebuilt)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException):
        return None
    if table.column_names != list(PASSAGE_COLUMNS) or any(
        not pa.types.is_string(t) for t in table.schema.types
    ):
        return None
    ids, titles, texts = (table.column(c).to_pylist() for c in PASSAGE_COLUMNS)
    return ids, titles, texts
