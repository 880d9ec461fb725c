"""``dockyard secrets set|list|delete|reencrypt``: values for workloads, encrypted at rest."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from dockyard.cli.common import OutputOpt, ProjectOpt, client
from dockyard.cli.output import Format, age, console, dump
from dockyard.errors import InvalidRequest

app = typer.Typer(no_args_is_help=True)


def _value(item: str) -> tuple[str, str]:
    """``KEY=value``, ``KEY=@file`` (the file's text) or ``KEY=-`` (standard input)."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise InvalidRequest(
            f"expected KEY=VALUE, KEY=@FILE or KEY=-, got {item.split('=', maxsplit=1)[0]!r}"
        )
    if value == "-":
        return key, sys.stdin.read().rstrip("\n")
    if value.startswith("@"):
        try:
            return key, Path(value[1:]).read_text()
        except OSError as exc:
            raise InvalidRequest(f"cannot read {value[1:]}: {exc.strerror}") from exc
    return key, value


@app.command("set")
def set_secret(
    name: str,
    values: Annotated[
        list[str], typer.Argument(help="KEY=VALUE, KEY=@FILE or KEY=- (read from stdin).")
    ],
    project: ProjectOpt = "default",
) -> None:
    """Create or replace a secret. Prefer KEY=@FILE or KEY=- : a value on the command line
    stays in your shell's history."""
    data = dict(_value(v) for v in values)
    result = client().set_secret(name, data, project)
    console.print(
        f"secret/{name} set ({', '.join(result['keys'])}); use it as "
        f"env: {{VAR: {{secretRef: {name}/{result['keys'][0]}}}}}",
        highlight=False,
        markup=False,
    )


@app.command("list")
def list_secrets(project: ProjectOpt = "default", output: OutputOpt = Format.table) -> None:
    """Secrets and their keys (never their values)."""
    items = client().secrets(project)
    if output != Format.table:
        dump(items, output)
        return
    table = Table("NAME", "KEYS", "UPDATED", box=None, header_style="bold")
    for s in items:
        table.add_row(s["name"], ", ".join(s["keys"]), age(s["updatedAt"]))
    console.print(table)


@app.command()
def delete(
    name: str,
    project: ProjectOpt = "default",
    force: Annotated[bool, typer.Option(help="Delete even if workloads use it.")] = False,
) -> None:
    """Delete a secret (refused while a resource uses it, unless --force)."""
    client().delete_secret(name, project, force=force)
    console.print(f"secret/{name} [red]deleted[/red]", highlight=False)


@app.command()
def reencrypt() -> None:
    """Encrypt every secret again with the first key of DOCKYARD_SECRET_KEY (key rotation)."""
    count = client().reencrypt_secrets()
    console.print(f"{count} secret(s) encrypted with the first key")
