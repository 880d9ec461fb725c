"""Placement near the data with the real kube-scheduler of the test cluster.

`deploy/testbed/cluster.py` configures the scheduler with Dockyard's extender at
http://127.0.0.1:26290/placement (``nodeCacheCapable: true``, ``ignorable: true``; the URL is
read back from .cluster/scheduler.yaml). Here the extender's router runs in a real uvicorn
server on that address, its node labels listed from the cluster; kwok nodes are labelled with
what they hold and where they are, and pods that need that data land where it is.
"""

from __future__ import annotations

import contextlib
import re
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from dockyard.api import errors as api_errors
from dockyard.placement import labels as pl
from dockyard.placement.extender import extender_router
from dockyard.placement.labels import Need, needs_annotation
from dockyard.placement.nodes import CachedNodeLabels
from tests.kubernetes.conftest import ROOT, admin_http, eventually, get

SCHEDULER_CONFIG = ROOT / ".cluster" / "scheduler.yaml"
RUN = "dockyard.dev/test-run"  # the label that keeps this test's pods on this test's nodes


@dataclass
class Served:
    calls: Counter[str]
    nodes: CachedNodeLabels


class Counting:
    """Pure-ASGI middleware counting requests by path."""

    def __init__(self, app: Any, calls: Counter[str]) -> None:
        self.app = app
        self.calls = calls

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls[scope["path"]] += 1
        await self.app(scope, receive, send)


def configured() -> tuple[int, str]:
    """The extender's port and path prefix, as the running scheduler was told."""
    text = SCHEDULER_CONFIG.read_text() if SCHEDULER_CONFIG.exists() else ""
    found = re.search(r"urlPrefix: http://127\.0\.0\.1:(\d+)(/\S*)", text)
    if found is None:
        pytest.fail(
            f"{SCHEDULER_CONFIG} configures no extender: the cluster was started before "
            "deploy/testbed/cluster.py configured one (make cluster-down && make cluster)"
        )
    return int(found.group(1)), found.group(2)


@pytest.fixture(scope="module")
def extender(kube: httpx.Client) -> Iterator[Served]:
    port, prefix = configured()
    with socket.socket() as probe:  # as uvicorn binds: the scheduler's closed calls linger
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            pytest.fail(f"port {port} of the scheduler's extender is in use (another run?)")
    lister = admin_http()
    nodes = CachedNodeLabels(lambda: lister.get("/api/v1/nodes").json()["items"], ttl=0.5)
    calls: Counter[str] = Counter()
    app = FastAPI()
    api_errors.install(app)
    app.include_router(extender_router(nodes, prefix=prefix))
    config = uvicorn.Config(
        Counting(app, calls),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="off",
        ws="none",
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="extender", daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, timeout=10)
        yield Served(calls, nodes)
    finally:
        server.should_exit = True
        thread.join(10)
        lister.close()


def kwok_node(name: str, run: str, labels: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name, RUN: run, **labels},
        },
        "status": {
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
        },
    }


def schedulable(kube: httpx.Client, name: str) -> bool:
    node = get(kube, f"/api/v1/nodes/{name}")
    if node is None:
        return False
    ready = any(
        c["type"] == "Ready" and c["status"] == "True"
        for c in node.get("status", {}).get("conditions", [])
    )
    taints = [t for t in node.get("spec", {}).get("taints", []) if t["effect"] == "NoSchedule"]
    return ready and not taints


def a_pod(name: str, run: str, *needs: Need) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": needs_annotation(needs)},
        "spec": {
            "nodeSelector": {RUN: run},
            "automountServiceAccountToken": False,
            "containers": [{"name": "main", "image": "busybox"}],
        },
    }


def topology(region: str, zone: str, rack: str) -> dict[str, str]:
    return {pl.REGION: region, pl.ZONE: zone, pl.RACK: rack}


def test_pods_land_on_the_node_that_holds_their_data(kube: httpx.Client, extender: Served) -> None:
    run = uuid.uuid4().hex[:8]
    digits = Need(kind="Dataset", project="demo", name="digits", version="sha256:" + "ab" * 32)
    archive = Need(kind="Volume", project="demo", name="archive", required=True)
    nowhere = Need(kind="Dataset", project="demo", name="nowhere", version="1")
    node = {role: f"pl-{run}-{role}" for role in ("holder", "rackmate", "zonemate", "far")}
    labels = {
        "holder": {**topology("eu", "eu-a", "r1"), **pl.node_labels([digits])},
        "rackmate": topology("eu", "eu-a", "r1"),
        "zonemate": topology("eu", "eu-a", "r2"),
        "far": {**topology("us", "us-a", "r1"), **pl.node_labels([archive])},
    }
    namespace = f"placement-{run}"
    try:
        kube.post("/api/v1/namespaces", json={"metadata": {"name": namespace}}).raise_for_status()
        for role, name in node.items():
            kube.post("/api/v1/nodes", json=kwok_node(name, run, labels[role])).raise_for_status()
        eventually(lambda: all(schedulable(kube, n) for n in node.values()), timeout=30)
        eventually(lambda: all(n in extender.nodes() for n in node.values()), timeout=10)
        eventually(lambda: get(kube, f"/api/v1/namespaces/{namespace}/serviceaccounts/default"))
        before = Counter(extender.calls)

        pods = {
            **{f"digits-{i}": a_pod(f"digits-{i}", run, digits) for i in range(3)},
            "archive": a_pod("archive", run, archive),  # required: only its holder will do
            "nowhere": a_pod("nowhere", run, nowhere),  # nobody holds it: anywhere
            "plain": a_pod("plain", run),  # no annotation: anywhere
        }
        for body in pods.values():
            answer = kube.post(f"/api/v1/namespaces/{namespace}/pods", json=body)
            assert answer.status_code == 201, answer.text

        def placed() -> dict[str, str] | None:
            items = kube.get(f"/api/v1/namespaces/{namespace}/pods").json()["items"]
            where = {p["metadata"]["name"]: p["spec"].get("nodeName", "") for p in items}
            return where if len(where) == len(pods) and all(where.values()) else None

        where = eventually(placed, timeout=60)
        assert {where[f"digits-{i}"] for i in range(3)} == {node["holder"]}, where
        assert where["archive"] == node["far"], where
        assert where["nowhere"] in node.values() and where["plain"] in node.values()

        # the scheduler asked the extender about every pod (prioritize: 4 candidates each,
        # but the archive pod has one left after the filter, and one is not scored)
        calls = extender.calls - before
        prefix = configured()[1]
        assert calls[f"{prefix}/filter"] >= len(pods), calls
        assert calls[f"{prefix}/prioritize"] >= len(pods) - 1, calls
    finally:
        with contextlib.suppress(httpx.HTTPError):
            kube.delete(f"/api/v1/namespaces/{namespace}")
        for name in node.values():
            with contextlib.suppress(httpx.HTTPError):
                kube.delete(f"/api/v1/nodes/{name}")
