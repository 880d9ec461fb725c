"""scikit-learn models (and anything with a scikit-learn API) saved with joblib or pickle.

Forests and linear models are served compiled (``compiled.py``): checked against scikit-learn
at the first load, then read from the compile cache without importing scikit-learn at all.
"""

from __future__ import annotations

import pickle
import threading
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.codec import datatype_of
from dockyard.serving.runtimes import compiled
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
        self.file = model_file(path, settings, SUFFIXES)
        self._model: Any = None
        self._lock = threading.Lock()
        use = bool(settings.parameters.get("compile", True))
        trees = bool(settings.parameters.get("compileTrees", True))
        key = compiled.cache_key(self.file, trees) if use else ""
        hit = compiled.load(key) if use else None
        self.from_cache = hit is not None
        self.cache_file: Path | None = None
        if hit is not None:
            self.compiled: compiled.CompiledModel | None = hit[0]
            self.info = hit[1]
        else:
            model = self.model
            self.info = _info(model)
            self.compiled = compiled.compile_model(model, trees) if use else None
            if self.compiled is not None:
                self.cache_file = compiled.store(key, self.compiled, self.info)
        method = settings.method or "predict"
        if method not in self.info["methods"]:
            raise SettingsError(
                f"{self.file}: method '{method}' is not available; this "
                f"{self.info['class']} has: {', '.join(self.info['methods'])}"
            )
        how = ""
        if self.compiled is not None:
            how = " (compiled, from cache)" if self.from_cache else " (compiled)"
        self.signature = Signature(
            inputs=(TensorSpec("input-0", "FP64", (-1, int(self.info["n_features"]))),),
            outputs=tuple(
                TensorSpec(o["name"], o["datatype"], tuple(o["shape"]))
                for o in self.info["outputs"]
            ),
            platform="sklearn",
            default_outputs=(method,),
            extra={"class": self.info["class"] + how},
        ).with_settings(settings)

    @property
    def model(self) -> Any:
        """The scikit-learn object, loaded on first use (never, when compiled from the cache)."""
        with self._lock:
            if self._model is None:
                if self.file.suffix == ".joblib":
                    import joblib

                    self._model = joblib.load(self.file)
                else:
                    with open(self.file, "rb") as fh:
                        self._model = pickle.load(fh)
            return self._model

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        x = single_input(inputs, self.signature)
        unknown_outputs(outputs, self.signature)
        if self.compiled is not None and all(o in self.compiled.outputs for o in outputs):
            return self.compiled.run(x, outputs)
        model = self.model
        return {name: np.asarray(getattr(model, name)(x)) for name in outputs}

    def unload(self) -> None:
        self._model = None
        self.compiled = None

    def describe(self) -> dict[str, Any]:
        return {"class": self.info["class"], "compiled": self.compiled is not None}


def _info(model: Any) -> dict[str, Any]:
    """What the signature needs, kept with a compiled model so that a cache hit needs no model."""
    methods = [m for m in METHODS if hasattr(model, m)]
    classes = getattr(model, "classes_", None)
    outputs = []
    for method in methods:
        if method == "predict":
            dtype = datatype_of(np.asarray(classes).dtype) if classes is not None else "FP64"
            outputs.append(TensorSpec("predict", dtype, (-1,)))
        elif method == "predict_proba" and classes is not None:
            outputs.append(TensorSpec(method, "FP64", (-1, len(classes))))
        else:
            outputs.append(TensorSpec(method, "FP64", (-1, -1)))
    n = getattr(model, "n_features_in_", None)
    return {
        "class": type(model).__name__,
        "n_features": int(n) if n is not None else -1,
        "methods": methods,
        "outputs": [o.as_dict() for o in outputs],
    }
