"""Helper pods: small, short-lived pods that do Dockyard's own work on a claim, in the cluster.

The control plane is often outside the cluster and never mounts a claim itself. What it must
learn of a claim's files it asks a helper pod, hardened like every workload, with the claim
mounted read-only:

- ``usage``: how many files and bytes the claim holds, written to the pod's termination message
  (``/dev/termination-log``, at most 4 KiB: the status channel Kubernetes gives a container);
- ``collect``: a tar.gz of a directory of the claim (a job's outputs, a dataset's files),
  served on the model servers' port and read through the API server's pod proxy — so outputs
  travel neither through a log nor through any address of the control plane's.

The objects are pure functions here; :class:`Helpers` runs them with the runtime's client.
"""

from __future__ import annotations

import contextlib
import copy
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from dockyard.errors import EngineError
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.images import USER_ID

Obj = dict[str, Any]
HELPER = "dockyard.dev/helper"  # label: what a helper pod does (usage, collect)
DATA = "/data"
USAGE = """
import json, os
files = size = 0
for root, dirs, names in os.walk("/data"):
    for name in names:
        st = os.lstat(os.path.join(root, name))
        files += 1
        size += st.st_size
with open("/dev/termination-log", "w") as out:
    json.dump({"files": files, "bytes": size}, out)
"""
# serves /outputs.tar.gz: directories and regular files only (a link is never followed)
COLLECT = """
import http.server, os, stat, tarfile
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path != "/outputs.tar.gz":
            self.send_response(404); self.end_headers(); return
        self.send_response(200)
        self.send_header("Content-Type", "application/gzip")
        self.end_headers()
        with tarfile.open(fileobj=self.wfile, mode="w|gz") as tar:
            for root, dirs, names in os.walk("/data"):
                dirs.sort()
                for name in [*dirs, *sorted(names)]:
                    path = os.path.join(root, name)
                    mode = os.lstat(path).st_mode
                    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                        tar.add(path, os.path.relpath(path, "/data"), recursive=False)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("", PORT), Handler).serve_forever()
"""


def collect_script(port: int) -> str:
    return COLLECT.replace("PORT", str(port))


def get_object(http: httpx.Client, path: str) -> Obj | None:
    """One object of the API server (None: it does not exist); EngineError otherwise."""
    try:
        answer = http.get(path)
    except httpx.HTTPError as exc:
        raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
    if answer.status_code == 404:
        return None
    if answer.status_code != 200:
        raise EngineError(f"GET {path}: {answer.status_code} {answer.text[:300]}")
    found: Obj = answer.json()
    return found


def helper_name(base: str, what: str) -> str:
    return ko.dns_name(f"{base}-{what}", 63)


def helper_pod(
    options: ko.ClusterOptions,
    project: str,
    name: str,
    what: str,
    image: str,
    claim: str,
    sub_path: str = "",
    deadline: int = 600,
) -> Obj:
    """A helper pod ``what`` (usage, collect) on ``claim`` (read-only at /data)."""
    labels = {ko.MANAGED_BY: "dockyard", ko.PROJECT: project, HELPER: what}
    mount: Obj = {"name": "data", "mountPath": DATA, "readOnly": True}
    if sub_path:
        mount["subPath"] = sub_path
    script = USAGE if what == "usage" else collect_script(ko.SERVE_PORT)
    container: Obj = {
        "name": "helper",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": ["python3", "-c", script],
        "resources": copy.deepcopy(ko.SMALL),
        "securityContext": ko.container_security({}),
        "volumeMounts": [mount, {"name": "tmp", "mountPath": "/tmp"}],
    }
    if what == "collect":
        container["ports"] = [{"name": "http", "containerPort": ko.SERVE_PORT}]
        container["readinessProbe"] = {
            "tcpSocket": {"port": ko.SERVE_PORT},
            "periodSeconds": 1,
        }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": ko.namespace_of(options, project),
            "labels": labels,
        },
        "spec": {
            "restartPolicy": "Never",
            "activeDeadlineSeconds": deadline,
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "securityContext": {
                "fsGroup": USER_ID,
                "seccompProfile": {"type": "RuntimeDefault"},
            },
            "containers": [container],
            "volumes": [
                {"name": "data", "persistentVolumeClaim": {"claimName": claim, "readOnly": True}},
                {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
            ],
        },
    }


def termination_message(pod: Obj) -> str | None:
    """What the helper wrote to its termination log, once it ended (None before)."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (status.get("state") or {}).get("terminated")
        if terminated is not None:
            return str(terminated.get("message") or "")
    return None


def usage_of(message: str) -> tuple[int, int] | None:
    """(files, bytes) from a usage helper's message; None if it holds no such numbers."""
    try:
        data = json.loads(message)
        return int(data["files"]), int(data["bytes"])
    except (ValueError, KeyError, TypeError):
        return None


def _refused(answer: httpx.Response) -> bool:
    """An authorization refusal of the API server (a Status of reason Forbidden), not a 403
    that the path to a pod answered."""
    if answer.status_code != 403:
        return False
    try:
        body = answer.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("reason") == "Forbidden"


def _ready(pod: Obj) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


class Helpers:
    """Run helper pods with the runtime's HTTP client; ``lookup`` reads the watch cache."""

    def __init__(self, http: httpx.Client, lookup: Callable[[str, str], Obj | None]) -> None:
        self.http = http
        self.lookup = lookup

    def _path(self, namespace: str, name: str = "") -> str:
        base = f"/api/v1/namespaces/{namespace}/pods"
        return f"{base}/{name}" if name else base

    def create(self, pod: Obj) -> None:
        """Create ``pod`` unless it exists (a restarted control plane finds its helpers)."""
        meta = pod["metadata"]
        try:
            answer = self.http.post(self._path(meta["namespace"]), json=pod)
        except httpx.HTTPError as exc:
            raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
        if answer.status_code not in (201, 409):
            raise EngineError(
                f"the cluster refused the helper pod {meta['name']}: {answer.text[:300]}",
                hint="its account needs create on pods (docs/kubernetes.md)",
            )

    def delete(self, namespace: str, name: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.http.delete(self._path(namespace, name), params={"gracePeriodSeconds": 0})

    def get(self, namespace: str, name: str) -> Obj | None:
        """The pod from the watch cache, else from the API server."""
        found = self.lookup(namespace, name)
        if found is not None:
            return found
        try:
            answer = self.http.get(self._path(namespace, name))
        except httpx.HTTPError:
            return None
        if answer.status_code != 200:
            return None
        pod: Obj = answer.json()
        return pod

    def usage(self, pod: Obj, timeout: float) -> tuple[int, int] | None:
        """Run a usage helper to its end; (files, bytes), or None if it said nothing in
        ``timeout`` seconds (a node that runs no program, like kwok's). It is deleted after."""
        meta = pod["metadata"]
        self.create(pod)
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                found = self.get(meta["namespace"], meta["name"])
                message = termination_message(found) if found is not None else None
                if message is not None:
                    return usage_of(message)
                time.sleep(0.5)
            return None
        finally:
            self.delete(meta["namespace"], meta["name"])

    def ready(self, namespace: str, name: str) -> bool | None:
        """Is a collect helper serving? None when it is gone or ended (make it again)."""
        found = self.get(namespace, name)
        if found is None or (found.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
            return None
        return _ready(found)

    def fetch(self, namespace: str, name: str, limit: int) -> Path:
        """The collect helper's tar.gz, through the API server's pod proxy, into a temporary
        file (at most ``limit`` bytes; the caller unpacks and removes it)."""
        path = f"{self._path(namespace, name)}:{ko.SERVE_PORT}/proxy/outputs.tar.gz"
        handle = tempfile.NamedTemporaryFile(prefix="dockyard-outputs-", delete=False)  # noqa: SIM115
        target = Path(handle.name)
        try:
            with handle, self.http.stream("GET", path, timeout=300) as answer:
                if answer.status_code != 200:
                    answer.read()
                if answer.status_code == 401 or _refused(answer):
                    raise EngineError(
                        f"the cluster does not let Dockyard read its helper: {answer.text[:200]}",
                        hint="its account needs get on pods/proxy (docs/kubernetes.md)",
                    )
                if answer.status_code != 200:
                    raise EngineError(
                        f"the helper {name} answered {answer.status_code}: {answer.text[:200]}"
                    )
                written = 0
                for chunk in answer.iter_bytes():
                    written += len(chunk)
                    if written > limit:
                        raise EngineError(
                            f"the outputs are more than {limit} bytes compressed",
                            hint="raise DOCKYARD_KUBE_OUTPUT_BYTES, or write large files to "
                            "a Volume",
                        )
                    handle.write(chunk)
        except httpx.HTTPError as exc:
            target.unlink(missing_ok=True)
            raise EngineError(f"reading the helper {name}: {exc}") from exc
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        return target
