"""``Dataset``: named data from a source, cached on a volume and checksummed."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import EnvVars, Name, Resource, Resources, SpecModel

_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
SOURCE_SCHEMES = ("file://", "https://", "http://")


class PrepareSpec(SpecModel):
    """A command that writes the dataset's files into ``$DOCKYARD_OUTPUT_DIR``."""

    environment: Name | None = Field(default=None, description="Environment to run in.")
    command: list[str] = Field(min_length=1, description="Program and arguments.")
    code: str | None = Field(default=None, description="Code directory, relative to the file.")
    env: EnvVars = Field(default_factory=dict, description="Extra environment variables.")
    resources: Resources = Field(default_factory=Resources, description="cpu, memory, gpu.")


class DatasetSpec(SpecModel):
    volume: Name = Field(description="The Volume that caches the data.")
    path: str | None = Field(default=None, description="Directory in the volume; default NAME.")
    source: str | None = Field(
        default=None, description="file://, https:// or http:// URI of a file or directory."
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
        if value is not None and not value.startswith(SOURCE_SCHEMES):
            raise PydanticCustomError(
                "source",
                "expected a URI starting with file://, https:// or http://, got {got}",
                {"got": repr(value)},
            )
        return value

    @field_validator("sha256")
    @classmethod
    def _valid_sha(cls, value: str | None) -> str | None:
        if value is not None and not _SHA_RE.match(value):
            raise PydanticCustomError(
                "sha256", "expected 64 lowercase hex digits, got {got}", {"got": repr(value)}
            )
        return value

    @field_validator("path")
    @classmethod
    def _valid_path(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/")):
            raise PydanticCustomError(
                "rel_path",
                "expected a relative path inside the volume, got {got}",
                {"got": repr(value)},
            )
        return value

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
