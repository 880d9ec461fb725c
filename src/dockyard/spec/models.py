"""``Model``: a registry entry; its versions are created by jobs or by ``dockyard models``."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field

from dockyard.spec.common import Resource, SpecModel

ALIAS_RE = re.compile(r"^[a-z][a-z0-9-]{0,62}$")


class ModelSpec(SpecModel):
    description: str | None = Field(default=None, description="What the model is for.")
    flavor: Literal["sklearn"] | None = Field(
        default=None, description="Framework; set from the job's outputs when registered."
    )


class Model(Resource[ModelSpec]):
    KIND: ClassVar[str] = "Model"
    PLURAL: ClassVar[str] = "models"
    kind: Literal["Model"] = "Model"
