"""``dockyard serve``: run the model server in this terminal, on files or registry versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dockyard.cli.common import ProjectOpt, client
from dockyard.errors import InvalidRequest
from dockyard.settings import Settings
from dockyard.spec import ModelRef

REGISTRY = "models:/"


def register(app: typer.Typer) -> None:
    app.command(context_settings={"help_option_names": ["-h", "--help"]})(serve)


def serve(
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="NAME=PATH (a file or directory) or NAME=models:/MODEL@ALIAS|VERSION; repeatable",
        ),
    ] = None,
    model_repository: Annotated[
        Path | None, typer.Option(help="A directory with one subdirectory per model.")
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8080,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    max_batch_size: Annotated[
        int | None, typer.Option(help="Adaptive batching: rows per call (default 64).")
    ] = None,
    max_latency_ms: Annotated[
        float | None, typer.Option(help="Adaptive batching: longest wait (default 2).")
    ] = None,
    no_batching: Annotated[bool, typer.Option(help="One model call per request.")] = False,
    runtime: Annotated[
        str | None,
        typer.Option(help="Force a runtime: sklearn, xgboost, lightgbm, onnx, torch, custom."),
    ] = None,
    project: ProjectOpt = "default",
) -> None:
    """Serve models over the Open Inference Protocol (REST v2 and KServe v1)."""
    argv: list[str] = ["--port", str(port), "--host", host]
    for item in model or []:
        name, sep, target = item.partition("=")
        if not sep:
            raise InvalidRequest(f"--model expects NAME=PATH, got {item!r}")
        if target.startswith(REGISTRY):
            try:
                ref = ModelRef.parse(target[len(REGISTRY) :])
            except ValueError as exc:
                raise InvalidRequest(
                    f"bad registry reference {target!r}: {exc}",
                    hint="use models:/NAME@ALIAS or models:/NAME@VERSION",
                ) from exc
            cache = Settings().home / "serve-cache" / project / ref.name
            alias = ref.alias if ref.version is None else str(ref.version)
            view, directory = client().download_model(ref.name, str(alias), cache, project)
            path = directory if view["path"] == "." else directory / view["path"]
            argv += [
                "--model",
                f"{name}:{view['version']}={path}",
                "--default-version",
                f"{name}={view['version']}",
            ]
        else:
            argv += ["--model", f"{name}={target}"]
    if model_repository is not None:
        argv += ["--model-repository", str(model_repository)]
    if no_batching:
        argv.append("--no-batching")
    if max_batch_size is not None:
        argv += ["--max-batch-size", str(max_batch_size)]
    if max_latency_ms is not None:
        argv += ["--max-latency-ms", str(max_latency_ms)]
    if runtime is not None:
        argv += ["--runtime", runtime]
    if not model and model_repository is None:
        raise InvalidRequest(
            "give --model NAME=PATH or --model-repository DIR",
            hint="e.g. dockyard serve --model digits=models:/digits@latest",
        )
    from dockyard.serving.cli import main

    main(argv)
