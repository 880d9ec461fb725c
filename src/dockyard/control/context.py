"""What reconcilers share: settings, store, runtime, data stores; and status helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from dockyard.control.tasks import Tasks
from dockyard.data.artifacts import ArtifactStore
from dockyard.data.code import CodeStore
from dockyard.data.volumes import VolumeDirs
from dockyard.errors import RuntimeUnavailable
from dockyard.runtimes.base import Runtime
from dockyard.settings import Settings
from dockyard.store import events
from dockyard.store import resources as repo
from dockyard.store.db import Store
from dockyard.store.tables import ResourceRow, WorkloadRow


def now() -> datetime:
    return datetime.now(UTC)


def iso(when: datetime | None) -> str | None:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else None


def parse_iso(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text.replace("Z", "+00:00")) if text else None


@dataclass
class Context:
    settings: Settings
    store: Store
    runtime: Runtime
    artifacts: ArtifactStore
    code: CodeStore
    volumes: VolumeDirs
    tasks: Tasks
    wake: Callable[[], None] = lambda: None
    changed: bool = False
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    factory: Callable[[str], Runtime] | None = None

    def runtime_for(self, name: str | None) -> Runtime:
        """The runtime called ``name`` (None: the default), created on first use."""
        if name is None or name == self.runtime.name:
            return self.runtime
        if name not in self.runtimes:
            if self.factory is None:
                raise RuntimeUnavailable(f"runtime '{name}' is not available here")
            self.runtimes[name] = self.factory(name)
        return self.runtimes[name]

    def runtimes_in_use(self) -> list[Runtime]:
        return [self.runtime, *[r for n, r in self.runtimes.items() if n != self.runtime.name]]


@dataclass
class World:
    """One consistent read of the store at the start of a reconcile pass."""

    rows: dict[tuple[str, str, str], ResourceRow]
    workloads: dict[str, list[WorkloadRow]]
    at: datetime = field(default_factory=now)

    def get(self, kind: str, project: str, name: str) -> ResourceRow | None:
        row = self.rows.get((kind, project, name))
        return None if row is None or row.deleted_at is not None else row

    def of_kind(self, kind: str) -> list[ResourceRow]:
        return [r for (k, _, _), r in self.rows.items() if k == kind]

    def owned(self, uid: str) -> list[WorkloadRow]:
        return self.workloads.get(uid, [])


READY_PHASES = {"Ready", "Succeeded"}


def with_conditions(old: dict[str, Any], new: dict[str, Any], at: datetime) -> dict[str, Any]:
    """Add a ``Ready`` condition that keeps its transition time while it does not change."""
    ready = "True" if new.get("phase") in READY_PHASES else "False"
    previous = next((c for c in old.get("conditions", []) if c.get("type") == "Ready"), None)
    changed = previous is None or previous.get("status") != ready
    condition = {
        "type": "Ready",
        "status": ready,
        "reason": new.get("reason") or new.get("phase", ""),
        "message": new.get("message", ""),
        "lastTransitionTime": iso(at) if changed else previous.get("lastTransitionTime"),  # type: ignore[union-attr]
    }
    return {**new, "conditions": [condition]}


def write_status(
    ctx: Context,
    row: ResourceRow,
    status: dict[str, Any],
    event: tuple[str, str, str] | None = None,
    at: datetime | None = None,
) -> bool:
    """Persist ``status`` if it changed; record an event on a phase change. True if written."""
    full = with_conditions(row.status, status, at or now())
    phase_changed = full.get("phase") != row.status.get("phase") or full.get(
        "reason"
    ) != row.status.get("reason")
    if full == row.status and event is None:
        return False
    with ctx.store.session() as session:
        repo.set_status(session, row.uid, full)
        if event is not None:
            events.record(session, row, event[0], event[1], event[2])
        elif phase_changed and full.get("phase"):
            record_phase_event(session, row, full)
    row.status = full
    ctx.changed = ctx.changed or phase_changed  # what others wait for is a phase, not a message
    return True


def record_phase_event(session: Session, row: ResourceRow, status: dict[str, Any]) -> None:
    phase, reason, message = (
        status.get("phase", ""),
        status.get("reason", ""),
        status.get("message", ""),
    )
    warning = phase in ("Failed",) or reason in ("Lost", "OOMKilled", "Timeout")
    events.record(
        session, row, reason or phase, message or phase, "Warning" if warning else "Normal"
    )
