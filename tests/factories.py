"""Documents for tests, built the way a user writes them."""

from __future__ import annotations

from typing import Any

API = "dockyard.dev/v1"


def doc(kind: str, name: str, spec: dict[str, Any], **metadata: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name, **metadata}, "spec": spec}


def volume(name: str = "data", **spec: Any) -> dict[str, Any]:
    return doc("Volume", name, spec)


def environment(
    name: str = "env", packages: list[str] | None = None, **spec: Any
) -> dict[str, Any]:
    return doc("Environment", name, {"packages": packages or [], **spec})


def python(code: str) -> list[str]:
    """A command running ``code`` with the job's Python."""
    return ["python", "-c", code]


def job(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    spec.setdefault("resources", {"cpu": 0.1})
    return doc("Job", name, {"command": command, **spec})


def dataset(name: str, volume: str = "data", **spec: Any) -> dict[str, Any]:
    return doc("Dataset", name, {"volume": volume, **spec})


def service(name: str, model: str, **spec: Any) -> dict[str, Any]:
    spec.setdefault("resources", {"cpu": 0.1})
    return doc("Service", name, {"model": model, **spec})


# Trains a tiny scikit-learn model on one feature and writes it with its metrics.
TRAIN = """
import json, os, pickle
from sklearn.linear_model import LogisticRegression
out = os.environ['DOCKYARD_OUTPUT_DIR']
model = LogisticRegression().fit([[0.0], [1.0], [2.0], [3.0]], [0, 0, 1, 1])
pickle.dump(model, open(os.path.join(out, 'model.pkl'), 'wb'))
json.dump({'accuracy': 1.0}, open(os.path.join(out, 'metrics.json'), 'w'))
"""
