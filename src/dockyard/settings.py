"""Typed settings, read once from ``DOCKYARD_*`` environment variables and passed down."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from dockyard.spec.common import RuntimeName


def _default_home() -> Path:
    return Path.home() / ".dockyard"


class Settings(BaseSettings):
    """Server and client settings. Every field can be set as ``DOCKYARD_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="DOCKYARD_", extra="ignore")

    home: Path = Field(default_factory=_default_home, description="State directory.")
    file_sources: str = Field(
        default="~",
        description="Directories (':'-separated) that file:// dataset sources may be read "
        "from; empty: none. The default, your home directory, suits a laptop; set it on a "
        "shared control plane.",
    )
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default SQLite file under home."
    )
    url: str | None = Field(
        default=None, description="URL of a remote control plane; unset = embedded server."
    )
    token: str | None = Field(
        default=None,
        description="The admin token: what clients send and (on a server) what it accepts; "
        "unset = the file DOCKYARD_HOME/token, made at the server's first start.",
    )
    secret_key: str | None = Field(
        default=None,
        description="Fernet keys (comma-separated, the first encrypts) for secrets at rest; "
        "unset = the file DOCKYARD_HOME/secret.key, made at first use.",
    )
    allowed_hosts: str = Field(
        default="",
        description="More names (comma-separated) the server may be reached by, besides the "
        "address it listens on and localhost.",
    )
    allowed_origins: str = Field(
        default="",
        description="Web origins (comma-separated, e.g. https://dash.example.com) whose "
        "pages may call the API; other sites are refused.",
    )
    max_request_bytes: int = Field(
        default=32 * 1024 * 1024,
        ge=1024,
        description="Largest JSON body the API reads (an apply of many documents); larger is "
        "413. Code uploads have their own limits (docs/security.md).",
    )
    host: str = "127.0.0.1"
    port: int = Field(default=0, description="Server port; 0 picks a free one.")
    runtime: RuntimeName = Field(
        default="local", description="Where workloads run unless their spec says otherwise."
    )
    kubeconfig: Path | None = Field(
        default=None,
        description="kubeconfig of the cluster the kubernetes runtime uses; unset = $KUBECONFIG, "
        "then ~/.kube/config, then the in-cluster service account.",
    )
    kube_context: str | None = Field(
        default=None, description="Context of the kubeconfig; unset = its current context."
    )
    kube_namespace_prefix: str = Field(
        default="dockyard-",
        description="Each project runs in the namespace PREFIX+PROJECT (created if missing).",
    )
    kube_storage_classes: str = Field(
        default="",
        description="StorageClass per volume tier, e.g. fast=px-fast,standard=px-standard,"
        "archive=px-archive, and per tier and replicas (fast/3=px-fast-r3); a tier not named "
        "uses the cluster's default class.",
    )
    kube_registry: str | None = Field(
        default=None,
        description="Registry the cluster pulls environment images from (e.g. "
        "registry.example.com/ml): built images are pushed there; unset = images keep their "
        "local names (a node that imports them itself, or kwok).",
    )
    kube_code_bytes: int = Field(
        default=900 * 1024,
        ge=1024,
        le=1000 * 1024,
        description="Largest code snapshot (gzipped tar) a Kubernetes workload gets through a "
        "ConfigMap (the API server stores an object of at most 1 MiB); bigger code belongs in "
        "the environment image.",
    )
    kube_output_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest output of a Kubernetes job ($DOCKYARD_OUTPUT_DIR: a model, its "
        "metrics, a dataset's files), read back to the server from its claim by a helper "
        "pod; also the size of the claim a job's outputs are written to.",
    )
    max_log_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description="Largest log Dockyard keeps of one attempt (or replica pod) of a workload on "
        "Kubernetes, streamed while it runs; beyond it one line says the log was cut.",
    )
    kube_log_streams: int = Field(
        default=256,
        ge=1,
        le=10_000,
        description="Pod logs followed at once on Kubernetes (one connection each); more "
        "running pods wait for a free stream, and their logs are read when one frees.",
    )
    kube_helper_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long a helper pod (a claim's usage, a job's outputs) may take to start "
        "and finish (image pull, volume attach) before Dockyard gives up on it: the usage stays "
        "unknown, the outputs are tried again (5 times).",
    )
    kube_autoscaler: bool = Field(
        default=False,
        description="The cluster has an autoscaler that adds nodes: a workload no node can "
        "hold yet waits for one instead of failing after DOCKYARD_UNSCHEDULABLE_SECONDS.",
    )
    kube_image_loader: str | None = Field(
        default=None,
        description="A command that gets a locally built image onto the cluster's nodes, "
        "run with the image name as its last argument (the test cluster's: python3 "
        "deploy/testbed/cluster.py load-image); unset with no DOCKYARD_KUBE_REGISTRY = the "
        "nodes already have it.",
    )
    tier_fast_path: Path | None = Field(
        default=None,
        description="Root directory of volumes of tier 'fast' (e.g. an NVMe mount); unset = "
        "DOCKYARD_HOME/volumes.",
    )
    tier_standard_path: Path | None = Field(
        default=None, description="Root directory of tier 'standard' volumes; unset = home."
    )
    tier_archive_path: Path | None = Field(
        default=None,
        description="Root directory of tier 'archive' volumes (e.g. a large, slow disk); "
        "unset = DOCKYARD_HOME/volumes.",
    )
    snapshot_path: Path | None = Field(
        default=None,
        description="The snapshot store (chunks and manifests of every volume, deduplicated); "
        "unset = DOCKYARD_HOME/snapshots. Put it on another disk than the volumes.",
    )
    s3_endpoint_url: str | None = Field(
        default=None,
        description="Endpoint of an S3-compatible store for backups (MinIO, Ceph, moto); "
        "unset = AWS. Credentials: the usual AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/"
        "AWS_PROFILE.",
    )
    backup_workers: int = Field(
        default=8, ge=1, le=64, description="Parallel uploads and downloads of a backup."
    )
    containers_conf: Path | None = Field(
        default=None, description="containers.conf for Podman (CONTAINERS_CONF)."
    )
    base_image: str | None = Field(
        default=None, description="Base image of environments without spec.base."
    )
    env_cache: Path | None = Field(
        default=None, description="Where environments (venvs) are cached; default home/envs."
    )
    node_cpu: float | None = Field(default=None, description="Override detected CPU count.")
    node_memory: str | None = Field(default=None, description="Override detected memory.")
    node_gpu: int | None = Field(default=None, description="Override detected GPU count.")
    unschedulable_seconds: float = Field(
        default=600.0,
        ge=0,
        description="How long a workload that no node of its home can ever hold (more cpu, "
        "memory or GPUs than the largest node has) waits before it fails as Unschedulable; "
        "0 = wait forever. A home that grows (DOCKYARD_KUBE_AUTOSCALER) always waits.",
    )
    resync_seconds: float = Field(default=1.0, gt=0, description="Full reconcile period.")
    stop_grace_seconds: float = Field(default=10.0, ge=0)
    leader_lease_seconds: float = Field(
        default=5.0,
        gt=0,
        description="TTL of the control loop's leader lease: how long replicas wait before "
        "taking over from a leader that stopped renewing it.",
    )
    host_id: str | None = Field(
        default=None,
        description="The name leases record for this replica's host; default the hostname "
        "(replicas on one host see each other's deaths at once, others by the lease TTL).",
    )
    task_lease_seconds: float = Field(
        default=30.0, gt=0, description="TTL of a background task's lease (renewed while it runs)."
    )
    log_level: str = "info"
    pass_env: str = Field(
        default="",
        description="Variables of the server's environment (comma-separated) that local "
        "workloads also get, e.g. HTTPS_PROXY,SSL_CERT_FILE; by default they get only HOME, "
        "USER, LOGNAME, LANG, LC_ALL, TZ and a system PATH.",
    )

    @property
    def pass_env_names(self) -> list[str]:
        return [n.strip() for n in self.pass_env.split(",") if n.strip()]

    @property
    def file_source_dirs(self) -> list[Path]:
        return [Path(p).expanduser() for p in self.file_sources.split(":") if p.strip()]

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'dockyard.db'}"

    @property
    def envs_dir(self) -> Path:
        return self.env_cache or self.home / "envs"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def volumes_dir(self) -> Path:
        return self.home / "volumes"

    def tier_dir(self, tier: str) -> Path:
        """Root of the volumes of ``tier`` (fast, standard, archive)."""
        path: Path | None = getattr(self, f"tier_{tier}_path", None)
        return path if path is not None else self.volumes_dir

    @property
    def snapshots_dir(self) -> Path:
        return self.snapshot_path or self.home / "snapshots"

    @property
    def artifacts_dir(self) -> Path:
        return self.home / "artifacts"

    @property
    def server_file(self) -> Path:
        return self.home / "server.json"
