"""The model runtime contract: load (the constructor), predict, unload, and a signature.

A runtime is synchronous and knows nothing about HTTP, batching or threads; the server wraps
it (``dockyard.serving.predictors``) to run it off the event loop and to batch requests.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from dockyard.serving.settings import ModelSettings, SettingsError

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class TensorSpec:
    name: str
    datatype: str
    shape: tuple[int, ...]  # -1 = any size

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


@dataclass(frozen=True)
class Signature:
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    platform: str = ""
    default_outputs: tuple[str, ...] = ()  # returned when a request names none; () = all
    extra: dict[str, Any] = field(default_factory=dict)

    def output_names(self) -> list[str]:
        return [o.name for o in self.outputs]

    def with_settings(self, settings: ModelSettings) -> Signature:
        """The signature given in the model settings wins over the inferred one."""
        sig = settings.signature
        if sig is None:
            return self
        inputs = tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in sig.inputs)
        outputs = tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in sig.outputs)
        return Signature(
            inputs or self.inputs,
            outputs or self.outputs,
            self.platform,
            self.default_outputs,
            self.extra,
        )


class ModelRuntime(Protocol):
    """One loaded model version."""

    signature: Signature

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        """Compute ``outputs`` (never empty) for a batch; arrays share the first dimension."""
        ...

    def unload(self) -> None: ...


def model_file(path: Path, settings: ModelSettings, suffixes: tuple[str, ...]) -> Path:
    """The model file: ``path`` itself, ``settings.uri`` in it, or the one file that fits."""
    if path.is_file():
        return path
    if settings.uri:
        file = path / settings.uri
        if not file.exists():
            raise SettingsError(f"{path}: uri '{settings.uri}' does not exist")
        return file
    found = sorted(p for p in path.iterdir() if p.suffix in suffixes and p.is_file())
    if not found:
        raise SettingsError(f"{path}: no model file ({', '.join(suffixes)}) found")
    if len(found) > 1:
        raise SettingsError(
            f"{path}: several model files ({', '.join(p.name for p in found)}); "
            "name one with 'uri' in model-settings.json"
        )
    return found[0]


def unknown_outputs(wanted: list[str], signature: Signature) -> None:
    from dockyard.serving.codec import TensorError

    valid = signature.output_names()
    for name in wanted:
        if name not in valid:
            raise TensorError(f"unknown output '{name}'; this model has: {', '.join(valid)}")


def single_input(inputs: dict[str, Array], signature: Signature) -> Array:
    from dockyard.serving.codec import TensorError

    if len(inputs) != 1:
        raise TensorError(
            f"this model takes exactly one input ('{signature.inputs[0].name}'), got {len(inputs)}"
        )
    return next(iter(inputs.values()))
