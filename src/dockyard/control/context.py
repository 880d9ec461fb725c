"""What reconcilers share: settings, store, runtimes, data stores, lanes and tasks."""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from dockyard.control.identity import Identity
from dockyard.control.lanes import Lanes
from dockyard.control.tasks import Tasks
from dockyard.data.artifacts import ArtifactStore
from dockyard.data.code import CodeStore
from dockyard.data.snapshots import SnapshotStore
from dockyard.data.volumes import VolumeDirs
from dockyard.errors import RuntimeUnavailable
from dockyard.runtimes.base import Runtime
from dockyard.settings import Settings
from dockyard.store import leases
from dockyard.store.db import Store
from dockyard.vault import Vault


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    store: Store
    runtime: Runtime
    artifacts: ArtifactStore
    code: CodeStore
    volumes: VolumeDirs
    lanes: Lanes
    tasks: Tasks
    identity: Identity  # this replica (the holder of its leases)
    vault: Vault  # secret values, encrypted at rest
    wake: Callable[[], None] = lambda: None
    runtimes: dict[str, Runtime] = field(default_factory=dict)
    _runtimes_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    factory: Callable[[str], Runtime] | None = None
    is_leader: Callable[[], bool] = lambda: True
    fenced: bool = False  # the loop's writes check the leader lease (a Leadership elects)

    @functools.cached_property
    def snapshots(self) -> SnapshotStore:
        """Every volume's snapshots (and the home's), in one deduplicated store."""
        return SnapshotStore(self.settings.snapshots_dir)

    @property
    def holder(self) -> str:
        return self.identity.holder

    def runtime_for(self, name: str | None) -> Runtime:
        """The runtime called ``name`` (None: the default), created on first use."""
        if name is None or name == self.runtime.name:
            return self.runtime
        with self._runtimes_lock:  # the loop and the lanes ask at once: one runtime each
            if name not in self.runtimes:
                if self.factory is None:
                    raise RuntimeUnavailable(f"runtime '{name}' is not available here")
                self.runtimes[name] = self.factory(name)
            return self.runtimes[name]

    def fence(self, session: Session) -> None:
        """Inside a write of the control loop: this replica still leads (NotLeading if not,
        and the write must not land)."""
        if self.fenced:
            leases.fence(session, leases.CONTROLLER, self.identity.holder)

    def runtime_name(self, name: str | None) -> str:
        return name or self.runtime.name

    def lane_of(self, runtime: str | None) -> str:
        """Calls into a runtime run in its own lane: a hung engine delays only its work."""
        return f"runtime-{self.runtime_name(runtime)}"
