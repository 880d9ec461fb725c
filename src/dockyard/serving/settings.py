"""Model settings: ``model-settings.json`` next to a model, or flags on the command line.

```json
{"runtime": "sklearn", "method": "predict_proba", "uri": "model.joblib",
 "batching": {"maxBatchSize": 64, "maxLatencyMs": 2},
 "signature": {"inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 4]}]}}
```
Every field is optional; the runtime is detected from the model file when not given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from dockyard.errors import DockyardError

SETTINGS_FILE = "model-settings.json"
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
