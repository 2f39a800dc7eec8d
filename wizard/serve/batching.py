"""Dynamic batching: concurrent requests are captioned together, one model call per batch.

    batcher = Batcher(caption_fn, max_batch_size=8, wait_s=0.01)
    future = batcher.submit(image, generation, prompt)     # concurrent.futures.Future -> caption
    caption = await asyncio.wrap_future(future)

One worker thread owns the model. It takes the first waiting request, waits up to `wait_s` for more
(and takes everything that queued up while the previous batch ran), up to `max_batch_size`, then
captions each group of requests that share generation settings and prompt in one call.
max_batch_size=1 captions requests one at a time (no batching).
"""

from __future__ import annotations

import json
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Callable

_STOP = object()


@dataclass
class _Job:
    image: Any
    generation: Any  # wizard.recipe.GenerationSpec
    prompt: str
    future: Future = field(default_factory=Future)

    @property
    def key(self) -> str:
        return json.dumps([self.generation.model_dump(mode="json"), self.prompt], sort_keys=True)


@dataclass
class BatchStats:
    requests: int = 0
    batches: int = 0  # model calls
    largest_batch: int = 0


class Batcher:
    def __init__(self, caption_fn: Callable[[list, Any, str], list[str]], *, max_batch_size: int = 8,
                 wait_s: float = 0.01):
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.caption_fn, self.max_batch_size, self.wait_s = caption_fn, max_batch_size, wait_s
        self.stats = BatchStats()
        self._queue: queue.Queue = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="caption-batcher", daemon=True)
        self._thread.start()

    def submit(self, image, generation, prompt: str) -> Future:
        job = _Job(image, generation, prompt)
        self._queue.put(job)
        return job.future

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        self._queue.put(_STOP)
        self._thread.join(timeout=30)

    def _collect(self, first: _Job) -> tuple[list[_Job], bool]:
        jobs, stop = [first], False
        deadline = time.monotonic() + self.wait_s
        while len(jobs) < self.max_batch_size:
            try:
                left = deadline - time.monotonic()
                job = self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if job is _STOP:
                stop = True
                break
            jobs.append(job)
        return jobs, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            jobs, stop = self._collect(first)
            groups: dict[str, list[_Job]] = {}
            for job in jobs:
                groups.setdefault(job.key, []).append(job)
            for group in groups.values():
                self._run(group)
            if stop:
                return

    def _run(self, group: list[_Job]) -> None:
        self.stats.requests += len(group)
        self.stats.batches += 1
        self.stats.largest_batch = max(self.stats.largest_batch, len(group))
        try:
            captions = self.caption_fn([j.image for j in group], group[0].generation, group[0].prompt)
        except Exception as e:  # the worker must outlive any one batch: each request gets the error
            for job in group:
                job.future.set_exception(e)
            return
        for job, caption in zip(group, captions):
            job.future.set_result(caption)
