"""Fenced writes: the loop writes a status only over the one it read, and only while its
replica holds the leader lease. Two control planes on one store, in process, with the lease
moved to the other in the middle of a pass: no write of the old leader lands."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dockyard.api.app import build_state
from dockyard.api.state import ServerState
from dockyard.control.plan import Plan
from dockyard.settings import Settings
from dockyard.spec.loader import validate_data
from dockyard.store import leases
from dockyard.store import resources as repo
from dockyard.store import workloads as workloads_repo
from dockyard.store.tables import EventRow
from tests import factories as f


@pytest.fixture
def replicas(settings: Settings) -> Iterator[tuple[ServerState, ServerState]]:
    first, second = build_state(settings), build_state(settings)
    yield first, second
    for state in (first, second):
        state.ctx.store.close()


def lead(state: ServerState) -> None:
    """``state`` takes the controller lease (as an election would, once the TTL passed)."""
    with state.ctx.store.session() as session:
        row = leases.read(session, leases.CONTROLLER)
        version = row.version if row is not None else None
        assert leases.swap(session, leases.CONTROLLER, state.ctx.holder, 60, version, True)


def apply(state: ServerState, *docs: dict[str, Any]) -> None:
    with state.ctx.store.session() as session:
        for doc in docs:
            repo.apply(session, validate_data(doc, source="test"))


def job_status(state: ServerState) -> dict[str, Any]:
    with state.ctx.store.session() as session:
        row = repo.require(session, repo.Key("Job", "default", "fenced"))
        return dict(row.status)


def events(state: ServerState) -> int:
    with state.ctx.store.session() as session:
        return session.query(EventRow).count()


def test_no_write_of_a_leader_that_lost_its_lease_mid_pass_lands(
    replicas: tuple[ServerState, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    old, new = replicas
    lead(old)
    apply(old, f.job("fenced", f.python("print(1)")))
    reconciler = old.controller.reconcilers["Job"]
    plan = reconciler.plan

    def flip_then_plan(spec: Any, obs: Any) -> Plan:
        lead(new)  # the lease moves while the old leader plans
        result: Plan = plan(spec, obs)
        return result

    monkeypatch.setattr(reconciler, "plan", flip_then_plan)
    before = events(old)
    old.controller.run_once()
    assert job_status(old) == {}  # no status, no workload row, no event of the old leader
    with old.ctx.store.session() as session:
        assert not workloads_repo.active(session)
    assert events(old) == before
    monkeypatch.setattr(reconciler, "plan", plan)
    new.controller.run_once()  # the new leader's pass writes
    assert job_status(new).get("phase") in ("Pending", "Starting", "Running"), job_status(new)


def test_a_status_written_since_the_pass_read_it_is_planned_again_not_overwritten(
    replicas: tuple[ServerState, ServerState], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _other = replicas
    lead(state)
    apply(state, f.job("fenced", f.python("print(1)")))
    reconciler = state.controller.reconcilers["Job"]
    plan = reconciler.plan
    theirs = {"phase": "Pending", "reason": "SomeoneElse", "message": "written meanwhile"}

    def written_meanwhile(spec: Any, obs: Any) -> Plan:
        with state.ctx.store.session() as session:
            row = repo.require(session, repo.Key("Job", "default", "fenced"))
            repo.set_status(session, row.uid, theirs, row.status_version)
        result: Plan = plan(spec, obs)
        return result

    monkeypatch.setattr(reconciler, "plan", written_meanwhile)
    state.controller.run_once()
    assert job_status(state) == theirs  # the pass lost the race: it did not overwrite
    monkeypatch.setattr(reconciler, "plan", plan)
    state.controller.run_once()  # planned again, over what is there now
    assert job_status(state).get("reason") != "SomeoneElse"
