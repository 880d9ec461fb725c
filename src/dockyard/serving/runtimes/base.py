"""The model runtime contract: load, predict, unload, and a signature."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np


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
    extra: dict[str, Any] = field(default_factory=dict)


class ModelRuntime(Protocol):
    """One loaded model. ``predict`` takes and returns arrays by tensor name."""

    signature: Signature

    def predict(
        self, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str] | None
    ) -> dict[str, np.ndarray[Any, Any]]: ...

    def unload(self) -> None: ...


class RuntimeFactory(Protocol):
    def __call__(self, path: Path, settings: dict[str, Any]) -> ModelRuntime: ...
