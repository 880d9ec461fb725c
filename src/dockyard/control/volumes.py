"""Volumes: the directory of their tier, usage, snapshots on request or schedule, restores and
backups — each a background task the pure ``plan`` asks for.

Usage is measured again when a workload that mounts the volume ended since the last
measurement, every ``WHILE_USED`` while one runs, and at least every ``USAGE_EVERY``: an
idle volume costs nothing. A snapshot is taken when ``dockyard volumes snapshot`` asked for
one (``control.snapshot``, a counter) or a schedule tick passed; a backup pushes every new
snapshot to ``spec.backup.target``; an in-place restore (``control.restore``) waits until no
workload mounts the volume.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from croniter import croniter

from dockyard.control.context import Context
from dockyard.control.plan import Delete, Event, Plan, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import Work
from dockyard.control.volume_dirs import tier_of
from dockyard.control.world import TaskView, World
from dockyard.runtimes.base import ClusterVolumes
from dockyard.spec import DESCRIPTOR, VolumeSpec
from dockyard.spec.status import ACTIVE, Phase, VolumeStatus

USAGE_EVERY = timedelta(hours=1)
WHILE_USED = timedelta(seconds=30)


@dataclass(frozen=True)
class Observed:
    generation: int
    path: Path
    status: VolumeStatus
    usage: TaskView | None = None
    deleting: bool = False
    purge: bool = False
    at: datetime | None = None
    used_until: datetime | None = None  # when the last workload mounting it ended
    in_use: bool = False  # a workload mounting it runs
    created: datetime | None = None
    control: dict[str, Any] | None = None  # snapshot / restore requests
    snapshot: TaskView | None = None
    restore: TaskView | None = None
    backup: TaskView | None = None
    users: tuple[tuple[str, str], ...] = ()  # running workloads that mount it: (id, runtime)
    claims: bool = False  # its data is a claim on a cluster (measured by a pod, not here)


def want(task: TaskView | None, token: str, at: datetime | None) -> bool | datetime:
    """Whether to ask for ``token`` now: True, False (running or done), or when to retry."""
    if task is None or task.token != token:
        return True
    if task.state in ("running", "succeeded"):
        return False
    retry = task.retry_at()
    if retry is not None and at is not None and retry > at:
        return retry
    return True


def _tick(schedules: list[str], since: datetime, at: datetime) -> tuple[datetime | None, datetime]:
    """(the latest tick in (since, at] if any, the next tick after ``at``)."""
    latest: datetime | None = None
    upcoming = []
    for schedule in schedules:
        prev = croniter(schedule, at).get_prev(datetime)
        if prev > since and (latest is None or prev > latest):
            latest = prev
        upcoming.append(croniter(schedule, at).get_next(datetime))
    return latest, min(upcoming)


def _usage(
    obs: Observed, status: VolumeStatus
) -> tuple[VolumeStatus, TaskRequest | None, datetime | None]:
    """The status with the last measurement, the measurement to ask for, when to look again."""
    token = f"g{obs.generation}"
    usage = obs.usage
    newer = (
        status.last_snapshot_at is None
        or usage is None
        or usage.finished_at is None
        or usage.finished_at >= status.last_snapshot_at
    )  # else the snapshot counted the files later
    if usage is not None and usage.done_for(token) and usage.state == "succeeded" and newer:
        status = status.but(
            files=usage.result.get("files"),
            used_bytes=usage.result.get("bytes"),
            usage_at=usage.finished_at,
            claim=usage.result.get("claim"),
        )
    measured = status.usage_at if usage is not None and usage.token == token else None
    every = WHILE_USED if obs.in_use else USAGE_EVERY
    stale = (
        measured is None
        or obs.at is None
        or obs.at - measured > every
        or (obs.used_until is not None and obs.used_until > measured)
    )
    task = None
    # a claim is measured by a pod that mounts it: not while a workload holds it (it may be
    # attached to another node), but once that ended
    busy = obs.claims and obs.in_use
    if stale and not busy and (usage is None or not usage.running_for(token)):
        task = TaskRequest("usage", token)
    recheck = measured + every if measured is not None and not stale else None
    return status, task, recheck


def plan(spec: VolumeSpec, obs: Observed) -> Plan:
    if obs.deleting:
        return Plan(
            VolumeStatus(phase=Phase.TERMINATING, reason="Deleting"),
            delete=Delete(
                purge=((obs.path.parent, obs.path.name),) if obs.purge else (),
                claim=obs.purge and obs.claims,
            ),
        )
    control = obs.control or {}
    status = obs.status.but(
        phase=Phase.READY,
        reason="",
        message="",
        path=str(obs.path),
        tier=tier_of(obs.status, spec),
        observed_generation=obs.generation,
    )
    tasks: list[TaskRequest] = []
    events: list[Event] = []
    rechecks: list[datetime] = []
    notes: list[str] = []
    if spec.tier != status.tier:
        notes.append(
            f"the data stays in tier '{status.tier}': to move it, snapshot and restore to a "
            f"new volume of tier '{spec.tier}'"
        )

    # the first contents, from a snapshot of another volume
    if spec.source is not None and status.restored_from != spec.source.snapshot:
        token = f"s{spec.source.volume}@{spec.source.snapshot}"
        task = obs.restore
        if task is not None and task.token == token and task.state == "succeeded":
            status = status.but(restored_from=spec.source.snapshot)
            events.append(Event("Restored", f"from {spec.source.volume}@{spec.source.snapshot}"))
        elif task is not None and task.token == token and task.state == "failed":
            return Plan(status.but(phase=Phase.FAILED, reason="RestoreFailed", message=task.error))
        else:
            args = {"volume": spec.source.volume, "snapshot": spec.source.snapshot}
            if want(task, token, obs.at) is True:
                tasks.append(TaskRequest("restore", token, args))
            msg = f"restoring {spec.source.volume}@{spec.source.snapshot}"
            if task is not None and task.progress:
                msg += f": {task.progress}"
            pending = status.but(phase=Phase.PENDING, reason="Restoring", message=msg)
            return Plan(pending, tasks=tasks)

    # an in-place restore asked for
    restore = control.get("restore") or {}
    if int(restore.get("n", 0)) > status.restore_request:
        token = f"i{restore['n']}@{restore['snapshot']}"
        task = obs.restore
        if task is not None and task.token == token and task.state in ("succeeded", "failed"):
            status = status.but(restore_request=int(restore["n"]))
            if task.state == "succeeded":
                events.append(Event("Restored", f"in place from {restore['snapshot']}"))
            else:
                events.append(Event("RestoreFailed", task.error, "Warning"))
        elif obs.in_use:
            notes.append(f"restore of {restore['snapshot']} waits: a workload mounts the volume")
        elif want(task, token, obs.at) is True:
            tasks.append(TaskRequest("restore", token, {"snapshot": restore["snapshot"]}))

    # snapshots: on request, or at a schedule's tick
    snap = obs.snapshot
    if snap is not None and snap.state == "succeeded" and snap.result.get("id"):
        r = snap.result
        if r["id"] != status.last_snapshot:
            events.append(Event("Snapshot", f"{r['id']}: {r['files']} file(s), {r['bytes']} B"))
        taken = datetime.fromisoformat(r["created"])
        status = status.but(last_snapshot=r["id"], last_snapshot_at=taken, snapshots=r.get("count"))
        if status.usage_at is None or status.usage_at < taken:
            status = status.but(files=r["files"], used_bytes=r["bytes"])  # counted exactly
        if snap.token.startswith("r"):
            status = status.but(snapshot_request=max(status.snapshot_request, int(snap.token[1:])))
        elif snap.token.startswith("c"):
            done = datetime.fromisoformat(snap.token[1:])
            status = status.but(scheduled_at=max(filter(None, [status.scheduled_at, done])))
    elif snap is not None and snap.state == "failed":
        notes.append(f"snapshot failed: {snap.error}")
    asked = int(control.get("snapshot", 0))
    schedules = [p.schedule for p in (spec.snapshots, spec.backup) if p is not None and p.schedule]
    wanted: str | None = None
    if asked > status.snapshot_request:
        wanted = f"r{asked}"
    elif schedules and obs.at is not None:
        since: datetime = status.scheduled_at or obs.created or obs.at
        tick, upcoming = _tick(schedules, since, obs.at)
        rechecks.append(upcoming)
        if tick is not None:
            wanted = f"c{tick.isoformat()}"
    if wanted is not None and not (snap is not None and snap.running_for(wanted)):
        go = want(snap, wanted, obs.at)
        if go is True:
            tasks.append(TaskRequest("snapshot", wanted, {"users": list(obs.users)}))
        elif isinstance(go, datetime):
            rechecks.append(go)

    # backups: every new snapshot goes to the target
    if spec.backup is not None and status.last_snapshot:
        backup = obs.backup
        token = f"b{status.last_snapshot}"
        if backup is not None and backup.token == token and backup.state == "succeeded":
            if status.last_backup != status.last_snapshot:
                events.append(Event("BackedUp", f"{status.last_snapshot} to {spec.backup.target}"))
            status = status.but(
                last_backup=status.last_snapshot,
                last_backup_at=backup.finished_at,
                backup_target=spec.backup.target,
            )
        elif status.last_backup != status.last_snapshot:
            if backup is not None and backup.token == token and backup.state == "failed":
                notes.append(f"backup failed: {backup.error}")
            go = want(backup, token, obs.at)
            if go is True:
                tasks.append(TaskRequest("backup", token, {"snapshot": status.last_snapshot}))
            elif isinstance(go, datetime):
                rechecks.append(go)
    if obs.snapshot is not None and obs.snapshot.state == "running" and obs.snapshot.progress:
        notes.append(f"snapshot: {obs.snapshot.progress}")

    status, usage_task, recheck = _usage(obs, status)
    if usage_task is not None:
        tasks.append(usage_task)
    if recheck is not None:
        rechecks.append(recheck)
    if notes:
        status = status.but(message="; ".join(notes))
    return Plan(status, tasks=tasks, events=events, recheck_at=min(rechecks, default=None))


def use_of_volumes(
    world: World,
) -> dict[tuple[str, str], tuple[datetime | None, bool, tuple[tuple[str, str], ...]]]:
    """(project, volume) → (when a workload mounting it last ended, whether one runs, the
    running ones as (id, runtime))."""
    key = "volume-use"
    if key not in world.memo:
        by_uid = {r.uid: r for r in world.rows.values()}
        use: dict[tuple[str, str], tuple[datetime | None, bool, tuple[tuple[str, str], ...]]]
        use = {}
        for uid, workloads in world.workloads.items():
            row = by_uid.get(uid)
            spec = world.spec_of_other(row) if row is not None and workloads else None
            if row is None or spec is None:
                continue
            running = tuple((w.id, w.runtime) for w in workloads if w.phase in ACTIVE)
            ended = max((w.finished_at for w in workloads if w.finished_at), default=None)
            for ref in DESCRIPTOR[row.kind].references(spec):
                if ref.kind != "Volume":
                    continue
                before, active, users = use.get((row.project, ref.name), (None, False, ()))
                latest = max(filter(None, [before, ended]), default=None)
                use[(row.project, ref.name)] = (latest, active or bool(running), users + running)
        world.memo[key] = use
    result: dict[tuple[str, str], tuple[datetime | None, bool, tuple[tuple[str, str], ...]]]
    result = world.memo[key]
    return result


class VolumeReconciler:
    kind = "Volume"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: VolumeSpec) -> Observed:
        used_until, in_use, users = use_of_volumes(world).get(
            (row.project, row.name), (None, False, ())
        )
        status = VolumeStatus.model_validate(row.status)
        return Observed(
            row.generation,
            self.ctx.volumes.path(row.project, row.name, tier_of(status, spec)),
            status,
            world.task(f"{row.uid}:usage"),
            row.deleted_at is not None,
            bool(row.control.get("purge")),
            world.at,
            used_until,
            in_use,
            row.created_at,
            row.control,
            world.task(f"{row.uid}:snapshot"),
            world.task(f"{row.uid}:restore"),
            world.task(f"{row.uid}:backup"),
            users,
            isinstance(self.ctx.runtime, ClusterVolumes),
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: VolumeSpec, task: TaskRequest) -> Work:
        from dockyard.control import volume_tasks  # the work needs what the plan must not

        return volume_tasks.work(self.ctx, row, spec, task)
