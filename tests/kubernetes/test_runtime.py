"""The kubernetes runtime against the real API server of the test cluster (kwok nodes)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import httpx
import pytest

from dockyard.errors import EngineError
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import Mount, RunState, VolumeRef, WorkloadRequest
from dockyard.runtimes.kube_watch import JOBS, PODS, Gone, WatchCache
from dockyard.runtimes.kubernetes import KubernetesRuntime
from tests.kubernetes.conftest import cluster, eventually, get


def request_for(
    project: str, name: str = "train", attempt: int = 1, **changes: object
) -> WorkloadRequest:
    fields: dict[str, object] = {
        "id": f"job-{name}-0123abcd-g1-a{attempt}",
        "command": ["python", "train.py"],
        "env": {"EPOCHS": "1"},
        "labels": {"dockyard.dev/job": name},
        "project": project,
        "cpu": 0.5,
        "memory": 256 * 1024**2,
    }
    fields.update(changes)
    return WorkloadRequest(**fields)  # type: ignore[arg-type]


def job_path(runtime: KubernetesRuntime, project: str, request: WorkloadRequest) -> str:
    ns = ko.namespace_of(runtime.options, project)
    return f"/apis/batch/v1/namespaces/{ns}/jobs/{ko.dns_name(request.id)}"


def test_a_job_runs_on_a_node_and_completes_observed_by_watch(
    runtime: KubernetesRuntime, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text("print('hi')\n")
    volume = VolumeRef("data", "raw", "fast", 1024**3)
    request = request_for(
        project,
        code_dir=code,
        output_dir=tmp_path / "out",
        mounts=(Mount(tmp_path, "/volumes/data", False, "DOCKYARD_VOLUME_DATA", volume),),
        secrets={"TOKEN": "creds/token"},
        secret_env={"TOKEN": "value-never-in-a-spec"},
    )
    changed: list[str] = []
    runtime.set_listener(changed.append)
    state = runtime.start(request)
    assert state.phase == RunState.PENDING
    job = get(kube, job_path(runtime, project, request))
    assert job is not None
    labels = job["metadata"]["labels"]
    assert labels[ko.MANAGED_BY] == "dockyard" and labels[ko.PROJECT] == project
    assert "value-never-in-a-spec" not in json.dumps(job)
    ns = job["metadata"]["namespace"]
    # owned objects carry the Job as their owner; claims are the project's
    secret = get(kube, f"/api/v1/namespaces/{ns}/secrets/{ko.dns_name(request.id)}-env")
    assert secret is not None and secret["metadata"]["ownerReferences"][0]["kind"] == "Job"
    claim = get(kube, f"/api/v1/namespaces/{ns}/persistentvolumeclaims/data")
    assert claim is not None and claim["spec"]["storageClassName"] == "dockyard-fast"
    done = eventually(lambda: (s := runtime.observe(request.id)).done and s, timeout=60)
    assert done.phase == RunState.SUCCEEDED, done
    assert done.details["node"].startswith("kwok-node")
    # a kwok pod runs no program: no log, so no outputs (said, not hidden)
    assert done.details["outputs"].startswith("not collected: ")
    assert request.id in changed  # the watch told the control loop
    assert request.id in runtime.list_workloads()
    runtime.remove(request.id)
    eventually(lambda: runtime.observe(request.id).phase == RunState.NOT_FOUND)
    # the garbage collector takes what the Job owned
    eventually(
        lambda: get(kube, f"/api/v1/namespaces/{ns}/secrets/{ko.dns_name(request.id)}-env") is None,
        timeout=60,
    )


def test_a_pod_no_node_can_hold_waits_with_the_schedulers_reason(
    runtime: KubernetesRuntime, project: str
) -> None:
    request = request_for(project, "big", gpus=(0, 1, 2, 3), gpu_type=None)
    runtime.start(request)
    state = eventually(
        lambda: (s := runtime.observe(request.id)).reason == "Unschedulable" and s, timeout=60
    )
    assert state.phase == RunState.PENDING
    assert "nvidia.com/gpu" in state.message and "nodes are available" in state.message
    runtime.stop(request.id, grace=1)
    stopped = runtime.observe(request.id)
    assert (stopped.phase, stopped.reason) == (RunState.FAILED, "Stopped")


def test_a_new_generation_changes_the_object_and_a_conflict_is_taken_over(
    runtime: KubernetesRuntime, kube: httpx.Client, project: str
) -> None:
    request = request_for(
        project, "svc", labels={"dockyard.dev/service": "web"}, id="svc-web-0123abcd-g1-v1-r0-0"
    )
    runtime.start(request)
    ns = ko.namespace_of(runtime.options, project)
    path = f"/apis/apps/v1/namespaces/{ns}/deployments/{ko.dns_name(request.id)}"
    # another manager (a person with kubectl) changes a field Dockyard owns
    patch = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": ko.dns_name(request.id), "labels": {ko.NAME: "hijacked"}},
    }
    answer = kube.patch(
        path,
        content=json.dumps(patch),
        params={"fieldManager": "kubectl", "force": "false"},
        headers={"Content-Type": "application/apply-patch+yaml"},
    )
    assert answer.status_code == 409  # the API server's conflict: Dockyard owns the field
    runtime.start(replace(request, env={"NEW": "1"}))  # applied again: a new spec
    deployment = get(kube, path)
    assert deployment is not None
    env = deployment["spec"]["template"]["spec"]["containers"][0]["env"]
    assert {"name": "NEW", "value": "1"} in env
    service = get(kube, f"/api/v1/namespaces/{ns}/services/web")
    assert service is not None and service["spec"]["ports"][0]["port"] == ko.SERVE_PORT
    ready = eventually(
        lambda: (s := runtime.observe(request.id)).details.get("ready") and s, timeout=60
    )
    assert ready.phase == RunState.RUNNING
    assert ready.details["url"] == f"http://web.{ns}.svc:8080"  # the Service: stable
    pod = ready.details["endpoints"][0]  # (during the rolling update, old and new)
    pod_ip = pod.removeprefix("http://").removesuffix(":8080")
    assert pod_ip.startswith("10.244.")  # kwok's pod addresses: the revision's pods


def test_a_restarted_runtime_adopts_what_exists_by_its_labels(
    runtime: KubernetesRuntime, kube_settings: object, project: str
) -> None:
    request = request_for(project, "adopt")
    runtime.start(request)
    runtime.close()
    again = KubernetesRuntime(kube_settings)  # type: ignore[arg-type]
    try:
        assert request.id in again.list_workloads()
        assert again.observe(request.id).phase != RunState.NOT_FOUND
    finally:
        again.close()


def test_watches_survive_a_restart_of_the_api_server(
    runtime: KubernetesRuntime, project: str
) -> None:
    first = request_for(project, "before")
    runtime.start(first)
    eventually(lambda: runtime.observe(first.id).done, timeout=60)
    watches = runtime.cache.counters.watches
    cluster("restart-apiserver")
    second = request_for(project, "after")
    eventually(lambda: _started(runtime, second), timeout=60, every=1.0)
    state = eventually(lambda: (s := runtime.observe(second.id)).done and s, timeout=60)
    assert state.phase == RunState.SUCCEEDED
    assert runtime.cache.counters.watches > watches  # resumed, not replaced by polling


def _started(runtime: KubernetesRuntime, request: WorkloadRequest) -> bool:
    try:
        runtime.start(request)
    except EngineError:
        return False  # the API server is still coming back
    return True


def test_a_version_the_api_server_no_longer_has_means_list_again(
    runtime: KubernetesRuntime,
) -> None:
    cache = WatchCache(runtime.http, (JOBS,), f"{ko.MANAGED_BY}=dockyard", lambda k, o: None)
    with pytest.raises(Gone):
        cache._watch(JOBS, "1")  # long compacted away


def test_the_cache_reads_without_a_request_per_workload(
    runtime: KubernetesRuntime, project: str
) -> None:
    requests = [request_for(project, f"n{i}") for i in range(5)]
    for request in requests:
        runtime.start(request)
    eventually(lambda: all(runtime.observe(r.id).done for r in requests), timeout=60)
    counters = runtime.cache.counters
    before = (counters.lists, counters.watches)
    for _ in range(20):
        for request in requests:
            runtime.observe(request.id)
    assert (counters.lists, counters.watches) == before
    assert runtime.cache.items(PODS)


def test_a_running_job_away_from_its_data_says_where_the_data_is(
    runtime: KubernetesRuntime, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    from dockyard.placement.labels import data_label

    holder = f"holder-{project}"
    node = {  # holds the volume, but takes no pods: the job lands elsewhere
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": holder,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", data_label(project, "Volume", "data"): "true"},
        },
        "spec": {"unschedulable": True},
    }
    assert kube.post("/api/v1/nodes", json=node).status_code == 201
    try:
        volume = VolumeRef("data", "", "fast", 1024**3)
        request = request_for(
            project,
            mounts=(Mount(tmp_path, "/volumes/data", False, None, volume),),
            env={"KWOK_DURATION": "60s"},  # kwok keeps its pod running that long
        )
        runtime.start(request)

        def running_message() -> str:
            state = runtime.observe(request.id)
            return state.message if state.phase == RunState.RUNNING else ""

        message = eventually(running_message, timeout=60)
        assert f"Volume {project}/data is not on kwok-node-" in message
        assert f"the nearest copy is elsewhere ({holder})" in message
    finally:
        kube.delete(f"/api/v1/nodes/{holder}")
