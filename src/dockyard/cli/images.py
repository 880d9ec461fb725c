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
def build(environment: str, runtime: RuntimeOpt = None, project: ProjectOpt = "default") -> None:
    """Build the image of ENVIRONMENT (cached by content hash: an unchanged one is reused)."""
    with console.status(f"building the image of {environment}…") as status:
        result = client().build_image(
            environment, project, runtime, progress=lambda line: status.update(line[:100])
        )
    console.print(f"{environment} → {result['image']}", highlight=False)


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
