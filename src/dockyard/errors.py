"""One exception root for everything Dockyard tells a user.

Every error carries a stable ``code`` (machine readable, part of the API), a ``message``
(what is wrong) and a ``hint`` (how to fix it). HTTP status codes are not part of these
classes: the API maps classes to statuses (``dockyard.api.errors``) and the SDK raises the
same class again from the ``code`` of a problem+json response.
"""

from __future__ import annotations

from typing import Any, ClassVar


class DockyardError(Exception):
    """Base of all user-facing errors."""

    code: ClassVar[str] = "error"

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


class InvalidRequest(DockyardError):
    """A request to the API is malformed."""

    code = "invalid-request"


class NotFound(DockyardError):
    code = "not-found"


class Conflict(DockyardError):
    """The request contradicts the current state (e.g. deleting a volume in use)."""

    code = "conflict"


class InUse(Conflict):
    code = "in-use"


class ChecksumMismatch(DockyardError):
    code = "checksum-mismatch"


class RuntimeUnavailable(DockyardError):
    """A runtime (engine, interpreter, tool) the workload needs is not available."""

    code = "runtime-unavailable"


class ServerUnavailable(DockyardError):
    """The control plane cannot be reached."""

    code = "server-unavailable"


class TemporaryError(DockyardError):
    """Something that is worth retrying after ``delay`` seconds."""

    code = "temporary"

    def __init__(self, message: str, *, delay: float = 1.0, hint: str | None = None) -> None:
        super().__init__(message, hint=hint, details={"delay": delay})
        self.delay = delay


class InternalError(DockyardError):
    code = "internal"


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
