"""Placing workloads on the node: a pure function of capacity, usage and demands.

Demands are considered by priority (higher first), then by age. A demand that fits starts;
one that does not waits with a reason. Smaller demands may start past a larger one that is
waiting (best-effort FIFO, like Kueue's default), so the node is not left idle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dockyard.runtimes.base import NodeCapacity, NodeShape
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
    count: int = 1  # replicas of this need (a service revision): each on some node

    @property
    def total(self) -> tuple[float, int, int]:
        return self.cpu * self.count, self.memory * self.count, self.gpu * self.count


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


def _fits(shape: NodeShape, d: Demand) -> bool:
    return d.cpu <= shape.cpu + EPSILON and d.memory <= shape.memory and d.gpu <= shape.gpu


def _describe(cpu: float, memory: int, gpu: int) -> str:
    return f"{format_cpu(cpu)} cpu, {format_bytes(memory)} memory, {gpu} gpu"


def _fits_no_node(node: NodeCapacity, d: Demand) -> str:
    """A cluster: no single node can ever hold ``d``; say what the largest one offers."""
    if any(_fits(shape, d) for shape in node.nodes):
        return ""

    def size(shape: NodeShape) -> tuple[float, ...]:  # the scarcest things first
        return (min(shape.gpu, d.gpu), min(shape.cpu, d.cpu), min(shape.memory, d.memory))

    largest = max(node.nodes, key=lambda s: (size(s), s.gpu, s.cpu, s.memory))
    return (
        f"needs {_describe(d.cpu, d.memory, d.gpu)} on one node; no node of the cluster has "
        f"that much: the largest offers {_describe(largest.cpu, largest.memory, largest.gpu)} "
        f"({largest.name})"
    )


def _never_fits(node: NodeCapacity, d: Demand) -> str:
    if node.nodes and (too_big := _fits_no_node(node, d)):
        return too_big
    if d.gpu and node.gpu == 0:
        return f"needs {d.gpu} gpu, but this node has none ({node.gpu_note})"
    problems = []
    cpu, memory, gpu = d.total
    if cpu > node.cpu + EPSILON:
        problems.append(f"{format_cpu(cpu)} cpu")
    if memory > node.memory:
        problems.append(f"{format_bytes(memory)} memory")
    if gpu > node.gpu:
        problems.append(f"{gpu} gpu")
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
        cpu, memory, gpu = d.total
        if cpu > free_cpu + EPSILON:
            short.append(f"{format_cpu(cpu)} cpu, {format_cpu(max(free_cpu, 0))} free")
        if memory > free_mem:
            short.append(f"{format_bytes(memory)} memory, {format_bytes(max(free_mem, 0))} free")
        if gpu > len(free_gpus):
            short.append(f"{gpu} gpu, {len(free_gpus)} free")
        if short:
            decisions[d.key] = Decision(False, "needs " + "; ".join(short))
            continue
        free_cpu -= cpu
        free_mem -= memory
        taken, free_gpus = free_gpus[:gpu], free_gpus[gpu:]
        decisions[d.key] = Decision(True, gpu_indices=tuple(taken))
    return decisions
