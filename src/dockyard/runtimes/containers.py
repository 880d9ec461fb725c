"""What every container home gives a workload, whatever starts the container (OCI, Kubernetes)."""

from __future__ import annotations

from dockyard.runtimes.base import PreparedEnvironment, WorkloadRequest

WORKSPACE = "/workspace"  # the workload's code, and its working directory
OUTPUT = "/dockyard/output"  # $DOCKYARD_OUTPUT_DIR


def container_env(request: WorkloadRequest, environment: PreparedEnvironment) -> dict[str, str]:
    """The environment of the workload's container, but for its placement (GPUs, port) and
    its secrets, which each home passes its own way."""
    env = {
        "PYTHONUNBUFFERED": "1",
        "DOCKYARD_WORKLOAD_ID": request.id,
        "HOME": "/tmp",  # the root file system is read-only
        **environment.env,
    }
    threads = request.cpu_limit or request.cpu
    if threads:
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = str(max(1, int(-(-threads // 1))))
    if request.output_dir is not None:
        env["DOCKYARD_OUTPUT_DIR"] = OUTPUT
    for mount in request.mounts:
        if mount.env_var:
            env[mount.env_var] = mount.target
    return env


def working_dir(request: WorkloadRequest) -> str:
    return f"{WORKSPACE}/{request.working_dir}" if request.working_dir else WORKSPACE
