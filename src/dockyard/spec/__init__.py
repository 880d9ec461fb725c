"""Resource specs: the user's language (pydantic v2 models, Kubernetes-style documents)."""

from dockyard.spec.common import (
    API_VERSION,
    Metadata,
    Ref,
    Resource,
    Resources,
    SpecModel,
    parse_bytes,
    parse_cpu,
)
from dockyard.spec.datasets import Dataset, DatasetSpec, PrepareSpec
from dockyard.spec.environments import Environment, EnvironmentSpec
from dockyard.spec.jobs import Job, JobSpec, ModelOutput, RetryPolicy
from dockyard.spec.kinds import (
    DESCRIPTOR,
    DESCRIPTORS,
    KINDS,
    AnyResource,
    KindDescriptor,
    kind_of,
    plural_of,
)
from dockyard.spec.models import Model, ModelSpec
from dockyard.spec.services import ModelRef, Service, ServiceSpec
from dockyard.spec.status import (
    Condition,
    DatasetStatus,
    EnvironmentStatus,
    JobStatus,
    ModelStatus,
    Phase,
    ServiceStatus,
    Status,
    VolumeStatus,
)
from dockyard.spec.volumes import Volume, VolumeSpec

__all__ = [
    "API_VERSION",
    "DESCRIPTOR",
    "DESCRIPTORS",
    "KINDS",
    "AnyResource",
    "Condition",
    "Dataset",
    "DatasetSpec",
    "DatasetStatus",
    "Environment",
    "EnvironmentSpec",
    "EnvironmentStatus",
    "Job",
    "JobSpec",
    "JobStatus",
    "KindDescriptor",
    "Metadata",
    "Model",
    "ModelOutput",
    "ModelRef",
    "ModelSpec",
    "ModelStatus",
    "Phase",
    "PrepareSpec",
    "Ref",
    "Resource",
    "Resources",
    "RetryPolicy",
    "Service",
    "ServiceSpec",
    "ServiceStatus",
    "SpecModel",
    "Status",
    "Volume",
    "VolumeSpec",
    "VolumeStatus",
    "kind_of",
    "parse_bytes",
    "parse_cpu",
    "plural_of",
]
