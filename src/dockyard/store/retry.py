"""The one retry policy for writes that lost a race (a stale generation, a taken key)."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from dockyard.errors import StaleWrite

CONFLICTS = (StaleWrite, IntegrityError)


def on_conflict(attempts: int = 5) -> Retrying:
    """Run again (read again, write again) while another writer won the race."""
    return Retrying(
        retry=retry_if_exception_type(CONFLICTS),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.01, max=0.2),
        reraise=True,
    )
