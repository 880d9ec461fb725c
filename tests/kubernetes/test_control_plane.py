"""The control plane with DOCKYARD_RUNTIME=kubernetes: jobs as Kubernetes Jobs, end to end.

Real server processes, the real API server of the test cluster, kwok nodes (their pods do
not run a program: kwok moves them through their phases).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from dockyard.runtimes import kube_objects as ko
from tests.conftest import ServerProcess
from tests.kubernetes.conftest import KUBECONFIG, eventually

PREFIX = "dyt-"


def job_doc(name: str, project: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Job",
        "metadata": {"name": name, "project": project},
        "spec": {"command": ["python", "-c", "print(1)"], "runtime": "kubernetes", **spec},
    }


def k8s_server(server_factory: Any, home: Path | None = None, **extra: str) -> ServerProcess:
    srv: ServerProcess = server_factory(
        home=home,
        DOCKYARD_KUBECONFIG=str(KUBECONFIG),
        DOCKYARD_KUBE_NAMESPACE_PREFIX=PREFIX,
        DOCKYARD_KUBE_HELPER_SECONDS="3",  # kwok runs no helper pod: give up on them soon
        **extra,
    )
    return srv


def jobs_of(kube: httpx.Client, project: str, name: str) -> list[dict[str, Any]]:
    answer = kube.get(
        f"/apis/batch/v1/namespaces/{PREFIX}{project}/jobs",
        params={"labelSelector": f"{ko.NAME}={name},{ko.KIND}=job"},
    )
    if answer.status_code == 404:
        return []
    answer.raise_for_status()
    items: list[dict[str, Any]] = answer.json()["items"]
    return items


def test_a_job_applied_runs_as_a_kubernetes_job_and_delete_removes_it(
    server_factory: Any, kube: httpx.Client, project: str
) -> None:
    srv = k8s_server(server_factory)
    c = srv.start()
    try:
        c.apply([job_doc("hello", project)])
        job = c.wait("Job", "hello", project, timeout=120)
        assert job["status"]["phase"] == "Succeeded", job["status"]
        [k8s_job] = jobs_of(kube, project, "hello")
        assert k8s_job["metadata"]["labels"][ko.PROJECT] == project
        c.delete("Job", "hello", project)
        eventually(lambda: not jobs_of(kube, project, "hello"), timeout=60)
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")


def volume_doc(name: str, project: str, tier: str = "standard") -> dict[str, Any]:
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Volume",
        "metadata": {"name": name, "project": project},
        "spec": {"size": "1Gi", "tier": tier},
    }


def test_a_pending_pods_reason_shows_in_dockyard_get(
    server_factory: Any, kube: httpx.Client, project: str
) -> None:
    # a claim of a StorageClass the cluster lacks: Dockyard admits, the scheduler waits
    srv = k8s_server(server_factory, DOCKYARD_KUBE_STORAGE_CLASSES="archive=no-such-class")
    c = srv.start()
    try:
        c.apply(
            [
                volume_doc("cold", project, tier="archive"),
                job_doc("stuck", project, volumes=[{"name": "cold", "path": "/cold"}]),
            ]
        )
        status = eventually(
            lambda: (
                "unbound" in (s := c.get("Job", "stuck", project)["status"]).get("message", "")
                and s
            ),
            timeout=60,
        )
        assert (status["phase"], status["reason"]) == ("Starting", "Unschedulable"), status
        assert status["attempts"] == 1, status
        shown = subprocess.run(
            [
                sys.executable,
                "-c",
                "from dockyard.cli.main import main; main()",
                "get",
                "jobs",
                "--project",
                project,
            ],
            env={**srv.env, "COLUMNS": "250"},
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "unbound" in shown.stdout, shown.stdout + shown.stderr
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")


def test_a_job_no_node_can_hold_says_what_the_largest_offers_and_fails_after_a_deadline(
    server_factory: Any, kube: httpx.Client, project: str
) -> None:
    """Three nodes of 8 cpu and 32 GiB hold 96 GiB in all, but no pod of 40 GiB: it is never
    admitted, says so, and fails after DOCKYARD_UNSCHEDULABLE_SECONDS; smaller jobs run."""
    srv = k8s_server(server_factory, DOCKYARD_UNSCHEDULABLE_SECONDS="3")
    c = srv.start()
    try:
        c.apply(
            [
                job_doc("huge", project, resources={"cpu": 1, "memory": "40Gi"}),
                job_doc("small", project, resources={"cpu": 1, "memory": "1Gi"}),
            ]
        )
        status = eventually(
            lambda: (
                "largest offers"
                in (s := c.get("Job", "huge", project)["status"]).get("message", "")
                and s
            ),
            timeout=60,
        )
        assert status["reason"] == "Unschedulable", status
        assert "32Gi memory" in status["message"] and "on one node" in status["message"], status
        assert not jobs_of(kube, project, "huge")  # never handed to the cluster
        done = c.wait("Job", "huge", project, timeout=60)
        assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "Unschedulable")
        assert "DOCKYARD_UNSCHEDULABLE_SECONDS" in done["status"]["message"], done["status"]
        assert c.wait("Job", "small", project, timeout=120)["status"]["phase"] == "Succeeded"
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")


def test_with_a_cluster_autoscaler_a_job_too_big_for_every_node_waits(
    server_factory: Any, kube: httpx.Client, project: str
) -> None:
    srv = k8s_server(
        server_factory, DOCKYARD_UNSCHEDULABLE_SECONDS="1", DOCKYARD_KUBE_AUTOSCALER="1"
    )
    c = srv.start()
    try:
        c.apply([job_doc("huge", project, resources={"cpu": 1, "memory": "40Gi"})])
        eventually(lambda: c.get("Job", "huge", project)["status"].get("since"), timeout=60)
        time.sleep(3)  # past the deadline: a home that grows keeps it waiting
        status = c.get("Job", "huge", project)["status"]
        assert (status["phase"], status["reason"]) == ("Pending", "Unschedulable"), status
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")


def test_kill_9_of_the_control_plane_during_a_job_starts_nothing_twice(
    server_factory: Any, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    home = tmp_path / "shared-home"
    first = k8s_server(server_factory, home=home)
    c = first.start()
    try:
        c.apply([job_doc("once", project, env={"KWOK_DURATION": "8s"})])
        eventually(lambda: jobs_of(kube, project, "once"), timeout=60)
        first.kill()
        second = k8s_server(server_factory, home=home)
        c2 = second.start()
        job = c2.wait("Job", "once", project, timeout=120)
        assert job["status"]["phase"] == "Succeeded", job["status"]
        assert job["status"]["attempts"] == 1
        assert len(jobs_of(kube, project, "once")) == 1
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")
