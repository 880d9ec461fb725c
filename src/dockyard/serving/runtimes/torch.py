"""PyTorch models saved as TorchScript, on the CPU."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.runtimes.base import Array, Signature, TensorSpec, model_file, unknown_outputs
from dockyard.serving.settings import ModelSettings

SUFFIXES = (".pt", ".pth", ".torchscript", ".ts", ".pt2")


class TorchRuntime:
    def __init__(self, path: Path, settings: ModelSettings) -> None:
        import torch

        self.torch = torch
        file = model_file(path, settings, SUFFIXES)
        threads = settings.parameters.get("threads")
        if threads:
            torch.set_num_threads(int(threads))
        self.model: Any
        if file.suffix == ".pt2":  # torch.export, the successor of TorchScript
            self.model = torch.export.load(str(file)).module()
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                self.model = torch.jit.load(str(file), map_location="cpu")  # type: ignore[no-untyped-call]
                self.model.eval()
        sig = Signature(
            inputs=(TensorSpec("input-0", "FP32", (-1, -1)),),
            outputs=(TensorSpec("output-0", "FP32", (-1, -1)),),
            platform="pytorch_torchscript",
        )
        self.signature = sig.with_settings(settings)

    def predict(self, inputs: dict[str, Array], outputs: list[str]) -> dict[str, Array]:
        unknown_outputs(outputs, self.signature)
        args = [
            self.torch.from_numpy(np.ascontiguousarray(inputs[s.name]))
            for s in self.signature.inputs
        ]
        with self.torch.inference_mode():
            result: Any = self.model(*args)
        values = result if isinstance(result, tuple | list) else (result,)
        named = {
            spec.name: v.detach().cpu().numpy()
            for spec, v in zip(self.signature.outputs, values, strict=False)
        }
        return {name: named[name] for name in outputs}

    def unload(self) -> None:
        self.model = None
