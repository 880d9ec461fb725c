"""How another Python (a workload's environment) starts this model server.

``boot.py`` runs with the environment's interpreter: its own packages come first (the
model's framework, at the version it was trained with), Dockyard and its dependencies are
appended from ``DOCKYARD_APPEND_PATH``. Services and ``dockyard serve`` both start it so.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent
BOOT = PACKAGE / "serving" / "boot.py"


def serving_paths() -> tuple[str, ...]:
    """Where Dockyard and its dependencies live, appended after the environment's own."""
    own = str(PACKAGE.parent)
    return (own, *[p for p in sys.path if p.endswith(("site-packages", "dist-packages"))])


def boot_environ(
    location: str, env: dict[str, str], base: dict[str, str] | None = None
) -> dict[str, str]:
    """The variables of a model server run with the virtual environment at ``location``."""
    out = dict(os.environ if base is None else base)
    out["VIRTUAL_ENV"] = location
    out["PATH"] = str(Path(location) / "bin") + os.pathsep + out.get("PATH", os.defpath)
    out.update(env)
    out["DOCKYARD_APPEND_PATH"] = os.pathsep.join(serving_paths())
    return out
