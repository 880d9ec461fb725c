"""``Dataset``: named data from a source, cached on a volume and checksummed."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import (
    COMMAND_BOUNDS,
    NAME_RE,
    WORKLOAD_ENV,
    Command,
    Name,
    Ref,
    Resource,
    Resources,
    RuntimeName,
    SpecModel,
    WorkloadEnv,
    check_rel_path,
    describe,
    env_references,
)

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
SOURCE_SCHEMES = ("file://", "https://", "http://", "s3://", "volume://")
RESERVED = "checkpoints"  # the top-level directory of a volume where job checkpoints live
VERSIONS_DIR = ".dockyard-versions"  # where pinned older versions of datasets are restored
MAX_VERSIONS = 1000
"""Versions a dataset keeps (the oldest are forgotten beyond it)."""
MAX_SOURCE_CHARS = 4096
"""Longest ``source`` URI."""
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f]")


class PrepareSpec(SpecModel):
    """A command that writes the dataset's files into ``$DOCKYARD_OUTPUT_DIR``."""

    runtime: RuntimeName | None = Field(
        default=None,
        description="local, podman, docker or kubernetes; unset = the server's default.",
    )
    environment: Name | None = Field(default=None, description="Environment to run in.")
    command: Command = Field(description=f"Program and arguments: {COMMAND_BOUNDS}.")
    code: str | None = Field(default=None, description="Code directory, relative to the file.")
    env: WorkloadEnv = Field(default_factory=dict, description=WORKLOAD_ENV)
    resources: Resources = Field(default_factory=Resources, description="cpu, memory, gpu.")


class DatasetSpec(SpecModel):
    volume: Name = Field(description="The Volume that caches the data.")
    path: str | None = Field(default=None, description="Directory in the volume; default NAME.")
    source: str | None = Field(
        default=None,
        max_length=MAX_SOURCE_CHARS,
        description="file://, https://, http:// URI of a file or directory, s3://BUCKET/PREFIX "
        "(every object under it) or volume://VOLUME/PATH (a directory of another volume of the "
        f"project); at most {MAX_SOURCE_CHARS} characters, no control characters.",
    )
    sha256: str | None = Field(
        default=None, description="Expected checksum of the data (its manifest); pins content."
    )
    prepare: PrepareSpec | None = Field(
        default=None, description="Instead of a source: a command that writes the files."
    )

    @field_validator("source")
    @classmethod
    def _valid_source(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith(SOURCE_SCHEMES):
            raise PydanticCustomError(
                "source",
                "expected a URI starting with file://, https://, http://, s3:// or volume://, "
                "got {got}",
                {"got": describe(value)},
            )
        if _CONTROL_RE.search(value):
            raise PydanticCustomError(
                "source",
                "expected a URI without control characters (tab, newline …), got {got}",
                {"got": describe(value)},
            )
        if value.startswith("volume://"):
            volume, _, path = value[len("volume://") :].partition("/")
            if not NAME_RE.match(volume):
                raise PydanticCustomError(
                    "source",
                    "expected volume://VOLUME/PATH with the name of a volume, got {got}",
                    {"got": describe(value)},
                )
            if path:
                check_rel_path(path)
        elif value.startswith("file://"):
            if not value[len("file://") :]:
                raise PydanticCustomError(
                    "source", "expected a path after file://, such as file:///srv/data"
                )
        else:
            try:
                host = urlsplit(value).hostname
            except ValueError:
                host = None
            if not host:
                raise PydanticCustomError(
                    "source",
                    "expected a host after the scheme, such as https://example.org/data.csv, "
                    "got {got}",
                    {"got": describe(value)},
                )
        return value

    @field_validator("sha256")
    @classmethod
    def _valid_sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA_RE.match(value):
            raise PydanticCustomError(
                "sha256", "expected 64 lowercase hex digits, got {got}", {"got": describe(value)}
            )
        return value

    @field_validator("path", mode="before")
    @classmethod
    def _valid_path(cls, value: Any) -> str | None:
        if value is None:
            return None
        path = check_rel_path(value)
        if path.split("/")[0] in (RESERVED, VERSIONS_DIR):
            raise PydanticCustomError(
                "reserved_path",
                "'{reserved}/' is Dockyard's (job checkpoints, pinned dataset versions); "
                "choose another path",
                {"reserved": path.split("/")[0]},
            )
        return path

    def source_volume(self) -> tuple[str, str] | None:
        """(volume, path) of a ``volume://`` source."""
        if self.source is None or not self.source.startswith("volume://"):
            return None
        volume, _, path = self.source[len("volume://") :].partition("/")
        return volume, path.strip("/")

    def references(self) -> list[Ref]:
        refs = [Ref("spec.volume", "Volume", self.volume)]
        if (origin := self.source_volume()) is not None:
            refs.append(Ref("spec.source", "Volume", origin[0]))
        if self.prepare is not None and self.prepare.environment:
            refs.append(Ref("spec.prepare.environment", "Environment", self.prepare.environment))
        if self.prepare is not None:
            refs += env_references(self.prepare.env, "spec.prepare.env")
        return refs

    def runtimes(self) -> list[str]:
        return [self.prepare.runtime] if self.prepare is not None and self.prepare.runtime else []

    def code_refs(self) -> list[tuple[str, str]]:
        code = self.prepare.code if self.prepare is not None else None
        return [("spec.prepare.code", code)] if code else []

    def target(self, name: str) -> str:
        """The dataset's directory inside its volume."""
        return self.path or name

    @model_validator(mode="after")
    def _one_origin(self) -> DatasetSpec:
        if (self.source is None) == (self.prepare is None):
            raise PydanticCustomError(
                "dataset_origin", "give exactly one of 'source' (a URI) or 'prepare' (a command)"
            )
        return self


class Dataset(Resource[DatasetSpec]):
    KIND: ClassVar[str] = "Dataset"
    PLURAL: ClassVar[str] = "datasets"
    kind: Literal["Dataset"] = "Dataset"
