"""Volumes on the local machine: a directory per volume under its tier's root.

The roots are ``DOCKYARD_TIER_FAST_PATH``, ``DOCKYARD_TIER_STANDARD_PATH`` and
``DOCKYARD_TIER_ARCHIVE_PATH`` (each ``DOCKYARD_HOME/volumes`` when unset); a volume of
project P called N of tier T lives at ``<root of T>/P/N``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from dockyard.paths import Inside

DEFAULT_TIER = "standard"


class VolumeDirs:
    def __init__(self, root: Path, tiers: Callable[[str], Path] | None = None) -> None:
        self.root = root
        self.tiers = tiers or (lambda _tier: root)

    def path(self, project: str, name: str, tier: str = DEFAULT_TIER) -> Path:
        return self.tiers(tier) / project / name

    def ensure(self, project: str, name: str, tier: str = DEFAULT_TIER) -> Path:
        path = self.path(project, name, tier)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def inside(self, project: str, name: str, tier: str = DEFAULT_TIER) -> Inside:
        """The volume's contents, as a workload could have left them (links not followed)."""
        return Inside(self.path(project, name, tier))

    def usage(self, project: str, name: str, tier: str = DEFAULT_TIER) -> tuple[int, int]:
        path = self.path(project, name, tier)
        return self.inside(project, name, tier).usage() if path.is_dir() else (0, 0)

    def purge(self, project: str, name: str, tier: str = DEFAULT_TIER) -> None:
        Inside(self.tiers(tier) / project).remove(name)
