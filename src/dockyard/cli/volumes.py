"""``dockyard volumes snapshot|snapshots|restore`` and ``dockyard backup|restore``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, age, console, dump, size
from dockyard.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True)


def _spinner(text: str) -> Progress:
    return Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    )


@app.command()
def snapshot(
    name: str,
    project: ProjectOpt = "default",
    wait: Annotated[bool, typer.Option(help="Wait until it is taken.")] = True,
) -> None:
    """Take a snapshot of a volume now (incremental, deduplicated, checksummed)."""
    with _spinner("snapshot") as progress:
        task = progress.add_task(f"snapshot of {name}")

        def show(volume: dict[str, Any]) -> None:
            message = volume.get("status", {}).get("message") or "waiting"
            progress.update(task, description=f"snapshot of {name}: {message}")

        volume = client().snapshot_volume(name, project, wait=wait, on_status=show)
    status = volume.get("status", {})
    if wait:
        console.print(
            f"volume/{name} snapshot {status.get('lastSnapshot')} ({status.get('snapshots')} kept)",
            highlight=False,
        )
    else:
        console.print(f"volume/{name} snapshot requested", highlight=False)


@app.command("snapshots")
def list_snapshots(
    name: str, project: ProjectOpt = "default", output: OutputOpt = Format.table
) -> None:
    """The snapshots of a volume, oldest first."""
    items = client().volume_snapshots(name, project)
    if output != Format.table:
        dump(items, output)
        return
    table = Table(box=None, header_style="bold")
    table.add_column("ID", no_wrap=True, min_width=22)
    for header in ("AGE", "FILES", "SIZE", "NEW", "TAGS", "BACKED UP", "UNSETTLED"):
        table.add_column(header)
    for s in items:
        table.add_row(
            s["id"],
            age(s["created"]),
            str(s["files"]),
            size(s["bytes"]),
            size(s["newBytes"]),
            ",".join(s["tags"]),
            "yes" if s["backedUp"] else "-",
            ", ".join(s["unsettled"])[:60] or "-",
        )
    console.print(table)


@app.command()
def restore(
    name: str,
    snapshot: Annotated[str, typer.Option("--snapshot", "-s", help="Snapshot id.")],
    to: Annotated[
        str | None, typer.Option(help="A new volume to restore into; unset: in place.")
    ] = None,
    project: ProjectOpt = "default",
) -> None:
    """Restore a snapshot, every chunk verified: into a new volume (--to NEW) or in place
    (once no workload mounts the volume)."""
    with _spinner("restore") as progress:
        task = progress.add_task(f"restore of {snapshot}")

        def show(volume: dict[str, Any]) -> None:
            message = volume.get("status", {}).get("message") or "waiting"
            progress.update(task, description=f"restore of {snapshot}: {message}")

        volume = client().restore_volume(name, snapshot, project, to=to, on_status=show)
    status = volume.get("status", {})
    if status.get("phase") == "Failed":
        raise InvalidRequest(f"restore failed: {status.get('message')}")
    console.print(f"volume/{to or name} restored from {snapshot}", highlight=False)


datasets_app = typer.Typer(no_args_is_help=True)


@datasets_app.command("diff")
def diff(
    a: Annotated[str, typer.Argument(help="NAME (its current version) or NAME@vN.")],
    b: Annotated[str, typer.Argument(help="NAME or NAME@vN.")],
    project: ProjectOpt = "default",
    output: OutputOpt = Format.table,
) -> None:
    """Files added, removed and changed between two dataset versions."""
    result = client().dataset_diff(a, b, project)
    if output != Format.table:
        dump(result, output)
        return
    counts = result["counts"]
    for sign, kind in (("+", "added"), ("-", "removed"), ("~", "changed")):
        for change in result[kind]:
            line = f"{sign} {change['path']}  {size(change['bytes'])}"
            console.print(line, highlight=False, markup=False)
    console.print(
        f"{result['a']} → {result['b']}: {counts['added']} added, {counts['removed']} removed, "
        f"{counts['changed']} changed, {counts['unchanged']} unchanged",
        highlight=False,
        markup=False,
    )


def register(main: typer.Typer) -> None:
    @main.command("backup")
    def backup(
        to: Annotated[str, typer.Option("--to", help="s3://BUCKET/PREFIX")],
        passphrase: Annotated[
            str | None,
            typer.Option(help="SECRET/KEY of a passphrase (project default): encrypt."),
        ] = None,
    ) -> None:
        """Back up the control plane's store and every volume to S3 (incremental)."""
        with _spinner("backup") as progress:
            progress.add_task(f"backup to {to}")
            result = client().backup(to, passphrase)
        console.print(
            f"backed up {len(result['volumes'])} volume(s) and the control plane to {to}: "
            f"{result['chunks']} new chunk(s), {size(result['bytes'])} in {result['seconds']} s",
            highlight=False,
        )

    @main.command("restore")
    def restore_home(
        source: Annotated[str, typer.Option("--from", help="s3://BUCKET/PREFIX")],
        passphrase_file: Annotated[
            Path | None, typer.Option(help="A file holding the backup's passphrase.")
        ] = None,
    ) -> None:
        """Disaster recovery: bring back the last full backup into an empty DOCKYARD_HOME
        (the control plane's store, the registry, every volume); then start the server."""
        from dockyard.control.home_backup import restore as restore_all
        from dockyard.settings import Settings

        passphrase = None
        if passphrase_file is not None:
            try:
                passphrase = passphrase_file.read_text().strip()
            except OSError as exc:
                raise InvalidRequest(f"cannot read {passphrase_file}: {exc.strerror}") from exc
        settings = Settings()
        with _spinner("restore") as progress:
            task = progress.add_task(f"restore from {source}")

            def show(text: str) -> None:
                progress.update(task, description=f"restore from {source}: {text}")

            result = restore_all(settings, source, passphrase, show)
        console.print(
            f"restored the control plane ({result['home']}) and {len(result['volumes'])} "
            f"volume(s) into {settings.home}; start it with: dockyard server start",
            highlight=False,
        )
