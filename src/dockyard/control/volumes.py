"""Volumes: make sure the directory exists and report its usage."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from dockyard.control.context import Context, World, iso, parse_iso, write_status
from dockyard.store.tables import ResourceRow

USAGE_EVERY = timedelta(seconds=30)


class VolumeReconciler:
    kind = "Volume"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, world: World, row: ResourceRow) -> tuple[None, Any]:
        if row.deleted_at is not None:
            if row.control.get("purge"):
                self.ctx.volumes.purge(row.project, row.name)
            return None, ("delete", row)
        path = self.ctx.volumes.ensure(row.project, row.name)
        status = dict(row.status)
        measured = parse_iso(status.get("usageAt"))
        if (
            measured is None
            or world.at - measured > USAGE_EVERY
            or status.get("observedGeneration") != row.generation
        ):
            files, used = self.ctx.volumes.usage(row.project, row.name)
            status.update(files=files, usedBytes=used, usageAt=iso(world.at))
        status.update(
            phase="Ready", reason="", message="", path=str(path), observedGeneration=row.generation
        )
        write_status(self.ctx, row, status)
        return None, None
