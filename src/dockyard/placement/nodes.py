"""Node-label sources for the extender: {node name: labels}, cached briefly.

The extender reads a node's labels from a source when the scheduler sends only node names
(``nodeCacheCapable: true``). A source should answer the **same mapping object** for as long
as nothing changed: the extender then reuses the index it built from it (who holds what, where
each node is) instead of building it again per request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

log = logging.getLogger("dockyard.placement")

NodeLabels = Mapping[str, Mapping[str, str]]
NodeLabelSource = Callable[[], NodeLabels]


def labels_by_name(nodes: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """{name: labels} of Node objects (core/v1, as the API server answers them)."""
    out: dict[str, dict[str, str]] = {}
    for node in nodes:
        meta = node.get("metadata") or {}
        name = meta.get("name")
        if isinstance(name, str) and name:
            labels = meta.get("labels") or {}
            out[name] = {str(k): str(v) for k, v in labels.items()}
    return out


class CachedNodeLabels:
    """A source that lists the nodes at most once per ``ttl`` seconds.

    ``list_nodes`` answers Node objects (e.g. the items of ``GET /api/v1/nodes``, or a watch
    cache's nodes). A listing that fails keeps the last mapping (logged) and is tried again
    after ``ttl``: the extender places by slightly old labels rather than by none.
    """

    def __init__(
        self,
        list_nodes: Callable[[], Iterable[Mapping[str, Any]]],
        ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.list_nodes = list_nodes
        self.ttl = ttl
        self.clock = clock
        self.listings = 0
        self._labels: NodeLabels = {}
        self._at: float | None = None
        self._lock = threading.Lock()

    def __call__(self) -> NodeLabels:
        with self._lock:
            now = self.clock()
            if self._at is None or now - self._at >= self.ttl:
                self._at = now
                try:
                    self._labels = labels_by_name(self.list_nodes())
                    self.listings += 1
                except Exception as exc:
                    log.warning("listing the nodes failed, placing by the last list: %s", exc)
            return self._labels

    def invalidate(self) -> None:
        """List again on the next call."""
        with self._lock:
            self._at = None
