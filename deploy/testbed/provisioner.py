"""The test cluster's volume provisioner: a host directory per PersistentVolumeClaim.

    python3 deploy/testbed/provisioner.py        (cluster.py up starts it; stdlib only)

It installs three StorageClasses — `standard` (the default), `dockyard-fast` and
`dockyard-archive`, the tiers of DOCKYARD_KUBE_STORAGE_CLASSES in the tests — and then, every
half second, gives each Pending claim of those classes a hostPath PersistentVolume under
.cluster/volumes (bound to it by the claim reference), and deletes the volumes of deleted
claims with their directories. What a CSI driver does on a real cluster, in the smallest form
that lets the scheduler bind pods that mount claims (kwok nodes and the real node alike).
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cluster import CLUSTER, api

PROVISIONER = "testbed.dockyard.dev/hostpath"
CLASSES = ("standard", "dockyard-fast", "dockyard-archive")
VOLUMES = CLUSTER / "volumes"


def storage_classes() -> None:
    for name in CLASSES:
        body = {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {"name": name},
            "provisioner": PROVISIONER,
            "reclaimPolicy": "Delete",
            "volumeBindingMode": "Immediate",
        }
        if name == "standard":
            body["metadata"]["annotations"] = {
                "storageclass.kubernetes.io/is-default-class": "true"
            }
        status, answer = api("POST", "/apis/storage.k8s.io/v1/storageclasses", body)
        if status not in (201, 409):
            raise SystemExit(f"provisioner: StorageClass {name}: {status} {answer}")


def provision() -> None:
    _, claims = api("GET", "/api/v1/persistentvolumeclaims")
    _, volumes = api("GET", "/api/v1/persistentvolumes")
    taken = {(v["spec"].get("claimRef") or {}).get("uid") for v in volumes.get("items", [])}
    for claim in claims.get("items", []):
        meta, spec = claim["metadata"], claim["spec"]
        if claim.get("status", {}).get("phase") != "Pending" or meta["uid"] in taken:
            continue
        if spec.get("storageClassName") not in CLASSES:
            continue
        path = VOLUMES / meta["uid"]
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # pods run as uid 1000
        body = {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {
                "name": f"pvc-{meta['uid']}",
                "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
            },
            "spec": {
                "capacity": {"storage": spec["resources"]["requests"]["storage"]},
                "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Delete",
                "storageClassName": spec["storageClassName"],
                "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
                "claimRef": {
                    "apiVersion": "v1",
                    "kind": "PersistentVolumeClaim",
                    "namespace": meta["namespace"],
                    "name": meta["name"],
                    "uid": meta["uid"],
                },
            },
        }
        api("POST", "/api/v1/persistentvolumes", body)
    for volume in volumes.get("items", []):
        annotations = volume["metadata"].get("annotations") or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if volume.get("status", {}).get("phase") in ("Released", "Failed"):
            api("DELETE", f"/api/v1/persistentvolumes/{volume['metadata']['name']}")
            uid = (volume["spec"].get("claimRef") or {}).get("uid")
            if uid:
                shutil.rmtree(VOLUMES / uid, ignore_errors=True)


def main() -> int:
    storage_classes()
    print("provisioner: storage classes ready; provisioning", flush=True)
    while True:
        try:
            provision()
        except OSError as exc:  # the API server restarting: try again
            print(f"provisioner: {exc}", flush=True)
        time.sleep(0.5)


if __name__ == "__main__":
    raise SystemExit(main())
