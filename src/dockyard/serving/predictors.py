"""Running a model runtime from the event loop: directly, or with adaptive batching.

Both wrap a ``ModelRuntime`` and expose ``await predict(inputs, outputs)``:

- ``Direct`` calls the runtime once per request;
- ``Batched`` merges concurrent requests along the first (batch) dimension, calls the runtime
  once, and splits the result back. It never waits when the model is idle and nothing else is
  arriving, so a lone request pays no batching delay; under load, requests that arrive while a
  batch is computing form the next batch (up to ``max_batch_size``; a request waits at most
  ``max_latency_ms`` for company).

Where the runtime runs is chosen by measuring it at load time: a model whose largest batch takes
under ``INLINE_BELOW`` seconds runs on the event loop (a thread hop would cost more than the
prediction); anything slower runs in the model's own worker thread, so the loop keeps parsing
requests while it computes (NumPy, scikit-learn, XGBoost, LightGBM, onnxruntime and torch
release the GIL in their heavy parts).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from dockyard.serving.codec import TensorError
from dockyard.serving.metrics import ModelMetrics
from dockyard.serving.runtimes.base import Array, ModelRuntime
from dockyard.serving.worker import WorkerProcess

log = logging.getLogger("dockyard.serving")
INLINE_BELOW = 0.0005  # a largest batch faster than this runs on the event loop
PROCESS_ABOVE = 0.002  # slower than this and mostly holding the GIL: a worker process
GIL_BOUND_BELOW = 0.5  # "mostly holding the GIL": other threads got less than half a turn


class Predictor(Protocol):
    async def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]: ...

    async def close(self) -> None: ...


class Runner:
    """Calls the runtime inline, in one dedicated worker thread, or through a worker process
    (once that has loaded the model; until then in the thread); records predict time."""

    def __init__(self, runtime: ModelRuntime, inline: bool, metrics: ModelMetrics) -> None:
        self.runtime = runtime
        self.inline = inline
        self.metrics = metrics
        self.worker: WorkerProcess | None = None
        self.executor = (
            None if inline else ThreadPoolExecutor(max_workers=1, thread_name_prefix="predict")
        )

    def use_worker(self, worker: WorkerProcess) -> None:
        """Hand predictions to ``worker`` as soon as it has loaded the model."""

        def switch() -> None:
            if worker.wait_ready():
                self.worker = worker
            else:
                log.warning("model worker failed, predicting in a thread: %s", worker.error)

        threading.Thread(target=switch, daemon=True, name="worker-start").start()

    def _call(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        started = time.perf_counter()
        try:
            worker = self.worker
            if worker is not None:
                return worker.predict(inputs, outputs)
            return self.runtime.predict(inputs, outputs)
        finally:
            self.metrics.predict.observe(time.perf_counter() - started)

    async def __call__(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        if self.executor is None:
            return self._call(inputs, outputs)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, self._call, inputs, outputs)

    def close(self) -> None:
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.worker is not None:
            self.worker.close()


def gil_share(call: Callable[[], object], seconds: float = 0.3) -> float:
    """How much of the time ``call`` leaves the interpreter lock to other threads (0..1).

    A second thread counts how often it gets the lock, first alone, then while ``call`` runs
    in a loop; native code that releases the lock (NumPy, trees in C++) scores near 1, Python
    code near 0.
    """

    def ticks(during: Callable[[], None]) -> float:
        count = [0]
        stop = threading.Event()

        def tick() -> None:
            while not stop.is_set():
                count[0] += 1
                time.sleep(0)

        ticker = threading.Thread(target=tick, daemon=True)
        started = time.perf_counter()
        ticker.start()
        during()
        stop.set()
        ticker.join()
        return count[0] / (time.perf_counter() - started)

    def idle() -> None:
        time.sleep(seconds / 3)

    def busy() -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            call()

    alone = ticks(idle)
    return min(1.0, ticks(busy) / alone) if alone else 1.0


class Direct:
    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        rows = batch_rows(inputs)
        self.runner.metrics.batch_size.observe(rows)
        return await self.runner(inputs, outputs)

    async def close(self) -> None:
        self.runner.close()


def batch_rows(inputs: dict[str, Array]) -> int:
    """The batch dimension shared by all inputs (the first one)."""
    sizes = {a.shape[0] if a.ndim else 1 for a in inputs.values()}
    if len(sizes) != 1:
        raise TensorError(f"inputs disagree on the batch size (first dimension): {sorted(sizes)}")
    return sizes.pop()


@dataclass
class _Item:
    inputs: dict[str, Array]
    outputs: list[str]
    rows: int
    key: tuple[Any, ...]
    future: asyncio.Future[dict[str, Array]]
    queued_at: float = field(default_factory=time.perf_counter)


class Batched:
    def __init__(
        self,
        runner: Runner,
        max_batch_size: int,
        max_latency_ms: float,
        arriving: Callable[[], int] = lambda: 0,
    ) -> None:
        self.runner = runner
        self.max_batch_size = max_batch_size
        self.max_latency = max_latency_ms / 1000
        self.arriving = arriving
        self.queue: deque[_Item] = deque()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        rows = batch_rows(inputs)
        if rows > self.max_batch_size or any(a.ndim == 0 for a in inputs.values()):
            self.runner.metrics.batch_size.observe(rows)
            return await self.runner(inputs, outputs)
        key = tuple(sorted((n, a.dtype.str, a.shape[1:]) for n, a in inputs.items()))
        item = _Item(inputs, outputs, rows, key, asyncio.get_running_loop().create_future())
        self.queue.append(item)
        self.runner.metrics.queue_depth.inc()
        if self._task is None:
            self._task = asyncio.create_task(self._work(), name="batcher")
        self._wakeup.set()
        return await item.future

    def _take(self) -> list[_Item]:
        """The oldest live request and the compatible ones behind it, up to the size limit."""
        batch: list[_Item] = []
        rows = 0
        keep: deque[_Item] = deque()
        while self.queue:
            item = self.queue.popleft()
            if item.future.done():  # the client went away: drop it, never block the batch
                self.runner.metrics.queue_depth.dec()
                continue
            if (batch and item.key != batch[0].key) or rows + item.rows > self.max_batch_size:
                keep.append(item)
                if rows >= self.max_batch_size:
                    break
                continue
            batch.append(item)
            rows += item.rows
        keep.extend(self.queue)
        self.queue = keep
        return batch

    async def _work(self) -> None:
        while True:
            if not self.queue:
                self._wakeup.clear()
                await self._wakeup.wait()
            batch = self._take()
            if not batch:
                continue
            deadline = batch[0].queued_at + self.max_latency
            while (
                sum(i.rows for i in batch) < self.max_batch_size
                and self.arriving() > 0
                and time.perf_counter() < deadline
            ):
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), deadline - time.perf_counter())
                except TimeoutError:
                    break
                self.queue.extendleft(reversed(batch))
                batch = self._take()
            await self._run(batch)

    async def _run(self, batch: list[_Item]) -> None:
        metrics = self.runner.metrics
        started = time.perf_counter()
        for item in batch:
            metrics.queue_depth.dec()
            metrics.queue.observe(started - item.queued_at)
        wanted = list(dict.fromkeys(name for item in batch for name in item.outputs))
        rows = sum(item.rows for item in batch)
        metrics.batch_size.observe(rows)
        try:
            if len(batch) == 1:
                merged = batch[0].inputs
            else:
                merged = {
                    name: np.concatenate([i.inputs[name] for i in batch])
                    for name in batch[0].inputs
                }
            result = await self.runner(merged, wanted)
            offset = 0
            for item in batch:
                part = {name: result[name][offset : offset + item.rows] for name in item.outputs}
                offset += item.rows
                if not item.future.done():
                    item.future.set_result(part)
        except Exception as exc:
            if len(batch) == 1:
                _fail(batch[0], exc)
            else:  # one bad request must not fail the others: run them one by one
                for item in batch:
                    try:
                        part = await self.runner(item.inputs, item.outputs)
                        if not item.future.done():
                            item.future.set_result(part)
                    except Exception as one:
                        _fail(item, one)
        finally:
            metrics.batch.observe(time.perf_counter() - started)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        for item in self.queue:
            if not item.future.done():
                item.future.set_exception(TensorError("the model was unloaded"))
        self.runner.close()


def _fail(item: _Item, exc: Exception) -> None:
    if not item.future.done():
        item.future.set_exception(exc)
