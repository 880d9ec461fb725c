"""Jobs: attempts with retries and backoff, scheduling, and model registration at the end.

``plan`` is a pure function of the spec and what was observed; ``JobReconciler`` acts on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control import workloads as wl
from dockyard.control.context import Context, World, iso, write_status
from dockyard.control.scheduler import Decision, Demand
from dockyard.registry import models as registry
from dockyard.runtimes.base import WorkloadRequest
from dockyard.spec import JobSpec
from dockyard.store.tables import ResourceRow, WorkloadRow

NOT_RETRIED = {"CommandNotFound", "StartFailed"}
NOT_COUNTED = {"Interrupted"}  # ended by a server shutdown: re-run, not a failure


@dataclass(frozen=True)
class Attempt:
    number: int
    id: str
    phase: str
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    finished_at: datetime | None = None


@dataclass(frozen=True)
class Observed:
    generation: int
    attempts: tuple[Attempt, ...]
    stale_active: tuple[str, ...] = ()  # attempts of an older generation still running
    blocked: str = ""
    fatal: str = ""
    fatal_reason: str = "InvalidSpec"
    cancelled: bool = False
    deleting: bool = False
    registered: str | None = None  # "digits@3" once the model version exists
    registration_error: str = ""
    now: datetime = field(default_factory=lambda: datetime.now().astimezone())


@dataclass
class Plan:
    phase: str
    reason: str = ""
    message: str = ""
    stop: list[str] = field(default_factory=list)
    start_attempt: int | None = None
    register: Attempt | None = None
    recheck_at: datetime | None = None


def counted(attempts: tuple[Attempt, ...]) -> int:
    return sum(1 for a in attempts if a.reason not in NOT_COUNTED)


def plan(spec: JobSpec, obs: Observed) -> Plan:
    stop = list(obs.stale_active)
    active = [a.id for a in obs.attempts if a.phase in wl.ACTIVE]
    if obs.deleting:
        return Plan("Terminating", "Deleting", stop=stop + active)
    if obs.cancelled:
        return Plan("Cancelled", "Cancelled", "cancelled on request", stop=stop + active)
    if obs.fatal:
        return Plan("Failed", obs.fatal_reason, obs.fatal, stop=stop + active)
    last = obs.attempts[-1] if obs.attempts else None
    next_number = (last.number + 1) if last else 1
    if last is None:
        if obs.blocked:
            return Plan("Pending", "Waiting", obs.blocked, stop=stop)
        return Plan("Pending", "Scheduling", "waiting for resources", stop=stop, start_attempt=1)
    if last.phase in wl.ACTIVE:
        return Plan("Running", "Running", f"attempt {last.number} running", stop=stop)
    if last.phase == "Succeeded":
        model = spec.outputs.model
        if model is None:
            return Plan("Succeeded", "Completed", f"attempt {last.number} succeeded", stop=stop)
        if obs.registered:
            return Plan(
                "Succeeded",
                "Completed",
                f"attempt {last.number} succeeded; registered {obs.registered}",
                stop=stop,
            )
        if obs.registration_error:
            return Plan("Failed", "ModelRegistrationFailed", obs.registration_error, stop=stop)
        return Plan(
            "Running",
            "RegisteringModel",
            f"registering model '{model.name}'",
            stop=stop,
            register=last,
        )
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
        return Plan("Failed", last.reason or "Failed", why + suffix, stop=stop)
    wait = retry.delay_before(used + 1) if last.reason not in NOT_COUNTED else 0.0
    due = (last.finished_at or obs.now) + timedelta(seconds=wait)
    if due > obs.now:
        return Plan(
            "Running",
            "BackoffRetry",
            f"{why}; attempt {next_number} after a {wait:g}s backoff",
            stop=stop,
            recheck_at=due,
        )
    if obs.blocked:
        return Plan("Pending", "Waiting", obs.blocked, stop=stop)
    return Plan("Pending", "Scheduling", f"{why}; retrying", stop=stop, start_attempt=next_number)


class JobReconciler:
    kind = "Job"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def source_key(self, row: ResourceRow, attempt: Attempt) -> str:
        return f"job:{row.uid}:{row.generation}:{attempt.number}"

    def observe(
        self, world: World, row: ResourceRow, spec: JobSpec
    ) -> tuple[Observed, list[WorkloadRow]]:
        owned = [wl.refresh(self.ctx, w) for w in world.owned(row.uid)]
        current = [w for w in owned if w.generation == row.generation]
        stale = tuple(
            w.id for w in owned if w.generation != row.generation and w.phase in wl.ACTIVE
        )
        attempts = tuple(
            Attempt(w.number, w.id, w.phase, w.exit_code, w.reason, w.message, w.finished_at)
            for w in current
        )
        registered, reg_error = None, ""
        model = spec.outputs.model
        if attempts and attempts[-1].phase == "Succeeded" and model is not None:
            registered = registry.registered_ref(self.ctx.store, self.source_key(row, attempts[-1]))
            status_gen = row.status.get("observedGeneration") == row.generation
            if registered is None and status_gen and row.status.get("modelVersion"):
                registered = row.status["modelVersion"]  # done once; the model may be gone
            reg_error = row.status.get("registrationError", "") if status_gen else ""
            task = self.ctx.tasks.take(f"{row.uid}:register:{row.generation}")
            if task is not None:
                error = task.future.exception()
                if error is not None:
                    reg_error = str(error)
                else:
                    registered = task.future.result()
        obs = Observed(
            row.generation,
            attempts,
            stale,
            cancelled=row.control.get("cancelledGeneration") == row.generation,
            deleting=row.deleted_at is not None,
            registered=registered,
            registration_error=reg_error,
            now=world.at,
        )
        return obs, current

    def reconcile(self, world: World, row: ResourceRow) -> tuple[Demand | None, Any]:
        spec = JobSpec.model_validate(row.spec)
        obs, current = self.observe(world, row, spec)
        p = plan(spec, obs)
        inputs = None
        if p.start_attempt is not None:
            # what the attempt needs is only looked at when one is about to start
            inputs = wl.resolve_inputs(self.ctx, world, row, row.spec, row.spec.get("checkpoint"))
            fatal, reason = inputs.fatal, "InvalidSpec"
            if not inputs.blocked and not fatal:
                fatal, reason = wl.verify_datasets(self.ctx, world, row, row.spec), "DatasetChanged"
            if inputs.blocked or fatal:
                p = plan(
                    spec, replace(obs, blocked=inputs.blocked, fatal=fatal, fatal_reason=reason)
                )
        for wid in p.stop:
            wl.stop(self.ctx, _row(self.ctx, wid))
        if p.register is not None:
            self._register(world, row, spec, p.register)
        last = current[-1] if current else None
        status: dict[str, Any] = {
            "phase": p.phase,
            "reason": p.reason,
            "message": p.message,
            "observedGeneration": row.generation,
            "attempts": len(current),
            "startedAt": iso(current[0].started_at) if current else None,
            "finishedAt": iso(last.finished_at)
            if last and p.phase in ("Succeeded", "Failed", "Cancelled")
            else None,
            "exitCode": last.exit_code if last else None,
        }
        if last is not None and last.details.get("usage"):
            status["usage"] = last.details["usage"]
        if obs.registered:
            status["modelVersion"] = obs.registered
        if obs.registration_error:
            status["registrationError"] = obs.registration_error
        if p.phase == "Failed" and last is not None and last.phase == "Failed":
            tail = wl.log_tail(self.ctx, last)
            if tail:
                status["logTail"] = tail
        if p.start_attempt is not None and row.status.get("reason") in wl.WAITING_REASONS:
            status.update({k: row.status[k] for k in ("phase", "reason", "message")})
        write_status(self.ctx, row, status)
        if p.start_attempt is not None and inputs is not None and not row.deleted_at:
            demand = wl.need_of(row.spec["resources"]).demand(
                row.uid, spec.priority, row.created_at
            )
            return demand, (row, spec, inputs, p.start_attempt)
        if row.deleted_at is not None and not any(w.phase in wl.ACTIVE for w in current):
            return None, ("delete", row)
        return None, None

    def start(
        self, pending: tuple[ResourceRow, JobSpec, wl.Inputs, int], decision: Decision
    ) -> None:
        row, spec, inputs, number = pending
        if wl.unschedulable(self.ctx, row, decision):
            return
        wid = wl.workload_id("job", row, f"g{row.generation}", f"a{number}")
        env = {
            "DOCKYARD_JOB_NAME": row.name,
            "DOCKYARD_ATTEMPT": str(number),
            "DOCKYARD_PROJECT": row.project,
            **spec.env,
        }
        if decision.gpu_indices:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(map(str, decision.gpu_indices))
        need = wl.need_of(row.spec["resources"])
        request = WorkloadRequest(
            id=wid,
            command=spec.command,
            env=env,
            environment=inputs.environment,
            code_dir=inputs.code_dir,
            working_dir=spec.working_dir,
            mounts=tuple(inputs.mounts),
            output_dir=self.output_dir(wid),
            cpu=need.cpu,
            cpu_limit=need.cpu_limit,
            memory=need.memory or None,
            gpu=need.gpu,
            timeout=spec.timeout_seconds,
            labels={"dockyard.dev/job": row.name},
            security=row.spec.get("security") or {},
        )
        wl.start(
            self.ctx, row, wid, "attempt", row.generation, number, request, runtime=spec.runtime
        )
        status = {
            **row.status,
            "phase": "Running",
            "reason": "Running",
            "message": f"attempt {number} running",
            "attempts": number,
        }
        write_status(
            self.ctx, row, status, event=("Started", f"attempt {number} started as {wid}", "Normal")
        )

    def output_dir(self, wid: str) -> Path:
        return self.ctx.settings.home / "outputs" / wid

    def _register(self, world: World, row: ResourceRow, spec: JobSpec, attempt: Attempt) -> None:
        model = spec.outputs.model
        assert model is not None
        env = world.get("Environment", row.project, spec.environment or "")
        datasets = []
        for ds in spec.datasets:
            d = world.get("Dataset", row.project, ds.name)
            datasets.append({"name": ds.name, "sha256": d.status.get("sha256") if d else None})
        lineage = {
            "job": row.name,
            "jobUid": row.uid,
            "generation": row.generation,
            "attempt": attempt.number,
            "workload": attempt.id,
            "environment": spec.environment,
            "environmentHash": env.status.get("prepared", {}).get("hash") if env else None,
            "codeHash": spec.code,
            "datasets": datasets,
        }
        source_key = self.source_key(row, attempt)
        out = self.output_dir(attempt.id)

        def work(_state: Any) -> str:
            return registry.register_output(
                self.ctx.store, self.ctx.artifacts, row.project, model, out, lineage, source_key
            )

        self.ctx.tasks.submit(f"{row.uid}:register:{row.generation}", row.uid, work)


def _row(ctx: Context, wid: str) -> WorkloadRow:
    with ctx.store.session() as session:
        w = session.get(WorkloadRow, wid)
        assert w is not None
        return w
