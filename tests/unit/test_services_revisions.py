"""``services.plan_revisions``: a Service on a runtime with revisions (Kubernetes): one
workload per model version and settings, scaled in place, rolled without a gap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control import services
from dockyard.control.plan import Run
from dockyard.control.services import ModelInfo, Observed, revision_of
from dockyard.spec import ServiceSpec

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
MODEL = ModelInfo("default", "digits", 3, "model.joblib", Path("/m/3"), "sk")


def spec(replicas: int = 2, **extra: Any) -> ServiceSpec:
    return ServiceSpec.model_validate({"model": "digits@latest", "replicas": replicas, **extra})


def revision(
    key: str,
    *,
    ready: int = 0,
    replicas: int = 2,
    phase: str = "Running",
    reason: str = "",
    ago: float | None = None,
    version: int = 3,
    n: int = 0,
) -> Run:
    details = {
        "revision": key,
        "version": version,
        "replicas": replicas,
        "readyReplicas": ready,
        "ready": ready > 0,
        "url": "http://digits.dockyard-default.svc:8080",
        "endpoints": [f"http://10.0.0.{i}:8080" for i in range(ready)],
    }
    finished = NOW - timedelta(seconds=ago) if ago is not None else None
    return Run(f"svc-{key}-{n}", n, 1, phase, None, reason, finished_at=finished, details=details)


def observed(key: str, *runs: Run, version: int = 3, **extra: Any) -> Observed:
    return Observed(
        generation=2,
        version=version,
        replicas=runs,
        now=NOW,
        model=extra.pop("model", MODEL),
        revisions=True,
        revision=key,
        name="digits",
        uid="0123abcd" * 4,
        **extra,
    )


def test_a_revision_is_one_workload_with_all_its_replicas() -> None:
    plan = services.plan(spec(3), observed("v3-aaaa"))
    [start] = plan.starts
    assert start.workload_id == "svc-digits-0123abcd-v3-aaaa-0"
    assert start.count == 3 and start.request.replicas == 3
    assert start.details == {"version": 3, "revision": "v3-aaaa", "replicas": 3}
    assert plan.status.phase == "Starting"


def test_more_replicas_scale_the_running_revision_in_place() -> None:
    running = revision("v3-aaaa", ready=1, replicas=1)
    plan = services.plan(spec(2), observed("v3-aaaa", running))
    assert plan.scales == [(running.id, 2)] and not plan.starts and not plan.stops
    # the replica that serves keeps serving meanwhile
    assert plan.status.ready_replicas == 1 and plan.status.url


def test_a_new_version_starts_beside_the_old_which_stops_only_once_it_is_ready() -> None:
    old = revision("v3-aaaa", ready=2)
    new = revision("v4-bbbb", ready=1, version=4)
    plan = services.plan(spec(2), observed("v4-bbbb", old, new, version=4))
    assert not plan.stops and not plan.starts  # both serve: the address answers throughout
    assert plan.status.ready_replicas == 3
    assert plan.status.model_version == "digits@3, digits@4"
    new = revision("v4-bbbb", ready=2, version=4)
    plan = services.plan(spec(2), observed("v4-bbbb", old, new, version=4))
    assert plan.stops == [old.id] and plan.status.phase == "Ready"


def test_a_crash_looping_revision_starts_again_after_a_backoff() -> None:
    failed = revision("v3-aaaa", phase="Failed", reason="CrashLoopBackOff", ago=0.5)
    plan = services.plan(spec(), observed("v3-aaaa", failed))
    assert not plan.starts and plan.status.reason == "CrashLoopBackOff"
    assert plan.recheck_at == NOW + timedelta(seconds=0.5)
    failed = revision("v3-aaaa", phase="Failed", reason="CrashLoopBackOff", ago=5)
    [start] = services.plan(spec(), observed("v3-aaaa", failed)).starts
    assert start.workload_id.endswith("-1")  # a new one: nothing is reused at 0/0


def test_the_replica_count_is_not_part_of_the_revision() -> None:
    one = revision_of(spec(1), 3, "env-hash")
    assert one == revision_of(spec(5), 3, "env-hash")
    assert one != revision_of(spec(1), 4, "env-hash")
    assert one != revision_of(spec(1, batching={"enabled": False}), 3, "env-hash")
    assert one.startswith("v3-")
