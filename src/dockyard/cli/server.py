"""``dockyard server start|stop|status``."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard import embedded
from dockyard.cli.output import console
from dockyard.client import Client
from dockyard.settings import Settings
from dockyard.spec.common import format_bytes

app = typer.Typer(no_args_is_help=True)


@app.command()
def start(foreground: Annotated[bool, typer.Option(help="Run in this terminal.")] = False) -> None:
    """Start the embedded control plane for DOCKYARD_HOME (if not running)."""
    settings = Settings()
    if foreground:
        from dockyard.api.server import serve

        raise typer.Exit(serve(settings))
    url = embedded.ensure_running(settings)
    console.print(f"Dockyard server running at {url} (home {settings.home})", highlight=False)


@app.command()
def stop() -> None:
    """Stop the embedded server and every workload it started."""
    if embedded.stop(Settings()):
        console.print("Dockyard server stopped")
    else:
        console.print("no Dockyard server was running")


@app.command()
def status() -> None:
    """Is a server running? Where, and with what capacity?"""
    settings = Settings()
    if settings.url is None and embedded.info(settings) is None:
        console.print(f"not running (home {settings.home})", highlight=False)
        raise typer.Exit(1)
    c = Client(autostart=False)
    health, node = c.health(), c.node()
    cap, used = node["capacity"], node["allocated"]
    console.print(
        f"running at {c.url}, version {health['version']}, runtime "
        f"{health['runtime']}, home {health['home']}",
        highlight=False,
    )
    console.print(
        f"node: {used['cpu']:g}/{cap['cpu']:g} cpu, {format_bytes(used['memory'])}/"
        f"{format_bytes(cap['memory'])} memory, {used['gpu']}/{cap['gpu']} gpu "
        f"allocated; {node['workloads']} workload(s) running",
        highlight=False,
    )
