"""Lanes: bounded thread pools that run blocking calls off the control loop.

Each runtime has its own lane, so an engine that hangs only delays its own workloads;
``default`` runs data work (fetching, checksumming, registering) and ``probe`` readiness
probes. A call is keyed: while a key is in flight, submitting it again returns the same
future instead of queueing a second call.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger("dockyard.control")


class Lanes:
    def __init__(self, workers: int = 4) -> None:
        self.workers = workers
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._inflight: dict[str, Future[Any]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def _pool(self, lane: str) -> ThreadPoolExecutor:
        pool = self._pools.get(lane)
        if pool is None:
            pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=f"lane-{lane}")
            self._pools[lane] = pool
        return pool

    def submit(self, lane: str, key: str, fn: Callable[[], Any]) -> Future[Any] | None:
        """Run ``fn`` in ``lane`` unless ``key`` is in flight; None once shut down."""
        with self._lock:
            if self._closed:
                return None
            current = self._inflight.get(key)
            if current is not None:
                return current
            future = self._pool(lane).submit(fn)
            self._inflight[key] = future

        def finished(f: Future[Any]) -> None:
            with self._lock:
                if self._inflight.get(key) is f:
                    del self._inflight[key]
            if not f.cancelled() and f.exception() is not None:
                log.error("%s failed", key, exc_info=f.exception())

        future.add_done_callback(finished)
        return future

    def busy(self, key: str) -> bool:
        with self._lock:
            return key in self._inflight

    def shutdown(self) -> None:
        with self._lock:
            self._closed = True
            pools = list(self._pools.values())
        for pool in pools:
            pool.shutdown(wait=False, cancel_futures=True)
