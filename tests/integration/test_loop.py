"""The control loop itself, in process: nothing slow runs on its thread, and a reconciler that
raises is reported on the resource, backed off, and logged once."""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dockyard.api.app import build_state
from dockyard.api.state import ServerState
from dockyard.control import volumes
from dockyard.control.context import now
from dockyard.control.volumes import VolumeReconciler
from dockyard.control.world import Snapshots
from dockyard.runtimes.base import WorkloadRequest, WorkloadState
from dockyard.runtimes.local import LocalRuntime
from dockyard.settings import Settings
from dockyard.spec.loader import validate_data
from dockyard.store import resources as repo
from dockyard.store.tables import ModelVersionRow, WorkloadRow
from tests import factories as f
from tests.conftest import wait_until

HANG = 30.0


class HangingRuntime(LocalRuntime):
    """An engine that stopped answering: every call blocks for 30 s (until released)."""

    name = "podman"

    def __init__(self, settings: Settings, release: threading.Event) -> None:
        super().__init__(settings)
        self.release = release
        self.calls = 0

    def _hang(self) -> None:
        self.calls += 1
        self.release.wait(HANG)

    def start(self, request: WorkloadRequest) -> WorkloadState:
        self._hang()
        return super().start(request)

    def observe(self, workload_id: str) -> WorkloadState:
        self._hang()
        return super().observe(workload_id)

    def stop(self, workload_id: str, grace: float) -> None:
        self._hang()
        super().stop(workload_id, grace)


@pytest.fixture
def loop(settings: Settings) -> Iterator[tuple[ServerState, HangingRuntime]]:
    release = threading.Event()
    state = build_state(settings)
    hanging = HangingRuntime(settings, release)
    state.ctx.factory = lambda _name: hanging
    state.controller.start()
    try:
        yield state, hanging
    finally:
        release.set()
        state.controller.stop(stop_workloads=True)
        state.ctx.store.close()


def apply(state: ServerState, *docs: dict[str, Any]) -> None:
    with state.ctx.store.session() as session:
        for doc in docs:
            repo.apply(session, validate_data(doc, source="test"))
    state.controller.wake()


def phase(state: ServerState, kind: str, name: str) -> str | None:
    with state.ctx.store.session() as session:
        row = repo.get(session, repo.Key(kind, "default", name))
        return None if row is None else row.status.get("phase")


def running(state: ServerState, prefix: str) -> bool:
    with state.ctx.store.session() as session:
        rows = session.query(WorkloadRow).filter(WorkloadRow.id.startswith(prefix)).all()
        return any(r.phase == "Running" for r in rows)


def test_a_hung_runtime_does_not_delay_an_unrelated_job(
    loop: tuple[ServerState, HangingRuntime], tmp_path: Path
) -> None:
    state, hanging = loop
    interval = state.ctx.settings.resync_seconds
    apply(state, f.job("stuck", f.python("print(1)"), runtime="podman"))
    wait_until(lambda: hanging.calls >= 1, message="the hung engine was called")
    marker = tmp_path / "ran"
    applied = time.monotonic()
    apply(state, f.job("free", f.python(f"open({str(marker)!r}, 'w').write('x')")))
    wait_until(lambda: running(state, "job-free-") or marker.exists(), timeout=HANG / 2)
    waited = time.monotonic() - applied
    assert waited <= interval + 0.5, f"the free job waited {waited:.2f}s behind a hung engine"
    wait_until(lambda: phase(state, "Job", "free") == "Succeeded", timeout=HANG / 2)
    assert phase(state, "Job", "stuck") == "Starting"  # admitted, still in the engine's hands
    assert not running(state, "job-stuck-")


def test_a_reconciler_that_raises_is_reported_backed_off_and_logged_once(
    loop: tuple[ServerState, HangingRuntime],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    state, _ = loop
    calls: list[float] = []

    def broken(self: VolumeReconciler, world: Any, row: Any, spec: Any) -> Any:
        calls.append(time.monotonic())
        raise RuntimeError("the disk is on fire")

    monkeypatch.setattr(VolumeReconciler, "observe", broken)
    caplog.set_level(logging.WARNING, logger="dockyard.control")
    apply(state, f.volume("hot"))
    wait_until(lambda: phase(state, "Volume", "hot") == "Failed", timeout=10)
    with state.ctx.store.session() as session:
        row = repo.get(session, repo.Key("Volume", "default", "hot"))
        assert row is not None
        status = row.status
    assert status["reason"] == "ReconcileError"
    assert "RuntimeError: the disk is on fire" in status["message"]
    assert status["observedGeneration"] == row.generation  # `apply --wait` stops on it
    assert status["conditions"][0]["status"] == "False"
    wait_until(lambda: len(calls) >= 4, timeout=20, message="retries")
    gaps = [b - a for a, b in itertools.pairwise(calls)]
    assert gaps[2] > gaps[0] * 1.5, f"retries do not back off: {gaps}"  # 1 s, 2 s, 4 s …
    tracebacks = [r for r in caplog.records if r.exc_info and "hot" in r.getMessage()]
    assert len(tracebacks) == 1  # one traceback per distinct error, not one per pass
    # the other kinds are reconciled as usual meanwhile
    apply(state, f.job("fine", f.python("print('ok')")))
    wait_until(lambda: phase(state, "Job", "fine") == "Succeeded", timeout=20)


def test_a_settled_resource_is_planned_again_when_its_plan_said(
    loop: tuple[ServerState, HangingRuntime], monkeypatch: pytest.MonkeyPatch
) -> None:
    state, _ = loop
    monkeypatch.setattr(volumes, "USAGE_EVERY", timedelta(seconds=0.5))
    apply(state, f.volume("v"))
    wait_until(lambda: phase(state, "Volume", "v") == "Ready")
    wait_until(lambda: status(state, "Volume", "v").get("files") == 0, message="measured")
    passes = state.controller.passes
    time.sleep(0.5)
    assert state.controller.passes > passes  # the loop keeps passing, planning nothing new
    (state.ctx.volumes.path("default", "v") / "new.txt").write_text("behind Dockyard's back")
    wait_until(lambda: status(state, "Volume", "v").get("files") == 1, timeout=5)


def status(state: ServerState, kind: str, name: str) -> dict[str, Any]:
    with state.ctx.store.session() as session:
        row = repo.get(session, repo.Key(kind, "default", name))
        return {} if row is None else dict(row.status)


def test_a_change_plans_what_changed_and_what_depends_on_it_not_everything(
    settings: Settings,
) -> None:
    state = build_state(settings)
    snapshots = Snapshots()

    def affected() -> set[str]:
        with state.ctx.store.session() as session:
            world = snapshots.load(session, now(), lambda _k: False, lambda _h: False)
        assert world.changes is not None
        by_uid = {r.uid: f"{r.kind}/{r.name}" for r in world.rows.values()}
        return {by_uid.get(u, u) for u in world.changes.affected}

    def touch(kind: str, name: str) -> None:
        with state.ctx.store.session() as session:
            row = repo.get(session, repo.Key(kind, "default", name))
            assert row is not None
            row.status = {**row.status, "message": f"touched {time.monotonic()}"}

    try:
        apply(
            state,
            f.environment("env"),
            f.volume("data"),
            f.dataset("digits", volume="data", prepare={"command": f.python("print(1)")}),
            f.job("reads", f.python("print(1)"), environment="env", datasets=[{"name": "digits"}]),
            *[f.job(f"alone-{i}", f.python("print(1)")) for i in range(20)],
            f.service("web", "digits@production"),
        )
        assert len(affected()) == 25  # the first read: everything is new
        assert affected() == set()  # nothing changed: nothing to plan
        touch("Job", "alone-3")
        assert affected() == {"Job/alone-3"}  # not the other 24
        touch("Volume", "data")  # what it holds, and who reads that, plan again
        assert affected() == {"Volume/data", "Dataset/digits", "Job/reads"}
        touch("Job", "reads")  # and what it names, one step: the volume may be released
        assert affected() == {"Job/reads", "Dataset/digits", "Environment/env"}
        with state.ctx.store.session() as session:
            session.add(
                ModelVersionRow(
                    project="default",
                    model="digits",
                    version=1,
                    flavor="sklearn",
                    path="models/digits/1",
                    files={},
                    source_key="test:1",
                )
            )
        assert affected() == {"Service/web"}  # a registry change: what serves that model
        apply(state, f.job("new", f.python("print(2)")))  # a new resource: the environments
        assert affected() == {"Job/new", "Environment/env"}
    finally:
        state.ctx.store.close()
