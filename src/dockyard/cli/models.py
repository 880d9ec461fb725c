"""``dockyard models list|show|alias``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, age, console, dump, short

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_models(project: ProjectOpt = "default", output: OutputOpt = Format.table) -> None:
    """Models with their latest version, metrics and aliases."""
    c = client()
    items = c.list("Model", project)
    if output != Format.table:
        dump(items, output)
        return
    table = Table(
        "NAME", "VERSIONS", "LATEST", "ALIASES", "METRICS (LATEST)", box=None, header_style="bold"
    )
    for m in items:
        st = m["status"]
        table.add_row(
            m["metadata"]["name"],
            str(st.get("versions", 0)),
            str(st.get("latest") or "-"),
            ", ".join(f"{k}={v}" for k, v in sorted((st.get("aliases") or {}).items())),
            short(json.dumps(st.get("metrics") or {}), 60),
        )
    console.print(table)


@app.command()
def show(
    name: str,
    version: Annotated[
        str | None, typer.Argument(help="A version number or alias; default: all versions.")
    ] = None,
    project: ProjectOpt = "default",
    output: OutputOpt = Format.table,
) -> None:
    """Versions of a model, or one version with its files and lineage."""
    c = client()
    if version is None:
        versions = c.model_versions(name, project)
        if output != Format.table:
            dump(versions, output)
            return
        table = Table(
            "VERSION",
            "ALIASES",
            "METRICS",
            "JOB",
            "ATTEMPT",
            "CREATED",
            box=None,
            header_style="bold",
            title=f"model {name}",
            title_justify="left",
        )
        for v in versions:
            table.add_row(
                str(v["version"]),
                ", ".join(v["aliases"]),
                short(json.dumps(v["metrics"]), 50),
                str(v["lineage"].get("job", "-")),
                str(v["lineage"].get("attempt", "-")),
                age(v["createdAt"]),
            )
        console.print(table)
        return
    v = c.model_version(name, version, project)
    if output != Format.table:
        dump(v, output)
        return
    console.print(
        f"[bold]{name}@{v['version']}[/bold]  flavor {v['flavor']}  aliases "
        f"{', '.join(v['aliases']) or '-'}  created {age(v['createdAt'])} ago",
        highlight=False,
    )
    console.print(f"metrics: {json.dumps(v['metrics'])}", highlight=False)
    console.print("lineage:")
    for key, value in v["lineage"].items():
        console.print(f"  {key}: {value}", highlight=False)
    console.print("files:")
    for rel, info in v["files"].items():
        console.print(f"  {rel}  {info['size']} bytes  sha256:{info['sha256']}", highlight=False)


@app.command()
def alias(
    name: str,
    alias_name: Annotated[str, typer.Argument(metavar="ALIAS")],
    version: Annotated[int | None, typer.Argument()] = None,
    delete: Annotated[bool, typer.Option("--delete", help="Remove the alias.")] = False,
    project: ProjectOpt = "default",
) -> None:
    """Point ALIAS (e.g. production) at VERSION, or remove it with --delete."""
    c = client()
    if delete:
        c.delete_alias(name, alias_name, project)
        console.print(f"{name}@{alias_name} removed", highlight=False)
        return
    if version is None:
        raise typer.BadParameter("give the VERSION the alias should point at")
    c.set_alias(name, alias_name, version, project)
    console.print(f"{name}@{alias_name} → version {version}", highlight=False)
