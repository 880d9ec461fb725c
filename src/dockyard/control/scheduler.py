"""Placing workloads on a home's nodes: a pure function of capacity, usage and demands.

Demands are considered by priority (higher first), then by age. A demand that fits starts;
one that does not waits with a reason. Smaller demands may start past a larger one that is
waiting (best-effort FIFO, like Kueue's default), so no node is left idle behind it.

A home of one node (this machine: local processes, containers) hands out GPU indices and
counts what its admitted workloads reserve. A cluster is many nodes, never their sum: each
demand must fit *one* node's free capacity (its allocatable less the requests of the pods
bound there, ``NodeCapacity.free``), with the GPU product its ``gpuType`` names; what Dockyard
admitted but the cluster has not bound yet is set against the nodes first, so nothing is
admitted twice into the same room. A demand no node's allocatable could ever hold says what
the largest node offers.
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
    gpu_type: str | None = None

    @property
    def total(self) -> tuple[float, int, int]:
        return self.cpu * self.count, self.memory * self.count, self.gpu * self.count


@dataclass
class Usage:
    """What a home's admitted workloads reserve: in all, and (a cluster) each of them."""

    cpu: float = 0.0
    memory: int = 0
    gpu_indices: set[int] = field(default_factory=set)
    # (workload id, cpu, memory, gpu) of each active workload, to set against a cluster's
    # nodes those the cluster has not bound yet
    workloads: list[tuple[str, float, int, int]] = field(default_factory=list)

    def add(
        self, cpu: float, memory: int, gpu_indices: list[int], wid: str = "", gpu: int = 0
    ) -> None:
        self.cpu += cpu
        self.memory += memory
        self.gpu_indices.update(gpu_indices)
        self.workloads.append((wid, cpu, memory, gpu or len(gpu_indices)))


@dataclass(frozen=True)
class Decision:
    admitted: bool
    reason: str = ""
    gpu_indices: tuple[int, ...] = ()
    never_fits: bool = False
    node: str | None = None  # a cluster: the node it was set against (not a binding)


def _describe(cpu: float, memory: int, gpu: int) -> str:
    return f"{format_cpu(cpu)} cpu, {format_bytes(memory)} memory, {gpu} gpu"


def _gpu_type_matches(model: str | None, wanted: str | None, exact: bool) -> bool:
    """A node label (exact, as a nodeSelector matches) or a local GPU's name (contains it)."""
    if not wanted:
        return True
    if model is None:
        return False
    return model == wanted if exact else wanted.lower() in model.lower()


def _holds(shape: NodeShape, cpu: float, memory: int, gpu: int, gpu_type: str | None) -> bool:
    return (
        cpu <= shape.cpu + EPSILON
        and memory <= shape.memory
        and gpu <= shape.gpu
        and (not gpu or _gpu_type_matches(shape.gpu_model, gpu_type, exact=True))
    )


def _fits_no_node(node: NodeCapacity, d: Demand) -> str:
    """A cluster: no single node can ever hold ``d``; say what the largest one offers."""
    if any(_holds(shape, d.cpu, d.memory, d.gpu, d.gpu_type) for shape in node.nodes):
        return ""
    if d.gpu and d.gpu_type and not any(s.gpu_model == d.gpu_type for s in node.nodes if s.gpu):
        have = sorted({str(s.gpu_model) for s in node.nodes if s.gpu}) or ["none"]
        return (
            f"needs gpu type {d.gpu_type}; the cluster's nodes have: {', '.join(have)} "
            "(their nvidia.com/gpu.product labels)"
        )

    def size(shape: NodeShape) -> tuple[float, ...]:  # the scarcest things first
        return (min(shape.gpu, d.gpu), min(shape.cpu, d.cpu), min(shape.memory, d.memory))

    typed = d.gpu and d.gpu_type
    pool = [s for s in node.nodes if s.gpu_model == d.gpu_type] if typed else list(node.nodes)
    largest = max(pool, key=lambda s: (size(s), s.gpu, s.cpu, s.memory))
    kind = f" ({d.gpu_type})" if typed else ""
    return (
        f"needs {_describe(d.cpu, d.memory, d.gpu)}{kind} on one node; no node of the cluster "
        f"has that much: the largest{' of those' if typed else ''} offers "
        f"{_describe(largest.cpu, largest.memory, largest.gpu)} ({largest.name})"
    )


def _never_fits(node: NodeCapacity, d: Demand) -> str:
    if node.nodes and (too_big := _fits_no_node(node, d)):
        return too_big
    if d.gpu and node.gpu == 0:
        return f"needs {d.gpu} gpu, but this node has none ({node.gpu_note})"
    local_models = () if node.nodes else node.gpu_models
    if (
        d.gpu
        and d.gpu_type
        and local_models
        and not any(_gpu_type_matches(m, d.gpu_type, exact=False) for m in local_models)
    ):
        have = ", ".join(node.gpu_models) or "none"
        return f"needs gpu type {d.gpu_type}; this node's GPUs are: {have}"
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
    if node.free:
        return _schedule_nodes(node, used, demands)
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


class _Room:
    """What is free on one node of a cluster, as this pass hands it out."""

    def __init__(self, shape: NodeShape) -> None:
        self.name, self.model = shape.name, shape.gpu_model
        self.cpu, self.memory, self.gpu = shape.cpu, shape.memory, shape.gpu

    def holds(self, cpu: float, memory: int, gpu: int, gpu_type: str | None) -> bool:
        shape = NodeShape(self.name, self.cpu, self.memory, self.gpu, self.model)
        return _holds(shape, cpu, memory, gpu, gpu_type)

    def take(self, cpu: float, memory: int, gpu: int) -> None:
        self.cpu, self.memory, self.gpu = self.cpu - cpu, self.memory - memory, self.gpu - gpu

    def left(self, cpu: float, memory: int, gpu: int) -> tuple[float, ...]:
        """How tight a fit is (best fit: the least left over, GPUs first)."""
        return (self.gpu - gpu, self.cpu - cpu, self.memory - memory)


def _best(
    rooms: list[_Room], cpu: float, memory: int, gpu: int, gpu_type: str | None
) -> _Room | None:
    fits = [r for r in rooms if r.holds(cpu, memory, gpu, gpu_type)]
    return min(fits, key=lambda r: (r.left(cpu, memory, gpu), r.name), default=None)


def _schedule_nodes(node: NodeCapacity, used: Usage, demands: list[Demand]) -> dict[str, Decision]:
    rooms = [_Room(shape) for shape in node.free]
    # admitted by Dockyard, not bound by the cluster yet: they hold room somewhere already
    floating = [w for w in used.workloads if w[0] not in node.bound]
    for _wid, cpu, memory, gpu in sorted(floating, key=lambda w: (-w[3], -w[1], -w[2])):
        room = _best(rooms, cpu, memory, gpu, None)
        if room is not None:
            room.take(cpu, memory, gpu)
    decisions: dict[str, Decision] = {}
    for d in sorted(demands, key=lambda d: (-d.priority, d.created_at, d.key)):
        if not node.known:
            decisions[d.key] = Decision(False, f"waiting: {node.note}")
            continue
        impossible = _never_fits(node, d)
        if impossible:
            decisions[d.key] = Decision(False, impossible, never_fits=True)
            continue
        placed: list[_Room] = []
        for _ in range(d.count):
            room = _best(rooms, d.cpu, d.memory, d.gpu, d.gpu_type)
            if room is None:
                break
            room.take(d.cpu, d.memory, d.gpu)
            placed.append(room)
        if len(placed) == d.count:
            decisions[d.key] = Decision(True, node=placed[0].name)
            continue
        for room in placed:  # not all of them: give the room back, wait
            room.take(-d.cpu, -d.memory, -d.gpu)
        decisions[d.key] = Decision(False, _most_free(rooms, d))
    return decisions


def _most_free(rooms: list[_Room], d: Demand) -> str:
    """Why ``d`` waits: the most that is free on any one node, in what it is short of."""
    matching = [r for r in rooms if not d.gpu or _gpu_type_matches(r.model, d.gpu_type, True)]
    pool = matching or rooms
    if d.gpu:
        best = max(pool, key=lambda r: (r.gpu, r.cpu, r.memory))
        what, have = f"{d.gpu} gpu", f"{max(best.gpu, 0)}"
    elif d.cpu > max(r.cpu for r in pool) + EPSILON:
        best = max(pool, key=lambda r: (r.cpu, r.memory))
        what, have = f"{format_cpu(d.cpu)} cpu", format_cpu(max(best.cpu, 0))
    else:
        best = max(pool, key=lambda r: (r.memory, r.cpu))
        what, have = f"{format_bytes(d.memory)} memory", format_bytes(max(best.memory, 0))
    of = f" (replicas: {d.count})" if d.count > 1 else ""
    return f"needs {what} on one node{of}; the most free on any node is {have} ({best.name})"
