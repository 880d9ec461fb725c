"""Secret values, encrypted at rest with Fernet (AES-128-CBC + HMAC-SHA256, from `cryptography`).

The key comes from ``DOCKYARD_SECRET_KEY`` (one or more comma-separated Fernet keys, e.g. from
a KMS or a Kubernetes Secret) or else from the file ``DOCKYARD_HOME/secret.key`` (mode 0600),
made at first use. The first key encrypts; every key decrypts, so a key is rotated by putting
a new one first, re-encrypting (``dockyard secrets reencrypt``) and then dropping the old one.
"""

from __future__ import annotations

import json
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from dockyard.errors import DockyardError, ServerUnavailable
from dockyard.paths import write_private
from dockyard.settings import Settings

KEY_FILE = "secret.key"


class Vault:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._fernet: MultiFernet | None = None

    def _keys(self) -> list[bytes]:
        if self.settings.secret_key:
            return [k.strip().encode() for k in self.settings.secret_key.split(",") if k.strip()]
        path: Path = self.settings.home / KEY_FILE
        if not path.exists():
            write_private(path, Fernet.generate_key() + b"\n")
        return [line.strip() for line in path.read_bytes().splitlines() if line.strip()]

    @property
    def fernet(self) -> MultiFernet:
        if self._fernet is None:
            try:
                self._fernet = MultiFernet([Fernet(k) for k in self._keys()])
            except ValueError as exc:
                raise ServerUnavailable(
                    f"the secret key is not a Fernet key: {exc}",
                    hint="DOCKYARD_SECRET_KEY holds url-safe base64 keys of 32 bytes, "
                    "comma-separated (the first encrypts)",
                ) from exc
        return self._fernet

    def seal(self, values: dict[str, str]) -> str:
        return self.fernet.encrypt(json.dumps(values).encode()).decode()

    def open(self, sealed: str) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.fernet.decrypt(sealed.encode()))
        except InvalidToken as exc:
            raise DockyardError(
                "a secret cannot be decrypted with the configured key",
                hint="DOCKYARD_SECRET_KEY must still list the key it was encrypted with",
            ) from exc
        return data

    def reseal(self, sealed: str) -> str:
        """The same values encrypted with the first key."""
        return self.fernet.rotate(sealed.encode()).decode()
