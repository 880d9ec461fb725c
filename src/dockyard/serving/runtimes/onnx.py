"""ONNX models on onnxruntime (CPU)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dockyard.serving.runtimes.base import Array, Signature, TensorSpec, model_file, unknown_outputs
from dockyard.serving.settings import ModelSettings

ONNX_TYPES = {
    "tensor(bool)": "BOOL",
    "tensor(uint8)": "UINT8",
    "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32",
    "tensor(uint64)": "UINT64",
    "tensor(int8)": "INT8",
    "tensor(int16)": "INT16",
    "tensor(int32)": "INT32",
    "tensor(int64)": "INT64",
    "tensor(float16)": "FP16",
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}


def _spec(arg: object) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else -1 for d in getattr(arg, "shape", []) or [])
    return TensorSpec(
        getattr(arg, "name", ""), ONNX_TYPES.get(getattr(arg, "type", ""), "FP32"), shape
    )


class OnnxRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        import onnxruntime

        file = model_file(path, settings, (".onnx",))
        options = onnxruntime.SessionOptions()
        threads = settings.parameters.get("threads")
        if threads:
            options.intra_op_num_threads = int(threads)
        self.session = onnxruntime.InferenceSession(
            str(file), options, providers=["CPUExecutionProvider"]
        )
        self.signature = Signature(
            inputs=tuple(_spec(i) for i in self.session.get_inputs()),
            outputs=tuple(_spec(o) for o in self.session.get_outputs()),
            platform="onnx_onnxv1",
        ).with_settings(settings)

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        unknown_outputs(outputs, self.signature)
        feed = {}
        for spec in self.signature.inputs:
            array = inputs[spec.name]
            if spec.datatype == "BYTES":
                array = np.array(
                    [x.decode() if isinstance(x, bytes) else x for x in array.ravel()], dtype=object
                ).reshape(array.shape)
            feed[spec.name] = array
        results = self.session.run(outputs, feed)
        return {name: np.asarray(value) for name, value in zip(outputs, results, strict=True)}

    def unload(self) -> None:
        self.session = None
