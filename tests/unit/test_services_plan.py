"""``services.plan``: replicas to start and stop for the resolved model version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockyard.control import services
from dockyard.control.plan import Materialize, Plan, Run
from dockyard.control.services import MAX_BACKOFF, ModelInfo, Observed, backoff
from dockyard.control.world import TaskView
from dockyard.spec import ServiceSpec

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
GEN = 2
VERSION = 7
MODEL = ModelInfo("default", "digits", VERSION, "model.joblib", Path("/m/7"), "sk")


def spec(replicas: int = 2, **extra: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"model": "digits@latest", "replicas": replicas, **extra})


def replica(
    number: int,
    phase: str = "Running",
    ready: bool = True,
    generation: int = GEN,
    version: int = VERSION,
    tag: str = "",
    finished_at: datetime | None = None,
    reason: str = "",
    message: str = "",
    port: int | None = None,
) -> Run:
    rid = f"g{generation}-v{version}-r{number}{tag}"
    details: dict[str, Any] = {"version": version, "ready": ready}
    if port is not None:
        details["port"] = port
    return Run(
        rid, number, generation, phase, None, reason, message,
        finished_at=finished_at, details=details,
    )  # fmt: skip


def crashed(number: int, ago: float, tag: str = "", **extra: Any) -> Run:
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


def observed(*replicas: Run, **extra: Any) -> Observed:
    return Observed(
        generation=extra.pop("generation", GEN),
        version=extra.pop("version", VERSION),
        replicas=replicas,
        now=NOW,
        model=extra.pop("model", MODEL),
        **extra,
    )


@dataclass
class View:
    """The plan as these tests read it: (replica number, restarts) to start, ids to stop."""

    phase: str
    reason: str
    message: str
    start: list[tuple[int, int]]
    stop: list[str]
    recheck_at: datetime | None
    plan: Plan


def plan(service: ServiceSpec, obs: Observed) -> View:
    p = services.plan(service, obs)
    starts = [(s.number, int(s.workload_id.rsplit("-", 1)[1])) for s in p.starts]
    return View(p.status.phase, p.status.reason, p.status.message, starts, p.stops, p.recheck_at, p)


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


def test_a_replica_start_names_the_model_and_asks_for_a_port() -> None:
    p = plan(spec(1), observed())
    start = p.plan.starts[0]
    assert start.workload_id.endswith("-g2-v7-r0-0")
    assert (start.role, start.port, start.details) == ("replica", 0, {"version": VERSION})
    assert start.steps == (Materialize("default", "digits", VERSION),)
    command = start.request.command
    assert command[command.index("--model") + 1] == "digits:7=/m/7/model.joblib"
    assert "--port" not in command  # the port is assigned at admission: $DOCKYARD_SERVE_PORT
    assert start.request.gpus == ()


def test_a_gpu_replica_needs_its_gpu() -> None:
    start = plan(spec(1, resources={"gpu": 1, "cpu": 1}), observed()).plan.starts[0]
    assert (start.need.gpu, start.need.cpu) == (1, 1.0)


def test_a_fixed_port_moves_from_the_old_replica_first() -> None:
    old = replica(0, version=VERSION - 1, tag="-old", port=9000)
    p = plan(spec(1, port=9000), observed(old))
    assert p.start == []  # not while the old one holds the port
    assert p.stop == [old.id]
    p = plan(spec(1, port=9000), observed(replica(0, version=VERSION - 1, phase="Failed",
                                                  reason="Stopped", port=9000)))  # fmt: skip
    assert p.start == [(0, 0)]
    assert p.plan.starts[0].port == 9000


def test_a_replica_that_could_not_start_says_why() -> None:
    taken = crashed(0, ago=0.1)
    taken = Run(**{**taken.__dict__, "reason": "PortInUse", "message": "port 80 is in use"})
    p = plan(spec(1), observed(taken))
    assert (p.phase, p.reason, p.message) == ("Pending", "PortInUse", "port 80 is in use")


def test_an_environment_not_ready_holds_the_start() -> None:
    p = plan(spec(1), observed(environment_blocked="waiting for environment 'sk' (Building)"))
    assert p.start == []
    assert (p.phase, p.reason) == ("Pending", "Waiting")
    assert "Building" in p.message


def image(state: str, **extra: Any) -> TaskView:
    return TaskView("image", f"v{VERSION}:default", state, **extra)


@pytest.mark.parametrize(
    ("task", "starts", "asks"),
    [
        (None, False, True),
        (image("running", progress="step 2/5"), False, False),
        (image("lost"), False, True),
        (image("failed", error="no space", finished_at=NOW), False, False),
        (image("failed", error="no space", finished_at=NOW - timedelta(seconds=31)), False, True),
        (
            image("succeeded", result={"hash": "h", "location": "img:1", "python": "python"}),
            True,
            False,
        ),
    ],
)
def test_containers_serve_from_a_serving_image_built_as_a_task(
    task: TaskView | None, starts: bool, asks: bool
) -> None:
    p = plan(spec(1), observed(containers=True, image=task))
    assert bool(p.start) is starts
    assert any(t.name == "image" for t in p.plan.tasks) is asks
    if starts:
        request = p.plan.starts[0].request
        assert request.environment is not None and request.environment.location == "img:1"
        assert request.command[:3] == ["python", "-m", "dockyard.serving"]
        assert p.plan.starts[0].steps == ()  # the image holds the model
    else:
        assert p.phase == "Pending"
    if task is not None and task.state == "running":
        assert "step 2/5" in p.message


def test_a_deleted_service_is_finalized_once_nothing_runs() -> None:
    p = plan(spec(1), observed(crashed(0, ago=9), deleting=True))
    assert p.stop == [] and p.plan.delete is not None
