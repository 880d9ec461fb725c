"""The container engine's command line (Podman or Docker), with JSON output and clear errors.

The CLI is the interface both engines share without a daemon socket (Podman has none by
default), and its JSON output (``inspect``, ``ps --format json``) is stable; every call is
a subprocess with a timeout, so a stuck engine cannot hang the control loop forever.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from dockyard.errors import EngineError, RuntimeUnavailable

ENGINES = ("podman", "docker")


class Engine:
    def __init__(
        self, name: str, containers_conf: Path | None = None, workdir: Path | None = None
    ) -> None:
        if name not in ENGINES:
            raise RuntimeUnavailable(
                f"unknown container engine '{name}'", hint="choose podman, docker or local"
            )
        self.name = name
        binary = shutil.which(name)
        if binary is None:
            raise RuntimeUnavailable(
                f"{name.capitalize()} not found: install it or choose runtime: local",
                hint=f"e.g. apt-get install {name}"
                if name == "podman"
                else "see https://docs.docker.com/engine/install/",
            )
        self.binary = binary
        self.env = dict(os.environ)
        # the engine's helpers (conmon) drop files such as 'oom' in their working directory:
        # keep them in Dockyard's own, never wherever the server was started
        self.cwd = workdir
        if workdir is not None:
            workdir.mkdir(parents=True, exist_ok=True)
        if containers_conf is not None and name == "podman":
            self.env["CONTAINERS_CONF"] = str(containers_conf)

    def run(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 120,
        input_: bytes | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        """One engine command; ``env`` adds variables to its environment (values that must
        not appear on a command line, where every user of the machine can read them)."""
        try:
            result = subprocess.run(
                [self.binary, *args],
                capture_output=True,
                env={**self.env, **env} if env else self.env,
                cwd=self.cwd,
                timeout=timeout,
                input=input_,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise EngineError(
                f"{self.name} {args[0]} did not answer within {timeout:.0f}s"
            ) from exc
        if check and result.returncode != 0:
            raise EngineError(
                f"{self.name} {' '.join(args[:2])} failed: "
                f"{result.stderr.decode(errors='replace').strip()[-800:]}"
            )
        return result

    def json(self, *args: str, timeout: float = 60) -> Any:
        """The command's JSON output; Docker's one-object-per-line output becomes a list."""
        out = self.run(*args, timeout=timeout).stdout
        if not out.strip():
            return None
        try:
            return json.loads(out)
        except ValueError:
            return [json.loads(line) for line in out.splitlines() if line.strip()]

    def inspect(self, name: str) -> dict[str, Any] | None:
        result = self.run("container", "inspect", name, check=False, timeout=60)
        if result.returncode != 0:
            return None
        data = json.loads(result.stdout)
        return data[0] if data else None

    def image_exists(self, tag: str) -> bool:
        return self.run("image", "inspect", tag, check=False, timeout=60).returncode == 0
