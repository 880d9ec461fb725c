"""Jobs: attempts with retries and backoff, scheduling, and model registration at the end.

``plan`` is a pure function of the spec and what was observed; the applier carries it out.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control import workloads as wl
from dockyard.control.context import Context
from dockyard.control.plan import Delete, Plan, Run, Start, TaskRequest
from dockyard.control.records import ResourceRecord
from dockyard.control.tasks import TaskHandle, Work
from dockyard.control.world import TaskView, World
from dockyard.registry import models as registry
from dockyard.runtimes.base import WorkloadRequest
from dockyard.spec import JobSpec
from dockyard.spec.common import split_env
from dockyard.spec.status import ACTIVE, ENDED, JobStatus, Phase

# an attempt that failed for one of these will fail again: it is not retried
NOT_RETRIED = {
    "CommandNotFound",
    "StartFailed",
    "DatasetChanged",
    "DatasetUnavailable",
    "CodeMissing",
    "SecretMissing",
    "Unschedulable",  # no node of its home can ever hold it (DOCKYARD_UNSCHEDULABLE_SECONDS)
}
# ended by something other than the job: re-run at once, not counted as a failure — a server
# shutdown, or a cluster's scheduler that preempted the pod for a higher priority (an eviction
# by the node counts: the job's own use of memory or disk is a usual cause)
NOT_COUNTED = {"Interrupted", "Preempted"}


@dataclass(frozen=True)
class Observed:
    generation: int
    attempts: tuple[Run, ...]
    now: datetime
    stale_active: tuple[str, ...] = ()  # attempts of an older generation still running
    inputs: wl.Inputs | None = None  # looked up when an attempt may start
    cancelled: bool = False
    deleting: bool = False
    registered: str | None = None  # "digits@3", recorded once the model version exists
    registration_error: str = ""
    registration: TaskView | None = None
    name: str = "job"
    project: str = "default"
    uid: str = "0" * 32
    output_root: Path = Path("outputs")
    environment_hash: str | None = None
    datasets: dict[str, str | None] = field(default_factory=dict)  # name → sha256
    created_at: datetime | None = None


def counted(attempts: tuple[Run, ...]) -> int:
    return sum(1 for a in attempts if a.reason not in NOT_COUNTED)


def _status(spec: JobSpec, obs: Observed, phase: Phase, reason: str, message: str) -> JobStatus:
    current = obs.attempts
    last = current[-1] if current else None
    ended = phase in ENDED
    return JobStatus(
        phase=phase,
        reason=reason,
        message=message,
        observed_generation=obs.generation,
        attempts=len(current),
        started_at=current[0].started_at if current else None,
        finished_at=last.finished_at if last is not None and ended else None,
        exit_code=last.exit_code if last is not None else None,
        usage=(last.details.get("usage") or None) if last is not None else None,
        log_tail=(
            last.details.get("logTail") or None
            if last is not None and phase == Phase.FAILED and last.phase == Phase.FAILED
            else None
        ),
    )


def plan(spec: JobSpec, obs: Observed) -> Plan:
    stop = list(obs.stale_active)
    active = [a.id for a in obs.attempts if a.phase in ACTIVE]

    def result(phase: Phase, reason: str, message: str = "", **extra: Any) -> Plan:
        status = _status(spec, obs, phase, reason, message)
        if "model_version" in extra:
            status = status.but(model_version=extra.pop("model_version"))
        if "registration_error" in extra:
            status = status.but(registration_error=extra.pop("registration_error"))
        return Plan(status, stops=extra.pop("stops", stop), **extra)

    if obs.deleting:
        if active or stop:
            return result(Phase.TERMINATING, "Deleting", stops=stop + active)
        return result(Phase.TERMINATING, "Deleting", delete=Delete())
    if obs.cancelled:
        return result(Phase.CANCELLED, "Cancelled", "cancelled on request", stops=stop + active)
    inputs = obs.inputs or wl.Inputs()
    if inputs.fatal:
        return result(Phase.FAILED, "InvalidSpec", inputs.fatal, stops=stop + active)
    last = obs.attempts[-1] if obs.attempts else None
    if last is None:
        if inputs.blocked:
            return result(Phase.PENDING, "Waiting", inputs.blocked)
        return _start(spec, obs, 1, "waiting for resources")
    if last.phase == Phase.STARTING:  # admitted; the runtime has not said it runs yet
        if last.reason:  # a cluster's scheduler says why it waits, in its own words
            return result(Phase.STARTING, last.reason, f"attempt {last.number}: {last.message}")
        return result(Phase.STARTING, "Starting", f"attempt {last.number} starting")
    if last.phase in ACTIVE:
        return result(Phase.RUNNING, "Running", f"attempt {last.number} running")
    if last.phase == Phase.SUCCEEDED:
        return _succeeded(spec, obs, last, result)
    # the last attempt failed
    retry = spec.retry
    used = counted(obs.attempts)
    retryable = last.reason not in NOT_RETRIED and (
        retry.on_exit_codes is None or last.exit_code in retry.on_exit_codes
    )
    why = f"attempt {last.number} failed: {last.reason}" + (
        f" ({last.message})" if last.message else ""
    )
    if last.reason in NOT_COUNTED:
        retryable, used = True, min(used, retry.limit)
    if not retryable or used > retry.limit:
        suffix = "" if not retryable or retry.limit == 0 else f"; {retry.limit} retries used"
        return result(Phase.FAILED, last.reason or "Failed", why + suffix)
    wait = retry.delay_before(used + 1) if last.reason not in NOT_COUNTED else 0.0
    due = (last.finished_at or obs.now) + timedelta(seconds=wait)
    if due > obs.now:
        message = f"{why}; attempt {last.number + 1} after a {wait:g}s backoff"
        return result(Phase.RUNNING, "BackoffRetry", message, recheck_at=due)
    if inputs.blocked:
        return result(Phase.PENDING, "Waiting", inputs.blocked)
    return _start(spec, obs, last.number + 1, f"{why}; retrying")


def _succeeded(spec: JobSpec, obs: Observed, last: Run, result: Callable[..., Plan]) -> Plan:
    model = spec.outputs.model
    done = f"attempt {last.number} succeeded"
    if model is None:
        return result(Phase.SUCCEEDED, "Completed", done)
    token = f"g{obs.generation}:a{last.number}"
    task = obs.registration if obs.registration and obs.registration.token == token else None
    registered = obs.registered
    if registered is None and task is not None and task.state == "succeeded":
        registered = str(task.result["ref"])
    if registered:
        message = f"{done}; registered {registered}"
        return result(Phase.SUCCEEDED, "Completed", message, model_version=registered)
    error = task.error if task is not None and task.state == "failed" else obs.registration_error
    if error:
        return result(Phase.FAILED, "ModelRegistrationFailed", error, registration_error=error)
    message = f"registering model '{model.name}'"
    if task is not None and task.state == "running":
        return result(Phase.RUNNING, "RegisteringModel", message)
    lineage = {
        "job": obs.name,
        "jobUid": obs.uid,
        "generation": obs.generation,
        "attempt": last.number,
        "workload": last.id,
        "environment": spec.environment,
        "environmentHash": obs.environment_hash,
        "codeHash": spec.code,
        "datasets": [{"name": n, "sha256": s} for n, s in obs.datasets.items()],
    }
    register = TaskRequest(
        "register",
        token,
        {
            "output": str(obs.output_root / last.id),
            "lineage": lineage,
            # as before tasks were kept: a registration in flight across an upgrade is found
            "sourceKey": f"job:{obs.uid}:{obs.generation}:{last.number}",
        },
    )
    return result(Phase.RUNNING, "RegisteringModel", message, tasks=[register])


def attempt_request(
    spec: JobSpec,
    name: str,
    project: str,
    wid: str,
    number: int,
    inputs: wl.Inputs,
    output_dir: Path,
) -> WorkloadRequest:
    """What attempt ``number`` of a job runs: the one builder, for the loop and for
    ``dockyard render``."""
    need = wl.need_of(spec.resources)
    plain, secrets = split_env(spec.env)
    return WorkloadRequest(
        id=wid,
        command=spec.command,
        env={
            "DOCKYARD_JOB_NAME": name,
            "DOCKYARD_ATTEMPT": str(number),
            "DOCKYARD_PROJECT": project,
            **inputs.env,
            **plain,
        },
        secrets=secrets,
        environment=inputs.environment,
        working_dir=spec.working_dir,
        mounts=inputs.mounts,
        output_dir=output_dir,
        cpu=need.cpu,
        cpu_limit=need.cpu_limit,
        memory=need.memory or None,
        timeout=spec.timeout_seconds,
        labels={"dockyard.dev/job": name},
        gpu_type=spec.resources.gpu_type,
        gpu=spec.resources.gpu,
        priority=spec.priority,
        security=spec.security.model_dump(mode="json", by_alias=True),
        project=project,
    )


def _start(spec: JobSpec, obs: Observed, number: int, message: str) -> Plan:
    inputs = obs.inputs or wl.Inputs()
    wid = f"job-{obs.name}-{obs.uid[:8]}-g{obs.generation}-a{number}"
    need = wl.need_of(spec.resources)
    output_dir = obs.output_root / wid
    request = attempt_request(spec, obs.name, obs.project, wid, number, inputs, output_dir)
    status = _status(spec, obs, Phase.PENDING, "Scheduling", message)
    running = status.but(
        phase=Phase.STARTING,
        reason="Starting",
        message=f"attempt {number} starting",
        attempts=number,
    )
    start = Start(
        wid,
        "attempt",
        obs.generation,
        number,
        spec.runtime,
        request,
        need,
        project=obs.project,
        priority=spec.priority,
        created_at=obs.created_at,
        steps=inputs.steps,
        running=running,
        event=f"attempt {number} started as {wid}",
    )
    return Plan(status, starts=[start], stops=list(obs.stale_active))


class JobReconciler:
    kind = "Job"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def observe(self, world: World, row: ResourceRecord, spec: JobSpec) -> Observed:
        owned = world.owned(row.uid)
        attempts = tuple(wl.run_of(w) for w in owned if w.generation == row.generation)
        stale = tuple(w.id for w in owned if w.generation != row.generation and w.phase in ACTIVE)
        status = row.status if row.status.get("observedGeneration") == row.generation else {}
        last = attempts[-1] if attempts else None
        # finished jobs are not looked at again: their inputs are only resolved when an
        # attempt may start (a changed dataset does not flip a job that already ended)
        settled = status.get("phase") in ENDED
        may_start = last is None or (last.phase == Phase.FAILED and not settled)
        env = world.get("Environment", row.project, spec.environment or "")
        datasets = {}
        for d in spec.datasets:
            ds = world.get("Dataset", row.project, d.name)
            datasets[d.name] = ds.status.get("sha256") if ds is not None else None
        return Observed(
            row.generation,
            attempts,
            world.at,
            stale,
            wl.resolve_inputs(self.ctx, world, row, spec, spec.checkpoint) if may_start else None,
            row.control.get("cancelledGeneration") == row.generation,
            row.deleted_at is not None,
            status.get("modelVersion"),
            status.get("registrationError") or "",
            world.task(f"{row.uid}:register"),
            row.name,
            row.project,
            row.uid,
            self.ctx.settings.home / "outputs",
            env.status.get("hash") if env is not None else None,
            datasets,
            row.created_at,
        )

    plan = staticmethod(plan)

    def work(self, row: ResourceRecord, spec: JobSpec, task: TaskRequest) -> Work:
        model = spec.outputs.model
        assert model is not None
        ctx, args = self.ctx, task.args

        def register(_handle: TaskHandle) -> dict[str, Any]:
            ref = registry.register_output(
                ctx.store,
                ctx.artifacts,
                row.project,
                model,
                Path(args["output"]),
                args["lineage"],
                args["sourceKey"],
            )
            return {"ref": ref}

        return register
