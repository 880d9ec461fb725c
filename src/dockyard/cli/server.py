"""``dockyard server start|run|token|stop|status``."""

from __future__ import annotations

from typing import Annotated

import typer

from dockyard import embedded
from dockyard.cli.common import OutputOpt
from dockyard.cli.output import Format, console, dump
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
def run(
    port: Annotated[int, typer.Option(help="Port to listen on (0: any free one).")] = 8800,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Run a control-plane replica in the foreground (for a container or a systemd unit).

    Replicas on one database share the work: each serves the API, one leads the control
    loop, another takes over within the leader lease TTL if it dies. Stopping a replica
    leaves the workloads running for the next leader.
    """
    from dockyard.api.server import serve

    settings = Settings(host=host, port=port)
    raise typer.Exit(serve(settings, replica=True))


@app.command()
def token(
    rotate: Annotated[bool, typer.Option(help="Make a new token; the old one stops working.")] = (
        False
    ),
    show: Annotated[bool, typer.Option(help="Print the token (to set DOCKYARD_TOKEN).")] = False,
) -> None:
    """Where the admin token is; --rotate replaces it, --show prints it."""
    from dockyard import tokens
    from dockyard.errors import DockyardError

    settings = Settings()
    if settings.token and rotate:
        raise DockyardError(
            "the token comes from DOCKYARD_TOKEN, not from a file",
            hint="rotate it where DOCKYARD_TOKEN is set (and restart the server)",
        )
    if rotate:
        tokens.rotate(settings)
        console.print("a new token is in place; clients with the old one are refused")
    value = tokens.client_token(settings)
    if value is None:
        raise DockyardError(
            f"no token at {tokens.token_path(settings)}",
            hint="start the server once (`dockyard server start`) to make it",
        )
    if show:
        print(value)
    else:
        where = "DOCKYARD_TOKEN" if settings.token else str(tokens.token_path(settings))
        console.print(f"token: {where} (--show prints it)", highlight=False)


@app.command()
def stop(
    stop_workloads: Annotated[
        bool,
        typer.Option(
            "--stop-workloads",
            help="Also stop the workloads on clusters (Kubernetes), which otherwise keep "
            "running and serving until the control plane is back.",
        ),
    ] = False,
) -> None:
    """Stop the embedded server and the workloads it runs on this machine (local processes,
    containers); a cluster's jobs and model servers keep running."""
    if embedded.stop(Settings(), workloads=stop_workloads):
        console.print("Dockyard server stopped")
    else:
        console.print("no Dockyard server was running")


@app.command()
def status(output: OutputOpt = Format.table) -> None:
    """Is a server running? Where, which version, leading the loop, with what capacity?"""
    settings = Settings()
    if settings.url is None and embedded.info(settings) is None:
        if output != Format.table:
            dump({"running": False, "home": str(settings.home)}, output)
        else:
            console.print(f"not running (home {settings.home})", highlight=False)
        raise typer.Exit(1)
    c = Client(autostart=False)
    health, node = c.health(), c.node()
    if output != Format.table:
        dump(
            {
                "running": True,
                "pid": health["pid"],
                "url": c.url,
                "home": health["home"],
                "version": health["version"],
                "runtime": health["runtime"],
                "leader": health["controller"]["leader"],
                "replica": health["replica"],
                "leaderIdentity": health["controller"]["leaderIdentity"],
            },
            output,
        )
        return
    cap, used = node["capacity"], node["allocated"]
    console.print(
        f"running at {c.url} (pid {health['pid']}), version {health['version']}, runtime "
        f"{health['runtime']}, home {health['home']}, "
        + ("leading the control loop" if health["controller"]["leader"] else "a follower"),
        highlight=False,
    )
    console.print(
        f"node: {used['cpu']:g}/{cap['cpu']:g} cpu, {format_bytes(used['memory'])}/"
        f"{format_bytes(cap['memory'])} memory, {used['gpu']}/{cap['gpu']} gpu "
        f"allocated; {node['workloads']} workload(s) running",
        highlight=False,
    )
