"""``dockyard render --target kubernetes``: the objects of a directory of documents, for GitOps.

The objects come from the same builder the kubernetes runtime applies
(:mod:`dockyard.runtimes.kube_objects`), for the first attempt of each Job, the preparation of
each Dataset and all replicas of each Service. What only a running control plane has is
left to the cluster: secret values are ``secretKeyRef``s to Secrets of the same names, images
are the names Dockyard gives environment and serving images (``--image`` overrides one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dockyard.control.services import serving_env
from dockyard.control.workloads import env_var
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import Mount, PreparedEnvironment, VolumeRef, WorkloadRequest
from dockyard.runtimes.images import env_tag, image_hash
from dockyard.runtimes.kubernetes import code_archive
from dockyard.spec import EnvironmentSpec, Resources
from dockyard.spec.common import WorkloadSpec, split_env
from dockyard.spec.datasets import DatasetSpec
from dockyard.spec.jobs import JobSpec
from dockyard.spec.loader import Loaded
from dockyard.spec.services import ServiceSpec
from dockyard.spec.volumes import VolumeSpec

Obj = dict[str, Any]
CHECKPOINTS = "checkpoints"


class Renderer:
    """The documents of one apply, rendered together (they name each other)."""

    def __init__(
        self,
        loaded: list[Loaded],
        options: ko.ClusterOptions,
        base_image: str,
        code_limit: int,
        images: dict[str, str] | None = None,
    ) -> None:
        self.loaded = loaded
        self.options = options
        self.base_image = base_image
        self.code_limit = code_limit
        self.images = images or {}
        self.specs: dict[tuple[str, str, str], Any] = {}
        self.sources: dict[tuple[str, str, str], Path] = {}
        for item in loaded:
            r = item.resource
            key = (r.kind, r.metadata.project, r.metadata.name)
            self.specs[key] = r.spec
            self.sources[key] = Path(item.doc.source).parent

    def objects(self) -> list[Obj]:
        out: list[Obj] = []
        seen: set[tuple[str, str, str]] = set()

        def add(objs: list[Obj]) -> None:
            for obj in objs:
                meta = obj["metadata"]
                key = (obj["kind"], str(meta.get("namespace", "")), meta["name"])
                if key not in seen:
                    seen.add(key)
                    out.append(obj)

        for project in sorted({p for _, p, _ in self.specs}):
            add(ko.namespace_objects(self.options, project))
        for (kind, project, name), spec in self.specs.items():
            if kind == "Volume":
                size = spec.size or ko.DEFAULT_CLAIM_BYTES
                claim = ko.claim_object(self.options, project, name, spec.tier, size, spec.replicas)
                add([claim])
            elif kind == "Job":
                add(self._workload("job", project, name, spec).all())
            elif kind == "Dataset" and spec.prepare is not None:
                add(self._preparation(project, name, spec).all())
            elif kind == "Service":
                add(self._service(project, name, spec).all())
        return out

    # -- pieces ---------------------------------------------------------------------------------
    def _volume(self, project: str, name: str, sub_path: str) -> VolumeRef:
        spec: VolumeSpec | None = self.specs.get(("Volume", project, name))
        if spec is None:
            return VolumeRef(name, sub_path)
        return VolumeRef(name, sub_path, spec.tier, spec.size, spec.replicas)

    def _environment(self, project: str, name: str | None) -> PreparedEnvironment | None:
        if name is None:
            return None
        spec = self.specs.get(("Environment", project, name)) or EnvironmentSpec()
        tag = env_tag(image_hash(spec, spec.base or self.base_image))
        return PreparedEnvironment("", tag, "/opt/venv/bin/python", dict(spec.env))

    def _code(self, project: str, kind: str, name: str, code: str | None) -> bytes | None:
        if code is None:
            return None
        return code_archive(self.sources[(kind, project, name)] / code, self.code_limit)

    def _mounts(self, project: str, spec: WorkloadSpec) -> list[Mount]:
        mounts = [
            Mount(
                Path("/"),
                vm.mount_path(),
                vm.read_only,
                env_var("VOLUME", vm.name),
                self._volume(project, vm.name, vm.sub_path or ""),
            )
            for vm in spec.volumes
        ]
        for dm in spec.datasets:
            ds: DatasetSpec | None = self.specs.get(("Dataset", project, dm.name))
            if ds is None:
                continue
            ref = self._volume(project, ds.volume, ds.target(dm.name))
            mounts.append(Mount(Path("/"), dm.mount_path(), True, env_var("DATA", dm.name), ref))
        return mounts

    def _workload(self, kind: str, project: str, name: str, spec: JobSpec) -> ko.WorkloadObjects:
        mounts = self._mounts(project, spec)
        if spec.checkpoint is not None:
            ref = self._volume(project, spec.checkpoint.volume, f"{CHECKPOINTS}/{name}/g1")
            mounts.append(
                Mount(Path("/"), spec.checkpoint.path, False, "DOCKYARD_CHECKPOINT_DIR", ref)
            )
        plain, secrets = split_env(spec.env)
        request = WorkloadRequest(
            id=f"job-{name}",
            command=list(spec.command),
            env={
                "DOCKYARD_JOB_NAME": name,
                "DOCKYARD_ATTEMPT": "1",
                "DOCKYARD_PROJECT": project,
                **plain,
            },
            secrets=secrets,
            environment=self._environment(project, spec.environment),
            working_dir=spec.working_dir,
            mounts=tuple(mounts),
            output_dir=Path("/"),
            **_placement(spec.resources),
            timeout=spec.timeout_seconds,
            labels={"dockyard.dev/job": name},
            security=spec.security.model_dump(mode="json", by_alias=True),
            project=project,
            priority=spec.priority,
        )
        return ko.workload_objects(
            request, self.options, self._code(project, "Job", name, spec.code)
        )

    def _preparation(self, project: str, name: str, spec: DatasetSpec) -> ko.WorkloadObjects:
        prepare = spec.prepare
        assert prepare is not None
        plain, secrets = split_env(prepare.env)
        into = Mount(
            Path("/"),
            "/dockyard/dataset",
            False,
            None,
            self._volume(project, spec.volume, spec.target(name)),
        )
        request = WorkloadRequest(
            id=f"dataset-{name}",
            command=list(prepare.command),
            env={"DOCKYARD_DATASET": name, "DOCKYARD_OUTPUT_DIR": "/dockyard/dataset", **plain},
            secrets=secrets,
            environment=self._environment(project, prepare.environment),
            mounts=(into,),
            **_placement(prepare.resources),
            labels={"dockyard.dev/dataset": name},
            project=project,
        )
        code = self._code(project, "Dataset", name, prepare.code)
        return ko.workload_objects(request, self.options, code)

    def _service(self, project: str, name: str, spec: ServiceSpec) -> ko.WorkloadObjects:
        ref = spec.model_ref()
        version = ref.alias or (str(ref.version) if ref.version else "latest")
        image = self.images.get(name, f"localhost/dockyard/serve-{ref.name}:{version}")
        plain, secrets = serving_env(spec)  # as the control plane starts replicas
        command = ["python", "-m", "dockyard.serving", "--host", "0.0.0.0"]
        command += ["--model", f"{ref.name}:{ref.version or 1}=/model"]
        request = WorkloadRequest(
            id=f"svc-{name}",
            command=command,
            env=plain,
            secrets=secrets,
            environment=PreparedEnvironment("", image, "python"),
            **_placement(spec.resources),
            labels={"dockyard.dev/service": name},
            project=project,
        )
        return ko.workload_objects(request, self.options, replicas=spec.replicas)


def _placement(resources: Resources) -> dict[str, Any]:
    """What a request says of its resources, as the reconcilers put it."""
    return {
        "cpu": resources.cpu,
        "cpu_limit": resources.cpu_limit,
        "memory": resources.memory,
        "gpus": tuple(range(resources.gpu)),
        "gpu_type": resources.gpu_type,
    }
