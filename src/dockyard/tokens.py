"""The control plane's admin token: made at first start, read by the server, the CLI and the SDK.

The server takes ``DOCKYARD_TOKEN`` if it is set, else the file ``DOCKYARD_HOME/token`` (mode
0600), which it creates at first start. Replacing the file rotates the token: the server
reads it again when it changes, so clients holding the old token are refused from then on.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from dockyard.paths import write_private
from dockyard.settings import Settings

TOKEN_FILE = "token"


def token_path(settings: Settings) -> Path:
    return settings.home / TOKEN_FILE


def ensure_token(settings: Settings) -> None:
    """Make the admin token file at first start (unless the token comes from the environment)."""
    path = token_path(settings)
    if settings.token is None and not path.exists():
        write_private(path, (secrets.token_urlsafe(32) + "\n").encode())


def rotate(settings: Settings) -> str:
    """A new admin token in the token file; the old one stops working."""
    token = secrets.token_urlsafe(32)
    write_private(token_path(settings), (token + "\n").encode())
    return token


def client_token(settings: Settings) -> str | None:
    """What a client sends: ``DOCKYARD_TOKEN``, else the token file of ``DOCKYARD_HOME``."""
    if settings.token:
        return settings.token
    try:
        return token_path(settings).read_text().strip() or None
    except OSError:
        return None


class ServerToken:
    """The token the server accepts, read again whenever its file changes."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._cached: tuple[float, str] | None = None

    def current(self) -> str | None:
        if self.settings.token:
            return self.settings.token
        path = token_path(self.settings)
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return None
        if self._cached is None or self._cached[0] != mtime:
            self._cached = (mtime, path.read_text().strip())
        return self._cached[1]
