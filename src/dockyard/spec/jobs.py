"""``Job``: a training or batch run with retries, checkpoints and outputs."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar, Literal

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
    describe,
)

MAX_RETRIES = 100
"""Most extra attempts a job may ask for (``retry.limit``)."""
MAX_BACKOFF_SECONDS = 86_400
"""Longest wait between attempts: one day (``backoffSeconds``, ``maxBackoffSeconds``)."""
MAX_BACKOFF_FACTOR = 10
"""Largest growth of the wait per attempt (``backoffFactor``)."""
MAX_EXIT_CODES = 256
"""Entries in ``retry.onExitCodes``; each is an exit status from -255 to 255."""
MAX_PRIORITY = 1_000_000
"""Priorities run from -1,000,000 to 1,000,000."""
MAX_TIMEOUT_SECONDS = 30 * 86_400
"""Longest per-attempt time limit: 30 days (``timeoutSeconds``)."""
MAX_CHECKPOINT_EVERY = 1_000_000
"""Largest ``checkpoint.every``: steps or epochs between two checkpoints."""
MAX_CHECKPOINTS_KEPT = 1_000
"""Most complete checkpoints kept across attempts (``checkpoint.keep``)."""

ExitCode = Annotated[int, Field(ge=-255, le=255)]


class RetryPolicy(SpecModel):
    limit: NonNegativeInt = Field(
        default=0,
        le=MAX_RETRIES,
        description=f"Extra attempts after a failure, 0 to {MAX_RETRIES}.",
    )
    backoff_seconds: float = Field(
        default=5.0,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description=f"Wait before attempt 2, 0 to {MAX_BACKOFF_SECONDS:,} seconds (one day).",
    )
    backoff_factor: float = Field(
        default=2.0,
        ge=1,
        le=MAX_BACKOFF_FACTOR,
        description=f"Multiplier per attempt, 1 to {MAX_BACKOFF_FACTOR}.",
    )
    max_backoff_seconds: float = Field(
        default=300.0,
        ge=0,
        le=MAX_BACKOFF_SECONDS,
        description=f"Backoff cap, 0 to {MAX_BACKOFF_SECONDS:,} seconds (one day).",
    )
    on_exit_codes: list[ExitCode] | None = Field(
        default=None,
        max_length=MAX_EXIT_CODES,
        description=f"Retry only these exit codes (-255 to 255, at most {MAX_EXIT_CODES}); "
        "unset = any failure.",
    )

    def delay_before(self, attempt: int) -> float:
        """Seconds to wait before attempt number ``attempt`` (2, 3, …), at most the cap.

        The growth is compared with the cap in logarithms first, so a large attempt number or
        factor never computes a power that overflows a float.
        """
        cap = self.max_backoff_seconds
        base, factor = self.backoff_seconds, max(self.backoff_factor, 1.0)
        if attempt <= 1 or base <= 0 or cap <= 0:
            return 0.0
        steps = attempt - 2
        if math.log(base) + steps * math.log(factor) >= math.log(cap):
            return float(cap)
        return float(min(base * factor**steps, cap))


class CheckpointPolicy(SpecModel):
    """Checkpoints that resume: ``$DOCKYARD_CHECKPOINT_DIR/<name>/`` is a checkpoint, complete
    once ``<name>/.complete`` exists (``dockyard.checkpoints`` has the protocol)."""

    volume: Name = Field(description="Volume that keeps checkpoints across attempts.")
    path: MountPath = Field(default="/checkpoints", description="Mount path in the workload.")
    every: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CHECKPOINT_EVERY,
        description="How often the workload should write a checkpoint, in its own steps or "
        f"epochs, 1 to {MAX_CHECKPOINT_EVERY:,}; passed as $DOCKYARD_CHECKPOINT_EVERY "
        "(unset = the workload decides).",
    )
    keep: int = Field(
        default=2,
        ge=1,
        le=MAX_CHECKPOINTS_KEPT,
        description="Complete checkpoints kept before each attempt (the newest), 1 to "
        f"{MAX_CHECKPOINTS_KEPT:,}; half-written ones are removed.",
    )


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
                {"got": describe(value)},
            )
        return value


class JobOutputs(SpecModel):
    model: ModelOutput | None = Field(default=None, description="A model to register.")


class JobSpec(WorkloadSpec):
    priority: int = Field(
        default=0,
        ge=-MAX_PRIORITY,
        le=MAX_PRIORITY,
        description=f"Higher runs first when resources are short; ±{MAX_PRIORITY:,}.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy, description="Restarts on failure.")
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_TIMEOUT_SECONDS,
        description=f"Per-attempt time limit in seconds, at most {MAX_TIMEOUT_SECONDS:,} "
        "(30 days).",
    )
    checkpoint: CheckpointPolicy | None = Field(
        default=None,
        description="Checkpoints kept across attempts: the next attempt resumes from the "
        "newest complete one.",
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
