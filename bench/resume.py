"""Resume benchmark: the digits example's training, uninterrupted against killed mid-way.

    .venv/bin/python bench/resume.py [--epochs 30] [--fail-at 15] [--runs 3]
        [--part direct,dockyard]

Three ways to train examples/digits/code/train.py for EPOCHS epochs, RUNS times each (taken
in turn, so a change of load hits all three alike):

  uninterrupted   one run;
  resumed         the first attempt is killed (SIGKILL) while it writes the checkpoint of
                  epoch FAIL_AT, the second goes on from the newest complete checkpoint;
  from scratch    the same kill, but the second attempt finds no checkpoint (what a job
                  without `checkpoint:` does): it trains all epochs again.

direct     the script run as Dockyard runs it (the same variables), one process per attempt;
           total = the wall time of all attempts.
dockyard   the same as jobs of a fresh local server (its own DOCKYARD_HOME, retry without
           backoff): total = first attempt started → last attempt finished, as the server
           recorded them, and apply → Succeeded.

Every way must end with the same accuracy (the script is deterministic). Results print as
Markdown and are saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CODE = ROOT / "examples" / "digits" / "code"
sys.path.insert(0, str(ROOT))
from bench.control_plane import start_server  # noqa: E402

WAYS = ("uninterrupted", "resumed", "from scratch")


def prepare(data: Path) -> None:
    """digits.csv as the example's Dataset writes it."""
    data.mkdir()
    env = {**os.environ, "DOCKYARD_OUTPUT_DIR": str(data)}
    subprocess.run([sys.executable, str(CODE / "prepare.py")], env=env, check=True, timeout=300)


def cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def attempt(work: Path, number: int, args: argparse.Namespace, fail: bool) -> tuple[float, float]:
    """One attempt of train.py as a Dockyard job attempt sees it: (wall, CPU) seconds."""
    out = work / f"out-{number}"
    out.mkdir()
    env = {
        **os.environ,
        "DOCKYARD_DATA_DIGITS": str(work.parent / "data"),
        "DOCKYARD_OUTPUT_DIR": str(out),
        "DOCKYARD_CHECKPOINT_DIR": str(work / "checkpoints"),
        "DOCKYARD_ATTEMPT": str(number),
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
    }
    command = [sys.executable, "train.py", "--epochs", str(args.epochs)]
    if fail:
        command += ["--fail-at-epoch", str(args.fail_at)]
    started, cpu = time.perf_counter(), cpu_of_children()
    proc = subprocess.run(
        command, cwd=CODE, env=env, capture_output=True, text=True, timeout=600, check=False
    )
    seconds, cpu = time.perf_counter() - started, cpu_of_children() - cpu
    expected = -9 if fail and number == 1 else 0
    if proc.returncode != expected:
        raise SystemExit(f"attempt {number} exited {proc.returncode}: {proc.stderr[-2000:]}")
    return seconds, cpu


def direct_once(base: Path, way: str, args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(dir=base, prefix="run-"))
    fail = way != "uninterrupted"
    times = [attempt(work, 1, args, fail)]
    if fail:
        if way == "from scratch":
            shutil.rmtree(work / "checkpoints")
        times.append(attempt(work, 2, args, fail))
    last = len(times)
    metrics = json.loads((work / f"out-{last}" / "metrics.json").read_text())
    shutil.rmtree(work)
    trained = args.epochs - (metrics["resumed_from"] or 0)
    if fail:
        trained += args.fail_at
    return {
        "total_s": sum(t for t, _ in times),
        "cpu_s": sum(c for _, c in times),
        "attempts_s": [t for t, _ in times],
        "epochs_trained": trained,
        "accuracy": metrics["accuracy"],
    }


def run_direct(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    found: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    for _ in range(args.runs):
        for way in WAYS:
            found[way].append(direct_once(base, way, args))
    return summarize(found)


def summarize(found: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for way, runs in found.items():
        totals, cpus = [r["total_s"] for r in runs], [r["cpu_s"] for r in runs]
        out[way] = {
            "total_s": {"median": statistics.median(totals), "min": min(totals)},
            "cpu_s": {"median": statistics.median(cpus), "min": min(cpus)},
            "epochs_trained": runs[0]["epochs_trained"],
            "accuracy": sorted({r["accuracy"] for r in runs}),
            "runs": runs,
        }
    accuracies = {tuple(v["accuracy"]) for v in out.values()}
    if len(accuracies) != 1:
        raise SystemExit(f"the ways ended with different accuracies: {accuracies}")
    return out


# -- through a local server --------------------------------------------------------------------
def run_dockyard(args: argparse.Namespace, base: Path) -> dict[str, Any]:
    from dockyard.client import Client
    from dockyard.data.code import pack
    from dockyard.settings import Settings

    home = base / "home"
    proc, _url = start_server(
        home, None, DOCKYARD_FILE_SOURCES=str(base), DOCKYARD_RESYNC_SECONDS="0.2"
    )
    found: dict[str, list[dict[str, Any]]] = {way: [] for way in WAYS}
    try:
        with Client(settings=Settings(home=home), autostart=False, timeout=60) as c:
            code = c.upload_code(pack(CODE))
            c.apply(
                [
                    doc("Volume", "data", {}),
                    doc("Volume", "ckpt", {}),
                    doc(
                        "Dataset", "digits", {"volume": "data", "source": (base / "data").as_uri()}
                    ),
                ]
            )
            c.wait("Dataset", "digits", timeout=120)
            for run in range(args.runs):
                for way in WAYS:  # one job at a time: the jobs never share the CPUs
                    found[way].append(dockyard_once(c, code, way, run, args))
    finally:
        proc.terminate()
        proc.wait(60)
    return summarize(found)


def doc(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "dockyard.dev/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def dockyard_once(
    c: Any, code: str, way: str, run: int, args: argparse.Namespace
) -> dict[str, Any]:
    name = f"{way.replace(' ', '-')}-{run}"
    spec: dict[str, Any] = {
        "code": code,
        "command": ["python", "train.py", "--epochs", str(args.epochs)],
        "datasets": [{"name": "digits"}],
        "resources": {"cpu": 1},
        "retry": {"limit": 1, "backoffSeconds": 0},
    }
    if way != "from scratch":
        spec["checkpoint"] = {"volume": "ckpt"}
    if way != "uninterrupted":
        spec["env"] = {"DOCKYARD_EXAMPLE_FAIL_AT": str(args.fail_at)}
    applied = time.perf_counter()
    c.apply([doc("Job", name, spec)])
    job = c.wait("Job", name, timeout=600)
    wall = time.perf_counter() - applied
    if job["status"]["phase"] != "Succeeded":
        raise SystemExit(f"job {name}: {job['status']}")
    attempts = c.workloads("Job", name)
    start = datetime.fromisoformat(attempts[0]["startedAt"].replace("Z", "+00:00"))
    end = datetime.fromisoformat(attempts[-1]["finishedAt"].replace("Z", "+00:00"))
    lines = b"".join(c.logs("Job", name, attempt=len(attempts))).decode().splitlines()
    accuracy = float(next(x for x in lines if x.startswith("accuracy ")).split()[1].rstrip(","))
    resumed = [x for x in lines if x.startswith("resuming from checkpoint")]
    trained = sum(
        1
        for n in range(1, len(attempts) + 1)
        for x in b"".join(c.logs("Job", name, attempt=n)).decode().splitlines()
        if ": checkpoint epoch-" in x or "killed while writing" in x
    )
    usage = [(a.get("details") or {}).get("usage") or {} for a in attempts]
    return {
        "total_s": (end - start).total_seconds(),
        "cpu_s": sum(float(u.get("cpuSeconds", 0.0)) for u in usage),
        "apply_to_succeeded_s": wall,
        "attempts": len(attempts),
        "epochs_trained": trained,
        "resumed": resumed[0] if resumed else None,
        "accuracy": accuracy,
    }


def report(r: dict[str, Any]) -> str:
    lines = [f"{r['machine']}; {r['epochs']} epochs, killed at epoch {r['fail_at']}", ""]
    for part in ("direct", "dockyard"):
        if part not in r:
            continue
        lines += [
            f"{part}:",
            "",
            "| way | epochs trained | total (median) | min | CPU (median) | accuracy |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for way in WAYS:
            v = r[part][way]
            lines.append(
                f"| {way} | {v['epochs_trained']} | {v['total_s']['median']:.2f} s | "
                f"{v['total_s']['min']:.2f} s | {v['cpu_s']['median']:.2f} s | "
                f"{', '.join(str(a) for a in v['accuracy'])} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--fail-at", type=int, default=15)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--part", default="direct,dockyard")
    args = parser.parse_args()
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
        f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}",
        "epochs": args.epochs,
        "fail_at": args.fail_at,
    }
    with tempfile.TemporaryDirectory(prefix="dockyard-resume-") as tmp:
        base = Path(tmp)
        prepare(base / "data")
        runs = {"direct": run_direct, "dockyard": run_dockyard}
        for part in args.part.split(","):
            result[part] = runs[part](args, base)
            print(f"{part}: done", flush=True)
    result["load_after"] = os.getloadavg()[0]
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"resume-{int(time.time())}.json").write_text(json.dumps(result, indent=2))
    print(report(result))


if __name__ == "__main__":
    main()
