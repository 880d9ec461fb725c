"""Workloads: what they need from the world, and the work that starts, stops and observes them.

``resolve_inputs`` is a pure lookup in the world (environments, volumes, datasets, code).
``run_start`` and ``run_stop`` are task bodies: they run in the runtime's lane under the
workload's task lease, and record what happened in the workload's row only while they
still hold that lease. ``transition`` turns what a runtime reports into the row's phase.
"""

from __future__ import annotations

import json
import logging
import re
import socket
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from dockyard import checkpoints as protocol
from dockyard.control.context import Context, now
from dockyard.control.plan import (
    FreshDir,
    MakeDirs,
    Materialize,
    Need,
    PruneCheckpoints,
    RestoreVersion,
    Run,
    Start,
    Step,
    UnpackCode,
    VerifyDatasets,
    Within,
)
from dockyard.control.records import ResourceRecord, WorkloadRecord
from dockyard.control.tasks import TaskHandle
from dockyard.control.volume_dirs import tier_of, volume_root
from dockyard.control.world import World
from dockyard.data import checkpoints as checkpoint_dirs
from dockyard.data import datasets as data
from dockyard.data.snapshots import dataset_key
from dockyard.errors import DockyardError
from dockyard.paths import Inside
from dockyard.registry import models as registry
from dockyard.runtimes.base import (
    Mount,
    PodSteps,
    PreparedEnvironment,
    RunState,
    VolumeRef,
    WorkloadState,
)
from dockyard.serving.limits import TOKEN_ENV as SERVING_TOKEN_ENV
from dockyard.serving.settings import MIN_TOKEN_LENGTH
from dockyard.spec import Phase, Resources
from dockyard.spec.common import WorkloadSpec
from dockyard.spec.datasets import VERSIONS_DIR, DatasetSpec, PrepareSpec
from dockyard.spec.jobs import CheckpointPolicy
from dockyard.spec.status import ACTIVE
from dockyard.spec.volumes import VolumeSpec
from dockyard.store import model_versions as versions_repo
from dockyard.store import secrets as secrets_repo
from dockyard.store.tables import WorkloadRow

log = logging.getLogger("dockyard.control")
STEP_REASON = {  # how a workload that could not even start is reported
    MakeDirs: "StartFailed",
    FreshDir: "StartFailed",
    UnpackCode: "CodeMissing",
    VerifyDatasets: "DatasetChanged",
    Materialize: "ModelUnavailable",
    PruneCheckpoints: "StartFailed",
    RestoreVersion: "DatasetUnavailable",
}


def env_var(prefix: str, name: str) -> str:
    return f"DOCKYARD_{prefix}_{re.sub(r'[^A-Za-z0-9]', '_', name).upper()}"


def need_of(resources: Resources) -> Need:
    return Need(resources.cpu, resources.memory or 0, resources.gpu, resources.cpu_limit)


def run_of(row: WorkloadRecord) -> Run:
    return Run(
        row.id,
        row.number,
        row.generation,
        row.phase,
        row.exit_code,
        row.reason,
        row.message,
        row.started_at,
        row.finished_at,
        row.details,
    )


def start_key(workload_id: str) -> str:
    return f"start:{workload_id}"


def stop_key(workload_id: str) -> str:
    return f"stop:{workload_id}"


@dataclass(frozen=True)
class Inputs:
    """What a workload needs before it can start; ``blocked`` says why it cannot yet."""

    environment: PreparedEnvironment | None = None
    mounts: tuple[Mount, ...] = ()
    steps: tuple[Step, ...] = ()
    datasets: tuple[tuple[str, str | None], ...] = ()  # (name, sha256) for lineage
    blocked: str = ""
    fatal: str = ""
    env: dict[str, str] = field(default_factory=dict)  # e.g. $DOCKYARD_CHECKPOINT_EVERY


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


def volume_ref(world: World, vol: ResourceRecord, sub_path: str) -> VolumeRef:
    """What a runtime whose volumes are not host directories needs to know of one."""
    spec: VolumeSpec = world.spec(vol)
    tier = tier_of(vol.status, spec)
    return VolumeRef(vol.name, sub_path, tier, spec.size, spec.replicas, vol.uid)


def pinned_version(
    ctx: Context, world: World, ds: ResourceRecord, version: int
) -> tuple[Within, str, RestoreVersion] | str:
    """Where version ``version`` of a dataset is mounted from, its checksum and the step that
    restores it there; or why it cannot be (a message)."""
    versions = ds.status.get("versions") or []
    found = next((v for v in versions if v.get("version") == version), None)
    if found is None or not found.get("snapshot"):
        known = ", ".join(f"v{v['version']}" for v in versions) or "none yet"
        return f"dataset '{ds.name}' has no version {version} (its versions: {known})"
    root, _target = dataset_dir(ctx, world, ds)
    where = (root, f"{VERSIONS_DIR}/{ds.name}/v{version}")
    step = RestoreVersion(dataset_key(ds.project, ds.name), found["snapshot"], where)
    return where, str(found["sha256"]), step


def dataset_dir(ctx: Context, world: World, ds: ResourceRecord) -> Within:
    """The dataset's directory: its volume and the path inside it."""
    spec: DatasetSpec = world.spec(ds)
    vol = world.get("Volume", ds.project, spec.volume)
    if vol is None:
        return ctx.volumes.path(ds.project, spec.volume), spec.target(ds.name)
    return volume_root(ctx, world, vol), spec.target(ds.name)


def manifest_path(ctx: Context, ds: ResourceRecord) -> Path:
    return ctx.settings.home / "manifests" / f"{ds.uid}-g{ds.generation}.json"


def checkpoint_env(checkpoint: CheckpointPolicy) -> dict[str, str]:
    """What a job's checkpoint policy tells its workload."""
    env = {protocol.KEEP_ENV: str(checkpoint.keep)}
    if checkpoint.every is not None:
        env[protocol.EVERY_ENV] = str(checkpoint.every)
    return env


def resolve_inputs(
    ctx: Context,
    world: World,
    row: ResourceRecord,
    spec: WorkloadSpec | PrepareSpec,
    checkpoint: CheckpointPolicy | None = None,
) -> Inputs:
    """Look up everything ``spec`` names; the directories to create become start steps."""
    project = row.project
    try:
        runtime = ctx.runtime_for(spec.runtime).name
    except DockyardError as exc:  # e.g. Podman is not installed
        return Inputs(fatal=str(exc))
    environment, blocked = resolve_environment(world, project, spec.environment, runtime)
    mounts: list[Mount] = []
    dirs: list[Within] = []
    steps: list[Step] = []
    env: dict[str, str] = {}
    prune: PruneCheckpoints | None = None
    for vm in spec.volumes if isinstance(spec, WorkloadSpec) else []:
        vol = world.get("Volume", project, vm.name)
        if vol is None:
            blocked = blocked or f"volume '{vm.name}' not found: apply it"
            continue
        root, rel = volume_root(ctx, world, vol), vm.sub_path or ""
        dirs.append((root, rel))
        ref = volume_ref(world, vol, rel)
        var = env_var("VOLUME", vm.name)
        mounts.append(Mount(root / rel, vm.mount_path(), vm.read_only, var, ref))
    if checkpoint is not None:
        vol = world.get("Volume", project, checkpoint.volume)
        if vol is None:
            blocked = blocked or f"checkpoint volume '{checkpoint.volume}' not found: apply it"
        else:
            root = volume_root(ctx, world, vol)
            rel = f"checkpoints/{row.name}/g{row.generation}"
            dirs.append((root, rel))
            ref = volume_ref(world, vol, rel)
            mounts.append(Mount(root / rel, checkpoint.path, False, protocol.DIR_ENV, ref))
            prune = PruneCheckpoints((root, rel), checkpoint.keep)
            env.update(checkpoint_env(checkpoint))
    verify: list[tuple[str, Within, Path]] = []
    datasets: list[tuple[str, str | None]] = []
    for dm in spec.datasets if isinstance(spec, WorkloadSpec) else []:
        ds = world.get("Dataset", project, dm.name)
        if ds is None:
            blocked = blocked or f"dataset '{dm.name}' not found: apply it"
            continue
        if dm.version is not None and dm.version != ds.status.get("version"):
            pinned = pinned_version(ctx, world, ds, dm.version)
            if isinstance(pinned, str):
                blocked = blocked or pinned
                continue
            where, sha, step = pinned
            var = env_var("DATA", dm.name)
            holder = world.get("Volume", project, world.spec(ds).volume)
            held = volume_ref(world, holder, where[1]) if holder is not None else None
            mounts.append(Mount(where[0] / where[1], dm.mount_path(), True, var, held))
            datasets.append((dm.name, sha))
            steps.append(step)
            continue
        if ds.status.get("phase") != Phase.READY or (
            ds.status.get("observedGeneration") != ds.generation
        ):
            blocked = blocked or (
                f"waiting for dataset '{dm.name}' "
                f"({ds.status.get('message') or ds.status.get('phase', 'Pending')})"
            )
            continue
        target = dataset_dir(ctx, world, ds)
        holder = world.get("Volume", project, world.spec(ds).volume)
        held = volume_ref(world, holder, target[1]) if holder is not None else None
        var = env_var("DATA", dm.name)
        mounts.append(Mount(target[0] / target[1], dm.mount_path(), True, var, held))
        datasets.append((dm.name, ds.status.get("sha256")))
        if ds.status.get("manifest"):
            verify.append((dm.name, target, Path(ds.status["manifest"])))
    if dirs:
        steps.append(MakeDirs(tuple(dirs)))
    if prune is not None:  # after its directory exists
        steps.append(prune)
    if verify:
        steps.append(VerifyDatasets(tuple(verify)))
    fatal = ""
    if spec.code:
        if not ctx.code.exists(spec.code):
            fatal = f"code snapshot {spec.code} is missing from the server: apply again"
        steps.append(UnpackCode(spec.code))
    return Inputs(environment, tuple(mounts), tuple(steps), tuple(datasets), blocked, fatal, env)


# -- starting (a task body) ---------------------------------------------------------------
def _port(wanted: int) -> int:
    """A fixed port (if free) or any free one on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", wanted))
        except OSError as exc:
            raise DockyardError(
                f"port {wanted} is already in use on this machine",
                hint="free it or choose another spec.port",
            ) from exc
        return int(sock.getsockname()[1])


def _perform(ctx: Context, step: Step, code_dir: Path | None, env: dict[str, str]) -> Path | None:
    """Carry out one step before a start; what the workload must be told goes into ``env``."""
    if isinstance(step, MakeDirs):  # a planted link on the way is refused, never followed
        for root, rel in step.paths:
            Inside(root).mkdirs(rel)
    elif isinstance(step, FreshDir):
        root, rel = step.path
        Inside(root).remove(rel)
        Inside(root).mkdirs(rel)
    elif isinstance(step, UnpackCode):
        if not ctx.code.exists(step.ref):
            raise DockyardError(f"code snapshot {step.ref} is missing from the server: apply again")
        unpacked: Path = ctx.code.unpacked(step.ref)
        return unpacked
    elif isinstance(step, VerifyDatasets):
        for name, (root, rel), manifest in step.datasets:
            try:
                files = json.loads(manifest.read_text())
            except OSError as exc:
                raise DockyardError(
                    f"dataset '{name}': its manifest {manifest} is missing"
                ) from exc
            data.verify(Inside(root), rel, files, f"dataset '{name}'")
    elif isinstance(step, Materialize):
        with ctx.store.session() as session:
            version = versions_repo.get_version(session, step.project, step.model, step.version)
        if version is None:
            raise DockyardError(f"model '{step.model}' has no version {step.version} any more")
        registry.materialize(ctx.artifacts, ctx.settings.home, version)
    elif isinstance(step, RestoreVersion):
        root, rel = step.path
        if not Inside(root).is_dir(rel):
            Inside(root).mkdirs(str(PurePosixPath(rel).parent))
            ctx.snapshots.restore(step.key, step.snapshot, Inside(root).path(rel))
    elif isinstance(step, PruneCheckpoints):  # only complete checkpoints are offered
        root, rel = step.path
        pruned = checkpoint_dirs.prune(Inside(root), rel, step.keep)
        if pruned.failed:
            log.warning("could not remove %s from %s", ", ".join(pruned.failed), root / rel)
        if pruned.latest is not None:
            env[protocol.LATEST_ENV] = pruned.latest
    return code_dir


def run_start(ctx: Context, start: Start, gpus: tuple[int, ...], handle: TaskHandle) -> None:
    """Prepare what the workload needs, start it, and record that it runs (or why not)."""
    wid = start.workload_id
    request, details = start.request, dict(start.details)
    env: dict[str, str] = {}
    try:
        runtime = ctx.runtime_for(start.runtime)
        code_dir = request.code_dir
        in_pod: list[Step] = []  # what the runtime does where the workload runs
        manifests: dict[str, bytes] = {}
        for step in start.steps:
            if isinstance(runtime, PodSteps) and runtime.takes(step):
                in_pod.append(step)
                manifests.update(_manifests(step))
                continue
            try:
                code_dir = _perform(ctx, step, code_dir, env)
            except DockyardError as exc:
                raise _NotStarted(STEP_REASON[type(step)], str(exc)) from exc
        port = None
        if start.port is not None:
            try:
                port = _port(start.port)
            except DockyardError as exc:
                raise _NotStarted("PortInUse", str(exc)) from exc
            details.update(port=port, url=f"http://127.0.0.1:{port}")
        secret_env = {}
        if request.secrets:
            try:
                secret_env = resolve_secrets(ctx, start.project, request.secrets)
            except DockyardError as exc:
                raise _NotStarted("SecretMissing", str(exc)) from exc
            _check_serving_token(request.secrets, secret_env)
        request = replace(
            request,
            env={**request.env, **env},
            code_dir=code_dir,
            gpus=gpus,
            gpu=start.need.gpu,
            port=port,
            secret_env=secret_env,
            project=start.project,
            steps=tuple(in_pod),
            manifests=manifests,
        )
        state = runtime.start(request)
    except _NotStarted as exc:
        _end(handle, wid, exc.reason, exc.message)
        return
    except Exception as exc:  # the runtime could not start it: say why, never hang
        log.warning("starting %s failed", wid, exc_info=True)
        _end(handle, wid, "StartFailed", f"could not start: {type(exc).__name__}: {exc}")
        return

    def started(session: Session) -> None:
        live = session.get(WorkloadRow, wid)
        if live is None:
            return
        if state.phase == RunState.RUNNING:
            live.phase = Phase.RUNNING
        live.started_at = state.started_at or now()
        live.details = {**live.details, **details, **state.details}
        if state.done:
            _record(live, state)

    handle.write(started)


def _manifests(step: Step) -> dict[str, bytes]:
    """What a step done in the pod reads from the control plane: a dataset's manifest."""
    if not isinstance(step, VerifyDatasets):
        return {}
    out = {}
    for name, _where, manifest in step.datasets:
        try:
            out[name] = manifest.read_bytes()
        except OSError as exc:
            raise _NotStarted(
                STEP_REASON[VerifyDatasets], f"dataset '{name}': its manifest {manifest} is missing"
            ) from exc
    return out


def resolve_secrets(ctx: Context, project: str, refs: dict[str, str]) -> dict[str, str]:
    """variable → value of the ``SECRET/KEY`` references (decrypted here, only now)."""
    opened: dict[str, dict[str, str]] = {}
    out = {}
    for var, ref in refs.items():
        name, key = ref.split("/", 1)
        if name not in opened:
            with ctx.store.session() as session:
                row = secrets_repo.get(session, project, name)
                sealed = row.sealed if row is not None else None
            if sealed is None:
                raise DockyardError(
                    f"secret '{name}' (for {var}) does not exist",
                    hint=f"create it: dockyard secrets set {name} {key}=@FILE",
                )
            opened[name] = ctx.vault.open(sealed)
        if key not in opened[name]:
            raise DockyardError(
                f"secret '{name}' has no key '{key}' (for {var})",
                hint=f"its keys: {', '.join(sorted(opened[name]))}",
            )
        out[var] = opened[name][key]
    return out


def _check_serving_token(refs: dict[str, str], values: dict[str, str]) -> None:
    """A model server refuses a short token; say so here, naming the secret, not in a crash."""
    token = values.get(SERVING_TOKEN_ENV)
    if token is not None and len(token.strip()) < MIN_TOKEN_LENGTH:
        raise _NotStarted(
            "StartFailed",
            f"the token in secret '{refs[SERVING_TOKEN_ENV]}' has {len(token.strip())} "
            f"characters; a model server needs at least {MIN_TOKEN_LENGTH} (dockyard secrets "
            "set NAME KEY=@FILE with a longer one)",
        )


def secret_values(ctx: Context, project: str, refs: dict[str, str]) -> list[str]:
    """The values a workload was given from secrets, as they are now (to mask them in its
    log); references that no longer resolve are left out."""
    values: list[str] = []
    for var, ref in refs.items():
        try:
            values += resolve_secrets(ctx, project, {var: ref}).values()
        except DockyardError:
            continue
    return values


class _NotStarted(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason, self.message = reason, message


def _end(handle: TaskHandle, wid: str, reason: str, message: str) -> None:
    def failed(session: Session) -> None:
        live = session.get(WorkloadRow, wid)
        if live is not None and live.phase in ACTIVE:
            live.phase, live.reason, live.message = Phase.FAILED, reason, message
            live.finished_at = now()

    handle.write(failed)


# -- stopping (a task body) ----------------------------------------------------------------
def run_stop(ctx: Context, wid: str, runtime: str, handle: TaskHandle) -> None:
    engine = ctx.runtime_for(runtime)
    engine.stop(wid, ctx.settings.stop_grace_seconds)
    state = engine.observe(wid)
    if state.phase == RunState.NOT_FOUND:  # a stop that leaves nothing behind (a Deployment)
        state = WorkloadState(wid, RunState.FAILED, reason="Stopped", message="stopped on request")
    tail = log_tail(ctx, runtime, wid) if state.phase == RunState.FAILED else ""

    def ended(session: Session) -> None:
        live = session.get(WorkloadRow, wid)
        if live is not None:
            change = transition(live, state, tail)
            if change is not None:
                _apply(live, change)

    handle.write(ended)


# -- observing -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Change:
    phase: str
    reason: str
    message: str
    exit_code: int | None
    started_at: datetime | None
    finished_at: datetime | None
    details: dict[str, Any]


def transition(
    row: WorkloadRecord | WorkloadRow, state: WorkloadState, log_tail: str = ""
) -> Change | None:
    """How the row changes given what the runtime reports (None: it does not)."""
    if row.phase not in ACTIVE:
        return None
    details = dict(state.details)
    if state.phase == RunState.NOT_FOUND:
        if row.phase == Phase.STARTING:  # recorded, but its start never happened
            phase, reason = Phase.FAILED, "Interrupted"
            message = "recorded but never started (the server stopped in between)"
        else:
            phase, reason, message = Phase.FAILED, "Lost", "the workload disappeared"
    elif state.phase == RunState.PENDING:  # placed by a cluster's scheduler: its own words
        if row.phase == Phase.STARTING and (row.reason, row.message) == (
            state.reason,
            state.message,
        ):
            return None
        phase, reason, message = Phase.STARTING, state.reason, state.message
    elif state.phase == RunState.RUNNING:
        if row.phase == Phase.RUNNING and all(row.details.get(k) == v for k, v in details.items()):
            return None
        phase, reason, message = Phase.RUNNING, "", ""
    else:
        phase = Phase.SUCCEEDED if state.phase == RunState.SUCCEEDED else Phase.FAILED
        reason, message = state.reason, state.message
    if log_tail:
        details["logTail"] = log_tail
    finished = None if phase in ACTIVE else (state.finished_at or now())
    return Change(phase, reason, message, state.exit_code, state.started_at, finished, details)


def _apply(live: WorkloadRow, change: Change) -> None:
    live.phase, live.reason, live.message = change.phase, change.reason, change.message
    live.exit_code = change.exit_code
    live.started_at = live.started_at or change.started_at
    if change.finished_at is not None:
        live.finished_at = live.finished_at or change.finished_at
    live.details = {**live.details, **change.details}


def _record(live: WorkloadRow, state: WorkloadState) -> None:
    change = transition(live, state)
    if change is not None:
        _apply(live, change)


def record(ctx: Context, wid: str, change: Change) -> None:
    with ctx.store.session() as session:
        ctx.fence(session)  # a replica that no longer leads writes nothing
        live = session.get(WorkloadRow, wid)
        if live is not None and live.phase in ACTIVE:
            _apply(live, change)


def mark(ctx: Context, wid: str, phase: str, reason: str, message: str) -> None:
    """Record how a workload ended, overriding what was recorded (a shutdown's verdict)."""
    with ctx.store.session() as session:
        ctx.fence(session)
        live = session.get(WorkloadRow, wid)
        if live is not None:
            live.phase, live.reason, live.message = phase, reason, message
            live.finished_at = live.finished_at or now()


def log_tail(ctx: Context, runtime: str, wid: str, lines: int = 5) -> str:
    """The last lines a workload printed (for statuses of failures)."""
    try:
        data = b"".join(ctx.runtime_for(runtime).logs(wid))
    except Exception:  # a log is a courtesy here; the status must still be written
        return ""
    text = data[-4096:].decode(errors="replace")
    return " | ".join(t for t in text.strip().splitlines()[-lines:] if t.strip())
