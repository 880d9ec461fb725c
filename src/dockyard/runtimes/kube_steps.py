"""A workload's preconditions done in its own pod, on the claim (init containers).

On a cluster the control plane's disk holds none of a workload's data, so what must be true
before it starts is made true where it runs, by init containers of the workload's image,
hardened like every container and with requests and limits (``kube_objects.SMALL``):

- ``prune-checkpoints`` (``PruneCheckpoints``): the job's checkpoint directory keeps the newest
  ``keep`` complete checkpoints (``<name>/.complete``) and its plain files; half-written ones,
  hidden names, links and special files go (a link itself, never what it points at) — the
  rule of ``data/checkpoints.py: select``, in the standard library only;
- ``verify-datasets`` (``VerifyDatasets``): each mounted dataset must still match its
  manifest (from the control plane, in a ConfigMap of the workload): files added, removed,
  of another size, or whose modification time changed and whose sha256 differs are named in
  the container's termination message, and the pod fails before the command runs.

``MakeDirs`` needs nothing: the kubelet makes a missing ``subPath``. What a step's failure
means is ``STEP_REASONS`` (the reasons the control plane gives the same failures).
"""

from __future__ import annotations

import base64
import copy
import gzip
from pathlib import Path
from typing import Any

from dockyard.runtimes.base import WorkloadRequest
from dockyard.runtimes.steps import MakeDirs, PruneCheckpoints, Step, VerifyDatasets

Obj = dict[str, Any]
STEPS = "/dockyard/steps"
STEP_REASONS = {"prune-checkpoints": "StartFailed", "verify-datasets": "DatasetChanged"}
TAKEN = (MakeDirs, PruneCheckpoints, VerifyDatasets)
MAX_MANIFESTS = 900 * 1024  # gzipped, in one ConfigMap (the API server stores at most 1 MiB)

PRUNE = r"""
import os, re, shutil, stat, sys
root, keep = sys.argv[1], int(sys.argv[2])
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,254}", re.ASCII)
def complete(path):
    try:
        return stat.S_ISREG(os.lstat(os.path.join(path, ".complete")).st_mode)
    except OSError:
        return False
entries = list(os.scandir(root))
done = sorted(e.name for e in entries if e.is_dir(follow_symlinks=False) and not e.is_symlink()
              and NAME.fullmatch(e.name) and complete(e.path))
kept = done[-keep:] if keep > 0 else []
for e in sorted(entries, key=lambda e: e.name):
    if e.is_file(follow_symlinks=False) or e.name in kept:
        continue
    if e.is_dir(follow_symlinks=False) and not e.is_symlink():
        shutil.rmtree(e.path)
    else:
        os.unlink(e.path)
    print("removed", e.name)
print("latest:", kept[-1] if kept else "none")
"""

VERIFY = r"""
import gzip, hashlib, json, os, stat, sys
def verify():
    problems = []
    # (a ConfigMap volume also holds its own ..data links: only the datasets' names)
    for name in sorted(n for n in os.listdir("/dockyard/manifests") if not n.startswith(".")):
        files = json.loads(gzip.decompress(open("/dockyard/manifests/" + name, "rb").read()))
        root = os.path.join("/dockyard/steps/data", name)
        present = {}
        for top, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".dockyard")]
            for n in names:
                if n.startswith(".dockyard"):
                    continue
                path = os.path.join(top, n)
                present[os.path.relpath(path, root)] = os.lstat(path)
        found = []
        found += [f"{rel} added" for rel in sorted(set(present) - set(files))]
        found += [f"{rel} removed" for rel in sorted(set(files) - set(present))]
        for rel, info in sorted(files.items()):
            st = present.get(rel)
            if st is None:
                continue
            if not stat.S_ISREG(st.st_mode) or st.st_size != info["size"]:
                found.append(f"{rel} changed size")
            elif st.st_mtime_ns != info.get("mtimeNs"):
                digest = hashlib.sha256()
                with open(os.path.join(root, rel), "rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(chunk)
                if digest.hexdigest() != info["sha256"]:
                    found.append(f"{rel} changed content")
        if found:
            problems.append(f"dataset '{name}' changed on its volume since it was checksummed: "
                            + ", ".join(found[:5]))
    if problems:
        message = "; ".join(problems)
        print(message, file=sys.stderr)
        with open("/dev/termination-log", "w") as out:
            out.write(message[:3500])
        sys.exit(1)
    print("datasets verified")
try:
    verify()
except Exception as exc:  # unreadable files, a manifest cut short: say what, fail the pod
    with open("/dev/termination-log", "w") as out:
        out.write(f"verifying the datasets failed: {type(exc).__name__}: {exc}"[:3500])
    raise
"""


def takes(step: Step) -> bool:
    return isinstance(step, TAKEN)


def _mount_of(request: WorkloadRequest, mounts: list[Obj], root: Path, rel: str) -> Obj:
    """The pod's mount of the host place ``root/rel`` (the same claim and sub path)."""
    for mount, made in zip(request.mounts, mounts, strict=False):
        if mount.source == root / rel:
            return made
    raise ValueError(f"{root / rel} is not mounted by the workload: a pod cannot reach it")


def init_containers(
    request: WorkloadRequest, mounts: list[Obj], image: str, security: Obj, small: Obj, name: str
) -> tuple[list[Obj], list[Obj], list[Obj]]:
    """(init containers, pod volumes, owned objects) for ``request.steps``. ``mounts`` are
    the pod's mounts of ``request.mounts``, in order."""
    containers: list[Obj] = []
    volumes: list[Obj] = []
    owned: list[Obj] = []
    for step in request.steps:
        if isinstance(step, PruneCheckpoints):
            root, rel = step.path
            mount = {**_mount_of(request, mounts, root, rel), "mountPath": f"{STEPS}/checkpoints"}
            mount["readOnly"] = False
            containers.append(
                {
                    "name": "prune-checkpoints",
                    "image": image,
                    "command": ["python3", "-c", PRUNE, f"{STEPS}/checkpoints", str(step.keep)],
                    "resources": copy.deepcopy(small),
                    "securityContext": copy.deepcopy(security),
                    "volumeMounts": [mount],
                }
            )
        elif isinstance(step, VerifyDatasets):
            data = {
                n: gzip.compress(request.manifests.get(n, b"{}")) for n, _w, _m in step.datasets
            }
            if sum(len(v) for v in data.values()) > MAX_MANIFESTS:
                continue  # too many files to carry: verified where the data was committed
            owned.append(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": f"{name}-manifests"},
                    "binaryData": {n: base64.b64encode(v).decode() for n, v in data.items()},
                    "immutable": True,
                }
            )
            volumes.append({"name": "manifests", "configMap": {"name": f"{name}-manifests"}})
            mounts_in = [
                {"name": "manifests", "mountPath": "/dockyard/manifests", "readOnly": True}
            ]
            for dataset, (root, rel), _manifest in step.datasets:
                mount = _mount_of(request, mounts, root, rel)
                mounts_in.append(
                    {**mount, "mountPath": f"{STEPS}/data/{dataset}", "readOnly": True}
                )
            containers.append(
                {
                    "name": "verify-datasets",
                    "image": image,
                    "command": ["python3", "-c", VERIFY],
                    "resources": copy.deepcopy(small),
                    "securityContext": copy.deepcopy(security),
                    "volumeMounts": mounts_in,
                }
            )
    return containers, volumes, owned
