"""Environments: build (or find in the cache) what workloads run in, for every runtime in use.

A local workload needs a virtual environment, a container workload an image; an Environment
is prepared for the server's default runtime and for every runtime that a workload of its
project names in ``spec.runtime``. Builds run as background tasks under the row's lease.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from dockyard.control.context import Context, World, iso, parse_iso, write_status
from dockyard.errors import DockyardError
from dockyard.runtimes.base import PreparedEnvironment, Runtime
from dockyard.spec import EnvironmentSpec
from dockyard.store.tables import ResourceRow

RECHECK = timedelta(seconds=30)  # how often a ready environment is checked to still exist


def runtimes_needed(ctx: Context, world: World, project: str) -> list[str]:
    names = {ctx.runtime.name}
    for row in world.rows.values():
        if row.project != project or row.deleted_at is not None:
            continue
        spec = row.spec
        if row.kind in ("Job", "Service") and spec.get("runtime"):
            names.add(spec["runtime"])
        if row.kind == "Dataset" and (spec.get("prepare") or {}).get("runtime"):
            names.add(spec["prepare"]["runtime"])
    return sorted(names)


class EnvironmentReconciler:
    kind = "Environment"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def reconcile(self, world: World, row: ResourceRow) -> tuple[None, Any]:
        if row.deleted_at is not None:
            return None, ("delete", row)
        spec = EnvironmentSpec.model_validate(row.spec)
        old = row.status if row.status.get("observedGeneration") == row.generation else {}
        prepared: dict[str, Any] = dict(old.get("prepared") or {})
        failed: dict[str, str] = dict(old.get("failed") or {})
        building: dict[str, str] = {}
        checked = parse_iso(old.get("checkedAt"))
        recheck = checked is None or world.at - checked > RECHECK
        for name in runtimes_needed(self.ctx, world, row.project):
            try:
                runtime = self.ctx.runtime_for(name)
            except DockyardError as exc:
                failed[name] = str(exc)
                continue
            key = f"{row.uid}:build:{name}:{row.generation}"
            task = self.ctx.tasks.get(key)
            if task is not None and task.done:
                self.ctx.tasks.take(key)
                error = task.future.exception()
                if error is not None:
                    failed[name] = str(error)
                else:
                    prepared[name] = {
                        **task.future.result().as_dict(),
                        "seconds": round(task.extra.get("seconds", 0), 1),
                        "built": bool(task.extra.get("built")),
                    }
                continue
            if task is not None:
                building[name] = task.progress or "building"
                continue
            if name in failed:
                continue  # fix the spec (a new generation) to try again
            have = prepared.get(name)
            if have is not None and (
                not recheck or runtime.environment_ready(PreparedEnvironment.from_dict(have))
            ):
                continue
            prepared.pop(name, None)
            if self._submit(key, row, spec, runtime) is None:
                building[name] = "waiting for the lease"
            else:
                building[name] = "starting"
        status: dict[str, Any] = {
            "observedGeneration": row.generation,
            "prepared": prepared,
            "checkedAt": iso(world.at) if recheck else old.get("checkedAt"),
        }
        if failed:
            status["failed"] = failed
        default = prepared.get(self.ctx.runtime.name)
        if default is not None:
            status["hash"] = default["hash"]
        if failed:
            status.update(
                phase="Failed",
                reason="BuildFailed",
                message="; ".join(f"{n}: {m}" for n, m in sorted(failed.items())),
            )
        elif building:
            status.update(
                phase="Building",
                reason="Building",
                message="; ".join(f"{n}: {m}" for n, m in sorted(building.items())),
            )
        else:
            done = [
                f"{n} {'built in ' + str(p.get('seconds')) + 's' if p.get('built') else 'cached'}"
                for n, p in sorted(prepared.items())
            ]
            status.update(
                phase="Ready",
                reason="Built",
                message=f"{len(spec.packages)} package(s); " + ", ".join(done),
            )
        write_status(self.ctx, row, status)
        return None, None

    def _submit(self, key: str, row: ResourceRow, spec: EnvironmentSpec, runtime: Runtime) -> Any:
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

            result = runtime.prepare_environment(row.name, spec, progress)
            state.extra["seconds"] = time.monotonic() - started
            return result

        return tasks.submit(key, row.uid, work)
