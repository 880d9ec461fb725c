"""Control-plane benchmark: apply → running latency, and API throughput for get/list.

    .venv/bin/python bench/control_plane.py [--jobs 100] [--seconds 5] [--database-url URL]

Starts a fresh server (its own DOCKYARD_HOME in a temporary directory, SQLite unless
--database-url), applies JOBS jobs one after the other and measures, for each:
  - apply → Running: from sending the apply request to the API reporting phase Running
    (the control loop scheduled it and the runtime started its process);
  - apply → executing: from sending the request to the job's first line of Python running.
Then it measures requests/s of GET one job and GET the list of all jobs, from 8 client
threads. Results are printed as a Markdown table and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def start_server(home: Path, database_url: str | None) -> tuple[subprocess.Popen[bytes], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_NODE_CPU="1000", DOCKYARD_LOG_LEVEL="warning")
    if database_url:
        env["DOCKYARD_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.api"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server_file = home / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server_file.exists():
            url = json.loads(server_file.read_text())["url"]
            try:
                if httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    raise SystemExit("server did not start")


def job_doc(name: str, marker: Path) -> dict[str, object]:
    code = f"import time; open({str(marker)!r}, 'w').write(repr(time.time())); time.sleep(1)"
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"command": ["python", "-c", code], "resources": {"cpu": 0.01}},
    }


def latency(client: httpx.Client, jobs: int, work: Path) -> tuple[list[float], list[float]]:
    to_running, to_exec = [], []
    for i in range(jobs):
        name, marker = f"bench-{i}", work / f"started-{i}"
        t0_wall, t0 = time.time(), time.perf_counter()
        client.post("/api/v1/apply", json={"documents": [job_doc(name, marker)]}).raise_for_status()
        while client.get(f"/api/v1/jobs/{name}").json()["status"].get("phase") != "Running":
            time.sleep(0.001)
        to_running.append((time.perf_counter() - t0) * 1000)
        while not marker.exists() or not marker.read_text():
            time.sleep(0.001)
        to_exec.append((float(marker.read_text()) - t0_wall) * 1000)
    return to_running, to_exec


def throughput(url: str, path: str, seconds: float, threads: int = 8) -> float:
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.perf_counter() < stop:
                c.get(path).raise_for_status()
                counts[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        work.mkdir()
        proc, url = start_server(home, args.database_url)
        try:
            with httpx.Client(base_url=url, timeout=30) as client:
                running, executing = latency(client, args.jobs, work)
                get_rps = throughput(url, "/api/v1/jobs/bench-0", args.seconds)
                list_rps = throughput(url, "/api/v1/jobs", args.seconds)
        finally:
            proc.terminate()
            proc.wait(120)
    result = {
        "jobs": args.jobs,
        "database": "postgresql" if args.database_url else "sqlite",
        "apply_to_running_ms": {
            "p50": percentile(running, 50),
            "p99": percentile(running, 99),
            "mean": statistics.mean(running),
        },
        "apply_to_executing_ms": {
            "p50": percentile(executing, 50),
            "p99": percentile(executing, 99),
            "mean": statistics.mean(executing),
        },
        "get_job_rps": get_rps,
        "list_jobs_rps": list_rps,
        "list_size": args.jobs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu, Python "
        f"{platform.python_version()}",
    }
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"control_plane-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    db = result["database"]
    print(
        "| metric | p50 | p99 |\n| --- | ---: | ---: |\n"
        f"| apply → Running ({args.jobs} jobs, {db}) | {percentile(running, 50):.0f} ms | "
        f"{percentile(running, 99):.0f} ms |\n"
        f"| apply → job code executing | {percentile(executing, 50):.0f} ms | "
        f"{percentile(executing, 99):.0f} ms |\n\n"
        "| API (8 client threads) | requests/s |\n| --- | ---: |\n"
        f"| GET /api/v1/jobs/NAME | {get_rps:.0f} |\n"
        f"| GET /api/v1/jobs ({args.jobs} items) | {list_rps:.0f} |"
    )


if __name__ == "__main__":
    main()
