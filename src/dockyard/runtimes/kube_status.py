"""What a workload's Kubernetes objects say, as a WorkloadState: pure, in the cluster's words.

A pod the scheduler cannot place is ``Pending`` with its reason (``0/3 nodes are available:
3 Insufficient nvidia.com/gpu.``); a container that cannot get its image says
``ImagePullBackOff``; an OOM kill, an eviction, a preemption or a deadline end the attempt
with that reason, and Dockyard's retry policy decides about the next one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from dockyard.runtimes.base import RunState, WorkloadState
from dockyard.runtimes.kube_objects import SERVE_PORT
from dockyard.runtimes.kube_steps import STEP_REASONS

Obj = dict[str, Any]
# how long a pod that ended waits for its Job's own verdict (the Job controller is a moment
# behind the kubelet: a deadline's SIGTERM ends the pod before DeadlineExceeded is written)
VERDICT_WAIT = timedelta(seconds=30)
# waiting reasons of a container that will not start by itself
STUCK = frozenset(
    {
        "ImagePullBackOff",
        "ErrImagePull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "CrashLoopBackOff",
        "RunContainerError",
    }
)


def _time(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


def _condition(obj: Obj, kind: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == kind:
            return dict(cond)
    return None


def _main_status(pod: Obj) -> Obj:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == "main":
            return dict(status)
    return {}


def _waiting(pod: Obj) -> tuple[str, str]:
    """Why the pod does not run yet, in the cluster's words ("" when it has no reason)."""
    status = pod.get("status") or {}
    scheduled = _condition(pod, "PodScheduled")
    if scheduled is not None and scheduled.get("status") == "False":
        return scheduled.get("reason") or "Unschedulable", scheduled.get("message") or ""
    for cs in [*(status.get("initContainerStatuses") or []), *status.get("containerStatuses", [])]:
        waiting = (cs.get("state") or {}).get("waiting") or {}
        if waiting.get("reason") and waiting["reason"] not in (
            "ContainerCreating",
            "PodInitializing",
        ):
            return str(waiting["reason"]), str(waiting.get("message") or "")
    return "", ""


def pod_end(pod: Obj) -> tuple[str, str, int | None]:
    """(reason, message, exit code) of a pod that ended."""
    status = pod.get("status") or {}
    disruption = _condition(pod, "DisruptionTarget")
    if status.get("reason") == "Evicted":
        return "Evicted", str(status.get("message") or "evicted by the node"), None
    if disruption is not None and disruption.get("status") == "True":
        reason = str(disruption.get("reason") or "Disrupted")
        if reason in ("PreemptionByScheduler", "PreemptionByKubeScheduler"):  # 1.27+, before
            reason = "Preempted"
        return reason, str(disruption.get("message") or ""), None
    for init in status.get("initContainerStatuses") or []:  # a precondition done in the pod
        ended = (init.get("state") or {}).get("terminated") or {}
        if ended.get("exitCode") and init.get("name") in STEP_REASONS:
            message = str(ended.get("message") or f"{init['name']} exited {ended['exitCode']}")
            return STEP_REASONS[init["name"]], message.strip(), None
    terminated = (_main_status(pod).get("state") or {}).get("terminated") or {}
    code = terminated.get("exitCode")
    reason = str(terminated.get("reason") or "")
    if reason == "OOMKilled":
        return "OOMKilled", "killed: the memory limit was exceeded", code
    if code == 0:
        return "Completed", "", 0
    if code is None:
        return str(status.get("reason") or "Error"), str(status.get("message") or ""), None
    return "Error", str(terminated.get("message") or f"exit code {code}"), code


def _deadline_passed(job: Obj, at: datetime) -> bool:
    """Has the Job's activeDeadlineSeconds run out by ``at``?"""
    deadline = (job.get("spec") or {}).get("activeDeadlineSeconds")
    started = _time((job.get("status") or {}).get("startTime"))
    if not deadline or started is None:
        return False
    return at >= started + timedelta(seconds=float(deadline))


def _pod_finished_at(pod: Obj) -> datetime | None:
    terminated = (_main_status(pod).get("state") or {}).get("terminated") or {}
    return _time(terminated.get("finishedAt"))


def job_state(
    workload_id: str, job: Obj | None, pods: list[Obj], now: datetime | None = None
) -> WorkloadState:
    """The state of a job attempt (or a dataset preparation) from its Job and pods; ``now``
    decides how long a pod's end waits for the Job's own words (a deadline: ``Timeout``)."""
    if job is None:
        return WorkloadState(workload_id, RunState.NOT_FOUND)
    status = job.get("status") or {}
    started = _time(status.get("startTime"))
    pod = max(pods, key=lambda p: p["metadata"].get("creationTimestamp") or "", default=None)
    details: Obj = {"object": f"job/{job['metadata']['name']}"}
    if pod is not None:
        details["pod"] = pod["metadata"]["name"]
        if (pod.get("spec") or {}).get("nodeName"):
            details["node"] = pod["spec"]["nodeName"]
    complete, failed = _condition(job, "Complete"), _condition(job, "Failed")
    finished = _time(status.get("completionTime"))
    if complete is not None and complete.get("status") == "True":
        return WorkloadState(
            workload_id, RunState.SUCCEEDED, 0, "Completed", "", started, finished, details
        )
    if failed is not None and failed.get("status") == "True":
        finished = _time(failed.get("lastTransitionTime"))
        if failed.get("reason") == "DeadlineExceeded":
            return WorkloadState(
                workload_id,
                RunState.FAILED,
                None,
                "Timeout",
                str(failed.get("message") or "exceeded timeoutSeconds"),
                started,
                finished,
                details,
            )
        if pod is None:  # gone before it was seen (a drain, a preemption): the Job's words
            why = str(failed.get("reason") or "Error")
            reason, message, code = why, str(failed.get("message") or "the pod is gone"), None
        else:
            reason, message, code = pod_end(pod)
        if reason == "Completed":  # the pod says so, the Job disagrees: the Job's words win
            reason, message = str(failed.get("reason") or "Error"), str(failed.get("message"))
        return WorkloadState(
            workload_id, RunState.FAILED, code, reason, message, started, finished, details
        )
    if pod is None:
        return WorkloadState(workload_id, RunState.PENDING, None, "Creating", "", details=details)
    phase = (pod.get("status") or {}).get("phase")
    if phase in ("Failed", "Succeeded"):  # the Job controller has not caught up: the pod's end
        reason, message, code = pod_end(pod)
        ended = _pod_finished_at(pod) or started
        if reason != "Completed" and now is not None:
            if _deadline_passed(job, ended or now):  # the deadline ended it: Timeout
                message = f"exceeded timeoutSeconds={job['spec']['activeDeadlineSeconds']}"
                return WorkloadState(
                    workload_id, RunState.FAILED, code, "Timeout", message, started, ended, details
                )
            if ended is not None and now < ended + VERDICT_WAIT:  # the Job's words may follow
                return WorkloadState(
                    workload_id, RunState.RUNNING, started_at=started, details=details
                )
        run = RunState.SUCCEEDED if reason == "Completed" else RunState.FAILED
        return WorkloadState(workload_id, run, code, reason, message, started, None, details)
    reason, message = _waiting(pod)
    if phase == "Running" and reason not in STUCK:
        return WorkloadState(workload_id, RunState.RUNNING, started_at=started, details=details)
    return WorkloadState(
        workload_id, RunState.PENDING, None, reason or "Pending", message, started, None, details
    )


def deployment_state(
    workload_id: str, deployment: Obj | None, pods: list[Obj], url: str
) -> WorkloadState:
    """The state of a service revision (a Deployment of ``replicas`` pods): its address is
    the Service's ``url``, stable across revisions; ``endpoints`` are its ready pods."""
    if deployment is None:
        return WorkloadState(workload_id, RunState.NOT_FOUND)
    live = [p for p in pods if not (p["metadata"].get("deletionTimestamp"))]
    ready_pods = [p for p in live if (_condition(p, "Ready") or {}).get("status") == "True"]
    endpoints = [
        f"http://{ip}:{SERVE_PORT}"
        for p in ready_pods
        if (ip := (p.get("status") or {}).get("podIP"))
    ]
    details: Obj = {
        "object": f"deployment/{deployment['metadata']['name']}",
        "url": url,
        "ready": bool(ready_pods),
        "readyReplicas": len(ready_pods),
        "replicas": int((deployment.get("spec") or {}).get("replicas", 1)),
        "endpoints": sorted(endpoints),
    }
    if not live:
        return WorkloadState(workload_id, RunState.PENDING, None, "Creating", "", details=details)
    pod = ready_pods[0] if ready_pods else live[0]
    details["pod"] = pod["metadata"]["name"]
    started = min(
        (t for p in live if (t := _time((p.get("status") or {}).get("startTime")))), default=None
    )
    crashing = [p for p in live if _waiting(p)[0] == "CrashLoopBackOff"]
    if crashing and not ready_pods:  # model servers that keep dying: this revision failed
        bad = crashing[0]
        message = _waiting(bad)[1]
        _, end_message, code = pod_end(bad)
        last = (_main_status(bad).get("lastState") or {}).get("terminated") or {}
        code = last.get("exitCode", code)
        return WorkloadState(
            workload_id,
            RunState.FAILED,
            code,
            "CrashLoopBackOff",
            message or end_message,
            started,
            None,
            details,
        )
    if ready_pods or any((p.get("status") or {}).get("phase") == "Running" for p in live):
        reason, message = _waiting(pod)
        if reason in STUCK and not ready_pods:
            return WorkloadState(
                workload_id, RunState.PENDING, None, reason, message, started, None, details
            )
        note = f"{len(crashing)} pod(s) in CrashLoopBackOff" if crashing else ""
        return WorkloadState(
            workload_id, RunState.RUNNING, message=note, started_at=started, details=details
        )
    reason, message = _waiting(pod)
    return WorkloadState(
        workload_id, RunState.PENDING, None, reason or "Pending", message, started, None, details
    )
