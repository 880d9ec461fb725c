"""``dockyard serve``: run the model server in this terminal, on files or registry versions.

A registry version whose framework this Python cannot import is served, as Services do, with
the Python of the Environment it was trained in (``serving/boot.py``, Dockyard appended).
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli.common import ProjectOpt, client
from dockyard.errors import InvalidRequest, NotFound
from dockyard.serving import frameworks
from dockyard.serving.launch import BOOT, boot_environ
from dockyard.settings import Settings
from dockyard.spec import ModelRef

REGISTRY = "models:/"
PLAIN = "or serve a registry version, which runs in its training environment"


@dataclass(frozen=True)
class Served:
    """One --model: which framework package this Python lacks, where else it could run."""

    label: str
    missing: str | None = None  # a package the model's runtime needs and this Python lacks
    prepared: dict[str, Any] | None = None  # the local training environment (python, location)
    why: str = PLAIN  # why there is none


def server_environment(models: list[Served]) -> dict[str, Any] | None:
    """None to serve in this Python; else the one training environment that serves them all."""
    chosen: dict[str, dict[str, Any]] = {}
    for m in models:
        if m.missing is None:
            continue
        if m.prepared is None:
            raise InvalidRequest(f"{frameworks.not_installed(m.missing)}; {m.why}")
        chosen[m.prepared["python"]] = m.prepared
    if len(chosen) > 1:
        raise InvalidRequest(
            "these models were trained in different environments: "
            + ", ".join(m.label for m in models if m.missing),
            hint="serve them with one dockyard serve each",
        )
    return next(iter(chosen.values()), None)


def local_environment(
    name: str | None, resource: dict[str, Any] | None
) -> tuple[dict[str, Any] | None, str]:
    """(``status.prepared.local`` of Environment ``name``, or None and why it cannot be used)."""
    if not name:
        return None, "it records no training environment"
    if resource is None:
        return None, f"its training environment '{name}' no longer exists"
    local = ((resource.get("status") or {}).get("prepared") or {}).get("local")
    python = local.get("python") if isinstance(local, dict) else None
    if not python or not Path(python).is_file():
        return None, f"its training environment '{name}' is not prepared on this machine"
    return local, ""


def runtime_of(path: Path, forced: str | None, default: str | None = None) -> str | None:
    """The serving runtime of the model at ``path`` (None when the server must tell)."""
    from dockyard.serving.runtimes.registry import detect
    from dockyard.serving.settings import SettingsError, load_settings

    try:
        return detect(path, load_settings(path, {"runtime": forced} if forced else None))
    except (SettingsError, OSError):
        return default


def trained_in(view: dict[str, Any], label: str, missing: str, project: str) -> Served:
    name = (view.get("lineage") or {}).get("environment")
    resource = None
    if name:
        with contextlib.suppress(NotFound):
            resource = client().get("Environment", name, project)
    prepared, why = local_environment(name, resource)
    return Served(label, missing, prepared, f"{label} is version {view['version']}: {why}")


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
    served: list[Served] = []
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
            missing = frameworks.missing(runtime_of(path, runtime, view.get("flavor")) or "")
            served.append(trained_in(view, target, missing, project) if missing else Served(target))
            argv += [
                "--model",
                f"{name}:{view['version']}={path}",
                "--default-version",
                f"{name}={view['version']}",
            ]
        else:
            argv += ["--model", f"{name}={target}"]
            served.append(
                Served(target, frameworks.missing(runtime_of(Path(target), runtime) or ""))
            )
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
    prepared = server_environment(served)
    if prepared is not None:
        python = prepared["python"]
        print(f"dockyard serve: running in the training environment, {python}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        environ = boot_environ(prepared["location"], dict(prepared.get("env") or {}))
        os.execve(python, [python, str(BOOT), *argv], environ)
    from dockyard.serving.cli import main

    main(argv)
