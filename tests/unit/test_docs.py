"""The docs say what the code does: the field reference is generated from the models."""

from __future__ import annotations

import contextlib
import io
import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_spec_reference_matches_the_models() -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        runpy.run_path(str(ROOT / "scripts" / "spec_reference.py"), run_name="__main__")
    generated = out.getvalue().strip()
    assert generated in (ROOT / "docs" / "spec.md").read_text(), (
        "docs/spec.md is out of date: paste the output of scripts/spec_reference.py"
    )


def test_readme_starts_with_the_two_commands() -> None:
    head = (ROOT / "README.md").read_text().splitlines()[:12]
    assert any(line.startswith("make demo") for line in head)
    assert any(line.startswith("make test") for line in head)
