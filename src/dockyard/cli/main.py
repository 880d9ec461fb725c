"""The ``dockyard`` command line. It talks to the control plane through the SDK only."""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from dockyard.cli import (
    images,
    models,
    predict,
    render,
    resources,
    secrets,
    serve,
    server,
    volumes,
)
from dockyard.cli.output import err_console
from dockyard.errors import DockyardError

app = typer.Typer(
    name="dockyard",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Run AI workloads (explore, train, serve) together with their data.\n\n"
    "Start with: dockyard apply -f examples/digits/ --wait",
)
resources.register(app)
predict.register(app)
serve.register(app)
render.register(app)
volumes.register(app)
app.add_typer(models.app, name="models", help="The model registry: versions, metrics, aliases.")
app.add_typer(server.app, name="server", help="The embedded control plane.")
app.add_typer(images.app, name="images", help="Container images of environments.")
app.add_typer(secrets.app, name="secrets", help="Values for workloads, encrypted at rest.")
app.add_typer(volumes.app, name="volumes", help="Snapshots and restores of volumes.")
app.add_typer(volumes.datasets_app, name="datasets", help="Versions of datasets.")


def _printable(text: str) -> str:
    """``text`` with control characters (but newlines) and undecodable bytes escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


def main() -> None:
    try:
        app()
    except DockyardError as exc:
        # one line each; brackets (pip install 'dockyard[sklearn]') are text, not markup;
        # a user's text (a file name, a value) never reaches the terminal as control codes
        message = f"[red]error:[/red] {escape(_printable(exc.message))}"
        err_console.print(message, highlight=False, soft_wrap=True)
        if exc.hint:
            hint = f"[dim]hint: {escape(_printable(exc.hint))}[/dim]"
            err_console.print(hint, highlight=False, soft_wrap=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
