"""``dockyard render --target kubernetes``: the objects Dockyard would apply, as YAML for GitOps."""

from __future__ import annotations

import enum
import secrets
import sys
from typing import Annotated

import typer
import yaml

from dockyard.errors import DockyardError
from dockyard.settings import Settings


class Target(enum.StrEnum):
    kubernetes = "kubernetes"


def register(app: typer.Typer) -> None:
    app.command()(render)


def render(
    files: Annotated[
        list[str] | None,
        typer.Option("--filename", "-f", help="YAML file or directory (repeatable)."),
    ] = None,
    target: Annotated[Target, typer.Option(help="Where the objects go.")] = Target.kubernetes,
    control_plane: Annotated[
        bool,
        typer.Option(
            "--control-plane",
            help="The control plane itself (2 replicas, RBAC, Secret, Service) instead.",
        ),
    ] = False,
    image: Annotated[
        list[str] | None,
        typer.Option(
            help="SERVICE=IMAGE: the serving image of a Service (repeatable); with "
            "--control-plane, the control plane's image."
        ),
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(help="With --control-plane: the PostgreSQL URL in its Secret.")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            help="With --control-plane: the API token in its Secret (default: a new random one)."
        ),
    ] = None,
) -> None:
    """Print the Kubernetes objects of DOCUMENTS (or of the control plane) as YAML.

    The same builder as the kubernetes runtime's, for Argo CD or Flux: apply the output with
    kubectl, or commit it. Secret values are never printed: env secretRefs become
    secretKeyRefs to Kubernetes Secrets of the same names.
    """
    from dockyard.runtimes import kube_control_plane
    from dockyard.runtimes.kubernetes import cluster_options

    settings = Settings()
    if control_plane:
        objects = kube_control_plane.control_plane_objects(
            image=image[0].split("=", 1)[-1] if image else kube_control_plane.IMAGE,
            database_url=database_url or kube_control_plane.DATABASE_URL,
            token=token or secrets.token_urlsafe(32),
        )
    else:
        if not files:
            raise DockyardError(
                "nothing to render", hint="give documents: dockyard render -f examples/digits/"
            )
        from dockyard.control.render import Renderer
        from dockyard.runtimes.images import DEFAULT_BASE
        from dockyard.spec.loader import check_unique, load_paths

        images = {}
        for item in image or []:
            name, sep, value = item.partition("=")
            if not sep or not name or not value:
                raise DockyardError(f"--image {item!r} is not SERVICE=IMAGE")
            images[name] = value
        loaded = check_unique(load_paths(files))
        renderer = Renderer(
            loaded,
            cluster_options(settings),
            settings.base_image or DEFAULT_BASE,
            settings.kube_code_bytes,
            images,
        )
        objects = renderer.objects()
    sys.stdout.write(yaml.dump_all(objects, Dumper=_Plain, sort_keys=False, width=100))


class _Plain(yaml.SafeDumper):
    """YAML without anchors and aliases: each object stands alone, as kubectl expects."""

    def ignore_aliases(self, data: object) -> bool:
        return True
