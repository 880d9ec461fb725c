"""What the runtimes on this machine share (local processes, OCI containers): the machine's
capacity and how a workload learns where it was placed. Neither runtime imports the other.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
from pathlib import Path

from dockyard.runtimes.base import NodeCapacity, WorkloadRequest
from dockyard.settings import Settings
from dockyard.spec import parse_bytes


def detect_gpus() -> tuple[int, tuple[str, ...], str]:
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return 0, (), "nvidia-smi not found"
    try:
        out = subprocess.run(
            [smi, "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        return 0, (), f"nvidia-smi failed: {exc}"
    names = tuple(line.strip() for line in out.splitlines() if line.strip())
    return len(names), names, "nvidia-smi"


def total_memory() -> int:
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


@functools.cache
def _capacity(cpu: float | None, memory: str | None, gpu: int | None) -> NodeCapacity:
    gpus, models, note = (gpu, (), "configured") if gpu is not None else detect_gpus()
    return NodeCapacity(
        cpu=cpu if cpu is not None else float(os.cpu_count() or 1),
        memory=parse_bytes(memory) if memory else total_memory(),
        gpu=gpus,
        gpu_note=note,
        gpu_models=models,
    )


def host_capacity(settings: Settings) -> NodeCapacity:
    """What this machine offers (detected once), unless the settings say otherwise."""
    return _capacity(settings.node_cpu, settings.node_memory, settings.node_gpu)


def placement_env(request: WorkloadRequest) -> dict[str, str]:
    """How a workload learns where it was placed: its GPUs and its port."""
    env = {}
    if request.gpus:
        env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in request.gpus)
    if request.port is not None:
        env["DOCKYARD_SERVE_PORT"] = str(request.port)
    return env
