"""Background work under a lease per task key, with its outcome in the store.

A task is keyed by what it does (``<uid>:register``, ``start:<workload id>``); its row in
the ``tasks`` table holds the lease, the input it ran for (``token``), its progress and its
outcome. Submitting claims the row (only when no live lease is held by someone else), the
work runs in a lane, a heartbeat renews the lease of everything in flight until the task's
deadline, and the outcome is written only while the lease is still held — so a replica
that lost its lease can never overwrite what the new holder did. Every task is idempotent:
if its process dies, the lease expires and the next leader runs it again.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from dockyard.control.lanes import Lanes
from dockyard.errors import DockyardError
from dockyard.store import tasks as repo
from dockyard.store.db import Store

log = logging.getLogger("dockyard.control")
Work = Callable[["TaskHandle"], dict[str, Any] | None]


MAX_RETRY = 60.0


def retry_after(attempts: int) -> float:
    """How long a failed task waits before it runs again: 1, 2, 4 … 60 s."""
    return min(MAX_RETRY, 2.0 ** max(0, attempts - 1))


@dataclass
class TaskHandle:
    """What running work may do: report progress, and write only while it holds its lease."""

    key: str
    tasks: Tasks
    deadline: float | None = None
    _last_progress: float = field(default=0.0, repr=False)

    def progress(self, text: str, every: float = 0.5) -> None:
        now = time.monotonic()
        if now - self._last_progress < every:
            return
        self._last_progress = now
        with self.tasks.store.session() as session:
            repo.progress(session, self.key, self.tasks.holder, text)
        self.tasks.on_change()

    def write(self, fn: Callable[[Session], None]) -> bool:
        """Run ``fn`` in one transaction with a check that the lease is still ours."""
        with self.tasks.store.session() as session:
            if not self.tasks.fence(session, self.key):
                return False
            fn(session)
        return True


class Tasks:
    def __init__(
        self,
        store: Store,
        lanes: Lanes,
        holder: str,
        lease_seconds: float = 30.0,
    ) -> None:
        self.store = store
        self.lanes = lanes
        self.holder = holder
        self.lease_seconds = lease_seconds
        self.on_change: Callable[[], None] = lambda: None
        self._deadlines: dict[str, float | None] = {}
        self._errors: dict[str, str] = {}  # the last error of each key that failed here
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._heartbeat, name="task-leases", daemon=True)
        self._beat.start()

    def in_flight(self, key: str) -> bool:
        return self.lanes.busy(key)

    def submit(
        self,
        key: str,
        owner_uid: str,
        name: str,
        token: str,
        work: Work,
        *,
        lane: str = "default",
        timeout: float | None = None,
        keep: bool = True,
        steal_from: str | None = None,
    ) -> bool:
        """Run ``work`` for ``key`` unless someone else holds its lease; True if it runs.

        ``keep=False``: the work writes its own outcome elsewhere (a workload row) through
        :meth:`TaskHandle.write`, and the task row is deleted when it succeeds (a failure is
        kept, so that asking again can wait: see :func:`retry_after`).
        """
        if self.lanes.busy(key):
            return True
        with self.store.session() as session:
            claimed = repo.claim(
                session,
                key,
                owner_uid,
                name,
                token,
                self.holder,
                self.lease_seconds,
                steal_from=steal_from,
            )
        if not claimed:
            return False
        deadline = None if timeout is None else time.monotonic() + timeout
        handle = TaskHandle(key, self, deadline)
        with self._lock:
            self._deadlines[key] = deadline
        future = self.lanes.submit(lane, key, lambda: self._run(handle, work, keep))
        if future is None:  # shutting down: leave the lease to expire
            with self._lock:
                self._deadlines.pop(key, None)
            return False
        return True

    def _run(self, handle: TaskHandle, work: Work, keep: bool) -> None:
        key = handle.key
        state, result, error = repo.SUCCEEDED, {}, ""
        try:
            result = work(handle) or {}
        except DockyardError as exc:
            state, error, result = repo.FAILED, str(exc), {"reason": type(exc).__name__}
        except Exception as exc:
            state, error = repo.FAILED, f"{type(exc).__name__}: {exc}"
            result = {"reason": type(exc).__name__}
            if self._errors.get(key) != error:  # one traceback per distinct error
                log.exception("task %s failed", key)
        if state == repo.FAILED:
            self._errors[key] = error
        else:
            self._errors.pop(key, None)
        try:
            with self.store.session() as session:
                if keep or state == repo.FAILED:  # a failure stays: it is retried with backoff
                    written = repo.finish(session, key, self.holder, state, result, error)
                else:
                    written = repo.forget(session, key, self.holder)
            if not written:
                log.warning("task %s ended after its lease was lost: outcome dropped", key)
        except Exception:  # the store may be down: the lease expires, the task runs again
            log.exception("could not record the outcome of task %s", key)
        finally:
            with self._lock:
                self._deadlines.pop(key, None)
            self.on_change()

    def fence(self, session: Session, key: str) -> bool:
        """Renew ``key``'s lease inside ``session``; False if another holder has it now."""
        rows = repo.renew(session, [key], self.holder, self.lease_seconds)
        return rows == 1

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            now = time.monotonic()
            with self._lock:
                keys = [k for k, d in self._deadlines.items() if d is None or d > now]
            if not keys:
                continue
            try:
                with self.store.session() as session:
                    repo.renew(session, keys, self.holder, self.lease_seconds)
            except Exception:  # the next beat tries again; the leases are long enough
                log.warning("could not renew task leases", exc_info=True)

    def shutdown(self) -> None:
        self._stop.set()
