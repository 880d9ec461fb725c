"""``dockyard predict SERVICE --json … | --file …``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, console, dump
from dockyard.errors import InvalidRequest


def register(app: typer.Typer) -> None:
    app.command()(predict)


def to_request(payload: Any) -> dict[str, Any]:
    """An Open Inference Protocol request from a full request, ``{"instances": …}`` or rows."""
    if isinstance(payload, dict) and "inputs" in payload:
        return payload
    rows = payload.get("instances") if isinstance(payload, dict) else payload
    if not isinstance(rows, list) or not rows:
        raise InvalidRequest(
            'expected an inference request ({"inputs": [...]}), '
            '{"instances": [[...], ...]} or a list of rows',
            hint="see `dockyard predict --help`",
        )
    if not isinstance(rows[0], list):
        rows = [rows]
    return {
        "inputs": [
            {
                "name": "input-0",
                "datatype": "FP64",
                "shape": [len(rows), len(rows[0])],
                "data": rows,
            }
        ]
    }


def predict(
    service: str,
    json_: Annotated[str | None, typer.Option("--json", help="Request as JSON text.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Request file; - = stdin.")] = None,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="The service's token (spec.auth), from a file; else $DOCKYARD_SERVING_TOKEN."
        ),
    ] = None,
    project: ProjectOpt = "default",
    output: OutputOpt = Format.table,
) -> None:
    """Send a prediction to a service (Open Inference Protocol v2) and print the outputs."""
    if (json_ is None) == (file is None):
        raise InvalidRequest("give exactly one of --json or --file")
    token = os.environ.get("DOCKYARD_SERVING_TOKEN") or None
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise InvalidRequest(
                f"cannot read the token file {token_file}: {exc.strerror}"
            ) from exc
    try:
        text = (
            json_
            if json_ is not None
            else (sys.stdin.read() if str(file) == "-" else Path(str(file)).read_text())
        )
        payload = json.loads(text)
    except OSError as exc:
        raise InvalidRequest(f"cannot read {file}: {exc.strerror}") from exc
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"the request is not valid JSON: {exc}") from exc
    result = client().predict(service, to_request(payload), project, token=token)
    if output != Format.table:
        dump(result, output)
        return
    console.print(
        f"model {result['model_name']} version {result.get('model_version', '-')}", highlight=False
    )
    for out in result["outputs"]:
        console.print(
            f"  {out['name']} {out['datatype']} {out['shape']}: {out['data']}", highlight=False
        )
