"""``python -m dockyard.serving --model NAME=PATH --port N``: the model server process."""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="dockyard-serve", description="Open Inference Protocol model server"
    )
    parser.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=PATH",
        help="a model file or directory to serve (repeatable)",
    )
    parser.add_argument("--model-version", default="1", help="version label of the models")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--log-level", default="info")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    started = time.perf_counter()
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from dockyard.serving.app import InferenceApp
    from dockyard.serving.repository import Repository

    repo = Repository()
    for item in args.model:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model expects NAME=PATH, got {item!r}")
        if not Path(path).exists():
            raise SystemExit(f"--model {name}: {path} does not exist")
        repo.load(name, Path(path), args.model_version)
    logging.getLogger("dockyard.serving").info(
        "serving %d model(s) on http://%s:%d (ready %.2fs after start)",
        len(repo.models),
        args.host,
        args.port,
        time.perf_counter() - started,
    )
    uvicorn.run(
        InferenceApp(repo),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        lifespan="on",
    )
