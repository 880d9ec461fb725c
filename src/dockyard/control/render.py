"""``dockyard render --target kubernetes``: the objects of a directory of documents, for GitOps.

What is rendered runs with no Dockyard at all (``kubectl apply``, Argo CD, Flux):

- **Where**: one namespace per project, ``<prefix>gitops-<project>`` (or ``--namespace``), and
  every object labelled ``app.kubernetes.io/managed-by: dockyard-render``: nothing a live
  control plane makes (``<prefix><project>``, ``managed-by: dockyard``) is touched or adopted.
- **Order**, the Kubernetes way: Argo CD sync waves (namespace, claims and code first, then
  the dataset preparations, the training jobs, the model servers) and, for plain ``kubectl
  apply``, init containers that wait for what a pod needs — a dataset's preparation or the job
  that trains a Service's model — to have finished (a marker file on the claim).
- **The model**: the job that produces it (``outputs.model``) writes it to the claim
  ``dockyard-outputs`` (``<job>/``); the Service serves it from there with the model server
  image of its environment (``dockyard images build ENV --serving``). Registering versions,
  aliases, lineage and metrics needs the control plane: ``dockyard apply`` the same documents.
- **Images** are the ones ``dockyard images build ENV --serving [--push REGISTRY]`` makes
  (``--registry`` names where they were pushed; without it they must exist on this machine);
  ``--image NAME=IMAGE`` sets one for an environment or a service.
- **Secrets** are references (``secretKeyRef``) to Secrets of the same names that the user
  makes; no value is ever printed.

The objects come from the same builder the kubernetes runtime applies
(:mod:`dockyard.runtimes.kube_objects`) and the model server's arguments from the Service
reconciler's (``services.model_server_args``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from dockyard import checkpoints as protocol
from dockyard.control import datasets, jobs, services
from dockyard.control import workloads as wl
from dockyard.control.services import serving_env
from dockyard.control.workloads import env_var
from dockyard.errors import DockyardError
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes.base import Mount, PreparedEnvironment, VolumeRef
from dockyard.runtimes.images import env_tag, image_hash, server_tag
from dockyard.runtimes.steps import PruneCheckpoints, Step
from dockyard.spec import EnvironmentSpec
from dockyard.spec.common import WorkloadSpec, split_env
from dockyard.spec.datasets import DatasetSpec
from dockyard.spec.jobs import JobSpec
from dockyard.spec.loader import Loaded
from dockyard.spec.services import ServiceSpec
from dockyard.spec.volumes import VolumeSpec
from dockyard.version import __version__

Obj = dict[str, Any]
CHECKPOINTS = "checkpoints"
RENDERED = "dockyard-render"  # the managed-by of rendered objects (a live plane's: dockyard)
OUTPUTS = "dockyard-outputs"  # the claim the rendered jobs write their outputs to
MARKERS = ".dockyard-markers"  # on a claim: what finished (dataset-NAME, job-NAME)
MARKS = "/dockyard/markers"
WAVE = "argocd.argoproj.io/sync-wave"
FIRST = {  # what every workload needs before it: kind -> Argo CD sync wave (lower first)
    "Namespace": -3,
    "NetworkPolicy": -2,
    "PriorityClass": -2,
    "PersistentVolumeClaim": -1,
    "ConfigMap": -1,
}
PREPARE, TRAIN, SERVE = 0, 1, 2  # the waves of dataset preparations, jobs, model servers


class Renderer:
    """The documents of one apply, rendered together (they name each other)."""

    def __init__(
        self,
        loaded: list[Loaded],
        options: ko.ClusterOptions,
        base_image: str,
        code_limit: int,
        images: dict[str, str] | None = None,
        namespace: str | None = None,
        output_bytes: int = 1024**3,
        exists: Callable[[str], bool] | None = None,
    ) -> None:
        self.loaded = loaded
        # a project's namespace is <prefix>gitops-<project>: never a live control plane's
        self.options = replace(options, namespace_prefix=f"{options.namespace_prefix}gitops-")
        self.namespace = namespace
        self.base_image = base_image
        self.code_limit = code_limit
        self.images = images or {}
        self.output_bytes = output_bytes
        self.exists = exists  # None: the images are where --registry says, not checked
        self.specs: dict[tuple[str, str, str], Any] = {}
        self.sources: dict[tuple[str, str, str], Path] = {}
        for item in loaded:
            r = item.resource
            key = (r.kind, r.metadata.project, r.metadata.name)
            self.specs[key] = r.spec
            self.sources[key] = Path(item.doc.source).parent
        projects = {p for _, p, _ in self.specs}
        if namespace is not None and len(projects) > 1:
            raise DockyardError(
                f"--namespace puts everything in one namespace, but the documents have "
                f"{len(projects)} projects ({', '.join(sorted(projects))})",
                hint="render one project at a time (-p PROJECT), or leave out --namespace",
            )

    # -- the whole ---------------------------------------------------------------------------
    def objects(self) -> list[Obj]:
        out: list[tuple[int, Obj]] = []
        seen: set[tuple[str, str, str]] = set()

        def add(objs: list[Obj], wave: int = PREPARE) -> None:
            for made in objs:
                obj = self._rendered(made)
                meta = obj["metadata"]
                key = (obj["kind"], str(meta.get("namespace", "")), meta["name"])
                if key not in seen:
                    seen.add(key)
                    at = FIRST.get(obj["kind"], wave)
                    meta.setdefault("annotations", {})[WAVE] = str(at)
                    out.append((at, obj))

        for project in sorted({p for _, p, _ in self.specs}):
            add(ko.namespace_objects(self.options, project))
        for (kind, project, name), spec in self.specs.items():
            if kind == "Volume":
                size = spec.size or ko.DEFAULT_CLAIM_BYTES
                add([ko.claim_object(self.options, project, name, spec.tier, size, spec.replicas)])
            elif kind == "Job":
                add(self._job(project, name, spec).all(), TRAIN)
            elif kind == "Dataset" and spec.prepare is not None:
                add(self._preparation(project, name, spec).all(), PREPARE)
            elif kind == "Service":
                add(self._service(project, name, spec).all(), SERVE)
        return [obj for _, obj in sorted(out, key=_order)]

    def header(self) -> str:
        """What the objects need that only the user can give, as YAML comments."""
        lines = [
            f"# Rendered by Dockyard {__version__} for GitOps: apply with kubectl, or commit for",
            "# Argo CD / Flux (sync waves order them; init containers wait where Argo does not).",
            "# Without a control plane there is no model registry (versions, aliases, lineage,",
            "# metrics), no retry beyond one attempt and no dataset checksums: `dockyard apply`",
            "# the same documents for those. A trained model is served from the claim",
            f"# {OUTPUTS} (ReadWriteOnce: its pods share one node; use a ReadWriteMany class",
            "# for more).",
        ]
        secrets = sorted(self._secret_names())
        if secrets:
            lines.append("# Secrets to create first (their values are never rendered):")
            for name, keys in secrets:
                literal = " ".join(f"--from-literal={k}=..." for k in keys)
                lines.append(f"#   kubectl -n NAMESPACE create secret generic {name} {literal}")
        return "\n".join(lines) + "\n"

    # -- pieces ---------------------------------------------------------------------------------
    def _rendered(self, obj: Obj) -> Obj:
        """The object as GitOps gets it: its namespace, managed-by dockyard-render."""
        obj = copy.deepcopy(obj)
        _relabel(obj)
        meta = obj["metadata"]
        if self.namespace is not None:
            if obj["kind"] == "Namespace":
                meta["name"] = self.namespace
            elif "namespace" in meta:
                meta["namespace"] = self.namespace
        return obj

    def _secret_names(self) -> set[tuple[str, tuple[str, ...]]]:
        refs: dict[str, set[str]] = {}
        for kind, _project, _name in self.specs:
            spec = self.specs[(kind, _project, _name)]
            env = getattr(spec, "env", None) or getattr(getattr(spec, "prepare", None), "env", {})
            _plain, secrets = split_env(env or {})
            if kind == "Service":
                _plain, secrets = serving_env(spec)
            for ref in secrets.values():
                secret, key = ref.split("/", 1)
                refs.setdefault(secret, set()).add(key)
        return {(name, tuple(sorted(keys))) for name, keys in refs.items()}

    def _volume(self, project: str, name: str, sub_path: str) -> VolumeRef:
        spec: VolumeSpec | None = self.specs.get(("Volume", project, name))
        if spec is None:
            raise DockyardError(
                f"volume '{name}' is not in the documents rendered",
                hint="render the documents that define it together (-f DIR)",
            )
        return VolumeRef(name, sub_path, spec.tier, spec.size, spec.replicas)

    def _env_spec(self, project: str, name: str) -> EnvironmentSpec:
        spec: EnvironmentSpec | None = self.specs.get(("Environment", project, name))
        if spec is None:
            raise DockyardError(
                f"environment '{name}' is not in the documents rendered",
                hint="render the documents that define it together (-f DIR)",
            )
        return spec

    def _image(self, name: str, local: str, build: str) -> str:
        """The image of ``name`` (an environment or a service): --image, else the one
        Dockyard builds, under --registry; without one, it must exist on this machine."""
        if name in self.images:
            return self.images[name]
        if self.exists is not None and not self.exists(local):
            raise DockyardError(
                f"the image {local} of {name} is not built on this machine",
                hint=f"build it: dockyard images build {build} --serving (then load it onto "
                "the nodes, or push it with --push REGISTRY and render with --registry), or "
                f"pass --image {name}=IMAGE",
            )
        return ko.pushed_name(self.options, local)

    def _environment(self, project: str, name: str | None) -> PreparedEnvironment | None:
        if name is None:
            return None
        spec = self._env_spec(project, name)
        digest = image_hash(spec, spec.base or self.base_image)
        image = self._image(name, env_tag(digest), name)
        return PreparedEnvironment(digest, image, "/opt/venv/bin/python", dict(spec.env))

    def _code(self, project: str, kind: str, name: str, code: str | None) -> bytes | None:
        if code is None:
            return None
        return ko.code_archive(self.sources[(kind, project, name)] / code, self.code_limit)

    def _mounts(self, project: str, spec: WorkloadSpec) -> tuple[list[Mount], list[Mount]]:
        """(what the workload mounts, the markers of the datasets it waits for)."""
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
        waits: list[Mount] = []
        for i, dm in enumerate(spec.datasets):
            ds: DatasetSpec | None = self.specs.get(("Dataset", project, dm.name))
            if ds is None:
                raise DockyardError(
                    f"dataset '{dm.name}' is not in the documents rendered",
                    hint="render the documents that define it together (-f DIR)",
                )
            ref = self._volume(project, ds.volume, ds.target(dm.name))
            mounts.append(Mount(Path("/"), dm.mount_path(), True, env_var("DATA", dm.name), ref))
            if ds.prepare is not None:
                marks = self._volume(project, ds.volume, MARKERS)
                waits.append(
                    Mount(Path("/"), f"/dockyard/wait/{i}/dataset-{dm.name}", True, None, marks)
                )
        return mounts, waits

    def _producer(self, project: str, model: str) -> tuple[str, JobSpec]:
        """The job of these documents that trains ``model``."""
        for (kind, p, name), spec in self.specs.items():
            trains = spec.outputs.model if kind == "Job" else None
            if p == project and trains is not None and trains.name == model:
                return name, spec
        raise DockyardError(
            f"no job of these documents trains model '{model}' (outputs.model)",
            hint="render the job that trains it together with the service (-f DIR); a model "
            "registered by a control plane is served by `dockyard apply`, not a render",
        )

    def _job(self, project: str, name: str, spec: JobSpec) -> ko.WorkloadObjects:
        mounts, waits = self._mounts(project, spec)
        steps: tuple[Step, ...] = ()
        env: dict[str, str] = {}
        if spec.checkpoint is not None:  # as resolve_inputs mounts it, pruned in the pod
            rel = f"{CHECKPOINTS}/{name}/g1"
            ref = self._volume(project, spec.checkpoint.volume, rel)
            where = Path("/volumes") / spec.checkpoint.volume / rel
            mounts.append(Mount(where, spec.checkpoint.path, False, protocol.DIR_ENV, ref))
            steps = (PruneCheckpoints((where.parent, where.name), spec.checkpoint.keep),)
            env = wl.checkpoint_env(spec.checkpoint)
        inputs = wl.Inputs(self._environment(project, spec.environment), tuple(mounts), env=env)
        request = jobs.attempt_request(spec, name, project, name, 1, inputs, Path("/outputs"))
        marks = VolumeRef(OUTPUTS, MARKERS, size=self.output_bytes)
        request = replace(
            request,
            command=_marked(list(request.command), f"job-{name}"),
            mounts=(*request.mounts, Mount(Path("/"), MARKS, False, None, marks)),
            output_volume=VolumeRef(OUTPUTS, name, size=self.output_bytes),
            steps=steps,
        )
        objects = ko.workload_objects(
            request, self.options, self._code(project, "Job", name, spec.code)
        )
        objects.main["spec"]["backoffLimit"] = spec.retry.limit  # its retries, the Job's way
        return _waiting(objects, waits)

    def _preparation(self, project: str, name: str, spec: DatasetSpec) -> ko.WorkloadObjects:
        prepare = spec.prepare
        assert prepare is not None
        marks = self._volume(project, spec.volume, MARKERS)
        inputs = wl.Inputs(
            self._environment(project, prepare.environment),
            (Mount(Path("/"), MARKS, False, None, marks),),
        )
        target = self._volume(project, spec.volume, spec.target(name))
        request = datasets.prepare_request(
            prepare, name, f"prepare-{name}", inputs, Path("/outputs"), target
        )
        request = replace(request, command=_marked(list(request.command), f"dataset-{name}"))
        code = self._code(project, "Dataset", name, prepare.code)
        return ko.workload_objects(request, self.options, code)

    def _service(self, project: str, name: str, spec: ServiceSpec) -> ko.WorkloadObjects:
        ref = spec.model_ref()
        job, trained = self._producer(project, ref.name)
        assert trained.outputs.model is not None
        env_name = spec.environment or trained.environment
        if env_name is None:
            raise DockyardError(
                f"service '{name}' and job '{job}' name no environment to serve from",
                hint="give the job (or the service) an environment",
            )
        env_spec = self._env_spec(project, env_name)
        digest = image_hash(env_spec, env_spec.base or self.base_image)
        image = self._image(name, server_tag(digest), env_name)
        environment = PreparedEnvironment(digest, image, "python", dict(env_spec.env))
        main = f"/model/{trained.outputs.model.path}"
        request = services.server_request(spec, name, name, ref.name, 1, main, environment, True)
        model = VolumeRef(OUTPUTS, job, size=self.output_bytes)
        request = replace(
            request,
            mounts=(Mount(Path("/"), "/model", True, None, model),),
            project=project,
            replicas=spec.replicas,
        )
        objects = ko.workload_objects(request, self.options)
        marks = VolumeRef(OUTPUTS, MARKERS, size=self.output_bytes)
        wait = Mount(Path("/"), f"/dockyard/wait/0/job-{job}", True, None, marks)
        return _waiting(objects, [wait])


def _marked(command: list[str], marker: str) -> list[str]:
    """``command``, then a marker on the claim once it succeeded (what others wait for)."""
    script = f'set -e; "$@"; touch {MARKS}/{marker}'
    return ["/bin/sh", "-c", script, "dockyard", *command]


def _waiting(objects: ko.WorkloadObjects, waits: list[Mount]) -> ko.WorkloadObjects:
    """An init container that waits until each of ``waits`` (a marker's path, on the claim
    of its directory) exists: a pod starts once what it needs has finished."""
    if not waits:
        return objects
    main = copy.deepcopy(objects.main)
    pod = main["spec"]["template"]["spec"]
    container = pod["containers"][0]
    volumes = {
        v["persistentVolumeClaim"]["claimName"]: v["name"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    mounts, checks = [], []
    for i, wait in enumerate(waits):
        assert wait.volume is not None
        claim = ko.dns_name(wait.volume.name, 63)
        if claim not in volumes:
            volumes[claim] = f"wait-{i}"
            pod["volumes"].append(
                {"name": f"wait-{i}", "persistentVolumeClaim": {"claimName": claim}}
            )
        where = str(Path(wait.target).parent)
        mounts.append(
            {
                "name": volumes[claim],
                "mountPath": where,
                "subPath": wait.volume.sub_path,
                "readOnly": True,
            }
        )
        checks.append(f"[ -e {wait.target} ]")
    script = f"until {' && '.join(checks)}; do echo waiting for its inputs; sleep 2; done"
    pod.setdefault("initContainers", []).insert(
        0,
        {
            "name": "wait-for-inputs",
            "image": container["image"],
            "command": ["/bin/sh", "-c", script],
            "resources": copy.deepcopy(ko.SMALL),
            "securityContext": ko.container_security({}),
            "volumeMounts": mounts,
        },
    )
    return ko.WorkloadObjects(objects.shared, main, objects.owned)


def _relabel(value: Any) -> None:
    """managed-by: dockyard → dockyard-render, everywhere in the object (selectors too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key == ko.MANAGED_BY and item == "dockyard":
                value[key] = RENDERED
            else:
                _relabel(item)
    elif isinstance(value, list):
        for item in value:
            _relabel(item)


def _order(pair: tuple[int, Obj]) -> tuple[int, int]:
    kinds = list(FIRST)
    kind = pair[1]["kind"]
    return pair[0], kinds.index(kind) if kind in kinds else len(kinds)
