"""The CLI as a user runs it, for the end-to-end tests: real processes, a home per test."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

DOCKYARD = [sys.executable, "-m", "dockyard.cli.main"]


class CLI:
    def __init__(self, home: Path, env_cache: Path, **extra: str) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
        self.env.update(
            DOCKYARD_HOME=str(home),
            DOCKYARD_ENV_CACHE=str(env_cache),
            DOCKYARD_RESYNC_SECONDS="0.2",
            DOCKYARD_STOP_GRACE_SECONDS="2",
            COLUMNS="200",
            **extra,
        )

    def __call__(
        self, *args: str, ok: bool = True, timeout: float = 600
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*DOCKYARD, *args],
            env=self.env,
            cwd=ROOT,
            text=True,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
        assert "Traceback" not in result.stderr, result.stderr
        if ok:
            assert result.returncode == 0, f"{args}: {result.stdout}\n{result.stderr}"
        else:
            assert result.returncode != 0, f"{args} should fail: {result.stdout}"
        return result

    def json(self, *args: str) -> object:
        return json.loads(self(*args, "-o", "json").stdout)


@pytest.fixture
def cli(home: Path, env_cache: Path) -> Iterator[CLI]:
    runner = CLI(home, env_cache)
    yield runner
    subprocess.run(
        [*DOCKYARD, "server", "stop"], env=runner.env, capture_output=True, timeout=120, check=False
    )
