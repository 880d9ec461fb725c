"""Kubernetes: the third home of every workload, behind the same Runtime protocol.

Objects come from :mod:`dockyard.runtimes.kube_objects` (the same builder ``dockyard render``
prints) and are applied server-side under the field manager ``dockyard``; what runs is
observed from a :class:`~dockyard.runtimes.kube_watch.WatchCache` (one list and one watch per
kind), never by a request per workload. Every object carries ``app.kubernetes.io/managed-by:
dockyard`` and its project, kind, name and generation, so a restarted control plane adopts what
exists by its labels. lightkube reads the kubeconfig and makes the httpx client (httpx, like
the rest of Dockyard); objects are plain JSON applied with a server-side-apply PATCH, read from
the watch cache, and quantities parsed with lightkube's parser.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from lightkube.config import client_adapter
from lightkube.config.kubeconfig import KubeConfig, SingleConfig
from lightkube.core.exceptions import ConfigError
from lightkube.utils.quantity import parse_quantity

from dockyard.errors import DockyardError, EngineError, TemporaryError
from dockyard.paths import write_private
from dockyard.placement.labels import needs_of
from dockyard.placement.nodes import labels_by_name
from dockyard.placement.scores import distances
from dockyard.runtimes import kube_objects as ko
from dockyard.runtimes import kube_snapshots, kube_steps
from dockyard.runtimes.base import (
    ImageBuilder,
    NodeCapacity,
    NodeShape,
    PreparedEnvironment,
    RunState,
    VolumeRef,
    WorkloadRequest,
    WorkloadState,
)
from dockyard.runtimes.kube_helpers import Helpers, get_object, helper_name, helper_pod
from dockyard.runtimes.kube_logs import LogKeeper
from dockyard.runtimes.kube_outputs import unpack_outputs
from dockyard.runtimes.kube_status import deployment_state, job_state
from dockyard.runtimes.kube_watch import DEPLOYMENTS, JOBS, NODES, PODS, Kind, WatchCache
from dockyard.runtimes.steps import Step
from dockyard.settings import Settings
from dockyard.spec import EnvironmentSpec

Obj = dict[str, Any]
log = logging.getLogger("dockyard.kubernetes")
STOPPED = "dockyard.dev/stopped"  # annotation: stopped on request (its pods are gone)
OUTPUTS_TO = "outputs-to"  # in the run directory: where a job's outputs are unpacked
OUTPUTS_DONE = "outputs-collected"  # …and what became of them
OUTPUTS_TRIES = "outputs-tries"
OUTPUTS_REQUIRED = "outputs-required"
OUTPUTS_FROM = "outputs-from"  # the claim (and sub path) they are read from
OUTPUT_TRIES = 5  # helpers that try to read a finished job's outputs before giving up
SYNC_SECONDS = 15.0  # how long a first observation waits for the cache's first lists


def load_config(settings: Settings) -> SingleConfig:
    """The cluster to use: DOCKYARD_KUBECONFIG, else $KUBECONFIG / ~/.kube/config / in-cluster."""
    try:
        if settings.kubeconfig is not None:
            config = KubeConfig.from_file(settings.kubeconfig)
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=settings.kube_context)
    except (ConfigError, OSError, KeyError, ValueError) as exc:
        raise DockyardError(
            f"no Kubernetes cluster to use: {exc}",
            hint="set DOCKYARD_KUBECONFIG (or KUBECONFIG) to a kubeconfig; `make cluster` "
            "starts a test cluster and writes .cluster/kubeconfig",
        ) from exc
    if single is None:
        raise DockyardError(
            f"the kubeconfig has no context {settings.kube_context!r}",
            hint="set DOCKYARD_KUBE_CONTEXT to one of its contexts",
        )
    return _credential_files(single, settings.home / "kube")


def _credential_files(config: SingleConfig, directory: Path) -> SingleConfig:
    """The kubeconfig's inline certificates and key as files of our own (0600, named by their
    content): lightkube otherwise writes each to a temporary file that lives only as long as
    one of its objects, and a second client made while the first is collected can find it
    gone (ssl: "PEM lib")."""

    def saved(data: str | None, name: str) -> str | None:
        if data is None:
            return None
        content = base64.b64decode(data)
        path = directory / f"{name}-{hashlib.sha256(content).hexdigest()[:16]}.pem"
        if not path.exists():
            write_private(path, content)
        return str(path)

    user, cluster = config.user, config.cluster
    if user is not None and (user.client_cert_data or user.client_key_data):
        user = replace(
            user,
            client_cert=saved(user.client_cert_data, "client") or user.client_cert,
            client_cert_data=None,
            client_key=saved(user.client_key_data, "key") or user.client_key,
            client_key_data=None,
        )
    if cluster.certificate_auth_data:
        cluster = replace(
            cluster,
            certificate_auth=saved(cluster.certificate_auth_data, "ca"),
            certificate_auth_data=None,
        )
    return config._replace(user=user, cluster=cluster)


class KubernetesRuntime:
    """Workloads as Jobs and Deployments of a Kubernetes cluster."""

    name = "kubernetes"
    detached = True  # the cluster keeps its Jobs and Deployments: serving never stops with us

    def __init__(
        self, settings: Settings, images: Callable[[], ImageBuilder] | None = None
    ) -> None:
        """``images`` makes what builds environment images (the registry gives Podman's)."""
        self.settings = settings
        self._image_builder = images
        self.options = ko.cluster_options(settings)
        config = load_config(settings)
        timeout = httpx.Timeout(30.0)
        params = client_adapter.ConnectionParams(timeout=timeout, trust_env=False)
        self.http = client_adapter.Client(config, params)
        self.cache = WatchCache(
            self.http,
            (PODS, JOBS, DEPLOYMENTS, NODES),
            f"{ko.MANAGED_BY}=dockyard",
            self._changed,
        )
        self._lock = threading.Lock()
        self._started = False
        self._listener: Callable[[str], None] | None = None
        self._namespaces: set[str] = set()
        self._mains: dict[str, tuple[Kind, str, str]] = {}  # workload label -> its object
        self._pods: dict[str, set[tuple[str, str]]] = {}  # workload label -> its pods
        self._ids: dict[str, str] = {}  # workload label -> Dockyard workload id
        self._images: ImageBuilder | None = None  # what builds environment images
        self.sync_seconds = SYNC_SECONDS
        self.helper_wait = settings.kube_helper_seconds
        self.helpers = Helpers(self.http, lambda ns, name: self.cache.get(PODS, ns, name))
        self._collecting: dict[str, Future[str]] = {}  # workload id -> its outputs, being read
        self._collector = ThreadPoolExecutor(max_workers=2, thread_name_prefix="dockyard-collect")
        self._secrets: dict[tuple[str, str], list[str]] = {}  # (namespace, Secret) -> values
        self.logkeeper = LogKeeper(
            self.http,
            settings.home / "logs",
            settings.max_log_bytes,
            settings.kube_log_streams,
            self.secret_values,
        )

    # -- the watch cache ----------------------------------------------------------------------
    def _start_cache(self) -> None:
        with self._lock:
            if not self._started:
                self._started = True
                self.cache.start()

    def _cache(self) -> WatchCache:
        self._start_cache()
        synced = self.cache.wait_synced(self.sync_seconds)
        refused = dict(self.cache.refused)  # a copy: the watch threads change it
        if refused:
            kind, why = next(iter(refused.items()))
            raise EngineError(
                f"the cluster does not let Dockyard watch {kind}s: {why}",
                hint="give its account the ClusterRole of `dockyard render --target kubernetes "
                "--control-plane` (docs/kubernetes.md)",
            )
        if not synced:
            raise EngineError(
                f"the Kubernetes API server at {self.http.base_url} did not answer the first "
                f"list within {self.sync_seconds:g} s",
                hint="check the cluster (kubectl get --raw /readyz) and DOCKYARD_KUBECONFIG",
            )
        return self.cache

    def _changed(self, kind: Kind, obj: Obj) -> None:
        meta = obj.get("metadata") or {}
        label = (meta.get("labels") or {}).get(ko.WORKLOAD)
        if not label:
            return
        key = (str(meta.get("namespace") or ""), str(meta["name"]))
        if not key[0].startswith(self.options.namespace_prefix):
            return  # another Dockyard's (another prefix) on the same cluster
        with self._lock:
            if kind is PODS:
                pods = self._pods.setdefault(label, set())
                if obj.get("deleted"):
                    pods.discard(key)
                else:
                    pods.add(key)
            elif obj.get("deleted"):
                if self._mains.get(label) == (kind, *key):
                    del self._mains[label]
            else:
                self._mains[label] = (kind, *key)
                self._ids[label] = str((meta.get("annotations") or {}).get(ko.WORKLOAD_ID, label))
            workload_id = self._ids.get(label)
            listener = self._listener
        if kind is PODS and workload_id is not None:
            self.logkeeper.seen(workload_id, obj, gone=bool(obj.get("deleted")))
        if listener is not None and workload_id is not None:
            listener(workload_id)

    def set_listener(self, callback: Callable[[str], None]) -> None:
        self._listener = callback

    # -- node ---------------------------------------------------------------------------------
    def node_objects(self) -> list[Obj]:
        """The cluster's Node objects from the watch cache (for the scheduler extender)."""
        self._start_cache()
        if not self.cache.synced(NODES):
            raise TemporaryError("the cluster's nodes are not listed yet", delay=1.0)
        return list(self.cache.items(NODES))

    def node(self) -> NodeCapacity:
        """What the cluster's Ready, schedulable nodes hold, node by node (from the watch
        cache, never a request): each one's allocatable, and what is free on it — less the
        requests of every pod bound there, Dockyard's or not. Until the nodes and pods are
        listed, nothing is admitted."""
        self._start_cache()
        for kind in (NODES, PODS):
            if not self.cache.synced(kind) or kind.name in self.cache.refused:
                why = self.cache.refused.get(kind.name, "not listed yet")
                return NodeCapacity(0, 0, 0, known=False, note=f"the cluster's {kind.name}s: {why}")
        requested, bound = self._requested()
        models: set[str] = set()
        shapes: list[NodeShape] = []
        free: list[NodeShape] = []
        for node in self.cache.items(NODES):
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True"
                for c in (node.get("status") or {}).get("conditions") or []
            )
            if not ready or (node.get("spec") or {}).get("unschedulable"):
                continue
            name = node["metadata"]["name"]
            alloc = (node.get("status") or {}).get("allocatable") or {}
            shape = NodeShape(
                name,
                float(parse_quantity(alloc.get("cpu", "0")) or 0),
                int(parse_quantity(alloc.get("memory", "0")) or 0),
                int(parse_quantity(alloc.get(ko.GPU, "0")) or 0),
                (node["metadata"].get("labels") or {}).get(ko.GPU_PRODUCT),
            )
            shapes.append(shape)
            cpu, memory, gpu = requested.get(name, (0.0, 0, 0))
            free.append(
                replace(
                    shape, cpu=shape.cpu - cpu, memory=shape.memory - memory, gpu=shape.gpu - gpu
                )
            )
            if shape.gpu and shape.gpu_model:
                models.add(shape.gpu_model)
        total = (sum(s.cpu for s in shapes), sum(s.memory for s in shapes))
        gpus = sum(s.gpu for s in shapes)
        note = "" if gpus else "no node of the cluster has nvidia.com/gpu"
        return NodeCapacity(
            total[0],
            total[1],
            gpus,
            gpu_note=note,
            gpu_models=tuple(sorted(models)),
            nodes=tuple(sorted(shapes, key=lambda s: s.name)),
            free=tuple(sorted(free, key=lambda s: s.name)),
            bound=frozenset(bound),
            grows=self.settings.kube_autoscaler,
        )

    def _requested(self) -> tuple[dict[str, tuple[float, int, int]], set[str]]:
        """(node → cpu, memory, GPUs that its pods request; the Dockyard workloads whose pods
        are bound to a node)."""
        out: dict[str, tuple[float, int, int]] = {}
        bound: set[str] = set()
        for pod in self.cache.items(PODS):
            spec, status = pod.get("spec") or {}, pod.get("status") or {}
            node = spec.get("nodeName")
            if not node or status.get("phase") in ("Succeeded", "Failed"):
                continue
            cpu, memory, gpu = pod_requests(spec)
            before = out.get(node, (0.0, 0, 0))
            out[node] = (before[0] + cpu, before[1] + memory, before[2] + gpu)
            label = (pod["metadata"].get("labels") or {}).get(ko.WORKLOAD)
            if label:
                with self._lock:
                    workload = self._ids.get(label)
                if workload:
                    bound.add(workload)
        return out, bound

    # -- environments: OCI images, pushed where the cluster pulls from --------------------------
    def _oci(self) -> ImageBuilder:
        if self._images is None:
            if self._image_builder is None:
                raise EngineError(
                    "this Kubernetes runtime was made without an image builder",
                    hint="make it through dockyard.runtimes.registry.make_runtime",
                )
            self._images = self._image_builder()
        return self._images

    def prepare_environment(
        self, name: str, spec: EnvironmentSpec, progress: Callable[[str], None]
    ) -> PreparedEnvironment:
        prepared = self._oci().prepare_environment(name, spec, progress)
        self._push(prepared.location, progress)
        return prepared

    def prepare_serving(
        self,
        environment: PreparedEnvironment,
        model: str,
        version: int,
        model_dir: Path,
        progress: Callable[[str], None],
    ) -> PreparedEnvironment:
        prepared = self._oci().prepare_serving(environment, model, version, model_dir, progress)
        self._push(prepared.location, progress)
        return prepared

    def _push(self, image: str, progress: Callable[[str], None]) -> None:
        """Get a built image to where the cluster's nodes find it: pushed to the registry,
        or loaded by DOCKYARD_KUBE_IMAGE_LOADER (the way `kind load` does it)."""
        if self.options.registry:
            self._oci().push(image, self.options.registry, progress)
        elif self.settings.kube_image_loader:
            progress(f"loading {image} onto the nodes")
            command = [*shlex.split(self.settings.kube_image_loader), image]
            done = subprocess.run(
                command, check=False, capture_output=True, text=True, timeout=1800
            )
            if done.returncode != 0:
                raise EngineError(
                    f"DOCKYARD_KUBE_IMAGE_LOADER failed for {image}: "
                    f"{(done.stderr or done.stdout).strip()[-500:]}"
                )

    def environment_key(self, spec: EnvironmentSpec) -> str:
        return self._oci().environment_key(spec)

    def environment_ready(self, prepared: PreparedEnvironment) -> bool:
        return self._oci().environment_ready(prepared)

    # -- workloads -------------------------------------------------------------------------------
    def _apply(self, obj: Obj, manager: str = ko.FIELD_MANAGER) -> Obj:
        """Server-side apply (force: Dockyard owns what it declares; another manager's field
        conflict is taken over, not a failure). A plain PATCH of the object as JSON (which
        is YAML): no client-side model conversion, which lightkube does not make safe for
        threads that apply at once."""
        meta = obj["metadata"]
        try:
            answer = self.http.patch(
                ko.object_path(obj),
                content=json.dumps(obj),
                params={"fieldManager": manager, "force": "true"},
                headers={"Content-Type": "application/apply-patch+yaml"},
            )
        except httpx.HTTPError as exc:
            raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
        if answer.status_code not in (200, 201):
            try:
                why = str(answer.json().get("message") or answer.text)
            except ValueError:
                why = answer.text
            raise EngineError(
                f"the cluster refused {obj['kind']} {meta['name']}: {why[:500]}",
                hint="kubectl describe it; the API server's words are above",
            )
        out: Obj = answer.json()
        return out

    def _create(self, obj: Obj) -> None:
        """Create a Volume's claim unless it exists: a claim's class and size stay as made.
        One made for another Volume (another uid: kept with --keep-data, or made before a
        delete and a new apply) is never adopted: its data is not this Volume's."""
        meta = obj["metadata"]
        path = f"/api/v1/namespaces/{meta['namespace']}/persistentvolumeclaims"
        try:
            answer = self.http.post(path, json=obj)
        except httpx.HTTPError as exc:
            raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
        if answer.status_code == 409:
            self._check_owner(obj)
        elif answer.status_code != 201:
            raise EngineError(
                f"the cluster refused {obj['kind']} {meta['name']}: {answer.text[:300]}",
                hint="kubectl describe it; the API server's words are above",
            )

    def _claim_path(self, namespace: str, name: str) -> str:
        return f"/api/v1/namespaces/{namespace}/persistentvolumeclaims/{name}"

    def _get(self, path: str) -> Obj | None:
        return get_object(self.http, path)

    def _check_owner(self, wanted: Obj) -> None:
        meta = wanted["metadata"]
        uid = (meta.get("annotations") or {}).get(ko.VOLUME_UID)
        existing = self._get(self._claim_path(meta["namespace"], meta["name"])) or {}
        theirs = ((existing.get("metadata") or {}).get("annotations") or {}).get(ko.VOLUME_UID)
        if uid and theirs != uid:
            volume = (meta.get("labels") or {}).get(ko.NAME, meta["name"])
            made = f"an earlier volume '{volume}' (uid {theirs})" if theirs else "something else"
            raise EngineError(
                f"the claim {meta['namespace']}/{meta['name']} was made for {made}: this "
                f"volume (uid {uid}) does not take over its data",
                hint=f"delete it (kubectl -n {meta['namespace']} delete pvc {meta['name']}) "
                "to start empty, give the volume another name, or — if its data is this "
                f"volume's — annotate it: kubectl -n {meta['namespace']} annotate pvc "
                f"{meta['name']} --overwrite {ko.VOLUME_UID}={uid}",
            )

    # -- a Volume's claim: its usage (measured by a helper pod), deleting it --------------
    def claim(self, project: str, ref: VolumeRef) -> Obj | None:
        """The Volume's claim if it exists and is this Volume's (its uid), else None."""
        namespace = ko.namespace_of(self.options, project)
        found = self._get(self._claim_path(namespace, ko.dns_name(ref.name, 63)))
        if found is None:
            return None
        theirs = (found["metadata"].get("annotations") or {}).get(ko.VOLUME_UID)
        return found if not ref.uid or theirs == ref.uid else None

    def measure_volume(self, project: str, ref: VolumeRef) -> dict[str, Any]:
        """{claim, files, bytes} of the Volume's claim, measured now by a usage helper pod;
        files and bytes are None when it could not say (the usage stays unknown)."""
        found = self.claim(project, ref)
        if found is None:
            return {"claim": None, "files": 0, "bytes": 0}
        meta = found["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        pod = helper_pod(
            self.options,
            project,
            helper_name(meta["name"], f"usage-{int(time.time())}"),
            "usage",
            self.options.default_image,
            meta["name"],
            deadline=int(self.helper_wait) + 60,
        )
        measured = self.helpers.usage(pod, self.helper_wait)
        if measured is None:
            return {"claim": where, "files": None, "bytes": None}
        return {"claim": where, "files": measured[0], "bytes": measured[1]}

    def volume_fate(self, project: str, ref: VolumeRef, purge: bool) -> str:
        """What deleting the Volume does to its claim (``purge``) or leaves (keep-data)."""
        found = self.claim(project, ref)
        if found is None:
            return ""
        meta, spec = found["metadata"], found.get("spec") or {}
        where = f"{meta['namespace']}/{meta['name']}"
        if not purge:
            return (
                f"kept claim {where} with its data; a new volume of this name does not take "
                f"it over (kubectl -n {meta['namespace']} delete pvc {meta['name']} when it is "
                "no longer wanted)"
            )
        bound = spec.get("volumeName")
        if not bound:
            return f"deleting claim {where} (not bound to a volume yet)"
        pv = self._get(f"/api/v1/persistentvolumes/{bound}") or {}
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy", "Delete")
        if policy == "Delete":
            return (
                f"deleting claim {where}; its PersistentVolume {bound} goes with the data "
                "(reclaimPolicy Delete)"
            )
        return (
            f"deleting claim {where}; its PersistentVolume {bound} stays with the data "
            f"(reclaimPolicy {policy}): kubectl delete pv {bound} when it is no longer wanted"
        )

    def delete_volume(self, project: str, ref: VolumeRef) -> str:
        """Delete the Volume's claim (only its own: the uid must match)."""
        found = self.claim(project, ref)
        if found is None:
            return f"volume '{ref.name}' has no claim of its own on the cluster"
        meta = found["metadata"]
        where = f"{meta['namespace']}/{meta['name']}"
        try:
            answer = self.http.delete(self._claim_path(meta["namespace"], meta["name"]))
        except httpx.HTTPError as exc:
            raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
        if answer.status_code not in (200, 202, 404):
            raise EngineError(
                f"deleting claim {where}: {answer.status_code} {answer.text[:300]}",
                hint="its account needs delete on persistentvolumeclaims (docs/kubernetes.md)",
            )
        return f"deleted claim {where}"

    def ensure_namespace(self, project: str) -> str:
        namespace = ko.namespace_of(self.options, project)
        if namespace not in self._namespaces:
            for obj in ko.namespace_objects(self.options, project):
                self._apply(obj)
            self._namespaces.add(namespace)
        return namespace

    # -- volumes: CSI snapshots ----------------------------------------------------------------
    def _claim(self, project: str, ref: VolumeRef, snapshot: str | None = None) -> None:
        self.ensure_namespace(project)
        size = ref.size or ko.DEFAULT_CLAIM_BYTES
        claim = ko.claim_object(
            self.options, project, ref.name, ref.tier, size, ref.replicas, snapshot, ref.uid
        )
        self._create(claim)

    def snapshot_volume(self, project: str, ref: VolumeRef, snapshot_id: str) -> dict[str, Any]:
        """A VolumeSnapshot of the volume's claim (made first if no workload made it yet)."""
        self._claim(project, ref)
        return kube_snapshots.take(self.http, self.options, project, ref.name, snapshot_id)

    def volume_host_path(self, project: str, ref: VolumeRef) -> Path | None:
        """Where the volume's claim lies on this machine, if it does (hostPath, local)."""
        self._claim(project, ref)
        return kube_snapshots.host_path(self.http, self.options, project, ref.name)

    def volume_snapshots(self, project: str, name: str) -> list[dict[str, Any]]:
        return kube_snapshots.listed(self.http, self.options, project, name)

    def restore_volume(
        self, project: str, ref: VolumeRef, source: str, snapshot_id: str
    ) -> dict[str, Any]:
        """The claim of a new volume, made from the VolumeSnapshot of ``source``."""
        name = kube_snapshots.require(self.http, self.options, project, source, snapshot_id)
        self._claim(project, ref, name)
        # what it holds is measured by a usage helper later: until then it is unknown, not 0
        return {"snapshot": snapshot_id, "volumeSnapshot": name, "files": None, "bytes": None}

    def start(self, request: WorkloadRequest) -> WorkloadState:
        self._cache()
        self.ensure_namespace(request.project)
        code = None
        if request.code_dir is not None:
            code = ko.code_archive(request.code_dir, self.settings.kube_code_bytes)
        objects = ko.workload_objects(
            request, self.options, code, output_bytes=self.settings.kube_output_bytes
        )
        if request.output_dir is not None:  # where its outputs come back to (observe)
            run_dir = self._run_dir(request.id)
            run_dir.mkdir(parents=True, exist_ok=True)
            (run_dir / OUTPUTS_TO).write_text(str(request.output_dir))
            source = {"claim": ko.outputs_claim_name(request.id), "subPath": ""}
            if request.output_volume is not None:  # a dataset's files: nothing back is a failure
                (run_dir / OUTPUTS_REQUIRED).write_text("")
                ref = request.output_volume
                source = {"claim": ko.dns_name(ref.name, 63), "subPath": ref.sub_path}
            (run_dir / OUTPUTS_FROM).write_text(json.dumps(source))
        services = [o for o in objects.shared if o["kind"] == "Service"]
        for obj in objects.shared:
            if obj["kind"] == "PersistentVolumeClaim":
                self._create(obj)  # a claim is made once: its class and size stay as made
            elif obj["kind"] != "Service":
                self._apply(obj)
        if request.secret_env:  # what its kept log masks (read back after a restart)
            meta = objects.main["metadata"]
            key = (meta["namespace"], f"{meta['name']}-env")
            self._secrets[key] = list(request.secret_env.values())
        main = self._apply(objects.main)
        kind = DEPLOYMENTS if objects.main["kind"] == "Deployment" else JOBS
        self.cache.remember(kind, main)
        uid = main["metadata"]["uid"]
        try:
            for obj in objects.owned:
                obj["metadata"]["ownerReferences"] = [ko.owner_reference(objects.main, uid)]
                self._apply(obj)
        except EngineError:  # without its code or secrets it would wait forever: take it back
            self.http.delete(
                _object_path(kind, main["metadata"]["namespace"], main["metadata"]["name"]),
                params={"propagationPolicy": "Background"},
            )
            raise
        for obj in services:  # each replica co-owns its Service: the last one gone takes it
            owner = {**ko.owner_reference(objects.main, uid), "controller": False}
            obj["metadata"]["ownerReferences"] = [owner]
            self._apply(obj, manager=f"{ko.FIELD_MANAGER}-{objects.main['metadata']['name']}")
        details: Obj = {
            "object": f"{objects.main['kind'].lower()}/{objects.main['metadata']['name']}"
        }
        if services:
            _, name = ko.kind_of(request)
            details.update(
                url=ko.service_url(self.options, request.project, name), port=ko.SERVE_PORT
            )
        return WorkloadState(
            request.id, RunState.PENDING, reason="Creating", message="", details=details
        )

    def observe(self, workload_id: str) -> WorkloadState:
        cache = self._cache()
        label = ko.dns_name(workload_id)
        with self._lock:
            found = self._mains.get(label)
            pod_keys = list(self._pods.get(label, ()))
        if found is None:
            return WorkloadState(workload_id, RunState.NOT_FOUND)
        kind, namespace, name = found
        obj = cache.get(kind, namespace, name)
        pods = [p for p in (cache.get(PODS, *k) for k in pod_keys) if p is not None]
        if obj is None:
            return WorkloadState(workload_id, RunState.NOT_FOUND)
        stopped = (obj["metadata"].get("annotations") or {}).get(STOPPED)
        if stopped:
            return WorkloadState(
                workload_id,
                RunState.FAILED,
                reason="Stopped",
                message="stopped on request",
                finished_at=datetime.fromisoformat(stopped),
                details={"object": f"{kind.name.lower()}/{name}"},
            )
        if kind is DEPLOYMENTS:
            labels = obj["metadata"].get("labels") or {}
            url = ko.service_url(
                self.options, labels.get(ko.PROJECT, ""), labels.get(ko.NAME, name)
            )
            state = deployment_state(workload_id, obj, pods, url)
            if state.phase == RunState.FAILED:  # crash-looping: it ends here, as on every home
                self._delete(kind, namespace, name)  # (its logs are kept: nothing left at 0/0)
            return state
        state = self._near_data(job_state(workload_id, obj, pods, datetime.now(UTC)), pods)
        if state.phase == RunState.SUCCEEDED:
            try:
                return self._collected(state)
            except Exception as exc:  # never the whole observation pass
                return replace(state, phase=RunState.FAILED, reason="OutputsLost", message=str(exc))
        return state

    def _near_data(self, state: WorkloadState, pods: list[Obj]) -> WorkloadState:
        """A running job whose pod landed away from its data says so (docs/placement.md)."""
        if state.phase != RunState.RUNNING or not pods:
            return state
        pod = pods[-1]
        node = (pod.get("spec") or {}).get("nodeName")
        try:
            needs = needs_of((pod.get("metadata") or {}).get("annotations"))
        except DockyardError:
            return state
        if not node or not needs:
            return state
        nodes = labels_by_name(self.cache.items(NODES))
        far = [d.message(node) for d in distances(needs, node, nodes) if d.level is not None]
        far = [m for m in far if " is not on " in m]
        if not far:
            return state
        return replace(state, message="; ".join(filter(None, [state.message, *far])))

    def _delete(self, kind: Kind, namespace: str, name: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            self.http.delete(
                _object_path(kind, namespace, name), params={"propagationPolicy": "Background"}
            )

    def service_proxy(self, project: str, service: str) -> tuple[httpx.Client, str]:
        """The API server's proxy to a Dockyard Service's Kubernetes Service."""
        namespace = ko.namespace_of(self.options, project)
        name = ko.service_name(service)
        return self.http, f"/api/v1/namespaces/{namespace}/services/{name}:{ko.SERVE_PORT}/proxy"

    def takes(self, step: Step) -> bool:
        """Checkpoint pruning and dataset verification run in the pod, on the claim."""
        return kube_steps.takes(step)

    def scale(self, workload_id: str, replicas: int) -> None:
        """A service revision (a Deployment) to ``replicas`` pods; the Deployment controller
        adds or removes pods, the ones that stay keep serving."""
        found = self._located(workload_id)
        if found is None:
            raise EngineError(f"{workload_id} is not on the cluster: it cannot be scaled")
        kind, namespace, name = found
        patch = {"spec": {"replicas": replicas}}
        try:
            answer = self.http.patch(
                _object_path(kind, namespace, name),
                json=patch,
                headers={"Content-Type": "application/merge-patch+json"},
            )
        except httpx.HTTPError as exc:
            raise EngineError(f"the Kubernetes API server is unreachable: {exc}") from exc
        if answer.status_code != 200:
            raise EngineError(f"scaling {name}: {answer.status_code} {answer.text[:300]}")

    # -- outputs: back from the pod log --------------------------------------------------------
    def _run_dir(self, workload_id: str) -> Path:
        return self.settings.runs_dir / workload_id

    def _collected(self, state: WorkloadState) -> WorkloadState:
        """A finished job's outputs, read back by a collect helper and unpacked into its
        output directory on the server before it is reported finished (the registry reads
        them there). The reading runs beside the observation: the job stays Running,
        "collecting its outputs", until it is done."""
        run_dir = self._run_dir(state.id)
        target_file, done = run_dir / OUTPUTS_TO, run_dir / OUTPUTS_DONE
        if not target_file.exists() or done.exists():
            return state
        future = self._collecting.get(state.id)
        if future is None:
            future = self._collector.submit(self._collect, state.id, Path(target_file.read_text()))
            self._collecting[state.id] = future
        if not future.done():
            return replace(
                state, phase=RunState.RUNNING, finished_at=None, message="collecting its outputs"
            )
        del self._collecting[state.id]
        tries = run_dir / OUTPUTS_TRIES
        try:
            note = future.result()
        except (EngineError, ValueError, OSError) as exc:
            tried = int(tries.read_text() or 0) + 1 if tries.exists() else 1
            tries.write_text(str(tried))
            if tried < OUTPUT_TRIES:  # another helper on the next pass
                return replace(state, phase=RunState.RUNNING, finished_at=None)
            note = f"not collected: {exc}"
            if (run_dir / OUTPUTS_REQUIRED).exists():  # a dataset must not commit nothing
                done.write_text(note)
                return replace(state, phase=RunState.FAILED, reason="OutputsLost", message=note)
        done.write_text(note)
        return replace(state, details={**state.details, "outputs": note})

    def _collect(self, workload_id: str, target: Path) -> str:
        """Run the collect helper on the workload's outputs and unpack what it serves."""
        found = self._located(workload_id)
        if found is None:
            raise EngineError(f"the Job of {workload_id} is gone: its outputs cannot be read")
        kind, namespace, name = found
        job = self.cache.get(kind, namespace, name) or {}
        labels = job.get("metadata", {}).get("labels") or {}
        containers = (((job.get("spec") or {}).get("template") or {}).get("spec") or {}).get(
            "containers"
        ) or [{}]
        image = str(containers[0].get("image") or self.options.default_image)
        source = json.loads((self._run_dir(workload_id) / OUTPUTS_FROM).read_text())
        pod_name = helper_name(name, "collect")
        pod = helper_pod(
            self.options,
            labels.get(ko.PROJECT, ""),
            pod_name,
            "collect",
            image,
            source["claim"],
            source["subPath"],
            deadline=int(self.helper_wait) + 60,
        )
        self.helpers.create(pod)
        try:
            deadline = time.monotonic() + self.helper_wait
            while not (serving := self.helpers.ready(namespace, pod_name)):
                if serving is None or time.monotonic() > deadline:
                    raise EngineError(
                        f"the helper that reads the outputs of {workload_id} did not serve "
                        f"within {self.helper_wait:g} s (DOCKYARD_KUBE_HELPER_SECONDS; a node "
                        "that runs no program: kwok?)"
                    )
                time.sleep(0.25)
            archive = self.helpers.fetch(namespace, pod_name, self.settings.kube_output_bytes)
            try:
                note = unpack_outputs(archive, target, self.settings.kube_output_bytes)
            finally:
                archive.unlink(missing_ok=True)
        finally:
            self.helpers.delete(namespace, pod_name)
        if source["claim"] == ko.outputs_claim_name(workload_id):  # its own: read, so it goes
            with contextlib.suppress(httpx.HTTPError):
                self.http.delete(self._claim_path(namespace, source["claim"]))
        return note

    def list_workloads(self) -> list[str]:
        self._cache()
        with self._lock:
            return [self._ids[label] for label in self._mains if label in self._ids]

    def _located(self, workload_id: str) -> tuple[Kind, str, str] | None:
        self._cache()
        with self._lock:
            return self._mains.get(ko.dns_name(workload_id))

    def stop(self, workload_id: str, grace: float) -> None:
        """Stop its pods. A Job is suspended and says so on its object (``observe`` reports it
        stopped on request, ``remove`` deletes it); a service revision's Deployment is deleted
        (nothing is left at 0/0; Dockyard keeps its logs)."""
        found = self._located(workload_id)
        if found is None:
            return
        kind, namespace, name = found
        if kind is DEPLOYMENTS:
            self._delete(kind, namespace, name)
            return
        stamp = datetime.now(UTC).isoformat()
        spec: Obj = {"suspend": True} if kind is JOBS else {"replicas": 0}
        patch = {"metadata": {"annotations": {STOPPED: stamp}}, "spec": spec}
        path = _object_path(kind, namespace, name)
        answer = self.http.patch(
            path, json=patch, headers={"Content-Type": "application/merge-patch+json"}
        )
        if answer.status_code not in (200, 404):
            raise EngineError(f"stopping {kind.name} {name}: {answer.status_code} {answer.text}")
        self._await_annotation(kind, namespace, name)

    def _await_annotation(self, kind: Kind, namespace: str, name: str) -> None:
        """The watch brings the stopped object soon; wait a little for it (observe reads it)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            obj = self.cache.get(kind, namespace, name)
            if obj is None or STOPPED in (obj["metadata"].get("annotations") or {}):
                return
            time.sleep(0.05)

    def remove(self, workload_id: str) -> None:
        """Delete the workload's objects and the log Dockyard kept of it."""
        self.logkeeper.forget(workload_id)
        found = self._located(workload_id)
        if found is None:
            return
        kind, namespace, name = found
        answer = self.http.delete(
            _object_path(kind, namespace, name), params={"propagationPolicy": "Background"}
        )
        if answer.status_code not in (200, 202, 404):
            raise EngineError(f"deleting {kind.name} {name}: {answer.status_code} {answer.text}")

    def log_path(self, workload_id: str) -> Path | None:
        return None

    def logs(self, workload_id: str, *, offset: int = 0) -> Iterator[bytes]:
        """The log Dockyard kept of the workload's newest pod (kube_logs: streamed while it
        ran, masked, bounded; there after the pod is gone)."""
        self._start_cache()
        yield from self.logkeeper.read(workload_id, offset)

    def secret_values(self, namespace: str, pod_name: str, pod: Obj) -> list[str]:
        """The values a pod gets from its own Secrets (to mask them in its kept log)."""
        names = [
            ref["secretRef"]["name"]
            for c in (pod.get("spec") or {}).get("containers") or []
            for ref in c.get("envFrom") or []
            if ref.get("secretRef", {}).get("name")
        ]
        values: list[str] = []
        for name in names:
            if (namespace, name) not in self._secrets:
                secret = self._get(f"/api/v1/namespaces/{namespace}/secrets/{name}") or {}
                data = secret.get("data") or {}
                self._secrets[(namespace, name)] = [
                    base64.b64decode(v).decode(errors="replace") for v in data.values()
                ]
            values += self._secrets[(namespace, name)]
        return values

    def close(self) -> None:
        """Stop watching, then close the connections once no watch thread uses them."""
        self.logkeeper.close()
        self._collector.shutdown(wait=False, cancel_futures=True)
        if self.cache.close():
            self.http.close()


def pod_requests(spec: Obj) -> tuple[float, int, int]:
    """What a pod requests, the scheduler's way: its containers' sum, or its largest init
    container's where that is more."""

    def one(container: Obj) -> tuple[float, int, int]:
        res = container.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        return (
            float(parse_quantity(req.get("cpu", "0")) or 0),
            int(parse_quantity(req.get("memory", "0")) or 0),
            int(parse_quantity(req.get(ko.GPU) or lim.get(ko.GPU) or "0") or 0),
        )

    main = [one(c) for c in spec.get("containers") or []]
    init = [one(c) for c in spec.get("initContainers") or []]
    summed = tuple(sum(parts) for parts in zip(*main, strict=True)) if main else (0.0, 0, 0)
    return (
        max([summed[0], *(i[0] for i in init)]),
        int(max([summed[1], *(i[1] for i in init)])),
        int(max([summed[2], *(i[2] for i in init)])),
    )


def _object_path(kind: Kind, namespace: str, name: str) -> str:
    base, _, plural = kind.path.rpartition("/")
    return f"{base}/namespaces/{namespace}/{plural}/{name}"
