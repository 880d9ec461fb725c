"""Turning specs into runtime workloads, and keeping the workloads table in step with them."""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dockyard.control.context import Context, World, now, write_status
from dockyard.control.scheduler import Decision, Demand
from dockyard.data import datasets as data
from dockyard.errors import ChecksumMismatch, DockyardError
from dockyard.runtimes.base import Mount, Phase, PreparedEnvironment, WorkloadRequest
from dockyard.spec.common import DatasetMount, Resources, VolumeMount
from dockyard.store.tables import ResourceRow, WorkloadRow

ACTIVE = ("Starting", "Running")
WAITING_REASONS = ("Unschedulable", "PortInUse")  # set by a start that could not happen
log = logging.getLogger("dockyard.control")


def env_var(prefix: str, name: str) -> str:
    return f"DOCKYARD_{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


def workload_id(prefix: str, row: ResourceRow, *parts: str) -> str:
    return "-".join([prefix, row.name, row.uid[:8], *parts])


@dataclass
class Inputs:
    """What a workload needs before it can start; ``blocked`` says why it cannot yet."""

    mounts: list[Mount]
    environment: PreparedEnvironment | None
    code_dir: Path | None
    blocked: str = ""
    fatal: str = ""


def resolve_environment(
    world: World, project: str, name: str | None, runtime: str
) -> tuple[PreparedEnvironment | None, str]:
    """The environment ``name`` as built for ``runtime``, or why it is not ready."""
    if name is None:
        return None, ""
    env = world.get("Environment", project, name)
    if env is None:
        return None, f"environment '{name}' not found: apply it"
    status = env.status if env.status.get("observedGeneration") == env.generation else {}
    failed = (status.get("failed") or {}).get(runtime)
    if failed:
        return None, f"environment '{name}' failed to build for {runtime}: {failed}"
    prepared = (status.get("prepared") or {}).get(runtime)
    if prepared is None:
        progress = status.get("message") or status.get("phase") or "Pending"
        return None, f"waiting for environment '{name}' ({progress})"
    return PreparedEnvironment.from_dict(prepared), ""


def dataset_dir(ctx: Context, world: World, ds: ResourceRow) -> Path:
    return ctx.volumes.path(ds.project, ds.spec["volume"]) / (ds.spec.get("path") or ds.name)


def resolve_inputs(
    ctx: Context,
    world: World,
    row: ResourceRow,
    spec: dict[str, Any],
    checkpoint: dict[str, Any] | None = None,
) -> Inputs:
    project = row.project
    try:
        runtime = ctx.runtime_for(spec.get("runtime")).name
    except DockyardError as exc:  # e.g. Podman is not installed
        return Inputs([], None, None, fatal=str(exc))
    environment, blocked = resolve_environment(world, project, spec.get("environment"), runtime)
    mounts: list[Mount] = []
    fatal = ""
    for raw in spec.get("volumes", []):
        vm = VolumeMount.model_validate(raw)
        vol = world.get("Volume", project, vm.name)
        if vol is None:
            blocked = blocked or f"volume '{vm.name}' not found: apply it"
            continue
        source = ctx.volumes.ensure(project, vm.name)
        if vm.sub_path:
            source = source / vm.sub_path
            source.mkdir(parents=True, exist_ok=True)
        mounts.append(Mount(source, vm.mount_path(), vm.read_only, env_var("VOLUME", vm.name)))
    if checkpoint is not None:
        vol = world.get("Volume", project, checkpoint["volume"])
        if vol is None:
            blocked = blocked or f"checkpoint volume '{checkpoint['volume']}' not found: apply it"
        else:
            source = (
                ctx.volumes.ensure(project, checkpoint["volume"])
                / "checkpoints"
                / row.name
                / f"g{row.generation}"
            )
            source.mkdir(parents=True, exist_ok=True)
            mounts.append(Mount(source, checkpoint["path"], False, "DOCKYARD_CHECKPOINT_DIR"))
    for raw in spec.get("datasets", []):
        dm = DatasetMount.model_validate(raw)
        ds = world.get("Dataset", project, dm.name)
        if ds is None:
            blocked = blocked or f"dataset '{dm.name}' not found: apply it"
            continue
        if (
            ds.status.get("phase") != "Ready"
            or ds.status.get("observedGeneration") != ds.generation
        ):
            blocked = blocked or (
                f"waiting for dataset '{dm.name}' "
                f"({ds.status.get('message') or ds.status.get('phase', 'Pending')})"
            )
            continue
        target = dataset_dir(ctx, world, ds)
        mounts.append(Mount(target, dm.mount_path(), True, env_var("DATA", dm.name)))
    code_dir = None
    if spec.get("code"):
        if not ctx.code.exists(spec["code"]):
            fatal = f"code snapshot {spec['code']} is missing from the server: apply again"
        else:
            code_dir = ctx.code.unpacked(spec["code"])
    return Inputs(mounts, environment, code_dir, blocked, fatal)


def verify_datasets(ctx: Context, world: World, row: ResourceRow, spec: dict[str, Any]) -> str:
    """'' if every mounted dataset still matches its checksum, else the problem."""
    for raw in spec.get("datasets", []):
        ds = world.get("Dataset", row.project, raw["name"])
        if ds is None or "manifest" not in ds.status:
            continue
        manifest_file = Path(ds.status["manifest"])
        try:
            files = json.loads(manifest_file.read_text())
            data.verify(dataset_dir(ctx, world, ds), files, f"dataset '{ds.name}'")
        except ChecksumMismatch as exc:
            return str(exc)
        except OSError:
            return f"dataset '{ds.name}': its manifest {manifest_file} is missing"
    return ""


@dataclass(frozen=True)
class Need:
    """What a workload reserves (cpu, memory, gpu) and its hard CPU cap."""

    cpu: float
    memory: int
    gpu: int
    cpu_limit: float | None

    def demand(self, key: str, priority: int, created_at: datetime) -> Demand:
        return Demand(key, self.cpu, self.memory, self.gpu, priority, created_at)


def need_of(resources: dict[str, Any]) -> Need:
    r = Resources.model_validate(resources)
    return Need(r.cpu, r.memory or 0, r.gpu, r.cpu_limit)


def start(
    ctx: Context,
    owner: ResourceRow,
    wid: str,
    role: str,
    generation: int,
    number: int,
    request: WorkloadRequest,
    details: dict[str, Any] | None = None,
    runtime: str | None = None,
) -> WorkloadRow:
    """Record the workload first (deterministic id), then start it: never started twice."""
    engine = ctx.runtime_for(runtime)
    row = WorkloadRow(
        id=wid,
        owner_uid=owner.uid,
        owner_kind=owner.kind,
        role=role,
        generation=generation,
        number=number,
        runtime=engine.name,
        phase="Starting",
        exit_code=None,
        reason="",
        message="",
        request={
            "cpu": request.cpu or 0.0,
            "memory": request.memory or 0,
            "gpu": request.gpu,
            "gpuIndices": [
                int(i)
                for i in request.env.get("CUDA_VISIBLE_DEVICES", "").split(",")
                if i.isdigit()
            ],
        },
        details=details or {},
        created_at=now(),
    )
    with ctx.store.session() as session:
        existing = session.get(WorkloadRow, wid)
        if existing is None:
            session.add(row)
        else:
            row = existing
    try:
        state = engine.start(request)
    except Exception as exc:  # the runtime could not even start it: say why, never hang
        log.exception("starting %s failed", wid)
        mark(ctx, wid, "Failed", "StartFailed", f"could not start: {type(exc).__name__}: {exc}")
        with ctx.store.session() as session:
            failed = session.get(WorkloadRow, wid)
            assert failed is not None
            return failed
    with ctx.store.session() as session:
        live = session.get(WorkloadRow, wid)
        assert live is not None
        live.phase = "Running" if state.phase == Phase.RUNNING else live.phase
        live.started_at = state.started_at or now()
        live.details = {**live.details, **state.details}
        row = live
    if state.done:
        return refresh(ctx, row)
    return row


def refresh(ctx: Context, row: WorkloadRow) -> WorkloadRow:
    """Observe an active workload in the runtime and record what changed."""
    if row.phase not in ACTIVE:
        return row
    state = ctx.runtime_for(row.runtime).observe(row.id)
    if state.phase == Phase.NOT_FOUND:
        if row.phase == "Starting":  # recorded, but the server stopped before starting it
            phase, reason = "Failed", "Interrupted"
            message = "recorded but never started (the server stopped in between)"
        else:
            phase, reason, message = "Failed", "Lost", "the workload disappeared from the runtime"
    elif state.phase == Phase.RUNNING:
        if row.phase == "Running" and all(
            row.details.get(k) == v for k, v in state.details.items()
        ):
            return row
        phase, reason, message = "Running", "", ""
    else:
        phase = {Phase.SUCCEEDED: "Succeeded", Phase.FAILED: "Failed", Phase.LOST: "Failed"}[
            state.phase
        ]
        reason, message = state.reason, state.message
    with ctx.store.session() as session:
        live = session.get(WorkloadRow, row.id)
        if live is None:
            return row
        live.phase, live.reason, live.message = phase, reason, message
        live.exit_code = state.exit_code
        live.started_at = live.started_at or state.started_at
        if phase != "Running":
            live.finished_at = state.finished_at or now()
        live.details = {**live.details, **state.details}
        return live


def mark(
    ctx: Context, wid: str, phase: str, reason: str, message: str, force: bool = False
) -> None:
    """Record how a workload ended (``force`` overrides an end already recorded)."""
    with ctx.store.session() as session:
        live = session.get(WorkloadRow, wid)
        if live is not None and (force or live.phase in ACTIVE):
            live.phase, live.reason, live.message = phase, reason, message
            live.finished_at = live.finished_at or now()


def log_tail(ctx: Context, row: WorkloadRow, lines: int = 5) -> str:
    """The last lines a workload printed (for statuses of failures)."""
    try:
        data = b"".join(ctx.runtime_for(row.runtime).logs(row.id))
    except Exception:  # a log is a courtesy here; the status must still be written
        return ""
    text = data[-4096:].decode(errors="replace")
    return " | ".join(t for t in text.strip().splitlines()[-lines:] if t.strip())


def stop(ctx: Context, row: WorkloadRow) -> WorkloadRow:
    """Stop a workload in its runtime and record how it ended."""
    ctx.runtime_for(row.runtime).stop(row.id, ctx.settings.stop_grace_seconds)
    return refresh(ctx, row)


def unschedulable(ctx: Context, row: ResourceRow, decision: Decision) -> bool:
    """Record why a workload cannot start yet; True if so."""
    if decision.admitted:
        return False
    status = {
        **row.status,
        "phase": "Pending",
        "reason": "Unschedulable",
        "message": decision.reason,
    }
    write_status(ctx, row, status)
    return True
