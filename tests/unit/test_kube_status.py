"""What pods and Jobs say, as Dockyard states, in the cluster's own words."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from dockyard.runtimes.base import RunState
from dockyard.runtimes.kube_status import VERDICT_WAIT, deployment_state, job_state

Obj = dict[str, Any]
JOB: Obj = {"metadata": {"name": "job-a"}, "status": {"startTime": "2026-12-01T10:00:00Z"}}


def pod(phase: str, **status: Any) -> Obj:
    return {
        "metadata": {"name": "job-a-x1", "creationTimestamp": "2026-12-01T10:00:00Z"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, **status},
    }


def condition(kind: str, value: str, reason: str = "", message: str = "") -> Obj:
    return {"type": kind, "status": value, "reason": reason, "message": message}


def main_container(state: Obj, **extra: Any) -> list[Obj]:
    return [{"name": "main", "state": state, **extra}]


def test_a_job_that_is_gone_is_not_found() -> None:
    assert job_state("w", None, []).phase == RunState.NOT_FOUND


def test_unschedulable_pods_wait_with_the_schedulers_words() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu."
    waiting = pod(
        "Pending", conditions=[condition("PodScheduled", "False", "Unschedulable", message)]
    )
    state = job_state("w", JOB, [waiting])
    assert (state.phase, state.reason, state.message) == (
        RunState.PENDING,
        "Unschedulable",
        message,
    )


def test_an_image_that_cannot_be_pulled_says_so() -> None:
    stuck = pod(
        "Pending",
        containerStatuses=main_container(
            {"waiting": {"reason": "ImagePullBackOff", "message": "Back-off pulling image"}}
        ),
    )
    state = job_state("w", JOB, [stuck])
    assert (state.phase, state.reason) == (RunState.PENDING, "ImagePullBackOff")
    creating = pod(
        "Pending", containerStatuses=main_container({"waiting": {"reason": "ContainerCreating"}})
    )
    assert job_state("w", JOB, [creating]).reason == "Pending"


def test_running_then_complete() -> None:
    running = job_state("w", JOB, [pod("Running")])
    assert running.phase == RunState.RUNNING and running.details["node"] == "n1"
    done = {**JOB, "status": {**JOB["status"], "conditions": [condition("Complete", "True")]}}
    state = job_state("w", done, [pod("Succeeded")])
    assert (state.phase, state.exit_code) == (RunState.SUCCEEDED, 0)


def failed_job(reason: str, message: str = "") -> Obj:
    return {**JOB, "status": {"conditions": [condition("Failed", "True", reason, message)]}}


def test_exit_codes_and_oom_kills_come_from_the_container() -> None:
    crashed = pod("Failed", containerStatuses=main_container({"terminated": {"exitCode": 3}}))
    state = job_state("w", failed_job("BackoffLimitExceeded"), [crashed])
    assert (state.phase, state.reason, state.exit_code) == (RunState.FAILED, "Error", 3)
    oom = pod(
        "Failed",
        containerStatuses=main_container({"terminated": {"exitCode": 137, "reason": "OOMKilled"}}),
    )
    state = job_state("w", failed_job("BackoffLimitExceeded"), [oom])
    assert (state.reason, state.exit_code) == ("OOMKilled", 137)


def test_deadline_eviction_and_preemption_end_the_attempt_with_their_reason() -> None:
    state = job_state("w", failed_job("DeadlineExceeded", "Job was active longer"), [])
    assert (state.phase, state.reason) == (RunState.FAILED, "Timeout")
    evicted = pod("Failed", reason="Evicted", message="The node was low on resource: memory.")
    state = job_state("w", failed_job("BackoffLimitExceeded"), [evicted])
    assert (state.reason, state.message) == ("Evicted", "The node was low on resource: memory.")
    preempted = pod(
        "Failed",
        conditions=[condition("DisruptionTarget", "True", "PreemptionByScheduler", "by p")],
    )
    state = job_state("w", failed_job("PodFailurePolicy"), [preempted])
    assert state.reason == "Preempted"


def test_a_pod_gone_before_it_was_seen_leaves_the_jobs_own_words() -> None:
    gone = failed_job("PodFailurePolicy", "Pod default/x has condition DisruptionTarget")
    state = job_state("w", gone, [])
    assert (state.phase, state.reason) == (RunState.FAILED, "PodFailurePolicy")
    assert "DisruptionTarget" in state.message


def test_a_pod_that_ended_before_its_job_noticed() -> None:
    ended = pod("Failed", containerStatuses=main_container({"terminated": {"exitCode": 1}}))
    state = job_state("w", JOB, [ended])
    assert (state.phase, state.exit_code) == (RunState.FAILED, 1)


def test_a_revision_is_ready_when_its_pods_are_and_its_address_is_the_service() -> None:
    deployment = {"metadata": {"name": "svc-a"}, "spec": {"replicas": 2}}
    url = "http://web.ns.svc:8080"
    assert deployment_state("w", None, [], url).phase == RunState.NOT_FOUND
    assert deployment_state("w", deployment, [], url).phase == RunState.PENDING
    starting = pod("Running", conditions=[condition("Ready", "False")])
    state = deployment_state("w", deployment, [starting], url)
    assert state.phase == RunState.RUNNING and state.details["ready"] is False
    ready = pod("Running", conditions=[condition("Ready", "True")], podIP="10.1.2.3")
    state = deployment_state("w", deployment, [ready, starting], url)
    assert state.details == {
        "object": "deployment/svc-a",
        "url": url,  # the Service's: stable across pods and revisions
        "ready": True,
        "readyReplicas": 1,
        "replicas": 2,
        "endpoints": ["http://10.1.2.3:8080"],
        "pod": "job-a-x1",
    }
    crashing = pod(
        "Running",
        containerStatuses=main_container(
            {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            lastState={"terminated": {"exitCode": 2}},
        ),
    )
    state = deployment_state("w", deployment, [crashing], url)
    assert (state.phase, state.reason, state.exit_code) == (RunState.FAILED, "CrashLoopBackOff", 2)
    # one pod crash-looping beside a ready one: the revision still serves, and says so
    state = deployment_state("w", deployment, [ready, crashing], url)
    assert state.phase == RunState.RUNNING and "CrashLoopBackOff" in state.message


def test_a_deadline_is_a_timeout_even_before_the_job_says_so() -> None:
    """The kubelet ends the pod (SIGTERM, exit 143) a moment before the Job controller writes
    DeadlineExceeded: the attempt is a Timeout, never an Error."""
    job = {**JOB, "spec": {"activeDeadlineSeconds": 5}}
    killed = pod(
        "Failed",
        containerStatuses=main_container(
            {"terminated": {"exitCode": 143, "finishedAt": "2026-12-01T10:00:06Z"}}
        ),
    )
    state = job_state("w", job, [killed], datetime(2026, 12, 1, 10, 0, 7, tzinfo=UTC))
    assert (state.phase, state.reason) == (RunState.FAILED, "Timeout")
    assert state.message == "exceeded timeoutSeconds=5"


def test_a_pod_that_failed_waits_a_moment_for_its_jobs_verdict() -> None:
    ended = pod(
        "Failed",
        containerStatuses=main_container(
            {"terminated": {"exitCode": 1, "finishedAt": "2026-12-01T10:00:02Z"}}
        ),
    )
    soon = datetime(2026, 12, 1, 10, 0, 3, tzinfo=UTC)
    assert job_state("w", JOB, [ended], soon).phase == RunState.RUNNING
    later = soon + VERDICT_WAIT
    state = job_state("w", JOB, [ended], later)
    assert (state.phase, state.reason, state.exit_code) == (RunState.FAILED, "Error", 1)
