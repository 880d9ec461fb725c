"""scikit-learn models saved with joblib or pickle."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.codec import TensorError, datatype_of
from dockyard.serving.runtimes.base import Signature, TensorSpec

SUFFIXES = (".joblib", ".pkl", ".pickle")


def find_model_file(path: Path) -> Path:
    if path.is_file():
        return path
    for suffix in SUFFIXES:
        found = sorted(path.glob(f"*{suffix}"))
        if found:
            return found[0]
    raise FileNotFoundError(f"no model file ({', '.join(SUFFIXES)}) in {path}")


class SklearnRuntime:
    def __init__(self, path: Path, settings: dict[str, Any]) -> None:
        file = find_model_file(path)
        if file.suffix == ".joblib":
            import joblib

            self.model = joblib.load(file)
        else:
            with open(file, "rb") as fh:
                self.model = pickle.load(fh)
        n = getattr(self.model, "n_features_in_", None)
        self.n_features = int(n) if n is not None else None
        self.input_name = "input-0"
        outputs = [TensorSpec("predict", self._predict_type(), (-1,))]
        if hasattr(self.model, "predict_proba"):
            classes = len(getattr(self.model, "classes_", [])) or -1
            outputs.append(TensorSpec("predict_proba", "FP64", (-1, classes)))
        self.signature = Signature(
            inputs=(TensorSpec(self.input_name, "FP64", (-1, self.n_features or -1)),),
            outputs=tuple(outputs),
            platform="sklearn",
            extra={"class": type(self.model).__name__},
        )

    def _predict_type(self) -> str:
        classes = getattr(self.model, "classes_", None)
        if classes is not None:
            return datatype_of(np.asarray(classes).dtype)
        return "FP64"

    def predict(
        self, inputs: dict[str, np.ndarray[Any, Any]], outputs: list[str] | None
    ) -> dict[str, np.ndarray[Any, Any]]:
        if len(inputs) != 1:
            raise TensorError(f"this model takes exactly one input, got {len(inputs)}")
        name, x = next(iter(inputs.items()))
        if x.ndim == 1 and self.n_features is not None and x.shape[0] == self.n_features:
            x = x.reshape(1, -1)
        if x.ndim != 2 or (self.n_features is not None and x.shape[1] != self.n_features):
            raise TensorError(
                f"input '{name}': expected shape [-1, {self.n_features}], got {list(x.shape)}"
            )
        wanted = outputs or ["predict"]
        result: dict[str, np.ndarray[Any, Any]] = {}
        for out in wanted:
            if out == "predict":
                result[out] = np.asarray(self.model.predict(x))
            elif out == "predict_proba" and hasattr(self.model, "predict_proba"):
                result[out] = np.asarray(self.model.predict_proba(x))
            else:
                valid = ", ".join(o.name for o in self.signature.outputs)
                raise TensorError(f"unknown output '{out}'; this model has: {valid}")
        return result

    def unload(self) -> None:
        del self.model
