"""What the security tests share: documents, files and the CLI run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from dockyard.errors import InvalidSpec
from dockyard.spec.loader import load_paths

JOB = "apiVersion: dockyard.dev/v1\nkind: Job\nmetadata:\n  name: a\nspec:\n  command: [x]\n"
"""A valid job; a test appends lines indented under ``spec`` (6 lines, so line 7 is next)."""

# the CLI never reaches a server in these tests: the specs are refused before any request
NO_SERVER = "http://127.0.0.1:9"
CLI_TIMEOUT = 120  # seconds: a subprocess still running then is a hang, and the test fails


def spec_file(tmp_path: Path, text: str | bytes, name: str = "spec.yaml") -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def refused(*paths: Path) -> InvalidSpec:
    with pytest.raises(InvalidSpec) as info:
        load_paths(paths)
    return info.value


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def errors(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


def dockyard(home: Path, *args: str, cwd: Path | None = None) -> Run:
    """``dockyard ARGS`` in a subprocess, like a user; TimeoutExpired (a hang) fails the test."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(DOCKYARD_HOME=str(home), DOCKYARD_URL=NO_SERVER, COLUMNS="400")
    result = subprocess.run(
        [sys.executable, "-m", "dockyard.cli.main", *args],
        env=env,
        cwd=cwd or home.parent,
        text=True,
        capture_output=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def assert_one_clean_error(run: Run, path: Path, line: int | None = None) -> str:
    """Exit 1, no traceback, and exactly one ``error:`` line naming the file (and line)."""
    assert "Traceback" not in run.stderr, run.stderr
    assert run.returncode == 1, run.stderr
    assert len(run.errors) == 1, run.stderr
    where = f"error: {path}:" if line is None else f"error: {path}:{line}"
    assert run.errors[0].startswith(where), run.stderr
    return run.errors[0]
