"""The plans of Volumes, Environments, Datasets and Models: pure, tested without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from dockyard.control import datasets, environments, models, volumes
from dockyard.control.plan import FreshDir, Run, UnpackCode
from dockyard.control.workloads import Inputs
from dockyard.control.world import ModelSummary, TaskView
from dockyard.spec import DatasetSpec, EnvironmentSpec, ModelSpec, VolumeSpec
from dockyard.spec.status import DatasetStatus, EnvironmentStatus, PreparedInfo, VolumeStatus

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


# -- volumes ---------------------------------------------------------------------------------
def volume(**extra: Any) -> volumes.Observed:
    base: dict[str, Any] = {"generation": 1, "path": Path("/v/data"), "status": VolumeStatus()}
    return volumes.Observed(**{**base, "at": NOW, **extra})


def test_a_volume_is_ready_and_measures_its_usage_in_the_background() -> None:
    p = volumes.plan(VolumeSpec(), volume())
    assert (p.status.phase, p.status.path) == ("Ready", "/v/data")
    assert [(t.name, t.token) for t in p.tasks] == [("usage", "g1")]


def test_a_measured_volume_reports_its_usage_and_rests() -> None:
    done = TaskView("usage", "g1", "succeeded", {"files": 3, "bytes": 42}, finished_at=NOW)
    p = volumes.plan(VolumeSpec(), volume(usage=done))
    assert (p.status.files, p.status.used_bytes) == (3, 42)
    assert p.tasks == []
    assert p.recheck_at == NOW + volumes.USAGE_EVERY  # planned again then, not every pass
    later = volume(usage=done, at=NOW + volumes.USAGE_EVERY + timedelta(seconds=1))
    assert [t.name for t in volumes.plan(VolumeSpec(), later).tasks] == ["usage"]


def test_a_volume_is_measured_again_when_a_workload_that_used_it_ended() -> None:
    done = TaskView("usage", "g1", "succeeded", {"files": 3, "bytes": 42}, finished_at=NOW)
    status = VolumeStatus(usage_at=NOW)
    later = NOW + timedelta(seconds=5)
    p = volumes.plan(VolumeSpec(), volume(usage=done, status=status, at=later))
    assert p.tasks == [] and p.recheck_at == NOW + volumes.USAGE_EVERY  # idle: once an hour
    p = volumes.plan(VolumeSpec(), volume(usage=done, status=status, at=later, used_until=later))
    assert [t.name for t in p.tasks] == ["usage"]  # a job wrote to it and ended
    p = volumes.plan(VolumeSpec(), volume(usage=done, status=status, at=later, in_use=True))
    assert p.tasks == [] and p.recheck_at == NOW + volumes.WHILE_USED  # while one runs


def test_a_measurement_in_flight_is_not_asked_for_again() -> None:
    p = volumes.plan(VolumeSpec(), volume(usage=TaskView("usage", "g1", "running")))
    assert p.tasks == []


@pytest.mark.parametrize(("purge", "paths"), [(True, ((Path("/v"), "data"),)), (False, ())])
def test_deleting_a_volume_purges_only_when_asked(
    purge: bool, paths: tuple[tuple[Path, str], ...]
) -> None:
    p = volumes.plan(VolumeSpec(), volume(deleting=True, purge=purge))
    assert p.delete is not None and p.delete.purge == paths
    assert p.status.phase == "Terminating"


# -- environments ----------------------------------------------------------------------------
SPEC = EnvironmentSpec(packages=["scikit-learn==1.5.2"])
BUILT = {"hash": "h1", "location": "/envs/h1", "python": "/envs/h1/bin/python"}


def env(**extra: Any) -> environments.Observed:
    base: dict[str, Any] = {
        "generation": 2,
        "status": EnvironmentStatus(),
        "runtimes": ("local",),
        "at": NOW,
    }
    return environments.Observed(**{**base, **extra})


def build(state: str, runtime: str = "local", **extra: Any) -> TaskView:
    return TaskView(f"build-{runtime}", "g2", state, **extra)


def test_an_environment_is_built_for_every_runtime_that_needs_it() -> None:
    p = environments.plan(SPEC, env(runtimes=("local", "podman")))
    assert sorted(t.name for t in p.tasks) == ["build-local", "build-podman"]
    assert {t.lane for t in p.tasks} == {"runtime-local", "runtime-podman"}
    assert (p.status.phase, p.status.reason) == ("Building", "Building")


def test_a_running_build_shows_its_progress() -> None:
    p = environments.plan(SPEC, env(builds={"local": build("running", progress="pip: 3/9")}))
    assert p.tasks == []
    assert p.status.message == "local: pip: 3/9"


def test_a_build_that_succeeded_makes_it_ready() -> None:
    done = build("succeeded", result={**BUILT, "seconds": 12.5, "built": True}, finished_at=NOW)
    p = environments.plan(SPEC, env(builds={"local": done}))
    assert (p.status.phase, p.status.hash) == ("Ready", "h1")
    assert p.status.message == "1 package(s); local built in 12.5s"
    assert p.tasks == []
    assert p.recheck_at == NOW + environments.RECHECK


def test_a_ready_environment_is_checked_again_without_flapping() -> None:
    old = NOW - environments.RECHECK - timedelta(seconds=1)
    done = build("succeeded", result={**BUILT, "seconds": 9, "built": True}, finished_at=old)
    p = environments.plan(SPEC, env(builds={"local": done}))
    assert [t.name for t in p.tasks] == ["build-local"]
    prepared = {"local": PreparedInfo.model_validate({**BUILT, "seconds": 9, "built": True})}
    status = EnvironmentStatus(observed_generation=2, prepared=prepared)
    p = environments.plan(SPEC, env(status=status, builds={"local": build("running")}))
    assert p.status.phase == "Ready"  # the recheck runs; it stays ready meanwhile
    recheck = build("succeeded", result={**BUILT, "built": False}, finished_at=NOW)
    p = environments.plan(SPEC, env(status=status, builds={"local": recheck}))
    assert p.status.message.endswith("local built in 9s")  # the recheck keeps how it was built


def test_a_failed_build_waits_for_a_new_generation() -> None:
    p = environments.plan(SPEC, env(builds={"local": build("failed", error="no such package")}))
    assert (p.status.phase, p.status.reason) == ("Failed", "BuildFailed")
    assert p.status.message == "local: no such package"
    assert p.tasks == []
    older = TaskView("build-local", "g1", "failed", error="old")
    assert [t.token for t in environments.plan(SPEC, env(builds={"local": older})).tasks] == ["g2"]


def test_a_build_whose_builder_died_runs_again() -> None:
    p = environments.plan(SPEC, env(builds={"local": build("lost")}))
    assert [t.name for t in p.tasks] == ["build-local"]


def test_a_runtime_that_is_not_installed_fails_the_environment_for_it() -> None:
    p = environments.plan(
        SPEC, env(runtimes=("local", "podman"), unavailable={"podman": "Podman not found"})
    )
    assert p.status.phase == "Failed"
    assert p.status.failed == {"podman": "Podman not found"}
    assert [t.name for t in p.tasks] == ["build-local"]


# -- datasets --------------------------------------------------------------------------------
SOURCE = DatasetSpec(volume="data", source="https://example.com/d.csv")
PREPARE = DatasetSpec(volume="data", prepare={"command": ["python", "prep.py"], "code": "sha256:1"})


def ds(**extra: Any) -> datasets.Observed:
    base: dict[str, Any] = {
        "generation": 3,
        "name": "digits",
        "workload_prefix": "prepare-digits-abcd1234",
        "project": "default",
        "status": DatasetStatus(),
        "target": (Path("/v/data"), "digits"),
        "staging": (Path("/v/data"), ".digits.prepare-g3"),
    }
    return datasets.Observed(**{**base, **extra})


def commit(state: str, **extra: Any) -> TaskView:
    return TaskView("commit", "g3", state, **extra)


def test_a_source_is_fetched_by_a_commit_task() -> None:
    p = datasets.plan(SOURCE, ds())
    assert [(t.name, t.token, t.args) for t in p.tasks] == [
        ("commit", "g3", {"fetch": "https://example.com/d.csv", "tier": "standard"})
    ]
    assert (p.status.phase, p.status.message) == ("Fetching", "fetching https://example.com/d.csv")


def test_a_committed_dataset_is_ready_with_its_checksum() -> None:
    result = {"sha256": "ab" * 32, "files": 2, "bytes": 10, "manifest": "/m.json"}
    p = datasets.plan(SOURCE, ds(commit=commit("succeeded", result=result)))
    assert (p.status.phase, p.status.sha256, p.status.files) == ("Ready", "ab" * 32, 2)
    assert p.status.path == "/v/data/digits"
    assert p.tasks == [] and p.starts == []


def test_a_failed_commit_names_its_reason() -> None:
    failed = commit("failed", error="checksum differs", result={"reason": "ChecksumMismatch"})
    p = datasets.plan(SOURCE, ds(commit=failed))
    assert (p.status.phase, p.status.reason) == ("Failed", "ChecksumMismatch")


def test_a_missing_volume_waits() -> None:
    p = datasets.plan(SOURCE, ds(volume_ready=False))
    assert (p.status.phase, p.status.message) == ("Pending", "volume 'data' not found: apply it")
    assert p.tasks == []


def test_a_preparation_starts_into_a_fresh_staging_directory() -> None:
    steps = (UnpackCode("sha256:1"),)
    p = datasets.plan(PREPARE, ds(inputs=Inputs(steps=steps)))
    (start,) = p.starts
    assert start.workload_id == "prepare-digits-abcd1234-g3-r1"
    assert start.steps == (FreshDir((Path("/v/data"), ".digits.prepare-g3")), *steps)
    assert start.request.output_dir == Path("/v/data/.digits.prepare-g3")
    assert start.request.env["DOCKYARD_DATASET"] == "digits"
    assert start.running is not None and start.running.phase == "Preparing"


def test_a_preparation_waits_for_its_inputs() -> None:
    p = datasets.plan(PREPARE, ds(inputs=Inputs(blocked="waiting for environment 'x'")))
    assert (p.status.phase, p.starts) == ("Pending", [])


def run(number: int, phase: str, **extra: Any) -> Run:
    return Run(f"r{number}", number, 3, phase, **extra)


def test_a_succeeded_preparation_is_committed() -> None:
    p = datasets.plan(PREPARE, ds(runs=(run(1, "Succeeded"),)))
    assert [(t.name, t.args) for t in p.tasks] == [("commit", {"tier": "standard"})]
    assert p.status.phase == "Checksumming"


def test_a_failed_preparation_fails_with_its_output() -> None:
    failed = run(1, "Failed", reason="Error", message="exit code 2", details={"logTail": "boom"})
    p = datasets.plan(PREPARE, ds(runs=(failed,)))
    assert (p.status.phase, p.status.reason) == ("Failed", "Error")
    assert p.status.message == "the prepare command failed: exit code 2: boom"


def test_an_interrupted_preparation_runs_again() -> None:
    interrupted = run(1, "Failed", reason="Interrupted")
    p = datasets.plan(PREPARE, ds(runs=(interrupted,), inputs=Inputs()))
    assert [s.number for s in p.starts] == [2]


def test_old_preparations_are_stopped_and_a_deleted_dataset_waits_for_its_fetch() -> None:
    p = datasets.plan(SOURCE, ds(stale=("old",), commit=commit("running")))
    assert p.stops == ["old"]
    p = datasets.plan(SOURCE, ds(deleting=True, purge=True, commit=commit("running")))
    assert p.delete is None
    p = datasets.plan(SOURCE, ds(deleting=True, purge=True))
    assert p.delete is not None and p.delete.purge == ((Path("/v/data"), "digits"),)


# -- models ----------------------------------------------------------------------------------
def test_a_model_summarizes_the_registry() -> None:
    summary = ModelSummary(frozenset({1, 2}), 2, {"latest": 2, "production": 1}, {"acc": 0.9})
    p = models.plan(ModelSpec(), models.Observed(4, summary))
    s = p.status
    assert (s.phase, s.versions, s.latest, s.metrics) == ("Ready", 2, 2, {"acc": 0.9})
    assert s.aliases == {"latest": 2, "production": 1}
    empty = models.plan(ModelSpec(), models.Observed(4, None)).status
    assert (empty.phase, empty.reason) == ("Pending", "NoVersion")
    deleting = models.plan(ModelSpec(), models.Observed(4, summary, deleting=True))
    assert deleting.delete is not None and deleting.delete.registry_model
