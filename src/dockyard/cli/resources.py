"""apply, get, describe, logs, delete, cancel, schema."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, age, console, dump, phase, resource_table, short
from dockyard.client import Client
from dockyard.errors import DockyardError, NotFound
from dockyard.spec import DESCRIPTOR, DESCRIPTORS, KINDS, kind_of
from dockyard.spec.loader import load_paths

FilesOpt = Annotated[
    list[Path], typer.Option("--filename", "-f", help="YAML file or directory (repeatable).")
]


def register(app: typer.Typer) -> None:
    app.command()(apply)
    app.command()(get)
    app.command()(describe)
    app.command()(logs)
    app.command()(delete)
    app.command()(cancel)
    app.command()(schema)


def apply(
    files: FilesOpt,
    wait: Annotated[bool, typer.Option(help="Wait until everything is ready or done.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait at most.")] = 1800,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Validate only.")] = False,
) -> None:
    """Create or update resources from YAML files or directories (idempotent)."""
    c = client()
    results = c.apply_paths(files, dry_run=dry_run)
    for r in results:
        style = {"created": "green", "configured": "yellow"}.get(r["action"], "dim")
        suffix = " (dry run)" if dry_run else ""
        console.print(
            f"{r['kind'].lower()}/{r['name']} [{style}]{r['action']}[/{style}]{suffix}",
            highlight=False,
        )
    if wait and not dry_run:
        wait_for(c, [(r["kind"], r["name"], r["project"]) for r in results], timeout)


def wait_for(c: Client, targets: list[tuple[str, str, str]], timeout: float) -> None:
    """Show progress until every target is final; exit 1 if one failed."""
    deadline = time.monotonic() + timeout
    failed: list[str] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description:<28}"),
        TextColumn("{task.fields[phase]:<10}"),
        TextColumn("{task.fields[msg]}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as progress:
        tasks = {
            t: progress.add_task(f"{t[0].lower()}/{t[1]}", total=1, phase="…", msg="")
            for t in targets
        }
        pending = set(targets)
        while pending and time.monotonic() < deadline:
            for t in sorted(pending):
                r = c.get(t[0], t[1], t[2])
                st = r["status"]
                current = st.get("observedGeneration") == r["metadata"]["generation"]
                ph = st.get("phase", "Pending")
                progress.update(tasks[t], phase=ph, msg=short(st.get("message"), 60))
                if current and ph in DESCRIPTOR[t[0]].final:
                    progress.update(tasks[t], completed=1)
                    pending.discard(t)
                    if ph in ("Failed", "Cancelled"):
                        failed.append(f"{t[0].lower()}/{t[1]}: {st.get('message', ph)}")
            if failed:
                break
            time.sleep(0.3)
    if failed:
        raise DockyardError("; ".join(failed), hint="see `dockyard describe` and `dockyard logs`")
    if pending:
        names = ", ".join(f"{k.lower()}/{n}" for k, n, _ in sorted(pending))
        raise DockyardError(f"still not done after {timeout:.0f}s: {names}")


def get(
    kind: Annotated[
        str, typer.Argument(help="jobs, services, models, datasets, volumes, environments, or all")
    ] = "all",
    name: Annotated[str | None, typer.Argument()] = None,
    project: ProjectOpt = "default",
    output: OutputOpt = Format.table,
) -> None:
    """List resources of a kind, or show one."""
    c = client()
    kinds = list(KINDS) if kind == "all" else [kind_of(kind)]
    if name is not None:
        if len(kinds) != 1:
            raise DockyardError("give a kind with a name, e.g. `dockyard get job train`")
        item = c.get(kinds[0], name, project)
        if output != Format.table:
            dump(item, output)
            return
        console.print(resource_table(kinds[0], [item]))
        return
    everything = {
        k: c.list(k, project=None if project == "default" and kind == "all" else project)
        for k in kinds
    }
    if output != Format.table:
        dump([i for items in everything.values() for i in items], output)
        return
    shown = False
    for k, items in everything.items():
        if items or kind != "all":
            console.print(
                resource_table(k, items, title=f"{KINDS[k].PLURAL}" if len(kinds) > 1 else None)
            )
            shown = True
    if not shown:
        console.print("nothing here yet: try `dockyard apply -f examples/digits/ --wait`")


def describe(kind: str, name: str, project: ProjectOpt = "default") -> None:
    """Everything about one resource: spec, status, attempts, events."""
    c = client()
    k = kind_of(kind)
    item = c.get(k, name, project)
    st, meta = item["status"], item["metadata"]
    console.print(
        f"[bold]{k}[/bold] {name}  (project {meta['project']}, uid {meta['uid']}, "
        f"generation {meta['generation']}, created {age(meta['createdAt'])} ago)",
        highlight=False,
    )
    console.print(f"Phase:   {phase(st.get('phase'))}  {st.get('reason', '')}")
    if st.get("message"):
        console.print(f"Message: {st['message']}", highlight=False)
    extras = {
        k2: v
        for k2, v in st.items()
        if k2
        not in (
            "phase",
            "reason",
            "message",
            "conditions",
            "observedGeneration",
            "prepared",
            "manifest",
        )
    }
    if extras:
        console.print("Status:")
        for key, value in extras.items():
            console.print(f"  {key}: {value}", highlight=False)
    console.print("Spec:")
    console.print("  " + json.dumps(item["spec"], indent=2).replace("\n", "\n  "), highlight=False)
    if DESCRIPTOR[k].workloads:
        work = c.workloads(k, name, project)
        if work:
            table = Table(
                "#",
                "ID",
                "PHASE",
                "EXIT",
                "REASON",
                "STARTED",
                "FINISHED",
                title=str(DESCRIPTOR[k].workloads).capitalize(),
                title_justify="left",
                box=None,
                header_style="bold",
            )
            for w in work:
                table.add_row(
                    str(w["number"]),
                    w["id"],
                    phase(w["phase"]),
                    str(w["exitCode"] if w["exitCode"] is not None else "-"),
                    short(f"{w['reason']} {w['message']}".strip(), 50),
                    age(w["startedAt"]),
                    age(w["finishedAt"]),
                )
            console.print(table)
    if k == "Model":
        versions = c.model_versions(name, project)
        table = Table(
            "VERSION",
            "ALIASES",
            "METRICS",
            "JOB",
            "CREATED",
            title="Versions",
            title_justify="left",
            box=None,
            header_style="bold",
        )
        for v in versions:
            table.add_row(
                str(v["version"]),
                ", ".join(v["aliases"]),
                short(json.dumps(v["metrics"]), 50),
                str(v["lineage"].get("job", "-")),
                age(v["createdAt"]),
            )
        console.print(table)
    evs = c.events(k, name, project)
    table = Table(
        "AGE",
        "TYPE",
        "REASON",
        "MESSAGE",
        title="Events",
        title_justify="left",
        box=None,
        header_style="bold",
    )
    for e in evs[-15:]:
        table.add_row(age(e["time"]), e["type"], e["reason"], short(e["message"], 90))
    console.print(table)


def _find(c: Client, name: str, project: str) -> str:
    for k in (d.kind for d in DESCRIPTORS if d.workloads):
        try:
            c.get(k, name, project)
            return k
        except NotFound:
            continue
    raise NotFound(
        f"no job, service or dataset named '{name}'", hint="list them with `dockyard get`"
    )


def logs(
    target: Annotated[str, typer.Argument(help="NAME, or KIND NAME")],
    name: Annotated[str | None, typer.Argument()] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    attempt: Annotated[int | None, typer.Option(help="Attempt number (jobs).")] = None,
    project: ProjectOpt = "default",
) -> None:
    """Print the output of a job attempt, a service replica or a dataset preparation."""
    c = client()
    kind, what = (kind_of(target), name) if name else (_find(c, target, project), target)
    assert what is not None
    for chunk in c.logs(kind, what, project, attempt=attempt, follow=follow):
        sys.stdout.buffer.write(chunk)
        sys.stdout.flush()


def delete(
    kind: Annotated[str | None, typer.Argument()] = None,
    name: Annotated[str | None, typer.Argument()] = None,
    files: Annotated[
        list[Path] | None, typer.Option("--filename", "-f", help="Delete what these files define.")
    ] = None,
    purge: Annotated[bool, typer.Option(help="Also delete the data (volumes, datasets).")] = False,
    keep_data: Annotated[bool, typer.Option(help="Delete a volume, keep its files.")] = False,
    force: Annotated[bool, typer.Option(help="Delete even if in use.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait until it is gone.")] = True,
    project: ProjectOpt = "default",
) -> None:
    """Delete resources (stopping what runs for them)."""
    c = client()
    if files:
        targets = [
            (x.resource.kind, x.resource.name, x.resource.project) for x in load_paths(files)
        ]
    elif kind and name:
        targets = [(kind_of(kind), name, project)]
    else:
        raise DockyardError("give KIND NAME or -f FILE", hint="e.g. `dockyard delete job train`")
    # all in one request: together or not at all; what does not exist is skipped with -f
    results = c.delete_many(targets, purge=purge, force=force, keep_data=keep_data)
    if not files and not results[0]["deleted"]:
        kind_name, name_, project_ = targets[0]
        where = f" in project '{project_}'" if project_ != "default" else ""
        raise NotFound(
            f"{kind_name} '{name_}'{where} not found",
            hint=f"list what exists with: dockyard get {kind_name.lower()}s",
        )
    deleted = [(r["kind"], r["name"], r["project"]) for r in results if r["deleted"]]
    notes = {(r["kind"], r["name"]): r.get("note", "") for r in results}
    if wait:
        wait_gone(c, deleted)
    for k, n, _ in deleted:
        note = f": {notes[(k, n)]}" if notes.get((k, n)) else ""
        console.print(f"{k.lower()}/{n} [red]deleted[/red]{note}", highlight=False)


def wait_gone(c: Client, targets: list[tuple[str, str, str]], timeout: float = 600) -> None:
    """Show progress until none of ``targets`` is listed any more (one list per kind a poll)."""
    left = set(targets)
    deadline = time.monotonic() + timeout
    with Progress(
        SpinnerColumn(), TextColumn("deleting"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), console=console, transient=True,
    ) as progress:  # fmt: skip
        task = progress.add_task("deleting", total=len(left))
        while left and time.monotonic() < deadline:
            for kind, project in {(k, p) for k, _, p in left}:
                listed = {i["metadata"]["name"] for i in c.list(kind, project)}
                left = {t for t in left if (t[0], t[2]) != (kind, project) or t[1] in listed}
            progress.update(task, completed=len(targets) - len(left))
            if left:
                time.sleep(0.2)
    if left:
        names = ", ".join(f"{k.lower()}/{n}" for k, n, _ in sorted(left)[:10])
        raise DockyardError(f"still not deleted after {timeout:.0f}s: {names}")


def cancel(name: str, project: ProjectOpt = "default") -> None:
    """Cancel a job: stop its running attempt, start no more."""
    client().cancel(name, project)
    console.print(f"job/{name} [magenta]cancel requested[/magenta]", highlight=False)


def schema(
    kind: Annotated[str | None, typer.Argument(help="One kind; default all.")] = None,
) -> None:
    """Print the JSON Schema of the resource documents (for editors)."""
    from dockyard.spec.schema import json_schema

    sys.stdout.write(json.dumps(json_schema(kind_of(kind) if kind else None), indent=2) + "\n")
