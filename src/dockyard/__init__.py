"""Dockyard: run AI workloads (explore, train, serve) together with their data."""

from typing import TYPE_CHECKING, Any

from dockyard.version import __version__

__all__ = ["Client", "__version__"]

if TYPE_CHECKING:
    from dockyard.client import Client


def __getattr__(name: str) -> Any:
    # imported lazily so that the model server and the job shim stay light
    if name == "Client":
        from dockyard.client import Client

        return Client
    raise AttributeError(name)
