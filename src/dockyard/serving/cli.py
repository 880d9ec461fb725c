"""``python -m dockyard.serving``: the model server process (also behind ``dockyard serve``).

    python -m dockyard.serving --model digits=./model.joblib --port 8080
    python -m dockyard.serving --model digits:2=./v2/ --model iris=./iris/ --max-batch-size 32
    python -m dockyard.serving --model-repository ./models --port 8080

The server answers health checks at once; it turns ready when every model is loaded and has
passed one warm-up inference. A model that fails to load stops the server with exit code 1.

Limits and access rules (docs/serving.md): each a flag, else ``DOCKYARD_SERVING_<NAME>``; the
token only from ``DOCKYARD_SERVING_TOKEN`` or ``--token-file``, never a flag (``ps`` shows
every process's arguments to every local user).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

START = time.perf_counter()
log = logging.getLogger("dockyard.serving")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="dockyard-serve", description="Open Inference Protocol model server"
    )
    p.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="NAME[:VERSION]=PATH",
        help="a model file or directory (repeatable)",
    )
    p.add_argument(
        "--model-repository",
        type=Path,
        metavar="DIR",
        help="a directory with one subdirectory per model",
    )
    p.add_argument(
        "--default-version",
        action="append",
        default=[],
        metavar="NAME=VERSION",
        help="the version served when a request names none (default: newest)",
    )
    p.add_argument("--runtime", help="force the runtime of --model entries")
    p.add_argument("--max-batch-size", type=int, help="adaptive batching: rows per call")
    p.add_argument("--max-latency-ms", type=float, help="adaptive batching: longest wait")
    p.add_argument("--no-batching", action="store_true", help="one runtime call per request")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument(
        "--port",
        type=int,
        default=int(os.environ.get("DOCKYARD_SERVE_PORT") or 8080),
        help="default: $DOCKYARD_SERVE_PORT (set by Dockyard for a Service replica), else 8080",
    )
    p.add_argument("--log-level", default="info")
    p.add_argument(
        "--warm",
        type=Path,
        metavar="SOCKET",
        help="start as a fork of the warm pool listening there (see "
        "dockyard.serving.warm); cold in this process if it does not answer",
    )
    add_server_settings(p)
    args = p.parse_args(argv)
    if not args.model and args.model_repository is None:
        p.error("give at least one --model NAME=PATH or --model-repository DIR")
    return args


def add_server_settings(p: argparse.ArgumentParser) -> None:
    """The flags of ``ServerSettings``: limits, token file, auth switches, Host/Origin lists."""
    from dockyard.serving.limits import LIMITS, TOKEN_ENV, env_name

    group = p.add_argument_group("limits and access (each also DOCKYARD_SERVING_<NAME>)")
    for name, (kind, default, what) in LIMITS.items():
        group.add_argument(
            "--" + name.replace("_", "-"),
            type=kind,
            metavar="N",
            help=f"{what} (default {default}, ${env_name(name)})",
        )
    group.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help=f"bearer token for the repository extension (else ${TOKEN_ENV}; never a flag)",
    )
    group.add_argument(
        "--no-auth",
        action="store_true",
        help="without a token, let anyone who reaches the server load and unload models "
        "(local development)",
    )
    group.add_argument(
        "--auth-inference",
        action="store_true",
        help="inference needs the bearer token too (health, readiness, metadata stay open)",
    )
    group.add_argument(
        "--allowed-host",
        dest="allowed_hosts",
        action="append",
        metavar="NAME",
        help="a Host name accepted besides the bound address and localhost (repeatable)",
    )
    group.add_argument(
        "--allowed-origin",
        dest="allowed_origins",
        action="append",
        metavar="ORIGIN",
        help="a browser Origin (scheme://host[:port]) accepted besides the server's own",
    )


def overrides(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if args.runtime:
        out["runtime"] = args.runtime
    if args.no_batching:
        out["batching"] = None
    elif args.max_batch_size is not None or args.max_latency_ms is not None:
        batching: dict[str, Any] = {}
        if args.max_batch_size is not None:
            batching["maxBatchSize"] = args.max_batch_size
        if args.max_latency_ms is not None:
            batching["maxLatencyMs"] = args.max_latency_ms
        out["batching"] = batching
    return out


def main(argv: list[str] | None = None) -> None:
    global START
    START = time.perf_counter()  # a fork of the warm pool starts now, not at import
    args = parse_args(argv)
    if args.warm is not None:
        from dockyard.serving.pool import run_via_pool

        rest = list(sys.argv[1:] if argv is None else argv)
        i = rest.index("--warm")
        code = run_via_pool(args.warm, rest[:i] + rest[i + 2 :])
        if code is not None:
            sys.exit(code)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    import uvicorn

    from dockyard.serving.app import InferenceApp
    from dockyard.serving.limits import TOKEN_ENV
    from dockyard.serving.protocol import guarded_protocol
    from dockyard.serving.repository import Repository
    from dockyard.serving.settings import SettingsError, server_settings

    repo = Repository()
    extra = overrides(args)
    try:
        settings = server_settings(vars(args) | {"bind": args.host}, os.environ, args.token_file)
        for item in args.model:
            target, sep, path = item.partition("=")
            name, _, version = target.partition(":")
            if not sep or not name or not path:
                raise SettingsError(f"--model expects NAME[:VERSION]=PATH, got {item!r}")
            repo.add(name, Path(path), version or None, extra)
        if args.model_repository is not None:
            repo.add_repository(args.model_repository)
        for item in args.default_version:
            name, _, version = item.partition("=")
            repo.default_version[name] = version
    except SettingsError as exc:
        print(f"dockyard-serve: {exc}", file=sys.stderr)
        sys.exit(2)
    # the token stays in this process: models, their worker processes and anything they start
    # do not inherit it
    os.environ.pop(TOKEN_ENV, None)
    if settings.token is None and not settings.no_auth:
        log.info("repository extension off (no token): load/unload need %s", TOKEN_ENV)

    failed: list[str] = []
    server: Any = None

    async def load() -> None:
        try:
            await repo.load_all()
        except Exception as exc:  # a model that does not load stops the server
            failed.append(str(exc))
            log.error("%s", exc)
            server.should_exit = True
            return
        log.info(
            "ready: %d model version(s) on http://%s:%d, %.2fs after start",
            sum(len(v) for v in repo.models.values()),
            args.host,
            args.port,
            time.perf_counter() - START,
        )

    async def startup() -> None:
        asyncio.get_running_loop().create_task(load())

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                self._captured_signals.clear()

    config = uvicorn.Config(
        InferenceApp(repo, startup, settings),
        host=args.host,
        port=args.port,
        http=guarded_protocol(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=30,
    )
    server = Server(config)
    server.run()
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; a drained, clean stop is a
    # success for us (exit 0), so forget the captured signal
    if failed:
        sys.exit(1)
