"""``Volume``: persistent storage that workloads mount."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from dockyard.spec.common import Bytes, Resource, SpecModel


class VolumeSpec(SpecModel):
    size: Bytes | None = Field(default=None, description="Capacity, e.g. '10Gi'; at most 1 PiB.")
    tier: Literal["fast", "standard", "archive"] = Field(
        default="standard", description="Service tier; maps to a storage class on Kubernetes."
    )


class Volume(Resource[VolumeSpec]):
    KIND: ClassVar[str] = "Volume"
    PLURAL: ClassVar[str] = "volumes"
    kind: Literal["Volume"] = "Volume"
