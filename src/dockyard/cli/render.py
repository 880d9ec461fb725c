"""``dockyard render --target kubernetes``: the objects Dockyard would apply, as YAML for GitOps."""

from __future__ import annotations

import enum
import shutil
import sys
from collections.abc import Callable
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
    project: Annotated[
        str | None,
        typer.Option("--project", "-p", help="The project of documents that name none."),
    ] = None,
    namespace: Annotated[
        str | None,
        typer.Option(
            "--namespace",
            "-n",
            help="Put everything in this namespace (default: <prefix>gitops-<project>, never "
            "a live control plane's).",
        ),
    ] = None,
    registry: Annotated[
        str | None,
        typer.Option(
            help="Where the images were pushed (dockyard images build ENV --serving --push "
            "REGISTRY); without it they must exist on this machine.",
        ),
    ] = None,
    control_plane: Annotated[
        bool,
        typer.Option(
            "--control-plane",
            help="The control plane itself (2 replicas, RBAC, Service) instead.",
        ),
    ] = False,
    image: Annotated[
        list[str] | None,
        typer.Option(
            help="NAME=IMAGE: the image of an environment or a service (repeatable); with "
            "--control-plane, the control plane's image.",
        ),
    ] = None,
) -> None:
    """Print the Kubernetes objects of DOCUMENTS (or of the control plane) as YAML.

    They run without Dockyard (kubectl apply, Argo CD, Flux): the same builder as the
    kubernetes runtime's, ordered by sync waves and init containers that wait, the trained
    model served from a claim, secrets as references to Secrets you create (never values).
    """
    from dockyard import home_settings
    from dockyard.runtimes import kube_control_plane
    from dockyard.runtimes.kube_objects import cluster_options

    settings = home_settings.with_home(Settings())
    if registry is not None:
        settings = settings.model_copy(update={"kube_registry": registry})
    if control_plane:
        where = namespace or kube_control_plane.NAMESPACE
        header = kube_control_plane.render_header(where)
        objects = kube_control_plane.control_plane_objects(
            namespace=where,
            image=image[0].split("=", 1)[-1] if image else kube_control_plane.IMAGE,
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
        for pair in image or []:
            name, sep, value = pair.partition("=")
            if not sep or not name or not value:
                raise DockyardError(f"--image {pair!r} is not NAME=IMAGE")
            images[name] = value
        loaded = check_unique(load_paths(files))
        if project is not None:
            for item in loaded:
                if item.resource.metadata.project == "default":
                    item.resource.metadata.project = project
        renderer = Renderer(
            loaded,
            cluster_options(settings),
            settings.base_image or DEFAULT_BASE,
            settings.kube_code_bytes,
            images,
            namespace=namespace,
            exists=None if registry or settings.kube_registry else _local_images(settings),
        )
        objects = renderer.objects()
        header = renderer.header()
    sys.stdout.write(header)
    sys.stdout.write(yaml.dump_all(objects, Dumper=_Plain, sort_keys=False, width=100))


def _local_images(settings: Settings) -> Callable[[str], bool]:
    """Does this machine's container engine have an image (what render names must exist)?"""
    from dockyard.runtimes.engine import ENGINES, Engine

    found = next((name for name in ENGINES if shutil.which(name)), None)
    if found is None:
        raise DockyardError(
            "render names images that must exist, and this machine has no Podman or Docker "
            "to check them",
            hint="pass --registry REGISTRY (where `dockyard images build ENV --serving --push "
            "REGISTRY` put them), or --image NAME=IMAGE for each",
        )
    engine = Engine(found, settings.containers_conf)
    return engine.image_exists


class _Plain(yaml.SafeDumper):
    """YAML without anchors and aliases: each object stands alone, as kubectl expects."""

    def ignore_aliases(self, data: object) -> bool:
        return True
