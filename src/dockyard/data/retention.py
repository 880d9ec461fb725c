"""Which snapshots a retention keeps: restic's ``forget --keep-*`` rules, pure.

Going from the newest snapshot to the oldest, a snapshot is kept when it is among the
``last`` newest, or the first one seen of an hour (day, ISO week, month) while fewer than
``hourly`` (``daily``, ``weekly``, ``monthly``) such periods have a snapshot kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from dockyard.spec.volumes import Retention

PERIODS: dict[str, Callable[[datetime], tuple[int, ...]]] = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: (t.year, t.month, t.day),
    "weekly": lambda t: tuple(t.isocalendar()[:2]),
    "monthly": lambda t: (t.year, t.month),
}


def kept(snapshots: Sequence[tuple[str, datetime]], policy: Retention) -> set[str]:
    """The ids of ``snapshots`` (id, created) that ``policy`` keeps."""
    newest_first = sorted(snapshots, key=lambda s: (s[1], s[0]), reverse=True)
    keep = {sid for sid, _ in newest_first[: policy.last]}
    for period, bucket in PERIODS.items():
        limit: int = getattr(policy, period)
        seen: set[tuple[int, ...]] = set()
        for sid, created in newest_first:
            if len(seen) >= limit:
                break
            key = bucket(created)
            if key not in seen:
                seen.add(key)
                keep.add(sid)
    return keep
