"""Datasets: fetch a source or run a preparation command, then checksum the result.

Fetching and checksumming are one ``commit`` task per generation; a preparation is a
workload that writes into a staging directory next to the dataset, committed when it
succeeds. ``plan`` is pure; the commit task writes the manifest and reports a summary.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dockyard.control import workloads as wl
from dockyard.control.context import Context
from dockyard.control.plan import Delete, FreshDir, Plan, Run, Start, TaskRequest, Within
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.volume_dirs import tier_of, volume_root
from dockyard.control.world import TaskView, World
from dockyard.data import backups
from dockyard.data import datasets as data
from dockyard.data.files import atomic_write_json
from dockyard.data.snapshots import dataset_key
from dockyard.paths import Inside
from dockyard.runtimes.base import VolumeRef, WorkloadRequest
from dockyard.spec import DatasetSpec
from dockyard.spec.common import split_env
from dockyard.spec.datasets import MAX_VERSIONS, PrepareSpec
from dockyard.spec.status import ACTIVE, DatasetStatus, DatasetVersion, Phase


@dataclass(frozen=True)
class Observed:
    generation: int
    name: str
    workload_prefix: str  # "prepare-NAME-UID8"
    project: str
    status: DatasetStatus  # of this generation (empty otherwise)
    target: Within  # the volume and the dataset's directory in it
    staging: Within  # where a preparation writes
    runs: tuple[Run, ...] = ()  # preparations of this generation
    stale: tuple[str, ...] = ()  # preparations of older generations still running
    commit: TaskView | None = None
    volume_ready: bool = True
    inputs: wl.Inputs | None = None
    deleting: bool = False
    purge: bool = False
    volume: VolumeRef | None = None  # the dataset's volume, for runtimes without host dirs
    versions: tuple[DatasetVersion, ...] = ()  # of every generation so far
    at: datetime | None = None
    origin: Within | None = None  # the directory of a volume:// source
    tier: str = "standard"  # of the dataset's volume


def _waiting(obs: Observed, phase: Phase, reason: str, message: str, **extra: Any) -> Plan:
    status = DatasetStatus(
        phase=phase, reason=reason, message=message, observed_generation=obs.generation
    )
    return Plan(status, stops=list(obs.stale), **extra)


def plan(spec: DatasetSpec, obs: Observed) -> Plan:
    """The plan, with the versions known so far carried in every status."""
    result = _plan(spec, obs)
    status = result.status
    if isinstance(status, DatasetStatus) and not status.versions and obs.versions:
        result.status = status.but(versions=list(obs.versions))
    return result


def next_versions(
    versions: tuple[DatasetVersion, ...], r: dict[str, Any], generation: int, at: datetime | None
) -> tuple[int, list[DatasetVersion]]:
    """(the current version, all versions) after a commit whose result is ``r``: a new
    version when the checksum differs from the last one's."""
    known = list(versions)
    if known and known[-1].sha256 == r["sha256"]:
        return known[-1].version, known
    number = known[-1].version + 1 if known else 1
    known.append(
        DatasetVersion(
            version=number,
            sha256=r["sha256"],
            files=r["files"],
            bytes=r["bytes"],
            snapshot=r.get("snapshot"),
            generation=generation,
            created=at or datetime.now(UTC),
        )
    )
    return number, known[-MAX_VERSIONS:]


def _plan(spec: DatasetSpec, obs: Observed) -> Plan:
    active = [r.id for r in obs.runs if r.phase in ACTIVE]
    token = f"g{obs.generation}"
    commit = obs.commit if obs.commit is not None and obs.commit.token == token else None
    if obs.deleting:
        status = DatasetStatus(phase=Phase.TERMINATING, reason="Deleting")
        if commit is not None and commit.state == "running":  # a fetch is writing
            return Plan(status, stops=active + list(obs.stale))
        purge = (obs.target,) if obs.purge else ()
        return Plan(status, stops=active + list(obs.stale), delete=Delete(purge=purge))
    if commit is not None and commit.state == "succeeded":
        r = commit.result
        version, versions = next_versions(obs.versions, r, obs.generation, commit.finished_at)
        status = DatasetStatus(
            phase=Phase.READY,
            reason="Checksummed",
            message=f"v{version}: {r['files']} file(s), sha256 {r['sha256'][:12]}…",
            version=version,
            versions=versions,
            observed_generation=obs.generation,
            sha256=r["sha256"],
            files=r["files"],
            bytes=r["bytes"],
            path=str(obs.target[0] / obs.target[1]),
            manifest=r["manifest"],
        )
        return Plan(status, stops=list(obs.stale))
    if commit is not None and commit.state == "failed":
        reason = str(commit.result.get("reason") or "Failed")
        return _waiting(obs, Phase.FAILED, reason, commit.error)
    if commit is not None and commit.state == "running":
        if spec.source:
            return _waiting(obs, Phase.FETCHING, "Fetching", commit.progress or "started")
        return _waiting(obs, Phase.CHECKSUMMING, "Checksumming", commit.progress or "started")
    if commit is None and obs.status.phase in (Phase.READY, Phase.FAILED):
        return Plan(obs.status, stops=list(obs.stale))  # recorded before tasks were kept
    if not obs.volume_ready:
        return _waiting(
            obs, Phase.PENDING, "Waiting", f"volume '{spec.volume}' not found: apply it"
        )
    if (origin := spec.source_volume()) is not None and obs.origin is None:
        return _waiting(obs, Phase.PENDING, "Waiting", f"source volume '{origin[0]}' not found")
    if spec.source is not None:
        args: dict[str, Any] = {"fetch": spec.source, "tier": obs.tier}
        if obs.origin is not None:
            args["origin"] = [str(obs.origin[0]), obs.origin[1]]
        fetch = TaskRequest("commit", token, args)
        return _waiting(obs, Phase.FETCHING, "Fetching", f"fetching {spec.source}", tasks=[fetch])
    return _prepare(spec, obs, token, active)


def prepare_request(
    prepare: PrepareSpec,
    name: str,
    wid: str,
    inputs: wl.Inputs,
    output_dir: Path,
    output_volume: VolumeRef | None,
) -> WorkloadRequest:
    """What a dataset's preparation runs: the one builder, for the loop and for render."""
    need = wl.need_of(prepare.resources)
    plain, secrets = split_env(prepare.env)
    return WorkloadRequest(
        id=wid,
        command=prepare.command,
        env={"DOCKYARD_DATASET": name, **plain},
        secrets=secrets,
        environment=inputs.environment,
        mounts=inputs.mounts,
        output_dir=output_dir,
        output_volume=output_volume,
        cpu=need.cpu,
        cpu_limit=need.cpu_limit,
        memory=need.memory or None,
        labels={"dockyard.dev/dataset": name},
        gpu_type=prepare.resources.gpu_type,
        gpu=prepare.resources.gpu,
    )


def _prepare(spec: DatasetSpec, obs: Observed, token: str, active: list[str]) -> Plan:
    prepare = spec.prepare
    assert prepare is not None
    running = f"running {' '.join(prepare.command)}"
    last = obs.runs[-1] if obs.runs else None
    number = 1 if last is None else last.number + 1
    if last is not None and last.reason == "Interrupted":
        last = None  # stopped with the server: prepare again
    if last is not None and last.phase in ACTIVE:
        return _waiting(obs, Phase.PREPARING, "Running", running)
    if last is not None and last.phase == Phase.SUCCEEDED:
        commit = TaskRequest("commit", token, {"tier": obs.tier})
        return _waiting(obs, Phase.CHECKSUMMING, "Checksumming", "checksumming", tasks=[commit])
    if last is not None:
        tail = last.details.get("logTail") or ""
        message = f"the prepare command failed: {last.message}" + (f": {tail}" if tail else "")
        return _waiting(obs, Phase.FAILED, last.reason or "Failed", message)
    inputs = obs.inputs or wl.Inputs()
    if inputs.fatal:
        return _waiting(obs, Phase.FAILED, "Waiting", inputs.fatal)
    if inputs.blocked:
        return _waiting(obs, Phase.PENDING, "Waiting", inputs.blocked)
    wid = f"{obs.workload_prefix}-g{obs.generation}-r{number}"
    need = wl.need_of(prepare.resources)
    output_dir = obs.staging[0] / obs.staging[1]
    request = prepare_request(prepare, obs.name, wid, inputs, output_dir, obs.volume)
    status = DatasetStatus(
        phase=Phase.PENDING,
        reason="Scheduling",
        message="waiting for resources",
        observed_generation=obs.generation,
    )
    start = Start(
        wid,
        "prepare",
        obs.generation,
        number,
        prepare.runtime,
        request,
        need,
        project=obs.project,
        steps=(FreshDir(obs.staging), *inputs.steps),
        running=status.but(phase=Phase.PREPARING, reason="Running", message=running),
        event=f"preparation {number} started as {wid}",
    )
    return Plan(status, starts=[start], stops=list(obs.stale))


def staging_of(target: str, generation: int) -> str:
    """Where a preparation writes: next to the dataset's directory on its volume."""
    parent, _, name = target.rpartition("/")
    staging = f".{name}.prepare-g{generation}"
    return f"{parent}/{staging}" if parent else staging


class DatasetReconciler:
    kind = "Dataset"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: DatasetSpec) -> Observed:
        volume, target = wl.dataset_dir(self.ctx, world, row)
        vol = world.get("Volume", row.project, spec.volume)
        runs = [wl.run_of(w) for w in world.owned(row.uid)]
        current = row.status.get("observedGeneration") == row.generation
        mine = tuple(r for r in runs if r.generation == row.generation)
        last = mine[-1] if mine else None
        needs_inputs = spec.prepare is not None and (last is None or last.reason == "Interrupted")
        return Observed(
            row.generation,
            row.name,
            f"prepare-{row.name}-{row.uid[:8]}",
            row.project,
            DatasetStatus.model_validate(row.status if current else {}),
            (volume, target),
            (volume, staging_of(target, row.generation)),
            mine,
            tuple(r.id for r in runs if r.generation != row.generation and r.phase in ACTIVE),
            world.task(f"{row.uid}:commit"),
            vol is not None,
            wl.resolve_inputs(self.ctx, world, row, spec.prepare)
            if needs_inputs and spec.prepare is not None
            else None,
            row.deleted_at is not None,
            bool(row.control.get("purge")),
            wl.volume_ref(world, vol, target) if vol is not None else None,
            tuple(DatasetStatus.model_validate(row.status).versions),
            world.at,
            self._origin(world, row, spec),
            tier_of(vol.status, world.spec(vol)) if vol is not None else "standard",
        )

    def _origin(self, world: World, row: ResourceRecord, spec: DatasetSpec) -> Within | None:
        origin = spec.source_volume()
        vol = world.get("Volume", row.project, origin[0]) if origin is not None else None
        if origin is None or vol is None:
            return None
        return volume_root(self.ctx, world, vol), origin[1]

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: DatasetSpec, task: TaskRequest) -> Work:
        root = self.ctx.volumes.path(row.project, spec.volume, str(task.args["tier"]))
        volume = Inside(root)
        target = spec.target(row.name)
        manifest = wl.manifest_path(self.ctx, row)
        what, source = f"dataset '{row.name}'", task.args.get("fetch")
        allowed = self.ctx.settings.file_source_dirs
        origin = task.args.get("origin")
        settings = self.ctx.settings
        snapshots = self.ctx.snapshots

        def commit(handle: TaskHandle) -> dict[str, Any]:
            directory = staging_of(target, row.generation)
            if source is not None:
                directory = data.staging_dir(volume, target)

                def progress(done: int, total: int | None) -> None:
                    of = f" of {total >> 10} KiB" if total else ""
                    handle.progress(f"{done >> 10} KiB{of}")

                try:
                    data.fetch(
                        source,
                        volume,
                        directory,
                        progress,
                        allowed,
                        origin=Inside(Path(origin[0]) / origin[1]) if origin else None,
                        s3=lambda: backups.client(settings),
                    )
                except BaseException:
                    volume.remove(directory)
                    raise
            handle.progress("checksumming", every=0)
            result = data.commit(volume, directory, target, spec.sha256, what)
            files = result["files"]
            atomic_write_json(manifest, files)
            handle.progress("keeping this version", every=0)
            kept = snapshots.snapshot(
                volume.path(target),
                dataset_key(row.project, row.name),
                tags=["dataset", f"g{row.generation}"],
            )
            return {
                "sha256": result["sha256"],
                "files": len(files),
                "bytes": sum(f["size"] for f in files.values()),
                "manifest": str(manifest),
                "snapshot": kept.id,
            }

        return commit
