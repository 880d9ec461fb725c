"""The scheduler: which demands start now, and why the others wait."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.control.scheduler import Demand, Usage, schedule
from dockyard.runtimes.base import NodeCapacity, NodeShape

GI = 2**30
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NODE = NodeCapacity(cpu=4, memory=8 * GI, gpu=0, gpu_note="no NVIDIA driver found")
GPU_NODE = NodeCapacity(cpu=16, memory=64 * GI, gpu=4, gpu_note="4 x A100")


def demand(
    key: str,
    cpu: float = 1,
    memory: int = 0,
    gpu: int = 0,
    priority: int = 0,
    age: int = 0,
) -> Demand:
    """``age`` is the creation order: a larger age was created later."""
    return Demand(key, cpu, memory, gpu, priority, T0 + timedelta(seconds=age))


def test_a_demand_that_fits_is_admitted() -> None:
    decisions = schedule(NODE, Usage(), [demand("a", cpu=2, memory=GI)])
    assert decisions["a"].admitted
    assert decisions["a"].reason == ""
    assert decisions["a"].gpu_indices == ()
    assert not decisions["a"].never_fits


def test_exactly_full_node_is_admitted() -> None:
    decisions = schedule(NODE, Usage(cpu=2, memory=4 * GI), [demand("a", cpu=2, memory=4 * GI)])
    assert decisions["a"].admitted


def test_cpu_shortage_reason() -> None:
    decisions = schedule(NODE, Usage(cpu=2), [demand("a", cpu=4)])
    assert not decisions["a"].admitted
    assert decisions["a"].reason == "needs 4 cpu, 2 free"
    assert not decisions["a"].never_fits


def test_fractional_cpu_reason() -> None:
    decisions = schedule(NODE, Usage(cpu=3.5), [demand("a", cpu=1.5)])
    assert decisions["a"].reason == "needs 1.5 cpu, 0.5 free"


def test_memory_shortage_reason() -> None:
    decisions = schedule(NODE, Usage(memory=7 * GI), [demand("a", memory=2 * GI)])
    assert not decisions["a"].admitted
    assert decisions["a"].reason == "needs 2Gi memory, 1Gi free"


def test_cpu_and_memory_shortage_reason() -> None:
    decisions = schedule(NODE, Usage(cpu=3, memory=7 * GI), [demand("a", cpu=2, memory=2 * GI)])
    assert decisions["a"].reason == "needs 2 cpu, 1 free; 2Gi memory, 1Gi free"


def test_admitted_demands_use_up_capacity() -> None:
    decisions = schedule(NODE, Usage(), [demand(k, cpu=1.5, age=i) for i, k in enumerate("abc")])
    assert [decisions[k].admitted for k in "abc"] == [True, True, False]
    assert decisions["c"].reason == "needs 1.5 cpu, 1 free"


def test_higher_priority_created_later_wins_the_last_slot() -> None:
    low = demand("low", cpu=2, priority=0, age=0)
    high = demand("high", cpu=2, priority=10, age=60)
    for order in ([low, high], [high, low]):
        decisions = schedule(NODE, Usage(cpu=2), order)
        assert decisions["high"].admitted
        assert not decisions["low"].admitted
        assert decisions["low"].reason == "needs 2 cpu, 0 free"


def test_equal_priority_is_first_in_first_out() -> None:
    first = demand("zz-first", cpu=2, age=0)
    second = demand("aa-second", cpu=2, age=1)
    for order in ([first, second], [second, first]):
        decisions = schedule(NODE, Usage(cpu=2), order)
        assert decisions["zz-first"].admitted
        assert not decisions["aa-second"].admitted


def test_negative_priority_goes_last() -> None:
    decisions = schedule(
        NODE, Usage(), [demand("batch", cpu=4, priority=-1, age=0), demand("x", cpu=4, age=9)]
    )
    assert decisions["x"].admitted
    assert not decisions["batch"].admitted


def test_small_demand_starts_past_a_big_waiting_one() -> None:
    big = demand("big", cpu=3, priority=5, age=0)
    small = demand("small", cpu=1, age=1)
    decisions = schedule(NODE, Usage(cpu=2), [big, small])
    assert not decisions["big"].admitted
    assert decisions["big"].reason == "needs 3 cpu, 2 free"
    assert decisions["small"].admitted


def test_gpu_demand_on_node_without_gpus() -> None:
    decisions = schedule(NODE, Usage(), [demand("a", gpu=1)])
    decision = decisions["a"]
    assert not decision.admitted
    assert decision.never_fits
    assert decision.reason == "needs 1 gpu, but this node has none (no NVIDIA driver found)"


def test_demand_larger_than_the_node() -> None:
    decisions = schedule(NODE, Usage(), [demand("a", cpu=8, memory=16 * GI), demand("b", cpu=1)])
    assert not decisions["a"].admitted
    assert decisions["a"].never_fits
    assert decisions["a"].reason == (
        "needs 8 cpu, 16Gi memory, more than this node has in total (4 cpu, 8Gi memory, 0 gpu)"
    )
    # it takes nothing away from the others
    assert decisions["b"].admitted


def test_more_gpus_than_the_node_has() -> None:
    decisions = schedule(GPU_NODE, Usage(), [demand("a", gpu=5)])
    assert decisions["a"].never_fits
    assert "needs 5 gpu, more than this node has in total" in decisions["a"].reason
    assert "4 gpu)" in decisions["a"].reason


def test_gpu_indices_are_distinct_and_skip_used_ones() -> None:
    used = Usage(gpu_indices={0, 2})
    decisions = schedule(
        GPU_NODE, used, [demand("a", gpu=1, age=0), demand("b", gpu=1, age=1), demand("c", age=2)]
    )
    assert decisions["a"].gpu_indices == (1,)
    assert decisions["b"].gpu_indices == (3,)
    assert decisions["c"].gpu_indices == ()
    assert decisions["c"].admitted


def test_gpu_shortage_reason() -> None:
    used = Usage(gpu_indices={0, 1, 2})
    decisions = schedule(GPU_NODE, used, [demand("a", gpu=2), demand("b", gpu=1, age=1)])
    assert not decisions["a"].admitted
    assert not decisions["a"].never_fits
    assert decisions["a"].reason == "needs 2 gpu, 1 free"
    assert decisions["b"].gpu_indices == (3,)


def test_multi_gpu_demand_gets_its_own_set() -> None:
    decisions = schedule(GPU_NODE, Usage(), [demand("a", gpu=2), demand("b", gpu=2, age=1)])
    a, b = decisions["a"].gpu_indices, decisions["b"].gpu_indices
    assert len(a) == len(b) == 2
    assert set(a).isdisjoint(b)
    assert set(a) | set(b) == {0, 1, 2, 3}


def test_usage_add() -> None:
    used = Usage()
    used.add(1.5, GI, [0])
    used.add(0.5, GI, [2])
    assert used.cpu == 2.0
    assert used.memory == 2 * GI
    assert used.gpu_indices == {0, 2}
    decisions = schedule(GPU_NODE, used, [demand("a", gpu=2)])
    assert decisions["a"].gpu_indices == (1, 3)


def test_overcommitted_node_reports_zero_free() -> None:
    decisions = schedule(NODE, Usage(cpu=5), [demand("a", cpu=1)])
    assert decisions["a"].reason == "needs 1 cpu, 0 free"


def test_no_demands() -> None:
    assert schedule(NODE, Usage(), []) == {}


CLUSTER = NodeCapacity(
    cpu=12,
    memory=48 * GI,
    gpu=2,
    nodes=(
        NodeShape("kwok-node-0", 4, 16 * GI, 1, "NVIDIA-T4"),
        NodeShape("kwok-node-1", 4, 16 * GI, 1, "NVIDIA-T4"),
        NodeShape("kwok-node-2", 4, 16 * GI, 0),
    ),
)


def test_on_a_cluster_a_demand_must_fit_one_node_and_says_what_the_largest_offers() -> None:
    """Two 1-GPU nodes add up to 2 GPUs, but no pod can use both."""
    decisions = schedule(CLUSTER, Usage(), [demand("two-gpus", gpu=2), demand("one", gpu=1)])
    assert not decisions["two-gpus"].admitted and decisions["two-gpus"].never_fits
    reason = decisions["two-gpus"].reason
    assert "on one node" in reason and "1 gpu (kwok-node-0)" in reason, reason
    assert decisions["one"].admitted  # what fits is not held up behind it
    too_much_cpu = schedule(CLUSTER, Usage(), [demand("big", cpu=6)])["big"]
    assert too_much_cpu.never_fits and "the largest offers 4 cpu" in too_much_cpu.reason


def test_replicas_of_a_revision_fit_node_by_node_and_count_in_the_total() -> None:
    three = Demand("rev", 3, GI, 0, 0, T0, count=3)  # 3 x 3 cpu: each fits one node
    decisions = schedule(CLUSTER, Usage(), [three])
    assert decisions["rev"].admitted
    five = Demand("rev", 3, GI, 0, 0, T0, count=5)  # 15 cpu: more than the cluster has
    decisions = schedule(CLUSTER, Usage(), [five])
    assert decisions["rev"].never_fits and "15 cpu" in decisions["rev"].reason


def gpu_cluster(**free_gpus: int) -> NodeCapacity:
    """Two nodes of one T4 each and one of four A100s; ``free_gpus`` sets what is free now."""
    shapes = (
        NodeShape("t4-a", 8, 32 * GI, 1, "NVIDIA-T4"),
        NodeShape("t4-b", 8, 32 * GI, 1, "NVIDIA-T4"),
        NodeShape("a100", 16, 64 * GI, 4, "NVIDIA-A100"),
    )
    free = tuple(
        NodeShape(s.name, s.cpu, s.memory, free_gpus.get(s.name.replace("-", "_"), s.gpu),
                  s.gpu_model)
        for s in shapes
    )  # fmt: skip
    return NodeCapacity(32, 128 * GI, 6, nodes=shapes, free=free)


def gpus(key: str, count: int, gpu_type: str | None = None, age: int = 0) -> Demand:
    return Demand(key, 1, GI, count, 0, T0 + timedelta(seconds=age), gpu_type=gpu_type)


def test_a_cluster_places_each_demand_on_one_nodes_free_room() -> None:
    decisions = schedule(gpu_cluster(), Usage(), [gpus("four", 4), gpus("one", 1, age=1)])
    assert decisions["four"].admitted and decisions["four"].node == "a100"
    assert decisions["one"].admitted and decisions["one"].node in ("t4-a", "t4-b")
    assert decisions["four"].gpu_indices == ()  # a cluster's GPUs are counted, not indexed


def test_a_gpu_type_is_a_node_label_and_two_one_gpu_nodes_are_not_a_two_gpu_node() -> None:
    decisions = schedule(gpu_cluster(), Usage(), [gpus("two-t4", 2, "NVIDIA-T4")])
    assert decisions["two-t4"].never_fits
    assert "the largest of those offers 8 cpu, 32Gi memory, 1 gpu" in decisions["two-t4"].reason
    decisions = schedule(gpu_cluster(), Usage(), [gpus("h100", 1, "NVIDIA-H100")])
    assert decisions["h100"].never_fits and "NVIDIA-A100, NVIDIA-T4" in decisions["h100"].reason
    decisions = schedule(gpu_cluster(), Usage(), [gpus("a100", 2, "NVIDIA-A100")])
    assert decisions["a100"].node == "a100"


def test_what_waits_names_the_most_free_node_and_smaller_ones_go_past_it() -> None:
    busy = gpu_cluster(a100=0)  # its four GPUs held by pods the cluster bound there
    decisions = schedule(busy, Usage(), [gpus("four", 4, age=0), gpus("one", 1, age=1)])
    assert not decisions["four"].admitted and not decisions["four"].never_fits
    assert (
        decisions["four"].reason == "needs 4 gpu on one node; the most free on any node is 1 (t4-a)"
    )
    assert decisions["one"].admitted  # no head-of-line blocking


def test_admitted_but_unbound_workloads_hold_their_room() -> None:
    used = Usage()
    used.add(1, GI, [], wid="job-a", gpu=4)  # admitted, its pod not bound yet
    decisions = schedule(gpu_cluster(), used, [gpus("four", 4)])
    assert not decisions["four"].admitted  # the A100s are taken by job-a already
    bound = gpu_cluster(a100=0)
    bound = NodeCapacity(**{**bound.__dict__, "bound": frozenset({"job-a"})})
    decisions = schedule(bound, used, [gpus("one", 1)])  # counted once, in the node's free
    assert decisions["one"].admitted
