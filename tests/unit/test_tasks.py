"""Failed background work waits before it runs again: 1, 2, 4 … 60 s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from dockyard.control.tasks import MAX_RETRY, retry_after
from dockyard.control.world import TaskView

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def test_retries_back_off_exponentially_to_a_cap() -> None:
    assert [retry_after(n) for n in range(1, 6)] == [1.0, 2.0, 4.0, 8.0, 16.0]
    assert retry_after(50) == MAX_RETRY


def test_only_a_failed_task_waits() -> None:
    failed = TaskView("stop", "w", "failed", finished_at=NOW, attempts=3)
    assert failed.retry_at() == NOW + timedelta(seconds=4)
    assert TaskView("stop", "w", "running", attempts=3).retry_at() is None
    assert TaskView("stop", "w", "succeeded", finished_at=NOW).retry_at() is None
