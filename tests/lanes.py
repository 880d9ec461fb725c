"""Parts of the machine that some tests need beyond Python packages (the lanes).

A test whose part is missing is skipped with one line that names it and how to add it
(``make test`` on a fresh machine); where ``DOCKYARD_REQUIRE_<LANE>=1`` (CI requires every
lane) the same line fails it instead, so a green CI never hides a missing step.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def required(lane: str) -> bool:
    return bool(os.environ.get(f"DOCKYARD_REQUIRE_{lane.upper()}"))


def missing(lane: str, line: str) -> NoReturn:
    """Skip (or, where the lane is required, fail) with ``line``: what is missing and how
    to add it."""
    if required(lane):
        pytest.fail(f"DOCKYARD_REQUIRE_{lane.upper()}=1 but {line}")
    pytest.skip(line)


def lightgbm_unavailable() -> str | None:
    """Why LightGBM cannot be imported here (its wheel loads the system's OpenMP), or None."""
    try:
        import lightgbm  # noqa: F401
    except OSError as exc:  # libgomp.so.1: cannot open shared object file
        return f"LightGBM cannot load {exc}: apt-get install libgomp1 (make test does as root)"
    return None
