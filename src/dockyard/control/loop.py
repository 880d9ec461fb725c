"""The control loop: one thread that reconciles every resource towards its spec.

A pass reads the store once (a ``World``), lets each kind's reconciler observe and plan,
schedules the workloads that want to start, and starts those that fit. Passes run when
something changed (``wake``) and at least every ``resync_seconds``.
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections import defaultdict
from typing import Any, Protocol

from dockyard.control import workloads as wl
from dockyard.control.context import Context, World, now, write_status
from dockyard.control.datasets import DatasetReconciler
from dockyard.control.environments import EnvironmentReconciler
from dockyard.control.jobs import JobReconciler
from dockyard.control.models import ModelReconciler
from dockyard.control.scheduler import Decision, Demand, Usage, schedule
from dockyard.control.services import ServiceReconciler
from dockyard.control.volumes import VolumeReconciler
from dockyard.errors import DockyardError
from dockyard.store import resources as repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import ResourceRow, WorkloadRow

log = logging.getLogger("dockyard.control")


class Reconciler(Protocol):
    kind: str

    def reconcile(self, world: World, row: Any) -> tuple[Demand | None, Any]: ...


class Starter(Protocol):
    def start(self, pending: Any, decision: Decision) -> None: ...


class Controller:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        ctx.wake = self.wake
        ctx.tasks.on_done = self.wake
        ctx.runtime.set_listener(lambda _wid: self.wake())  # others are polled
        self.reconcilers: list[Any] = [
            VolumeReconciler(ctx),
            EnvironmentReconciler(ctx),
            DatasetReconciler(ctx),
            ModelReconciler(ctx),
            JobReconciler(ctx),
            ServiceReconciler(ctx),
        ]
        self._event = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._soon = 0.0
        self.passes = 0
        self.last_error = ""

    def wake(self) -> None:
        self._event.set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self.run_once()
                self.last_error = ""
            except Exception as exc:  # keep the loop alive; the next pass retries
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("reconcile pass failed")
            wait = self.ctx.settings.resync_seconds
            if self._soon:
                wait = min(wait, self._soon)
            self._event.wait(wait)
            self._event.clear()

    def run_once(self) -> None:
        self._event.clear()
        self._soon = 0.0
        self.ctx.changed = False
        with self.ctx.store.session() as session:
            rows = repo.list_rows(session)
            owned: dict[str, list[WorkloadRow]] = defaultdict(list)
            for w in workloads_repo.all_workloads(session):
                owned[w.owner_uid].append(w)
        world = World({(r.kind, r.project, r.name): r for r in rows}, dict(owned), now())
        demands: list[tuple[Demand, Starter, Any]] = []
        for reconciler in self.reconcilers:
            for row in world.of_kind(reconciler.kind):
                try:
                    demand, extra = reconciler.reconcile(world, row)
                except Exception as exc:  # one broken resource must not stop the others
                    self._report(row, exc)
                    continue
                if demand is not None:
                    demands.append((demand, reconciler, extra))
                elif isinstance(extra, tuple) and extra and extra[0] == "delete":
                    self._finalize(row.uid)
                if row.status.get("phase") in (
                    "Building",
                    "Fetching",
                    "Preparing",
                    "Starting",
                    "Checksumming",
                    "Terminating",
                ) or row.status.get("reason") in ("RegisteringModel", "BackoffRetry"):
                    self._soon = 0.2
        if demands:
            self._schedule(demands)
        if self.ctx.changed:
            self._soon = 0.02  # what changed may unblock others: look again at once
        self.passes += 1

    def _schedule(self, demands: list[tuple[Demand, Starter, Any]]) -> None:
        used = Usage()
        with self.ctx.store.session() as session:
            for w in workloads_repo.active(session):
                used.add(
                    float(w.request.get("cpu", 0)),
                    int(w.request.get("memory", 0)),
                    list(w.request.get("gpuIndices", [])),
                )
        decisions = schedule(self.ctx.runtime.node(), used, [d for d, _, _ in demands])
        for demand, starter, extra in demands:
            try:
                starter.start(extra, decisions[demand.key])
            except Exception as exc:
                row = extra[0] if isinstance(extra, tuple) and extra else None
                if isinstance(row, ResourceRow):
                    self._report(row, exc)
                else:  # pragma: no cover - every starter passes its row first
                    log.exception("start failed")
        if any(d.admitted for d in decisions.values()):
            self._soon = 0.05  # a start changes what runs: look again soon

    def _report(self, row: ResourceRow, exc: Exception) -> None:
        log.warning("reconciling %s %s failed: %s", row.kind, row.name, exc, exc_info=exc)
        message = str(exc) if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {exc}"
        try:
            write_status(
                self.ctx, row, {**row.status, "reason": "ReconcileError", "message": message}
            )
        except Exception:  # the store itself may be what failed
            log.exception("could not record the error")

    def _finalize(self, uid: str) -> None:
        with self.ctx.store.session() as session:
            for w in workloads_repo.for_owner(session, uid):
                self.ctx.runtime_for(w.runtime).remove(w.id)
                shutil.rmtree(self.ctx.settings.home / "outputs" / w.id, ignore_errors=True)
            workloads_repo.remove_for_owner(session, uid)
            repo.purge(session, uid)

    def stop(self, stop_workloads: bool = True) -> None:
        """Stop the loop; with ``stop_workloads``, also everything this server started."""
        self._stopping.set()
        self._event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.ctx.tasks.shutdown()
        if not stop_workloads:
            return
        with self.ctx.store.session() as session:
            active = workloads_repo.active(session)
        for w in active:
            ended = wl.stop(self.ctx, w)
            if ended.phase in wl.ACTIVE or ended.reason in ("Stopped", "Lost", "Signaled"):
                # ended by this shutdown, not by itself: run again on the next start
                wl.mark(
                    self.ctx, w.id, "Failed", "Interrupted", "stopped with the server", force=True
                )
