"""Render equals apply, the real API server accepts what render prints, and the control
plane's ClusterRole is exactly enough: the runtime works with its token and fails with less."""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from lightkube.utils.quantity import parse_quantity

from dockyard.control.render import Renderer
from dockyard.errors import EngineError
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import Mount, VolumeRef, WorkloadRequest
from dockyard.runtimes.containers import OUTPUT
from dockyard.runtimes.kube_control_plane import RULES, control_plane_objects
from dockyard.runtimes.kubernetes import KubernetesRuntime
from dockyard.settings import Settings
from dockyard.spec.loader import load_paths
from tests.kubernetes.conftest import KUBECONFIG, eventually

ROOT = Path(__file__).resolve().parents[2]
OPTIONS = ko.ClusterOptions(namespace_prefix="dyr-")


def plural(obj: dict[str, Any]) -> str:
    kind = str(obj["kind"]).lower()
    irregular = {"networkpolicy": "networkpolicies", "priorityclass": "priorityclasses"}
    return irregular.get(kind, kind + "s")


def path_of(obj: dict[str, Any]) -> str:
    group = obj["apiVersion"]
    base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
    ns = obj["metadata"].get("namespace")
    scope = f"/namespaces/{ns}" if ns else ""
    return f"{base}{scope}/{plural(obj)}/{obj['metadata']['name']}"


def server_apply(kube: httpx.Client, obj: dict[str, Any], dry_run: bool = False) -> httpx.Response:
    params = {"fieldManager": "dockyard-test", "force": "true"}
    if dry_run:
        params["dryRun"] = "All"
    return kube.patch(
        path_of(obj),
        content=json.dumps(obj),
        params=params,
        headers={"Content-Type": "application/apply-patch+yaml"},
    )


def test_the_api_server_accepts_every_rendered_object(kube: httpx.Client) -> None:
    renderer = Renderer(load_paths([ROOT / "examples" / "digits"]), OPTIONS, "base:1", 900 * 1024)
    objects = renderer.objects()
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "PersistentVolumeClaim", "Job", "Deployment", "Service"} <= kinds
    [namespace] = [o for o in objects if o["kind"] == "Namespace"]
    assert server_apply(kube, namespace).status_code in (200, 201)
    try:
        for obj in objects:
            if obj["kind"] != "Namespace":
                answer = server_apply(kube, obj, dry_run=True)
                assert answer.status_code in (200, 201), (obj["kind"], answer.text)
    finally:
        kube.delete(path_of(namespace))


def test_render_gives_the_pods_the_control_plane_applies(
    runtime: KubernetesRuntime, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    """A Job document rendered, and the same Job run by the runtime: the same pod."""
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "train.py").write_text("print('train')\n")
    (tmp_path / "job.yaml").write_text(
        yaml.safe_dump_all(
            [
                {
                    "apiVersion": "dockyard.dev/v1",
                    "kind": "Volume",
                    "metadata": {"name": "ckpt", "project": project},
                    "spec": {"size": "2Gi", "tier": "fast"},
                },
                {
                    "apiVersion": "dockyard.dev/v1",
                    "kind": "Job",
                    "metadata": {"name": "train", "project": project},
                    "spec": {
                        "code": "./code",
                        "command": ["python", "train.py"],
                        "resources": {"cpu": 1, "memory": "1Gi"},
                        "volumes": [{"name": "ckpt"}],
                        "timeoutSeconds": 60,
                    },
                },
            ]
        )
    )
    rendered = Renderer(
        load_paths([tmp_path / "job.yaml"]), runtime.options, "python:3.11-slim", 900 * 1024
    )
    [job] = [o for o in rendered.objects() if o["kind"] == "Job"]
    request = WorkloadRequest(
        id="job-train-0123abcd-g1-a1",
        command=["python", "train.py"],
        code_dir=tmp_path / "code",
        output_dir=tmp_path / "out",
        mounts=(
            Mount(
                tmp_path,
                "/volumes/ckpt",
                False,
                "DOCKYARD_VOLUME_CKPT",
                VolumeRef("ckpt", "", "fast", 2 * 1024**3),
            ),
        ),
        cpu=1,
        memory=1024**3,
        timeout=60,
        labels={"dockyard.dev/job": "train"},
        project=project,
    )
    runtime.start(request)
    ns = ko.namespace_of(runtime.options, project)
    applied = kube.get(f"/apis/batch/v1/namespaces/{ns}/jobs/{ko.dns_name(request.id)}").json()

    def pod(obj: dict[str, Any]) -> dict[str, Any]:
        spec = copy.deepcopy(obj["spec"]["template"]["spec"])
        main = spec["containers"][0]
        keep = ("command", "image", "securityContext", "workingDir")
        command = main["command"]
        if command[:2] == ["/bin/sh", "-c"] and "/dockyard/markers/" in command[2]:
            main["command"] = command[4:]  # what GitOps adds: a marker the service waits for
        return {
            "main": {k: main.get(k) for k in keep},
            # the API server writes quantities its own way (1073741824 → 1Gi, 1000m → 1)
            "resources": {
                group: {k: parse_quantity(v) for k, v in values.items()}
                for group, values in main["resources"].items()
            },
            # (the output directory is per workload: its claim differs, its place does not)
            "mounts": sorted(
                (m["mountPath"], "" if m["mountPath"] == OUTPUT else m.get("subPath", ""))
                for m in main["volumeMounts"]
                if m["mountPath"] != "/dockyard/markers"
            ),
            "security": spec["securityContext"],
            "init": [c["command"] for c in spec.get("initContainers", [])],
            "deadline": obj["spec"]["activeDeadlineSeconds"],
        }

    assert pod(job) == pod(applied)


# -- RBAC: exactly enough --------------------------------------------------------------------
def account_kubeconfig(kube: httpx.Client, tmp_path: Path, rules: list[dict[str, Any]]) -> Path:
    """A ServiceAccount bound to ``rules``, and a kubeconfig with its token."""
    suffix = uuid.uuid4().hex[:8]
    objects = control_plane_objects(namespace=f"dyr-cp-{suffix}")
    wanted = {"Namespace", "ServiceAccount", "ClusterRole", "ClusterRoleBinding"}
    for original in objects:
        if original["kind"] in wanted:
            obj = copy.deepcopy(original)
            if obj["kind"] in ("ClusterRole", "ClusterRoleBinding"):
                obj["metadata"]["name"] += f"-{suffix}"
            if obj["kind"] == "ClusterRole":
                obj["rules"] = rules
            if obj["kind"] == "ClusterRoleBinding":
                obj["roleRef"]["name"] += f"-{suffix}"
            answer = server_apply(kube, obj)
            assert answer.status_code in (200, 201), answer.text
    ns = f"dyr-cp-{suffix}"
    answer = kube.post(
        f"/api/v1/namespaces/{ns}/serviceaccounts/dockyard-control-plane/token",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {}},
    )
    answer.raise_for_status()
    token = answer.json()["status"]["token"]
    admin = yaml.safe_load(KUBECONFIG.read_text())
    cluster = admin["clusters"][0]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "sa", "user": {"token": token}}],
        "contexts": [{"name": "sa", "context": {"cluster": cluster["name"], "user": "sa"}}],
        "current-context": "sa",
    }
    path = tmp_path / f"kubeconfig-{suffix}"
    path.write_text(yaml.safe_dump(config))
    return path


def exercise(kubeconfig: Path, tmp_path: Path, project: str, priority: int, csi: str) -> None:
    """Every call the runtime makes: node, start (code, secret env, volume, priority; a
    replica and its Service), observe, logs (and the secrets it masks), a helper pod (a
    volume's usage) and one read through the pod proxy (outputs), the service proxy, stop,
    remove; a volume's CSI snapshot, the list of them, a claim restored from one, a claim
    deleted."""
    settings = Settings(
        home=tmp_path / "h",
        kubeconfig=kubeconfig,
        kube_namespace_prefix="dyr-",
        kube_storage_classes=f"fast={csi}",
    )
    runtime = KubernetesRuntime(settings)
    runtime.sync_seconds = 5
    runtime.helper_wait = 2  # kwok runs no helper: its usage stays unknown, quickly
    try:
        code = tmp_path / "code"
        code.mkdir(exist_ok=True)
        (code / "run.py").write_text("print(1)\n")
        job = WorkloadRequest(
            id="job-rbac-0123abcd-g1-a1",
            command=["python", "run.py"],
            code_dir=code,
            mounts=(Mount(tmp_path, "/v", False, None, VolumeRef("v")),),
            secrets={"S": "s/k"},
            secret_env={"S": "value"},
            labels={"dockyard.dev/job": "rbac"},
            project=project,
            priority=priority,
        )
        replica = WorkloadRequest(
            id="svc-rbac-0123abcd-g1-v1-r0-0",
            command=["python", "-m", "dockyard.serving"],
            labels={"dockyard.dev/service": "rbac"},
            project=project,
        )
        runtime.start(job)  # waits for the watch cache's first lists (nodes too)
        runtime.start(replica)
        assert runtime.node().cpu > 0
        ns = ko.namespace_of(runtime.options, project)

        def job_pod() -> tuple[str, dict[str, Any]] | None:
            name = runtime.observe(job.id).details.get("pod")
            found = runtime.helpers.get(ns, name) if name else None
            return (name, found) if found is not None else None

        pod_name, pod = eventually(job_pod, timeout=60)
        runtime.secret_values(ns, pod_name, pod)  # read back: a restarted plane masks them
        try:  # kwok pods have no log to read; a refusal to read it is what counts here
            runtime.logkeeper.probe(ns, pod_name)
        except EngineError as exc:
            if "does not let" in str(exc):
                raise
        try:  # nothing serves on a kwok pod; a refusal of the proxy is what counts
            runtime.helpers.fetch(ns, pod_name, 1024)
        except EngineError as exc:
            if "does not let" in str(exc):
                raise
        client, base = runtime.service_proxy(project, "rbac")
        answer = client.get(f"{base}/v2/health/ready")
        if answer.status_code == 403 and "services/proxy" in answer.text:  # RBAC's refusal
            raise EngineError(f"services/proxy forbidden: {answer.text[:200]}")
        assert runtime.measure_volume(project, VolumeRef("v"))["claim"] == f"{ns}/v"
        runtime.stop(job.id, grace=1)
        assert runtime.observe(job.id).reason == "Stopped"
        runtime.remove(job.id)
        runtime.remove(replica.id)
        # the job's claim, bound by the test cluster's hostPath provisioner, lies here
        eventually(lambda: runtime.volume_host_path(project, VolumeRef("v")), timeout=30)
        fast = VolumeRef("ckpt", "", "fast")
        runtime.snapshot_volume(project, fast, "20261201-160000-abcdef")
        assert [s["id"] for s in runtime.volume_snapshots(project, "ckpt")]
        runtime.restore_volume(
            project, VolumeRef("ckpt-copy", "", "fast"), "ckpt", "20261201-160000-abcdef"
        )
        assert runtime.delete_volume(project, VolumeRef("ckpt-copy")).startswith("deleted")
    finally:
        runtime.close()


@pytest.fixture
def cleanup(kube: httpx.Client) -> Iterator[list[str]]:
    paths: list[str] = []
    yield paths
    for path in paths:
        kube.delete(path)


def test_the_control_planes_role_is_enough(
    kube: httpx.Client, tmp_path: Path, project: str, cleanup: list[str], csi_class: str
) -> None:
    config = account_kubeconfig(kube, tmp_path, RULES)
    cleanup += [
        f"/api/v1/namespaces/dyr-{project}",
        "/apis/scheduling.k8s.io/v1/priorityclasses/dockyard-priority-77001",
    ]
    exercise(config, tmp_path, project, 77001, csi_class)


@pytest.mark.parametrize(
    "dropped", range(len(RULES)), ids=lambda i: "-".join(RULES[i]["resources"])
)
def test_less_than_the_role_is_refused(
    kube: httpx.Client,
    tmp_path: Path,
    project: str,
    cleanup: list[str],
    dropped: int,
    csi_class: str,
) -> None:
    rules = [r for i, r in enumerate(RULES) if i != dropped]
    config = account_kubeconfig(kube, tmp_path, rules)
    priority = 77100 + dropped
    cleanup += [
        f"/api/v1/namespaces/dyr-{project}",
        f"/apis/scheduling.k8s.io/v1/priorityclasses/dockyard-priority-{priority}",
    ]
    with pytest.raises(EngineError, match=r"(?i)forbidden|does not let"):
        exercise(config, tmp_path, project, priority, csi_class)
