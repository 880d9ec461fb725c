"""scikit-learn models compiled to NumPy arrays, and a cache of them that starts servers fast.

Importing scikit-learn takes 1.3 to 2 s (SciPy and pandas underneath): more than everything else
a model server does before its first prediction. A forest or linear model (optionally behind
standard/min-max scalers) is compiled once into flat arrays, checked against scikit-learn's
own answers on sample rows, and written to a cache keyed by the sha256 of the model file. A
later start of any server for the same file (a restart, another replica, a container built
with the cache inside) reads the arrays and never imports scikit-learn.

Cache: ``DOCKYARD_COMPILE_CACHE`` (a directory, or ``off``), else
``$XDG_CACHE_HOME/dockyard/compiled`` (``~/.cache/dockyard/compiled``). Files are ``.npz``
read with ``allow_pickle=False``: a cache entry can never run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.runtimes.forest import FORESTS, CompiledForest
from dockyard.serving.runtimes.linear import CLASSIFIERS, LINKS, REGRESSORS, Affine, CompiledLinear

log = logging.getLogger("dockyard.serving")
Array = np.ndarray[Any, Any]
Final = CompiledForest | CompiledLinear
FINALS: dict[str, type[CompiledForest] | type[CompiledLinear]] = {
    "forest": CompiledForest,
    "linear": CompiledLinear,
}
FORMAT = 1


@dataclass
class CompiledModel:
    final: Final
    steps: list[Affine] = field(default_factory=list)
    prefix: Any = None  # scikit-learn preprocessing that has no compiled form (never cached)

    @property
    def outputs(self) -> tuple[str, ...]:
        return self.final.outputs

    def rows(self, x: Array) -> Array:
        if self.prefix is not None:
            return np.asarray(self.prefix.transform(x))
        for step in self.steps:
            x = step.transform(x)
        return x

    def run(self, x: Array, outputs: list[str]) -> dict[str, Array]:
        rows = self.rows(x)
        return {name: np.asarray(getattr(self.final, name)(rows)) for name in outputs}

    def same_as(self, model: Any, n_features: int) -> bool:
        """The same answers as scikit-learn on zeros and on random rows, for every output."""
        rng = np.random.default_rng(0)
        sample = np.vstack([np.zeros((1, n_features)), rng.normal(0, 8, size=(64, n_features))])
        ours = self.run(sample, list(self.outputs))
        for name, mine in ours.items():
            theirs = np.asarray(getattr(model, name)(sample))
            if mine.shape != theirs.shape or mine.dtype.kind != theirs.dtype.kind:
                return False
            if mine.dtype.kind == "f":
                if not np.allclose(mine, theirs, rtol=0, atol=1e-9):
                    return False
            elif not np.array_equal(mine, theirs):
                return False
        return True


def compile_model(model: Any, trees: bool = True) -> CompiledModel | None:
    """A checked compiled form of a fitted scikit-learn model, or None if it has none."""
    n_features = getattr(model, "n_features_in_", None)
    steps = getattr(model, "steps", None)
    final, prefix = (steps[-1][1], model[:-1]) if steps else (model, None)
    name = type(final).__name__
    if n_features is None or (name in FORESTS and not trees):
        return None
    finals: list[Final] = []
    try:
        if name in FORESTS:
            finals = [CompiledForest.of(final)]
        elif name == "LogisticRegression":
            finals = [CompiledLinear.of(final, link) for link in LINKS]
        elif name in CLASSIFIERS + REGRESSORS:
            finals = [CompiledLinear.of(final)]
    except (AttributeError, ValueError, TypeError):
        return None
    affine: list[Affine | None] = []
    if prefix is not None:
        affine = [Affine.of(s) for _, s in prefix.steps if s not in (None, "passthrough")]
    for candidate in finals:
        compiled = (
            CompiledModel(candidate, [a for a in affine if a is not None])
            if all(a is not None for a in affine)
            else CompiledModel(candidate, prefix=prefix)
        )
        try:
            if compiled.same_as(model, int(n_features)):
                return compiled
        except (ValueError, TypeError, AttributeError):
            continue
    return None


def cache_dir() -> Path | None:
    configured = os.environ.get("DOCKYARD_COMPILE_CACHE")
    if configured is not None:
        return None if configured.strip().lower() in ("", "off", "0", "false") else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "dockyard" / "compiled"


def cache_key(file: Path, trees: bool) -> str:
    digest = hashlib.sha256()
    with open(file, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    try:
        sklearn = metadata.version("scikit-learn")
    except metadata.PackageNotFoundError:
        sklearn = "none"
    salt = f"format={FORMAT};sklearn={sklearn};trees={trees}"
    return hashlib.sha256(digest.hexdigest().encode() + salt.encode()).hexdigest()


def _classes_in(classes: Array | None) -> tuple[Array | None, bool]:
    """Classes as a pickle-free array, and whether they were Python objects (labels as str)."""
    if classes is None or classes.dtype != object:
        return classes, False
    if not all(isinstance(c, str) for c in classes):
        raise ValueError("class labels that are neither numbers nor strings are not cached")
    return classes.astype(str), True


def store(key: str, compiled: CompiledModel, info: dict[str, Any]) -> Path | None:
    """Write ``compiled`` (without a scikit-learn prefix) and ``info`` under ``key``."""
    directory = cache_dir()
    if directory is None or compiled.prefix is not None:
        return None
    try:
        classes, as_object = _classes_in(compiled.final.classes)
        arrays = {f"final/{k}": v for k, v in compiled.final.arrays().items()}
        for i, step in enumerate(compiled.steps):
            arrays.update({f"step{i}/{k}": v for k, v in step.arrays().items()})
        if classes is not None:
            arrays["classes"] = classes
        meta = {
            "format": FORMAT,
            "kind": compiled.final.kind,
            "scalars": compiled.final.scalars(),
            "steps": len(compiled.steps),
            "classes_object": as_object,
            "info": info,
        }
        arrays["meta"] = np.array(json.dumps(meta))
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{key}.npz"
        with tempfile.NamedTemporaryFile(dir=directory, suffix=".tmp", delete=False) as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]
        os.chmod(fh.name, 0o644)  # servers may run as another user (a container's)
        os.replace(fh.name, target)
        return target
    except (OSError, ValueError) as exc:
        log.debug("compiled model not cached: %s", exc)
        return None


def load(key: str) -> tuple[CompiledModel, dict[str, Any]] | None:
    """The compiled model and its info cached under ``key``, or None (missing or unreadable)."""
    directory = cache_dir()
    if directory is None:
        return None
    file = directory / f"{key}.npz"
    if not file.exists():
        return None
    try:
        with np.load(file, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        meta = json.loads(str(arrays.pop("meta")))
        if meta.get("format") != FORMAT:
            return None
        classes = arrays.pop("classes", None)
        if classes is not None and meta["classes_object"]:
            classes = classes.astype(object)
        final = FINALS[meta["kind"]].restore(
            {k.removeprefix("final/"): v for k, v in arrays.items() if k.startswith("final/")},
            meta["scalars"],
            classes,
        )
        steps = [
            Affine(**{n: arrays[f"step{i}/{n}"] for n in ("sub", "div", "mul", "add")})
            for i in range(int(meta["steps"]))
        ]
        return CompiledModel(final, steps), dict(meta["info"])
    except Exception as exc:  # a damaged entry is a miss, never a failed start
        log.warning("ignoring the unreadable compiled-model cache entry %s: %s", file, exc)
        return None
