"""Settings that belong to a home, kept in it: every later start of its control plane uses them.

A control plane's runtime, database, cluster, namespace prefix, storage classes, registry,
image loader and data roots say *where its resources live*. They are written to
``DOCKYARD_HOME/settings.json`` (0600) at the first start and read back by every later one —
``dockyard server start``, the CLI's auto-start, ``server run`` replicas — so a server started
by a plain command after a crash never runs a cluster's workloads on its own host. A variable
set in the environment still wins and is kept from then on; one that would move a home that
has resources to another runtime is refused (:class:`HomeMismatch`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from dockyard.errors import DockyardError, HomeMismatch
from dockyard.paths import write_private
from dockyard.settings import Settings

FILE = "settings.json"
# the fields that say where a home's resources and data live (docs: README, Configuration)
KEPT = (
    "runtime",
    "database_url",
    "kubeconfig",
    "kube_context",
    "kube_namespace_prefix",
    "kube_storage_classes",
    "kube_registry",
    "kube_image_loader",
    "containers_conf",
    "base_image",
    "tier_fast_path",
    "tier_standard_path",
    "tier_archive_path",
    "snapshot_path",
)
PATHS = frozenset(
    {"kubeconfig", "containers_conf", "tier_fast_path", "tier_standard_path"}
    | {"tier_archive_path", "snapshot_path"}
)


def path_of(home: Path) -> Path:
    return home / FILE


def stored(home: Path) -> dict[str, Any]:
    """What the home keeps ({} for a new home); a damaged file is an error, never ignored."""
    path = path_of(home)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DockyardError(
            f"{path} is not readable JSON: {exc}",
            hint="fix it or remove it (the next start writes it again from the environment)",
        ) from exc
    if not isinstance(data, dict):
        raise DockyardError(f"{path} is not a JSON object", hint="fix it or remove it")
    return {k: v for k, v in data.items() if k in KEPT}


def with_home(settings: Settings) -> Settings:
    """``settings`` with the home's kept value for every field the environment did not set."""
    kept = stored(settings.home)
    missing = {k: v for k, v in kept.items() if k not in settings.model_fields_set}
    if not missing:
        return settings
    merged = {**settings.model_dump(), **missing}
    return Settings.model_validate(merged)


def _values(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in KEPT:
        value = getattr(settings, name)
        if value is not None and name in PATHS:
            value = str(Path(value).expanduser().resolve())
        out[name] = value
    return out


def check(settings: Settings, resources: int) -> None:
    """Refuse a start that would change the runtime of a home with resources (``resources``
    < 0: the store could not be counted, so it may have some)."""
    kept = stored(settings.home)
    values = _values(settings)
    before = kept.get("runtime")
    if resources and before is not None and before != values["runtime"]:
        what = f"its {resources} resource(s)" if resources > 0 else "the resources of its store"
        raise HomeMismatch(
            f"the home {settings.home} runs {what} on {before!r}; this "
            f"start asks for runtime {values['runtime']!r} (DOCKYARD_RUNTIME), which would run "
            "them somewhere else",
            hint=f"unset DOCKYARD_RUNTIME (the home keeps its settings in {path_of(settings.home)}"
            "), delete the resources first, or use another DOCKYARD_HOME",
        )


def keep(settings: Settings, resources: int = 0) -> None:
    """After a start that worked: write what it uses into the home (``check`` first)."""
    check(settings, resources)
    values = _values(settings)
    if values != stored(settings.home):
        write_private(path_of(settings.home), (json.dumps(values, indent=2) + "\n").encode())
