"""Environments: build (or find in the cache) what the workloads' code runs in."""

from __future__ import annotations

import time
from typing import Any

from dockyard.control.context import Context, World, write_status
from dockyard.runtimes.base import PreparedEnvironment
from dockyard.runtimes.venvs import current_python
from dockyard.spec import EnvironmentSpec
from dockyard.store.tables import ResourceRow


class EnvironmentReconciler:
    kind = "Environment"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, world: World, row: ResourceRow) -> tuple[None, Any]:
        if row.deleted_at is not None:
            return None, ("delete", row)
        spec = EnvironmentSpec.model_validate(row.spec)
        wanted = spec.content_hash(spec.python or current_python())
        status = row.status
        prepared = status.get("prepared") or {}
        key = f"{row.uid}:build:{wanted}"
        current = status.get("observedGeneration") == row.generation
        if (
            current
            and status.get("phase") == "Ready"
            and prepared.get("hash") == wanted
            and self.ctx.tasks.get(key) is None
            and self.ctx.runtime.environment_ready(PreparedEnvironment.from_dict(prepared))
        ):
            return None, None
        if current and status.get("phase") == "Failed" and self.ctx.tasks.get(key) is None:
            return None, None  # fix the spec (a new generation) to try again
        task = self.ctx.tasks.get(key)
        if task is None:
            task = self._submit(key, row, spec)
            if task is None:
                write_status(
                    self.ctx,
                    row,
                    {
                        "phase": "Pending",
                        "reason": "Leased",
                        "message": "another controller is building it",
                    },
                )
                return None, None
        if not task.done:
            write_status(
                self.ctx,
                row,
                {
                    "phase": "Building",
                    "reason": "Building",
                    "message": task.progress or "building",
                    "hash": wanted,
                    "observedGeneration": row.generation,
                },
            )
            return None, None
        self.ctx.tasks.take(key)
        error = task.future.exception()
        if error is not None:
            write_status(
                self.ctx,
                row,
                {
                    "phase": "Failed",
                    "reason": "BuildFailed",
                    "message": str(error),
                    "hash": wanted,
                    "observedGeneration": row.generation,
                },
            )
        else:
            result = task.future.result()
            seconds = task.extra.get("seconds", 0)
            write_status(
                self.ctx,
                row,
                {
                    "phase": "Ready",
                    "reason": "Built",
                    "hash": wanted,
                    "message": f"{len(spec.packages)} package(s) in {seconds:.1f}s"
                    if task.extra.get("built")
                    else "found in the cache",
                    "prepared": result.as_dict(),
                    "observedGeneration": row.generation,
                },
            )
        return None, None

    def _submit(self, key: str, row: ResourceRow, spec: EnvironmentSpec) -> Any:
        tasks = self.ctx.tasks

        def work(state: Any) -> Any:
            started = time.monotonic()
            last_renew = [started]

            def progress(message: str) -> None:
                state.progress = message
                if message != "cached":
                    state.extra["built"] = True
                if time.monotonic() - last_renew[0] > 30:
                    tasks.renew(state)
                    last_renew[0] = time.monotonic()
                self.ctx.wake()

            result = self.ctx.runtime.prepare_environment(row.name, spec, progress)
            state.extra["seconds"] = time.monotonic() - started
            return result

        return tasks.submit(key, row.uid, work)
