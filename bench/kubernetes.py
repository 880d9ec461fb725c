"""Kubernetes home benchmark, on the test cluster (`make cluster`): latency and scale.

    .venv/bin/python bench/kubernetes.py [--part latency,scale] [--jobs 30]
        [--nodes 1000] [--scale-jobs 1000] [--kubeconfig .cluster/kubeconfig]

latency  JOBS jobs applied one after the other to a control plane on each home (local
         processes; Podman when it is installed; kubernetes), p50/p99 of apply → the job is
         Running (the API reports it); on kubernetes also apply → the batch/v1 Job exists and
         apply → its pod is Running. On kwok nodes a pod "runs" once bound; on the real node
         (`make cluster CLUSTER_ARGS="--real-node --nodes 0"`) its container really starts.
scale    NODES kwok nodes, SCALE_JOBS jobs applied in requests of 100 → all Running (pods
         kept running by KWOK_DURATION): total time, the control plane's CPU seconds, and the
         API server's request count during the run (all clients: kwok, controllers, scheduler
         and Dockyard); then, in process, one observation pass over every running workload
         through the watch cache, against the naive runtime's GET per workload per pass.

Results print as Markdown and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.control_plane import api, cpu_seconds, percentile, start_server  # noqa: E402

PREFIX = "dyb-"


def admin(kubeconfig: Path) -> httpx.Client:
    from lightkube.config import client_adapter
    from lightkube.config.kubeconfig import KubeConfig

    config = KubeConfig.from_file(kubeconfig).get()
    assert config is not None
    params = client_adapter.ConnectionParams(timeout=httpx.Timeout(60.0), trust_env=False)
    return client_adapter.Client(config, params)


def job_doc(
    name: str, project: str, runtime: str, seconds: str = "", cpu: float = 0.01, memory: str = ""
) -> dict[str, Any]:
    env = {"KWOK_DURATION": seconds} if seconds else {}
    resources: dict[str, Any] = {"cpu": cpu, **({"memory": memory} if memory else {})}
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Job",
        "metadata": {"name": name, "project": project},
        "spec": {
            "command": ["sh", "-c", "sleep 1"],
            "runtime": runtime,
            "resources": resources,
            "env": env,
        },
    }


def summary(values: list[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p99": percentile(values, 99)}


def phase(client: httpx.Client, name: str, project: str) -> str:
    answer = client.get(f"/api/v1/jobs/{name}", params={"project": project})
    return str(answer.json().get("status", {}).get("phase", "")) if answer.is_success else ""


def pod_running(kube: httpx.Client, namespace: str, job: str) -> bool:
    answer = kube.get(
        f"/api/v1/namespaces/{namespace}/pods",
        params={"labelSelector": f"dockyard.dev/name={job}"},
    )
    items = answer.json().get("items", []) if answer.is_success else []
    return any(p.get("status", {}).get("phase") == "Running" for p in items)


def run_latency(args: argparse.Namespace, tmp: Path, kube: httpx.Client) -> dict[str, Any]:
    homes = ["local"] + (["podman"] if shutil.which("podman") else []) + ["kubernetes"]
    out: dict[str, Any] = {"jobs": args.jobs}
    for home in homes:
        project = f"lat{uuid.uuid4().hex[:6]}"
        extra = {
            "DOCKYARD_KUBECONFIG": str(args.kubeconfig),
            "DOCKYARD_KUBE_NAMESPACE_PREFIX": PREFIX,
        }
        if home in ("podman", "kubernetes"):  # the same image (a real node has it imported)
            extra["DOCKYARD_CONTAINERS_CONF"] = str(ROOT / "deploy" / "podman" / "containers.conf")
            extra["DOCKYARD_BASE_IMAGE"] = os.environ.get(
                "DOCKYARD_BASE_IMAGE", "localhost/dockyard/base:bookworm"
            )
        proc, url = start_server(tmp / f"lat-{home}", None, **extra)
        running, created, pods = [], [], []
        namespace = f"{PREFIX}{project}"
        try:
            with api(url, tmp / f"lat-{home}") as client:
                for i in range(args.jobs):
                    name = f"lat-{i}"
                    doc = job_doc(name, project, home, "30s")
                    t0 = time.perf_counter()
                    client.post("/api/v1/apply", json={"documents": [doc]}).raise_for_status()
                    seen_job = seen_pod = None
                    while True:
                        if home == "kubernetes":
                            if seen_job is None and _listed(kube, namespace, name):
                                seen_job = time.perf_counter()
                            if seen_pod is None and pod_running(kube, namespace, name):
                                seen_pod = time.perf_counter()
                        if phase(client, name, project) == "Running":
                            running.append((time.perf_counter() - t0) * 1000)
                            break
                        time.sleep(0.002)
                    if home == "kubernetes":
                        while seen_pod is None:
                            if seen_job is None and _listed(kube, namespace, name):
                                seen_job = time.perf_counter()
                            if pod_running(kube, namespace, name):
                                seen_pod = time.perf_counter()
                            time.sleep(0.002)
                        created.append(((seen_job or seen_pod) - t0) * 1000)
                        pods.append((seen_pod - t0) * 1000)
                    client.delete(f"/api/v1/jobs/{name}", params={"project": project})
        finally:
            proc.terminate()
            proc.wait(60)
            if home == "kubernetes":
                kube.delete(f"/api/v1/namespaces/{namespace}")
        out[home] = {"apply_to_running_ms": summary(running)}
        if created:
            out[home]["apply_to_job_created_ms"] = summary(created)
            out[home]["apply_to_pod_running_ms"] = summary(pods)
    return out


def _listed(kube: httpx.Client, namespace: str, name: str) -> bool:
    answer = kube.get(
        f"/apis/batch/v1/namespaces/{namespace}/jobs",
        params={"labelSelector": f"dockyard.dev/name={name}"},
    )
    return bool(answer.is_success and answer.json().get("items"))


def uniform_node(name: str, _index: int) -> dict[str, Any]:
    size = {"cpu": "8", "memory": "32Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name},
        },
        "status": {"allocatable": dict(size), "capacity": dict(size)},
    }


def add_nodes(
    kube: httpx.Client,
    count: int,
    make: Callable[[str, int], dict[str, Any]] = uniform_node,
    prefix: str = "bench-node",
) -> list[str]:
    """``count`` kwok nodes, waited for until they are all Ready."""
    names = []
    for i in range(count):
        name = f"{prefix}-{i}"
        answer = kube.post("/api/v1/nodes", json=make(name, i))
        if answer.status_code not in (201, 409):
            answer.raise_for_status()
        names.append(name)
    while len(set(names) - ready_names(kube)) > 0:
        time.sleep(0.5)
    return names


def ready_names(kube: httpx.Client) -> set[str]:
    items = kube.get("/api/v1/nodes").json().get("items", [])
    return {
        n["metadata"]["name"]
        for n in items
        if any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in n["status"].get("conditions", [])
        )
    }


def gone(kube: httpx.Client, namespace: str) -> None:
    """Delete a namespace and wait until it is gone (its pods no longer hold their nodes)."""
    kube.delete(f"/api/v1/namespaces/{namespace}")
    deadline = time.monotonic() + 300
    while kube.get(f"/api/v1/namespaces/{namespace}").status_code != 404:
        if time.monotonic() > deadline:
            raise SystemExit(f"namespace {namespace} is still there after 300 s")
        time.sleep(0.5)


# The mixed cluster: 100 nodes of four sizes, 500 jobs of six shapes and 2 to 6 s each (seeded).
MIXED_SIZES = [("2", "4Gi"), ("4", "8Gi"), ("8", "16Gi"), ("16", "64Gi")]
MIXED_NEEDS = [(0.5, "512Mi"), (1, "2Gi"), (2, "4Gi"), (3, "6Gi"), (6, "12Gi"), (12, "48Gi")]


def mixed_node(name: str, index: int) -> dict[str, Any]:
    cpu, memory = MIXED_SIZES[index % len(MIXED_SIZES)]
    size = {"cpu": cpu, "memory": memory, "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {"type": "kwok", "kubernetes.io/hostname": name},
        },
        "status": {"allocatable": dict(size), "capacity": dict(size)},
    }


def mixed_jobs(count: int, seed: int = 17) -> list[tuple[str, float, str, str]]:
    """(name, cpu, memory, KWOK_DURATION) of ``count`` jobs of mixed needs."""
    rnd = random.Random(seed)
    jobs = []
    for i in range(count):
        cpu, memory = rnd.choice(MIXED_NEEDS)
        jobs.append((f"m-{i}", cpu, memory, f"{rnd.randint(2, 6)}s"))
    return jobs


def ready_nodes(kube: httpx.Client) -> int:
    return len(ready_names(kube))


def apiserver_requests(kube: httpx.Client) -> int:
    total = 0.0
    for line in kube.get("/metrics").text.splitlines():
        if line.startswith("apiserver_request_total{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


class BindWatch:
    """Watches the pods of one namespace from a thread: when each job's pod was first seen
    bound to a node (``spec.nodeName``), by the job's name (label ``dockyard.dev/name`` or
    ``job-name``)."""

    def __init__(self, kube: httpx.Client, namespace: str) -> None:
        self.kube, self.namespace = kube, namespace
        self.bound: dict[str, float] = {}
        self.unschedulable: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        version = ""
        while not self._stop.is_set():
            params = {"watch": "1", "timeoutSeconds": "5", "allowWatchBookmarks": "false"}
            if version:
                params["resourceVersion"] = version
            try:
                with self.kube.stream(
                    "GET", f"/api/v1/namespaces/{self.namespace}/pods", params=params
                ) as answer:
                    for line in answer.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        pod = event.get("object", {})
                        version = pod.get("metadata", {}).get("resourceVersion", version)
                        self._seen(pod)
            except (httpx.HTTPError, ValueError):
                time.sleep(0.2)

    def _seen(self, pod: dict[str, Any]) -> None:
        labels = pod.get("metadata", {}).get("labels", {})
        name = labels.get("dockyard.dev/name") or labels.get("job-name")
        if not name:
            return
        if pod.get("spec", {}).get("nodeName"):
            self.bound.setdefault(name, time.perf_counter())
        for c in pod.get("status", {}).get("conditions", []):
            if c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable":
                self.unschedulable.add(name)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(10)


def direct_job(name: str, seconds: str, cpu: str = "10m", memory: str = "") -> dict[str, Any]:
    """The batch/v1 Job of ``job_doc`` as a user would write it by hand (no Dockyard)."""
    needs = {"cpu": cpu, **({"memory": memory} if memory else {})}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": "main",
                            "image": "localhost/dockyard/base:bookworm",
                            "command": ["sh", "-c", "sleep 1"],
                            "env": [{"name": "KWOK_DURATION", "value": seconds}],
                            "resources": {"requests": needs, "limits": needs},
                        }
                    ],
                }
            },
        },
    }


def running_pods(kube: httpx.Client, namespace: str) -> int:
    items = kube.get(f"/api/v1/namespaces/{namespace}/pods").json().get("items", [])
    return sum(1 for p in items if p.get("status", {}).get("phase") == "Running")


def run_direct(kube: httpx.Client, count: int) -> dict[str, float]:
    """The same jobs created straight through the API server: create → all pods Running."""
    namespace = f"{PREFIX}direct-{uuid.uuid4().hex[:6]}"
    kube.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "metadata": {"name": namespace}}
    ).raise_for_status()
    while not kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default").is_success:
        time.sleep(0.1)
    watch = BindWatch(kube, namespace)
    t0 = time.perf_counter()
    try:
        for i in range(count):
            kube.post(
                f"/apis/batch/v1/namespaces/{namespace}/jobs", json=direct_job(f"d-{i}", "1h")
            ).raise_for_status()
        created = time.perf_counter() - t0
        while running_pods(kube, namespace) < count:
            time.sleep(0.5)
        return {
            "create_seconds": created,
            "all_running_seconds": time.perf_counter() - t0,
            "bound_p50_s": percentile([b - t0 for b in watch.bound.values()], 50),
        }
    finally:
        watch.close()
        kube.delete(f"/api/v1/namespaces/{namespace}")


def run_scale(args: argparse.Namespace, tmp: Path, kube: httpx.Client) -> dict[str, Any]:
    t0 = time.perf_counter()
    nodes = add_nodes(kube, args.nodes)
    nodes_seconds = time.perf_counter() - t0
    project = f"scale{uuid.uuid4().hex[:6]}"
    namespace = f"{PREFIX}{project}"
    home = tmp / "scale"
    result: dict[str, Any] = {"nodes": ready_nodes(kube), "jobs": args.scale_jobs}
    result["nodes_ready_seconds"] = nodes_seconds
    proc = None
    try:
        result["direct"] = run_direct(kube, args.scale_jobs)
        proc, url = start_server(
            home,
            None,
            DOCKYARD_KUBECONFIG=str(args.kubeconfig),
            DOCKYARD_KUBE_NAMESPACE_PREFIX=PREFIX,
            DOCKYARD_RUNTIME="kubernetes",
        )
        watch = BindWatch(kube, namespace)
        with api(url, home, timeout=300) as client:
            cpu0, requests0 = cpu_seconds(proc.pid), apiserver_requests(kube)
            t0 = time.perf_counter()
            docs = [job_doc(f"s-{i}", project, "kubernetes", "1h") for i in range(args.scale_jobs)]
            applied_at: dict[str, float] = {}
            for start in range(0, len(docs), 100):
                chunk = docs[start : start + 100]
                sent = time.perf_counter()
                client.post("/api/v1/apply", json={"documents": chunk}).raise_for_status()
                applied_at.update({d["metadata"]["name"]: sent for d in chunk})
            applied = time.perf_counter() - t0
            while True:
                items = client.get("/api/v1/jobs", params={"project": project}).json()["items"]
                running = sum(1 for j in items if j["status"].get("phase") == "Running")
                if running >= args.scale_jobs:
                    break
                time.sleep(0.5)
            result["apply_seconds"] = applied
            result["all_running_seconds"] = time.perf_counter() - t0
            result["control_plane_cpu_seconds"] = cpu_seconds(proc.pid) - cpu0
            result["apiserver_requests"] = apiserver_requests(kube) - requests0
            bound = [watch.bound[n] - applied_at[n] for n in applied_at if n in watch.bound]
            result["apply_to_bound_s"] = {
                "p50": percentile(bound, 50),
                "p99": percentile(bound, 99),
            }
            result["unschedulable_pods"] = len(watch.unschedulable)
            controller = client.get("/api/v1/healthz").json()["controller"]
            result["pass_ms"] = {"p50": controller["passMsP50"], "p99": controller["passMsP99"]}
            result["passes_run"] = controller["passes"]
            watch.close()
            result["passes"] = run_passes(args, project)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(120)
        kube.delete(f"/api/v1/namespaces/{namespace}")
        for name in nodes:
            kube.delete(f"/api/v1/nodes/{name}")
    return result


def run_mixed(args: argparse.Namespace, tmp: Path, kube: httpx.Client) -> dict[str, Any]:
    """Jobs of mixed needs on nodes of mixed sizes, more than fit at once: through Dockyard
    (it admits node by node) and straight to kube-scheduler (pods queue in the cluster):
    how many pods sat Unschedulable, and the time until all ran."""
    nodes = add_nodes(kube, args.mixed_nodes, mixed_node, "mixed-node")
    jobs = mixed_jobs(args.mixed_jobs)
    result: dict[str, Any] = {"nodes": len(ready_names(kube)), "jobs": len(jobs)}
    try:
        result["dockyard"] = mixed_dockyard(args, tmp, kube, jobs)
        result["direct"] = mixed_direct(kube, jobs)
    finally:
        for name in nodes:
            kube.delete(f"/api/v1/nodes/{name}")
    return result


def mixed_dockyard(
    args: argparse.Namespace, tmp: Path, kube: httpx.Client, jobs: list[tuple[str, float, str, str]]
) -> dict[str, Any]:
    project = f"mixed{uuid.uuid4().hex[:6]}"
    namespace = f"{PREFIX}{project}"
    home = tmp / "mixed"
    proc, url = start_server(
        home,
        None,
        DOCKYARD_KUBECONFIG=str(args.kubeconfig),
        DOCKYARD_KUBE_NAMESPACE_PREFIX=PREFIX,
        DOCKYARD_RUNTIME="kubernetes",
    )
    watch = BindWatch(kube, namespace)
    try:
        with api(url, home, timeout=300) as client:
            cpu0 = cpu_seconds(proc.pid)
            docs = [job_doc(n, project, "kubernetes", d, cpu, mem) for n, cpu, mem, d in jobs]
            t0 = time.perf_counter()
            for start in range(0, len(docs), 100):
                chunk = docs[start : start + 100]
                client.post("/api/v1/apply", json={"documents": chunk}).raise_for_status()
            while True:
                items = client.get("/api/v1/jobs", params={"project": project}).json()["items"]
                done = [j for j in items if j["status"].get("phase") in ("Succeeded", "Failed")]
                if len(done) >= len(jobs):
                    break
                time.sleep(0.5)
            failed = sum(1 for j in done if j["status"]["phase"] == "Failed")
            return {
                "all_done_seconds": time.perf_counter() - t0,
                "failed": failed,
                "unschedulable_pods": len(watch.unschedulable),
                "control_plane_cpu_seconds": cpu_seconds(proc.pid) - cpu0,
            }
    finally:
        watch.close()
        proc.terminate()
        proc.wait(120)
        gone(kube, namespace)


def mixed_direct(kube: httpx.Client, jobs: list[tuple[str, float, str, str]]) -> dict[str, Any]:
    namespace = f"{PREFIX}direct-{uuid.uuid4().hex[:6]}"
    kube.post(
        "/api/v1/namespaces", json={"apiVersion": "v1", "metadata": {"name": namespace}}
    ).raise_for_status()
    while not kube.get(f"/api/v1/namespaces/{namespace}/serviceaccounts/default").is_success:
        time.sleep(0.1)
    watch = BindWatch(kube, namespace)
    try:
        t0 = time.perf_counter()
        for name, cpu, memory, seconds in jobs:
            kube.post(
                f"/apis/batch/v1/namespaces/{namespace}/jobs",
                json=direct_job(name, seconds, f"{int(cpu * 1000)}m", memory),
            ).raise_for_status()
        while True:
            items = kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs").json()["items"]
            done = sum(1 for j in items if j.get("status", {}).get("succeeded"))
            if done >= len(jobs):
                break
            time.sleep(0.5)
        return {
            "all_done_seconds": time.perf_counter() - t0,
            "unschedulable_pods": len(watch.unschedulable),
        }
    finally:
        watch.close()
        gone(kube, namespace)


def run_passes(args: argparse.Namespace, project: str) -> dict[str, Any]:
    """Observe every workload of ``project`` through the cache, and naively."""
    from dockyard.runtimes import kube_objects as ko
    from dockyard.runtimes.kubernetes import KubernetesRuntime
    from dockyard.settings import Settings

    settings = Settings(
        home=Path(tempfile.mkdtemp()), kubeconfig=args.kubeconfig, kube_namespace_prefix=PREFIX
    )
    runtime = KubernetesRuntime(settings)
    sent = [0]
    runtime.http.event_hooks["request"].append(lambda _request: sent.__setitem__(0, sent[0] + 1))
    ids = runtime.list_workloads()
    sent[0] = 0
    t0 = time.perf_counter()
    for wid in ids:
        runtime.observe(wid)
    cached_ms, cached_requests = (time.perf_counter() - t0) * 1000, sent[0]
    namespace = f"{PREFIX}{project}"
    sent[0] = 0
    t0 = time.perf_counter()
    for wid in ids:  # what a runtime without a cache does: a GET per workload per pass
        runtime.http.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{ko.dns_name(wid)}")
    naive_ms, naive_requests = (time.perf_counter() - t0) * 1000, sent[0]
    runtime.close()
    return {
        "workloads": len(ids),
        "watch_cache": {"requests": cached_requests, "ms": cached_ms},
        "get_per_workload": {"requests": naive_requests, "ms": naive_ms},
        "cache_counters": {
            "lists": runtime.cache.counters.lists,
            "watches": runtime.cache.counters.watches,
        },
    }


def report(r: dict[str, Any]) -> str:
    lines = [r["machine"], ""]
    if "latency" in r:
        lat = r["latency"]
        lines += [f"{lat['jobs']} jobs one after the other:", "", "| home | metric | p50 | p99 |"]
        lines.append("| --- | --- | ---: | ---: |")
        for home in ("local", "podman", "kubernetes"):
            for metric, values in (lat.get(home) or {}).items():
                label = metric.removesuffix("_ms").replace("_", " ").replace(" to ", " → ")
                lines.append(
                    f"| {home} | {label} | {values['p50']:.0f} ms | {values['p99']:.0f} ms |"
                )
        lines.append("")
    if "scale" in r:
        s = r["scale"]
        p = s["passes"]
        d = s["direct"]
        lines += [
            f"| {s['nodes']} kwok nodes, {s['jobs']} jobs | Dockyard | straight to the API |",
            "| --- | ---: | ---: |",
            f"| nodes created → Ready | {s['nodes_ready_seconds']:.1f} s | |",
            f"| apply (requests of 100) / create (one per job) | {s['apply_seconds']:.1f} s "
            f"| {d['create_seconds']:.1f} s |",
            f"| apply → all Running | {s['all_running_seconds']:.1f} s "
            f"| {d['all_running_seconds']:.1f} s |",
            f"| apply → pod bound, p50 / p99 | {s['apply_to_bound_s']['p50']:.2f} s / "
            f"{s['apply_to_bound_s']['p99']:.2f} s | p50 {d['bound_p50_s']:.2f} s |",
            f"| pods that sat Unschedulable | {s['unschedulable_pods']} | |",
            f"| one loop pass, p50 / p99 ({s['passes_run']} passes) | "
            f"{s['pass_ms']['p50']} ms / {s['pass_ms']['p99']} ms | |",
            f"| control-plane CPU | {s['control_plane_cpu_seconds']:.1f} s | |",
            f"| API server requests in that time (all clients) | {s['apiserver_requests']} | |",
            f"| a pass over {p['workloads']} workloads, watch cache | "
            f"{p['watch_cache']['requests']} requests, {p['watch_cache']['ms']:.1f} ms | |",
            f"| a pass, GET per workload (naive) | {p['get_per_workload']['requests']} requests, "
            f"{p['get_per_workload']['ms']:.0f} ms | |",
            "",
        ]
    if "mixed" in r:
        m = r["mixed"]
        dy, di = m["dockyard"], m["direct"]
        lines += [
            f"| {m['nodes']} nodes of mixed sizes, {m['jobs']} jobs of mixed needs "
            "| Dockyard | straight to kube-scheduler |",
            "| --- | ---: | ---: |",
            f"| apply → all ran | {dy['all_done_seconds']:.1f} s "
            f"| {di['all_done_seconds']:.1f} s |",
            f"| pods that sat Unschedulable | {dy['unschedulable_pods']} "
            f"| {di['unschedulable_pods']} |",
            f"| jobs failed | {dy['failed']} | |",
            f"| control-plane CPU | {dy['control_plane_cpu_seconds']:.1f} s | |",
            "",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", default="latency,scale,mixed")
    parser.add_argument("--jobs", type=int, default=30)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--scale-jobs", type=int, default=1000)
    parser.add_argument("--mixed-nodes", type=int, default=100)
    parser.add_argument("--mixed-jobs", type=int, default=500)
    parser.add_argument("--kubeconfig", type=Path, default=ROOT / ".cluster" / "kubeconfig")
    args = parser.parse_args()
    if not args.kubeconfig.exists():
        raise SystemExit(f"{args.kubeconfig} does not exist: run `make cluster` first")
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu, Python "
        f"{platform.python_version()}",
    }
    with (
        tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp,
        admin(args.kubeconfig) as kube,
    ):
        for part in args.part.split(","):
            if part == "latency":
                result["latency"] = run_latency(args, Path(tmp), kube)
            elif part == "scale":
                result["scale"] = run_scale(args, Path(tmp), kube)
            elif part == "mixed":
                result["mixed"] = run_mixed(args, Path(tmp), kube)
            print(f"{part}: {json.dumps(result.get(part), indent=1)}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"kubernetes-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    print(report(result))


if __name__ == "__main__":
    main()
