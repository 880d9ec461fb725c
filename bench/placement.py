"""Placement extender benchmark: the scheduler's requests for one pod over many nodes.

    .venv/bin/python bench/placement.py [--nodes 5000] [--calls 200] [--needs 2]

A synthetic cluster of NODES nodes (3 regions x 3 zones x 10 racks; each node with the usual
labels and what it holds of 200 dataset versions, each held by 3 nodes) is the extender's
node-label source. The extender's router runs in a real uvicorn server in its own process
(as in the control plane: the errors' handlers, one worker); one client posts the
kube-scheduler's ExtenderArgs, CALLS times after a warm-up, and times each answer:

- /prioritize, NodeNames (``nodeCacheCapable: true``, the testbed's configuration): a pod
  needing NEEDS datasets, every node a candidate — the target is p99 <= 50 ms;
- /prioritize, Node objects (``nodeCacheCapable: false``): the same with every Node object
  in the body (~1.3 KB each, as a kwok node's);
- /filter, NodeNames; and /prioritize for a pod without needs (the floor);
- in process, no HTTP: the index of the source built once (a new node list), and one
  prioritize computed.

Results print as Markdown and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.control_plane import percentile  # noqa: E402
from dockyard.placement import labels as pl  # noqa: E402
from dockyard.placement.labels import Need, needs_annotation  # noqa: E402

DATASETS = 200
COPIES = 3


def dataset(i: int) -> Need:
    return Need(kind="Dataset", project="bench", name=f"set-{i}", version=f"sha256:{i:064x}")


def cluster(nodes: int, seed: int) -> dict[str, dict[str, str]]:
    """{name: labels} of a synthetic cluster, the same for the same arguments."""
    rng = random.Random(seed)
    out: dict[str, dict[str, str]] = {}
    for i in range(nodes):
        name = f"node-{i:05d}"
        region, zone, rack = i % 3, (i // 3) % 3, (i // 9) % 10
        out[name] = {
            "kubernetes.io/hostname": name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "node.kubernetes.io/instance-type": "m5.2xlarge",
            "type": "kwok",
            pl.REGION: f"region-{region}",
            pl.ZONE: f"region-{region}-{'abc'[zone]}",
            pl.RACK: f"rack-{rack:02d}",
        }
    names = list(out)
    for i in range(DATASETS):
        for name in rng.sample(names, COPIES):
            out[name][dataset(i).label] = pl.HOLDS
    return out


def node_object(name: str, labels: dict[str, str]) -> dict[str, Any]:
    """A Node as the API server answers it for a kwok node (what the scheduler sends)."""
    return {
        "metadata": {
            "name": name,
            "uid": f"7f1c2d3e-0000-4000-8000-{int(name[5:]):012d}",
            "resourceVersion": "123456",
            "creationTimestamp": "2026-12-01T12:00:00Z",
            "labels": labels,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {},
        "status": {
            "capacity": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "allocatable": {"cpu": "8", "memory": "32Gi", "pods": "110"},
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "lastHeartbeatTime": "2026-12-01T12:00:00Z",
                    "lastTransitionTime": "2026-12-01T12:00:00Z",
                    "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                }
            ],
            "addresses": [{"type": "InternalIP", "address": "10.0.0.1"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "kubeletVersion": "fake",
                "operatingSystem": "linux",
                "containerRuntimeVersion": "",
                "kernelVersion": "",
                "osImage": "",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kubeProxyVersion": "",
            },
        },
    }


def pod(needs: list[Need]) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "train-0",
            "namespace": "bench",
            "uid": "0e7b1c2d-0000-4000-8000-000000000001",
            "annotations": needs_annotation(needs),
            "labels": {"dockyard.dev/kind": "job"},
        },
        "spec": {
            "containers": [
                {"name": "main", "image": "busybox", "resources": {"requests": {"cpu": "1"}}}
            ],
            "schedulerName": "default-scheduler",
        },
        "status": {"phase": "Pending"},
    }


# -- the server process --------------------------------------------------------------------
def serve(port: int, nodes: int, seed: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    from dockyard.api import errors
    from dockyard.placement.extender import extender_router

    labels = cluster(nodes, seed)
    app = FastAPI()
    errors.install(app)
    app.include_router(extender_router(lambda: labels))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start(nodes: int, seed: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    argv = [sys.executable, __file__, "--serve", str(port), "--nodes", str(nodes)]
    proc = subprocess.Popen([*argv, "--seed", str(seed)])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return proc, url
        if proc.poll() is not None:
            raise SystemExit("the extender did not start")
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("the extender did not start within 60 s")


# -- the client ----------------------------------------------------------------------------
def timed(client: httpx.Client, path: str, body: bytes, calls: int) -> dict[str, Any]:
    headers = {"content-type": "application/json"}
    for _ in range(max(10, calls // 10)):  # warm-up: connections, the source's index
        client.post(path, content=body, headers=headers).raise_for_status()
    times = []
    answer = b""
    for _ in range(calls):
        t0 = time.perf_counter()
        response = client.post(path, content=body, headers=headers)
        answer = response.content
        times.append((time.perf_counter() - t0) * 1000)
        response.raise_for_status()
    return {
        "p50_ms": percentile(times, 50),
        "p99_ms": percentile(times, 99),
        "max_ms": max(times),
        "request_bytes": len(body),
        "answer_bytes": len(answer),
        "calls": calls,
    }


def in_process(nodes: int, seed: int, needs: list[Need], calls: int) -> dict[str, float]:
    from dockyard.placement.extender import Extender, _Index

    labels = cluster(nodes, seed)
    t0 = time.perf_counter()
    _Index(labels)
    index_ms = (time.perf_counter() - t0) * 1000
    extender = Extender(lambda: labels)
    body = orjson.dumps({"Pod": pod(needs), "Nodes": None, "NodeNames": list(labels)})
    extender.prioritize(body)  # builds the index
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        extender.prioritize(body)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "index_ms": index_ms,
        "prioritize_p50_ms": percentile(times, 50),
        "prioritize_p99_ms": percentile(times, 99),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=5000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--needs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.nodes, args.seed)
        return
    labels = cluster(args.nodes, args.seed)
    names = list(labels)
    needs = [dataset(i) for i in range(args.needs)]
    cached = orjson.dumps({"Pod": pod(needs), "Nodes": None, "NodeNames": names})
    objects = [node_object(n, labels[n]) for n in names]
    full = orjson.dumps({"Pod": pod(needs), "Nodes": {"metadata": {}, "items": objects}})
    plain = orjson.dumps({"Pod": pod([]), "Nodes": None, "NodeNames": names})
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "nodes": args.nodes,
        "needs": args.needs,
        "when": time.strftime("%Y-%m-%d"),
    }
    proc, url = start(args.nodes, args.seed)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            result["prioritize_names"] = timed(client, "/placement/prioritize", cached, args.calls)
            result["prioritize_objects"] = timed(client, "/placement/prioritize", full, args.calls)
            result["filter_names"] = timed(client, "/placement/filter", cached, args.calls)
            result["prioritize_no_needs"] = timed(
                client, "/placement/prioritize", plain, args.calls
            )
    finally:
        proc.terminate()
        proc.wait(10)
    result["in_process"] = in_process(args.nodes, args.seed, needs, args.calls)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"placement-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    rows = [
        ("prioritize_names", "/prioritize, NodeNames (nodeCacheCapable)"),
        ("prioritize_objects", "/prioritize, Node objects"),
        ("filter_names", "/filter, NodeNames"),
        ("prioritize_no_needs", "/prioritize, a pod without needs"),
    ]
    lines = [
        f"{r['machine']}, {r['nodes']:,} nodes, a pod needing {r['needs']} datasets, {r['when']}",
        "",
        "| request | body | p50 | p99 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for key, title in rows:
        m = r[key]
        size = f"{m['request_bytes'] / 1024:,.0f} KiB"
        lines.append(f"| {title} | {size} | {m['p50_ms']:.1f} ms | {m['p99_ms']:.1f} ms |")
    p = r["in_process"]
    lines += [
        "",
        f"In process: the source's index of {r['nodes']:,} nodes built in {p['index_ms']:.1f} ms "
        f"(once per node list); one prioritize {p['prioritize_p50_ms']:.1f} ms p50, "
        f"{p['prioritize_p99_ms']:.1f} ms p99.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
