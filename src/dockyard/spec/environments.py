"""``Environment``: what code runs in (a virtual environment locally, an image in containers)."""

from __future__ import annotations

import hashlib
import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import ENV_BOUNDS, EnvVars, Resource, SpecModel, describe

_PY_RE = re.compile(r"^3\.\d{1,2}$")
MAX_PACKAGES = 1024
"""Entries in ``packages`` and in ``systemPackages``."""


class EnvironmentSpec(SpecModel):
    python: str | None = Field(
        default=None, description="Python version such as '3.11'; unset = the server's Python."
    )
    packages: list[str] = Field(
        default_factory=list,
        max_length=MAX_PACKAGES,
        description=f"pip requirement strings, pinned where possible; at most {MAX_PACKAGES}.",
    )
    system_packages: list[str] = Field(
        default_factory=list,
        max_length=MAX_PACKAGES,
        description=f"Debian packages (container images only); at most {MAX_PACKAGES}.",
    )
    base: str | None = Field(default=None, description="Base image (container runtimes).")
    env: EnvVars = Field(default_factory=dict, description=f"Environment variables: {ENV_BOUNDS}.")

    @field_validator("python")
    @classmethod
    def _valid_python(cls, value: str | None) -> str | None:
        if value is not None and not _PY_RE.match(str(value)):
            raise PydanticCustomError(
                "python",
                "expected a Python version such as '3.11', got {got}",
                {"got": describe(value)},
            )
        return value

    @field_validator("packages")
    @classmethod
    def _valid_packages(cls, value: list[str]) -> list[str]:
        for pkg in value:
            if not pkg.strip() or pkg.strip().startswith("-"):
                raise PydanticCustomError(
                    "package",
                    "expected pip requirements such as 'scikit-learn==1.5.2', got {got}",
                    {"got": describe(pkg)},
                )
        return value

    def content_hash(self, python_version: str) -> str:
        """Identity of the built environment: same packages and Python → same hash."""
        parts = [f"python={python_version}", *sorted(p.strip() for p in self.packages)]
        return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class Environment(Resource[EnvironmentSpec]):
    KIND: ClassVar[str] = "Environment"
    PLURAL: ClassVar[str] = "environments"
    kind: Literal["Environment"] = "Environment"
