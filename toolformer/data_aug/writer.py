"""Crash-safe output of an annotation run.

A shard folder holds numbered chunk files (one JSON record per annotated document), each written
to a temporary name and renamed into place, so that after ``kill -9`` at any moment a chunk is
either complete or absent. Resuming reads the chunks back to learn which documents are done.
The merged outputs (``data.jsonl``, ``dataset/``, ``stats.json``) are also written atomically.

Layout::

    OUTPUT/shards/shard-00000-of-00001/config.json   settings the chunks were made with
                                       progress.json work sessions, documents done so far
                                       chunks/chunk-000000.jsonl ...
                                       done.json     written when the shard's stream is exhausted
    OUTPUT/data.jsonl  OUTPUT/dataset/  OUTPUT/stats.json   (the merge)
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Set

from toolformer.atomic import (
    TMP_GLOB,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    replace_dir,
)
from toolformer.data_aug.types import AnnotationResult, Document
from toolformer.errors import UserError
from toolformer.syntax import APICall, format_call

try:  # advisory locks; absent on Windows, where concurrent runs are simply not detected
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

SHARDS_DIR = "shards"
CHUNK_RE = re.compile(r"^chunk-(\d{6,})\.jsonl$")
DATA_FILE = "data.jsonl"
DATASET_DIR = "dataset"
STATS_FILE = "stats.json"
MERGE_LOCK = ".merge.lock"


def read_json(path: Path) -> Optional[Any]:
    """The JSON in ``path``, or None when it does not exist."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except FileNotFoundError:
        return None


@contextlib.contextmanager
def file_lock(path: Path, blocking: bool = True) -> Iterator[bool]:
    """An exclusive advisory lock on ``path`` (released when the process dies); yields whether
    it was acquired (always True when ``blocking``)."""
    if fcntl is None:  # pragma: no cover
        yield True
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- records


def call_record(call: Any) -> Dict[str, Any]:
    """A kept call as a JSON object, with its inline text ``[Tool(args) -> result]``."""
    d = call.to_dict() if hasattr(call, "to_dict") else dict(call)
    d["call"] = format_call(APICall(d["tool"], d["args"], d.get("result")))
    return d


def result_record(index: int, doc: Document, result: AnnotationResult) -> Dict[str, Any]:
    """What a chunk stores for one annotated document."""
    calls = [call_record(c) for c in result.calls]
    rec: Dict[str, Any] = {
        "index": index,
        "id": doc.id,
        "date": doc.date.isoformat() if isinstance(doc.date, _dt.date) else None,
        "meta": doc.meta,
        "original": doc.text,
        "calls": calls,
        "stats": {k: v for k, v in dict(result.stats).items() if v},
        "seconds": {k: round(float(v), 6) for k, v in dict(result.seconds).items()},
        "error": result.error,
        "skipped": result.skipped,
    }
    if calls:  # the augmented text; without calls it is the original
        rec["text"] = result.text
    candidates = getattr(result, "candidates", None)
    if candidates:  # every scored call, kept or not (AnnotatorConfig.record_candidates)
        rec["candidates"] = [call_record(c) for c in candidates]
    return rec


def data_row(rec: Dict[str, Any]) -> Dict[str, Any]:
    """The row of ``data.jsonl`` for a document that kept at least one call."""
    return {
        "id": rec["id"],
        "text": rec.get("text", rec["original"]),
        "original": rec["original"],
        "date": rec.get("date"),
        "calls": rec["calls"],
        "meta": rec.get("meta") or {},
        **({"candidates": rec["candidates"]} if rec.get("candidates") else {}),
    }


# --------------------------------------------------------------------------- shard store


def shard_name(index: int, count: int) -> str:
    return f"shard-{index:05d}-of-{count:05d}"


_SHARD_RE = re.compile(r"^shard-(\d+)-of-(\d+)$")


def list_shard_dirs(output: Path) -> Dict[int, List[Path]]:
    """Shard folders under ``output/shards`` grouped by their shard count."""
    found: Dict[int, List[Path]] = {}
    root = Path(output) / SHARDS_DIR
    if not root.is_dir():
        return found
    for path in sorted(root.iterdir()):
        m = _SHARD_RE.match(path.name)
        if m and path.is_dir():
            found.setdefault(int(m.group(2)), []).append(path)
    return found


class WindowLog:
    """The finished windows of long documents that are not in a chunk yet (``windows.json``).

    The annotator saves a document's state after each of its windows; a run killed in the middle
    of a long document resumes after its last finished window instead of at its start. Entries
    are dropped once their document is in a chunk. ``on_progress(done, total)`` is told after
    every window (the progress bar shows it).
    """

    FILE = "windows.json"

    def __init__(self, folder: Path, on_progress: Any = None):
        self.path = Path(folder) / self.FILE
        self.entries: Dict[str, Any] = read_json(self.path) or {}
        self.on_progress = on_progress

    def load(self, key: str) -> Optional[Dict[str, Any]]:
        return self.entries.get(key)

    def save(self, key: str, state: Dict[str, Any]) -> None:
        self.entries[key] = state
        atomic_write_json(self.path, self.entries)

    def forget(self, keys: Iterable[str]) -> None:
        """Drop the entries of documents that are safely in a chunk now."""
        if any(self.entries.pop(k, None) is not None for k in list(keys)):
            atomic_write_json(self.path, self.entries)

    def progress(self, done: int, total: int) -> None:
        if self.on_progress is not None:
            self.on_progress(done, total)


class ShardStore:
    """The chunk files, progress record and done marker of one shard."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.chunks_dir = self.folder / "chunks"
        self._next_chunk = 0
        self._session: Optional[Dict[str, Any]] = None
        self._t0 = 0.0  # perf_counter at the start of the session's annotation time
        self._progress: Dict[str, Any] = {}
        self.done: Set[int] = set()  # indices of the documents already in chunks (after prepare)

    # -- setup ------------------------------------------------------------------------------
    def lock(self):
        """Held while a process annotates this shard; a second process is refused."""
        return file_lock(self.folder / ".lock", blocking=False)

    def prepare(self, fingerprint: Dict[str, Any], overwrite: bool = False) -> None:
        """Create the folder, or check that the existing one was made with the same settings."""
        if overwrite:
            self.remove_contents()
        self.chunks_dir.mkdir(parents=True, exist_ok=True)
        for tmp in self.chunks_dir.glob(TMP_GLOB):  # chunks a killed process never renamed
            tmp.unlink(missing_ok=True)
        saved = read_json(self.folder / "config.json")
        if saved is None:
            if any(self.chunk_files()):
                raise UserError(
                    f"{self.folder} has chunks but no config.json; set "
                    "AugmentConfig.overwrite=True to start again",
                    field="AugmentConfig.overwrite=True",
                )
            atomic_write_json(self.folder / "config.json", fingerprint)
        elif saved != fingerprint and not any(self.chunk_files()):
            # the earlier run produced nothing (it failed before its first chunk): replace it
            (self.folder / WindowLog.FILE).unlink(missing_ok=True)
            atomic_write_json(self.folder / "config.json", fingerprint)
        elif saved != fingerprint:
            changed = sorted(
                k for k in set(saved) | set(fingerprint) if saved.get(k) != fingerprint.get(k)
            )
            raise UserError(
                f"{self.folder.parent.parent} holds a run made with other "
                f"settings (changed: {', '.join(changed)}); rerun with "
                "the same options, set AugmentConfig.overwrite=True to "
                "start again, or choose another AugmentConfig.output",
                field=("AugmentConfig.overwrite=True", "AugmentConfig.output"),
            )
        files = self.chunk_files()
        self._next_chunk = (int(CHUNK_RE.match(files[-1].name).group(1)) + 1) if files else 0
        # the chunks are the truth; progress.json may be one chunk behind after a kill
        self.done = set()
        calls = 0
        for rec in self.iter_records():
            self.done.add(rec["index"])
            calls += len(rec["calls"])
        self._progress = read_json(self.folder / "progress.json") or {"sessions": []}
        self._progress.update(
            chunks=self._next_chunk, documents_done=len(self.done), calls_kept=calls
        )

    def remove_contents(self) -> None:
        """Delete this shard's files (keeps the lock file so a holder keeps its lock)."""
        if not self.folder.exists():
            return
        for path in self.folder.iterdir():
            if path.name == ".lock":
                continue
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink()

    # -- reading ----------------------------------------------------------------------------
    def chunk_files(self) -> List[Path]:
        if not self.chunks_dir.is_dir():
            return []
        files = [p for p in self.chunks_dir.iterdir() if CHUNK_RE.match(p.name)]
        return sorted(files, key=lambda p: int(CHUNK_RE.match(p.name).group(1)))

    def iter_records(self) -> Iterator[Dict[str, Any]]:
        """Every stored record, in the order the documents were annotated (index order)."""
        for path in self.chunk_files():
            with open(path, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield json.loads(line)

    def done_marker(self) -> Optional[Dict[str, Any]]:
        return read_json(self.folder / "done.json")

    # -- writing ----------------------------------------------------------------------------
    def start_session(self, **info: Any) -> None:
        """Record a new work session (its time and documents feed docs/s in stats.json)."""
        self._session = {
            "started": _dt.datetime.now().isoformat(timespec="seconds"),
            "seconds": 0.0,
            "documents": 0,
            **info,
        }
        self._progress.setdefault("sessions", []).append(self._session)
        self._t0 = time.perf_counter()
        (self.folder / "done.json").unlink(missing_ok=True)

    def exclude_time(self, name: str, seconds: float) -> None:
        """Book ``seconds`` (e.g. model loading) under ``name`` instead of annotation time."""
        if self._session is not None:
            self._session[name] = round(self._session.get(name, 0.0) + seconds, 3)
            self._t0 += seconds

    def write_chunk(self, records: List[Dict[str, Any]]) -> Path:
        """Write one chunk atomically, then the progress record."""
        final = self.chunks_dir / f"chunk-{self._next_chunk:06d}.jsonl"
        atomic_write_text(
            final, "".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in records)
        )
        self._next_chunk += 1
        if self._session is not None:
            self._session["documents"] += len(records)
            self._session["seconds"] = round(time.perf_counter() - self._t0, 3)
        p = self._progress
        p["chunks"] = self._next_chunk
        p["documents_done"] = p.get("documents_done", 0) + len(records)
        p["calls_kept"] = p.get("calls_kept", 0) + sum(len(r["calls"]) for r in records)
        p["updated"] = _dt.datetime.now().isoformat(timespec="seconds")
        atomic_write_json(self.folder / "progress.json", p)
        return final

    def finish_session(self) -> None:
        if self._session is not None:
            self._session["seconds"] = round(time.perf_counter() - self._t0, 3)
            atomic_write_json(self.folder / "progress.json", self._progress)

    def sessions(self) -> List[Dict[str, Any]]:
        return list((read_json(self.folder / "progress.json") or {}).get("sessions", []))

    def mark_done(self, info: Dict[str, Any]) -> None:
        atomic_write_json(self.folder / "done.json", info)


# --------------------------------------------------------------------------- merged outputs


def _dataset_features():
    from datasets import Features, Value
    from datasets import List as HFList

    call = {
        "tool": Value("string"),
        "args": Value("string"),
        "result": Value("string"),
        "call": Value("string"),
        "offset": Value("int64"),
        "position": Value("int64"),
        "loss_plus": Value("float64"),
        "loss_minus": Value("float64"),
        "loss_empty": Value("float64"),
        "loss_no_result": Value("float64"),
        "score": Value("float64"),
    }
    return Features(
        {
            "id": Value("string"),
            "text": Value("string"),
            "original": Value("string"),
            "date": Value("string"),
            "num_calls": Value("int64"),
            "calls": HFList(call),
        }
    ), set(call)


def _dataset_rows(path: str, call_keys: Set[str]) -> Iterator[Dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            calls = [{k: c.get(k) for k in call_keys} for c in row["calls"]]
            yield {
                "id": row["id"],
                "text": row["text"],
                "original": row["original"],
                "date": row.get("date"),
                "num_calls": len(calls),
                "calls": calls,
            }


def write_data(output: Path, rows: Iterable[Dict[str, Any]]) -> int:
    """Write ``data.jsonl`` and the HF dataset ``dataset/`` (save_to_disk) from data rows; the
    dataset is made from the new ``data.jsonl`` before that file is renamed into place."""
    output = Path(output)
    n = 0

    def write(tmp: Path) -> None:
        nonlocal n
        with open(tmp, "w", encoding="utf-8") as fh:
            for row in rows:
                fh.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                n += 1
            fh.flush()
            os.fsync(fh.fileno())
        _write_dataset(output, tmp, n)

    atomic_write(output / DATA_FILE, write)
    return n


def _write_dataset(output: Path, data_file: Path, n: int) -> None:
    """``output/dataset`` (replaced whole) from the ``n`` rows of the JSONL ``data_file``."""
    from datasets import Dataset
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()
    features, call_keys = _dataset_features()
    cache = output / f".dataset-cache-{os.getpid()}"
    ds_tmp = output / f".{DATASET_DIR}.tmp-{os.getpid()}"
    try:
        if n:
            ds = Dataset.from_generator(
                _dataset_rows,
                features=features,
                cache_dir=str(cache),
                gen_kwargs={"path": str(data_file), "call_keys": call_keys},
            )
        else:
            ds = Dataset.from_dict({name: [] for name in features}, features=features)
        ds.save_to_disk(str(ds_tmp), num_shards=None if n else 1)  # 0 shards would not load back
        del ds
        replace_dir(ds_tmp, output / DATASET_DIR)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
        shutil.rmtree(ds_tmp, ignore_errors=True)
