"""Where a Volume's data lives on this machine: its tier's root, kept from its creation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.control.context import Context
from dockyard.control.records import ResourceRecord
from dockyard.control.world import World
from dockyard.spec import VolumeSpec
from dockyard.spec.status import VolumeStatus


def tier_of(status: VolumeStatus | dict[str, Any], spec: VolumeSpec | dict[str, Any]) -> str:
    """The tier a volume's data lives in: the one it was created in."""
    tier = status.get("tier") if isinstance(status, dict) else status.tier
    if tier:
        return str(tier)
    return str(spec.get("tier", "standard") if isinstance(spec, dict) else spec.tier)


def volume_root(ctx: Context, world: World, vol: ResourceRecord) -> Path:
    """The directory of a Volume (in its tier's root) on this machine."""
    return ctx.volumes.path(vol.project, vol.name, tier_of(vol.status, world.spec(vol)))
