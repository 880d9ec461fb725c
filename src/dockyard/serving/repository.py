"""The models a server holds: name → version → loaded runtime."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dockyard.serving.runtimes.base import ModelRuntime

log = logging.getLogger("dockyard.serving")


class ModelNotFound(LookupError):
    pass


@dataclass
class Loaded:
    name: str
    version: str
    runtime: ModelRuntime
    ready: bool = False
    load_seconds: float = 0.0


@dataclass
class Repository:
    models: dict[str, dict[str, Loaded]] = field(default_factory=dict)
    default_version: dict[str, str] = field(default_factory=dict)

    def load(
        self, name: str, path: Path, version: str = "1", settings: dict[str, Any] | None = None
    ) -> Loaded:
        from dockyard.serving.runtimes.sklearn import SklearnRuntime

        started = time.perf_counter()
        runtime = SklearnRuntime(path, settings or {})
        loaded = Loaded(name, version, runtime)
        self._warm_up(loaded)
        loaded.load_seconds = time.perf_counter() - started
        loaded.ready = True
        self.models.setdefault(name, {})[version] = loaded
        self.default_version[name] = max(self.models[name], key=_version_key)
        log.info(
            "loaded model %s version %s (%s, %s) in %.2fs",
            name,
            version,
            runtime.signature.platform,
            runtime.signature.extra.get("class", ""),
            loaded.load_seconds,
        )
        return loaded

    @staticmethod
    def _warm_up(loaded: Loaded) -> None:
        spec = loaded.runtime.signature.inputs[0]
        dims = [1 if d < 0 else d for d in spec.shape]
        loaded.runtime.predict({spec.name: np.zeros(dims)}, None)

    def get(self, name: str, version: str | None = None) -> Loaded:
        versions = self.models.get(name)
        if not versions:
            raise ModelNotFound(
                f"model '{name}' is not loaded here; models: "
                f"{', '.join(sorted(self.models)) or 'none'}"
            )
        if version is None:
            version = self.default_version[name]
        if version not in versions:
            raise ModelNotFound(
                f"model '{name}' has no version '{version}'; versions: "
                f"{', '.join(sorted(versions, key=_version_key))}"
            )
        return versions[version]

    @property
    def ready(self) -> bool:
        return bool(self.models) and all(
            m.ready for versions in self.models.values() for m in versions.values()
        )


def _version_key(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (-1, version)
