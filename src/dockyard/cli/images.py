"""``dockyard images build|list|render``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, console, dump, size

app = typer.Typer(no_args_is_help=True)
RuntimeOpt = Annotated[
    str | None,
    typer.Option(help="podman or docker (default: the server's, else what is installed)."),
]


@app.command()
def build(
    environment: str,
    runtime: RuntimeOpt = None,
    project: ProjectOpt = "default",
    serving: Annotated[
        bool,
        typer.Option(
            "--serving", help="Also its model-server image (what `dockyard render` names)."
        ),
    ] = False,
    push: Annotated[
        str | None,
        typer.Option(
            help="Push the image(s) to this registry (e.g. registry.example.com/ml); render "
            "with --registry the same.",
        ),
    ] = None,
) -> None:
    """Build the image of ENVIRONMENT (cached by content hash: an unchanged one is reused)."""
    with console.status(f"building the image of {environment}…") as status:
        result = client().build_image(
            environment,
            project,
            runtime,
            progress=lambda line: status.update(line[:100]),
            serving=serving,
            push=push,
        )
    console.print(f"{environment} → {result['image']}", highlight=False)
    if result.get("server"):
        console.print(f"{environment} (model server) → {result['server']}", highlight=False)
    for pushed in result.get("pushed") or []:
        console.print(f"pushed {pushed}", highlight=False)


@app.command("list")
def list_images(runtime: RuntimeOpt = None, output: OutputOpt = Format.table) -> None:
    """Images Dockyard built (environments and serving images)."""
    data = client().images(runtime)
    if output != Format.table:
        dump(data["items"], output)
        return
    table = Table(
        "IMAGE", "ENVIRONMENT", "HASH", "MODEL", "SIZE", "CREATED", box=None, header_style="bold"
    )
    for item in data["items"]:
        model = f"{item['model']}@{item['modelVersion']}" if item.get("model") else "-"
        table.add_row(
            item["image"],
            item.get("environment") or "-",
            item.get("hash") or "-",
            model,
            size(item.get("size")),
            str(item.get("created") or "-")[:19],
        )
    console.print(table)


@app.command()
def render(environment: str, project: ProjectOpt = "default") -> None:
    """Print the Containerfile of ENVIRONMENT, to build it elsewhere (Podman or Docker)."""
    sys.stdout.write(client().containerfile(environment, project))
