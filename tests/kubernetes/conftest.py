"""The real test cluster (deploy/testbed: kube-apiserver, etcd, controller-manager, scheduler
and kwok nodes on 127.0.0.1), or DOCKYARD_TEST_KUBECONFIG.

Without a cluster these tests are skipped with one reason (how to start one); with
DOCKYARD_REQUIRE_KUBERNETES=1 (CI) a missing cluster fails them instead.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig

from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.kubernetes import KubernetesRuntime
from dockyard.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
KUBECONFIG = Path(os.environ.get("DOCKYARD_TEST_KUBECONFIG", ROOT / ".cluster" / "kubeconfig"))
CLUSTER = [sys.executable, str(ROOT / "deploy" / "testbed" / "cluster.py")]
HOW = "no test cluster: run `make cluster` (deploy/testbed, docs/kubernetes-testbed.md) first"


def _reachable() -> str:
    """'' when the cluster answers, else why not."""
    if not KUBECONFIG.exists():
        return f"{KUBECONFIG} does not exist"
    try:
        with admin_http() as http:
            answer = http.get("/readyz", timeout=5)
    except Exception as exc:
        return f"the API server of {KUBECONFIG} does not answer: {exc}"
    return "" if answer.status_code == 200 else f"/readyz answered {answer.status_code}"


def admin_http() -> httpx.Client:
    config = KubeConfig.from_file(KUBECONFIG).get()
    assert config is not None
    params = client_adapter.ConnectionParams(timeout=httpx.Timeout(30.0), trust_env=False)
    return client_adapter.Client(config, params)


_WHY: list[str] = []  # why there is no cluster, asked once per session


def _absent() -> str:
    if not _WHY:
        _WHY.append(_reachable())
    return _WHY[0]


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """No cluster here (and none required): these tests are left out, and one line says why."""
    test_file = collection_path.name.startswith("test_") and collection_path.suffix == ".py"
    if test_file and not os.environ.get("DOCKYARD_REQUIRE_KUBERNETES") and _absent():
        return True
    return None


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _WHY and _WHY[0] and not os.environ.get("DOCKYARD_REQUIRE_KUBERNETES"):
        terminalreporter.write_line(f"tests/kubernetes not run: {HOW} ({_WHY[0]})")


@pytest.fixture(scope="session")
def kube() -> Iterator[httpx.Client]:
    """An admin client of the test cluster (DOCKYARD_REQUIRE_KUBERNETES=1: none fails)."""
    why = _reachable()
    if why:
        pytest.fail(f"DOCKYARD_REQUIRE_KUBERNETES=1 but {why}; {HOW}")
    with admin_http() as http:
        yield http


@pytest.fixture
def project() -> str:
    """A project (so a namespace) of its own per test."""
    return f"t{uuid.uuid4().hex[:10]}"


@pytest.fixture
def kube_settings(tmp_path: Path, project: str) -> Settings:
    return Settings(
        home=tmp_path / "home",
        kubeconfig=KUBECONFIG,
        runtime="kubernetes",
        kube_storage_classes="fast=dockyard-fast",
        kube_helper_seconds=3,  # kwok runs no helper pod: give up on them soon
    )


@pytest.fixture
def runtime(
    kube_settings: Settings, kube: httpx.Client, project: str
) -> Iterator[KubernetesRuntime]:
    rt = KubernetesRuntime(kube_settings)
    yield rt
    rt.close()
    namespace = ko.namespace_of(rt.options, project)
    kube.delete(f"/api/v1/namespaces/{namespace}")


@pytest.fixture(scope="module")
def csi_class(kube: httpx.Client) -> Iterator[str]:
    """A StorageClass of a CSI driver and a VolumeSnapshotClass for the same driver. No such
    driver runs: the API server validates and stores what Dockyard makes, which is what the
    tests look at."""
    name = f"csi-{uuid.uuid4().hex[:8]}"
    driver = f"{name}.csi.example.com"
    storage = {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": name},
        "provisioner": driver,
    }
    snapshot = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshotClass",
        "metadata": {"name": name},
        "driver": driver,
        "deletionPolicy": "Delete",
    }
    kube.post("/apis/storage.k8s.io/v1/storageclasses", json=storage).raise_for_status()
    kube.post(
        "/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses", json=snapshot
    ).raise_for_status()
    yield name
    kube.delete(f"/apis/storage.k8s.io/v1/storageclasses/{name}")
    kube.delete(f"/apis/snapshot.storage.k8s.io/v1/volumesnapshotclasses/{name}")


def eventually(check: Callable[[], Any], timeout: float = 30.0, every: float = 0.1) -> Any:
    """The first truthy value of ``check()`` within ``timeout`` seconds (else the last)."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value and time.monotonic() < deadline:
        time.sleep(every)
        value = check()
    assert value, f"not within {timeout} s: {check}"
    return value


def cluster(*args: str) -> None:
    subprocess.run([*CLUSTER, *args], check=True, timeout=300)


def get(kube: httpx.Client, path: str) -> dict[str, Any] | None:
    answer = kube.get(path)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    data: dict[str, Any] = answer.json()
    return data


@contextlib.contextmanager
def no_leftovers(kube: httpx.Client, namespace: str) -> Iterator[None]:
    yield
    kube.delete(f"/api/v1/namespaces/{namespace}")
