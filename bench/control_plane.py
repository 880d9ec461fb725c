"""Control-plane benchmark: apply → running, a loop pass and a list at 1,000 resources, and the
time a replica takes to lead after the leader dies.

    .venv/bin/python bench/control_plane.py [--part latency,scale,takeover]
        [--jobs 100] [--seconds 5] [--resources 1000] [--passes 200] [--runs 5]
        [--database-url URL | --postgres]

latency   A fresh server (own DOCKYARD_HOME, local runtime) gets JOBS jobs one after the other:
          apply → Running (the API reports it) and apply → the job's first Python statement;
          then requests/s of GET one job and GET all jobs from 8 client threads.
scale     RESOURCES jobs really run (`true`) until all have succeeded, which leaves a store of
          RESOURCES idle resources with their workloads, events and tasks. Then one loop pass
          over them, PASSES times, timed in process (the server's own Controller.run_once on
          the same home and database), and GET /api/v1/jobs (all RESOURCES) PASSES times.
volumes   VOLUMES volumes applied (500 per request) and listed; the idle server's CPU over IDLE
          seconds; `dockyard delete -f` of all of them, until none is listed.
takeover  Two replicas (`dockyard server run`) on one database and one home, a 5 s leader lease:
          kill -9 the leader and time until the other reports leading — as two hosts (the
          lease must run out) and as one host (the dead holder is seen at once) — and a
          graceful stop (the lease is handed over). RUNS times each.

Results print as Markdown and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
LEASE = 5.0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def server_env(home: Path, database_url: str | None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_NODE_CPU="1000", DOCKYARD_LOG_LEVEL="warning")
    if database_url:
        env["DOCKYARD_DATABASE_URL"] = database_url
    env.update(extra)
    return env


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/api/v1/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def start_server(
    home: Path, database_url: str | None, **extra: str
) -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "dockyard.api"],
        env=server_env(home, database_url, **extra),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server_file = home / "server.json"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server_file.exists():
            url = json.loads(server_file.read_text())["url"]
            if healthy(url):
                return proc, url
        time.sleep(0.05)
    raise SystemExit("server did not start")


def api(url: str, home: Path, timeout: float = 30) -> httpx.Client:
    """A client of the server's API with its token (DOCKYARD_HOME/token)."""
    token = (home / "token").read_text().strip()
    return httpx.Client(base_url=url, timeout=timeout, headers={"authorization": f"Bearer {token}"})


def job_doc(name: str, command: list[str]) -> dict[str, Any]:
    return {
        "apiVersion": "dockyard.dev/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"command": command, "resources": {"cpu": 0.01}},
    }


# -- latency ---------------------------------------------------------------------------------
def latency(client: httpx.Client, jobs: int, work: Path) -> tuple[list[float], list[float]]:
    to_running, to_exec = [], []
    for i in range(jobs):
        name, marker = f"bench-{i}", work / f"started-{i}"
        code = f"import time; open({str(marker)!r}, 'w').write(repr(time.time())); time.sleep(1)"
        t0_wall, t0 = time.time(), time.perf_counter()
        doc = job_doc(name, ["python", "-c", code])
        client.post("/api/v1/apply", json={"documents": [doc]}).raise_for_status()
        while client.get(f"/api/v1/jobs/{name}").json()["status"].get("phase") != "Running":
            time.sleep(0.001)
        to_running.append((time.perf_counter() - t0) * 1000)
        while not marker.exists() or not marker.read_text():
            time.sleep(0.001)
        to_exec.append((float(marker.read_text()) - t0_wall) * 1000)
    return to_running, to_exec


def throughput(url: str, home: Path, path: str, seconds: float, threads: int = 8) -> float:
    counts = [0] * threads
    stop = time.perf_counter() + seconds

    def worker(i: int) -> None:
        with api(url, home) as c:
            while time.perf_counter() < stop:
                c.get(path).raise_for_status()
                counts[i] += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sum(counts) / seconds


def run_latency(args: argparse.Namespace, tmp: Path, database_url: str | None) -> dict[str, Any]:
    home, work = tmp / "latency", tmp / "latency-work"
    work.mkdir()
    proc, url = start_server(home, database_url)
    try:
        with api(url, home) as client:
            running, executing = latency(client, args.jobs, work)
            get_rps = throughput(url, home, "/api/v1/jobs/bench-0", args.seconds)
            list_rps = throughput(url, home, "/api/v1/jobs", args.seconds)
    finally:
        proc.terminate()
        proc.wait(120)
    return {
        "jobs": args.jobs,
        "apply_to_running_ms": summary(running),
        "apply_to_executing_ms": summary(executing),
        "get_job_rps": get_rps,
        "list_jobs_rps": list_rps,
    }


def summary(values: list[float]) -> dict[str, float]:
    return {
        "p50": percentile(values, 50),
        "p99": percentile(values, 99),
        "mean": statistics.mean(values),
    }


# -- scale -----------------------------------------------------------------------------------
def settle(url: str, home: Path, count: int) -> float:
    """Apply COUNT jobs that run `true`; wait until every one succeeded."""
    started = time.monotonic()
    with api(url, home, 120) as client:
        for first in range(0, count, 100):
            docs = [job_doc(f"idle-{i}", ["true"]) for i in range(first, min(first + 100, count))]
            client.post("/api/v1/apply", json={"documents": docs}).raise_for_status()
        while True:
            items = client.get("/api/v1/jobs").json()["items"]
            done = sum(1 for j in items if j["status"].get("phase") == "Succeeded")
            if done == count:
                return time.monotonic() - started
            failed = [j for j in items if j["status"].get("phase") == "Failed"]
            if failed:
                raise SystemExit(f"a job failed: {failed[0]['status']}")
            time.sleep(1)


def time_passes(home: Path, database_url: str | None, passes: int) -> list[float]:
    """Controller.run_once over the settled store, in this process, PASSES times."""
    os.environ.update(server_env(home, database_url))
    from dockyard.api.app import build_state
    from dockyard.settings import Settings

    state = build_state(Settings())
    try:
        for _ in range(5):  # warm-up: specs parsed, caches filled
            state.controller.run_once()
        durations = []
        for _ in range(passes):
            t0 = time.perf_counter()
            state.controller.run_once()
            durations.append((time.perf_counter() - t0) * 1000)
        return durations
    finally:
        state.controller.stop(stop_workloads=False)
        state.ctx.store.close()


def run_scale(args: argparse.Namespace, tmp: Path, database_url: str | None) -> dict[str, Any]:
    home = tmp / "scale"
    proc, url = start_server(home, database_url)
    try:
        settled = settle(url, home, args.resources)
        lists = []
        with api(url, home, 60) as client:
            for _ in range(args.passes):
                t0 = time.perf_counter()
                response = client.get("/api/v1/jobs")
                response.raise_for_status()
                lists.append((time.perf_counter() - t0) * 1000)
            assert len(response.json()["items"]) == args.resources
    finally:
        proc.terminate()
        proc.wait(120)
    passes = time_passes(home, database_url, args.passes)
    return {
        "resources": args.resources,
        "settle_seconds": settled,
        "pass_ms": summary(passes),
        "list_ms": summary(lists),
    }


# -- volumes: many resources applied, listed, deleted; the idle server's CPU ----------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_volumes(args: argparse.Namespace, tmp: Path, database_url: str | None) -> dict[str, Any]:
    home = tmp / "volumes"
    proc, url = start_server(home, database_url)
    count = args.volumes
    docs = [
        {
            "apiVersion": "dockyard.dev/v1",
            "kind": "Volume",
            "metadata": {"name": f"v{i}"},
            "spec": {},
        }
        for i in range(count)
    ]
    try:
        with api(url, home, 300) as client:
            t0 = time.perf_counter()
            for first in range(0, count, 500):
                batch = {"documents": docs[first : first + 500]}
                client.post("/api/v1/apply", json=batch).raise_for_status()
            applied = time.perf_counter() - t0
            while (
                sum(
                    1
                    for v in client.get("/api/v1/volumes").json()["items"]
                    if v["status"].get("phase") == "Ready"
                )
                < count
            ):
                time.sleep(1)
            t0 = time.perf_counter()
            assert len(client.get("/api/v1/volumes").json()["items"]) == count
            listed = time.perf_counter() - t0
            time.sleep(5)  # the last usage measurements end
            before, t0 = cpu_seconds(proc.pid), time.perf_counter()
            time.sleep(args.idle)
            idle = (cpu_seconds(proc.pid) - before) / (time.perf_counter() - t0)
            path = tmp / "volumes.yaml"
            path.write_text("\n---\n".join(json.dumps(d) for d in docs))
            env = server_env(home, database_url, DOCKYARD_URL=url)
            t0 = time.perf_counter()
            subprocess.run(
                [sys.executable, "-m", "dockyard.cli.main", "delete", "-f", str(path)],
                env=env, check=True, stdout=subprocess.DEVNULL, timeout=600,
            )  # fmt: skip
            deleted = time.perf_counter() - t0
            assert client.get("/api/v1/volumes").json()["items"] == []
    finally:
        proc.terminate()
        proc.wait(120)
    return {
        "volumes": count,
        "apply_seconds": applied,
        "list_seconds": listed,
        "idle_cpu_fraction": idle,
        "delete_seconds": deleted,
    }


# -- takeover --------------------------------------------------------------------------------
@contextlib.contextmanager
def replicas(
    tmp: Path, database_url: str | None, hosts: tuple[str, str]
) -> Iterator[list[tuple[subprocess.Popen[bytes], str]]]:
    home = tmp / f"takeover-{time.monotonic_ns()}"
    home.mkdir()
    started = []
    for host in hosts:
        port = free_port()
        env = server_env(
            home, database_url, DOCKYARD_LEADER_LEASE_SECONDS=str(LEASE), DOCKYARD_HOST_ID=host
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "dockyard.cli.main", "server", "run", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        started.append((proc, f"http://127.0.0.1:{port}"))
    try:
        for _, url in started:
            wait(lambda u=url: healthy(u), 60)
        yield started
    finally:
        for proc, _ in started:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(30)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.01)
    raise SystemExit("timed out")


def leading(url: str) -> bool:
    try:
        return bool(httpx.get(f"{url}/api/v1/healthz", timeout=2).json()["controller"]["leader"])
    except (httpx.HTTPError, ValueError):
        return False


def one_takeover(tmp: Path, database_url: str | None, hosts: tuple[str, str], how: str) -> float:
    with replicas(tmp, database_url, hosts) as pair:
        wait(lambda: sum(leading(u) for _, u in pair) == 1, 60)
        time.sleep(LEASE / 5 * 2)  # the follower has seen the lease renewed
        (leader, _), (_, survivor) = sorted(pair, key=lambda p: not leading(p[1]))
        if how == "kill":
            os.killpg(leader.pid, signal.SIGKILL)
        else:
            leader.send_signal(signal.SIGTERM)
        gone = time.monotonic()
        if how == "kill":
            leader.wait(10)  # reaped, as its parent (a shell, systemd) would
        wait(lambda: leading(survivor), LEASE * 4)
        return time.monotonic() - gone


def run_takeover(args: argparse.Namespace, tmp: Path, database_url: str | None) -> dict[str, Any]:
    cases = {
        "kill -9, two hosts (the lease runs out)": (("host-a", "host-b"), "kill"),
        "kill -9, one host (the dead holder is seen)": (("host", "host"), "kill"),
        "graceful stop (the lease is handed over)": (("host-a", "host-b"), "term"),
    }
    out: dict[str, Any] = {"lease_seconds": LEASE}
    for name, (hosts, how) in cases.items():
        times = [one_takeover(tmp, database_url, hosts, how) for _ in range(args.runs)]
        out[name] = {"median_s": statistics.median(times), "max_s": max(times), "runs": times}
    return out


# -- main --------------------------------------------------------------------------------------
@contextlib.contextmanager
def database(args: argparse.Namespace) -> Iterator[str | None]:
    if not args.postgres:
        yield args.database_url
        return
    from tests.pg import pg_bin, throwaway_postgres

    bindir = pg_bin()
    if bindir is None:
        raise SystemExit("--postgres needs Debian's postgresql package")
    with throwaway_postgres(bindir) as url:
        yield url


def fresh_database(base: str | None, name: str) -> str | None:
    """A new database per part on a PostgreSQL server (SQLite: a file per home)."""
    if base is None or not base.startswith("postgres"):
        return base
    import psycopg

    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return base.rsplit("/", 1)[0] + f"/{name}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--part", default="latency,scale,volumes,takeover")
    parser.add_argument("--volumes", type=int, default=5000)
    parser.add_argument("--idle", type=float, default=30.0, help="seconds of idle CPU measured")
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--resources", type=int, default=1000)
    parser.add_argument("--passes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--postgres", action="store_true", help="start a throwaway PostgreSQL")
    args = parser.parse_args()
    parts = args.part.split(",")
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cpu, Python "
        f"{platform.python_version()}",
    }
    with tempfile.TemporaryDirectory(prefix="dockyard-bench-") as tmp, database(args) as db:
        result["database"] = "postgresql" if db and db.startswith("postgres") else "sqlite"
        runs = {
            "latency": run_latency,
            "scale": run_scale,
            "volumes": run_volumes,
            "takeover": run_takeover,
        }
        for part in parts:
            part_db = fresh_database(db, f"bench_{part}_{os.getpid()}")
            result[part] = runs[part](args, Path(tmp), part_db)
            print(f"{part}: {json.dumps(result[part], indent=1)}", flush=True)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"control_plane-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    print(report(result))


def report(r: dict[str, Any]) -> str:
    lines = [f"{r['machine']}, {r['database']}", ""]
    if "latency" in r:
        lat = r["latency"]
        lines += [
            "| metric | p50 | p99 |",
            "| --- | ---: | ---: |",
            f"| apply → Running ({lat['jobs']} jobs) | {lat['apply_to_running_ms']['p50']:.0f} ms "
            f"| {lat['apply_to_running_ms']['p99']:.0f} ms |",
            f"| apply → job code executing | {lat['apply_to_executing_ms']['p50']:.0f} ms | "
            f"{lat['apply_to_executing_ms']['p99']:.0f} ms |",
            f"| GET one job, 8 threads | {lat['get_job_rps']:.0f} req/s | |",
            f"| GET all {lat['jobs']} jobs, 8 threads | {lat['list_jobs_rps']:.0f} req/s | |",
            "",
        ]
    if "scale" in r:
        s = r["scale"]
        lines += [
            f"| {s['resources']} idle resources | p50 | p99 |",
            "| --- | ---: | ---: |",
            f"| one loop pass | {s['pass_ms']['p50']:.1f} ms | {s['pass_ms']['p99']:.1f} ms |",
            f"| GET /api/v1/jobs ({s['resources']} items) | {s['list_ms']['p50']:.1f} ms | "
            f"{s['list_ms']['p99']:.1f} ms |",
            "",
        ]
    if "volumes" in r:
        v = r["volumes"]
        lines += [
            f"| {v['volumes']} volumes | |",
            "| --- | ---: |",
            f"| apply (batches of 500) | {v['apply_seconds']:.1f} s |",
            f"| GET /api/v1/volumes | {v['list_seconds'] * 1000:.0f} ms |",
            f"| idle server, CPU | {v['idle_cpu_fraction'] * 100:.2f} % of a core |",
            f"| `dockyard delete -f` of all, until gone | {v['delete_seconds']:.1f} s |",
            "",
        ]
    if "takeover" in r:
        t = r["takeover"]
        lines += [
            f"| leader gone ({t['lease_seconds']:g} s lease) | median | max |",
            "| --- | ---: | ---: |",
        ]
        for name, v in t.items():
            if isinstance(v, dict):
                lines.append(f"| {name} | {v['median_s']:.2f} s | {v['max_s']:.2f} s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
