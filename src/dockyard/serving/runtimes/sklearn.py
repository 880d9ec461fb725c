"""scikit-learn models (and anything with a scikit-learn API) saved with joblib or pickle."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.codec import datatype_of
from dockyard.serving.runtimes.base import (
    Array,
    Signature,
    TensorSpec,
    model_file,
    single_input,
    unknown_outputs,
)
from dockyard.serving.settings import ModelSettings, SettingsError

SUFFIXES = (".joblib", ".pkl", ".pickle")
METHODS = ("predict", "predict_proba", "decision_function", "transform")


class SklearnRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        file = model_file(path, settings, SUFFIXES)
        if file.suffix == ".joblib":
            import joblib

            self.model = joblib.load(file)
        else:
            with open(file, "rb") as fh:
                self.model = pickle.load(fh)
        method = settings.method or "predict"
        if method not in METHODS or not hasattr(self.model, method):
            have = [m for m in METHODS if hasattr(self.model, m)]
            raise SettingsError(
                f"{file}: method '{method}' is not available; this "
                f"{type(self.model).__name__} has: {', '.join(have)}"
            )
        self.compiled = None
        if settings.parameters.get("compileTrees", True):
            from dockyard.serving.runtimes.forest import compile_forest

            self.compiled = compile_forest(self.model)
        n = getattr(self.model, "n_features_in_", None)
        self.n_features = int(n) if n is not None else -1
        outputs = []
        for m in METHODS:
            if hasattr(self.model, m):
                outputs.append(self._output_spec(m))
        self.signature = Signature(
            inputs=(TensorSpec("input-0", "FP64", (-1, self.n_features)),),
            outputs=tuple(outputs),
            platform="sklearn",
            default_outputs=(method,),
            extra={
                "class": type(self.model).__name__ + (" (trees compiled)" if self.compiled else "")
            },
        ).with_settings(settings)

    def _output_spec(self, method: str) -> TensorSpec:
        classes = getattr(self.model, "classes_", None)
        if method == "predict":
            dtype = datatype_of(np.asarray(classes).dtype) if classes is not None else "FP64"
            return TensorSpec("predict", dtype, (-1,))
        if method == "predict_proba" and classes is not None:
            return TensorSpec(method, "FP64", (-1, len(classes)))
        return TensorSpec(method, "FP64", (-1, -1))

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        x = single_input(inputs, self.signature)
        unknown_outputs(outputs, self.signature)
        if self.compiled is not None and all(o in ("predict", "predict_proba") for o in outputs):
            forest, prefix = self.compiled
            rows = prefix.transform(x) if prefix is not None else x
            return {name: getattr(forest, name)(rows) for name in outputs}
        return {name: np.asarray(getattr(self.model, name)(x)) for name in outputs}

    def unload(self) -> None:
        self.model = None

    def describe(self) -> dict[str, Any]:
        return {"class": type(self.model).__name__}
