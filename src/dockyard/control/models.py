"""Models: summarize the registry's versions and aliases into the resource's status."""

from __future__ import annotations

import shutil
from typing import Any

from dockyard.control.context import Context, World, write_status
from dockyard.store import model_versions as versions_repo
from dockyard.store.tables import ResourceRow


class ModelReconciler:
    kind = "Model"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, world: World, row: ResourceRow) -> tuple[None, Any]:
        with self.ctx.store.session() as session:
            if row.deleted_at is not None:
                versions_repo.delete_model(session, row.project, row.name)
                shutil.rmtree(
                    self.ctx.settings.home / "models" / row.project / row.name, ignore_errors=True
                )
                return None, ("delete", row)
            versions = versions_repo.versions(session, row.project, row.name)
            aliases = versions_repo.aliases(session, row.project, row.name)
        latest = versions[-1] if versions else None
        write_status(
            self.ctx,
            row,
            {
                "phase": "Ready" if versions else "Pending",
                "reason": "" if versions else "NoVersion",
                "message": f"{len(versions)} version(s)"
                if versions
                else "no version yet: a job with outputs.model registers one",
                "versions": len(versions),
                "latest": latest.version if latest else None,
                "aliases": aliases,
                "metrics": latest.metrics if latest else {},
                "observedGeneration": row.generation,
            },
        )
        return None, None
