"""Which runtime serves a model: named in the settings, or detected from its files."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from dockyard.serving.frameworks import EXTRA, not_installed
from dockyard.serving.runtimes.base import ModelRuntime
from dockyard.serving.settings import ModelSettings, SettingsError

RUNTIMES = {
    "sklearn": "dockyard.serving.runtimes.sklearn:SklearnRuntime",
    "xgboost": "dockyard.serving.runtimes.boosting:XGBoostRuntime",
    "lightgbm": "dockyard.serving.runtimes.boosting:LightGBMRuntime",
    "onnx": "dockyard.serving.runtimes.onnx:OnnxRuntime",
    "torch": "dockyard.serving.runtimes.torch:TorchRuntime",
    "custom": "dockyard.serving.runtimes.custom:CustomRuntime",
}
BY_SUFFIX = {
    ".joblib": "sklearn",
    ".pkl": "sklearn",
    ".pickle": "sklearn",
    ".onnx": "onnx",
    ".pt": "torch",
    ".pth": "torch",
    ".torchscript": "torch",
    ".ts": "torch",
    ".pt2": "torch",
    ".ubj": "xgboost",
    ".bst": "xgboost",
    ".xgb": "xgboost",
    ".lgb": "lightgbm",
    ".py": "custom",
}


def _sniff(file: Path) -> str | None:
    if file.suffix == ".json":
        try:
            head = json.loads(file.read_text())
        except (ValueError, OSError):
            return None
        return "xgboost" if isinstance(head, dict) and "learner" in head else None
    if file.suffix in (".txt", ".model"):
        with open(file, "rb") as fh:
            start = fh.read(64)
        if start.startswith(b"tree\n") or b"version=v" in start:
            return "lightgbm"
        return "xgboost" if file.suffix == ".model" else None
    return BY_SUFFIX.get(file.suffix)


def detect(path: Path, settings: ModelSettings) -> str:
    if settings.runtime:
        return settings.runtime
    if settings.custom_class:
        return "custom"
    files = (
        [path]
        if path.is_file()
        else sorted(p for p in path.iterdir() if p.is_file() and p.name != "model-settings.json")
    )
    if settings.uri:
        files = [path / settings.uri]
    found = {r for r in (_sniff(f) for f in files) if r}
    if len(found) == 1:
        return found.pop()
    if not found:
        raise SettingsError(
            f"{path}: cannot tell which runtime serves it (no .joblib, .pkl, "
            ".onnx, .pt, xgboost .json/.ubj, lightgbm .txt or .py file); set "
            "'runtime' in model-settings.json"
        )
    raise SettingsError(
        f"{path}: files for several runtimes ({', '.join(sorted(found))}); set "
        "'runtime' in model-settings.json"
    )


def load_runtime(path: Path, settings: ModelSettings) -> ModelRuntime:
    name = detect(path, settings)
    module_name, _, class_name = RUNTIMES[name].partition(":")
    try:
        module = importlib.import_module(module_name)
        runtime: ModelRuntime = getattr(module, class_name)(path, settings)
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in EXTRA:
            raise
        raise SettingsError(not_installed(exc.name or "")) from exc
    return runtime
