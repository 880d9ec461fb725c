"""Model settings (``model-settings.json`` next to a model, or flags on the command line) and
the server's own settings (limits and access rules: flags, else ``DOCKYARD_SERVING_*``).

```json
{"runtime": "sklearn", "method": "predict_proba", "uri": "model.joblib",
 "batching": {"maxBatchSize": 64, "maxLatencyMs": 2},
 "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}}
```
Every field is optional; the runtime is detected from the model file when not given.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from dockyard.errors import DockyardError
from dockyard.serving import limits
from dockyard.serving.limits import LIMITS, TOKEN_ENV, env_name

SETTINGS_FILE = "model-settings.json"
MIN_TOKEN_LENGTH = 16
ANY_ADDRESS = ("0.0.0.0", "::", "")
RuntimeName = Literal["sklearn", "xgboost", "lightgbm", "onnx", "torch", "custom"]


class SettingsError(DockyardError, ValueError):
    """A model's settings or files are wrong; the message says what and where."""

    code = "invalid-model-settings"
    status = 400


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True)


class TensorSettings(_Model):
    name: str
    datatype: str
    shape: list[int]


class SignatureSettings(_Model):
    inputs: list[TensorSettings] = Field(default_factory=list)
    outputs: list[TensorSettings] = Field(default_factory=list)


class BatchingSettings(_Model):
    max_batch_size: int = Field(default=64, ge=1, description="Most rows merged per call.")
    max_latency_ms: float = Field(
        default=2.0, ge=0, description="Longest a request waits for others to join it."
    )


class ModelSettings(_Model):
    runtime: RuntimeName | None = Field(default=None, description="Detected when unset.")
    uri: str | None = Field(default=None, description="Model file inside the directory.")
    method: str | None = Field(
        default=None, description="sklearn: predict (default) or predict_proba."
    )
    batching: BatchingSettings | None = Field(
        default_factory=BatchingSettings, description="null turns batching off."
    )
    signature: SignatureSettings | None = None
    custom_class: str | None = Field(
        default=None, description="custom runtime: 'module:Class' (module file in the dir)."
    )
    parameters: dict[str, Any] = Field(default_factory=dict, description="Runtime options.")


def load_settings(path: Path, overrides: dict[str, Any] | None = None) -> ModelSettings:
    """Settings of the model at ``path`` (file or directory), with ``overrides`` on top."""
    data: dict[str, Any] = {}
    file = (path if path.is_dir() else path.parent) / SETTINGS_FILE
    if file.exists():
        try:
            data = json.loads(file.read_text())
        except ValueError as exc:
            raise SettingsError(f"{file}: not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise SettingsError(f"{file}: expected a JSON object")
    data.update(overrides or {})
    try:
        return ModelSettings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise SettingsError(f"{file}: {problems}") from exc


def _problems(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'settings'}: {e['msg']}" for e in exc.errors()
    )


class ServerSettings(BaseModel):
    """One model server's bounds and access rules (docs/serving.md, "Limits and access").

    Each bound is the flag ``--max-body-bytes`` etc., else the variable
    ``DOCKYARD_SERVING_MAX_BODY_BYTES`` etc. (limits.py); the token comes only from the
    environment (``DOCKYARD_SERVING_TOKEN``) or a file (``--token-file``), never from the
    command line, which every local user can read in ``ps``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_body_bytes: int = Field(default=limits.MAX_BODY_BYTES, ge=1)
    max_decompressed_bytes: int = Field(default=limits.MAX_DECOMPRESSED_BYTES, ge=1)
    max_elements: int = Field(default=limits.MAX_ELEMENTS, ge=1)
    max_depth: int = Field(default=limits.MAX_DEPTH, ge=1, le=64)  # NumPy's most dimensions
    max_header_bytes: int = Field(default=limits.MAX_HEADER_BYTES, ge=1024)
    header_timeout: float = Field(default=limits.HEADER_TIMEOUT, gt=0)
    body_timeout: float = Field(default=limits.BODY_TIMEOUT, gt=0)
    token: SecretStr | None = Field(
        default=None, description="bearer token for the repository extension (and inference)"
    )
    no_auth: bool = Field(
        default=False, description="no token: allow repository load/unload to anyone"
    )
    auth_inference: bool = Field(default=False, description="inference needs the token too")
    bind: str = Field(default="127.0.0.1", description="the address the server listens on")
    allowed_hosts: tuple[str, ...] = Field(
        default=(), description="Host names accepted besides the bound address and localhost"
    )
    allowed_origins: tuple[str, ...] = Field(
        default=(), description="browser Origins accepted besides the server's own"
    )

    @model_validator(mode="after")
    def _coherent(self) -> ServerSettings:
        token = self.token.get_secret_value() if self.token is not None else None
        if token is not None and len(token) < MIN_TOKEN_LENGTH:
            raise ValueError(f"the token must be at least {MIN_TOKEN_LENGTH} characters")
        if token is not None and self.no_auth:
            raise ValueError("no_auth contradicts a token: give one or the other")
        if self.auth_inference and token is None:
            raise ValueError(f"auth_inference needs a token ({TOKEN_ENV} or --token-file)")
        return self

    # -- derived, for the request path ----------------------------------------------------
    def token_bytes(self) -> bytes | None:
        return None if self.token is None else self.token.get_secret_value().encode()

    def host_names(self) -> frozenset[bytes] | None:
        """Host names (lower case, no port) the server answers to; None: any (0.0.0.0)."""
        if self.bind in ANY_ADDRESS:
            return None
        names = {self.bind, "localhost", "127.0.0.1", "::1", *self.allowed_hosts}
        return frozenset(n.strip("[]").lower().encode() for n in names)

    def origins(self) -> frozenset[bytes]:
        return frozenset(o.rstrip("/").lower().encode() for o in self.allowed_origins)


SWITCHES = ("no_auth", "auth_inference")
LISTS = ("allowed_hosts", "allowed_origins")


def server_settings(
    flags: Mapping[str, Any], environ: Mapping[str, str], token_file: Path | None = None
) -> ServerSettings:
    """The settings from ``flags`` (None or empty: not given), else ``environ``, else defaults.

    Lists come from repeated flags or comma-separated variables; switches are on with a flag
    or a variable set to 1/true/yes; the token from ``token_file``, else ``$DOCKYARD_SERVING_TOKEN``
    (or a file named by ``$DOCKYARD_SERVING_TOKEN_FILE``).
    """
    data: dict[str, Any] = {}
    for name in LIMITS:
        value = flags.get(name)
        data[name] = value if value is not None else environ.get(env_name(name))
    for name in SWITCHES:
        data[name] = bool(flags.get(name)) or environ.get(env_name(name), "").lower() in (
            "1",
            "true",
            "yes",
        )
    for name in LISTS:
        given = list(flags.get(name) or [])
        if not given:
            given = [v.strip() for v in environ.get(env_name(name), "").split(",")]
        data[name] = tuple(v for v in given if v)
    if flags.get("bind") is not None:
        data["bind"] = flags["bind"]
    file = token_file or (
        Path(environ[TOKEN_ENV + "_FILE"]) if environ.get(TOKEN_ENV + "_FILE") else None
    )
    if file is not None:
        try:
            data["token"] = file.read_text().strip()
        except OSError as exc:
            raise SettingsError(f"cannot read the token file {file}: {exc}") from exc
    elif environ.get(TOKEN_ENV):
        data["token"] = environ[TOKEN_ENV].strip()
    try:
        return ServerSettings.model_validate({k: v for k, v in data.items() if v is not None})
    except ValidationError as exc:
        raise SettingsError(f"server settings: {_problems(exc)}") from None
