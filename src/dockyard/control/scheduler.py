"""Placing workloads on the node: a pure function of capacity, usage and demands.

Demands are considered by priority (higher first), then by age. A demand that fits starts;
one that does not waits with a reason. Smaller demands may start past a larger one that is
waiting (best-effort FIFO, like Kueue's default), so the node is not left idle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dockyard.runtimes.base import NodeCapacity
from dockyard.spec.common import format_bytes, format_cpu

EPSILON = 1e-9


@dataclass(frozen=True)
class Demand:
    key: str
    cpu: float
    memory: int
    gpu: int
    priority: int
    created_at: datetime


@dataclass
class Usage:
    cpu: float = 0.0
    memory: int = 0
    gpu_indices: set[int] = field(default_factory=set)

    def add(self, cpu: float, memory: int, gpu_indices: list[int]) -> None:
        self.cpu += cpu
        self.memory += memory
        self.gpu_indices.update(gpu_indices)


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str = ""
    gpu_indices: tuple[int, ...] = ()
    never_fits: bool = False


def _never_fits(node: NodeCapacity, d: Demand) -> str:
    if d.gpu and node.gpu == 0:
        return f"needs {d.gpu} gpu, but this node has none ({node.gpu_note})"
    problems = []
    if d.cpu > node.cpu + EPSILON:
        problems.append(f"{format_cpu(d.cpu)} cpu")
    if d.memory > node.memory:
        problems.append(f"{format_bytes(d.memory)} memory")
    if d.gpu > node.gpu:
        problems.append(f"{d.gpu} gpu")
    if problems:
        return (
            f"needs {', '.join(problems)}, more than this node has in total "
            f"({format_cpu(node.cpu)} cpu, {format_bytes(node.memory)} memory, "
            f"{node.gpu} gpu)"
        )
    return ""


def schedule(node: NodeCapacity, used: Usage, demands: list[Demand]) -> dict[str, Decision]:
    free_cpu = node.cpu - used.cpu
    free_mem = node.memory - used.memory
    free_gpus = [i for i in range(node.gpu) if i not in used.gpu_indices]
    decisions: dict[str, Decision] = {}
    for d in sorted(demands, key=lambda d: (-d.priority, d.created_at, d.key)):
        if not node.known:
            decisions[d.key] = Decision(False, f"waiting: {node.note}")
            continue
        impossible = _never_fits(node, d)
        if impossible:
            decisions[d.key] = Decision(False, impossible, never_fits=True)
            continue
        short = []
        if d.cpu > free_cpu + EPSILON:
            short.append(f"{format_cpu(d.cpu)} cpu, {format_cpu(max(free_cpu, 0))} free")
        if d.memory > free_mem:
            short.append(f"{format_bytes(d.memory)} memory, {format_bytes(max(free_mem, 0))} free")
        if d.gpu > len(free_gpus):
            short.append(f"{d.gpu} gpu, {len(free_gpus)} free")
        if short:
            decisions[d.key] = Decision(False, "needs " + "; ".join(short))
            continue
        free_cpu -= d.cpu
        free_mem -= d.memory
        taken, free_gpus = free_gpus[: d.gpu], free_gpus[d.gpu :]
        decisions[d.key] = Decision(True, gpu_indices=tuple(taken))
    return decisions
