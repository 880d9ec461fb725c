"""Your own Python class as a model.

``model-settings.json``: ``{"runtime": "custom", "customClass": "model:Model"}`` with
``model.py`` in the model directory::

    class Model:
        signature = {"inputs": [{"name": "x", "datatype": "FP64", "shape": [-1, 3]}],
                     "outputs": [{"name": "y", "datatype": "FP64", "shape": [-1]}]}

        def __init__(self, path, parameters): ...          # load weights from ``path``
        def predict(self, inputs: dict) -> dict: ...       # numpy arrays by tensor name
        def unload(self): ...                              # optional
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.runtimes.base import Array, Signature, TensorSpec, unknown_outputs
from dockyard.serving.settings import ModelSettings, SettingsError


def _load_class(directory: Path, target: str) -> Any:
    module_name, _, class_name = target.partition(":")
    if not module_name or not class_name:
        raise SettingsError(f"customClass must look like 'module:Class', got {target!r}")
    file = directory / f"{module_name.replace('.', '/')}.py"
    if file.exists():
        unique = f"dockyard_custom_{abs(hash(str(file)))}_{module_name}"
        spec = importlib.util.spec_from_file_location(unique, file)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, class_name)
    except AttributeError:
        raise SettingsError(f"{file}: no class '{class_name}'") from None


class CustomRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        directory = path if path.is_dir() else path.parent
        if not settings.custom_class:
            candidates = [p.stem for p in directory.glob("*.py")]
            if len(candidates) != 1:
                raise SettingsError(
                    f"{directory}: set customClass ('module:Class') in model-settings.json"
                )
            settings = settings.model_copy(update={"custom_class": f"{candidates[0]}:Model"})
        cls = _load_class(directory, str(settings.custom_class))
        self.model = cls(path, dict(settings.parameters))
        raw = getattr(self.model, "signature", None) or {}
        inputs = tuple(
            TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in raw.get("inputs", [])
        )
        outputs = tuple(
            TensorSpec(t["name"], t["datatype"], tuple(t["shape"])) for t in raw.get("outputs", [])
        )
        self.signature = Signature(
            inputs, outputs, platform="custom", extra={"class": cls.__name__}
        ).with_settings(settings)
        if not self.signature.inputs or not self.signature.outputs:
            raise SettingsError(
                f"{directory}: the custom model needs a signature (a "
                "'signature' attribute or one in model-settings.json)"
            )

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        unknown_outputs(outputs, self.signature)
        result = self.model.predict(inputs)
        return {name: np.asarray(result[name]) for name in outputs}

    def unload(self) -> None:
        unload = getattr(self.model, "unload", None)
        if callable(unload):
            unload()
        self.model = None
