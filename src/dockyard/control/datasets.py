"""Datasets: fetch a source or run a preparation command, then checksum the result."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from dockyard.control import workloads as wl
from dockyard.control.context import Context, World, write_status
from dockyard.control.scheduler import Decision, Demand
from dockyard.data import datasets as data
from dockyard.data.files import atomic_write_json
from dockyard.runtimes.base import WorkloadRequest
from dockyard.spec import DatasetSpec
from dockyard.store.tables import ResourceRow


class DatasetReconciler:
    kind = "Dataset"

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def target(self, row: ResourceRow) -> Path:
        return self.ctx.volumes.path(row.project, row.spec["volume"]) / (
            row.spec.get("path") or row.name
        )

    def staging(self, row: ResourceRow) -> Path:
        target = self.target(row)
        return target.with_name(f".{target.name}.prepare-g{row.generation}")

    def reconcile(self, world: World, row: ResourceRow) -> tuple[Demand | None, Any]:
        owned = [wl.refresh(self.ctx, w) for w in world.owned(row.uid)]
        active = [w for w in owned if w.phase in wl.ACTIVE]
        if row.deleted_at is not None:
            for w in active:
                wl.stop(self.ctx, w)
            if self.ctx.tasks.busy(row.uid):
                return None, None  # a fetch is writing: delete after it ends
            if row.control.get("purge"):
                shutil.rmtree(self.target(row), ignore_errors=True)
            return None, ("delete", row)
        for w in active:
            if w.generation != row.generation:
                wl.stop(self.ctx, w)
        spec = DatasetSpec.model_validate(row.spec)
        status = row.status
        current = status.get("observedGeneration") == row.generation
        commit_key = f"{row.uid}:commit:{row.generation}"
        if (
            current
            and status.get("phase") in ("Ready", "Failed")
            and not self.ctx.tasks.get(commit_key)
        ):
            return None, None
        if world.get("Volume", row.project, spec.volume) is None:
            write_status(
                self.ctx,
                row,
                {
                    "phase": "Pending",
                    "reason": "Waiting",
                    "message": f"volume '{spec.volume}' not found: apply it",
                    "observedGeneration": row.generation,
                },
            )
            return None, None
        self.ctx.volumes.ensure(row.project, spec.volume)
        task = self.ctx.tasks.get(commit_key)
        if task is not None and task.done:
            self._finish(row, commit_key)
            return None, None
        if task is not None:
            write_status(
                self.ctx,
                row,
                {
                    "phase": "Fetching" if spec.source else "Checksumming",
                    "reason": "Fetching",
                    "message": task.progress,
                    "observedGeneration": row.generation,
                },
            )
            return None, None
        if spec.source is not None:
            self._submit_fetch(row, spec, commit_key)
            return None, None
        return self._prepare(world, row, spec, owned, commit_key)

    def _prepare(
        self, world: World, row: ResourceRow, spec: DatasetSpec, owned: list[Any], commit_key: str
    ) -> tuple[Demand | None, Any]:
        assert spec.prepare is not None
        mine = [w for w in owned if w.generation == row.generation]
        last = mine[-1] if mine else None
        number = 1 if last is None else last.number + (0 if last.phase in wl.ACTIVE else 1)
        if last is not None and last.reason == "Interrupted":
            last = None  # stopped with the server: prepare again
        base = {"observedGeneration": row.generation}
        if last is not None and last.phase in wl.ACTIVE:
            write_status(
                self.ctx,
                row,
                {
                    **base,
                    "phase": "Preparing",
                    "reason": "Running",
                    "message": f"running {' '.join(spec.prepare.command)}",
                },
            )
            return None, None
        if last is not None and last.phase == "Succeeded":
            staging = self.staging(row)
            self.ctx.tasks.submit(
                commit_key,
                row.uid,
                lambda _s: data.commit(
                    staging, self.target(row), spec.sha256, f"dataset '{row.name}'"
                ),
            )
            return None, None
        if last is not None:
            tail = wl.log_tail(self.ctx, last)
            write_status(
                self.ctx,
                row,
                {
                    **base,
                    "phase": "Failed",
                    "reason": last.reason,
                    "message": f"the prepare command failed: "
                    f"{last.message}" + (f": {tail}" if tail else ""),
                },
            )
            return None, None
        prep = spec.prepare.model_dump(mode="json", by_alias=True)
        inputs = wl.resolve_inputs(self.ctx, world, row, prep)
        if inputs.blocked or inputs.fatal:
            write_status(
                self.ctx,
                row,
                {
                    **base,
                    "phase": "Failed" if inputs.fatal else "Pending",
                    "reason": "Waiting",
                    "message": inputs.fatal or inputs.blocked,
                },
            )
            return None, None
        if row.status.get("reason") not in wl.WAITING_REASONS:
            write_status(
                self.ctx,
                row,
                {
                    **base,
                    "phase": "Pending",
                    "reason": "Scheduling",
                    "message": "waiting for resources",
                },
            )
        demand = wl.need_of(prep["resources"]).demand(row.uid, 0, row.created_at)
        return demand, (row, spec, inputs, number)

    def start(
        self, pending: tuple[ResourceRow, DatasetSpec, wl.Inputs, int], decision: Decision
    ) -> None:
        row, spec, inputs, number = pending
        assert spec.prepare is not None
        if wl.unschedulable(self.ctx, row, decision):
            return
        staging = self.staging(row)
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        wid = wl.workload_id("prepare", row, f"g{row.generation}", f"r{number}")
        need = wl.need_of(spec.prepare.resources.model_dump())
        request = WorkloadRequest(
            id=wid,
            command=spec.prepare.command,
            env={"DOCKYARD_DATASET": row.name, **spec.prepare.env},
            environment=inputs.environment,
            code_dir=inputs.code_dir,
            mounts=(),
            output_dir=staging,
            cpu=need.cpu,
            cpu_limit=need.cpu_limit,
            memory=need.memory or None,
            gpu=need.gpu,
            labels={"dockyard.dev/dataset": row.name},
        )
        wl.start(
            self.ctx,
            row,
            wid,
            "prepare",
            row.generation,
            number,
            request,
            runtime=spec.prepare.runtime,
        )
        write_status(
            self.ctx,
            row,
            {
                **row.status,
                "phase": "Preparing",
                "reason": "Running",
                "message": f"running {' '.join(spec.prepare.command)}",
            },
        )

    def _submit_fetch(self, row: ResourceRow, spec: DatasetSpec, key: str) -> None:
        assert spec.source is not None
        source = spec.source

        def work(state: Any) -> dict[str, Any]:
            staging = data.staging_dir(self.target(row))

            def progress(done: int, total: int | None) -> None:
                state.progress = f"{done >> 10} KiB" + (f" of {total >> 10} KiB" if total else "")

            try:
                data.fetch(source, staging, progress)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            return data.commit(staging, self.target(row), spec.sha256, f"dataset '{row.name}'")

        self.ctx.tasks.submit(key, row.uid, work)
        write_status(
            self.ctx,
            row,
            {
                "phase": "Fetching",
                "reason": "Fetching",
                "message": f"fetching {source}",
                "observedGeneration": row.generation,
            },
        )

    def _finish(self, row: ResourceRow, key: str) -> None:
        task = self.ctx.tasks.take(key)
        assert task is not None
        base = {"observedGeneration": row.generation}
        error = task.future.exception()
        if error is not None:
            write_status(
                self.ctx,
                row,
                {**base, "phase": "Failed", "reason": type(error).__name__, "message": str(error)},
            )
            return
        result = task.future.result()
        manifest_path = self.ctx.settings.home / "manifests" / f"{row.uid}-g{row.generation}.json"
        atomic_write_json(manifest_path, result["files"])
        files = result["files"]
        write_status(
            self.ctx,
            row,
            {
                **base,
                "phase": "Ready",
                "reason": "Checksummed",
                "message": f"{len(files)} file(s), sha256 {result['sha256'][:12]}…",
                "sha256": result["sha256"],
                "files": len(files),
                "bytes": sum(f["size"] for f in files.values()),
                "path": str(self.target(row)),
                "manifest": str(manifest_path),
            },
        )
