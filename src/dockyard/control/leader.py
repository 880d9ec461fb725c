"""Leader election for the control loop: one lease row, taken and renewed by compare-and-swap.

Every replica serves the API; only the holder of the ``controller`` lease runs the loop. With
a lease of TTL seconds:

- the holder renews it every ``TTL / 5`` by bumping its version;
- the others remember the version they saw and when, on their own monotonic clock (so clocks
  need not agree), and take the lease over once it has not moved for ``4/5 TTL``: they first
  saw a version at or after it was written, so that is at least ``4/5 TTL`` after its last
  renewal — and, with a renewal every ``TTL / 5``, at most ``TTL`` after the leader died;
- a leader that could not renew within ``2/3 TTL`` of its last renewal stops leading, before
  anyone else may start, so two loops never overlap;
- a holder on this host whose process is gone is replaced at once, and a leader that stops
  releases the lease for an immediate handover.

This is the scheme of Kubernetes' leader election, on a table of the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from dockyard.control.identity import Identity
from dockyard.store import leases
from dockyard.store.db import Store

log = logging.getLogger("dockyard.control")
NAME = leases.CONTROLLER
RENEWALS = 5  # per TTL
STEP_DOWN = 2 / 3  # of the TTL since the last renewal: the leader stops leading
TAKE_OVER = 1 - 1 / RENEWALS  # of the TTL without a change: another replica takes over


class Leadership:
    def __init__(
        self,
        store: Store,
        identity: Identity,
        ttl: float = 5.0,
        retry: float | None = None,
        on_change: Callable[[bool], None] = lambda _leader: None,
    ) -> None:
        self.store = store
        self.identity = identity
        self.holder = identity.holder
        self.ttl = ttl
        self.retry = retry if retry is not None else max(0.05, ttl / RENEWALS)
        self.on_change = on_change
        self.current: str | None = None  # the holder last seen
        self._renewed: float | None = None
        self._seen: tuple[str | None, int] | None = None
        self._seen_at = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._was_leader = False

    @property
    def leader(self) -> bool:
        renewed = self._renewed
        return renewed is not None and time.monotonic() - renewed < self.ttl * STEP_DOWN

    def tick(self) -> bool:
        """One attempt to take or renew the lease; True while this replica leads."""
        started = time.monotonic()
        with self.store.session() as session:
            row = leases.read(session, NAME)
            if row is None:
                won = leases.swap(session, NAME, self.holder, self.ttl, None, acquired=True)
                self._took(won, started, self.holder if won else None)
                return self.leader
            self.current = row.holder
            if row.holder == self.holder:
                won = leases.swap(session, NAME, self.holder, self.ttl, row.version, False)
                if won:
                    self._renewed = started
                else:
                    self._renewed = None
                return self.leader
            self._renewed = None
            if self._seen != (row.holder, row.version):
                self._seen, self._seen_at = (row.holder, row.version), started
            ttl = row.ttl_seconds or self.ttl
            expired = started - self._seen_at >= ttl * TAKE_OVER
            if row.holder is None or expired or self.identity.dead(row.holder):
                won = leases.swap(session, NAME, self.holder, self.ttl, row.version, True)
                self._took(won, started, self.holder if won else row.holder)
        return self.leader

    def _took(self, won: bool, started: float, holder: str | None) -> None:
        self.current = holder
        if won:
            self._renewed = started
            log.info("leading the control loop (%s)", self.holder)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leader-election", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the store is unreachable: stop leading once renewals lapse
                log.warning("leader election: the store did not answer", exc_info=True)
            leader = self.leader
            if leader != self._was_leader:
                self._was_leader = leader
                if not leader:
                    log.warning("no longer leading the control loop")
                self.on_change(leader)
            self._stop.wait(self.retry)

    def stop(self, release: bool = True) -> None:
        """Stop electing; hand the lease over at once if this replica holds it."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if release and self._renewed is not None:
            try:
                with self.store.session() as session:
                    row = leases.read(session, NAME)
                    if row is not None and row.holder == self.holder:
                        leases.swap(session, NAME, None, self.ttl, row.version, False)
            except Exception:
                log.warning("could not release the leader lease", exc_info=True)
        self._renewed = None
