"""The control loop: one thread that reconciles every resource towards its spec.

Only the leader runs it (``control/leader.py``). A pass reads the store once (a ``World``),
hands the workloads that may still run to the observer (off the loop), and for every
resource, in the order of the kind descriptors: observe, plan (pure), apply. The starts of
all plans are scheduled together at the end. Passes run when something changed (``wake``)
and at least every ``resync_seconds``. A resource whose plan did nothing is not planned
again until something it depends on changes (``control/changes.py``), or its ``recheck_at``
comes, or — a backstop — a change comes ``FULL_EVERY`` seconds after every resource was last
planned. A reconciler that raises marks its resource
``Failed``/``ReconcileError`` with the error's text and is retried with exponential backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta

from dockyard.control import workloads as wl
from dockyard.control.apply import Applier, Pending
from dockyard.control.context import Context, now
from dockyard.control.datasets import DatasetReconciler
from dockyard.control.environments import EnvironmentReconciler
from dockyard.control.jobs import JobReconciler
from dockyard.control.leader import Leadership
from dockyard.control.models import ModelReconciler
from dockyard.control.observer import Observer
from dockyard.control.plan import Delete, Plan
from dockyard.control.reconciler import Reconciler
from dockyard.control.records import ResourceRecord, WorkloadRecord
from dockyard.control.services import ServiceReconciler
from dockyard.control.volumes import VolumeReconciler
from dockyard.control.world import Snapshots, World
from dockyard.errors import DockyardError, NotLeading, StaleWrite, StoredSpecInvalid
from dockyard.runtimes.base import RunState
from dockyard.spec import DESCRIPTOR, DESCRIPTORS, Phase
from dockyard.spec.status import ACTIVE, BUSY, Status
from dockyard.store import leases
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import WorkloadRow

log = logging.getLogger("dockyard.control")
MAX_ERROR_BACKOFF = 60.0
FULL_EVERY = 30.0  # a full pass at least this often, even when nothing seems to change


@dataclass
class Failure:
    generation: int
    message: str
    count: int
    retry_at: datetime


class Controller:
    def __init__(self, ctx: Context, leadership: Leadership | None = None) -> None:
        self.ctx = ctx
        self.leadership = leadership
        reconcilers: list[Reconciler] = [
            VolumeReconciler(ctx),
            EnvironmentReconciler(ctx),
            DatasetReconciler(ctx),
            ModelReconciler(ctx),
            JobReconciler(ctx),
            ServiceReconciler(ctx),
        ]
        self.reconcilers = {r.kind: r for r in reconcilers}
        assert [d.kind for d in DESCRIPTORS] == list(self.reconcilers), "one per descriptor"
        self.applier = Applier(ctx, self.reconcilers)
        self.observer = Observer(ctx)
        self.snapshots = Snapshots()
        ctx.wake = self.wake
        ctx.tasks.on_change = self.wake
        ctx.is_leader = self.leading
        ctx.runtime.set_listener(lambda _wid: self.wake())  # others are polled
        if leadership is not None:
            leadership.on_change = lambda _leader: self.wake()
        self._event = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._soon = 0.0
        self._failures: dict[str, Failure] = {}
        # settled resources (their last plan did nothing) → when their plan must run again
        self._settled: dict[str, datetime | None] = {}
        self.passes = 0
        self.rests = 0  # passes that found, by one cheap read, that nothing changed anywhere
        self.last_error = ""
        self._dirty = True  # woken since the last full pass
        self._seen = -1  # the store's change counter at the last full pass
        self._idle = False  # the last full pass settled everything, nothing was in flight
        self._due: datetime | None = None  # the earliest recheck of a settled resource
        self._full_at = 0.0  # when the last full pass read the store (monotonic)
        self._all_at = 0.0  # when a change last made every resource plan again (monotonic)
        self.durations: deque[float] = deque(maxlen=1000)  # seconds per pass

    def leading(self) -> bool:
        return self.leadership is None or self.leadership.leader

    def wake(self) -> None:
        """Something changed here (an apply, a task, a workload): pass again, reading all."""
        self._dirty = True
        self._event.set()

    def start(self) -> None:
        if self.leadership is not None:
            self.leadership.start()
        self._thread = threading.Thread(target=self._run, name="controller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            wait = self.ctx.settings.resync_seconds
            if self.leading():
                try:
                    self.run_once()
                    self.last_error = ""
                except NotLeading:  # the lease went elsewhere during a pass: nothing landed
                    log.info("no longer leading: the pass stopped before its next write")
                except Exception as exc:  # keep the loop alive; the next pass retries
                    self.last_error = f"{type(exc).__name__}: {exc}"
                    log.exception("reconcile pass failed")
                if self._soon:
                    wait = min(wait, self._soon)
            self._event.wait(wait)
            self._event.clear()

    # -- one pass ---------------------------------------------------------------------------
    def _may_rest(self) -> bool:
        """Nothing was woken here, nothing is in flight or due, and no replica changed the
        store since the last full pass (one read of its change counter): skip this pass."""
        if self._dirty or not self._idle or time.monotonic() - self._full_at > FULL_EVERY:
            return False
        if self._due is not None and now() >= self._due:
            return False
        with self.ctx.store.session() as session:
            return leases.version(session) == self._seen

    def run_once(self) -> None:
        started = time.perf_counter()
        self._event.clear()
        if self._may_rest():
            self.rests += 1
            if self._due is not None:
                self._soon = max(0.01, (self._due - now()).total_seconds())
            return
        self._dirty = False
        self._soon = 0.0
        self.applier.changed = False
        self.applier.recheck = None
        at = now()
        with self.ctx.store.session() as session:
            self._seen = leases.version(session)
            world = self.snapshots.load(
                session, at, self.ctx.tasks.in_flight, self.ctx.identity.dead
            )
        self._full_at = time.monotonic()
        self._observe(world)
        pending: list[Pending] = []
        next_check: datetime | None = None
        if world.changed:  # plan again what changed and what depends on it (control/changes)
            if world.changes is None or time.monotonic() - self._all_at > FULL_EVERY:
                self._settled.clear()
                self._all_at = time.monotonic()
            else:
                for uid in world.changes.affected:
                    self._settled.pop(uid, None)
            live = {r.uid for r in world.rows.values()}
            self._failures = {u: f for u, f in self._failures.items() if u in live}
        for descriptor in DESCRIPTORS:
            reconciler = self.reconcilers[descriptor.kind]
            for row in world.of_kind(descriptor.kind):
                if row.uid in self._settled:
                    until = self._settled[row.uid]
                    if until is None:
                        continue
                    if until > at:
                        next_check = min(filter(None, [next_check, until]))
                        continue
                failure = self._failures.get(row.uid)
                backing_off = failure is not None and failure.generation == row.generation
                if failure is not None and backing_off and failure.retry_at > at:
                    next_check = min(filter(None, [next_check, failure.retry_at]))
                    continue
                try:
                    plan = self._plan(reconciler, world, row)
                    waiting = self.applier.apply(world, row, plan)
                except NotLeading:  # the lease went to another replica mid-pass: stop here
                    log.info("no longer leading: this pass writes nothing more")
                    return
                except StaleWrite:  # written since this pass read it: plan it again
                    self._dirty = True
                    continue
                except Exception as exc:  # one broken resource must not stop the others
                    self._report(row, exc, at)
                    continue
                self._failures.pop(row.uid, None)
                if waiting is not None:
                    pending.append(waiting)
                elif self._quiet(world, row, plan):
                    self._settled[row.uid] = plan.recheck_at
                if plan.recheck_at is not None:
                    next_check = min(filter(None, [next_check, plan.recheck_at]))
                if plan.status.phase in BUSY or plan.tasks or plan.stops:
                    self._soon = 0.2
        try:
            self.applier.forget_gone()
            admitted = bool(pending) and self.applier.start_all(world, pending)
        except NotLeading:
            log.info("no longer leading: this pass writes nothing more")
            return
        if admitted:
            self._soon = 0.05  # a start changes what runs: look again soon
        if self.applier.changed:
            self._soon = 0.02  # what changed may unblock others: look again at once
        next_check = min(filter(None, [next_check, self.applier.recheck]), default=None)
        if next_check is not None:
            due = max(0.01, (next_check - now()).total_seconds())
            self._soon = min(self._soon, due) if self._soon else due
        self._due = next_check
        self._idle = (
            not pending
            and not self._failures
            and len(self._settled) == len(world.rows)
            and not any(world.busy(r.uid) for r in world.rows.values())
        )
        self.passes += 1
        self.durations.append(time.perf_counter() - started)

    @staticmethod
    def _plan(reconciler: Reconciler, world: World, row: ResourceRecord) -> Plan:
        try:
            spec = world.spec(row)
        except StoredSpecInvalid:
            if row.deleted_at is None:
                raise  # reported on the resource, with what to do
            return _delete_unreadable(world, row)
        return reconciler.plan(spec, reconciler.observe(world, row, spec))

    def _quiet(self, world: World, row: ResourceRecord, plan: Plan) -> bool:
        """A plan that did nothing, for a resource with nothing in flight: while the world
        stays as it is, planning it again gives the same (until ``recheck_at``)."""
        acts = plan.stops or plan.tasks or plan.starts or plan.delete or plan.events
        return not acts and not self.applier.wrote and not world.busy(row.uid)

    def _observe(self, world: World) -> None:
        """Workloads that may still run, and whose start or stop is not in flight."""
        rows: list[WorkloadRecord] = []
        for owned in world.workloads.values():
            for w in owned:
                if w.phase not in ACTIVE:
                    continue
                start = world.task(wl.start_key(w.id))
                if start is not None and start.state == "running":
                    continue
                if self.ctx.tasks.in_flight(wl.stop_key(w.id)):
                    continue
                rows.append(w)
        if rows:
            self.observer.submit(rows)

    def _report(self, row: ResourceRecord, exc: Exception, at: datetime) -> None:
        message = str(exc) if isinstance(exc, DockyardError) else f"{type(exc).__name__}: {exc}"
        before = self._failures.get(row.uid)
        count = before.count + 1 if before is not None else 1
        delay = min(MAX_ERROR_BACKOFF, 2.0 ** (count - 1))
        self._failures[row.uid] = Failure(
            row.generation, message, count, at + timedelta(seconds=delay)
        )
        if before is None or before.message != message:  # one traceback per distinct error
            log.warning("reconciling %s %s failed: %s", row.kind, row.name, message, exc_info=exc)
        else:
            log.debug("reconciling %s %s failed again: %s", row.kind, row.name, message)
        try:
            status_type = DESCRIPTOR[row.kind].status
            try:
                current: Status = status_type.model_validate(row.status)
            except ValueError:
                current = status_type()
            status = current.but(
                phase=Phase.FAILED,
                reason="ReconcileError",
                message=f"{message} (retrying in {delay:g}s)",
                observed_generation=row.generation,
            )
            self.applier.write_status(row, status)
        except Exception:  # the store itself may be what failed
            log.exception("could not record the error")

    # -- shutdown ---------------------------------------------------------------------------
    def stop(self, stop_workloads: bool = True, detached: bool = False) -> None:
        """Stop the loop; with ``stop_workloads``, the leader also stops what runs on this
        machine (local processes, containers) and, with ``detached``, on clusters too."""
        leading = self.leading()
        self._stopping.set()
        self._event.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.ctx.tasks.shutdown()
        self.ctx.lanes.shutdown()
        if stop_workloads and leading:
            with self.ctx.store.session() as session:
                active = workloads_repo.active(session)
            active = [w for w in active if detached or not self._detached(w.runtime)]
            if active:
                with ThreadPoolExecutor(max_workers=8) as pool:
                    list(pool.map(self._interrupt, active))
        if self.leadership is not None:
            self.leadership.stop(release=True)

    def _detached(self, runtime: str) -> bool:
        """Does ``runtime`` keep its workloads without us? (unknown: stop them, as before)"""
        try:
            return bool(self.ctx.runtime_for(runtime).detached)
        except Exception:
            return False

    def _interrupt(self, w: WorkloadRow) -> None:
        """Stop a workload with the server: run it again on the next start."""
        runtime = self.ctx.runtime_for(w.runtime)
        try:
            runtime.stop(w.id, self.ctx.settings.stop_grace_seconds)
            state = runtime.observe(w.id)
        except Exception:
            log.exception("could not stop %s", w.id)
            return
        stopped = state.phase in (RunState.RUNNING, RunState.NOT_FOUND)
        if stopped or state.reason in ("Stopped", "Lost", "Signaled"):
            wl.mark(self.ctx, w.id, Phase.FAILED, "Interrupted", "stopped with the server")
        else:
            change = wl.transition(w, state)
            if change is not None:
                wl.record(self.ctx, w.id, change)


def _delete_unreadable(world: World, row: ResourceRecord) -> Plan:
    """Deleting a resource whose stored spec no longer validates: what runs for it stops,
    then the rows go; its data stays (what to purge is in the spec that cannot be read)."""
    status = DESCRIPTOR[row.kind].status(
        phase=Phase.TERMINATING,
        reason="Deleting",
        message="its stored spec no longer validates: any data it has is kept",
    )
    active = [w.id for w in world.workloads.get(row.uid, []) if w.phase in ACTIVE]
    if active:
        return Plan(status, stops=active)
    return Plan(status, delete=Delete(registry_model=row.kind == "Model"))
