"""Resource specs: the user's language (pydantic v2 models, Kubernetes-style documents)."""

from dockyard.spec.common import (
    API_VERSION,
    Condition,
    Metadata,
    Resource,
    Resources,
    SpecModel,
    parse_bytes,
    parse_cpu,
)
from dockyard.spec.datasets import Dataset, DatasetSpec, PrepareSpec
from dockyard.spec.environments import Environment, EnvironmentSpec
from dockyard.spec.jobs import Job, JobSpec, ModelOutput, RetryPolicy
from dockyard.spec.kinds import KINDS, AnyResource, kind_of, plural_of
from dockyard.spec.models import Model, ModelSpec
from dockyard.spec.services import ModelRef, Service, ServiceSpec
from dockyard.spec.volumes import Volume, VolumeSpec

__all__ = [
    "API_VERSION",
    "KINDS",
    "AnyResource",
    "Condition",
    "Dataset",
    "DatasetSpec",
    "Environment",
    "EnvironmentSpec",
    "Job",
    "JobSpec",
    "Metadata",
    "Model",
    "ModelOutput",
    "ModelRef",
    "ModelSpec",
    "PrepareSpec",
    "Resource",
    "Resources",
    "RetryPolicy",
    "Service",
    "ServiceSpec",
    "SpecModel",
    "Volume",
    "VolumeSpec",
    "kind_of",
    "parse_bytes",
    "parse_cpu",
    "plural_of",
]
