"""Snapshots of Kubernetes volumes: CSI VolumeSnapshots (snapshot.storage.k8s.io/v1) of a
Volume's claim, where its StorageClass's provisioner has a VolumeSnapshotClass.

A snapshot is named ``<claim>-<id>`` with the id Dockyard's own snapshots have
(``YYYYMMDD-HHMMSS-xxxxxx``), labelled like every object Dockyard makes; a new Volume with
``spec.source`` gets a claim whose ``dataSource`` is that VolumeSnapshot. Where no class can
snapshot the claim, the error says which StorageClass and provisioner lack one.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from lightkube.utils.quantity import parse_quantity

from dockyard.errors import EngineError, NoSnapshotClass, NotFound
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.kube_helpers import get_object

Obj = dict[str, Any]
API = "/apis/snapshot.storage.k8s.io/v1"
DEFAULT_CLASS = "snapshot.storage.kubernetes.io/is-default-class"


def snapshot_name(volume: str, snapshot_id: str) -> str:
    return f"{ko.dns_name(volume, 63)}-{snapshot_id}"


def host_path(
    http: httpx.Client, options: ko.ClusterOptions, project: str, volume: str
) -> Path | None:
    """Where the volume's bound claim lies on this machine (a hostPath or local
    PersistentVolume whose directory the control plane can read), else None."""
    namespace = ko.namespace_of(options, project)
    claim = ko.dns_name(volume, 63)
    pvc = get_object(http, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}") or {}
    bound = (pvc.get("spec") or {}).get("volumeName")
    if not bound:
        return None
    pv = get_object(http, f"/api/v1/persistentvolumes/{bound}") or {}
    spec = pv.get("spec") or {}
    where = (spec.get("hostPath") or spec.get("local") or {}).get("path")
    if not where or not Path(where).is_dir():
        return None
    return Path(where)


def snapshot_class(http: httpx.Client, namespace: str, claim: str) -> str:
    """The VolumeSnapshotClass that can snapshot ``claim``: one whose driver is the
    provisioner of the claim's StorageClass (the default one first)."""
    pvc = get_object(http, f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{claim}")
    storage = ((pvc or {}).get("spec") or {}).get("storageClassName")
    if not storage:
        raise EngineError(
            f"claim {namespace}/{claim} has no StorageClass: nothing can snapshot it",
            hint="map the volume's tier to a CSI class (DOCKYARD_KUBE_STORAGE_CLASSES)",
        )
    cls = get_object(http, f"/apis/storage.k8s.io/v1/storageclasses/{storage}") or {}
    driver = cls.get("provisioner", "?")
    listed = get_object(http, f"{API}/volumesnapshotclasses")
    if listed is None:
        raise EngineError(
            "the cluster has no snapshot.storage.k8s.io/v1 API (the external-snapshotter's "
            "CRDs and controller)",
            hint="install them, or keep the volume on the local or podman home",
        )
    classes = [c for c in listed.get("items", []) if c.get("driver") == driver]
    classes.sort(
        key=lambda c: (c["metadata"].get("annotations") or {}).get(DEFAULT_CLASS) != "true"
    )
    if not classes:
        raise NoSnapshotClass(
            f"StorageClass {storage} (provisioner {driver}) has no VolumeSnapshotClass: its "
            "volumes cannot be snapshotted on the cluster",
            hint="create a VolumeSnapshotClass for that driver, or use a CSI class",
        )
    name: str = classes[0]["metadata"]["name"]
    return name


def take(
    http: httpx.Client, options: ko.ClusterOptions, project: str, volume: str, snapshot_id: str
) -> Obj:
    """Create the VolumeSnapshot of the volume's claim: what the Volume's status records."""
    namespace = ko.namespace_of(options, project)
    claim = ko.dns_name(volume, 63)
    cls = snapshot_class(http, namespace, claim)
    name = snapshot_name(volume, snapshot_id)
    body = {
        "apiVersion": "snapshot.storage.k8s.io/v1",
        "kind": "VolumeSnapshot",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {
                ko.MANAGED_BY: "dockyard",
                ko.PROJECT: project,
                ko.KIND: "volume",
                ko.NAME: volume,
            },
        },
        "spec": {"volumeSnapshotClassName": cls, "source": {"persistentVolumeClaimName": claim}},
    }
    try:
        answer = http.post(f"{API}/namespaces/{namespace}/volumesnapshots", json=body)
    except httpx.HTTPError as exc:
        raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
    if answer.status_code not in (201, 409):
        raise EngineError(f"the cluster refused VolumeSnapshot {name}: {answer.text[:300]}")
    return {"id": snapshot_id, "name": name, "class": cls, "claim": claim}


def listed(http: httpx.Client, options: ko.ClusterOptions, project: str, volume: str) -> list[Obj]:
    """The volume's VolumeSnapshots, oldest first, as Dockyard lists snapshots."""
    namespace = ko.namespace_of(options, project)
    selector = f"{ko.MANAGED_BY}=dockyard,{ko.KIND}=volume,{ko.NAME}={volume}"
    try:
        answer = http.get(
            f"{API}/namespaces/{namespace}/volumesnapshots", params={"labelSelector": selector}
        )
    except httpx.HTTPError as exc:
        raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
    if answer.status_code == 404:
        return []
    if answer.status_code != 200:
        raise EngineError(f"listing VolumeSnapshots: {answer.status_code} {answer.text[:300]}")
    out = []
    prefix = f"{ko.dns_name(volume, 63)}-"
    for item in answer.json().get("items", []):
        meta, status = item["metadata"], item.get("status") or {}
        created = datetime.fromisoformat(meta["creationTimestamp"].replace("Z", "+00:00"))
        out.append(
            {
                "id": meta["name"].removeprefix(prefix),
                "created": created.isoformat(),
                "files": 0,
                "bytes": int(parse_quantity(status.get("restoreSize") or "0") or 0),
                "newBytes": 0,
                "tags": ["csi", "ready" if status.get("readyToUse") else "not-ready"],
                "unsettled": [],
                "volumeSnapshot": meta["name"],
            }
        )
    return sorted(out, key=lambda s: s["id"])


def require(
    http: httpx.Client, options: ko.ClusterOptions, project: str, volume: str, snapshot_id: str
) -> str:
    """The name of the volume's VolumeSnapshot ``snapshot_id`` (NotFound if missing)."""
    namespace = ko.namespace_of(options, project)
    name = snapshot_name(volume, snapshot_id)
    if get_object(http, f"{API}/namespaces/{namespace}/volumesnapshots/{name}") is None:
        raise NotFound(f"volume '{volume}' has no VolumeSnapshot {name} in {namespace}")
    return name
