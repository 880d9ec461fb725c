"""Gradient-boosted trees: XGBoost and LightGBM boosters in their native formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.runtimes.base import (
    Array,
    Signature,
    TensorSpec,
    model_file,
    single_input,
    unknown_outputs,
)
from dockyard.serving.settings import ModelSettings

XGBOOST_SUFFIXES = (".json", ".ubj", ".bst", ".xgb", ".model")
LIGHTGBM_SUFFIXES = (".txt", ".lgb", ".model")


def _output(array: Array) -> TensorSpec:
    return TensorSpec(
        "predict", "FP32" if array.dtype == np.float32 else "FP64", (-1, *array.shape[1:])
    )


class XGBoostRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        import xgboost

        file = model_file(path, settings, XGBOOST_SUFFIXES)
        self.booster: Any = xgboost.Booster()
        self.booster.load_model(str(file))
        n = self.booster.num_features()
        probe = self.booster.inplace_predict(np.zeros((1, n), dtype=np.float32))
        self.signature = Signature(
            inputs=(TensorSpec("input-0", "FP32", (-1, n)),),
            outputs=(_output(probe),),
            platform="xgboost",
            default_outputs=("predict",),
        ).with_settings(settings)

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        x = single_input(inputs, self.signature)
        unknown_outputs(outputs, self.signature)
        return {"predict": np.asarray(self.booster.inplace_predict(x))}

    def unload(self) -> None:
        self.booster = None


class LightGBMRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        import lightgbm

        file = model_file(path, settings, LIGHTGBM_SUFFIXES)
        self.booster: Any = lightgbm.Booster(model_file=str(file))
        n = self.booster.num_feature()
        probe = np.asarray(self.booster.predict(np.zeros((1, n))))
        self.signature = Signature(
            inputs=(TensorSpec("input-0", "FP64", (-1, n)),),
            outputs=(_output(probe),),
            platform="lightgbm",
            default_outputs=("predict",),
        ).with_settings(settings)

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        x = single_input(inputs, self.signature)
        unknown_outputs(outputs, self.signature)
        return {"predict": np.asarray(self.booster.predict(x))}

    def unload(self) -> None:
        self.booster = None
