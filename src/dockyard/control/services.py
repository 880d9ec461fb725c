"""Services: keep model server replicas running for the resolved model version.

A new version (or a new spec) is rolled out by starting its replicas first and stopping the
old ones only once every new one is ready. A replica that dies is restarted with backoff.
A fixed port moves to the new replica: the old one holding it is stopped first (serving
pauses for that moment; without a fixed port, rollouts have no gap).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control import workloads as wl
from dockyard.control.context import Context
from dockyard.control.plan import Delete, Materialize, Plan, Run, Start, Step, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.world import ModelSummary, TaskView, World
from dockyard.errors import DockyardError
from dockyard.registry import models as registry
from dockyard.runtimes.base import (
    PreparedEnvironment,
    Revisions,
    ServingImages,
    WorkloadRequest,
)
from dockyard.serving.launch import BOOT, serving_paths
from dockyard.serving.limits import TOKEN_ENV as SERVING_TOKEN_ENV
from dockyard.spec import EnvironmentSpec, ModelRef, ServiceSpec
from dockyard.spec.common import split_env
from dockyard.spec.status import ACTIVE, Phase, ServiceStatus
from dockyard.store import model_versions as versions_repo

MAX_BACKOFF = 60.0
IMAGE_RETRY = timedelta(seconds=30)
NOT_CRASHES = ("Stopped", "Interrupted")  # ended by Dockyard itself, not by a fault
# could not even start
NOT_STARTED = ("PortInUse", "ModelUnavailable", "StartFailed", "SecretMissing", "Unschedulable")


@dataclass(frozen=True)
class ModelInfo:
    project: str
    name: str
    version: int
    path: str  # the model inside its files: "." (the directory) or a file name
    directory: Path  # where the version's files are materialized
    environment: str | None  # the Environment it was trained in


@dataclass(frozen=True)
class Observed:
    generation: int
    version: int | None
    replicas: tuple[Run, ...]
    now: datetime
    blocked: str = ""
    deleting: bool = False
    model: ModelInfo | None = None
    environment: PreparedEnvironment | None = None
    environment_blocked: str = ""
    containers: bool = False  # the runtime serves from images (ServingImages)
    image: TaskView | None = None
    name: str = "svc"
    uid: str = "0" * 32
    compile_cache: Path | None = None
    lane: str = "default"  # the runtime's lane: image builds run there
    # the runtime runs a version's replicas as one object (Revisions: a Deployment)…
    revisions: bool = False
    revision: str = ""  # …and this is the one the spec and version make ("v3-1a2b3c4d")


def backoff(restarts: int) -> float:
    return 0.0 if restarts <= 0 else min(MAX_BACKOFF, 2.0 ** (restarts - 1))


def resolve(ref: ModelRef, summary: ModelSummary | None) -> tuple[int | None, str]:
    """The version ``ref`` names in the registry, or why there is none."""
    if ref.version is not None:
        if summary is not None and ref.version in summary.versions:
            return ref.version, ""
        have = sorted(summary.versions) if summary is not None else []
        hint = f"versions: {have}" if have else "no version registered yet"
        return None, f"model '{ref.name}' has no version {ref.version} ({hint})"
    aliases = summary.aliases if summary is not None else {}
    if ref.alias in aliases:
        return aliases[str(ref.alias)], ""
    if not aliases:
        return (
            None,
            f"model '{ref.name}' has no version yet (run a job whose outputs.model names it)",
        )
    return None, (
        f"model '{ref.name}' has no alias '{ref.alias}' (aliases: {', '.join(sorted(aliases))})"
    )


def _deleting_or_waiting(spec: ServiceSpec, obs: Observed, active: list[Run]) -> Plan | None:
    """The plan of a Service being deleted, or whose model has no version yet; else None."""
    if obs.deleting:
        status = ServiceStatus(phase=Phase.TERMINATING, reason="Deleting")
        if active:
            return Plan(status, stops=[r.id for r in active])
        return Plan(status, delete=Delete())
    if obs.version is None:
        status = ServiceStatus(
            phase=Phase.PENDING, reason="Waiting", message=obs.blocked,
            observed_generation=obs.generation, replicas=spec.replicas,
        )  # fmt: skip
        return Plan(status)
    return None


def plan(spec: ServiceSpec, obs: Observed) -> Plan:
    if obs.revisions:
        return plan_revisions(spec, obs)
    active = [r for r in obs.replicas if r.phase in ACTIVE]
    if (settled := _deleting_or_waiting(spec, obs, active)) is not None:
        return settled
    wanted = (obs.generation, obs.version)

    def of(r: Run) -> tuple[int, int]:
        return (r.generation, int(r.details.get("version", 0)))

    target = [r for r in obs.replicas if of(r) == wanted]
    stops: list[str] = []
    missing: list[tuple[int, int]] = []  # (replica number, restarts so far)
    recheck: datetime | None = None
    ready, crash, crash_reason = 0, "", ""
    for number in range(spec.replicas):
        mine = [r for r in target if r.number == number]
        running = [r for r in mine if r.phase in ACTIVE]
        if running:
            ready += any(r.details.get("ready") for r in running)
            stops += [r.id for r in running[1:]]
            continue
        crashes = [r for r in mine if r.reason not in NOT_CRASHES]
        if mine and mine[-1].reason not in NOT_CRASHES:
            last = mine[-1]
            if last.reason in NOT_STARTED:  # it never ran: say why in the status's words
                crash, crash_reason = last.message, last.reason
            else:
                crash = f"replica {number} exited: {last.reason} {last.message}".strip()
                crash_reason = "CrashLoopBackOff"
            due = (last.finished_at or obs.now) + timedelta(seconds=backoff(len(crashes)))
            if due > obs.now:
                recheck = min(filter(None, [recheck, due]))
                continue
        missing.append((number, len(mine)))
    stops += [r.id for r in target if r.phase in ACTIVE and r.number >= spec.replicas]
    old = [r for r in active if of(r) != wanted]
    if ready == spec.replicas:
        stops += [r.id for r in old]
        phase, reason = Phase.READY, "Ready"
        message = f"{ready}/{spec.replicas} replica(s) ready, version {obs.version}"
    elif crash:
        phase = Phase.PENDING if crash_reason in NOT_STARTED else Phase.STARTING
        reason, message = crash_reason, crash
    else:
        phase, reason = Phase.STARTING, "Starting"
        message = f"{ready}/{spec.replicas} replica(s) ready, version {obs.version}"
    serving = [r for r in active if r.details.get("ready") and r.id not in stops]
    urls = [str(r.details["url"]) for r in serving if r.details.get("url")]
    name = spec.model_ref().name
    status = ServiceStatus(
        phase=phase,
        reason=reason,
        message=message,
        observed_generation=obs.generation,
        replicas=spec.replicas,
        ready_replicas=len(urls),
        url=urls[0] if urls else None,
        endpoints=urls,
        # what the ready replicas really serve (during a rollout, old and new)
        model_version=", ".join(f"{name}@{v}" for v in sorted({of(r)[1] for r in serving})) or None,
        target_version=f"{name}@{obs.version}",
        restarts=sum(
            1 for r in obs.replicas if r.phase not in ACTIVE and r.reason not in NOT_CRASHES
        ),
    )
    result = Plan(status, stops=stops, recheck_at=recheck)
    if missing and obs.model is not None:
        _starts(spec, obs, result, missing, old)
    return result


def plan_revisions(spec: ServiceSpec, obs: Observed) -> Plan:
    """On a runtime with Revisions: one workload per revision (model version and settings)
    with ``spec.replicas`` replicas. A new revision starts beside the old ones, which stop only
    once it is fully ready (the Service's address answers throughout); a replica count that
    changed scales the revision in place; a revision that crash-loops starts again after a
    backoff. Nothing of an old revision stays behind."""
    active = [r for r in obs.replicas if r.phase in ACTIVE]
    if (settled := _deleting_or_waiting(spec, obs, active)) is not None:
        return settled
    current = [r for r in active if r.details.get("revision") == obs.revision]
    old = [r for r in active if r.details.get("revision") != obs.revision]
    runs = [r for r in obs.replicas if r.details.get("revision") == obs.revision]
    stops = [r.id for r in current[1:]]
    scales: list[tuple[str, int]] = []
    recheck: datetime | None = None
    ready = sum(int(r.details.get("readyReplicas", 0)) for r in current[:1])
    phase, reason = Phase.STARTING, "Starting"
    message = f"{ready}/{spec.replicas} replica(s) ready, version {obs.version}"
    start = False
    if current:
        if int(current[0].details.get("replicas", spec.replicas)) != spec.replicas:
            scales.append((current[0].id, spec.replicas))
        if ready >= spec.replicas:
            stops += [r.id for r in old]
            phase, reason = Phase.READY, "Ready"
        elif current[0].message:
            message += f"; {current[0].message}"
    elif runs and runs[-1].reason not in NOT_CRASHES:  # it ended: again, after a backoff
        last = runs[-1]
        crashes = [r for r in runs if r.reason not in NOT_CRASHES]
        if last.reason in NOT_STARTED:
            phase, reason, message = Phase.PENDING, last.reason, last.message
        else:
            reason = "CrashLoopBackOff"
            message = f"version {obs.version} exited: {last.reason} {last.message}".strip()
        due = (last.finished_at or obs.now) + timedelta(seconds=backoff(len(crashes)))
        if due > obs.now:
            recheck = due
        else:
            start = True
    else:
        start = True
    serving = [r for r in active if r.details.get("ready") and r.id not in stops]
    endpoints = sorted({str(u) for r in serving for u in r.details.get("endpoints") or []})
    urls = [str(r.details["url"]) for r in serving if r.details.get("url")]
    name = spec.model_ref().name
    versions = sorted({int(r.details.get("version", 0)) for r in serving})
    status = ServiceStatus(
        phase=phase,
        reason=reason,
        message=message,
        observed_generation=obs.generation,
        replicas=spec.replicas,
        ready_replicas=sum(int(r.details.get("readyReplicas", 0)) for r in serving),
        url=urls[0] if urls else None,
        endpoints=endpoints,
        model_version=", ".join(f"{name}@{v}" for v in versions) or None,
        target_version=f"{name}@{obs.version}",
        restarts=sum(
            1 for r in obs.replicas if r.phase not in ACTIVE and r.reason not in NOT_CRASHES
        ),
    )
    result = Plan(status, stops=stops, recheck_at=recheck, scales=scales)
    if start and obs.model is not None:
        environment, blocked = obs.environment, obs.environment_blocked
        if not blocked and obs.containers:
            environment, blocked = _image(obs, result)
        if blocked:
            result.status = result.status.but(
                phase=Phase.PENDING, reason="Waiting", message=blocked
            )
            return result
        result.starts.append(_revision(spec, obs, obs.model, environment, len(runs)))
    return result


def _revision(
    spec: ServiceSpec,
    obs: Observed,
    model: ModelInfo,
    environment: PreparedEnvironment | None,
    restarts: int,
) -> Start:
    """A revision with ``spec.replicas`` replicas: one workload, one object of its runtime."""
    one = _replica(spec, obs, model, environment, 0, restarts, None)
    wid = f"svc-{obs.name}-{obs.uid[:8]}-{obs.revision}-{restarts}"
    request = replace(one.request, id=wid, replicas=spec.replicas)
    return replace(
        one,
        workload_id=wid,
        request=request,
        port=None,
        count=spec.replicas,
        details={"version": model.version, "revision": obs.revision, "replicas": spec.replicas},
        event=f"version {model.version} started as {wid} ({spec.replicas} replica(s))",
    )


def revision_of(spec: ServiceSpec, version: int, environment: str) -> str:
    """The revision a spec and model version make: what goes into its pods (the replica
    count does not: changing it scales the revision in place)."""
    settings = spec.model_dump(mode="json", exclude={"replicas"})
    digest = hashlib.sha256(
        json.dumps([settings, version, environment], sort_keys=True).encode()
    ).hexdigest()
    return f"v{version}-{digest[:8]}"


def _starts(
    spec: ServiceSpec,
    obs: Observed,
    result: Plan,
    missing: list[tuple[int, int]],
    old: list[Run],
) -> None:
    model = obs.model
    assert model is not None
    environment, blocked = obs.environment, obs.environment_blocked
    if not blocked and obs.containers:
        environment, blocked = _image(obs, result)
    if blocked:
        result.status = result.status.but(phase=Phase.PENDING, reason="Waiting", message=blocked)
        return
    for number, restarts in missing:
        port = spec.port + number if spec.port else None
        holders = [r.id for r in old if port is not None and r.details.get("port") == port]
        if holders:  # the old replica on this fixed port goes first
            result.stops += [h for h in holders if h not in result.stops]
            continue
        result.starts.append(_replica(spec, obs, model, environment, number, restarts, port))


def _image(obs: Observed, result: Plan) -> tuple[PreparedEnvironment | None, str]:
    """Containers serve from an image of the environment + model server + model files."""
    model = obs.model
    assert model is not None
    env_hash = obs.environment.hash[:16] if obs.environment is not None else "default"
    token = f"v{model.version}:{env_hash}"
    task = obs.image if obs.image is not None and obs.image.token == token else None
    base = obs.environment.as_dict() if obs.environment is not None else None
    request = TaskRequest("image", token, {"environment": base}, lane=obs.lane)
    if task is not None and task.state == "succeeded":
        return PreparedEnvironment.from_dict(task.result), ""
    if task is not None and task.state == "running":
        return None, f"building the serving image: {task.progress or 'starting'}"
    if task is not None and task.state == "failed":
        again = (task.finished_at or obs.now) + IMAGE_RETRY
        if again <= obs.now:
            result.tasks.append(request)
        else:
            result.recheck_at = min(filter(None, [result.recheck_at, again]))
        return None, f"the serving image failed to build: {task.error}"
    result.tasks.append(request)
    return None, f"building the serving image of {model.name}@{model.version}"


def serving_env(spec: ServiceSpec) -> tuple[dict[str, str], dict[str, str]]:
    """(plain env, secret references) of a model server: spec.env and spec.auth, which the
    model server reads both (dockyard.serving.settings)."""
    env, secrets = split_env(spec.env)
    if spec.auth is not None:
        secrets[SERVING_TOKEN_ENV] = spec.auth.token.secret_ref
        if spec.auth.inference:
            env["DOCKYARD_SERVING_AUTH_INFERENCE"] = "1"
    return env, secrets


def model_server_args(spec: ServiceSpec, model: str, version: int, main: str) -> list[str]:
    """The model server's arguments for a Service: its model (``main`` is where its files
    are) and its batching; every home and ``dockyard render`` start it with these."""
    args = ["--model", f"{model}:{version}={main}"]
    batching = spec.batching
    if batching.enabled:
        args += [
            "--max-batch-size",
            str(batching.max_batch_size),
            "--max-latency-ms",
            f"{batching.max_latency_ms:g}",
        ]
    else:
        args.append("--no-batching")
    return args


def server_request(
    spec: ServiceSpec,
    name: str,
    wid: str,
    model: str,
    version: int,
    main: str,
    environment: PreparedEnvironment | None,
    in_image: bool,
) -> WorkloadRequest:
    """What a model server of a Service runs (``main``: where the model's files are): in an
    image with Dockyard in it (containers, pods; what ``dockyard render`` gives too), or
    with the environment's Python and Dockyard's code appended (local processes). The one
    builder, for the loop and for render."""
    env, secrets = serving_env(spec)
    if in_image:
        command = ["python", "-m", "dockyard.serving", "--host", "0.0.0.0"]
    else:
        command = ["python", str(BOOT), "--host", "127.0.0.1"]
    need = wl.need_of(spec.resources)
    return WorkloadRequest(
        id=wid,
        command=[*command, *model_server_args(spec, model, version, main)],
        env=env,
        secrets=secrets,
        environment=environment,
        cpu=need.cpu,
        cpu_limit=need.cpu_limit,
        memory=need.memory or None,
        extra_pythonpath=() if in_image else serving_paths(),
        labels={"dockyard.dev/service": name},
        gpu_type=spec.resources.gpu_type,
        gpu=spec.resources.gpu,
    )


def _replica(
    spec: ServiceSpec,
    obs: Observed,
    model: ModelInfo,
    environment: PreparedEnvironment | None,
    number: int,
    restarts: int,
    port: int | None,
) -> Start:
    wid = f"svc-{obs.name}-{obs.uid[:8]}-g{obs.generation}-v{model.version}-r{number}-{restarts}"
    steps: tuple[Step, ...] = ()
    if obs.containers:  # the serving image holds the model at /model and Dockyard itself
        main = "/model" if model.path == "." else f"/model/{model.path}"
    else:
        main = str(model.directory if model.path == "." else model.directory / model.path)
        steps = (Materialize(model.project, model.name, model.version),)
    request = server_request(
        spec, obs.name, wid, model.name, model.version, main, environment, obs.containers
    )
    if not obs.containers and obs.compile_cache is not None:  # compiled models outlive it
        env = {"DOCKYARD_COMPILE_CACHE": str(obs.compile_cache), **request.env}
        request = replace(request, env=env)
    need = wl.need_of(spec.resources)
    return Start(
        wid,
        "replica",
        obs.generation,
        number,
        spec.runtime,
        request,
        need,
        project=model.project,
        steps=steps,
        port=port if port is not None else 0,
        details={"version": model.version},
        event=f"replica {number} started as {wid}",
    )


class ServiceReconciler:
    kind = "Service"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: ServiceSpec) -> Observed:
        replicas = tuple(wl.run_of(w) for w in world.owned(row.uid))
        ref = spec.model_ref()
        version, blocked = resolve(ref, world.model(row.project, ref.name))
        deleting = row.deleted_at is not None
        model, environment, env_blocked, containers = None, None, "", False
        try:
            revisions = isinstance(self.ctx.runtime_for(spec.runtime), Revisions)
        except DockyardError:
            revisions = False
        wanted = [
            r
            for r in replicas
            if r.phase in ACTIVE
            and (r.generation, r.details.get("version")) == (row.generation, version)
        ]
        # a runtime with revisions: the model and environment name the revision, always
        missing = revisions or len(wanted) < spec.replicas
        if version is not None and not deleting and missing:
            with self.ctx.store.session() as session:
                found = versions_repo.get_version(session, row.project, ref.name, version)
            if found is not None:
                model = ModelInfo(
                    row.project,
                    ref.name,
                    version,
                    found.path,
                    registry.model_dir(self.ctx.settings.home, found),
                    found.lineage.get("environment"),
                )
                try:
                    runtime = self.ctx.runtime_for(spec.runtime)
                except DockyardError as exc:
                    env_blocked = str(exc)
                else:
                    containers = isinstance(runtime, ServingImages)
                    environment, env_blocked = wl.resolve_environment(
                        world, row.project, spec.environment or model.environment, runtime.name
                    )
        return Observed(
            row.generation,
            version,
            replicas,
            world.at,
            blocked,
            deleting,
            model,
            environment,
            env_blocked,
            containers,
            world.task(f"{row.uid}:image"),
            row.name,
            row.uid,
            None if containers else self.ctx.settings.home / "cache" / "compiled",
            self.ctx.lane_of(spec.runtime),
            revisions,
            revision_of(spec, version, environment.hash if environment else "")
            if version is not None
            else "",
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: ServiceSpec, task: TaskRequest) -> Work:
        ctx = self.ctx
        runtime = ctx.runtime_for(spec.runtime)
        assert isinstance(runtime, ServingImages)
        ref = spec.model_ref()
        version = int(task.token.split(":")[0][1:])

        def image(handle: TaskHandle) -> dict[str, Any]:
            with ctx.store.session() as session:
                found = versions_repo.get_version(session, row.project, ref.name, version)
            if found is None:
                raise DockyardError(f"model '{ref.name}' has no version {version} any more")
            model_dir = registry.materialize(ctx.artifacts, ctx.settings.home, found)
            base = task.args.get("environment")
            if base is not None:
                environment = PreparedEnvironment.from_dict(base)
            else:  # Dockyard's "no environment": its own default image
                environment = ctx.runtime_for(spec.runtime).prepare_environment(
                    "default", EnvironmentSpec(), lambda _m: None
                )
            prepared = runtime.prepare_serving(
                environment, ref.name, version, model_dir, handle.progress
            )
            return prepared.as_dict()

        return image
