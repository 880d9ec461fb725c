"""Container benchmark: apply → container job running, and image rebuilds on a cache hit.

    .venv/bin/python bench/containers.py [--jobs 20] [--engine podman]

Needs Podman (or Docker) and the base image (deploy/podman/base-image.sh builds it where no
registry can be reached; set DOCKYARD_BASE_IMAGE to use another). Starts a fresh server with
the container runtime and measures, for JOBS jobs applied one after the other:
  - apply → Running: until the API reports the job Running (the container was created and
    started by the engine);
  - apply → executing: until the job's first Python statement ran inside the container;
and the time to "build" an unchanged environment again (Dockyard's content-hash cache hit),
next to the engine's own layer-cached rebuild of the same Containerfile for comparison; and
one observation pass over RUNNING (default 10) running containers: one `ps` for the pass (what
the runtime does) against one `inspect` per container.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "podman" / "containers.conf"
BASE = os.environ.get("DOCKYARD_BASE_IMAGE", "localhost/dockyard/base:bookworm")
sys.path.insert(0, str(ROOT))
from bench.control_plane import percentile  # noqa: E402
from dockyard.client import Client  # noqa: E402
from dockyard.settings import Settings  # noqa: E402


def start_server(home: Path, engine: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        DOCKYARD_HOME=str(home),
        DOCKYARD_RUNTIME=engine,
        DOCKYARD_NODE_CPU="1000",
        DOCKYARD_CONTAINERS_CONF=str(CONF),
        DOCKYARD_BASE_IMAGE=BASE,
        DOCKYARD_LOG_LEVEL="warning",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "dockyard.api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def observe_pass(engine: str, running: int, passes: int = 10) -> dict[str, float]:
    """Median ms of one pass of ``observe`` over ``running`` containers, two ways."""
    from dockyard.runtimes.base import WorkloadRequest
    from dockyard.runtimes.oci import OciRuntime

    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        settings = Settings(home=Path(tmp), runtime=engine, containers_conf=CONF, base_image=BASE)
        runtime = OciRuntime(settings, engine)
        ids = [f"bench-observe-{os.getpid()}-{i}" for i in range(running)]
        try:
            sleep = ["python", "-c", "import time; time.sleep(600)"]
            for wid in ids:
                runtime.start(WorkloadRequest(wid, sleep))
            snapshot, inspect = [], []
            for _ in range(passes):
                runtime._changed()  # a new pass: the last `ps` is too old
                t0 = time.perf_counter()
                assert all(runtime.observe(w).phase.value == "Running" for w in ids)
                snapshot.append((time.perf_counter() - t0) * 1000)
                t0 = time.perf_counter()
                for wid in ids:
                    runtime.engine.inspect(wid)
                inspect.append((time.perf_counter() - t0) * 1000)
        finally:
            for wid in ids:
                runtime.remove(wid)
    return {
        "containers": running,
        "one_ps_ms": statistics.median(snapshot),
        "inspect_each_ms": statistics.median(inspect),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--rebuilds", type=int, default=10)
    parser.add_argument("--engine", default="podman")
    parser.add_argument("--running", type=int, default=10)
    args = parser.parse_args()
    subprocess.run(
        [str(ROOT / "deploy" / "podman" / "base-image.sh"), BASE],
        check=True,
        env={**os.environ, "CONTAINERS_CONF": str(CONF)},
    )
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        home = Path(tmp) / "home"
        proc = start_server(home, args.engine)
        try:
            deadline = time.monotonic() + 60
            while not (home / "server.json").exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            client = Client(settings=Settings(home=home), autostart=False)
            doc = {
                "apiVersion": "dockyard.dev/v1",
                "kind": "Environment",
                "metadata": {"name": "bench"},
                "spec": {},
            }
            client.apply(
                [
                    doc,
                    {
                        "apiVersion": "dockyard.dev/v1",
                        "kind": "Volume",
                        "metadata": {"name": "marks"},
                        "spec": {},
                    },
                ]
            )
            image = client.build_image("bench", runtime=args.engine)["image"]  # not measured
            hits = []
            for _ in range(args.rebuilds):
                t0 = time.perf_counter()
                lines: list[str] = []
                client.build_image("bench", runtime=args.engine, progress=lines.append)
                hits.append(time.perf_counter() - t0)
                assert lines == ["cached"], lines
            containerfile = client.containerfile("bench", runtime=args.engine)
            engine_hits = []
            with tempfile.TemporaryDirectory() as ctx:
                Path(ctx, "Containerfile").write_text(containerfile)
                Path(ctx, "requirements.txt").write_text("\n")
                for _ in range(3):
                    t0 = time.perf_counter()
                    subprocess.run(
                        [args.engine, "build", "-q", "-t", "dockyard-bench-rebuild", ctx],
                        check=True,
                        capture_output=True,
                        env={**os.environ, "CONTAINERS_CONF": str(CONF)},
                    )
                    engine_hits.append(time.perf_counter() - t0)
            marks = home / "volumes" / "default" / "marks"
            running, executing = [], []
            for i in range(args.jobs):
                code = (
                    f"import os, time; open(os.environ['DOCKYARD_VOLUME_MARKS'] + "
                    f"'/started-{i}', 'w').write(repr(time.time())); time.sleep(1)"
                )
                job = {
                    "apiVersion": "dockyard.dev/v1",
                    "kind": "Job",
                    "metadata": {"name": f"bench-{i}"},
                    "spec": {
                        "environment": "bench",
                        "command": ["python", "-c", code],
                        "volumes": [{"name": "marks"}],
                        "resources": {"cpu": 0.01},
                    },
                }
                t_wall, t0 = time.time(), time.perf_counter()
                client.apply([job])
                while client.get("Job", f"bench-{i}")["status"].get("phase") not in (
                    "Running",
                    "Succeeded",
                    "Failed",
                ):
                    time.sleep(0.005)
                running.append((time.perf_counter() - t0) * 1000)
                mark = marks / f"started-{i}"
                while not mark.exists() or not mark.read_text():
                    time.sleep(0.005)
                executing.append((float(mark.read_text()) - t_wall) * 1000)
            for i in range(args.jobs):
                client.delete("Job", f"bench-{i}")
        finally:
            proc.terminate()
            proc.wait(300)
    observed = observe_pass(args.engine, args.running)
    result = {
        "observe_pass": observed,
        "engine": args.engine,
        "image": image,
        "jobs": args.jobs,
        "apply_to_running_ms": {"p50": percentile(running, 50), "p99": percentile(running, 99)},
        "apply_to_executing_ms": {
            "p50": percentile(executing, 50),
            "p99": percentile(executing, 99),
        },
        "cache_hit_ms": {"p50": statistics.median(hits) * 1000, "max": max(hits) * 1000},
        "engine_rebuild_s": statistics.median(engine_hits),
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"containers-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    r, e, c = result["apply_to_running_ms"], result["apply_to_executing_ms"], result["cache_hit_ms"]
    print(
        f"| metric ({args.engine}) | p50 | p99 / max |\n| --- | ---: | ---: |\n"
        f"| apply → Running ({args.jobs} jobs) | {r['p50']:.0f} ms | {r['p99']:.0f} ms |\n"
        f"| apply → job code executing | {e['p50']:.0f} ms | {e['p99']:.0f} ms |\n"
        f"| environment image again (Dockyard's cache hit) | {c['p50']:.0f} ms | "
        f"{c['max']:.0f} ms |\n"
        f"| the engine's own rebuild, all layers cached | "
        f"{result['engine_rebuild_s']:.2f} s | |\n"
        f"| observing {args.running} running containers: one `ps` per pass | "
        f"{observed['one_ps_ms']:.0f} ms | |\n"
        f"| … one `inspect` per container (before) | {observed['inspect_each_ms']:.0f} ms | |"
    )


if __name__ == "__main__":
    main()
