"""Per-node admission on a real API server with kwok nodes: a cluster is many nodes, never
their sum. Three GPU nodes are added for the test (two with one T4, one with four A100s)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.kubernetes.conftest import eventually
from tests.kubernetes.test_control_plane import PREFIX, job_doc, jobs_of, k8s_server

KWOK = ("kwok.x-k8s.io/node", "fake")


def gpu_node(name: str, gpus: int, product: str) -> dict[str, Any]:
    capacity = {"cpu": "8", "memory": "32Gi", "pods": "110", "nvidia.com/gpu": str(gpus)}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK[0]: KWOK[1], "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "nvidia.com/gpu.product": product,
            },
        },
        "spec": {},
        "status": {"capacity": capacity, "allocatable": dict(capacity)},
    }


@pytest.fixture
def gpu_nodes(kube: httpx.Client) -> Iterator[list[str]]:
    suffix = uuid.uuid4().hex[:6]
    nodes = [
        gpu_node(f"t4-a-{suffix}", 1, "NVIDIA-T4"),
        gpu_node(f"t4-b-{suffix}", 1, "NVIDIA-T4"),
        gpu_node(f"a100-{suffix}", 4, "NVIDIA-A100"),
    ]
    names = [n["metadata"]["name"] for n in nodes]
    for node in nodes:
        answer = kube.post("/api/v1/nodes", json=node)
        assert answer.status_code == 201, answer.text

    def ready() -> bool:
        listed = kube.get("/api/v1/nodes").json()["items"]
        up = {
            n["metadata"]["name"]
            for n in listed
            if any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in n["status"].get("conditions", [])
            )
        }
        return set(names) <= up

    eventually(ready, timeout=60)
    yield names
    for name in names:
        kube.delete(f"/api/v1/nodes/{name}")


def gpu_job(
    name: str, project: str, gpus: int, product: str | None, seconds: int
) -> dict[str, Any]:
    resources: dict[str, Any] = {"cpu": 0.5, "memory": "1Gi", "gpu": gpus}
    if product:
        resources["gpuType"] = product
    return job_doc(name, project, resources=resources, env={"KWOK_DURATION": f"{seconds}s"})


def test_gpu_jobs_land_on_a_node_that_holds_them_or_wait_with_dockyards_reason(
    server_factory: Any, kube: httpx.Client, project: str, gpu_nodes: list[str]
) -> None:
    a100 = gpu_nodes[2]
    srv = k8s_server(server_factory)
    c = srv.start()
    try:
        c.apply([gpu_job("big", project, 4, "NVIDIA-A100", 15)])
        eventually(lambda: jobs_of(kube, project, "big"), timeout=60)
        c.apply(
            [
                gpu_job("second", project, 4, "NVIDIA-A100", 1),
                gpu_job("two-t4", project, 2, "NVIDIA-T4", 1),
                gpu_job("one", project, 1, None, 1),
            ]
        )

        def status(name: str) -> dict[str, Any]:
            found: dict[str, Any] = c.get("Job", name, project)["status"]
            return found

        # two one-GPU nodes are not a two-GPU node: never admitted, said with the largest
        two = eventually(
            lambda: "on one node" in status("two-t4").get("message", "") and status("two-t4")
        )
        assert two["reason"] == "Unschedulable", two
        assert "largest of those offers" in two["message"] and "1 gpu" in two["message"], two
        # the second four-GPU job waits for the A100 node, named, and is not handed over
        waiting = eventually(
            lambda: (
                "most free on any node" in status("second").get("message", "") and status("second")
            )
        )
        assert waiting["message"].startswith("needs 4 gpu on one node"), waiting
        assert not jobs_of(kube, project, "second") and not jobs_of(kube, project, "two-t4")
        # what fits goes past it: no head-of-line blocking
        assert c.wait("Job", "one", project, timeout=60)["status"]["phase"] == "Succeeded"
        # once the first ends, the waiting one starts, on the A100 node
        assert c.wait("Job", "big", project, timeout=120)["status"]["phase"] == "Succeeded"
        assert c.wait("Job", "second", project, timeout=120)["status"]["phase"] == "Succeeded"
        pods = kube.get(
            f"/api/v1/namespaces/{PREFIX}{project}/pods",
            params={"labelSelector": "dockyard.dev/name in (big,second)"},
        ).json()["items"]
        assert {p["spec"]["nodeName"] for p in pods} == {a100}
    finally:
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")
