"""Small real models for every runtime, built by the tests (nothing is downloaded)."""

from __future__ import annotations

import json
import pickle
import warnings
from pathlib import Path

import numpy as np

from tests.lanes import lightgbm_unavailable

FEATURES = np.array(
    [
        [0.0, 0.0, 1.0],
        [1.0, 0.0, 0.0],
        [0.0, 1.0, 0.0],
        [1.0, 1.0, 1.0],
        [2.0, 0.5, 0.0],
        [0.0, 2.0, 1.5],
        [1.5, 1.5, 0.5],
        [0.5, 0.0, 2.0],
    ]
)
LABELS = np.array([0, 1, 0, 1, 1, 0, 1, 0])


def sklearn_model(root: Path) -> Path:
    from sklearn.linear_model import LogisticRegression

    path = root / "sklearn"
    path.mkdir(parents=True)
    model = LogisticRegression().fit(FEATURES, LABELS)
    with open(path / "model.pkl", "wb") as fh:
        pickle.dump(model, fh)
    (path / "model-settings.json").write_text(json.dumps({"method": "predict_proba"}))
    return path


def xgboost_model(root: Path) -> Path:
    import xgboost

    path = root / "xgboost"
    path.mkdir(parents=True)
    booster = xgboost.train(
        {"objective": "binary:logistic", "max_depth": 2},
        xgboost.DMatrix(FEATURES, label=LABELS),
        num_boost_round=5,
    )
    booster.save_model(str(path / "model.json"))
    return path


def lightgbm_model(root: Path) -> Path:
    import lightgbm

    path = root / "lightgbm"
    path.mkdir(parents=True)
    data = lightgbm.Dataset(
        np.tile(FEATURES, (10, 1)),
        label=np.tile(LABELS, 10),
        params={"verbose": -1, "min_data_in_leaf": 1},
    )
    booster = lightgbm.train(
        {"objective": "binary", "verbose": -1, "min_data_in_leaf": 1, "num_leaves": 4},
        data,
        num_boost_round=5,
    )
    booster.save_model(str(path / "model.txt"))
    return path


def onnx_model(root: Path) -> Path:
    """y = x·W + b, built node by node with the onnx helper API."""
    import onnx
    from onnx import TensorProto, helper

    path = root / "onnx"
    path.mkdir(parents=True)
    w = helper.make_tensor("W", TensorProto.FLOAT, [3, 2], [1, 0, 0, 1, 1, 1])
    b = helper.make_tensor("B", TensorProto.FLOAT, [2], [0.5, -0.5])
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "W"], ["xw"]),
            helper.make_node("Add", ["xw", "B"], ["y"]),
        ],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [w, b],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path / "model.onnx"))
    return path


def torch_model(root: Path) -> Path:
    import torch

    path = root / "torch"
    path.mkdir(parents=True)

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(3, 2)
            with torch.no_grad():
                self.linear.weight.copy_(torch.tensor([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
                self.linear.bias.copy_(torch.tensor([0.5, -0.5]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x)

    with warnings.catch_warnings():  # TorchScript is deprecated upstream, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Net()).save(str(path / "model.pt"))
    (path / "model-settings.json").write_text(
        json.dumps(
            {
                "signature": {
                    "inputs": [{"name": "x", "datatype": "FP32", "shape": [-1, 3]}],
                    "outputs": [{"name": "y", "datatype": "FP32", "shape": [-1, 2]}],
                }
            }
        )
    )
    return path


CUSTOM = """
import numpy as np


class Model:
    signature = {
        "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]},
                   {"name": "scale", "datatype": "FP64", "shape": [-1, 1]}],
        "outputs": [{"name": "length", "datatype": "FP64", "shape": [-1]},
                    {"name": "upper", "datatype": "BYTES", "shape": [-1]}],
    }

    def __init__(self, path, parameters):
        self.offset = float(parameters.get("offset", 0))

    def predict(self, inputs):
        text = inputs["text"]
        lengths = np.array([len(t) for t in text], dtype=np.float64)
        return {"length": lengths * inputs["scale"][:, 0] + self.offset,
                "upper": np.array([t.upper() for t in text], dtype=object)}
"""


def custom_model(root: Path) -> Path:
    path = root / "custom"
    path.mkdir(parents=True)
    (path / "model.py").write_text(CUSTOM)
    (path / "model-settings.json").write_text(
        json.dumps({"runtime": "custom", "customClass": "model:Model", "parameters": {"offset": 1}})
    )
    return path


def versioned_model(root: Path) -> Path:
    """Two versions of one scikit-learn model: version 2 predicts the opposite of version 1."""
    from sklearn.linear_model import LogisticRegression

    path = root / "versioned"
    for version, labels in (("1", LABELS), ("2", 1 - LABELS)):
        (path / version).mkdir(parents=True)
        with open(path / version / "model.pkl", "wb") as fh:
            pickle.dump(LogisticRegression().fit(FEATURES, labels), fh)
    return path


BUILDERS = {
    "sklearn": sklearn_model,
    "xgboost": xgboost_model,
    "lightgbm": lightgbm_model,
    "onnx": onnx_model,
    "torch": torch_model,
    "custom": custom_model,
    "versioned": versioned_model,
}


def build_all(root: Path) -> dict[str, Path]:
    """Every model of BUILDERS, but LightGBM's where it cannot be imported (see
    tests.lanes.lightgbm_unavailable: its tests say so)."""
    skip = {"lightgbm"} if lightgbm_unavailable() else set()
    return {name: build(root) for name, build in BUILDERS.items() if name not in skip}
