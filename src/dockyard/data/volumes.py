"""Volumes on the local machine: a directory per volume under ``DOCKYARD_HOME/volumes``."""

from __future__ import annotations

from pathlib import Path

from dockyard.paths import Inside


class VolumeDirs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project: str, name: str) -> Path:
        return self.root / project / name

    def ensure(self, project: str, name: str) -> Path:
        path = self.path(project, name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def inside(self, project: str, name: str) -> Inside:
        """The volume's contents, as a workload could have left them (links not followed)."""
        return Inside(self.path(project, name))

    def usage(self, project: str, name: str) -> tuple[int, int]:
        path = self.path(project, name)
        return self.inside(project, name).usage() if path.is_dir() else (0, 0)

    def purge(self, project: str, name: str) -> None:
        Inside(self.root / project).remove(name)
