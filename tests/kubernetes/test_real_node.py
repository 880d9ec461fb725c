"""The digits example on a real node of the test cluster: containerd and a kubelet run the
pods (`make cluster CLUSTER_ARGS="--real-node --nodes 0"`, as `.ci/run` does after the kwok
tests). Train on a pod, register the model, serve it from a Deployment, predict.

Skipped where the cluster has no real node (say how to start one); DOCKYARD_REQUIRE_REAL_NODE=1
fails instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.kubernetes.conftest import KUBECONFIG, ROOT
from tests.lanes import missing

DOCKYARD = [sys.executable, "-c", "from dockyard.cli.main import main; main()"]
HOW = 'no real node: `make cluster CLUSTER_ARGS="--real-node --nodes 0"` starts one'


def real_nodes(kube: httpx.Client) -> list[str]:
    nodes = kube.get("/api/v1/nodes", params={"labelSelector": "type=real"}).json()
    return [
        n["metadata"]["name"]
        for n in nodes.get("items", [])
        if any(c["type"] == "Ready" and c["status"] == "True" for c in n["status"]["conditions"])
    ]


def others(kube: httpx.Client) -> list[str]:
    nodes = kube.get("/api/v1/nodes", params={"labelSelector": "type!=real"}).json()
    return [n["metadata"]["name"] for n in nodes.get("items", [])]


@pytest.fixture
def real_node(kube: httpx.Client) -> str:
    found = real_nodes(kube)
    if not found or others(kube):  # kwok nodes would take pods whose images they never need
        why = f"{HOW} (nodes besides it: {others(kube)})" if found else HOW
        missing("real_node", why)
    return found[0]


@pytest.fixture
def dockyard(tmp_path: Path, env_cache: Path, base_image: str) -> Iterator[dict[str, str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(tmp_path / "home"),
        DOCKYARD_ENV_CACHE=str(env_cache),
        DOCKYARD_RESYNC_SECONDS="0.5",
        DOCKYARD_RUNTIME="kubernetes",
        DOCKYARD_KUBECONFIG=str(KUBECONFIG),
        DOCKYARD_KUBE_NAMESPACE_PREFIX="dyn-",
        DOCKYARD_KUBE_STORAGE_CLASSES="fast=dockyard-fast",
        DOCKYARD_KUBE_IMAGE_LOADER=f"{sys.executable} {ROOT}/deploy/testbed/cluster.py load-image",
        DOCKYARD_BASE_IMAGE=base_image,
        DOCKYARD_CONTAINERS_CONF=str(ROOT / "deploy" / "podman" / "containers.conf"),
        COLUMNS="200",
    )
    yield env
    run(env, "delete", "-f", str(ROOT / "examples" / "digits"), "--purge", check=False)
    run(env, "server", "stop", check=False)


def run(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*DOCKYARD, *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=1200,
        check=False,
    )
    assert "Traceback" not in done.stderr, done.stderr
    if check:
        assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


def test_the_digits_example_trains_and_serves_on_a_real_node(
    real_node: str, dockyard: dict[str, str], kube: httpx.Client
) -> None:
    run(dockyard, "apply", "-f", str(ROOT / "examples" / "digits"), "--wait", "--timeout", "1100")
    job = json.loads(run(dockyard, "get", "job", "train-digits", "-o", "json").stdout)
    assert job["status"]["phase"] == "Succeeded", job["status"]
    # it ran on the real node, as a Kubernetes Job, and its log comes from the pod log API
    pods = kube.get(
        "/api/v1/namespaces/dyn-default/pods",
        params={"labelSelector": "dockyard.dev/name=train-digits"},
    ).json()["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {real_node}
    assert "accuracy" in run(dockyard, "logs", "train-digits").stdout
    # its outputs came back to the registry: a model version with its metrics
    versions = json.loads(run(dockyard, "models", "show", "digits", "1", "-o", "json").stdout)
    assert versions["metrics"]["accuracy"] > 0.9
    # the model server runs in a pod of a Deployment and answers
    answer = run(
        dockyard,
        "predict",
        "digits",
        "--file",
        str(ROOT / "examples" / "digits" / "sample-request.json"),
    )
    assert "[8]" in answer.stdout, answer.stdout
