"""Local environments: one virtual environment per package list, cached by its hash."""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import json
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

from dockyard.errors import DockyardError, RuntimeUnavailable
from dockyard.runtimes.base import PreparedEnvironment
from dockyard.spec import EnvironmentSpec

READY = ".dockyard-ready.json"


def current_python() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def find_python(version: str | None) -> str:
    """The interpreter that builds an environment for ``version`` (default: ours)."""
    if version is None or version == current_python():
        return getattr(sys, "_base_executable", sys.executable)
    found = shutil.which(f"python{version}")
    if found is None:
        raise RuntimeUnavailable(
            f"Python {version} is not installed on this machine",
            hint=f"install python{version}, or remove 'python:' to use Python {current_python()}",
        )
    return found


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


class VenvBuilder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def location(self, spec: EnvironmentSpec) -> tuple[str, Path]:
        version = spec.python or current_python()
        digest = spec.content_hash(version)
        return digest, self.root / digest[:16]

    def ready(self, location: Path) -> bool:
        return (location / READY).exists() and (location / "bin" / "python").exists()

    def build(self, spec: EnvironmentSpec, progress: Callable[[str], None]) -> PreparedEnvironment:
        digest, location = self.location(spec)
        prepared = PreparedEnvironment(
            digest, str(location), str(location / "bin" / "python"), dict(spec.env)
        )
        with _locked(self.root / f"{digest[:16]}.lock"):
            if self.ready(location):
                progress("cached")
                return prepared
            python = find_python(spec.python)
            if location.exists():
                shutil.rmtree(location)  # an interrupted build: start over
            log_path = self.root / f"{digest[:16]}.log"
            progress("creating virtual environment")
            with open(log_path, "w") as log:
                self._run([python, "-m", "venv", "--without-pip", str(location)], log, progress)
                if spec.packages:
                    progress(f"installing {len(spec.packages)} package(s)")
                    requirements = location / "requirements.txt"
                    requirements.write_text("\n".join(spec.packages) + "\n")
                    self._run(
                        [
                            *self._pip(location),
                            "install",
                            "--no-input",
                            "--progress-bar",
                            "off",
                            "-r",
                            str(requirements),
                        ],
                        log,
                        progress,
                    )
            (location / READY).write_text(
                json.dumps({"hash": digest, "python": python, "packages": spec.packages})
            )
            progress("ready")
        return prepared

    @staticmethod
    def _pip(location: Path) -> list[str]:
        if importlib.util.find_spec("pip") is None:  # pragma: no cover - venvs without pip
            raise RuntimeUnavailable(
                "pip is not available to build environments",
                hint="install pip into Dockyard's own Python",
            )
        return [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(location / "bin" / "python"),
            "--disable-pip-version-check",
        ]

    @staticmethod
    def _run(argv: list[str], log: object, progress: Callable[[str], None]) -> None:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        tail: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            log.write(line)  # type: ignore[attr-defined]
            stripped = line.strip()
            if not stripped or stripped.startswith("WARNING: Location"):
                continue
            tail = [*tail[-14:], stripped]
            if stripped.startswith(("Collecting", "Installing", "Successfully")):
                progress(stripped[:120])
        if proc.wait() != 0:
            errors = [t for t in tail if "ERROR" in t] or tail[-5:]
            raise DockyardError(
                f"building the environment failed: {' | '.join(errors)[-600:]}",
                hint="check the package names and versions in spec.packages",
            )
