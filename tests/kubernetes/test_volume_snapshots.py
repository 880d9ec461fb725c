"""Snapshots of Kubernetes volumes as CSI VolumeSnapshots, against the test cluster's real API
server with the external-snapshotter's CRDs (installed by `make cluster`).

The test cluster runs no CSI driver: a StorageClass and a VolumeSnapshotClass of a driver
name are enough for the API server to accept (and validate) the claim and the VolumeSnapshot
Dockyard makes; no controller will make them ready, which the test does not wait for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from dockyard.errors import EngineError, NotFound
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import VolumeRef
from dockyard.runtimes.kubernetes import KubernetesRuntime
from dockyard.settings import Settings
from tests.conftest import ServerProcess
from tests.kubernetes.conftest import KUBECONFIG, eventually, get

SNAPSHOTS = "/apis/snapshot.storage.k8s.io/v1"


def test_a_snapshot_is_a_volume_snapshot_and_a_restore_a_claim_from_it(
    kube: httpx.Client, csi_class: str, project: str, tmp_path: Path
) -> None:
    settings = Settings(
        home=tmp_path / "home",
        kubeconfig=KUBECONFIG,
        runtime="kubernetes",
        kube_storage_classes=f"fast={csi_class},standard=dockyard-fast",
    )
    runtime = KubernetesRuntime(settings)
    namespace = ko.namespace_of(runtime.options, project)
    try:
        ref = VolumeRef("ckpt", "", "fast", 2 * 1024**3)
        made = runtime.snapshot_volume(project, ref, "20261201-160000-abcdef")
        snap = get(kube, f"{SNAPSHOTS}/namespaces/{namespace}/volumesnapshots/{made['name']}")
        assert snap is not None and made["class"] == csi_class
        assert snap["spec"]["source"] == {"persistentVolumeClaimName": "ckpt"}
        assert snap["metadata"]["labels"][ko.NAME] == "ckpt"
        claim = get(kube, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/ckpt")
        assert claim is not None and claim["spec"]["storageClassName"] == csi_class
        listed = runtime.volume_snapshots(project, "ckpt")
        assert [s["id"] for s in listed] == ["20261201-160000-abcdef"]

        copy = VolumeRef("ckpt-copy", "", "fast", 2 * 1024**3)
        runtime.restore_volume(project, copy, "ckpt", "20261201-160000-abcdef")
        restored = get(kube, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/ckpt-copy")
        assert restored is not None
        assert restored["spec"]["dataSource"] == {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": made["name"],
        }
        with pytest.raises(NotFound, match="no VolumeSnapshot"):
            runtime.restore_volume(project, copy, "ckpt", "20261201-170000-abcdef")

        # the testbed's hostPath class has no VolumeSnapshotClass: said so, by name
        plain = VolumeRef("scratch", "", "standard", 1024**3)
        with pytest.raises(EngineError, match=r"dockyard-fast .*has no VolumeSnapshotClass"):
            runtime.snapshot_volume(project, plain, "20261201-160000-abcdef")
    finally:
        runtime.close()
        kube.delete(f"/api/v1/namespaces/{namespace}")


def test_dockyard_volumes_snapshot_on_a_kubernetes_control_plane(
    server_factory: Any, kube: httpx.Client, csi_class: str, project: str
) -> None:
    from tests.kubernetes.test_control_plane import PREFIX, k8s_server

    srv: ServerProcess = k8s_server(
        server_factory,
        DOCKYARD_RUNTIME="kubernetes",
        DOCKYARD_KUBE_STORAGE_CLASSES=f"fast={csi_class}",
    )
    client = srv.start()
    namespace = f"{PREFIX}{project}"
    try:
        doc = {
            "apiVersion": "dockyard.dev/v1",
            "kind": "Volume",
            "metadata": {"name": "ckpt", "project": project},
            "spec": {"tier": "fast", "size": "1Gi"},
        }
        client.apply([doc])
        client.wait("Volume", "ckpt", project)
        status = client.snapshot_volume("ckpt", project, timeout=60)["status"]
        sid = status["lastSnapshot"]
        assert status["snapshots"] == 1
        name = f"ckpt-{sid}"
        assert get(kube, f"{SNAPSHOTS}/namespaces/{namespace}/volumesnapshots/{name}")
        assert [s["id"] for s in client.volume_snapshots("ckpt", project)] == [sid]
        copy = client.restore_volume("ckpt", sid, project, to="ckpt-copy", timeout=60)
        assert copy["status"]["phase"] == "Ready", copy["status"]
        claim = eventually(
            lambda: get(kube, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/ckpt-copy")
        )
        assert claim["spec"]["dataSource"]["name"] == name
    finally:
        kube.delete(f"/api/v1/namespaces/{namespace}")


def test_without_a_snapshot_class_a_claim_lying_here_gets_dockyards_own_snapshots(
    server_factory: Any, kube: httpx.Client, project: str, tmp_path: Path
) -> None:
    """The test cluster's hostPath class has no VolumeSnapshotClass, and its volumes lie on
    this machine: a snapshot is Dockyard's own (chunked, verified), a restore --to NEW fills
    the new claim's directory, owners kept."""
    import os

    from tests.kubernetes.test_control_plane import PREFIX, k8s_server

    srv: ServerProcess = k8s_server(server_factory, DOCKYARD_RUNTIME="kubernetes")
    client = srv.start()
    admin = KubernetesRuntime(
        Settings(home=tmp_path / "admin", kubeconfig=KUBECONFIG, kube_namespace_prefix=PREFIX)
    )
    try:
        doc = {
            "apiVersion": "dockyard.dev/v1",
            "kind": "Volume",
            "metadata": {"name": "data", "project": project},
            "spec": {"size": "1Gi"},
        }
        client.apply([doc])
        uid = client.wait("Volume", "data", project)["metadata"]["uid"]
        where = eventually(lambda: admin.volume_host_path(project, VolumeRef("data", uid=uid)))
        (where / "weights.bin").write_bytes(b"w" * 300_000)
        os.chown(where / "weights.bin", 1000, 1000)  # as a pod (uid 1000) wrote it
        status = client.snapshot_volume("data", project, timeout=60)["status"]
        assert "failed" not in status.get("message", ""), status
        [listed] = client.volume_snapshots("data", project)
        assert listed["id"] == status["lastSnapshot"] and "host" in listed["tags"]
        assert listed["files"] == 1 and listed["bytes"] == 300_000
        copy = client.restore_volume("data", listed["id"], project, to="copy", timeout=90)
        assert copy["status"]["phase"] == "Ready", copy["status"]
        copy_uid = copy["metadata"]["uid"]
        there = admin.volume_host_path(project, VolumeRef("copy", uid=copy_uid))
        assert there is not None and there != where
        assert (there / "weights.bin").read_bytes() == b"w" * 300_000
        assert (there / "weights.bin").stat().st_uid == 1000
    finally:
        admin.close()
        kube.delete(f"/api/v1/namespaces/{PREFIX}{project}")
