"""Building blocks shared by every resource kind: metadata, quantities, mounts, status.

Every number a user writes has an upper bound, and every string is UTF-8 text without NUL
(:func:`text_problem`, checked for every field of every :class:`SpecModel` in one place).
The bounds are the ``MAX_*`` constants here and in the kind modules; docs/spec.md shows them
in the field descriptions and docs/security.md lists them all.
"""

from __future__ import annotations

import math
import re
import reprlib
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
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

API_VERSION = "dockyard.dev/v1"
NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# -- bounds ---------------------------------------------------------------------------------
MAX_STRING_BYTES = 64 * 1024
"""Longest string anywhere in a spec (a key, a value, an argument), in UTF-8 bytes."""
MAX_CPU = 1024
"""Most cores a workload may reserve or be limited to (``cpu``, ``cpuLimit``)."""
MAX_BYTES = 2**50
"""Largest memory request or volume size: 1 PiB (``1024Ti``)."""
MAX_GPU = 64
"""Most GPUs one workload may ask for."""
MAX_QUANTITY_DIGITS = 16
"""Digits read before the point of a quantity string (``'512Mi'``); 9 after it."""
MAX_LABELS = 64
"""Labels per resource."""
MAX_LABEL_KEY = 128
"""Characters in a label key."""
MAX_LABEL_VALUE = 256
"""Characters in a label value."""
MAX_ANNOTATIONS = 64
"""Annotations per resource."""
MAX_ANNOTATION_BYTES = 64 * 1024
"""UTF-8 bytes of all annotation keys and values of one resource together."""
MAX_ENV = 256
"""Environment variables in one ``env``."""
MAX_ENV_BYTES = 256 * 1024
"""UTF-8 bytes of one ``env``, counted as ``NAME=value`` (Linux allows 2 MiB per exec)."""
MAX_ARGS = 1024
"""Items in a ``command``."""
MAX_COMMAND_BYTES = 256 * 1024
"""UTF-8 bytes of all items of a ``command`` together."""
MAX_MOUNTS = 64
"""Entries in a workload's ``volumes`` and in its ``datasets``."""
MAX_CAPABILITIES = 64
"""Linux capabilities in ``security.capabilities``."""

_NUMBER_SHOWN = 10**30  # larger integers are described by their digit count, never printed
_REPR = reprlib.Repr()
_REPR.maxstring = 80
_REPR.maxother = 80
_REPR.maxlevel = 3


def describe(value: Any) -> str:
    """A short, printable rendering of a user's value for an error message.

    Strings are quoted and escaped (NUL, lone surrogates and other control characters show
    as ``\\x00``, ``\\ud800``); long values are cut; a huge integer is described by its number
    of digits instead of being converted to text (which Python refuses past 4,300 digits).
    """
    if isinstance(value, bool) or value is None:
        return str(value)
    if isinstance(value, int):
        if -_NUMBER_SHOWN < value < _NUMBER_SHOWN:
            return str(value)
        digits = int(abs(value).bit_length() * math.log10(2)) + 1
        return f"a number of about {digits:,} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return _REPR.repr(value)
    try:
        return _REPR.repr(value)
    except (ValueError, RecursionError):  # pragma: no cover - a huge int deep inside
        return f"a {type(value).__name__}"


def text_problem(value: str) -> str | None:
    """What makes ``value`` unfit for a spec, or None: the one rule for every string.

    A string is valid UTF-8 (no lone surrogates, which JSON's ``\\ud800`` and YAML's
    double-quoted escapes can produce), holds no NUL character and is at most
    :data:`MAX_STRING_BYTES` long.
    """
    if "\0" in value:
        return (
            f"a NUL character (\\x00) at position {value.index(chr(0))}; "
            "strings in a spec are UTF-8 text without NUL"
        )
    try:
        size = len(value.encode("utf-8"))
    except UnicodeEncodeError as exc:
        return (
            f"a lone surrogate {value[exc.start]!r} at position {exc.start} is not valid "
            "UTF-8; strings in a spec are UTF-8 text without NUL"
        )
    if size > MAX_STRING_BYTES:
        return f"{size:,} bytes long; strings in a spec are at most {MAX_STRING_BYTES:,} bytes"
    return None


def _first_bad_text(value: Any) -> tuple[tuple[str | int, ...], bool, str] | None:
    """(path inside ``value``, whether it is a key, why) of its first unfit string."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, str):
            if (why := text_problem(item)) is not None:
                return path, False, why
        elif isinstance(item, dict):
            children: list[tuple[tuple[str | int, ...], Any]] = []
            for key, child in item.items():
                if isinstance(key, str) and (why := text_problem(key)) is not None:
                    return (*path, key), True, why
                children.append(((*path, key), child))
            stack.extend(reversed(children))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), child) for i, child in reversed(list(enumerate(item))))
    return None


# the homes a workload can run in (docs/runtimes.md)
RuntimeName = Literal["local", "podman", "docker", "kubernetes"]


@dataclass(frozen=True)
class Ref:
    """A field of a spec (``path``) that names another resource."""

    path: str
    kind: str
    name: str
    producible: bool = False  # a Model may also be promised by a Job's outputs.model
    key: str | None = None  # a Secret: the key of it


class SpecModel(BaseModel):
    """Base of everything a user writes: camelCase keys, unknown keys refused.

    Numbers are finite (``.inf`` and ``NaN`` are refused) and every string of every field,
    keys of mappings included, passes :func:`text_problem` (checked on the input, before the
    field's own validation, so the first complaint about a bad string is always this one).
    """

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        allow_inf_nan=False,
    )

    @field_validator("*", mode="before")
    @classmethod
    def _text_is_clean(cls, value: Any) -> Any:
        """Every field, before its own validation: the input's strings pass text_problem."""
        if isinstance(value, BaseModel | bool | int | float) or value is None:
            return value
        bad = _first_bad_text(value)
        if bad is not None:
            at, is_key, why = bad
            raise PydanticCustomError(
                "text",
                "{what}{why}",
                {"what": "in this key: " if is_key else "", "why": why, "at": at},
            )
        return value

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


_DIGITS_RE = re.compile(r"^\d+$", re.ASCII)
_MAX_INT_DIGITS = 18


def _non_negative_int(value: Any) -> int:
    """A whole number ≥ 0 from an int or a string of digits (at most 18 of them)."""
    if isinstance(value, str) and _DIGITS_RE.match(value.strip()):
        if len(value.strip()) > _MAX_INT_DIGITS:
            raise PydanticCustomError(
                "non_negative_int",
                "expected an integer ≥ 0 of at most {digits} digits, got {got}",
                {"digits": _MAX_INT_DIGITS, "got": describe(value)},
            )
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PydanticCustomError(
            "non_negative_int", "expected an integer ≥ 0, got {got}", {"got": describe(value)}
        )
    return value


NonNegativeInt = Annotated[int, Field(ge=0), BeforeValidator(_non_negative_int)]
"""A count: an integer ≥ 0 (or its digits as a string); each field says its maximum."""

_CPU_RE = re.compile(r"^(\d+)(?:\.(\d+))?(m?)$", re.ASCII)
_CPU_EXAMPLE = "expected a CPU amount such as 2, 0.5 or '500m', got {got}"


def parse_cpu(value: Any) -> float:
    """CPU in cores: ``2``, ``0.5`` or Kubernetes millicores ``"500m"``; 0 to 1024 cores."""
    if isinstance(value, bool):
        raise PydanticCustomError("cpu", _CPU_EXAMPLE, {"got": describe(value)})
    if isinstance(value, int | float):
        if value < 0:
            raise PydanticCustomError(
                "cpu", "expected a CPU amount ≥ 0, got {got}", {"got": describe(value)}
            )
        cores = float(value) if value <= MAX_CPU else math.inf  # never float() a huge int
    elif isinstance(value, str) and (m := _CPU_RE.match(value.strip())):
        whole, fraction, milli = m.groups()
        if len(whole) > MAX_QUANTITY_DIGITS or len(fraction or "") > 9:
            cores = math.inf
        else:
            cores = float(f"{whole}.{fraction or 0}") / (1000 if milli else 1)
    else:
        raise PydanticCustomError("cpu", _CPU_EXAMPLE, {"got": describe(value)})
    if not math.isfinite(cores) or cores > MAX_CPU:
        raise PydanticCustomError(
            "cpu",
            "expected a CPU amount of at most {max} cores, got {got}",
            {"max": MAX_CPU, "got": describe(value)},
        )
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
_MEM_RE = re.compile(r"^(\d+)(?:\.(\d+))?\s*(k|M|G|T|Ki|Mi|Gi|Ti)?$", re.ASCII)
_MEM_EXAMPLE = "expected a size such as '512Mi' or '2Gi', got {got}"


def parse_bytes(value: Any) -> int:
    """Bytes from ``1073741824``, ``"512Mi"``, ``"2G"`` (Kubernetes suffixes); at most 1 PiB."""
    if isinstance(value, bool):
        raise PydanticCustomError("bytes", _MEM_EXAMPLE, {"got": describe(value)})
    if isinstance(value, int) and value >= 0:
        n = value
    elif isinstance(value, str) and (m := _MEM_RE.match(value.strip())):
        whole, fraction, unit = m.groups()
        if len(whole) > MAX_QUANTITY_DIGITS or len(fraction or "") > 9:
            n = MAX_BYTES + 1  # never build a number from hundreds of digits
        else:
            n = int(float(f"{whole}.{fraction or 0}") * _MEM_UNITS[unit or ""])
    else:
        raise PydanticCustomError("bytes", _MEM_EXAMPLE, {"got": describe(value)})
    if n > MAX_BYTES:
        raise PydanticCustomError(
            "bytes",
            "expected a size of at most 1 PiB (1024Ti), got {got}",
            {"got": describe(value)},
        )
    return n


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
                {"type": "number", "minimum": 0, "maximum": MAX_CPU},
                {"type": "string", "pattern": r"^\d{1,16}(\.\d{1,9})?m?$"},
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
                {"type": "integer", "minimum": 0, "maximum": MAX_BYTES},
                {
                    "type": "string",
                    "pattern": r"^\d{1,16}(\.\d{1,9})?\s*(k|M|G|T|Ki|Mi|Gi|Ti)?$",
                },
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
            {"got": describe(value)},
        )
    return value


Name = Annotated[
    str,
    BeforeValidator(_check_name),
    WithJsonSchema({"type": "string", "pattern": NAME_RE.pattern, "maxLength": 63}),
]


def _check_annotations(value: dict[str, str]) -> dict[str, str]:
    size = sum(
        len(k.encode(errors="replace")) + len(v.encode(errors="replace")) for k, v in value.items()
    )
    if size > MAX_ANNOTATION_BYTES:
        raise PydanticCustomError(
            "annotations_size",
            "expected at most {max} bytes of annotations (keys and values), got {got}",
            {"max": f"{MAX_ANNOTATION_BYTES:,}", "got": f"{size:,}"},
        )
    return value


LabelKey = Annotated[str, Field(min_length=1, max_length=MAX_LABEL_KEY)]
LabelValue = Annotated[str, Field(max_length=MAX_LABEL_VALUE)]


class Metadata(SpecModel):
    name: Name = Field(description="Unique per kind and project.")
    project: Name = Field(default="default", description="Namespace of names.")
    labels: dict[LabelKey, LabelValue] = Field(
        default_factory=dict,
        max_length=MAX_LABELS,
        description=f"Selectable labels: at most {MAX_LABELS}, keys of 1 to {MAX_LABEL_KEY} "
        f"and values of at most {MAX_LABEL_VALUE} characters.",
    )
    annotations: Annotated[dict[str, str], AfterValidator(_check_annotations)] = Field(
        default_factory=dict,
        max_length=MAX_ANNOTATIONS,
        description=f"Free-form notes: at most {MAX_ANNOTATIONS}, "
        f"{MAX_ANNOTATION_BYTES // 1024} KiB of keys and values together.",
    )


class Resources(SpecModel):
    """What a workload needs from the node; also its limits where the runtime enforces them."""

    cpu: Cpu = Field(
        default=1.0,
        description=f"Cores reserved by the scheduler: 2, 0.5 or '500m'; at most {MAX_CPU}.",
    )
    cpu_limit: Cpu | None = Field(
        default=None,
        description=f"Hard cap on CPU use (at most {MAX_CPU}); unset = may use idle cores.",
    )
    memory: Bytes | None = Field(
        default=None,
        description="Memory reserved and enforced as a limit: '512Mi', '2Gi'; at most 1 PiB.",
    )
    gpu: NonNegativeInt = Field(
        default=0, le=MAX_GPU, description=f"Number of GPUs, 0 to {MAX_GPU}."
    )
    gpu_type: str | None = Field(default=None, description="GPU model, e.g. 'A100'.")


def _check_abs_path(value: str) -> str:
    if not isinstance(value, str) or not value.startswith("/") or ".." in value.split("/"):
        raise PydanticCustomError(
            "abs_path",
            "expected an absolute path without '..' such as '/data/x', got {got}",
            {"got": describe(value)},
        )
    return value.rstrip("/") or "/"


MountPath = Annotated[str, BeforeValidator(_check_abs_path)]


def _rel_parts(value: Any) -> list[str] | None:
    """The parts of a relative path without '..' ('.' and empty parts dropped), or None."""
    if not isinstance(value, str) or value.startswith("/"):
        return None
    parts = [p for p in value.split("/") if p not in ("", ".")]
    return None if ".." in parts else parts


def check_rel_path(value: Any) -> str:
    """A path strictly inside a directory: relative, no '..', not '.' or empty."""
    parts = _rel_parts(value)
    if not parts:
        raise PydanticCustomError(
            "rel_path",
            "expected a relative path inside the volume such as 'data/train', got {got}",
            {"got": describe(value)},
        )
    return "/".join(parts)


RelPath = Annotated[str, BeforeValidator(check_rel_path)]


def check_code_path(value: Any) -> str:
    """A directory inside the code: relative, no '..'; '.' is the code itself."""
    parts = _rel_parts(value)
    if parts is None:
        raise PydanticCustomError(
            "code_path",
            "expected a relative path inside the code such as 'src' (not absolute, no '..'), "
            "got {got}",
            {"got": describe(value)},
        )
    return "/".join(parts) or "."


CodePath = Annotated[str, BeforeValidator(check_code_path)]


class VolumeMount(SpecModel):
    name: Name = Field(description="Name of a Volume.")
    path: MountPath | None = Field(default=None, description="Mount path; default /volumes/NAME.")
    sub_path: RelPath | None = Field(default=None, description="A directory inside the volume.")
    read_only: bool = Field(default=False, description="Mount read-only (containers).")

    def mount_path(self) -> str:
        return self.path or f"/volumes/{self.name}"


class DatasetMount(SpecModel):
    name: Name = Field(description="Name of a Dataset; NAME@vN pins its version N.")
    version: int | None = Field(
        default=None, ge=1, le=1_000_000, description="Version to mount; unset: the current."
    )
    path: MountPath | None = Field(default=None, description="Mount path; default /data/NAME.")

    @model_validator(mode="before")
    @classmethod
    def _pinned(cls, value: Any) -> Any:
        """``name: digits@v2`` is ``name: digits, version: 2``."""
        if isinstance(value, dict) and isinstance(value.get("name"), str):
            name, at, version = value["name"].partition("@")
            if at:
                if not re.fullmatch(r"v[1-9][0-9]{0,6}", version):
                    raise PydanticCustomError(
                        "dataset_version",
                        "expected NAME@vN (a version number, such as digits@v2), got {got}",
                        {"got": describe(value["name"])},
                    )
                value = {**value, "name": name, "version": int(version[1:])}
        return value

    def mount_path(self) -> str:
        return self.path or f"/data/{self.name}"


def _check_env(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not ENV_NAME_RE.match(key):
            raise PydanticCustomError(
                "env_name",
                "expected environment variable names like MY_VAR, got {got}",
                {"got": describe(key)},
            )
    size = sum(len(f"{k}={v}".encode(errors="replace")) for k, v in value.items())
    if size > MAX_ENV_BYTES:
        raise PydanticCustomError(
            "env_size",
            "expected at most {max} bytes of environment (NAME=value), got {got}",
            {"max": f"{MAX_ENV_BYTES:,}", "got": f"{size:,}"},
        )
    return value


EnvVars = Annotated[dict[str, str], Field(max_length=MAX_ENV), AfterValidator(_check_env)]
ENV_BOUNDS = f"at most {MAX_ENV} variables, {MAX_ENV_BYTES // 1024} KiB in all"
SECRET_REF_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[A-Za-z0-9._-]{1,253}$")


class SecretRef(SpecModel):
    """A value kept in a secret (``dockyard secrets set``), given to the workload only."""

    secret_ref: str = Field(
        pattern=SECRET_REF_RE.pattern,
        max_length=317,
        description="SECRET/KEY: the key of a secret of the same project.",
    )

    @property
    def secret(self) -> str:
        return self.secret_ref.split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.secret_ref.split("/", 1)[1]


def _check_workload_env(value: dict[str, str | SecretRef]) -> dict[str, str | SecretRef]:
    _check_env({k: v if isinstance(v, str) else v.secret_ref for k, v in value.items()})
    return value


WorkloadEnv = Annotated[
    dict[str, str | SecretRef], Field(max_length=MAX_ENV), AfterValidator(_check_workload_env)
]
WORKLOAD_ENV = (
    f"Environment variables: a value, or {{secretRef: SECRET/KEY}} for a secret's; {ENV_BOUNDS}."
)


def env_references(env: dict[str, str | SecretRef], at: str) -> list[Ref]:
    return [
        Ref(f"{at}.{var}", "Secret", v.secret, key=v.key)
        for var, v in env.items()
        if isinstance(v, SecretRef)
    ]


def split_env(env: dict[str, str | SecretRef]) -> tuple[dict[str, str], dict[str, str]]:
    """(plain values, secret references ``SECRET/KEY``) of a workload's env."""
    plain = {k: v for k, v in env.items() if isinstance(v, str)}
    secret = {k: v.secret_ref for k, v in env.items() if isinstance(v, SecretRef)}
    return plain, secret


def _check_command(value: list[str]) -> list[str]:
    size = sum(len(arg.encode(errors="replace")) for arg in value)
    if size > MAX_COMMAND_BYTES:
        raise PydanticCustomError(
            "command_size",
            "expected at most {max} bytes of command and arguments, got {got}",
            {"max": f"{MAX_COMMAND_BYTES:,}", "got": f"{size:,}"},
        )
    return value


Command = Annotated[
    list[str], Field(min_length=1, max_length=MAX_ARGS), AfterValidator(_check_command)
]
COMMAND_BOUNDS = f"1 to {MAX_ARGS} items, {MAX_COMMAND_BYTES // 1024} KiB in all"


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
        default_factory=list,
        max_length=MAX_CAPABILITIES,
        description="Linux capabilities to keep, e.g. NET_BIND_SERVICE; "
        f"at most {MAX_CAPABILITIES}.",
    )
    host_network: bool = Field(default=False, description="Use the host's network.")


class WorkloadSpec(SpecModel):
    """What every runnable thing has: a command in an environment with mounts."""

    runtime: RuntimeName | None = Field(
        default=None,
        description="local, podman, docker or kubernetes; unset = the server's default.",
    )
    environment: Name | None = Field(
        default=None, description="Name of an Environment; unset = Dockyard's own Python."
    )
    command: Command = Field(description=f"Program and arguments: {COMMAND_BOUNDS}.")
    code: str | None = Field(
        default=None,
        description="Directory with the code, relative to the file; snapshotted at apply.",
    )
    working_dir: CodePath | None = Field(
        default=None,
        description="Directory inside the code to start in: relative, no '..'; "
        "unset = the code's top directory.",
    )
    env: WorkloadEnv = Field(default_factory=dict, description=WORKLOAD_ENV)
    security: Security = Field(default_factory=Security, description="Container security.")
    resources: Resources = Field(default_factory=Resources, description="cpu, memory, gpu.")
    volumes: list[VolumeMount] = Field(
        default_factory=list,
        max_length=MAX_MOUNTS,
        description=f"Volumes to mount; at most {MAX_MOUNTS}.",
    )
    datasets: list[DatasetMount] = Field(
        default_factory=list,
        max_length=MAX_MOUNTS,
        description=f"Datasets to mount (read-only in containers); at most {MAX_MOUNTS}.",
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
        return refs + env_references(self.env, "spec.env")

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
