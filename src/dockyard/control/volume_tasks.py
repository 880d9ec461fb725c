"""The background work of a Volume's tasks: usage, snapshot (with hooks and retention),
restore and backup. Each returns the result its plan reads."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.control.context import Context
from dockyard.control.plan import TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.volume_dirs import tier_of
from dockyard.control.workloads import resolve_secrets
from dockyard.data import retention
from dockyard.data.backups import Target
from dockyard.data.snapshots import Snapshot, SnapshotStore, new_id, volume_key
from dockyard.errors import EngineError, HookFailed, InvalidRequest, NoSnapshotClass, NotFound
from dockyard.runtimes.base import ClusterVolumes, VolumeRef
from dockyard.spec import VolumeSpec
from dockyard.spec.status import VolumeStatus
from dockyard.spec.volumes import Hook


def _bound(find: Callable[[], Path | None], timeout: float = 60.0) -> Path:
    """The directory of a new claim once its provisioner bound it (on this machine)."""
    deadline = time.monotonic() + timeout
    while (path := find()) is None:
        if time.monotonic() > deadline:
            raise EngineError(
                f"the new claim was not bound to a directory on this machine within {timeout:g} s",
                hint="a class that binds at first use (WaitForFirstConsumer) cannot be restored "
                "into before a pod mounts it; use a CSI class with snapshots",
            )
        time.sleep(0.5)
    return path


def run_hooks(
    ctx: Context, hooks: list[Hook], users: list[list[str]], when: str, handle: TaskHandle
) -> None:
    """Run each hook in every running workload that mounts the volume; a failing pre hook
    fails the snapshot (nothing is taken), a failing post hook is reported."""
    for wid, runtime in users:
        engine = ctx.runtime_for(runtime)
        run = getattr(engine, "exec", None)
        for hook in hooks:
            if run is None:
                raise HookFailed(
                    f"{when} hook: the {runtime} runtime cannot run commands in workloads",
                    hint="remove spec.snapshots.hooks or run the workload on local or podman",
                )
            handle.progress(f"{when} hook in {wid}: {' '.join(hook.command)[:80]}", every=0)
            code, output = run(wid, list(hook.command), hook.timeout_seconds)
            if code != 0:
                raise HookFailed(
                    f"{when} hook {hook.command[0]!r} in workload {wid} exited with {code}: "
                    f"{output.strip()[-400:]}",
                    hint="fix the hook command; nothing was snapshotted",
                )


def _bytes_progress(handle: TaskHandle, total: int, verb: str) -> Any:
    done = [0]

    def step(n: int) -> None:
        done[0] += n
        if total:
            handle.progress(f"{verb} {done[0] * 100 // max(total, 1)}% of {total} B")

    return step


def take(
    ctx: Context, row: ResourceRecord, spec: VolumeSpec, task: TaskRequest, handle: TaskHandle
) -> Snapshot:
    store = ctx.snapshots
    status = VolumeStatus.model_validate(row.status)
    path = ctx.volumes.ensure(row.project, row.name, tier_of(status, spec))
    hooks = spec.snapshots.hooks if spec.snapshots is not None else None
    users: list[list[str]] = list(task.args.get("users", []))
    scheduled = task.token.startswith("c")
    if hooks is not None and hooks.pre:
        run_hooks(ctx, hooks.pre, users, "pre", handle)
    try:
        total = status.used_bytes or 0
        snap = store.snapshot(
            path,
            volume_key(row.project, row.name),
            tags=["scheduled" if scheduled else "manual"],
            progress=_bytes_progress(handle, total, "read"),
        )
    finally:
        if hooks is not None and hooks.post:
            run_hooks(ctx, hooks.post, users, "post", handle)
    if scheduled and spec.snapshots is not None:
        forget(store, volume_key(row.project, row.name), spec)
    return snap


def forget(store: SnapshotStore, key: str, spec: VolumeSpec) -> None:
    """Apply the retention to the scheduled snapshots of ``key`` and free unused chunks."""
    assert spec.snapshots is not None
    scheduled = []
    for sid in store.ids(key):
        summary = store.summary(key, sid)
        if "scheduled" in summary["tags"]:
            scheduled.append((sid, datetime.fromisoformat(summary["created"])))
    keep = retention.kept(scheduled, spec.snapshots.retention)
    gone = [sid for sid, _ in scheduled if sid not in keep]
    if gone:
        store.forget(key, gone)
        store.prune()


def work(ctx: Context, row: ResourceRecord, spec: VolumeSpec, task: TaskRequest) -> Work:
    volumes = ctx.volumes
    status = VolumeStatus.model_validate(row.status)
    tier = tier_of(status, spec)
    key = volume_key(row.project, row.name)
    on_cluster = ctx.runtime if isinstance(ctx.runtime, ClusterVolumes) else None
    ref = VolumeRef(row.name, "", tier, spec.size, spec.replicas, row.uid)

    def usage(_handle: TaskHandle) -> dict[str, Any]:
        if on_cluster is not None:  # its claim, measured in the cluster by a helper pod
            return on_cluster.measure_volume(row.project, ref)
        volumes.ensure(row.project, row.name, tier)
        files, used = volumes.usage(row.project, row.name, tier)
        return {"files": files, "bytes": used}

    def on_cluster_count() -> int:
        assert on_cluster is not None
        return len(on_cluster.volume_snapshots(row.project, row.name)) + len(ctx.snapshots.ids(key))

    def snapshot(handle: TaskHandle) -> dict[str, Any]:
        if on_cluster is not None:  # the data is in a claim: a CSI VolumeSnapshot of it
            hooks = spec.snapshots.hooks if spec.snapshots is not None else None
            if hooks is not None and (hooks.pre or hooks.post):
                raise HookFailed(
                    "snapshot hooks cannot run in pods yet (no exec into the cluster)",
                    hint="remove spec.snapshots.hooks, or flush from the workload itself",
                )
            created = datetime.now(UTC)
            sid = new_id(created)
            try:
                made = on_cluster.snapshot_volume(row.project, ref, sid)
            except NoSnapshotClass as exc:  # Dockyard's own, where the claim lies here
                try:
                    path = _bound(lambda: on_cluster.volume_host_path(row.project, ref), 15)
                except EngineError:
                    raise EngineError(
                        f"{exc.message}, and its claim does not lie on this machine for "
                        "Dockyard's own snapshots",
                        hint=exc.hint,
                    ) from exc
                kind = "scheduled" if task.token.startswith("c") else "manual"
                snap = ctx.snapshots.snapshot(
                    path, key, tags=[kind, "host"], progress=_bytes_progress(handle, 0, "")
                )
                if kind == "scheduled" and spec.snapshots is not None:
                    forget(ctx.snapshots, key, spec)
                return snap.summary() | {"count": on_cluster_count()}
            return {
                "id": sid,
                "created": created.isoformat(),
                "files": status.files or 0,
                "bytes": status.used_bytes or 0,
                "count": on_cluster_count(),
                "volumeSnapshot": made["name"],
            }
        snap = take(ctx, row, spec, task, handle)
        return snap.summary() | {"count": len(ctx.snapshots.ids(key))}

    def restore(handle: TaskHandle) -> dict[str, Any]:
        source = task.args.get("volume")
        from_key = volume_key(row.project, source) if source else key
        sid = str(task.args["snapshot"])
        if on_cluster is not None:
            if not source:
                raise InvalidRequest(
                    "an in-place restore of a volume on Kubernetes replaces its claim",
                    hint="restore to a new volume: dockyard volumes restore NAME -s ID --to NEW",
                )
            if sid not in ctx.snapshots.ids(from_key):  # a CSI snapshot
                return on_cluster.restore_volume(row.project, ref, source, sid)
            path = _bound(lambda: on_cluster.volume_host_path(row.project, ref))
            snap = ctx.snapshots.restore(from_key, sid, path, in_place=True)
            return {"snapshot": sid, "files": snap.files, "bytes": snap.size}
        if not ctx.snapshots.ids(from_key).count(sid):
            raise NotFound(
                f"snapshot '{sid}' of volume '{from_key.split('/')[1]}' not found",
                hint=f"list them with: dockyard volumes snapshots {from_key.split('/')[1]}",
            )
        snap = ctx.snapshots.load(from_key, sid)
        path = volumes.path(row.project, row.name, tier)
        ctx.snapshots.restore(
            from_key,
            sid,
            path,
            in_place=source is None,
            progress=_bytes_progress(handle, snap.size, "restored"),
        )
        return {"snapshot": sid, "files": snap.files, "bytes": snap.size}

    def backup(handle: TaskHandle) -> dict[str, Any]:
        assert spec.backup is not None
        if on_cluster is not None:
            raise InvalidRequest(
                "backups of a volume on Kubernetes are its storage system's (CSI snapshots "
                "exported by Portworx CloudSnap, Velero): Dockyard cannot read the claim",
                hint="remove spec.backup, or use `dockyard backup` for the control plane",
            )
        passphrase = None
        if spec.backup.encryption is not None:
            refs = {"spec.backup.encryption": spec.backup.encryption.secret_ref}
            passphrase = resolve_secrets(ctx, row.project, refs)["spec.backup.encryption"]
        target = Target.open(ctx.settings, spec.backup.target, passphrase)
        sid = str(task.args["snapshot"])
        pushed = target.push(ctx.snapshots, key, [sid], progress=handle.progress)
        if spec.snapshots is not None:
            target.forget_except(key, ctx.snapshots.ids(key))
        return pushed

    works: dict[str, Work] = {
        "usage": usage,
        "snapshot": snapshot,
        "restore": restore,
        "backup": backup,
    }
    return works[task.name]
