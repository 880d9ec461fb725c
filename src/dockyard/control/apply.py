"""The one applier: carries a reconciler's ``Plan`` out.

It writes the status (with a ``Ready`` condition whose transition time only moves when it
flips) and the events, submits stops, background tasks and a deletion's finalizer as
tasks, and schedules the plans' starts on the node: an admitted workload gets its row
(before anything runs, with a deterministic id, so it can never start twice) and a start
task in its runtime's lane; one that does not fit says why in its resource's status.
"""

from __future__ import annotations

import logging
import shutil
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from dockyard.control import workloads as wl
from dockyard.control.context import Context, now
from dockyard.control.plan import Delete, Event, Plan, Start, TaskRequest
from dockyard.control.reconciler import Reconciler
from dockyard.control.records import ResourceRecord
from dockyard.control.scheduler import Decision, Demand, Usage, schedule
from dockyard.control.tasks import TaskHandle
from dockyard.control.world import World
from dockyard.errors import DockyardError, NotLeading, StaleWrite
from dockyard.paths import Inside
from dockyard.runtimes.base import ClusterVolumes, Revisions, VolumeRef
from dockyard.spec.status import ACTIVE, READY, Phase, Status
from dockyard.store import events
from dockyard.store import model_versions as versions_repo
from dockyard.store import resources as repo
from dockyard.store import tasks as tasks_repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import WorkloadRow

log = logging.getLogger("dockyard.control")
WARNING_REASONS = ("Lost", "OOMKilled", "Timeout", "ReconcileError", "Unschedulable")


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def with_conditions(old: dict[str, Any], new: dict[str, Any], at: datetime) -> dict[str, Any]:
    """Add a ``Ready`` condition that keeps its transition time while it does not change."""
    ready = "True" if new.get("phase") in READY else "False"
    previous = next((c for c in old.get("conditions", []) if c.get("type") == "Ready"), None)
    changed = previous is None or previous.get("status") != ready
    condition = {
        "type": "Ready",
        "status": ready,
        "reason": new.get("reason") or new.get("phase", ""),
        "message": new.get("message", ""),
        "lastTransitionTime": _iso(at)
        if changed or previous is None
        else previous.get("lastTransitionTime"),
    }
    return {**new, "conditions": [condition]}


@dataclass
class Pending:
    row: ResourceRecord
    plan: Plan
    starts: list[Start]


class Applier:
    def __init__(self, ctx: Context, reconcilers: dict[str, Reconciler]) -> None:
        self.ctx = ctx
        self.reconcilers = reconcilers
        self.changed = False  # a phase changed in this pass: others may be unblocked
        self.wrote = False  # the last apply wrote a status
        self.recheck: datetime | None = None  # the earliest retry of a failed stop/finalizer
        self.gone: list[str] = []  # deleted resources with nothing to clean up but rows

    # -- status and events ------------------------------------------------------------------
    def write_status(
        self, row: ResourceRecord, status: Status, extra: Sequence[Event] = ()
    ) -> bool:
        """Persist ``status`` if it changed; an event on a phase or reason change."""
        new = status.dump()
        new.pop("conditions", None)
        at = now()
        full = with_conditions(row.status, new, at)
        flipped = (full.get("phase"), full.get("reason")) != (
            row.status.get("phase"),
            row.status.get("reason"),
        )
        full["since"] = _iso(at) if flipped or not row.status.get("since") else row.status["since"]
        if full == row.status and not extra:
            return False
        with self.ctx.store.session() as session:  # only while leading, only over what it read
            self.ctx.fence(session)
            row.status_version = repo.set_status(session, row.uid, full, row.status_version)
            for event in extra:
                events.record(session, row, event.reason, event.message, event.type)
            if flipped and full.get("phase") and not extra:
                _phase_event(session, row, full)
        row.status = full
        self.changed = self.changed or flipped
        return True

    # -- one plan -----------------------------------------------------------------------------
    def apply(self, world: World, row: ResourceRecord, plan: Plan) -> Pending | None:
        """Carry out everything but the starts; those come back for scheduling."""
        self.wrote = False
        for wid in plan.stops:
            self._stop(world, row, wid)
        for wid, replicas in plan.scales:
            self._scale(world, row, wid, replicas)
        for task in plan.tasks:
            self._task(world, row, task)
        if plan.delete is not None:
            self._delete(world, row, plan.delete)
        if plan.starts and row.deleted_at is None:
            return Pending(row, plan, list(plan.starts))
        self.wrote = self.write_status(row, plan.status, plan.events)
        return None

    def _scale(self, world: World, row: ResourceRecord, wid: str, replicas: int) -> None:
        """A revision to ``replicas``, in its runtime's lane; its row then reserves as many."""
        key = f"scale:{wid}:{replicas}"
        if self._waiting(world, key):
            return
        owned = {w.id: w for w in world.owned(row.uid)}
        if wid not in owned:
            return
        runtime = owned[wid].runtime

        def scale(handle: TaskHandle) -> None:
            engine = self.ctx.runtime_for(runtime)
            assert isinstance(engine, Revisions)
            engine.scale(wid, replicas)

            def record(session: Session) -> None:
                live = session.get(WorkloadRow, wid)
                if live is None:
                    return
                before = max(int(live.details.get("replicas", 1)), 1)
                per = {k: live.request.get(k, 0) / before for k in ("cpu", "memory", "gpu")}
                live.request = {
                    **live.request,
                    "cpu": per["cpu"] * replicas,
                    "memory": round(per["memory"] * replicas),
                    "gpu": round(per["gpu"] * replicas),
                }
                live.details = {**live.details, "replicas": replicas}

            handle.write(record)

        self.ctx.tasks.submit(
            key, row.uid, "scale", str(replicas), scale, lane=self.ctx.lane_of(runtime), keep=False
        )

    def _waiting(self, world: World, key: str) -> bool:
        """A stop or finalizer that failed runs again only after its backoff."""
        task = world.task(key)
        retry = task.retry_at() if task is not None else None
        if retry is not None and retry > world.at:
            self.recheck = min(filter(None, [self.recheck, retry]))
            return True
        return False

    def _stop(self, world: World, row: ResourceRecord, wid: str) -> None:
        workload = next((w for w in world.owned(row.uid) if w.id == wid), None)
        if (
            workload is None
            or workload.phase not in ACTIVE
            or self._waiting(world, wl.stop_key(wid))
        ):
            return
        self.ctx.tasks.submit(
            wl.stop_key(wid),
            row.uid,
            "stop",
            wid,
            lambda h: wl.run_stop(self.ctx, wid, workload.runtime, h),
            lane=self.ctx.lane_of(workload.runtime),
            timeout=self.ctx.settings.stop_grace_seconds + 120,
            keep=False,
        )

    def _task(self, world: World, row: ResourceRecord, task: TaskRequest) -> None:
        work = self.reconcilers[row.kind].work(row, world.spec(row), task)
        self.ctx.tasks.submit(
            f"{row.uid}:{task.name}",
            row.uid,
            task.name,
            task.token,
            work,
            lane=task.lane,
            steal_from=task.steal_from,
        )

    def _delete(self, world: World, row: ResourceRecord, delete: Delete) -> None:
        key = f"{row.uid}:finalize"
        if self._waiting(world, key):
            return
        owned = [(w.id, w.runtime) for w in world.owned(row.uid)]
        if not owned and not delete.purge and not delete.registry_model and not delete.claim:
            self.gone.append(row.uid)  # nothing slow to do: the rows go at the end of the pass
            return

        def finalize(handle: TaskHandle) -> None:
            for wid, runtime in owned:
                self.ctx.runtime_for(runtime).remove(wid)
                shutil.rmtree(self.ctx.settings.home / "outputs" / wid, ignore_errors=True)
            for root, rel in delete.purge:  # what a workload left there is not followed
                Inside(root).remove(rel)
            if delete.claim and isinstance(self.ctx.runtime, ClusterVolumes):
                done = self.ctx.runtime.delete_volume(row.project, VolumeRef(row.name, uid=row.uid))
                log.info("volume %s/%s: %s", row.project, row.name, done)

            def forget(session: Session) -> None:
                workloads_repo.remove_for_owner(session, row.uid)
                tasks_repo.remove_for_owner(session, row.uid, keep=key)
                if delete.registry_model:
                    versions_repo.delete_model(session, row.project, row.name)
                repo.purge(session, row.uid)

            handle.write(forget)
            if delete.registry_model:
                models = self.ctx.settings.home / "models" / row.project / row.name
                shutil.rmtree(models, ignore_errors=True)

        # it removes workloads (or a claim) in their runtime's lane
        lane = "default"
        if owned or delete.claim:
            lane = self.ctx.lane_of(owned[0][1] if owned else None)
        self.ctx.tasks.submit(
            key, row.uid, "finalize", str(row.generation), finalize, lane=lane, keep=False
        )

    def forget_gone(self) -> None:
        """Drop the rows of this pass's simple deletions, in one transaction."""
        if not self.gone:
            return
        with self.ctx.store.session() as session:
            self.ctx.fence(session)
            repo.purge_many(session, self.gone)
        self.gone = []
        self.changed = True

    # -- scheduling -------------------------------------------------------------------------
    def start_all(self, world: World, pending: list[Pending]) -> bool:
        """Schedule every start of this pass; True if any was admitted."""
        # each runtime is its own place: this machine, or a cluster
        used: dict[str, Usage] = defaultdict(Usage)
        for owned in world.workloads.values():
            for w in owned:
                if w.phase in ACTIVE:
                    used[w.runtime].add(
                        float(w.request.get("cpu", 0)),
                        int(w.request.get("memory", 0)),
                        list(w.request.get("gpuIndices", [])),
                        wid=w.id,
                        gpu=int(w.request.get("gpu", 0)),
                    )
        demands: dict[str, list[Demand]] = defaultdict(list)
        for p in pending:
            for s in p.starts:
                created = s.created_at or p.row.created_at
                demands[self.ctx.runtime_name(s.runtime)].append(
                    Demand(
                        f"{p.row.uid}:{s.workload_id}",
                        s.need.cpu,
                        s.need.memory,
                        s.need.gpu,
                        s.priority,
                        created,
                        s.count,
                        s.request.gpu_type,
                    )
                )
        decisions: dict[str, Decision] = {}
        grows: set[str] = set()  # the runtimes whose homes may get bigger nodes
        for runtime, wanted in demands.items():
            try:
                node = self.ctx.runtime_for(runtime).node()
            except DockyardError as exc:  # e.g. no cluster configured: say so on each
                decisions.update({d.key: Decision(False, str(exc)) for d in wanted})
                continue
            if node.grows:
                grows.add(runtime)
            decisions.update(schedule(node, used[runtime], wanted))
        admitted_any = False
        for p in pending:
            admitted: list[Start] = []
            why = ""
            for s in p.starts:
                decision = decisions[f"{p.row.uid}:{s.workload_id}"]
                if not decision.admitted:
                    why = why or decision.reason
                    continue
                try:
                    self._start(p.row, s, decision.gpu_indices)
                except StaleWrite:  # no longer leading: nothing more may land
                    raise
                except Exception as exc:  # the store failed: the next pass tries again
                    log.exception("could not start %s", s.workload_id)
                    why = why or f"could not start: {exc}"
                    continue
                admitted.append(s)
            try:
                if admitted:
                    admitted_any = True
                    first = admitted[0]
                    started = [Event("Started", s.event) for s in admitted if s.event]
                    status = first.running or p.plan.status
                    self.write_status(p.row, status, p.plan.events + started)
                    continue
                status = p.plan.status.but(phase=Phase.PENDING, reason="Unschedulable", message=why)
                if self._give_up(p, decisions, grows):
                    admitted_any = True  # its plan sees the attempt that never started
                    continue
                self.write_status(p.row, status, p.plan.events)
            except NotLeading:
                raise
            except StaleWrite:  # its status was written since this pass read it: plan again
                self.changed = True
        return admitted_any

    def _give_up(self, p: Pending, decisions: dict[str, Decision], grows: set[str]) -> bool:
        """A resource whose starts no node of their home can ever hold, unschedulable for
        DOCKYARD_UNSCHEDULABLE_SECONDS already: each start becomes an attempt that failed as
        ``Unschedulable`` (never started), which its plan reports (True)."""
        deadline = self.ctx.settings.unschedulable_seconds
        decided = [decisions[f"{p.row.uid}:{s.workload_id}"] for s in p.starts]
        if not deadline or not all(d.never_fits for d in decided):
            return False
        if any(self.ctx.runtime_name(s.runtime) in grows for s in p.starts):
            return False
        status = p.row.status
        since = status.get("since")
        if status.get("reason") != "Unschedulable" or not since:
            return False
        waited = (now() - datetime.fromisoformat(since.replace("Z", "+00:00"))).total_seconds()
        if waited < deadline:
            return False
        for start, decision in zip(p.starts, decided, strict=True):
            message = (
                f"{decision.reason}: no node of its home can ever hold it; gave up after "
                f"{waited:.0f} s (DOCKYARD_UNSCHEDULABLE_SECONDS={deadline:g})"
            )
            self._record_never_started(p.row, start, message)
        return True

    def _record_never_started(self, row: ResourceRecord, start: Start, message: str) -> None:
        with self.ctx.store.session() as session:
            self.ctx.fence(session)
            if session.get(WorkloadRow, start.workload_id) is None:
                failed = self._row(row, start, (), Phase.FAILED, "Unschedulable", message)
                failed.finished_at = failed.created_at
                session.add(failed)

    def _row(
        self,
        row: ResourceRecord,
        start: Start,
        gpus: tuple[int, ...],
        phase: str = Phase.STARTING,
        reason: str = "",
        message: str = "",
    ) -> WorkloadRow:
        """The workload row of ``start``, reserving what it needs (a revision: all its
        replicas)."""
        need = start.need
        secrets = {"secrets": start.request.secrets} if start.request.secrets else {}
        return WorkloadRow(
            id=start.workload_id,
            owner_uid=row.uid,
            owner_kind=row.kind,
            role=start.role,
            generation=start.generation,
            number=start.number,
            runtime=self.ctx.runtime_name(start.runtime),
            phase=phase,
            exit_code=None,
            reason=reason,
            message=message,
            request={
                "cpu": need.cpu * start.count,
                "memory": need.memory * start.count,
                "gpu": need.gpu * start.count,
                "gpuIndices": list(gpus),
            },
            details={**start.details, **secrets},
            created_at=now(),
        )

    def _start(self, row: ResourceRecord, start: Start, gpus: tuple[int, ...]) -> None:
        with self.ctx.store.session() as session:
            self.ctx.fence(session)
            if session.get(WorkloadRow, start.workload_id) is None:
                session.add(self._row(row, start, gpus))
        self.ctx.tasks.submit(
            wl.start_key(start.workload_id),
            row.uid,
            "start",
            start.workload_id,
            lambda h: wl.run_start(self.ctx, start, gpus, h),
            lane=self.ctx.lane_of(start.runtime),
            timeout=600,
            keep=False,
        )


def _phase_event(session: Session, row: ResourceRecord, status: dict[str, Any]) -> None:
    phase, reason = status.get("phase", ""), status.get("reason", "")
    message = status.get("message", "")
    warning = phase == Phase.FAILED or reason in WARNING_REASONS
    events.record(
        session, row, reason or phase, message or phase, "Warning" if warning else "Normal"
    )
