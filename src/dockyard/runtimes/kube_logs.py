"""The logs of Kubernetes workloads, kept by the control plane: streamed while a pod runs,
readable after it is gone.

Each pod whose main container really started (it has a container id: kwok's pods never do) is
followed through the pod log API (``follow=true&timestamps=true``) by one thread, at most
``max_streams`` at a time. What it prints goes through the secret masker *before* it is written
to ``DOCKYARD_HOME/logs/<workload id>/<pod>.log``, up to ``limit`` bytes per attempt
(``DOCKYARD_MAX_LOG_BYTES``); beyond that one line says the log was cut. A stream that breaks
(an API server restart, the 4 h limit of a request) is resumed from the last timestamp it
wrote; a pod deleted before its log was read to the end leaves a line saying so. The file is
all ``dockyard logs`` reads.
"""

from __future__ import annotations

import contextlib
import logging
import re
import shutil
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from dockyard.errors import EngineError
from dockyard.redact import Redactor

log = logging.getLogger("dockyard.kubernetes")
Obj = dict[str, Any]
DONE = ".done"  # next to a pod's log: it was read to its end
POS = ".pos"  # next to a pod's log: the timestamp of the last line written
RETRY = (1.0, 30.0)  # first and longest wait before a broken stream is resumed
_STAMP = re.compile(rb"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z ")


def stamp_key(text: bytes) -> tuple[str, int] | None:
    """A CRI timestamp (RFC 3339 with up to nanoseconds) as a key that sorts as time does."""
    found = _STAMP.match(text)
    if found is None:
        return None
    fraction = (found.group(2) or b"").decode()
    return found.group(1).decode(), int(fraction.ljust(9, "0")[:9] or 0)


def started(pod: Obj) -> bool:
    """Did the pod's main container really start (a runtime gave it an id)?"""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == "main" and status.get("containerID"):
            return True
    return False


class LogKeeper:
    """Follows the logs of started pods into files under ``root``."""

    def __init__(
        self,
        http: httpx.Client,
        root: Path,
        limit: int,
        max_streams: int,
        secrets: Callable[[str, str, Obj], list[str]],
    ) -> None:
        self.http = http
        self.root = root
        self.limit = limit
        self.secrets = secrets  # (namespace, pod name, pod) -> values to mask
        self._lock = threading.Lock()
        self._following: dict[tuple[str, str], threading.Thread] = {}
        self._slots = threading.BoundedSemaphore(max_streams)
        self._closed = threading.Event()

    # -- where a workload's logs are -----------------------------------------------------------
    def directory(self, workload_id: str) -> Path:
        return self.root / workload_id

    def newest(self, workload_id: str) -> Path | None:
        """The log of the workload's newest pod (as ``dockyard logs`` shows it)."""
        directory = self.directory(workload_id)
        try:
            logs = [p for p in directory.iterdir() if p.suffix == ".log"]
        except OSError:
            return None
        return max(logs, key=lambda p: p.stat().st_mtime_ns, default=None)

    def read(self, workload_id: str, offset: int = 0) -> Iterator[bytes]:
        path = self.newest(workload_id)
        if path is None:
            return
        with path.open("rb") as fh:
            fh.seek(offset)
            while chunk := fh.read(65536):
                yield chunk

    def forget(self, workload_id: str) -> None:
        shutil.rmtree(self.directory(workload_id), ignore_errors=True)

    # -- following -----------------------------------------------------------------------------
    def seen(self, workload_id: str, pod: Obj, gone: bool = False) -> None:
        """A pod of ``workload_id`` changed: follow its log if it started and is not read
        to its end yet; a pod ``gone`` before that leaves a line saying so."""
        meta = pod.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        path = self.directory(workload_id) / f"{key[1]}.log"
        if path.with_suffix(DONE).exists() or self._closed.is_set():
            return
        if gone:
            with self._lock:
                following = key in self._following
            if not following and path.exists():
                self._note(path, "the pod was deleted before its log was read to the end")
                path.with_suffix(DONE).touch()
            return
        if not started(pod):
            return
        with self._lock:
            if key in self._following:
                return
            thread = threading.Thread(
                target=self._follow,
                args=(workload_id, key, pod, path),
                name=f"dockyard-log-{key[1]}",
                daemon=True,
            )
            self._following[key] = thread
        thread.start()

    def close(self) -> None:
        self._closed.set()

    def _follow(self, workload_id: str, key: tuple[str, str], pod: Obj, path: Path) -> None:
        try:
            with self._slots:
                self._stream_until_done(key, pod, path)
        except Exception:  # a log is kept on a best effort: never the observation's problem
            log.warning("keeping the log of %s/%s failed", *key, exc_info=True)
        finally:
            with self._lock:
                self._following.pop(key, None)

    def _stream_until_done(self, key: tuple[str, str], pod: Obj, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        redactor = Redactor(self.secrets(key[0], key[1], pod))
        wait = RETRY[0]
        while not self._closed.is_set():
            outcome = self._stream(key, path, redactor)
            if outcome == "ended":
                path.with_suffix(DONE).touch()
                return
            if outcome == "gone":
                self._note(path, "the pod was deleted before its log was read to the end")
                path.with_suffix(DONE).touch()
                return
            self._closed.wait(wait)
            wait = min(wait * 2, RETRY[1])

    def _stream(self, key: tuple[str, str], path: Path, redactor: Redactor) -> str:
        """One follow request: 'ended' (the container ended and all was read), 'gone' (the
        pod is gone), or 'broken' (resume later)."""
        namespace, name = key
        pos = path.with_suffix(POS)
        last = stamp_key(pos.read_bytes()) if pos.exists() else None
        params: dict[str, str] = {"container": "main", "follow": "true", "timestamps": "true"}
        if last is not None:
            params["sinceTime"] = f"{last[0]}Z"
        url = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        size = path.stat().st_size if path.exists() else 0
        try:
            with self.http.stream("GET", url, params=params, timeout=None) as answer:
                if answer.status_code == 404:
                    return "gone"
                if answer.status_code in (401, 403):
                    answer.read()
                    raise EngineError(
                        f"the cluster does not let Dockyard read pod logs: {answer.text[:300]}",
                        hint="its account needs get on pods/log (docs/kubernetes.md)",
                    )
                if answer.status_code != 200:
                    answer.read()
                    log.info("log of %s/%s: %s", namespace, name, answer.status_code)
                    return "broken"
                with path.open("ab") as out:
                    for line in answer.iter_lines():
                        raw = line.encode()
                        stamp = stamp_key(raw)
                        if stamp is not None and last is not None and stamp <= last:
                            continue  # written before the stream broke
                        text = raw.split(b" ", 1)[1] if stamp is not None else raw
                        size = self._write(out, redactor.feed(text + b"\n"), size)
                        if stamp is not None:
                            last = stamp
                            pos.write_bytes(raw[: raw.index(b" ") + 1])
                    size = self._write(out, redactor.flush(), size)
        except httpx.HTTPError:
            return "broken"
        return "ended" if self._ended(namespace, name) else "broken"

    def _write(self, out: Any, data: bytes, size: int) -> int:
        if not data or size > self.limit:
            return size
        if size + len(data) > self.limit:
            out.write(data[: self.limit - size])
            out.write(
                f"\n[dockyard: the log was cut at {self.limit} bytes "
                "(DOCKYARD_MAX_LOG_BYTES); the rest was not kept]\n".encode()
            )
            out.flush()
            return self.limit + 1
        out.write(data)
        out.flush()
        return size + len(data)

    def probe(self, namespace: str, name: str) -> None:
        """Read one byte of a pod's log: EngineError when the cluster refuses it (RBAC)."""
        url = f"/api/v1/namespaces/{namespace}/pods/{name}/log"
        try:
            answer = self.http.get(url, params={"container": "main", "limitBytes": "1"})
        except httpx.HTTPError as exc:
            raise EngineError(f"the pod log of {namespace}/{name}: {exc}") from exc
        if answer.status_code in (401, 403):
            raise EngineError(
                f"the cluster does not let Dockyard read pod logs: {answer.text[:300]}",
                hint="its account needs get on pods/log (docs/kubernetes.md)",
            )

    def _ended(self, namespace: str, name: str) -> bool:
        """Has the pod's main container ended (so its log is complete)?"""
        try:
            answer = self.http.get(f"/api/v1/namespaces/{namespace}/pods/{name}")
        except httpx.HTTPError:
            return False
        if answer.status_code == 404:
            return True  # nothing more will come; what was read is all there is
        for status in (answer.json().get("status") or {}).get("containerStatuses") or []:
            if status.get("name") == "main":
                return "terminated" in (status.get("state") or {})
        return False

    def _note(self, path: Path, why: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        at = datetime.now(UTC).isoformat(" ", "seconds")
        with contextlib.suppress(OSError), path.open("ab") as out:
            out.write(f"\n[dockyard: {why}; {at}]\n".encode())
