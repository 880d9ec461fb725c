"""Watching workloads without blocking the loop: observations and readiness probes.

Each pass, the loop hands the workloads that may still run to the observer, which asks
each runtime about them in that runtime's lane (one batch per runtime in flight at a time)
and probes service replicas that are not ready yet in the ``probe`` lane. What changed is
written to the workload rows, and the loop is woken to plan with it. A runtime that hangs
only leaves its own workloads unobserved; the loop itself never waits for it.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from functools import partial

import httpx

from dockyard.control import workloads as wl
from dockyard.control.context import Context
from dockyard.control.records import WorkloadRecord
from dockyard.spec.status import ACTIVE, Phase
from dockyard.store.tables import WorkloadRow

log = logging.getLogger("dockyard.control")
PROBE_TIMEOUT = 0.5


class Observer:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def submit(self, rows: list[WorkloadRecord]) -> None:
        """Observe ``rows`` (active workloads whose start or stop is not in flight)."""
        by_runtime: dict[str, list[WorkloadRecord]] = defaultdict(list)
        for row in rows:
            by_runtime[row.runtime].append(row)
            url = row.details.get("url")
            if row.phase == Phase.RUNNING and url and not row.details.get("ready"):
                self.ctx.lanes.submit("probe", f"probe:{row.id}", partial(self._probe, row, url))
        for runtime, batch in by_runtime.items():
            self.ctx.lanes.submit(
                self.ctx.lane_of(runtime),
                f"observe:{runtime}",
                partial(self._observe, runtime, batch),
            )

    def _observe(self, runtime: str, rows: list[WorkloadRecord]) -> None:
        engine = self.ctx.runtime_for(runtime)
        changed = False
        for row in rows:
            state = engine.observe(row.id)
            change = wl.transition(row, state)
            if change is None:
                continue
            if change.phase == Phase.FAILED:
                tail = wl.log_tail(self.ctx, runtime, row.id)
                if tail:
                    change.details["logTail"] = tail
            if not self.ctx.is_leader():
                return
            wl.record(self.ctx, row.id, change)
            changed = True
        if changed:
            self.ctx.wake()

    def _probe(self, row: WorkloadRecord, url: str) -> None:
        try:
            ready = httpx.get(f"{url}/v2/health/ready", timeout=PROBE_TIMEOUT).status_code == 200
        except httpx.HTTPError:
            return
        if not ready or not self.ctx.is_leader():
            return
        with self.ctx.store.session() as session:
            self.ctx.fence(session)
            live = session.get(WorkloadRow, row.id)
            if live is None or live.phase not in ACTIVE:
                return
            live.details = {**live.details, "ready": True}
        self.ctx.wake()
