"""Where a model server's start goes: py-spy samples from process start to the first answer.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/serving/profile_start.py [--model lr|rf] [--cached]

Starts ``python -m dockyard.serving`` for a digits model (trained by ``run.py``) under
``py-spy record``, waits until it answers a prediction, stops it, and sums the samples by what
was running: imports by top-level package, unpickling, compiling. Without ``--cached`` the
compile cache is empty (a first start); with it, the cache was filled by a previous start.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import run  # noqa: E402  (the benchmark's models, request body and port helper)

RATE = 200  # samples per second
HEAVY = ("sklearn", "scipy", "pandas")
STDLIB = {"concurrent", "asyncio", "json", "importlib", "email", "http", "logging", "urllib"}


def category(frames: list[str]) -> str:
    packages = [
        m.group(1) for f in frames if (m := re.search(r"\(([A-Za-z_0-9]+)/", f)) is not None
    ]
    packages = [p for p in packages if p not in STDLIB]
    others = [p for p in packages if p != "dockyard"]
    importing = any("_find_and_load" in f for f in frames)
    if any("compiled.py" in f for f in frames) and not importing:
        return "compile + check against scikit-learn"
    if any(p in HEAVY for p in others):
        return "import scikit-learn (SciPy, pandas)"
    if others:
        return "joblib (import, unpickle)" if others[0] == "joblib" else f"import {others[0]}"
    return "Dockyard and the standard library"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="lr", choices=["lr", "rf"])
    parser.add_argument("--cached", action="store_true", help="compile cache filled first")
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        raise SystemExit("py-spy is needed: .venv/bin/pip install py-spy")
    path = run.train_models()[args.model]
    cache = Path(tempfile.mkdtemp(prefix="dockyard-profile-"))
    env = {**os.environ, "DOCKYARD_COMPILE_CACHE": str(cache)}
    if args.cached:
        subprocess.run(
            [sys.executable, "-m", "dockyard.serving.compile", str(path)], env=env, check=True
        )
    out = cache / "profile.raw"
    port = run.free_port()
    url = f"http://127.0.0.1:{port}/v2/models/{args.model}/infer"
    body = (run.WORK / "oip.json").read_bytes()
    server = [sys.executable, "-m", "dockyard.serving", "--model", f"{args.model}={path}"]
    server += ["--port", str(port), "--log-level", "warning"]
    started = time.perf_counter()
    proc = subprocess.Popen(
        [spy, "record", "-r", str(RATE), "-f", "raw", "-o", str(out), "--", *server],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while True:
        try:
            if httpx.post(url, content=body, timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.01)
    seconds = time.perf_counter() - started
    proc.send_signal(signal.SIGINT)
    proc.wait(30)
    totals: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        totals[category(stack.split(";"))] += int(count)
    shutil.rmtree(cache, ignore_errors=True)
    everything = sum(totals.values())
    print(f"first answer after {seconds:.2f} s under py-spy ({everything} samples at {RATE}/s)")
    print("| what runs | seconds | share |\n| --- | ---: | ---: |")
    for name, samples in totals.most_common():
        print(f"| {name} | {samples / RATE:.2f} s | {samples / everything:.0%} |")


if __name__ == "__main__":
    main()
