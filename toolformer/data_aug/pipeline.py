"""The annotation runner: documents -> annotator -> chunks -> merged dataset.

``augment(config)`` loads the model, the tools and the
:class:`~toolformer.data_aug.annotator.Annotator`, takes this process's shard of the document
stream (``index % num_shards == shard_index``; under ``torchrun``/``accelerate launch`` the rank's
shard), annotates it in batches and writes it in atomic chunks. Re-running the same command after
a crash (even ``kill -9``) resumes where the last complete chunk ended, so no document is lost or
written twice. When every shard is done, the shards are merged into ``data.jsonl``, ``dataset/``
(``save_to_disk``) and ``stats.json``.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import heapq
import importlib
import importlib.util
import itertools
import logging
import os
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from toolformer.atomic import atomic_write_json
from toolformer.data_aug.config import AugmentConfig
from toolformer.data_aug.inputs import InputStats, load_documents
from toolformer.data_aug.summary import AugmentSummary, RunStats, format_merged, wall_seconds  # noqa: F401
from toolformer.data_aug.types import AnnotationResult, Document, window_key
from toolformer.data_aug.writer import (
    DATA_FILE,
    DATASET_DIR,
    MERGE_LOCK,
    SHARDS_DIR,
    STATS_FILE,
    ShardStore,
    WindowLog,
    data_row,
    file_lock,
    list_shard_dirs,
    read_json,
    result_record,
    shard_name,
    write_data,
)
from toolformer.errors import EmptyInputError, UserError, ensure_dir
from toolformer.output_lock import check_not_input
from toolformer.tools.assembly import create_tools, setup_tools

logger = logging.getLogger("toolformer.augment")


# --------------------------------------------------------------------------- annotator


def load_object(spec: str) -> Any:
    """Import ``"package.module:attr"`` or ``"path/to/file.py:attr"``."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"expected 'module:attr' or 'file.py:attr', got {spec!r}")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise UserError(f"annotator factory file {module_name} does not exist")
            mod_spec = importlib.util.spec_from_file_location(
                f"_toolformer_factory_{path.stem}", path
            )
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)  # type: ignore[union-attr]
        else:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"cannot import {module_name!r} for {spec!r}: {exc}") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise UserError(f"{module_name!r} has no attribute {attr!r}") from None


def _default_device() -> Optional[str]:
    import torch

    if torch.cuda.is_available():
        return f"cuda:{int(os.environ.get('LOCAL_RANK', 0)) % torch.cuda.device_count()}"
    return None


def build_annotator(config: AugmentConfig) -> Tuple[Any, Callable[[], None]]:
    """The annotator this run uses and a function that releases it.

    With ``config.annotator_factory`` the factory is called with the config; otherwise the
    model and the tools are loaded and wrapped in the real ``Annotator``.
    """
    if config.annotator_factory:
        annotator = load_object(config.annotator_factory)(config)
        if not callable(getattr(annotator, "annotate_batch", None)):
            raise UserError(
                f"{config.annotator_factory} did not return an object with annotate_batch(docs)"
            )
        return annotator, getattr(annotator, "close", None) or (lambda: None)

    import torch

    from toolformer.data_aug.annotator import Annotator
    from toolformer.models import load_model

    torch.manual_seed(config.seed)
    model, tokenizer = load_model(
        config.model, dtype=config.dtype, device=config.device or _default_device()
    )
    tools = make_tools(config, model, tokenizer)
    setup_tools(tools)  # indexes and QA's reader load before calls run under a timeout
    annotator = Annotator(
        model, tokenizer, tools, dataclasses.replace(config.annotator, seed=config.seed)
    )
    return annotator, annotator.close


def make_tools(config: AugmentConfig, model: Any = None, tokenizer: Any = None) -> Dict[str, Any]:
    """The run's tools, in ``config.tools`` order, with their ``tool_options`` and the sharing
    rule of :func:`toolformer.tools.assembly.create_tools` (QA reads with the annotating model
    when it is the same model and dtype, and searches with the run's WikiSearch)."""
    return create_tools(
        config.tools,
        config.tool_options,
        model=model,
        tokenizer=tokenizer,
        model_name=config.model,
        dtype=config.dtype,
    )


def _annotate(annotator: Any, docs: List[Document]) -> List[AnnotationResult]:
    """Call the annotator; whatever goes wrong becomes a per-document error, never a crash."""
    try:
        results = list(annotator.annotate_batch(docs))
        if len(results) != len(docs):
            raise RuntimeError(
                f"annotate_batch returned {len(results)} results for {len(docs)} documents"
            )
        return results
    except Exception as exc:  # noqa: BLE001 - counted as failed documents
        logger.warning(
            "annotating a batch of %d documents failed: %s: %s", len(docs), type(exc).__name__, exc
        )
        return [
            AnnotationResult(
                doc_id=d.id, text=d.text, original=d.text, error=f"{type(exc).__name__}: {exc}"
            )
            for d in docs
        ]


# --------------------------------------------------------------------------- the run


def _shard_size(limit: Optional[int], num_shards: int, shard_index: int) -> Optional[int]:
    if not limit:
        return None
    return max(0, (limit - shard_index + num_shards - 1) // num_shards)


def _clear_other_runs(output: Path, num_shards: int, overwrite: bool) -> None:
    """Refuse (or with ``overwrite`` delete) shards of a run with another shard count."""
    others = {n: dirs for n, dirs in list_shard_dirs(output).items() if n != num_shards}
    if others and not overwrite:
        counts = ", ".join(str(n) for n in sorted(others))
        raise UserError(
            f"{output} holds a run split into {counts} shard(s), not {num_shards}; use the same "
            "AugmentConfig.num_shards, set AugmentConfig.overwrite=True to start again, or choose "
            "another AugmentConfig.output",
            field=(
                "AugmentConfig.num_shards",
                "AugmentConfig.overwrite=True",
                "AugmentConfig.output",
            ),
        )
    import shutil

    for dirs in others.values():
        for d in dirs:
            shutil.rmtree(d, ignore_errors=True)
    if overwrite:
        for name in (DATA_FILE, STATS_FILE):
            (output / name).unlink(missing_ok=True)
        shutil.rmtree(output / DATASET_DIR, ignore_errors=True)


def augment(config: AugmentConfig) -> AugmentSummary:
    """Annotate this process's shard of the input and merge when all shards are done."""
    config.validate()
    from toolformer.tools.assembly import check_tool_options

    check_tool_options(config.tool_options)  # one line, before any input or model is read
    num_shards, shard_index = config.resolve_shard()
    # an --input among the files augment writes (RUN/data.jsonl) would be replaced while read;
    # one process per shard is held by the shard's own lock below
    check_not_input(
        config.output,
        {
            "AugmentConfig.input": config.input
            if config.input and os.path.exists(os.path.expanduser(config.input))
            else None
        },
        (DATA_FILE, DATASET_DIR, STATS_FILE, SHARDS_DIR, MERGE_LOCK),
        option="AugmentConfig.output",
    )
    output = ensure_dir(config.output, "the output folder")
    _clear_other_runs(output, num_shards, config.overwrite)
    store = ShardStore(output / SHARDS_DIR / shard_name(shard_index, num_shards))
    with store.lock() as locked:
        if not locked:
            raise UserError(
                f"{store.folder} is being annotated by another process; wait for it or kill it"
            )
        processed_now, seconds_now = _run_shard(config, store, num_shards, shard_index)

    shard = RunStats()
    for rec in store.iter_records():
        shard.add(rec)
    done = store.done_marker() or {}
    shard_stats = shard.to_dict(
        done.get("input", {}),
        wall_seconds(store),
        config.to_dict(),
        shards=num_shards,
        shard_index=shard_index,
        load_seconds=wall_seconds(store, "load_seconds"),
    )
    summary = AugmentSummary(
        output,
        store.folder,
        num_shards,
        shard_index,
        processed_now,
        seconds_now,
        shard_stats,
        stats=shard_stats,
        examples=shard.examples(),
    )
    if config.merge:
        merged = _merge_if_complete(output, num_shards, config.to_dict())
        if merged is not None:
            summary.merged = True
            summary.stats, summary.examples = merged
    return summary


def first_documents(config: AugmentConfig, inputs: InputStats) -> Iterator[Document]:
    """The run's document stream, after checking that it holds at least one document.

    Raises :class:`~toolformer.errors.EmptyInputError` naming the input (and why its records were
    skipped) when it holds none, so that an empty input is an error, not an empty dataset.
    """
    docs = load_documents(
        config.input,
        split=config.split,
        text_field=config.text_field,
        date_field=config.date_field,
        url_field=config.url_field,
        id_field=config.id_field,
        limit=config.limit or None,
        stats=inputs,
        encoding_errors=config.encoding_errors,
    )
    first = next(docs, None)
    if first is None:
        skipped = inputs.to_dict()
        why = ", ".join(f"{reason} {n}" for reason, n in skipped["skipped"].items())
        detail = f" ({skipped['skipped_total']} records skipped: {why})" if why else ""
        raise EmptyInputError(
            f"{config.input or 'the default corpus'} holds no documents{detail}; "
            "pass an input with a non-empty text field"
        )
    return itertools.chain([first], docs)


LONG_DOC_CHARS = 20_000  # ~20 windows of 256 tokens: minutes of work on a CPU
LONG_DOC_RATIO = 10  # "far longer than the rest": this many times the median so far


def warn_if_long(index: int, doc: Document, lengths: List[int], window_tokens: int) -> None:
    """Warn about a document far longer than the ones before it (at least LONG_DOC_CHARS and
    LONG_DOC_RATIO x their median): it may look hung without this, and the user may want to
    split it. Records its length in ``lengths``."""
    n = len(doc.text)
    median = sorted(lengths)[len(lengths) // 2] if lengths else 0
    lengths.append(n)
    if n >= LONG_DOC_CHARS and (not median or n >= LONG_DOC_RATIO * median):
        than = f", {n / median:.0f}x the median so far" if median else ""
        logger.warning(
            "document %s (index %d) has %d characters%s; it is annotated in windows of %d tokens: "
            "the progress bar counts its windows, and finished windows survive an interruption",
            doc.id,
            index,
            n,
            than,
            window_tokens,
        )


MODEL_FILE = "model.json"  # a shard's record of the annotating model's files


def _check_model(config: AugmentConfig, store: ShardStore) -> None:
    """Refuse to add chunks to a shard annotated by the same model name whose files changed
    since, or with tool options naming a corpus file or model that changed
    (:mod:`toolformer.fingerprint`); record them otherwise. A shard recorded before
    fingerprints were is trusted."""
    from toolformer.fingerprint import check_same_model, model_fingerprint, options_fingerprint

    current = {
        "model": model_fingerprint(config.model),
        "tool_options": options_fingerprint(config.tool_options),
    }
    path = store.folder / MODEL_FILE
    if any(store.chunk_files()):
        check_same_model(
            read_json(path),
            current,
            config.model,
            config.output,
            "set AugmentConfig.overwrite=True to annotate again, or choose another "
            "AugmentConfig.output",
        )
    atomic_write_json(path, current)


def _run_shard(
    config: AugmentConfig, store: ShardStore, num_shards: int, shard_index: int
) -> Tuple[int, float]:
    """Annotate the documents of one shard that are not in its chunks yet.

    Returns ``(documents annotated now, seconds from the first batch on)``; the shard is marked
    done once every document is in a chunk. Whatever happens, the documents finished so far are
    saved and the session is closed."""
    inputs = InputStats()
    docs = _open_shard(config, store, num_shards, inputs)
    bar = _progress_bar(config, store, num_shards, shard_index)
    run = _ShardRun(config, store, bar)
    try:
        for batch in _pending_batches(docs, store, num_shards, shard_index, config.batch_size):
            run.annotate(batch)
        run.flush()
        store.mark_done(
            {
                "documents": inputs.documents,  # the whole stream's length (all shards)
                "input": inputs.to_dict(),
                "limit": config.limit,
                "finished": _dt.datetime.now().isoformat(timespec="microseconds"),
            }
        )
    finally:
        run.close()
    return run.processed, (time.perf_counter() - run.start) if run.start is not None else 0.0


def _open_shard(
    config: AugmentConfig, store: ShardStore, num_shards: int, inputs: InputStats
) -> Iterator[Document]:
    """The run's document stream, once the shard has recorded its settings and model and opened
    a session; ``inputs`` counts what the stream reads."""
    # the input is checked (exists, has the fields, holds a document) before the shard records
    # its settings: a command that failed on a bad --input does not lock its --output
    docs = first_documents(config, inputs)
    store.prepare(config.fingerprint(num_shards), overwrite=config.overwrite)
    _check_model(config, store)
    store.start_session(pid=os.getpid(), host=os.uname().nodename if hasattr(os, "uname") else "")
    return docs


def _progress_bar(
    config: AugmentConfig, store: ShardStore, num_shards: int, shard_index: int
) -> Any:
    """The shard's tqdm bar in documents, starting at those already in its chunks (one line per
    shard when there are several)."""
    from tqdm.auto import tqdm

    return tqdm(
        total=_shard_size(config.limit, num_shards, shard_index),
        initial=len(store.done),
        unit="doc",
        desc=f"augment {shard_index + 1}/{num_shards}" if num_shards > 1 else "augment",
        disable=not config.progress,
        dynamic_ncols=True,
        position=shard_index if num_shards > 1 else None,
    )


def _pending_batches(
    docs: Iterator[Document], store: ShardStore, num_shards: int, shard_index: int, batch_size: int
) -> Iterator[List[Tuple[int, Document]]]:
    """``(index, document)`` batches of this shard's documents not in its chunks yet, in input
    order, ``batch_size`` at a time (the last batch may be shorter)."""
    batch: List[Tuple[int, Document]] = []
    for index, doc in enumerate(docs):
        if index % num_shards != shard_index or index in store.done:
            continue
        batch.append((index, doc))
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


class _ShardRun:
    """One session's annotation of a shard: loads the annotator when the first batch comes (a
    finished run re-merges at once), buffers finished documents and writes them in chunks of
    ``config.chunk_size``, and counts documents and kept calls for the progress bar."""

    def __init__(self, config: AugmentConfig, store: ShardStore, bar: Any):
        self.config, self.store, self.bar = config, store, bar
        self.annotator: Any = None
        self.release: Callable[[], None] = lambda: None
        self.buffer: List[Dict[str, Any]] = []
        # characters of the documents annotated so far (the long-document warning)
        self.lengths: List[int] = []
        self.processed = self.kept = 0
        self.start: Optional[float] = None  # perf_counter at the first batch
        self.windows = WindowLog(store.folder, self._show_windows if config.progress else None)

    def _show_windows(self, done: int, total: int) -> None:
        """Show a long document's finished windows beside the bar."""
        if total > 1:  # a long document moves the bar too
            self.bar.set_postfix(calls=self.kept, windows=f"{done}/{total}")

    def _load_annotator(self) -> None:
        """Build the annotator; its loading time is recorded apart from annotation time."""
        t0 = time.perf_counter()
        self.annotator, self.release = build_annotator(self.config)
        if hasattr(self.annotator, "window_log"):
            self.annotator.window_log = self.windows
        self.store.exclude_time("load_seconds", time.perf_counter() - t0)
        self.bar.unpause()  # the rate shown is annotation speed, not loading

    def annotate(self, batch: List[Tuple[int, Document]]) -> None:
        """Annotate one batch of ``(index, document)``, buffer its records and write every full
        chunk."""
        if self.annotator is None:
            self._load_annotator()
        if self.start is None:
            self.start = time.perf_counter()
        for index, doc in batch:
            warn_if_long(index, doc, self.lengths, self.config.annotator.max_length)
        results = _annotate(self.annotator, [doc for _, doc in batch])
        for (index, doc), result in zip(batch, results):
            rec = result_record(index, doc, result)
            self.buffer.append(rec)
            self.kept += len(rec["calls"])
        self.processed += len(batch)
        self.bar.update(len(batch))
        self.bar.set_postfix(calls=self.kept, refresh=False)
        size = self.config.chunk_size
        while len(self.buffer) >= size:
            self._write(self.buffer[:size])
            del self.buffer[:size]

    def _write(self, records: List[Dict[str, Any]]) -> None:
        """Write ``records`` as one chunk; their documents' saved windows are no longer needed."""
        self.store.write_chunk(records)
        self.windows.forget(window_key(r["id"], r["original"]) for r in records)

    def flush(self) -> None:
        """Write the buffered documents (the last, shorter chunk)."""
        if self.buffer:
            self._write(self.buffer)
            self.buffer.clear()

    def close(self) -> None:
        """End the session: save what is still buffered (interrupted by Ctrl-C or an error),
        close the bar and release the annotator."""
        if self.buffer:  # interrupted (Ctrl-C, an error): keep the documents that are finished
            try:
                self.store.write_chunk(self.buffer)
            except Exception:  # noqa: BLE001 - the original error matters more
                logger.exception("could not save %d finished documents", len(self.buffer))
        self.store.finish_session()
        self.bar.close()
        self.release()


# --------------------------------------------------------------------------- merge


def _shards(
    output: Path, num_shards: int
) -> Tuple[List[ShardStore], List[Optional[Dict[str, Any]]]]:
    """Every shard's store and done marker (None while the shard is not finished)."""
    stores = [
        ShardStore(output / SHARDS_DIR / shard_name(i, num_shards)) for i in range(num_shards)
    ]
    return stores, [s.done_marker() for s in stores]


def _merge_if_complete(output: Path, num_shards: int, config: Dict[str, Any]):
    """Merge when every shard is done (the last process to finish does it, under a lock)."""
    with file_lock(output / MERGE_LOCK):
        stores, markers = _shards(output, num_shards)
        if any(m is None for m in markers):
            return None
        key = [m.get("finished") for m in markers]
        previous = read_json(output / STATS_FILE)
        if previous and previous.get("merged_from") == key and (output / DATA_FILE).exists():
            return previous, previous.get("examples", [])
        return _merge(output, stores, markers, config)


def merge_shards(
    output: str, num_shards: Optional[int] = None
) -> Tuple[Dict[str, Any], List[Dict[str, Any]]]:
    """Merge the finished shards in ``output`` into data.jsonl, dataset/ and stats.json.

    Returns ``(stats, example_calls)``. Raises :class:`UserError` naming unfinished shards.
    """
    out = Path(output).expanduser()
    found = list_shard_dirs(out)
    if not found:
        raise UserError(
            f"no shards in {out}/{SHARDS_DIR}; run augment with AugmentConfig.output {out} first",
            field="AugmentConfig.output",
        )
    if num_shards is None:
        if len(found) > 1:
            raise UserError(
                f"{out} holds runs with {sorted(found)} shards; set AugmentConfig.num_shards",
                field="AugmentConfig.num_shards",
            )
        num_shards = next(iter(found))
    with file_lock(out / MERGE_LOCK):
        stores, markers = _shards(out, num_shards)
        missing = [str(i) for i, m in enumerate(markers) if m is None]
        if missing:
            raise UserError(
                f"shard(s) {', '.join(missing)} of {num_shards} in {out} are not "
                f"finished; run them (AugmentConfig.num_shards {num_shards}, "
                "AugmentConfig.shard_index N, the same options otherwise) and merge again",
                field=("AugmentConfig.num_shards", "AugmentConfig.shard_index"),
            )
        config = read_json(stores[0].folder / "config.json") or {}
        return _merge(out, stores, markers, config)


def _merge(
    output: Path, stores: List[ShardStore], markers: List[Dict[str, Any]], config: Dict[str, Any]
):
    total = markers[0].get("documents")
    stats = RunStats()
    seen: set = set()

    def rows() -> Iterator[Dict[str, Any]]:
        # each shard's chunks are in index order, so a heap merge keeps the input order
        for rec in heapq.merge(*(s.iter_records() for s in stores), key=lambda r: r["index"]):
            if total is not None and rec["index"] >= total:
                continue  # annotated under a larger --limit than the last run's
            if rec["index"] in seen:
                raise RuntimeError(
                    f"document {rec['index']} appears twice in {output}; the shards are corrupt"
                )
            seen.add(rec["index"])
            stats.add(rec)
            if rec["calls"]:
                yield data_row(rec)

    rows_written = write_data(output, rows())
    wall = max(wall_seconds(s) for s in stores)
    examples = stats.examples()
    result = stats.to_dict(
        markers[0].get("input", {}),
        wall,
        config,
        shards=len(stores),
        load_seconds=max(wall_seconds(s, "load_seconds") for s in stores),
        data_rows=rows_written,
        merged_from=[m.get("finished") for m in markers],
        examples=examples,
    )
    atomic_write_json(output / STATS_FILE, result)
    return result, examples
