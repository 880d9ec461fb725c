"""Serving benchmark: Dockyard against MLServer, BentoML and a plain FastAPI endpoint.

    .venv/bin/python bench/serving/run.py                 # everything (~25 min on 2 cores)
    .venv/bin/python bench/serving/run.py --quick         # 1 run of 5 s per point
    .venv/bin/python bench/serving/run.py --servers dockyard,mlserver --models rf

Same machine, same scikit-learn models (digits: LogisticRegression and a 100-tree
RandomForest, trained here with the scikit-learn of this environment and pinned to the same
version in every server's environment), single-sample requests, load from a separate `wrk`
process on 127.0.0.1 at 1, 16 and 64 connections, 3 runs each, median. MLServer and BentoML
are installed by this script in their own virtual environments under bench/.venvs/.
Also measured: the in-process predict() time (the floor), the first start (process start →
first successful prediction, Dockyard's compile cache empty) and the cold start (the same for
a new process afterwards, e.g. a restart or another replica: median of 3). Results:
bench/results/serving-*.json and a Markdown summary on stdout (copied into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
WORK = ROOT / "bench" / ".work"
VENVS = ROOT / "bench" / ".venvs"
RESULTS = ROOT / "bench" / "results"
COMPILE_CACHE = WORK / "compile-cache"  # Dockyard's; emptied before each first start


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def sklearn_version() -> str:
    import sklearn

    return str(sklearn.__version__)


def pip_install(venv: Path, packages: list[str]) -> Path:
    python = venv / "bin" / "python"
    marker = venv / ".bench-installed"
    wanted = "\n".join(packages)
    if marker.exists() and marker.read_text() == wanted:
        return python
    print(f"installing {' '.join(packages)} into {venv} …", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *packages],
        check=True,
    )
    marker.write_text(wanted)
    return python


def train_models() -> dict[str, Path]:
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    WORK.mkdir(parents=True, exist_ok=True)
    x, y = load_digits(return_X_y=True)
    paths = {}
    for name, model in (
        ("lr", LogisticRegression(max_iter=5000)),
        ("rf", RandomForestClassifier(n_estimators=100, random_state=0)),
    ):
        path = WORK / "models" / name / "model.joblib"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            joblib.dump(model.fit(x, y), path)
        paths[name] = path
    sample = [float(v) for v in x[0]]
    oip = {"inputs": [{"name": "input-0", "shape": [1, 64], "datatype": "FP64", "data": sample}]}
    (WORK / "oip.json").write_text(json.dumps(oip))
    (WORK / "bento.json").write_text(json.dumps({"input": [sample]}))
    return paths


def floor_ms(path: Path) -> dict[str, float]:
    """In-process predict() of one sample: scikit-learn, and Dockyard's runtime for it."""
    import joblib

    from dockyard.serving.runtimes.sklearn import SklearnRuntime
    from dockyard.serving.settings import ModelSettings

    model = joblib.load(path)
    x = np.asarray(json.loads((WORK / "oip.json").read_text())["inputs"][0]["data"]).reshape(1, -1)
    runtime = SklearnRuntime(path, ModelSettings())

    def median_ms(call: Any) -> float:
        for _ in range(20):
            call()
        times = []
        for _ in range(300):
            t0 = time.perf_counter()
            call()
            times.append(time.perf_counter() - t0)
        return statistics.median(times) * 1000

    return {
        "sklearn": median_ms(lambda: model.predict(x)),
        "dockyard_runtime": median_ms(lambda: runtime.predict({"input-0": x}, ["predict"])),
    }


@dataclass
class Server:
    name: str
    body: str  # oip.json or bento.json
    path: str  # URL path, {model} replaced
    setup: Any  # (model_name, model_path, port) -> (argv, env)
    notes: str = ""
    extra_env: dict[str, str] = field(default_factory=dict)


def dockyard(batching: bool, compile_models: bool = True) -> Any:
    def setup(name: str, path: Path, port: int) -> tuple[list[str], dict[str, str]]:
        target = path
        if not compile_models:
            target = WORK / "plain" / name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target / "model.joblib")
            (target / "model-settings.json").write_text(
                json.dumps({"parameters": {"compile": False}})
            )
        argv = [
            sys.executable,
            "-m",
            "dockyard.serving",
            "--model",
            f"{name}={target}",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ]
        return argv + ([] if batching else ["--no-batching"]), {}

    return setup


POOL: dict[str, Any] = {}


def warm_pool() -> Path:
    """One warm pool for the whole run (started once, not counted in any cold start)."""
    sock = WORK / "warm.sock"
    if "proc" not in POOL:
        sock.unlink(missing_ok=True)
        POOL["proc"] = subprocess.Popen(
            [sys.executable, "-m", "dockyard.serving.warm", "--socket", str(sock)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    return sock


def dockyard_warm(name: str, path: Path, port: int) -> tuple[list[str], dict[str, str]]:
    argv, env = dockyard(True)(name, path, port)
    return [*argv, "--warm", str(warm_pool())], env


def mlserver(batching: bool, workers: int) -> Any:
    def setup(name: str, path: Path, port: int) -> tuple[list[str], dict[str, str]]:
        python = VENVS / "mlserver" / "bin" / "python"
        root = WORK / f"mlserver-{name}-{int(batching)}"
        model_dir = root / name
        model_dir.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, model_dir / "model.joblib")
        settings: dict[str, Any] = {
            "name": name,
            "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": "./model.joblib"},
        }
        if batching:
            settings.update(max_batch_size=32, max_batch_time=0.01)
        (model_dir / "model-settings.json").write_text(json.dumps(settings))
        env = {
            "MLSERVER_HTTP_PORT": str(port),
            "MLSERVER_GRPC_PORT": str(free_port()),
            "MLSERVER_METRICS_PORT": str(free_port()),
            "MLSERVER_DEBUG": "false",
            "MLSERVER_PARALLEL_WORKERS": str(workers),
        }
        return [str(python.parent / "mlserver"), "start", str(root)], env

    return setup


def bentoml(batching: bool, workers: int) -> Any:
    def setup(name: str, path: Path, port: int) -> tuple[list[str], dict[str, str]]:
        venv = VENVS / "bentoml"
        env = {
            "MODEL_PATH": str(path),
            "BENTO_BATCHABLE": "1" if batching else "0",
            "BENTO_WORKERS": str(workers),
            "BENTOML_DO_NOT_TRACK": "true",
            "BENTOML_HOME": str(WORK / "bentoml-home"),
        }
        return [
            str(venv / "bin" / "bentoml"),
            "serve",
            "bento_service:Model",
            "--port",
            str(port),
        ], env

    return setup


def plain_fastapi(name: str, path: Path, port: int) -> tuple[list[str], dict[str, str]]:
    return [sys.executable, str(HERE / "plain_fastapi.py"), str(path), str(port)], {}


def servers(workers: int) -> dict[str, Server]:
    infer = "/v2/models/{model}/infer"
    return {
        "dockyard": Server("Dockyard (batching 64 / 2 ms)", "oip.json", infer, dockyard(True)),
        "dockyard-nobatch": Server("Dockyard, no batching", "oip.json", infer, dockyard(False)),
        "dockyard-sklearn": Server(
            "Dockyard, batching, scikit-learn's own predict",
            "oip.json",
            infer,
            dockyard(True, compile_models=False),
        ),
        "dockyard-warm": Server(
            "Dockyard started from its warm pool (batching)", "oip.json", infer, dockyard_warm
        ),
        "mlserver": Server(
            f"MLServer 1.7.1 (batching 32 / 10 ms, {workers} workers)",
            "oip.json",
            infer,
            mlserver(True, workers),
        ),
        "mlserver-nobatch": Server(
            f"MLServer 1.7.1, no batching, {workers} workers",
            "oip.json",
            infer,
            mlserver(False, workers),
        ),
        "bentoml": Server(
            f"BentoML 1.4 (batching 32, {workers} worker(s))",
            "bento.json",
            "/predict",
            bentoml(True, workers),
        ),
        "bentoml-nobatch": Server(
            f"BentoML 1.4, no batching, {workers} worker(s)",
            "bento.json",
            "/predict",
            bentoml(False, workers),
        ),
        "fastapi": Server(
            "plain FastAPI + uvicorn, predict on the loop", "oip.json", infer, plain_fastapi
        ),
    }


def start(server: Server, model: str, path: Path) -> tuple[subprocess.Popen[bytes], str, float]:
    port = free_port()
    argv, env = server.setup(model, path, port)
    url = f"http://127.0.0.1:{port}{server.path.format(model=model)}"
    body = (WORK / server.body).read_bytes()
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        env={**os.environ, "DOCKYARD_COMPILE_CACHE": str(COMPILE_CACHE), **env},
        cwd=HERE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = started + 120
    while time.perf_counter() < deadline:
        try:
            r = httpx.post(
                url, content=body, headers={"content-type": "application/json"}, timeout=5
            )
            if r.status_code == 200:
                return proc, url, time.perf_counter() - started
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited with {proc.returncode}: {argv}")
        time.sleep(0.01)
    stop(proc)
    raise RuntimeError(f"{server.name} did not answer within 120 s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wrk(url: str, body: str, connections: int, duration: float) -> dict[str, float]:
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "-s",
            str(HERE / "post.lua"),
            url,
        ],
        env={**os.environ, "BODY_FILE": str(WORK / body)},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    line = next(x for x in out.splitlines() if x.startswith("JSON "))
    data = json.loads(line[5:])
    return {
        "rps": data["requests"] / (data["duration_us"] / 1e6),
        "p50_ms": data["p50_us"] / 1000,
        "p99_ms": data["p99_us"] / 1000,
        "errors": data["errors_status"] + data["errors_other"],
    }


def measure(server: Server, model: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    shutil.rmtree(COMPILE_CACHE, ignore_errors=True)
    proc, _, first = start(server, model, path)
    stop(proc)
    colds = []
    for _ in range(args.cold_runs):
        proc, _, cold = start(server, model, path)
        colds.append(cold)
        stop(proc)
    proc, url, _ = start(server, model, path)
    result: dict[str, Any] = {
        "server": server.name,
        "model": model,
        "first_start_s": first,
        "cold_start_s": statistics.median(colds),
        "load": {},
    }
    if args.cold_only:
        stop(proc)
        return result
    try:
        wrk(url, server.body, 16, 2)  # warm up
        for connections in args.connections:
            runs = [wrk(url, server.body, connections, args.duration) for _ in range(args.runs)]
            result["load"][connections] = {
                "rps": statistics.median(r["rps"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                "errors": sum(r["errors"] for r in runs),
                "runs": runs,
            }
    finally:
        stop(proc)
    return result


def summary(
    results: list[dict[str, Any]], floors: dict[str, dict[str, float]], connections: list[int]
) -> str:
    lines = []
    for model in sorted({r["model"] for r in results}):
        label = {"lr": "LogisticRegression", "rf": "RandomForest (100 trees)"}.get(model, model)
        f = floors[model]
        lines += [
            f"**{label}** — in-process predict() of one sample: scikit-learn "
            f"{f['sklearn']:.2f} ms, Dockyard's runtime {f['dockyard_runtime']:.2f} ms",
            "",
        ]
        head = "| server | " + " | ".join(f"req/s @{c}" for c in connections)
        head += " | p50 @1 | p99 @64 | first start | cold start |"
        lines += [head, "|" + " --- |" * (len(connections) + 5)]
        for r in (x for x in results if x["model"] == model):
            load = r["load"]
            cells = [
                f"{load[c]['rps']:,.0f}" + (" ⚠" if load[c]["errors"] else "") if c in load else "-"
                for c in connections
            ]
            p50 = f"{load[1]['p50_ms']:.2f} ms" if 1 in load else "-"
            p99 = f"{load[64]['p99_ms']:.1f} ms" if 64 in load else "-"
            lines.append(
                f"| {r['server']} | "
                + " | ".join(cells)
                + f" | {p50} | {p99} | {r['first_start_s']:.2f} s | {r['cold_start_s']:.2f} s |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Serving benchmark")
    parser.add_argument(
        "--servers",
        default="dockyard,dockyard-warm,dockyard-nobatch,dockyard-sklearn,"
        "mlserver,mlserver-nobatch,bentoml,bentoml-nobatch,fastapi",
    )
    parser.add_argument("--models", default="lr,rf")
    parser.add_argument("--connections", default="1,16,64")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="workers for MLServer and BentoML (default: one per core)",
    )
    parser.add_argument("--quick", action="store_true", help="1 run of 5 s, 1 cold start")
    parser.add_argument("--cold-only", action="store_true", help="start times only, no load")
    args = parser.parse_args()
    args.connections = [int(c) for c in args.connections.split(",")]
    if args.quick:
        args.runs, args.duration, args.cold_runs = 1, 5.0, 1
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is needed: apt-get install -y wrk")
    paths = train_models()
    wanted = args.servers.split(",")
    version = sklearn_version()
    if any(s.startswith("mlserver") for s in wanted):
        pip_install(
            VENVS / "mlserver",
            [
                "mlserver==1.7.1",
                "mlserver-sklearn==1.7.1",
                "uvloop==0.21.0",
                f"scikit-learn=={version}",
            ],
        )
    if any(s.startswith("bentoml") for s in wanted):
        pip_install(VENVS / "bentoml", ["bentoml>=1.4,<1.5", f"scikit-learn=={version}"])
    table = servers(args.workers)
    floors = {m: floor_ms(paths[m]) for m in args.models.split(",")}
    results = []
    for model in args.models.split(","):
        for key in wanted:
            print(f"== {key} / {model}", flush=True)
            results.append(measure(table[key], model, paths[model], args))
            print(
                json.dumps(
                    {k: v for k, v in results[-1].items() if k != "load"}
                    | {"rps": {c: round(v["rps"]) for c, v in results[-1]["load"].items()}}
                ),
                flush=True,
            )
    if "proc" in POOL:
        stop(POOL["proc"])
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {
        "when": time.strftime("%Y-%m-%d %H:%M"),
        "machine": {"cpu": os.cpu_count(), "python": platform.python_version(), "sklearn": version},
        "args": {k: v for k, v in vars(args).items()},
        "floors_ms": floors,
        "results": results,
    }
    out = RESULTS / f"serving-{int(time.time())}.json"
    out.write_text(json.dumps(record, indent=2))
    print(f"\nsaved {out}\n")
    print(summary(results, floors, args.connections))


if __name__ == "__main__":
    main()
