"""``Service``: a deployed model behind the Open Inference Protocol."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import (
    NAME_RE,
    WORKLOAD_ENV,
    Name,
    NonNegativeInt,
    Ref,
    Resource,
    Resources,
    RuntimeName,
    SecretRef,
    SpecModel,
    WorkloadEnv,
    describe,
    env_references,
)
from dockyard.spec.models import ALIAS_RE

MAX_VERSION_DIGITS = 9
"""Digits of a model version in ``NAME@VERSION`` (versions below one billion)."""
MAX_REPLICAS = 100
"""Most model server processes one service may run."""


@dataclass(frozen=True)
class ModelRef:
    """``digits`` (= ``digits@latest``), ``digits@production`` or ``digits@3`` (version 3)."""

    name: str
    alias: str | None = None
    version: int | None = None

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, at, ref = text.partition("@")
        if not NAME_RE.match(name) or len(name) > 63:
            raise ValueError(f"bad model name {name!r}")
        if at and not ref:
            raise ValueError("nothing after '@'")
        if not ref:
            return cls(name, alias="latest")
        if ref.isascii() and ref.isdigit() and len(ref) <= MAX_VERSION_DIGITS and int(ref) > 0:
            return cls(name, version=int(ref))
        if ALIAS_RE.match(ref):
            return cls(name, alias=ref)
        raise ValueError(f"bad alias or version {ref!r}")

    def __str__(self) -> str:
        return f"{self.name}@{self.version if self.version is not None else self.alias}"


class Batching(SpecModel):
    enabled: bool = Field(default=True, description="Merge concurrent requests per model.")
    max_batch_size: int = Field(
        default=64, ge=1, le=4096, description="Rows per model call, 1 to 4096."
    )
    max_latency_ms: float = Field(
        default=2.0,
        ge=0,
        le=10_000,
        description="Longest a request waits for company, 0 to 10,000 ms.",
    )


class ServiceAuth(SpecModel):
    """Who may use the model servers of a service: the holders of one bearer token."""

    token: SecretRef = Field(
        description="The token clients send (Authorization: Bearer): {secretRef: SECRET/KEY}, "
        "at least 16 characters."
    )
    inference: bool = Field(
        default=True,
        description="Inference needs the token too; false: only loading and unloading models.",
    )


class ServiceSpec(SpecModel):
    runtime: RuntimeName | None = Field(
        default=None,
        description="local, podman, docker or kubernetes; unset = the server's default.",
    )
    model: str = Field(description="NAME, NAME@ALIAS or NAME@VERSION of a registered model.")
    replicas: NonNegativeInt = Field(
        default=1, le=MAX_REPLICAS, description=f"Model server processes, 0 to {MAX_REPLICAS}."
    )
    port: int | None = Field(
        default=None, ge=1, le=65535, description="Fixed port, 1 to 65535; unset = any."
    )
    environment: Name | None = Field(
        default=None, description="Override the environment the model was trained in."
    )
    env: WorkloadEnv = Field(default_factory=dict, description=WORKLOAD_ENV)
    batching: Batching = Field(default_factory=Batching, description="Adaptive batching.")
    resources: Resources = Field(
        default_factory=lambda: Resources(cpu=0.5), description="Per replica."
    )
    auth: ServiceAuth | None = Field(
        default=None,
        description="A token for the model servers; unset: inference is open to whoever "
        "reaches them and loading or unloading models is refused.",
    )

    @field_validator("model")
    @classmethod
    def _valid_model(cls, value: str) -> str:
        try:
            ModelRef.parse(value)
        except ValueError:
            raise PydanticCustomError(
                "model_ref",
                "expected NAME, NAME@ALIAS or NAME@VERSION (e.g. 'digits@latest', 'digits@3'), "
                "got {got}",
                {"got": describe(value)},
            ) from None
        return value

    def model_ref(self) -> ModelRef:
        return ModelRef.parse(self.model)

    def references(self) -> list[Ref]:
        refs = [Ref("spec.model", "Model", self.model_ref().name, producible=True)]
        if self.environment:
            refs.append(Ref("spec.environment", "Environment", self.environment))
        refs += env_references(self.env, "spec.env")
        if self.auth is not None:
            refs += env_references({"token": self.auth.token}, "spec.auth")
        return refs

    def runtimes(self) -> list[str]:
        return [self.runtime] if self.runtime else []


class Service(Resource[ServiceSpec]):
    KIND: ClassVar[str] = "Service"
    PLURAL: ClassVar[str] = "services"
    kind: Literal["Service"] = "Service"
