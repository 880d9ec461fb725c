"""The control plane as Kubernetes objects: ``dockyard render --target kubernetes --control-plane``.

Two replicas of ``dockyard server run`` on one PostgreSQL (one leads the control loop through
its lease, both serve the API), a ServiceAccount whose ClusterRole grants exactly what the
kubernetes runtime calls (``RULES``; the tests run the runtime with that account's token and
check that less is refused), and a Service. Pods are as locked down as the workloads'. The
database URL and the API token come from a Secret the user makes (``render_header`` says
how): a render never carries a value.
"""

from __future__ import annotations

from typing import Any

from dockyard.runtimes.kube_objects import MANAGED_BY, container_security

Obj = dict[str, Any]
NAME = "dockyard-control-plane"
NAMESPACE = "dockyard-system"
PORT = 8800
IMAGE = "localhost/dockyard/control-plane:latest"
SECRET_KEYS = ("DOCKYARD_DATABASE_URL", "DOCKYARD_TOKEN")  # in the Secret NAME the user makes


def render_header(namespace: str = NAMESPACE) -> str:
    """What the rendered control plane needs first: its Secret, made by the user."""
    return (
        "# The control plane reads its database URL and API token from a Secret you create:\n"
        f"#   kubectl -n {namespace} create secret generic {NAME} \\\n"
        "#     --from-literal=DOCKYARD_DATABASE_URL=postgresql://USER:PASSWORD@HOST:5432/DB \\\n"
        "#     --from-literal=DOCKYARD_TOKEN=$(python3 -c 'import secrets; "
        "print(secrets.token_urlsafe(32))')\n"
    )


# what the kubernetes runtime does, verb by verb (runtimes/kubernetes.py)
RULES: list[Obj] = [
    # a namespace per project, and its NetworkPolicy (server-side apply: create, patch)
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create", "patch"]},
    {
        "apiGroups": ["networking.k8s.io"],
        "resources": ["networkpolicies"],
        "verbs": ["create", "patch"],
    },
    # workloads: applied, watched across namespaces, stopped (patch), deleted
    {
        "apiGroups": ["batch"],
        "resources": ["jobs"],
        "verbs": ["list", "watch", "create", "patch", "delete"],
    },
    {
        "apiGroups": ["apps"],
        "resources": ["deployments"],
        "verbs": ["list", "watch", "create", "patch", "delete"],
    },
    # pods: watched; helper pods (kube_helpers: a claim's usage, a job's outputs) made, read
    # through the API server's proxy and deleted; logs kept (kube_logs)
    {
        "apiGroups": [""],
        "resources": ["pods"],
        "verbs": ["list", "watch", "get", "create", "delete"],
    },
    {"apiGroups": [""], "resources": ["pods/log", "pods/proxy"], "verbs": ["get"]},
    # a Service's model server, reached through the API server (dockyard predict, the proxy)
    {"apiGroups": [""], "resources": ["services/proxy"], "verbs": ["get", "create"]},
    # what a workload brings: its code, its secret env, its Service (applied), its volumes
    # (created once: a claim's class and size stay as made)
    {
        "apiGroups": [""],
        "resources": ["configmaps", "services"],
        "verbs": ["create", "patch"],
    },
    # a workload's secret env: made, and read back after a restart to mask its values in logs
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch", "get"]},
    # claims: a Volume's (made once, checked for its uid, deleted with --purge) and a job's
    # outputs' (deleted once read back)
    {
        "apiGroups": [""],
        "resources": ["persistentvolumeclaims"],
        "verbs": ["create", "get", "delete"],
    },
    # CSI snapshots of a volume's claim: its class's driver, a VolumeSnapshotClass for it,
    # the VolumeSnapshots (kube_snapshots.py)
    {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"], "verbs": ["get"]},
    # without a VolumeSnapshotClass: where a claim's volume lies, for Dockyard's own snapshots
    {"apiGroups": [""], "resources": ["persistentvolumes"], "verbs": ["get"]},
    {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshotclasses"],
        "verbs": ["list"],
    },
    {
        "apiGroups": ["snapshot.storage.k8s.io"],
        "resources": ["volumesnapshots"],
        "verbs": ["create", "list", "get"],
    },
    {
        "apiGroups": ["scheduling.k8s.io"],
        "resources": ["priorityclasses"],
        "verbs": ["create", "patch"],
    },
    # what the cluster can hold (admission), from the watch cache
    {"apiGroups": [""], "resources": ["nodes"], "verbs": ["list", "watch"]},
]


def control_plane_objects(
    namespace: str = NAMESPACE, image: str = IMAGE, replicas: int = 2
) -> list[Obj]:
    labels = {MANAGED_BY: "dockyard", "app.kubernetes.io/name": NAME}
    meta = {"name": NAME, "namespace": namespace, "labels": labels}
    container = {
        "name": "control-plane",
        "image": image,
        "command": ["dockyard", "server", "run", "--host", "0.0.0.0", "--port", str(PORT)],
        "env": [
            {"name": "DOCKYARD_RUNTIME", "value": "kubernetes"},
            {"name": "DOCKYARD_HOME", "value": "/var/lib/dockyard"},
            # the API answers the names the Service gives it (the Host check)
            {"name": "DOCKYARD_ALLOWED_HOSTS", "value": f"{NAME}.{namespace}.svc,{NAME}"},
        ],
        "envFrom": [{"secretRef": {"name": NAME}}],
        "ports": [{"name": "http", "containerPort": PORT}],
        "readinessProbe": {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 5},
        "livenessProbe": {"httpGet": {"path": "/healthz", "port": PORT}, "periodSeconds": 10},
        "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
        "securityContext": container_security({}),
        "volumeMounts": [
            {"name": "home", "mountPath": "/var/lib/dockyard"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "labels": labels},
        },
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": {"name": NAME, "labels": labels},
            "rules": RULES,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": NAME, "labels": labels},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": NAME,
            },
            "subjects": [{"kind": "ServiceAccount", "name": NAME, "namespace": namespace}],
        },
        {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {**meta, "name": f"{NAME}-home"},
            "spec": {
                "accessModes": ["ReadWriteMany"],  # every replica shares DOCKYARD_HOME
                "resources": {"requests": {"storage": "20Gi"}},
            },
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": NAME,
                        "securityContext": {
                            "fsGroup": 1000,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [container],
                        "volumes": [
                            {
                                "name": "home",
                                "persistentVolumeClaim": {"claimName": f"{NAME}-home"},
                            },
                            {"name": "tmp", "emptyDir": {}},
                        ],
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app.kubernetes.io/name": NAME},
                "ports": [{"name": "http", "port": PORT, "targetPort": PORT}],
            },
        },
    ]
