"""Volumes on the local machine: a directory per volume under ``DOCKYARD_HOME/volumes``."""

from __future__ import annotations

import shutil
from pathlib import Path

from dockyard.data.files import tree_size


class VolumeDirs:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, project: str, name: str) -> Path:
        return self.root / project / name

    def ensure(self, project: str, name: str) -> Path:
        path = self.path(project, name)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def usage(self, project: str, name: str) -> tuple[int, int]:
        return tree_size(self.path(project, name))

    def purge(self, project: str, name: str) -> None:
        shutil.rmtree(self.path(project, name), ignore_errors=True)
