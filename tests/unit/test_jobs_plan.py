"""``jobs.plan``: what a job does next, given its spec and the attempts observed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockyard.control import jobs
from dockyard.control.jobs import Observed
from dockyard.control.plan import Run
from dockyard.control.workloads import Inputs
from dockyard.control.world import TaskView
from dockyard.spec import JobSpec

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def Attempt(  # noqa: N802 - reads like the record it builds
    number: int,
    id: str,
    phase: str,
    exit_code: int | None = None,
    reason: str = "",
    message: str = "",
    finished_at: datetime | None = None,
) -> Run:
    return Run(id, number, 1, phase, exit_code, reason, message, finished_at=finished_at)


@dataclass
class View:
    """The plan as these tests read it: phase, messages, and what it does to attempts."""

    phase: str
    reason: str
    message: str
    stop: list[str]
    start_attempt: int | None
    register: int | None  # the attempt whose model is being registered
    recheck_at: datetime | None
    plan: jobs.Plan


def plan(job: JobSpec, obs: Observed) -> View:
    p = jobs.plan(job, obs)
    registering = [t for t in p.tasks if t.name == "register"]
    return View(
        p.status.phase,
        p.status.reason,
        p.status.message,
        p.stops,
        p.starts[0].number if p.starts else None,
        int(registering[0].token.split(":a")[1]) if registering else None,
        p.recheck_at,
        p,
    )


def spec(**extra: Any) -> JobSpec:
    return JobSpec.model_validate({"command": ["python", "train.py"], **extra})


def with_model(**extra: Any) -> JobSpec:
    return spec(outputs={"model": {"name": "digits", "path": "model.joblib"}}, **extra)


def retrying(limit: int = 2, **retry: Any) -> JobSpec:
    return spec(retry={"limit": limit, "backoffSeconds": 10, "backoffFactor": 2, **retry})


def failed(number: int, reason: str = "Error", exit_code: int | None = 1, ago: float = 0) -> Run:
    return Attempt(
        number,
        f"a{number}",
        "Failed",
        exit_code=exit_code,
        reason=reason,
        message=f"exit code {exit_code}",
        finished_at=NOW - timedelta(seconds=ago),
    )


def observed(*attempts: Run, **extra: Any) -> Observed:
    blocked, fatal = extra.pop("blocked", ""), extra.pop("fatal", "")
    return Observed(
        generation=1,
        attempts=attempts,
        now=extra.pop("now", NOW),
        inputs=Inputs(blocked=blocked, fatal=fatal),
        **extra,
    )


def test_no_attempts_starts_attempt_one() -> None:
    p = plan(spec(), observed())
    assert p.start_attempt == 1
    assert (p.phase, p.reason) == ("Pending", "Scheduling")
    assert p.stop == []


def test_blocked_waits_with_the_message() -> None:
    p = plan(spec(), observed(blocked="waiting for dataset 'digits' to be ready"))
    assert p.start_attempt is None
    assert (p.phase, p.reason) == ("Pending", "Waiting")
    assert p.message == "waiting for dataset 'digits' to be ready"


@pytest.mark.parametrize("phase", ["Starting", "Running"])
def test_an_active_attempt_is_starting_until_the_runtime_says_it_runs(phase: str) -> None:
    p = plan(spec(), observed(Attempt(1, "a1", phase)))
    assert (p.phase, p.reason) == (phase, phase)
    assert p.message == f"attempt 1 {phase.lower()}"
    assert p.start_attempt is None
    assert p.stop == []


def test_success_without_outputs_succeeds() -> None:
    p = plan(spec(), observed(Attempt(1, "a1", "Succeeded", exit_code=0, finished_at=NOW)))
    assert (p.phase, p.reason) == ("Succeeded", "Completed")
    assert p.message == "attempt 1 succeeded"
    assert p.register is None
    assert p.start_attempt is None


def test_success_with_a_model_output_registers_it() -> None:
    done = Attempt(2, "a2", "Succeeded", exit_code=0, finished_at=NOW)
    p = plan(with_model(), observed(failed(1, ago=60), done))
    assert (p.phase, p.reason) == ("Running", "RegisteringModel")
    assert p.register == done.number
    assert "digits" in p.message
    assert p.start_attempt is None


def test_registered_model_succeeds_naming_the_ref() -> None:
    done = Attempt(1, "a1", "Succeeded", exit_code=0, finished_at=NOW)
    p = plan(with_model(), observed(done, registered="digits@3"))
    assert (p.phase, p.reason) == ("Succeeded", "Completed")
    assert "digits@3" in p.message
    assert p.register is None


def test_registration_error_fails_the_job() -> None:
    done = Attempt(1, "a1", "Succeeded", exit_code=0, finished_at=NOW)
    p = plan(with_model(), observed(done, registration_error="model.joblib is missing"))
    assert (p.phase, p.reason) == ("Failed", "ModelRegistrationFailed")
    assert p.message == "model.joblib is missing"
    assert p.register is None


def test_failure_waits_for_the_backoff() -> None:
    p = plan(retrying(2), observed(failed(1, ago=3)))
    assert p.start_attempt is None
    assert (p.phase, p.reason) == ("Running", "BackoffRetry")
    assert p.recheck_at == NOW - timedelta(seconds=3) + timedelta(seconds=10)
    assert "attempt 1 failed: Error (exit code 1)" in p.message
    assert "attempt 2 after a 10s backoff" in p.message


def test_backoff_grows_per_attempt() -> None:
    p = plan(retrying(3), observed(failed(1, ago=100), failed(2, ago=1)))
    assert p.start_attempt is None
    assert p.recheck_at == NOW - timedelta(seconds=1) + timedelta(seconds=20)


def test_backoff_is_capped() -> None:
    job = retrying(5, maxBackoffSeconds=15)
    p = plan(job, observed(failed(1, ago=900), failed(2, ago=800), failed(3, ago=1)))
    assert p.recheck_at == NOW - timedelta(seconds=1) + timedelta(seconds=15)


def test_after_the_backoff_the_next_attempt_starts() -> None:
    p = plan(retrying(2), observed(failed(1, ago=10)))
    assert p.start_attempt == 2
    assert (p.phase, p.reason) == ("Pending", "Scheduling")
    assert p.recheck_at is None
    p = plan(retrying(2), observed(failed(1, ago=100), failed(2, ago=25)))
    assert p.start_attempt == 3


def test_retry_after_backoff_still_waits_while_blocked() -> None:
    p = plan(retrying(2), observed(failed(1, ago=60), blocked="volume 'x' is not ready"))
    assert p.start_attempt is None
    assert (p.phase, p.message) == ("Pending", "volume 'x' is not ready")


def test_retries_exhausted_fails() -> None:
    attempts = (failed(1, ago=300), failed(2, ago=200), failed(3, ago=100))
    p = plan(retrying(2), observed(*attempts))
    assert p.phase == "Failed"
    assert p.reason == "Error"
    assert p.start_attempt is None
    assert p.message == "attempt 3 failed: Error (exit code 1); 2 retries used"


def test_no_retry_limit_fails_on_first_failure() -> None:
    p = plan(spec(), observed(failed(1, ago=999)))
    assert p.phase == "Failed"
    assert p.start_attempt is None
    assert p.message == "attempt 1 failed: Error (exit code 1)"


@pytest.mark.parametrize(("exit_code", "retried"), [(75, True), (1, False), (None, False)])
def test_on_exit_codes_restricts_retries(exit_code: int | None, retried: bool) -> None:
    job = retrying(3, onExitCodes=[75, 76])
    p = plan(job, observed(failed(1, exit_code=exit_code, ago=999)))
    assert (p.start_attempt == 2) is retried
    assert (p.phase == "Failed") is not retried


@pytest.mark.parametrize("reason", ["CommandNotFound", "StartFailed"])
def test_some_failures_are_never_retried(reason: str) -> None:
    p = plan(retrying(5), observed(failed(1, reason=reason, exit_code=None, ago=999)))
    assert p.phase == "Failed"
    assert p.reason == reason
    assert p.start_attempt is None
    assert p.recheck_at is None


def test_interrupted_attempt_reruns_at_once() -> None:
    p = plan(retrying(0), observed(failed(1, reason="Interrupted", exit_code=None, ago=0)))
    assert p.start_attempt == 2
    assert p.recheck_at is None


def test_a_preempted_pod_gets_a_new_attempt_that_does_not_count() -> None:
    p = plan(retrying(0), observed(failed(1, reason="Preempted", exit_code=None, ago=0)))
    assert p.start_attempt == 2
    assert p.recheck_at is None


def test_an_eviction_counts_it_may_be_the_jobs_own_doing() -> None:
    p = plan(retrying(0), observed(failed(1, reason="Evicted", exit_code=None, ago=0)))
    assert p.phase == "Failed" and p.start_attempt is None


def test_interrupted_attempts_do_not_count_against_the_limit() -> None:
    attempts = (
        failed(1, ago=500),
        failed(2, reason="Interrupted", exit_code=None, ago=400),
        failed(3, reason="Interrupted", exit_code=None, ago=300),
    )
    p = plan(retrying(1), observed(*attempts))
    assert p.start_attempt == 4
    p = plan(retrying(1), observed(*attempts, failed(4, ago=100)))
    assert p.phase == "Failed"
    assert p.start_attempt is None


def test_interrupted_ignores_on_exit_codes() -> None:
    job = retrying(1, onExitCodes=[75])
    p = plan(job, observed(failed(1, reason="Interrupted", exit_code=143, ago=0)))
    assert p.start_attempt == 2


def test_cancelled_stops_active_attempts() -> None:
    attempts = (failed(1, ago=60), Attempt(2, "a2", "Running"))
    p = plan(retrying(2), observed(*attempts, cancelled=True))
    assert (p.phase, p.reason) == ("Cancelled", "Cancelled")
    assert p.stop == ["a2"]
    assert p.start_attempt is None


def test_cancelled_before_any_attempt_does_not_start() -> None:
    p = plan(spec(), observed(cancelled=True))
    assert p.phase == "Cancelled"
    assert p.start_attempt is None


def test_deleting_stops_everything() -> None:
    attempts = (Attempt(1, "a1", "Starting"), Attempt(2, "a2", "Running"))
    p = plan(spec(), observed(*attempts, stale_active=("old1",), deleting=True, cancelled=True))
    assert p.phase == "Terminating"
    assert sorted(p.stop) == ["a1", "a2", "old1"]
    assert p.start_attempt is None


def test_fatal_fails_and_stops() -> None:
    p = plan(spec(), observed(Attempt(1, "a1", "Running"), fatal="dataset 'x' changed"))
    assert (p.phase, p.reason, p.message) == ("Failed", "InvalidSpec", "dataset 'x' changed")
    assert p.stop == ["a1"]
    assert p.start_attempt is None


def test_fatal_without_attempts_does_not_start() -> None:
    p = plan(spec(), observed(fatal="environment 'x' failed to build"))
    assert p.phase == "Failed"
    assert p.start_attempt is None


STALE_CASES = {
    "new": observed(stale_active=("old1", "old2")),
    "blocked": observed(stale_active=("old1", "old2"), blocked="x"),
    "running": observed(Attempt(1, "a1", "Running"), stale_active=("old1", "old2")),
    "succeeded": observed(Attempt(1, "a1", "Succeeded"), stale_active=("old1", "old2")),
    "backoff": observed(failed(1), stale_active=("old1", "old2")),
    "retry": observed(failed(1, ago=999), stale_active=("old1", "old2")),
    "exhausted": observed(failed(1), failed(2), failed(3), stale_active=("old1", "old2")),
    "cancelled": observed(stale_active=("old1", "old2"), cancelled=True),
    "fatal": observed(stale_active=("old1", "old2"), fatal="x"),
    "deleting": observed(stale_active=("old1", "old2"), deleting=True),
}


@pytest.mark.parametrize("case", list(STALE_CASES))
def test_stale_attempts_are_always_stopped(case: str) -> None:
    p = plan(retrying(2), STALE_CASES[case])
    assert {"old1", "old2"} <= set(p.stop)
    assert "a1" not in p.stop or case in ("cancelled", "fatal", "deleting")


@pytest.mark.parametrize("case", ["registering", "registered", "registration-error"])
def test_stale_attempts_are_stopped_while_registering(case: str) -> None:
    done = Attempt(1, "a1", "Succeeded")
    extra: dict[str, Any] = {
        "registering": {},
        "registered": {"registered": "digits@1"},
        "registration-error": {"registration_error": "boom"},
    }[case]
    p = plan(with_model(), observed(done, stale_active=("old",), **extra))
    assert p.stop == ["old"]


def registration(state: str, **extra: Any) -> TaskView:
    return TaskView("register", "g1:a1", state, **extra)


@pytest.mark.parametrize(
    ("task", "phase", "reason", "requests"),
    [
        (None, "Running", "RegisteringModel", True),
        (registration("running"), "Running", "RegisteringModel", False),
        (registration("lost"), "Running", "RegisteringModel", True),
        (registration("succeeded", result={"ref": "digits@4"}), "Succeeded", "Completed", False),
        (
            registration("failed", error="no model"),
            "Failed",
            "ModelRegistrationFailed",
            False,
        ),
    ],
)
def test_registration_is_a_task_whose_outcome_the_plan_reads(
    task: TaskView | None, phase: str, reason: str, requests: bool
) -> None:
    done = Attempt(1, "a1", "Succeeded", exit_code=0, finished_at=NOW)
    p = plan(with_model(), observed(done, registration=task))
    assert (p.phase, p.reason) == (phase, reason)
    assert (p.register == 1) is requests
    if phase == "Succeeded":
        assert p.plan.status.model_version == "digits@4"
    if phase == "Failed":
        assert p.plan.status.registration_error == "no model"


def test_a_registration_for_another_attempt_is_not_this_ones() -> None:
    done = Attempt(2, "a2", "Succeeded", exit_code=0, finished_at=NOW)
    old = registration("succeeded", result={"ref": "digits@1"})  # token g1:a1
    p = plan(with_model(), observed(failed(1, ago=60), done, registration=old))
    assert (p.phase, p.register) == ("Running", 2)


def test_the_register_task_carries_the_lineage() -> None:
    done = Attempt(1, "a1", "Succeeded", exit_code=0, finished_at=NOW)
    obs = observed(done, environment_hash="abc", datasets={"digits": "f00"}, name="train")
    task = plan(with_model(environment="sk", code="sha256:1"), obs).plan.tasks[0]
    lineage = task.args["lineage"]
    assert lineage["environment"] == "sk" and lineage["environmentHash"] == "abc"
    assert lineage["datasets"] == [{"name": "digits", "sha256": "f00"}]
    assert (lineage["codeHash"], lineage["attempt"], lineage["workload"]) == ("sha256:1", 1, "a1")
    assert task.args["output"].endswith("/a1")


def test_a_start_carries_the_request_and_what_to_prepare() -> None:
    from dockyard.control.plan import MakeDirs, UnpackCode

    steps = (MakeDirs((Path("/v/data"),)), UnpackCode("sha256:1"))
    job = spec(
        env={"SEED": "1", "TOKEN": {"secretRef": "hub/token"}},
        priority=5,
        resources={"cpu": 2, "memory": "1Gi", "gpu": 1},
        timeoutSeconds=60,
        security={"runAsRoot": True},
    )
    obs = Observed(
        generation=3,
        attempts=(),
        now=NOW,
        inputs=Inputs(steps=steps),
        name="train",
        project="team",
        uid="0123456789abcdef" * 2,
    )
    start = jobs.plan(job, obs).starts[0]
    assert start.workload_id == "job-train-01234567-g3-a1"
    assert (start.role, start.generation, start.number, start.priority) == ("attempt", 3, 1, 5)
    assert (start.need.cpu, start.need.memory, start.need.gpu) == (2.0, 2**30, 1)
    assert start.steps == steps
    r = start.request
    assert r.env["SEED"] == "1" and r.env["DOCKYARD_PROJECT"] == "team"
    assert "TOKEN" not in r.env and r.secrets == {"TOKEN": "hub/token"}  # resolved at start
    assert r.secret_env == {} and start.project == "team"
    assert r.env["DOCKYARD_ATTEMPT"] == "1" and r.timeout == 60
    assert r.security["runAsRoot"] is True
    assert r.gpus == () and r.port is None  # placement comes with admission
    assert start.running is not None and start.running.phase == "Starting"


@pytest.mark.parametrize("reason", ["DatasetChanged", "CodeMissing", "SecretMissing"])
def test_attempts_that_could_not_start_are_not_retried(reason: str) -> None:
    p = plan(retrying(3), observed(failed(1, reason=reason, exit_code=None, ago=999)))
    assert (p.phase, p.reason, p.start_attempt) == ("Failed", reason, None)


def test_the_status_reports_the_last_attempt() -> None:
    last = Run(
        "a2", 2, 1, "Failed", 3, "Error", "exit code 3",
        started_at=NOW, finished_at=NOW,
        details={"usage": {"cpuSeconds": 1.5}, "logTail": "boom"},
    )  # fmt: skip
    status = jobs.plan(spec(), observed(failed(1, ago=60), last)).status
    assert (status.attempts, status.exit_code, status.log_tail) == (2, 3, "boom")
    assert status.usage == {"cpuSeconds": 1.5} and status.finished_at == NOW
