"""``Job``: a training or batch run with retries, checkpoints and outputs."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from dockyard.spec.common import (
    MountPath,
    Name,
    NonNegativeInt,
    Ref,
    Resource,
    SpecModel,
    WorkloadSpec,
)


class RetryPolicy(SpecModel):
    limit: NonNegativeInt = Field(default=0, description="Extra attempts after a failure.")
    backoff_seconds: float = Field(default=5.0, ge=0, description="Wait before attempt 2.")
    backoff_factor: float = Field(default=2.0, ge=1, description="Multiplier per attempt.")
    max_backoff_seconds: float = Field(default=300.0, ge=0, description="Backoff cap.")
    on_exit_codes: list[int] | None = Field(
        default=None, description="Retry only these exit codes; unset = any failure."
    )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2, 3, …)."""
        if attempt <= 1:
            return 0.0
        delay = self.backoff_seconds * self.backoff_factor ** (attempt - 2)
        return float(min(delay, self.max_backoff_seconds))


class CheckpointPolicy(SpecModel):
    volume: Name = Field(description="Volume that keeps checkpoints across attempts.")
    path: MountPath = Field(default="/checkpoints", description="Mount path in the workload.")


class ModelOutput(SpecModel):
    name: Name = Field(description="Model to register a new version of.")
    path: str = Field(description="File or directory in $DOCKYARD_OUTPUT_DIR with the model.")
    metrics: str | None = Field(
        default="metrics.json", description="JSON file of metrics in the output dir."
    )
    flavor: Literal["sklearn"] = Field(default="sklearn", description="Framework of the model.")

    @field_validator("path", "metrics")
    @classmethod
    def _relative(cls, value: str | None) -> str | None:
        if value is not None and (value.startswith("/") or ".." in value.split("/")):
            raise PydanticCustomError(
                "rel_path",
                "expected a path relative to the output directory, got {got}",
                {"got": repr(value)},
            )
        return value


class JobOutputs(SpecModel):
    model: ModelOutput | None = Field(default=None, description="A model to register.")


class JobSpec(WorkloadSpec):
    priority: int = Field(default=0, description="Higher runs first when resources are short.")
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Restarts on failure.")
    timeout_seconds: float | None = Field(default=None, gt=0, description="Per-attempt time limit.")
    checkpoint: CheckpointPolicy | None = Field(
        default=None, description="A volume directory kept across attempts."
    )
    outputs: JobOutputs = Field(
        default_factory=JobOutputs, description="What to register after success."
    )

    def references(self) -> list[Ref]:
        refs = super().references()
        if self.checkpoint is not None:
            refs.append(Ref("spec.checkpoint.volume", "Volume", self.checkpoint.volume))
        return refs

    def produces(self) -> list[Ref]:
        model = self.outputs.model
        return [Ref("spec.outputs.model.name", "Model", model.name)] if model else []


class Job(Resource[JobSpec]):
    KIND: ClassVar[str] = "Job"
    PLURAL: ClassVar[str] = "jobs"
    kind: Literal["Job"] = "Job"
