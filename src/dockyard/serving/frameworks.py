"""The packages each model runtime imports, and the extra of ``dockyard`` that installs them."""

from __future__ import annotations

import importlib.util
import sys

IMPORTS = {
    "sklearn": ("sklearn", "joblib"),
    "xgboost": ("xgboost",),
    "lightgbm": ("lightgbm",),
    "onnx": ("onnxruntime",),
    "torch": ("torch",),
}
EXTRA = {module: runtime for runtime, modules in IMPORTS.items() for module in modules}
PROJECT = {"sklearn": "scikit-learn", "onnxruntime": "ONNX Runtime", "torch": "PyTorch"}


def missing(runtime: str) -> str | None:
    """The first package ``runtime`` needs that this Python cannot import, or None."""
    for module in IMPORTS.get(runtime, ()):
        try:
            if importlib.util.find_spec(module) is None:
                return module
        except ValueError:  # in sys.modules without a spec: it is there
            continue
        except ImportError:  # a broken or blocked install: it cannot be imported
            return module
    return None


def not_installed(module: str) -> str:
    """``scikit-learn is not installed in this Python: pip install 'dockyard[sklearn]'``."""
    top = module.partition(".")[0]
    extra = EXTRA.get(top)
    install = f"pip install 'dockyard[{extra}]'" if extra else f"pip install {top}"
    return f"{PROJECT.get(top, top)} is not installed in this Python ({sys.executable}): {install}"
