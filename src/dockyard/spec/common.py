"""Building blocks shared by every resource kind: metadata, quantities, mounts, status."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "dockyard.dev/v1"
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Ref:
    """A field of a spec (``path``) that names another resource."""

    path: str
    kind: str
    name: str
    producible: bool = False  # a Model may also be promised by a Job's outputs.model


class SpecModel(BaseModel):
    """Base of everything a user writes: camelCase keys, unknown keys refused."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
    )

    def references(self) -> list[Ref]:
        """Every other resource this spec names (checked at apply, kept on delete)."""
        return []

    def runtimes(self) -> list[str]:
        """Runtimes its workloads name explicitly (their environments are prepared there)."""
        return []

    def produces(self) -> list[Ref]:
        """Resources its success creates (a Job's ``outputs.model``)."""
        return []

    def code_refs(self) -> list[tuple[str, str]]:
        """(field path, ``sha256:…``) of the code snapshots it runs."""
        return []


def _describe(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _non_negative_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError(
            "non_negative_int", "expected an integer ≥ 0, got {got}", {"got": _describe(value)}
        )
    if isinstance(value, str):
        if not value.strip().isdigit():
            raise PydanticCustomError(
                "non_negative_int", "expected an integer ≥ 0, got {got}", {"got": _describe(value)}
            )
        value = int(value)
    assert isinstance(value, int)
    if value < 0:
        raise PydanticCustomError(
            "non_negative_int", "expected an integer ≥ 0, got {got}", {"got": value}
        )
    return value


NonNegativeInt = Annotated[
    int,
    BeforeValidator(_non_negative_int),
    WithJsonSchema({"type": "integer", "minimum": 0}),
]

_CPU_RE = re.compile(r"^(\d+(?:\.\d+)?)(m?)$")


def parse_cpu(value: Any) -> float:
    """CPU in cores: ``2``, ``0.5`` or Kubernetes millicores ``"500m"``."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "cpu",
            "expected a CPU amount such as 2, 0.5 or '500m', got {got}",
            {"got": _describe(value)},
        )
    if isinstance(value, int | float):
        cores = float(value)
    elif isinstance(value, str) and (m := _CPU_RE.match(value.strip())):
        cores = float(m.group(1)) / (1000 if m.group(2) else 1)
    else:
        raise PydanticCustomError(
            "cpu",
            "expected a CPU amount such as 2, 0.5 or '500m', got {got}",
            {"got": _describe(value)},
        )
    if cores < 0 or not math.isfinite(cores):
        raise PydanticCustomError("cpu", "expected a CPU amount ≥ 0, got {got}", {"got": value})
    return cores


_MEM_UNITS = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}
_MEM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(k|M|G|T|Ki|Mi|Gi|Ti)?$")


def parse_bytes(value: Any) -> int:
    """Bytes from ``1073741824``, ``"512Mi"``, ``"2G"`` (Kubernetes quantity suffixes)."""
    if isinstance(value, bool):
        raise PydanticCustomError(
            "bytes",
            "expected a size such as '512Mi' or '2Gi', got {got}",
            {"got": _describe(value)},
        )
    if isinstance(value, int) and value >= 0:
        return value
    if isinstance(value, str) and (m := _MEM_RE.match(value.strip())):
        return int(float(m.group(1)) * _MEM_UNITS[m.group(2) or ""])
    raise PydanticCustomError(
        "bytes", "expected a size such as '512Mi' or '2Gi', got {got}", {"got": _describe(value)}
    )


def format_bytes(n: float) -> str:
    for unit in ("", "Ki", "Mi", "Gi", "Ti"):
        if abs(n) < 1024 or unit == "Ti":
            return f"{n:.0f}{unit}" if unit == "" or n == int(n) else f"{n:.1f}{unit}"
        n /= 1024
    return f"{n}Ti"  # pragma: no cover


def format_cpu(cores: float) -> str:
    return f"{cores:g}"


Cpu = Annotated[
    float,
    BeforeValidator(parse_cpu),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?m?$"},
            ]
        }
    ),
]
Bytes = Annotated[
    int,
    BeforeValidator(parse_bytes),
    PlainSerializer(int),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 0},
                {"type": "string", "pattern": r"^\d+(\.\d+)?\s*(k|M|G|T|Ki|Mi|Gi|Ti)?$"},
            ]
        }
    ),
]


def _check_name(value: str) -> str:
    if not isinstance(value, str) or not NAME_RE.match(value) or len(value) > 63:
        raise PydanticCustomError(
            "name",
            "expected a name of lowercase letters, digits and '-' (at most 63, starting and "
            "ending with a letter or digit), got {got}",
            {"got": _describe(value)},
        )
    return value


Name = Annotated[
    str,
    BeforeValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": NAME_RE.pattern, "maxLength": 63}),
]


class Metadata(SpecModel):
    name: Name = Field(description="Unique per kind and project.")
    project: Name = Field(default="default", description="Namespace of names.")
    labels: dict[str, str] = Field(default_factory=dict, description="Selectable labels.")
    annotations: dict[str, str] = Field(default_factory=dict, description="Free-form notes.")


class Resources(SpecModel):
    """What a workload needs from the node; also its limits where the runtime enforces them."""

    cpu: Cpu = Field(default=1.0, description="Cores reserved by the scheduler: 2, 0.5 or '500m'.")
    cpu_limit: Cpu | None = Field(
        default=None, description="Hard cap on CPU use; unset = may use idle cores."
    )
    memory: Bytes | None = Field(
        default=None, description="Memory reserved and enforced as a limit: '512Mi', '2Gi'."
    )
    gpu: NonNegativeInt = Field(default=0, description="Number of GPUs.")
    gpu_type: str | None = Field(default=None, description="GPU model, e.g. 'A100'.")


def _check_abs_path(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
        raise PydanticCustomError(
            "abs_path",
            "expected an absolute path without '..' such as '/data/x', got {got}",
            {"got": _describe(value)},
        )
    return value.rstrip("/") or "/"


MountPath = Annotated[str, BeforeValidator(_check_abs_path)]


def check_rel_path(value: Any) -> str:
    """A path strictly inside a directory: relative, no '..', not '.' or empty."""
    parts = (
        [p for p in str(value).split("/") if p not in ("", ".")] if isinstance(value, str) else []
    )
    if not isinstance(value, str) or value.startswith("/") or ".." in parts or not parts:
        raise PydanticCustomError(
            "rel_path",
            "expected a relative path inside the volume such as 'data/train', got {got}",
            {"got": _describe(value)},
        )
    return "/".join(parts)


RelPath = Annotated[str, BeforeValidator(check_rel_path)]


class VolumeMount(SpecModel):
    name: Name = Field(description="Name of a Volume.")
    path: MountPath | None = Field(default=None, description="Mount path; default /volumes/NAME.")
    sub_path: RelPath | None = Field(default=None, description="A directory inside the volume.")
    read_only: bool = Field(default=False, description="Mount read-only (containers).")

    def mount_path(self) -> str:
        return self.path or f"/volumes/{self.name}"


class DatasetMount(SpecModel):
    name: Name = Field(description="Name of a Dataset.")
    path: MountPath | None = Field(default=None, description="Mount path; default /data/NAME.")

    def mount_path(self) -> str:
        return self.path or f"/data/{self.name}"


def _check_env(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not ENV_NAME_RE.match(key):
            raise PydanticCustomError(
                "env_name",
                "expected environment variable names like MY_VAR, got {got}",
                {"got": repr(key)},
            )
    return value


EnvVars = Annotated[dict[str, str], AfterValidator(_check_env)]


class Security(SpecModel):
    """Container security; the defaults are the safe ones, each loosened only explicitly."""

    run_as_root: bool = Field(default=False, description="Run as root instead of uid 1000.")
    read_only_root_filesystem: bool = Field(
        default=True, description="Root file system read-only (writable: mounts and /tmp)."
    )
    allow_privilege_escalation: bool = Field(
        default=False, description="Allow setuid and the like (no-new-privileges off)."
    )
    capabilities: list[str] = Field(
        default_factory=list, description="Linux capabilities to keep, e.g. NET_BIND_SERVICE."
    )
    host_network: bool = Field(default=False, description="Use the host's network.")


class WorkloadSpec(SpecModel):
    """What every runnable thing has: a command in an environment with mounts."""

    runtime: Literal["local", "podman", "docker"] | None = Field(
        default=None, description="local, podman or docker; unset = the server's default."
    )
    environment: Name | None = Field(
        default=None, description="Name of an Environment; unset = Dockyard's own Python."
    )
    command: list[str] = Field(min_length=1, description="Program and arguments.")
    code: str | None = Field(
        default=None,
        description="Directory with the code, relative to the file; snapshotted at apply.",
    )
    working_dir: str | None = Field(default=None, description="Directory inside the code.")
    env: EnvVars = Field(default_factory=dict, description="Environment variables.")
    security: Security = Field(default_factory=Security, description="Container security.")
    resources: Resources = Field(default_factory=Resources, description="cpu, memory, gpu.")
    volumes: list[VolumeMount] = Field(default_factory=list, description="Volumes to mount.")
    datasets: list[DatasetMount] = Field(
        default_factory=list, description="Datasets to mount (read-only in containers)."
    )

    def references(self) -> list[Ref]:
        refs = (
            [Ref("spec.environment", "Environment", self.environment)] if self.environment else []
        )
        refs += [
            Ref(f"spec.volumes[{i}].name", "Volume", v.name) for i, v in enumerate(self.volumes)
        ]
        refs += [
            Ref(f"spec.datasets[{i}].name", "Dataset", d.name) for i, d in enumerate(self.datasets)
        ]
        return refs

    def runtimes(self) -> list[str]:
        return [self.runtime] if self.runtime else []

    def code_refs(self) -> list[tuple[str, str]]:
        return [("spec.code", self.code)] if self.code else []


SpecT = TypeVar("SpecT", bound=SpecModel)


class Resource(SpecModel, Generic[SpecT]):
    """A document: ``apiVersion``, ``kind``, ``metadata``, ``spec``; server-written ``status``."""

    KIND: ClassVar[str] = ""
    PLURAL: ClassVar[str] = ""

    api_version: Literal["dockyard.dev/v1"] = Field(default="dockyard.dev/v1", alias="apiVersion")
    kind: str
    metadata: Metadata
    spec: SpecT
    status: dict[str, Any] | None = Field(
        default=None, description="Written by the server; ignored on apply."
    )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def project(self) -> str:
        return self.metadata.project

    def spec_dict(self) -> dict[str, Any]:
        return self.spec.model_dump(mode="json", by_alias=True)
