"""Options and helpers shared by the commands."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard.cli.output import Format
from dockyard.client import Client

ProjectOpt = Annotated[str, typer.Option("--project", "-p", help="Project of the resources.")]
OutputOpt = Annotated[Format, typer.Option("--output", "-o", help="table, json or yaml.")]


def client() -> Client:
    return Client()
