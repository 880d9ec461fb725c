"""``services.plan``: replicas to start and stop for the resolved model version."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from dockyard.control.services import MAX_BACKOFF, Observed, Replica, backoff, plan
from dockyard.spec import ServiceSpec

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GEN = 2
VERSION = 7


def spec(replicas: int = 2, **extra: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"model": "digits@latest", "replicas": replicas, **extra})


def replica(
    number: int,
    phase: str = "Running",
    ready: bool = True,
    generation: int = GEN,
    version: int = VERSION,
    tag: str = "",
    **extra: Any,
) -> Replica:
    rid = f"g{generation}-v{version}-r{number}{tag}"
    return Replica(rid, number, generation, version, phase, ready, **extra)


def crashed(number: int, ago: float, tag: str = "", **extra: Any) -> Replica:
    return replica(
        number,
        phase="Failed",
        ready=False,
        tag=tag,
        finished_at=NOW - timedelta(seconds=ago),
        reason="Error",
        message="exit code 1",
        **extra,
    )


def observed(*replicas: Replica, **extra: Any) -> Observed:
    return Observed(
        generation=extra.pop("generation", GEN),
        version=extra.pop("version", VERSION),
        replicas=replicas,
        now=NOW,
        **extra,
    )


def test_backoff() -> None:
    assert [backoff(n) for n in range(5)] == [0.0, 1.0, 2.0, 4.0, 8.0]
    assert backoff(100) == MAX_BACKOFF


def test_no_version_waits_with_the_message() -> None:
    p = plan(spec(), observed(version=None, blocked="model 'digits' has no versions yet"))
    assert (p.phase, p.reason) == ("Pending", "Waiting")
    assert p.message == "model 'digits' has no versions yet"
    assert p.start == []
    assert p.stop == []


def test_new_service_starts_every_replica() -> None:
    p = plan(spec(3), observed())
    assert p.start == [(0, 0), (1, 0), (2, 0)]
    assert p.stop == []
    assert (p.phase, p.reason) == ("Starting", "Starting")
    assert p.message == "0/3 replica(s) ready, version 7"


def test_ready_replicas() -> None:
    p = plan(spec(2), observed(replica(0), replica(1)))
    assert (p.phase, p.reason) == ("Ready", "Ready")
    assert p.message == "2/2 replica(s) ready, version 7"
    assert p.start == []
    assert p.stop == []


def test_running_but_not_ready_is_starting() -> None:
    p = plan(spec(2), observed(replica(0), replica(1, ready=False)))
    assert p.phase == "Starting"
    assert p.message == "1/2 replica(s) ready, version 7"
    assert p.start == []


@pytest.mark.parametrize(
    "old",
    [
        {"version": VERSION - 1},  # a new model version
        {"generation": GEN - 1},  # a new spec
    ],
)
def test_rollout_stops_old_replicas_only_when_all_new_are_ready(old: dict[str, Any]) -> None:
    olds = (replica(0, **old, tag="-old"), replica(1, **old, tag="-old"))
    old_ids = sorted(r.id for r in olds)

    p = plan(spec(2), observed(*olds))
    assert p.start == [(0, 0), (1, 0)]
    assert p.stop == []

    p = plan(spec(2), observed(*olds, replica(0), replica(1, ready=False)))
    assert p.start == []
    assert p.stop == []
    assert p.phase == "Starting"

    p = plan(spec(2), observed(*olds, replica(0), replica(1)))
    assert sorted(p.stop) == old_ids
    assert p.phase == "Ready"


def test_crashed_replica_waits_for_backoff() -> None:
    p = plan(spec(1), observed(crashed(0, ago=0.5)))
    assert p.start == []
    assert p.recheck_at == NOW - timedelta(seconds=0.5) + timedelta(seconds=backoff(1))
    assert (p.phase, p.reason) == ("Starting", "CrashLoopBackOff")
    assert p.message == "replica 0 exited: Error exit code 1"


def test_crashed_replica_restarts_after_backoff() -> None:
    p = plan(spec(1), observed(crashed(0, ago=backoff(1))))
    assert p.start == [(0, 1)]
    assert p.recheck_at is None


def test_backoff_grows_with_restarts() -> None:
    history = [crashed(0, ago=100, tag=f"-{i}") for i in range(3)]
    latest = crashed(0, ago=5, tag="-3")
    p = plan(spec(1), observed(*history, latest))
    assert backoff(4) > 5
    assert p.start == []
    assert p.recheck_at == NOW - timedelta(seconds=5) + timedelta(seconds=backoff(4))
    p = plan(spec(1), observed(*history, crashed(0, ago=backoff(4), tag="-3")))
    assert p.start == [(0, 4)]


def test_crash_of_one_replica_does_not_hold_back_others() -> None:
    p = plan(spec(3), observed(replica(0), crashed(1, ago=0)))
    assert p.start == [(2, 0)]
    assert p.reason == "CrashLoopBackOff"
    assert p.message.startswith("replica 1 exited: Error")
    assert p.recheck_at == NOW + timedelta(seconds=backoff(1))


def test_recheck_is_the_earliest_due_time() -> None:
    p = plan(spec(2), observed(crashed(0, ago=0), crashed(1, ago=0.75)))
    assert p.recheck_at == NOW + timedelta(seconds=0.25)


def test_restarted_replica_is_not_a_crash_loop_once_ready() -> None:
    p = plan(spec(1), observed(crashed(0, ago=100), replica(0, tag="-again")))
    assert (p.phase, p.reason) == ("Ready", "Ready")
    assert p.start == []


def test_scale_down_stops_replicas_beyond_the_count() -> None:
    reps = [replica(n) for n in range(4)]
    p = plan(spec(2), observed(*reps))
    assert sorted(p.stop) == sorted([reps[2].id, reps[3].id])
    assert p.phase == "Ready"
    assert p.start == []


def test_scale_to_zero() -> None:
    reps = [replica(n) for n in range(2)]
    p = plan(spec(0), observed(*reps))
    assert sorted(p.stop) == sorted(r.id for r in reps)
    assert p.start == []


def test_duplicate_running_replicas_are_trimmed() -> None:
    first, second = replica(0), replica(0, tag="-dup")
    p = plan(spec(1), observed(first, second))
    assert p.stop == [second.id]
    assert p.start == []


def test_deleting_stops_everything_active() -> None:
    reps = (
        replica(0),
        replica(1, phase="Starting", ready=False),
        replica(0, version=VERSION - 1, tag="-old"),
        crashed(2, ago=0),
    )
    p = plan(spec(3), observed(*reps, deleting=True))
    assert p.phase == "Terminating"
    assert sorted(p.stop) == sorted(r.id for r in reps[:3])
    assert p.start == []


def test_deleting_without_a_version_still_stops() -> None:
    p = plan(spec(1), observed(replica(0), version=None, deleting=True))
    assert p.stop == [replica(0).id]


@pytest.mark.parametrize("reason", ["Stopped", "Interrupted"])
def test_replica_ended_by_dockyard_is_not_a_crash(reason: str) -> None:
    ended = replica(1, phase="Failed", ready=False, finished_at=NOW, reason=reason)
    p = plan(spec(2), observed(replica(0), ended))
    assert [number for number, _ in p.start] == [1]
    assert p.reason != "CrashLoopBackOff"
