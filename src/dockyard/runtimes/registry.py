"""The runtimes by name — the one place that knows which names there are and what each
needs: ``local`` (processes), ``podman`` and ``docker`` (OCI containers), ``kubernetes``.
Everything else asks a runtime for its powers (``runtimes.base``), never for its name."""

from __future__ import annotations

import shutil

from dockyard.errors import DockyardError, RuntimeUnavailable
from dockyard.runtimes.base import ImageBuilder, Runtime
from dockyard.settings import Settings

ENGINES = ("podman", "docker")


def make_runtime(settings: Settings, name: str) -> Runtime:
    """The runtime called ``name``: local processes, containers of Podman or Docker, or
    a Kubernetes cluster (which builds its images with Podman)."""
    if name == "local":
        from dockyard.runtimes.local import LocalRuntime

        return LocalRuntime(settings)
    if name == "kubernetes":
        return _kubernetes(settings)
    from dockyard.runtimes.oci import OciRuntime

    return OciRuntime(settings, name)


def _kubernetes(settings: Settings) -> Runtime:
    try:
        from dockyard.runtimes.kubernetes import KubernetesRuntime
    except ImportError as exc:
        raise RuntimeUnavailable(
            f"the kubernetes runtime needs {exc.name}",
            hint="pip install 'dockyard[kubernetes]'",
        ) from exc

    def images() -> ImageBuilder:
        builder = make_runtime(settings, "podman")
        assert isinstance(builder, ImageBuilder)
        return builder

    try:
        return KubernetesRuntime(settings, images)
    except DockyardError:
        raise
    except Exception as exc:  # a kubeconfig that lightkube or ssl cannot use
        raise RuntimeUnavailable(
            f"the kubernetes runtime cannot use its kubeconfig: {type(exc).__name__}: {exc}",
            hint="check DOCKYARD_KUBECONFIG / KUBECONFIG (kubectl get --raw /readyz)",
        ) from exc


def image_engine(settings: Settings, asked: str | None) -> str:
    """The engine that builds images for a request: the one asked, else the server's own
    runtime when it is an engine, else the first of Podman and Docker this machine has."""
    if asked is not None:
        return asked
    if settings.runtime in ENGINES:
        return settings.runtime
    return next((e for e in ENGINES if shutil.which(e)), ENGINES[0])


def names() -> tuple[str, ...]:
    return ("local", *ENGINES, "kubernetes")
