"""One exception root for everything Dockyard tells a user.

Every error class carries a stable ``code`` (machine readable, part of the API) and the HTTP
``status`` it is answered with; every error carries a ``message`` (what is wrong) and a
``hint`` (how to fix it). The API answers ``exc.status`` with the ``code``
(``dockyard.api.errors``), the SDK raises the same class again through :func:`from_problem`,
and the model server answers its own subclasses with the same ``status``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class DockyardError(Exception):
    """Base of all user-facing errors; by default the client's fault (400).

    Every subclass declares its own ``code`` and ``status`` and keeps this constructor, so
    that :func:`from_problem` can rebuild any of them.
    """

    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400

    def __init__(
        self, message: str, *, hint: str | None = None, details: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details or {}

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message} ({self.hint})"


class InvalidSpec(DockyardError):
    """A resource document does not validate; ``details['errors']`` lists each problem."""

    code = "invalid-spec"
    status = 422


class InvalidRequest(DockyardError):
    """A request to the API is malformed."""

    code = "invalid-request"
    status = 400


class Unauthorized(DockyardError):
    """The request carries no credentials, or wrong ones (answered with ``WWW-Authenticate``)."""

    code = "unauthorized"
    status = 401


class Forbidden(DockyardError):
    """The request is refused whoever sends it: a foreign ``Origin``, an unknown ``Host``, or
    an operation this server was started without (the model server's repository extension
    without a token)."""

    code = "forbidden"
    status = 403


class NotFound(DockyardError):
    code = "not-found"
    status = 404


class Conflict(DockyardError):
    """The request contradicts the current state (e.g. deleting a volume in use)."""

    code = "conflict"
    status = 409


class InUse(Conflict):
    code = "in-use"
    status = 409


class StaleWrite(Conflict):
    """Another writer changed the resource between our read and our write; try again."""

    code = "stale-write"
    status = 409


class NotLeading(StaleWrite):
    """A write of the control loop from a replica that no longer holds the leader lease."""

    code = "not-leading"
    status = 409


class StoredSpecInvalid(Conflict):
    """A spec in the store breaks a rule added since it was applied: apply it again."""

    code = "stored-spec-invalid"
    status = 409


class MalformedRequest(InvalidRequest):
    """A request that does not fit the API's schema (a wrong type, a missing field)."""

    code = "malformed-request"
    status = 422


class MethodNotAllowed(InvalidRequest):
    code = "method-not-allowed"
    status = 405


class UnsupportedMediaType(DockyardError):
    """The request body comes in an encoding the server cannot read."""

    code = "unsupported-media-type"
    status = 415


class UnsafePath(DockyardError):
    """A path a workload could have written leads out of its directory (a link, ``..``)."""

    code = "unsafe-path"
    status = 400


class RequestTimeout(DockyardError):
    """The client did not send its request (the body) within the server's time limit."""

    code = "request-timeout"
    status = 408


class PayloadTooLarge(DockyardError):
    """The request is larger than a limit of the server (its body, decompressed size, or the
    number of tensor elements); the message names the limit and its setting."""

    code = "payload-too-large"
    status = 413


class ChecksumMismatch(DockyardError):
    code = "checksum-mismatch"
    status = 409


class ChunkDamaged(DockyardError):
    """A stored chunk of a snapshot is missing or its bytes no longer match their checksum.

    409: retrying cannot help; the message names the file the chunk belongs to.
    """

    code = "chunk-damaged"
    status = 409


class HookFailed(DockyardError):
    """A snapshot hook (spec.snapshots.hooks) failed or cannot run where the workload runs."""

    code = "hook-failed"
    status = 409


class BackupError(DockyardError):
    """A backup target (S3) refused or failed a request; the message says what to change."""

    code = "backup-error"
    status = 502


class ModelArtifactMissing(DockyardError):
    """A job succeeded but its output directory lacks the model its spec promised.

    409: the request is fine and retrying cannot help (not 503) — the job's output contradicts
    its spec, which the user fixes by writing the model where the spec says and running again.
    """

    code = "model-artifact-missing"
    status = 409


class RuntimeUnavailable(DockyardError):
    """A runtime (engine, interpreter, tool) the workload needs is not available."""

    code = "runtime-unavailable"
    status = 503


class HomeMismatch(DockyardError):
    """A start would move the resources of a home to another runtime (home_settings)."""

    code = "home-mismatch"
    status = 409


class EngineError(DockyardError):
    """The container engine (Podman, Docker) failed or did not answer."""

    code = "engine-error"
    status = 503


class NoSnapshotClass(EngineError):
    """A Kubernetes claim's StorageClass has no VolumeSnapshotClass (409: the cluster must
    change); Dockyard's own snapshots may still read a claim that lies on its machine."""

    code = "no-snapshot-class"
    status = 409


class ServerUnavailable(DockyardError):
    """The control plane cannot be reached."""

    code = "server-unavailable"
    status = 503


class TemporaryError(DockyardError):
    """Something that is worth retrying after ``delay`` seconds (``details['delay']``)."""

    code = "temporary"
    status = 503

    def __init__(
        self,
        message: str,
        *,
        hint: str | None = None,
        details: dict[str, Any] | None = None,
        delay: float | None = None,
    ) -> None:
        details = dict(details or {})
        if delay is not None or "delay" not in details:
            details["delay"] = 1.0 if delay is None else delay
        super().__init__(message, hint=hint, details=details)
        self.delay = float(details["delay"])


class InternalError(DockyardError):
    code = "internal"
    status = 500


def _all_subclasses(cls: type[DockyardError]) -> list[type[DockyardError]]:
    out: list[type[DockyardError]] = []
    for sub in cls.__subclasses__():
        out.append(sub)
        out.extend(_all_subclasses(sub))
    return out


def error_class_for(code: str) -> type[DockyardError]:
    """The error class that owns ``code`` (used by the SDK to raise the server's error)."""
    candidates: list[type[DockyardError]] = [DockyardError, *_all_subclasses(DockyardError)]
    for cls in candidates:
        if cls.code == code:
            return cls
    return DockyardError


def from_problem(body: Mapping[str, Any]) -> DockyardError:
    """The error a problem+json body (or any ``code``/``detail``/``hint`` mapping) describes."""
    cls = error_class_for(str(body.get("code", DockyardError.code)))
    hint = body.get("hint")
    return cls(
        str(body.get("detail", "")),
        hint=None if hint is None else str(hint),
        details=dict(body.get("details") or {}),
    )
