"""Slow work (building environments, fetching data, registering models) off the loop.

A task is keyed by what it does (resource uid, action and generation). It runs once in a small
thread pool while its resource's lease is held; its outcome stays in memory until the
reconciler takes it. If the server dies, the outcome is lost and the task simply runs again:
every task is idempotent.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from dockyard.store import resources as repo
from dockyard.store.db import Store

LEASE_SECONDS = 120.0


@dataclass
class TaskState:
    key: str
    uid: str
    future: Future[Any]
    progress: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.future.done()


class Tasks:
    def __init__(self, store: Store, workers: int = 4, owner: str | None = None) -> None:
        self.store = store
        # stable per home: after a crash, the restarted server takes its own leases back
        # at once instead of waiting for them to expire
        self.owner = owner or f"controller-{uuid.uuid4().hex[:12]}"
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="task")
        self._tasks: dict[str, TaskState] = {}
        self._lock = threading.Lock()
        self.on_done: Callable[[], None] = lambda: None

    def get(self, key: str) -> TaskState | None:
        with self._lock:
            return self._tasks.get(key)

    def busy(self, uid: str) -> bool:
        with self._lock:
            return any(t.uid == uid and not t.done for t in self._tasks.values())

    def submit(self, key: str, uid: str, fn: Callable[[TaskState], Any]) -> TaskState | None:
        """Run ``fn`` once for ``key`` if the resource's lease can be taken."""
        with self._lock:
            if key in self._tasks:
                return self._tasks[key]
        with self.store.session() as session:
            if not repo.acquire_lease(session, uid, self.owner, LEASE_SECONDS):
                return None
        state = TaskState(key, uid, Future())

        def run() -> Any:
            try:
                return fn(state)
            finally:
                self.on_done()

        with self._lock:
            state.future = self._pool.submit(run)
            self._tasks[key] = state
        return state

    def renew(self, state: TaskState) -> bool:
        with self.store.session() as session:
            return repo.acquire_lease(session, state.uid, self.owner, LEASE_SECONDS)

    def take(self, key: str) -> TaskState | None:
        """Remove a finished task and release its lease; None if it is still running."""
        with self._lock:
            state = self._tasks.get(key)
            if state is None or not state.done:
                return None
            del self._tasks[key]
        with self.store.session() as session:
            repo.release_lease(session, state.uid, self.owner)
        return state

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
