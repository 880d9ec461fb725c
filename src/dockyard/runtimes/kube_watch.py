"""A cache of the cluster's Dockyard objects, kept by one list and then a watch per kind.

Each kind (pods, Jobs, Deployments) is listed once, across namespaces and by the
``managed-by: dockyard`` label, then watched from the list's resourceVersion with bookmarks;
a watch that ends is resumed from the last version seen; ``410 Gone`` (the version is too old
for the API server) relists. Observations read the cache: no request per workload per pass.
A restarted API server is waited out with a backoff, and the watch picks up where it was.
"""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

log = logging.getLogger("dockyard.kubernetes")
Obj = dict[str, Any]
WATCH_SECONDS = 240  # the API server ends each watch after this; it is resumed at once
BACKOFF = (0.2, 5.0)  # first and longest wait before trying an unreachable API server again
REMEMBER_SECONDS = 60.0  # how long an object we wrote outlives a list that does not show it


@dataclass(frozen=True)
class Kind:
    """A watched kind: its collection path across namespaces."""

    name: str
    path: str  # e.g. /api/v1/pods, /apis/batch/v1/jobs
    everything: bool = False  # all objects of the kind, not only Dockyard's (nodes)


# every pod, not only Dockyard's: what is bound to a node takes its room (per-node admission)
PODS = Kind("Pod", "/api/v1/pods", everything=True)
JOBS = Kind("Job", "/apis/batch/v1/jobs")
DEPLOYMENTS = Kind("Deployment", "/apis/apps/v1/deployments")
NODES = Kind("Node", "/api/v1/nodes", everything=True)


@dataclass
class Counters:
    """Requests the cache made (for the benchmarks: watches, not polling)."""

    lists: int = 0
    watches: int = 0
    events: int = 0
    relists: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, name: str) -> None:
        with self.lock:
            setattr(self, name, getattr(self, name) + 1)


class Gone(Exception):
    """The API server no longer has the version a watch asked for (410): list again."""


class WatchCache:
    """Objects by kind and (namespace, name); ``on_change(obj)`` after each change."""

    def __init__(
        self,
        http: httpx.Client,
        kinds: tuple[Kind, ...],
        selector: str,
        on_change: Callable[[Kind, Obj], None],
    ) -> None:
        self.http = http
        self.kinds = kinds
        self.selector = selector
        self.on_change = on_change
        self.counters = Counters()
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {k.name: {} for k in kinds}
        self._synced = {k.name: threading.Event() for k in kinds}
        self.refused: dict[str, str] = {}  # kind -> why the API server refuses to list it
        self._remembered: dict[tuple[str, str, str], float] = {}  # written, not yet seen
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: dict[str, socket.socket] = {}  # kind -> the socket of its watch

    # -- reading ------------------------------------------------------------------------------
    def items(self, kind: Kind) -> list[Obj]:
        with self._lock:
            return list(self._objects[kind.name].values())

    def get(self, kind: Kind, namespace: str, name: str) -> Obj | None:
        with self._lock:
            return self._objects[kind.name].get((namespace, name))

    def synced(self, kind: Kind) -> bool:
        return self._synced[kind.name].is_set()

    def _selector(self, kind: Kind) -> dict[str, str]:
        return {} if kind.everything else {"labelSelector": self.selector}

    def remember(self, kind: Kind, obj: Obj) -> None:
        """An object this process just wrote, until its watch event arrives (an observation
        right after a start must not find nothing, nor a list that began before the write)."""
        key = _key(obj)
        with self._lock:
            self._objects[kind.name].setdefault(key, obj)
            self._remembered[(kind.name, *key)] = time.monotonic()
        self.on_change(kind, obj)

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in self._synced.values())

    # -- running ------------------------------------------------------------------------------
    def start(self) -> None:
        for kind in self.kinds:
            thread = threading.Thread(
                target=self._run, args=(kind,), name=f"watch-{kind.name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def close(self, timeout: float = 10.0) -> bool:
        """Stop watching; True when every watch thread has ended (then the HTTP client may be
        closed: closing it under a thread still reading would let that thread read or write
        whatever socket gets the same descriptor next)."""
        self._stop.set()
        with self._lock:
            sockets = list(self._sockets.values())
        for sock in sockets:  # wakes a blocked read with EOF; the thread closes its response
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self._threads)

    def _run(self, kind: Kind) -> None:
        while not self._stop.is_set():
            try:
                self._loop(kind)
            except Exception:  # e.g. the client closed under a watch in flight (stopping)
                if self._stop.is_set():
                    return
                log.exception("watching %s failed; listing again", kind.name)
                self._stop.wait(BACKOFF[1])

    def _loop(self, kind: Kind) -> None:
        wait = BACKOFF[0]
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._list(kind)
                version = self._watch(kind, version)
                wait = BACKOFF[0]
            except Gone:
                self.counters.add("relists")
                version = None
            except httpx.HTTPStatusError as exc:
                if exc.response.status_code in (401, 403):  # say so at once, keep trying
                    self.refused[kind.name] = _refusal(exc.response)
                    self._synced[kind.name].set()
                log.info("watching %s: %s; again in %.1f s", kind.name, exc, wait)
                self._stop.wait(wait)
                wait = min(BACKOFF[1], wait * 2)
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                if self._stop.is_set():
                    return
                log.info("watching %s: %s; again in %.1f s", kind.name, exc, wait)
                self._stop.wait(wait)
                wait = min(BACKOFF[1], wait * 2)

    def _list(self, kind: Kind) -> str:
        self.counters.add("lists")
        answer = self.http.get(kind.path, params=self._selector(kind))
        answer.raise_for_status()
        body = answer.json()
        self.refused.pop(kind.name, None)
        fresh = {(_key(o)): o for o in body.get("items") or []}
        with self._lock:
            old = self._objects[kind.name]
            now = time.monotonic()
            for key, obj in old.items():  # written by us while the list was on its way
                seen = self._remembered.get((kind.name, *key))
                if key not in fresh and seen is not None and now - seen < REMEMBER_SECONDS:
                    fresh[key] = obj
            self._objects[kind.name] = fresh
        for key in old.keys() - fresh.keys():  # gone while nobody watched
            self.on_change(kind, {**old[key], "deleted": True})
        for key, obj in fresh.items():
            if old.get(key, {}).get("metadata", {}).get("resourceVersion") != (
                obj["metadata"].get("resourceVersion")
            ):
                self.on_change(kind, obj)
        self._synced[kind.name].set()
        return str(body["metadata"]["resourceVersion"])

    def _watch(self, kind: Kind, version: str) -> str:
        self.counters.add("watches")
        params = {
            **self._selector(kind),
            "watch": "true",
            "resourceVersion": version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(WATCH_SECONDS),
        }
        timeout = httpx.Timeout(10.0, read=WATCH_SECONDS + 30)
        with self.http.stream("GET", kind.path, params=params, timeout=timeout) as answer:
            stream = answer.extensions.get("network_stream")
            sock = stream.get_extra_info("socket") if stream is not None else None
            with self._lock:
                if sock is not None:
                    self._sockets[kind.name] = sock
            try:
                if answer.status_code == 410:
                    raise Gone
                answer.raise_for_status()
                for line in answer.iter_lines():
                    if self._stop.is_set():
                        break
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    version = self._event(kind, event, version)
            finally:
                with self._lock:
                    self._sockets.pop(kind.name, None)
        return version

    def _event(self, kind: Kind, event: Obj, version: str) -> str:
        kind_of_event, obj = event.get("type"), event.get("object") or {}
        if kind_of_event == "ERROR":
            if obj.get("code") == 410:
                raise Gone
            raise ValueError(f"watch error: {obj.get('message')}")
        new_version = str(obj.get("metadata", {}).get("resourceVersion") or version)
        if kind_of_event == "BOOKMARK":
            return new_version
        self.counters.add("events")
        with self._lock:
            self._remembered.pop((kind.name, *_key(obj)), None)  # the watch has it now
            if kind_of_event == "DELETED":
                self._objects[kind.name].pop(_key(obj), None)
            else:
                self._objects[kind.name][_key(obj)] = obj
        self.on_change(kind, {**obj, "deleted": True} if kind_of_event == "DELETED" else obj)
        return new_version


def _refusal(answer: httpx.Response) -> str:
    try:
        return str(answer.json().get("message") or answer.text)
    except ValueError:
        return answer.text


def _key(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])
