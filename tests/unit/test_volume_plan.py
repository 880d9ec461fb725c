"""The Volume plan's snapshots, schedules, restores and backups, and the retention rules:
pure, without I/O."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from dockyard.control import volumes
from dockyard.control.world import TaskView
from dockyard.data.retention import kept
from dockyard.spec import VolumeSpec
from dockyard.spec.status import Phase, VolumeStatus
from dockyard.spec.volumes import Retention

NOW = datetime(2026, 12, 1, 10, 30, tzinfo=UTC)
CREATED = datetime(2026, 12, 1, 9, 50, tzinfo=UTC)


def obs(**extra: Any) -> volumes.Observed:
    base: dict[str, Any] = {
        "generation": 1,
        "path": Path("/v/data"),
        "status": VolumeStatus(),
        "at": NOW,
        "created": CREATED,
    }
    return volumes.Observed(**{**base, **extra})


def spec(**fields: Any) -> VolumeSpec:
    return VolumeSpec.model_validate(fields)


def names(plan: Any) -> list[tuple[str, str]]:
    return [(t.name, t.token) for t in plan.tasks if t.name != "usage"]


def test_a_requested_snapshot_is_taken_once() -> None:
    p = volumes.plan(spec(), obs(control={"snapshot": 1}))
    assert names(p) == [("snapshot", "r1")]
    running = TaskView("snapshot", "r1", "running", progress="read 40% of 10 B")
    p = volumes.plan(spec(), obs(control={"snapshot": 1}, snapshot=running))
    assert names(p) == [] and "40%" in p.status.message
    result = {"id": "s1", "created": NOW.isoformat(), "files": 2, "bytes": 9, "count": 1}
    done = TaskView("snapshot", "r1", "succeeded", result=result)
    p = volumes.plan(spec(), obs(control={"snapshot": 1}, snapshot=done))
    assert names(p) == []
    assert p.status.last_snapshot == "s1" and p.status.snapshot_request == 1
    assert p.status.snapshots == 1 and p.status.used_bytes == 9
    assert [e.reason for e in p.events] == ["Snapshot"]


def test_a_schedule_takes_the_latest_tick_only_and_rechecks_at_the_next() -> None:
    hourly = spec(snapshots={"schedule": "0 * * * *"})
    p = volumes.plan(hourly, obs())
    assert names(p) == [("snapshot", "c2026-12-01T10:00:00+00:00")]
    assert p.recheck_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    status = VolumeStatus(scheduled_at=datetime(2026, 12, 1, 10, 0, tzinfo=UTC))
    p = volumes.plan(hourly, obs(status=status))
    assert names(p) == [] and p.recheck_at == datetime(2026, 12, 1, 11, 0, tzinfo=UTC)
    # created after the last tick: nothing until the next one
    p = volumes.plan(hourly, obs(created=datetime(2026, 12, 1, 10, 5, tzinfo=UTC)))
    assert names(p) == []


def test_a_failed_snapshot_waits_for_its_backoff() -> None:
    failed = TaskView("snapshot", "r1", "failed", error="disk full", finished_at=NOW, attempts=3)
    p = volumes.plan(spec(), obs(control={"snapshot": 1}, snapshot=failed))
    assert names(p) == [] and "disk full" in p.status.message
    assert p.recheck_at is not None and p.recheck_at > NOW
    later = obs(control={"snapshot": 1}, snapshot=failed, at=NOW + timedelta(hours=1))
    assert names(volumes.plan(spec(), later)) == [("snapshot", "r1")]


def test_every_new_snapshot_is_backed_up() -> None:
    backed = spec(backup={"target": "s3://bucket/team"})
    status = VolumeStatus(last_snapshot="s2", last_backup="s1")
    p = volumes.plan(backed, obs(status=status))
    assert names(p) == [("backup", "bs2")]
    done = TaskView("backup", "bs2", "succeeded", finished_at=NOW)
    p = volumes.plan(backed, obs(status=status, backup=done))
    assert names(p) == [] and p.status.last_backup == "s2"
    assert p.status.backup_target == "s3://bucket/team"
    assert not names(volumes.plan(spec(), obs(status=status)))  # no target: no backup


def test_an_in_place_restore_waits_until_nothing_mounts_the_volume() -> None:
    control = {"restore": {"n": 1, "snapshot": "s1"}}
    p = volumes.plan(spec(), obs(control=control, in_use=True))
    assert names(p) == [] and "waits" in p.status.message
    p = volumes.plan(spec(), obs(control=control))
    assert names(p) == [("restore", "i1@s1")]
    done = TaskView("restore", "i1@s1", "succeeded")
    p = volumes.plan(spec(), obs(control=control, restore=done))
    assert names(p) == [] and p.status.restore_request == 1


def test_a_new_volume_from_a_snapshot_is_pending_until_restored() -> None:
    source = spec(source={"volume": "old", "snapshot": "20261201-100000-abcdef"})
    p = volumes.plan(source, obs())
    assert p.status.phase == Phase.PENDING and names(p) == [
        ("restore", "sold@20261201-100000-abcdef")
    ]
    failed = TaskView("restore", "sold@20261201-100000-abcdef", "failed", error="chunk damaged")
    p = volumes.plan(source, obs(restore=failed))
    assert p.status.phase == Phase.FAILED and "chunk damaged" in p.status.message
    done = TaskView("restore", "sold@20261201-100000-abcdef", "succeeded")
    p = volumes.plan(source, obs(restore=done))
    assert p.status.phase == Phase.READY and p.status.restored_from == "20261201-100000-abcdef"


def test_the_data_stays_in_the_tier_it_was_created_in() -> None:
    p = volumes.plan(spec(tier="archive"), obs(status=VolumeStatus(tier="fast")))
    assert p.status.tier == "fast" and "stays in tier 'fast'" in p.status.message


def test_retention_keeps_the_newest_of_each_period() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    snaps = [(f"s{i:03}", start + timedelta(hours=6 * i)) for i in range(120)]  # 30 days
    keep = kept(snaps, Retention(daily=7, weekly=4, monthly=2, last=1))
    days = {created.date() for sid, created in snaps if sid in keep}
    assert "s119" in keep  # the newest
    newest_days = sorted({c.date() for _, c in snaps})[-7:]
    assert set(newest_days) <= days
    assert len(keep) <= 1 + 7 + 4 + 2
    assert kept(snaps, Retention(last=3)) == {"s117", "s118", "s119"}
    hourly = kept(snaps, Retention(hourly=5, last=1))
    assert hourly == {"s119", "s118", "s117", "s116", "s115"}
