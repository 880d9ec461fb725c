"""The models a server holds: name → version → loaded model, and where each comes from.

Sources are registered from ``--model NAME=PATH`` and ``--model-repository DIR``; a model
directory holding numeric subdirectories (``1/``, ``2/``) has one version per subdirectory.
Loading builds the runtime, checks it with one warm-up inference and only then marks it ready.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.errors import DockyardError
from dockyard.serving.codec import DATATYPES, InferInput, TensorError
from dockyard.serving.metrics import Metrics, ModelMetrics
from dockyard.serving.predictors import (
    GIL_BOUND_BELOW,
    INLINE_BELOW,
    PROCESS_ABOVE,
    Batched,
    Direct,
    Predictor,
    Runner,
    gil_share,
)
from dockyard.serving.runtimes.base import Array, ModelRuntime, Signature, TensorSpec
from dockyard.serving.runtimes.registry import load_runtime
from dockyard.serving.settings import ModelSettings, SettingsError, load_settings
from dockyard.serving.worker import WorkerProcess

log = logging.getLogger("dockyard.serving")


class ModelNotFoundError(DockyardError, LookupError):
    """No model (or version) of that name is loaded or registered."""

    code = "model-not-found"
    status = 404


class ModelNotReadyError(DockyardError, RuntimeError):
    """The model is known but not (yet, or no longer) ready to answer."""

    code = "model-not-ready"
    status = 503


@dataclass
class Source:
    name: str
    version: str
    path: Path
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class LoadedModel:
    name: str
    version: str
    settings: ModelSettings
    runtime: ModelRuntime
    predictor: Predictor
    metrics: ModelMetrics
    load_seconds: float
    inline: bool
    ready: bool = True

    @property
    def signature(self) -> Signature:
        return self.runtime.signature

    def output_types(self) -> dict[str, str]:
        return {o.name: o.datatype for o in self.signature.outputs}

    def default_outputs(self) -> list[str]:
        return list(self.signature.default_outputs) or self.signature.output_names()

    def metadata(self, versions: list[str]) -> dict[str, Any]:
        return {
            "name": self.name,
            "versions": versions,
            "platform": self.signature.platform,
            "inputs": [t.as_dict() for t in self.signature.inputs],
            "outputs": [t.as_dict() for t in self.signature.outputs],
        }

    def prepare(self, inputs: list[InferInput]) -> dict[str, Array]:
        """Check request inputs against the signature; cast safe datatype differences."""
        specs = self.signature.inputs
        if len(specs) == 1 and len(inputs) == 1:
            pairs = [(specs[0], inputs[0])]  # one input: its name need not match
        else:
            by_name = {i.name: i for i in inputs}
            unknown = set(by_name) - {s.name for s in specs}
            if unknown:
                raise TensorError(
                    f"unknown input(s) {sorted(unknown)}; this model takes "
                    f"{[s.name for s in specs]}"
                )
            missing = [s.name for s in specs if s.name not in by_name]
            if missing:
                raise TensorError(f"missing input(s) {missing}")
            pairs = [(s, by_name[s.name]) for s in specs]
        return {spec.name: conform(spec, given) for spec, given in pairs}


def conform(spec: TensorSpec, given: InferInput) -> Array:
    dims = spec.shape
    shape = list(given.data.shape)
    if dims and (
        len(dims) != len(shape) or any(d not in (-1, s) for d, s in zip(dims, shape, strict=True))
    ):
        raise TensorError(f"input '{given.name}': expected shape {list(dims)}, got {shape}")
    if given.datatype == spec.datatype:
        return given.data
    numeric = {"BOOL", "BYTES"}
    if given.datatype in numeric or spec.datatype in numeric:
        raise TensorError(
            f"input '{given.name}': expected datatype {spec.datatype}, got {given.datatype}"
        )
    return given.data.astype(DATATYPES[spec.datatype])


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)


def _sample(signature: Signature, rows: int) -> dict[str, Array]:
    sample = {}
    for spec in signature.inputs:
        dims = [rows] + [1 if d < 0 else d for d in spec.shape[1:]]
        dtype = DATATYPES.get(spec.datatype, np.dtype(np.float64))
        if spec.datatype == "BYTES":
            sample[spec.name] = np.full(dims, b"", dtype=object)
        else:
            sample[spec.name] = np.zeros(dims, dtype=dtype)
    return sample


class Repository:
    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.sources: dict[str, list[Source]] = {}
        self.models: dict[str, dict[str, LoadedModel]] = {}
        self.default_version: dict[str, str] = {}
        self.errors: dict[str, str] = {}
        self.loading: set[str] = set()
        self.arriving = 0  # requests read but not yet queued: batchers may wait for them

    # -- sources ------------------------------------------------------------------------
    def add(
        self,
        name: str,
        path: Path,
        version: str | None = None,
        overrides: dict[str, Any] | None = None,
        default: bool = False,
    ) -> None:
        if not path.exists():
            raise SettingsError(f"model '{name}': {path} does not exist")
        versions = (
            sorted(
                (p for p in path.iterdir() if p.is_dir() and p.name.isdigit()),
                key=lambda p: int(p.name),
            )
            if path.is_dir()
            else []
        )
        if versions and version is None:
            entries = [Source(name, p.name, p, dict(overrides or {})) for p in versions]
        else:
            entries = [Source(name, version or "1", path, dict(overrides or {}))]
        known = {s.version: s for s in self.sources.get(name, [])}
        known.update({s.version: s for s in entries})
        self.sources[name] = list(known.values())
        if default:
            self.default_version[name] = entries[-1].version

    def add_repository(self, root: Path) -> None:
        if not root.is_dir():
            raise SettingsError(f"model repository {root} is not a directory")
        for child in sorted(root.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                self.add(child.name, child)

    # -- loading ------------------------------------------------------------------------
    async def load(self, name: str) -> list[LoadedModel]:
        if name not in self.sources:
            raise ModelNotFoundError(
                f"model '{name}' is not in the repository; models: "
                f"{', '.join(sorted(self.sources)) or 'none'}"
            )
        loop = asyncio.get_running_loop()
        self.loading.add(name)
        try:
            loaded = []
            for source in self.sources[name]:
                model = await loop.run_in_executor(None, self._load_one, source)
                self.models.setdefault(name, {})[source.version] = model
                loaded.append(model)
            self.errors.pop(name, None)
            self.metrics.loaded.set(sum(len(v) for v in self.models.values()))
            return loaded
        except Exception as exc:
            self.errors[name] = str(exc)
            raise
        finally:
            self.loading.discard(name)

    def _load_one(self, source: Source) -> LoadedModel:
        started = time.perf_counter()
        version = source.version
        settings = load_settings(source.path, source.overrides)
        try:
            runtime = load_runtime(source.path, settings)
        except SettingsError as exc:
            raise SettingsError(f"model '{source.name}' version {version}: {exc}") from exc
        except ModuleNotFoundError as exc:
            raise SettingsError(
                f"model '{source.name}' version {version}: the runtime needs "
                f"the '{exc.name}' package; install it where the server runs"
            ) from exc
        except Exception as exc:
            raise SettingsError(
                f"model '{source.name}' version {version}: cannot load "
                f"{source.path}: {type(exc).__name__}: {exc}"
            ) from exc
        metrics = self.metrics.bind(source.name, version)
        rows = settings.batching.max_batch_size if settings.batching else 1
        try:
            outputs = list(runtime.signature.default_outputs) or runtime.signature.output_names()
            runtime.predict(_sample(runtime.signature, 1), outputs)  # warm-up, must succeed
            timings = []
            big = _sample(runtime.signature, rows)
            for _ in range(3):
                t0 = time.perf_counter()
                runtime.predict(big, outputs)
                timings.append(time.perf_counter() - t0)
        except Exception as exc:
            raise SettingsError(
                f"model '{source.name}' version {version}: the warm-up inference failed: {exc}"
            ) from exc
        mode = settings.parameters.get("executor", "auto")
        took = statistics.median(timings)
        inline = mode == "inline" or (mode == "auto" and took < INLINE_BELOW)
        runner = Runner(runtime, inline, metrics)
        settings_dict = settings.model_dump(by_alias=True)
        if mode == "process":
            runner.use_worker(WorkerProcess(source.path, settings_dict))
        elif mode == "auto" and took >= PROCESS_ABOVE:
            # a slow model: measure off the start-up path whether it holds the GIL, and move
            # it to a worker process if so; until then (and otherwise) it runs in a thread
            def place() -> None:
                share = gil_share(lambda: runtime.predict(big, outputs))
                if share < GIL_BOUND_BELOW:
                    log.info(
                        "%s version %s holds the GIL (share %.2f): moving it to a worker process",
                        source.name,
                        version,
                        share,
                    )
                    runner.use_worker(WorkerProcess(source.path, settings_dict))

            threading.Thread(target=place, daemon=True, name="placement").start()
        predictor: Predictor
        if settings.batching is not None and settings.batching.max_batch_size > 1:
            predictor = Batched(
                runner,
                settings.batching.max_batch_size,
                settings.batching.max_latency_ms,
                lambda: self.arriving,
            )
        else:
            predictor = Direct(runner)
        seconds = time.perf_counter() - started
        self.metrics.load_seconds.labels(source.name, version).set(seconds)
        log.info(
            "loaded %s version %s (%s%s) in %.2fs; predict %s, batching %s",
            source.name,
            version,
            runtime.signature.platform,
            f", {runtime.signature.extra['class']}" if "class" in runtime.signature.extra else "",
            seconds,
            "on the event loop" if inline else "off the event loop",
            f"up to {settings.batching.max_batch_size} rows / "
            f"{settings.batching.max_latency_ms:g} ms"
            if settings.batching
            else "off",
        )
        return LoadedModel(
            source.name, version, settings, runtime, predictor, metrics, seconds, inline
        )

    async def load_all(self) -> None:
        for name in list(self.sources):
            await self.load(name)

    async def unload(self, name: str) -> None:
        versions = self.models.pop(name, None)
        if versions is None:
            raise ModelNotFoundError(f"model '{name}' is not loaded")
        for model in versions.values():
            model.ready = False
            await model.predictor.close()
            model.runtime.unload()
        self.metrics.loaded.set(sum(len(v) for v in self.models.values()))

    async def close(self) -> None:
        for name in list(self.models):
            await self.unload(name)

    # -- lookups ------------------------------------------------------------------------
    def get(self, name: str, version: str | None = None) -> LoadedModel:
        versions = self.models.get(name)
        if not versions:
            if name in self.sources:
                state = "loading" if name in self.loading else "not loaded"
                raise ModelNotReadyError(
                    f"model '{name}' is {state}"
                    + (f": {self.errors[name]}" if name in self.errors else "")
                )
            raise ModelNotFoundError(
                f"model '{name}' not found; models: {', '.join(sorted(self.models)) or 'none'}"
            )
        if version is None:
            version = self.default_version.get(name)
            if version not in versions:
                version = max(versions, key=_version_key)
        if version not in versions:
            raise ModelNotFoundError(
                f"model '{name}' has no version '{version}'; versions: "
                f"{', '.join(sorted(versions, key=_version_key))}"
            )
        return versions[version]

    def versions(self, name: str) -> list[str]:
        return sorted(self.models.get(name, {}), key=_version_key)

    @property
    def ready(self) -> bool:
        return (
            bool(self.models)
            and not self.loading
            and all(m.ready for versions in self.models.values() for m in versions.values())
        )

    def index(self) -> list[dict[str, str]]:
        out = []
        for name in sorted(set(self.sources) | set(self.models)):
            loaded = self.models.get(name, {})
            for source in sorted(self.sources.get(name, []), key=lambda s: _version_key(s.version)):
                state = (
                    "READY"
                    if source.version in loaded
                    else ("LOADING" if name in self.loading else "UNAVAILABLE")
                )
                out.append(
                    {
                        "name": name,
                        "version": source.version,
                        "state": state,
                        "reason": self.errors.get(name, "") if state != "READY" else "",
                    }
                )
        return out
