"""The Kubernetes objects of a workload: pure functions of a request and the cluster options.

The kubernetes runtime applies them (server-side apply) and ``dockyard render --target
kubernetes`` prints them: one builder for both, so what is rendered is what is applied. The
only difference is ``ownerReferences``, which need the uid of an object that exists.

Mapping (docs/kubernetes.md): a job attempt or a dataset preparation is a batch/v1 Job
(``backoffLimit: 0``: Dockyard's own attempts stay the retry unit), a service replica a
Deployment of one pod behind the Service of its Dockyard Service, a Volume a
PersistentVolumeClaim of its tier's StorageClass (annotated with the Volume's uid: no other
Volume of the same name adopts it), a job's outputs a claim of their own that a helper pod
reads back (``kube_helpers``), code a ConfigMap unpacked by an init container, secrets a
Secret the pod reads with ``envFrom`` (never in the pod spec).
"""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockyard.archives import IGNORED_NAMES
from dockyard.errors import DockyardError
from dockyard.placement.labels import Need, needs_annotation
from dockyard.runtimes.base import Mount, PreparedEnvironment, WorkloadRequest
from dockyard.runtimes.containers import OUTPUT, WORKSPACE, container_env, working_dir
from dockyard.runtimes.images import DEFAULT_BASE, USER_ID
from dockyard.runtimes.kube_steps import init_containers
from dockyard.settings import Settings

Obj = dict[str, Any]
FIELD_MANAGER = "dockyard"
MANAGED_BY = "app.kubernetes.io/managed-by"
PROJECT = "dockyard.dev/project"
KIND = "dockyard.dev/kind"
NAME = "dockyard.dev/name"
GENERATION = "dockyard.dev/generation"
WORKLOAD = "dockyard.dev/workload"  # the object name of the workload (a label value)
WORKLOAD_ID = "dockyard.dev/workload-id"  # its full Dockyard id (an annotation)
VOLUME_UID = "dockyard.dev/uid"  # on a claim: the uid of the Volume it was made for
USAGE = "dockyard.dev/usage"  # on a claim: {"files", "bytes", "at"} as a helper measured them
SERVE_PORT = 8080  # a model server's port in its pod
GPU = "nvidia.com/gpu"
GPU_PRODUCT = "nvidia.com/gpu.product"  # the label GPU feature discovery puts on nodes
DEFAULT_CLAIM_BYTES = 10 * 1024**3
MAX_NAME = 52  # a Job's pods are named NAME-xxxxx and labelled with NAME (at most 63)
# what Dockyard's own small containers (unpacking code, waiting, helper pods) ask for: a
# namespace with a ResourceQuota or LimitRange admits them
SMALL: dict[str, dict[str, str]] = {
    "requests": {"cpu": "10m", "memory": "32Mi"},
    "limits": {"cpu": "500m", "memory": "256Mi"},
}
# the label whose key names the kind of a workload (WorkloadRequest.labels)
KIND_LABELS = {
    "dockyard.dev/job": "Job",
    "dockyard.dev/service": "Service",
    "dockyard.dev/dataset": "Dataset",
}


@dataclass(frozen=True)
class ClusterOptions:
    """How Dockyard uses a cluster (settings DOCKYARD_KUBE_*)."""

    namespace_prefix: str = "dockyard-"
    storage_classes: dict[str, str] = field(default_factory=dict)  # tier[/replicas] -> class
    registry: str | None = None
    default_image: str = DEFAULT_BASE

    @staticmethod
    def parse_classes(text: str) -> dict[str, str]:
        """``fast=px-fast,fast/3=px-fast-r3,standard=px-std`` → {tier[/replicas]: class}."""
        pairs = (p.split("=", 1) for p in text.split(",") if "=" in p)
        return {tier.strip(): cls.strip() for tier, cls in pairs if tier.strip() and cls.strip()}


def quantity(size: int) -> str:
    """Bytes as Kubernetes writes them: ``1Gi``, ``512Mi``, or the plain number."""
    for suffix, unit in (("Ti", 1024**4), ("Gi", 1024**3), ("Mi", 1024**2), ("Ki", 1024)):
        if size and size % unit == 0:
            return f"{size // unit}{suffix}"
    return str(size)


def dns_name(text: str, limit: int = MAX_NAME) -> str:
    """``text`` as a DNS-1123 label of at most ``limit`` characters (a hash keeps it unique)."""
    name = re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-") or "x"
    if len(name) <= limit and name == text:
        return name
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return f"{name[: limit - 9].rstrip('-')}-{digest}"


def namespace_of(options: ClusterOptions, project: str) -> str:
    return dns_name(options.namespace_prefix + project, 63)


def kind_of(request: WorkloadRequest) -> tuple[str, str]:
    """(Dockyard kind, resource name) of the workload, from its labels."""
    for key, kind in KIND_LABELS.items():
        if key in request.labels:
            return kind, request.labels[key]
    return "Job", request.id


def generation_of(workload_id: str) -> int:
    found = re.search(r"-g(\d+)-", workload_id)
    return int(found.group(1)) if found else 0


def labels_of(request: WorkloadRequest) -> dict[str, str]:
    kind, name = kind_of(request)
    return {
        MANAGED_BY: "dockyard",
        PROJECT: request.project,
        KIND: kind.lower(),
        NAME: name,
        GENERATION: str(generation_of(request.id)),
        WORKLOAD: dns_name(request.id),
    }


def image_of(options: ClusterOptions, environment: PreparedEnvironment | None) -> str:
    """The image the cluster pulls: the environment's, under the registry when one is set."""
    if environment is None:
        return options.default_image
    return pushed_name(options, environment.location)


def pushed_name(options: ClusterOptions, image: str) -> str:
    if not options.registry:
        return image
    return f"{options.registry.rstrip('/')}/{image.rsplit('/', 1)[-1]}"


def _meta(name: str, namespace: str | None, labels: dict[str, str], **extra: Any) -> Obj:
    meta: Obj = {"name": name, "labels": dict(labels)}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update(extra)
    return meta


# -- per namespace (project) -----------------------------------------------------------------
def namespace_objects(options: ClusterOptions, project: str) -> list[Obj]:
    """The project's Namespace and its NetworkPolicy: pods take connections only on the model
    servers' port (and nothing else reaches a job)."""
    ns = namespace_of(options, project)
    labels = {MANAGED_BY: "dockyard", PROJECT: project}
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": _meta(
                ns,
                None,
                {
                    **labels,  # a pod below the restricted standard (spec.security) is named
                    "pod-security.kubernetes.io/warn": "restricted",
                    "pod-security.kubernetes.io/audit": "restricted",
                },
            ),
        },
        {
            "apiVersion": "networking.k8s.io/v1",
            "kind": "NetworkPolicy",
            "metadata": _meta("dockyard-model-servers-only", ns, labels),
            "spec": {
                "podSelector": {},
                "policyTypes": ["Ingress"],
                "ingress": [{"ports": [{"protocol": "TCP", "port": SERVE_PORT}]}],
            },
        },
    ]


def storage_class(options: ClusterOptions, tier: str, replicas: int = 1) -> str | None:
    """The class of a tier with ``replicas`` copies: ``tier/replicas`` if the table names
    one (a Portworx class with ``repl: "3"``), else the tier's, else the cluster's default."""
    classes = options.storage_classes
    return classes.get(f"{tier}/{replicas}") or classes.get(tier)


def claim_object(
    options: ClusterOptions,
    project: str,
    name: str,
    tier: str,
    size: int,
    replicas: int = 1,
    snapshot: str | None = None,
    uid: str = "",
) -> Obj:
    """A Volume's claim; ``snapshot``: the VolumeSnapshot its first contents come from;
    ``uid``: the Volume's, so that a later Volume of the same name never adopts it."""
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": quantity(size)}},
    }
    if snapshot is not None:
        spec["dataSource"] = {
            "apiGroup": "snapshot.storage.k8s.io",
            "kind": "VolumeSnapshot",
            "name": snapshot,
        }
    if (cls := storage_class(options, tier, replicas)) is not None:
        spec["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(
            dns_name(name, 63),
            namespace_of(options, project),
            {MANAGED_BY: "dockyard", PROJECT: project, KIND: "volume", NAME: name},
            annotations={
                "dockyard.dev/tier": tier,
                "dockyard.dev/replicas": str(replicas),
                **({VOLUME_UID: uid} if uid else {}),
            },
        ),
        "spec": spec,
    }


def outputs_claim_name(workload: str) -> str:
    return dns_name(f"{dns_name(workload)}-out", 63)


def outputs_claim(options: ClusterOptions, project: str, workload: str, size: int) -> Obj:
    """The claim a job's ``$DOCKYARD_OUTPUT_DIR`` lives on until it is collected."""
    spec: Obj = {
        "accessModes": ["ReadWriteOnce"],
        "resources": {"requests": {"storage": quantity(size)}},
    }
    if (cls := storage_class(options, "standard")) is not None:
        spec["storageClassName"] = cls
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _meta(
            outputs_claim_name(workload),
            namespace_of(options, project),
            {MANAGED_BY: "dockyard", PROJECT: project, KIND: "outputs"},
            annotations={WORKLOAD_ID: workload},
        ),
        "spec": spec,
    }


def priority_class(priority: int) -> Obj:
    return {
        "apiVersion": "scheduling.k8s.io/v1",
        "kind": "PriorityClass",
        "metadata": _meta(f"dockyard-priority-{priority}", None, {MANAGED_BY: "dockyard"}),
        "value": priority,
        "globalDefault": False,
        "preemptionPolicy": "PreemptLowerPriority",
        "description": f"Dockyard jobs with spec.priority {priority}",
    }


# -- per workload ------------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkloadObjects:
    """What one workload needs: ``shared`` objects (claims, priority classes, the Service of
    a Dockyard Service) outlive it; ``main`` is the Job or Deployment; ``owned`` (code, secret
    env) belong to ``main`` and go with it."""

    shared: list[Obj]
    main: Obj
    owned: list[Obj]

    def all(self) -> list[Obj]:
        return [*self.shared, self.main, *self.owned]


def workload_objects(
    request: WorkloadRequest,
    options: ClusterOptions,
    code: bytes | None = None,
    output_bytes: int = 64 * 1024**2,
) -> WorkloadObjects:
    """The objects of ``request``; ``code`` is its code snapshot as a gzipped tar. A service
    revision (one model version and its settings) is one Deployment of ``request.replicas``
    behind the Service of its Dockyard Service, which every revision's ready pods serve."""
    ns = namespace_of(options, request.project)
    name = dns_name(request.id)
    labels = labels_of(request)
    kind = labels[KIND]
    annotations = {WORKLOAD_ID: request.id}
    shared: list[Obj] = []
    owned: list[Obj] = []
    volumes: list[Obj] = [{"name": "tmp", "emptyDir": {"sizeLimit": "512Mi"}}]
    mounts: list[Obj] = [{"name": "tmp", "mountPath": "/tmp"}]
    init: list[Obj] = []
    image = image_of(options, request.environment)
    volumes.append({"name": "workspace", "emptyDir": {}})
    mounts.append({"name": "workspace", "mountPath": WORKSPACE})
    if code is not None:
        owned.append(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": _meta(f"{name}-code", ns, labels, annotations=annotations),
                "binaryData": {"code.tar.gz": base64.b64encode(code).decode()},
                "immutable": True,
            }
        )
        volumes.append({"name": "code", "configMap": {"name": f"{name}-code"}})
        init.append(
            {
                "name": "unpack-code",
                "image": image,
                "command": ["tar", "-xzf", "/code/code.tar.gz", "-C", WORKSPACE],
                "resources": copy.deepcopy(SMALL),
                "volumeMounts": [
                    {"name": "code", "mountPath": "/code", "readOnly": True},
                    {"name": "workspace", "mountPath": WORKSPACE},
                ],
                "securityContext": container_security({}),
            }
        )
    claims: dict[str, str] = {}  # claim name -> pod volume name
    command = list(request.command)
    if request.output_dir is not None:
        # $DOCKYARD_OUTPUT_DIR: the dataset's volume for a preparation, else a claim of its
        # own; a helper pod reads it back to the server once the job ended (kube_helpers)
        if request.output_volume is not None:
            out = Mount(request.output_dir, OUTPUT, False, None, request.output_volume)
            mounts.append(
                _mount(options, request.project, out, len(request.mounts), claims, shared)
            )
        else:
            claim = outputs_claim(options, request.project, request.id, output_bytes)
            owned.append(claim)
            volumes.append(
                {
                    "name": "outputs",
                    "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
                }
            )
            mounts.append({"name": "outputs", "mountPath": OUTPUT})
    mounted = [
        _mount(options, request.project, mount, i, claims, shared)
        for i, mount in enumerate(request.mounts)
    ]
    mounts += mounted
    volumes += [
        {"name": vol, "persistentVolumeClaim": {"claimName": claim}}
        for claim, vol in claims.items()
    ]
    env = container_env(request, request.environment or PreparedEnvironment("", image, "python"))
    env.update(request.env)
    container: Obj = {
        "name": "main",
        "image": image,
        "imagePullPolicy": "IfNotPresent",
        "command": command,
        "workingDir": working_dir(request),
        "env": [{"name": k, "value": v} for k, v in env.items()],
        "resources": resources_of(request),
        "securityContext": container_security(request.security),
        "volumeMounts": mounts,
    }
    if request.secrets and not request.secret_env:  # rendered: Secrets of the same names
        container["env"] += [
            {
                "name": var,
                "valueFrom": {
                    "secretKeyRef": dict(zip(("name", "key"), ref.split("/", 1), strict=True))
                },
            }
            for var, ref in request.secrets.items()
        ]
    if request.secret_env:  # the values live in a Secret the pod reads, never in its spec
        owned.append(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": _meta(f"{name}-env", ns, labels, annotations=annotations),
                "type": "Opaque",
                "stringData": dict(request.secret_env),
            }
        )
        container["envFrom"] = [{"secretRef": {"name": f"{name}-env"}}]
    if kind == "service":
        container["env"].append({"name": "DOCKYARD_SERVE_PORT", "value": str(SERVE_PORT)})
        container["ports"] = [{"name": "http", "containerPort": SERVE_PORT}]
        container["readinessProbe"] = {
            "httpGet": {"path": "/v2/health/ready", "port": SERVE_PORT},
            "periodSeconds": 2,
            "failureThreshold": 3,
        }
    needs = sorted(
        {m.volume.name for m in request.mounts if m.volume is not None}
    )  # the volumes it reads: the scheduler extender prefers nodes that hold them
    pod_annotations = dict(annotations)
    if needs:
        pod_annotations |= needs_annotation(
            Need(kind="Volume", project=request.project, name=n) for n in needs
        )
    if request.steps:  # preconditions done in the pod, on the claim (kube_steps)
        steps, step_volumes, step_owned = init_containers(
            request, mounted, image, container_security({}), SMALL, name
        )
        init = [*steps, *init]  # before the code is unpacked: a failure stops the pod early
        volumes += step_volumes
        for obj in step_owned:
            obj["metadata"] = _meta(obj["metadata"]["name"], ns, labels, annotations=annotations)
            owned.append(obj)
    pod: Obj = {
        "metadata": {"labels": labels, "annotations": pod_annotations},
        "spec": _pod_spec(request, options, kind, container, init, volumes, shared),
    }
    main = _job(request, name, ns, labels, annotations, pod)
    if kind == "service":
        main = _deployment(name, ns, labels, annotations, pod, request.replicas)
        shared.append(_service(ns, labels))
    return WorkloadObjects(shared, main, owned)


def _mount(
    options: ClusterOptions,
    project: str,
    mount: Mount,
    index: int,
    claims: dict[str, str],
    shared: list[Obj],
) -> Obj:
    ref = mount.volume
    if ref is None:  # nothing on a cluster but Volumes: a host path is not mounted there
        raise ValueError(f"mount {mount.target} is not on a Volume; a cluster cannot mount it")
    claim = dns_name(ref.name, 63)
    if claim not in claims:
        claims[claim] = f"vol-{index}"
        size = ref.size or DEFAULT_CLAIM_BYTES
        shared.append(
            claim_object(options, project, ref.name, ref.tier, size, ref.replicas, uid=ref.uid)
        )
    out: Obj = {"name": claims[claim], "mountPath": mount.target, "readOnly": mount.read_only}
    if ref.sub_path:
        out["subPath"] = ref.sub_path
    return out


def gpu_count(request: WorkloadRequest) -> int:
    return request.gpu or len(request.gpus)


def resources_of(request: WorkloadRequest) -> Obj:
    requests: Obj = {}
    limits: Obj = {}
    cpu = request.cpu
    if cpu and request.cpu_limit:  # a request above its limit is refused by the API server
        cpu = min(cpu, request.cpu_limit)
    if cpu:
        requests["cpu"] = f"{round(cpu * 1000)}m"
    if request.cpu_limit:
        limits["cpu"] = f"{round(request.cpu_limit * 1000)}m"
    if request.memory:
        requests["memory"] = limits["memory"] = quantity(request.memory)
    if gpus := gpu_count(request):
        limits[GPU] = requests[GPU] = str(gpus)
    out: Obj = {}
    if requests:
        out["requests"] = requests
    if limits:
        out["limits"] = limits
    return out


def container_security(security: dict[str, Any]) -> Obj:
    """The safe defaults of every container, each loosened only by ``spec.security``."""
    root = bool(security.get("runAsRoot"))
    return {
        "runAsNonRoot": not root,
        "runAsUser": 0 if root else USER_ID,
        "runAsGroup": 0 if root else USER_ID,
        "readOnlyRootFilesystem": bool(security.get("readOnlyRootFilesystem", True)),
        "allowPrivilegeEscalation": bool(security.get("allowPrivilegeEscalation", False)),
        "capabilities": {"drop": ["ALL"], **_added(security)},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def _added(security: dict[str, Any]) -> Obj:
    caps = list(security.get("capabilities") or [])
    return {"add": caps} if caps else {}


def _pod_spec(
    request: WorkloadRequest,
    options: ClusterOptions,
    kind: str,
    container: Obj,
    init: list[Obj],
    volumes: list[Obj],
    shared: list[Obj],
) -> Obj:
    spec: Obj = {
        "restartPolicy": "Always" if kind == "service" else "Never",
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {"fsGroup": USER_ID, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [container],
        "volumes": volumes,
    }
    if init:
        spec["initContainers"] = init
    if request.security.get("hostNetwork"):
        spec["hostNetwork"] = True
    if request.priority:
        shared.append(priority_class(request.priority))
        spec["priorityClassName"] = f"dockyard-priority-{request.priority}"
    if request.gpu_type:
        spec["nodeSelector"] = {GPU_PRODUCT: request.gpu_type}
    if gpu_count(request):
        spec["tolerations"] = [{"key": GPU, "operator": "Exists", "effect": "NoSchedule"}]
    return spec


def _job(
    request: WorkloadRequest,
    name: str,
    ns: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    pod: Obj,
) -> Obj:
    spec: Obj = {
        "backoffLimit": 0,  # Dockyard's attempts are the retry unit
        "completions": 1,
        "parallelism": 1,
        "template": pod,
    }
    if request.timeout:
        spec["activeDeadlineSeconds"] = max(1, int(-(-request.timeout // 1)))
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _meta(name, ns, labels, annotations=annotations),
        "spec": spec,
    }


def _deployment(
    name: str,
    ns: str,
    labels: dict[str, str],
    annotations: dict[str, str],
    pod: Obj,
    replicas: int,
) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, ns, labels, annotations=annotations),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {WORKLOAD: labels[WORKLOAD]}},
            # a new pod is ready before the old one goes: never unavailable
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
            },
            "template": pod,
        },
    }


def service_name(service: str) -> str:
    """A Service's name must start with a letter (DNS-1035); Dockyard's may start with a digit."""
    name = dns_name(service, 63)
    return name if name[0].isalpha() else dns_name(f"svc-{service}", 63)


def _service(ns: str, labels: dict[str, str]) -> Obj:
    """The Service of a Dockyard Service: every ready replica's pod, on one name."""
    selector = {MANAGED_BY: "dockyard", KIND: "service", NAME: labels[NAME]}
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(service_name(labels[NAME]), ns, selector),
        "spec": {
            "selector": selector,
            "ports": [{"name": "http", "port": SERVE_PORT, "targetPort": SERVE_PORT}],
        },
    }


def service_url(options: ClusterOptions, project: str, service: str) -> str:
    ns = namespace_of(options, project)
    return f"http://{service_name(service)}.{ns}.svc:{SERVE_PORT}"


def owner_reference(obj: Obj, uid: str) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": uid,
        "controller": True,
        # no blockOwnerDeletion: it needs update on finalizers where owner references are
        # enforced (OpenShift), and background deletion does not use it
    }


def cluster_options(settings: Settings) -> ClusterOptions:
    return ClusterOptions(
        namespace_prefix=settings.kube_namespace_prefix,
        storage_classes=ClusterOptions.parse_classes(settings.kube_storage_classes),
        registry=settings.kube_registry,
        default_image=settings.base_image or DEFAULT_BASE,
    )


def code_archive(code_dir: Path, limit: int) -> bytes:
    """The code snapshot as a reproducible gzipped tar (no links: the code store has none)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", compresslevel=6) as tar:
        for path in sorted(code_dir.rglob("*")):
            rel = path.relative_to(code_dir)
            if path.name == ".dockyard-complete" or path.is_symlink():
                continue
            if any(part in IGNORED_NAMES for part in rel.parts):  # .git (its credentials), caches
                continue
            info = tar.gettarinfo(str(path), arcname=rel.as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = 0
            if path.is_file():
                with path.open("rb") as handle:
                    tar.addfile(info, handle)
            else:
                tar.addfile(info)
            if buffer.tell() > limit:
                break
    data = buffer.getvalue()
    if len(data) > limit:
        raise DockyardError(
            f"the code is more than {limit} bytes compressed: too big for a ConfigMap",
            hint="put large files in a Volume or a Dataset, or bake the code into the "
            "environment image (DOCKYARD_KUBE_CODE_BYTES is the limit)",
        )
    return data


# the plural of each kind Dockyard writes (their API paths)
PLURALS = {
    "Namespace": "namespaces",
    "NetworkPolicy": "networkpolicies",
    "PriorityClass": "priorityclasses",
    "PersistentVolumeClaim": "persistentvolumeclaims",
    "ConfigMap": "configmaps",
    "Secret": "secrets",
    "Service": "services",
    "Job": "jobs",
    "Deployment": "deployments",
    "Pod": "pods",
}


def object_path(obj: Obj) -> str:
    """The API path of ``obj`` (one of the kinds in PLURALS)."""
    group = obj["apiVersion"]
    base = f"/api/{group}" if "/" not in group else f"/apis/{group}"
    namespace = obj["metadata"].get("namespace")
    scope = f"/namespaces/{namespace}" if namespace else ""
    return f"{base}{scope}/{PLURALS[obj['kind']]}/{obj['metadata']['name']}"
