"""Optional parts fail in one line: every CLI command runs with the extras absent (their
modules made unimportable in the CLI and in the server it starts), and what needs an extra
names the one to install — never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer

from dockyard.cli.main import app
from tests.conftest import ROOT
from tests.unit.test_serve import MODELS

# each extra of pyproject, and the modules it brings
EXTRAS = {
    "kubernetes": ("lightkube",),
    "postgres": ("psycopg",),
    "sklearn": ("sklearn", "joblib"),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "onnx": ("onnxruntime", "onnx"),
    "torch": ("torch",),
}
BLOCKER = """
import os, sys
BLOCKED = {n for n in os.environ.get("DOCKYARD_TEST_BLOCK", "").split(",") if n}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, Blocker())
"""


def commands(group: Any, prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every command path of the CLI (``server start``, ``get``, …)."""
    context = group.context_class(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        if hasattr(command, "list_commands"):
            yield from commands(command, (*prefix, name))
        elif command is not None:
            yield (*prefix, name)


@pytest.fixture
def without(tmp_path: Path) -> Iterator[dict[str, str]]:
    """An environment whose Python cannot import the extras' modules (server included)."""
    (tmp_path / "block").mkdir()
    (tmp_path / "block" / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKYARD_")}
    env.update(
        PYTHONPATH=f"{tmp_path / 'block'}:{ROOT / 'src'}",
        DOCKYARD_HOME=str(tmp_path / "home"),
        DOCKYARD_TEST_BLOCK=",".join(m for mods in EXTRAS.values() for m in mods),
        COLUMNS="200",
    )
    yield env
    run(env, "server", "stop")


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-c", "from dockyard.cli.main import main; main()", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )
    out = done.stdout + done.stderr
    assert "Traceback" not in out, (args, out)
    return done


def test_every_command_answers_without_any_extra(without: dict[str, str]) -> None:
    group = typer.main.get_command(app)
    paths = list(commands(group))
    assert len(paths) > 20 and ("server", "start") in paths and ("render",) in paths
    for path in paths:
        done = run(without, *path, "--help")
        assert done.returncode == 0, (path, done.stderr)


SERVE = {  # a model file of each framework (what `dockyard serve` detects it by)
    extra: (file, data) for extra, (file, data, _imports, _extra) in MODELS.items()
}


@pytest.mark.parametrize("extra", ["kubernetes", "postgres", *sorted(SERVE)])
def test_what_needs_an_extra_names_it_in_one_line(
    without: dict[str, str], tmp_path: Path, extra: str
) -> None:
    env, args = dict(without), ["get"]
    if extra == "kubernetes":
        env["DOCKYARD_RUNTIME"] = "kubernetes"
    elif extra == "postgres":
        env["DOCKYARD_DATABASE_URL"] = "postgresql://u@127.0.0.1:1/db"
    else:
        file, data = SERVE[extra]
        (tmp_path / "model").mkdir()
        (tmp_path / "model" / file).write_bytes(data)
        args = ["serve", "--model", f"m={tmp_path / 'model' / file}"]
    done = run(env, *args)
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert f"pip install 'dockyard[{extra}]'" in done.stderr, done.stderr
    assert len(lines) <= 2, done.stderr  # the error, and its hint


def test_commands_that_need_no_extra_work_without_them(without: dict[str, str]) -> None:
    """render after `make demo` (no kubernetes extra): the GitOps path works on its own."""
    rendered = run(without, "render", "-f", "examples/digits/", "--registry", "reg.local/ml")
    assert rendered.returncode == 0 and "kind: Deployment" in rendered.stdout, rendered.stderr
    for args in (["get"], ["schema", "Job"], ["models", "list"], ["secrets", "list"]):
        done = run(without, *args)
        assert done.returncode == 0, (args, done.stderr)
