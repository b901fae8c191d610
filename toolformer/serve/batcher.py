"""The batching queue: requests that arrive together are decoded together on one engine.

One background thread owns the :class:`~toolformer.generation.ToolGenerator` (torch is not
re-entrant across threads on one model). It takes the first waiting job, collects whatever else
arrives within ``wait_s`` (up to ``max_batch`` jobs), groups the jobs whose decoding settings are
equal and runs each group as one batch through :meth:`ToolGenerator.stream_batch`. Every event
carries its row index, and a row index maps to exactly one job, so outputs are never mixed up.

A sampled job with a ``seed`` runs alone: the engine draws the whole batch's samples from one
seeded generator, so sharing it would make the output depend on the neighbours.
"""

from __future__ import annotations

import dataclasses
import itertools
import queue
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

from toolformer.generation.types import GenerationConfig, GenerationEvent

_solo = itertools.count()


@dataclass
class Job:
    """One prompt to decode. ``sink(event)`` is called from the worker thread with each
    :class:`GenerationEvent` of this prompt, ending with ``kind == "done"``, or with an event of
    kind ``"error"`` whose ``text`` says what failed. ``cancelled``: the client went away."""

    prompt: str
    config: GenerationConfig
    sink: Callable[[GenerationEvent], None]
    context: Any = None
    cancelled: threading.Event = field(default_factory=threading.Event)
    finished: bool = False  # its "done" event was sunk

    def group_key(self) -> tuple:
        """Jobs with equal keys may share a batch: equal settings (batch size aside)."""
        if self.config.do_sample and self.config.seed is not None:
            return ("solo", next(_solo))
        return dataclasses.astuple(dataclasses.replace(self.config, batch_size=1))


class BatchWorker:
    """A background thread that decodes queued :class:`Job` s in batches on ``generator``.

    ``wait_s``: how long the worker waits for more jobs after the first one (seconds);
    ``max_batch``: the most jobs in one batch. ``stats`` counts batches, rows and the largest
    batch (for ``/health``).
    """

    def __init__(self, generator: Any, wait_s: float = 0.005, max_batch: int = 16):
        if max_batch < 1:
            raise ValueError("max_batch must be >= 1")
        self.generator = generator
        self.wait_s = max(0.0, wait_s)
        self.max_batch = max_batch
        self.stats: Counter = Counter()
        self._queue: "queue.Queue[Optional[Job]]" = queue.Queue()
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="toolformer-batcher", daemon=True)
        self._thread.start()

    def submit(self, job: Job) -> None:
        """Queue ``job``; its events go to ``job.sink`` from the worker thread."""
        if self._closed:
            raise RuntimeError("the batch worker is closed")
        self._queue.put(job)

    def close(self, timeout: float = 5.0) -> None:
        """Stop after the batch in progress (waits at most ``timeout`` seconds)."""
        self._closed = True
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the worker thread -------------------------------------------------------------------
    def _collect(self, first: Job) -> List[Job]:
        jobs = [first]
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:  # what is already waiting is taken at once; then wait out the window
                if remaining <= 0:
                    job = self._queue.get_nowait()
                else:
                    job = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if job is None:
                self._closed = True
                break
            jobs.append(job)
        return jobs

    def _loop(self) -> None:
        while not self._closed:
            first = self._queue.get()
            if first is None:
                break
            jobs = [j for j in self._collect(first) if not j.cancelled.is_set()]
            groups: Dict[tuple, List[Job]] = {}
            for job in jobs:
                groups.setdefault(job.group_key(), []).append(job)
            for group in groups.values():
                self._run(group)

    def _run(self, jobs: List[Job]) -> None:
        config = dataclasses.replace(jobs[0].config, batch_size=len(jobs))
        self.stats.update(batches=1, rows=len(jobs))
        self.stats["max_batch_seen"] = max(self.stats["max_batch_seen"], len(jobs))
        events = self.generator.stream_batch(
            [j.prompt for j in jobs], config, [j.context for j in jobs]
        )
        try:
            for step in events:
                for event in step:
                    jobs[event.row].sink(event)
                    if event.kind == "done":
                        jobs[event.row].finished = True
                # nobody is listening any more (a finished request also sets cancelled: only
                # rows still decoding count)
                if all(j.cancelled.is_set() for j in jobs):
                    if not all(j.finished for j in jobs):
                        self.stats["cancelled_batches"] += 1
                    break
        except Exception as exc:  # noqa: BLE001 - one bad batch must not stop the server
            self.stats["engine_errors"] += 1
            for job in jobs:
                job.sink(GenerationEvent("error", text=f"{type(exc).__name__}: {exc}"))
        finally:
            events.close()
