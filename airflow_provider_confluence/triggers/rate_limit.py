"""``ConfluenceRateLimitTrigger``: wait in the triggerer until Atlassian's rate limit lets the app in again.

A deferrable operator whose call was refused with a long ``Retry-After`` (an exhausted hourly points quota:
https://developer.atlassian.com/cloud/confluence/rate-limiting/) defers to this trigger until ``retry_at`` and
resumes where it stopped, holding no worker slot meanwhile.

Why not Airflow's ``DateTimeTrigger``: its module moved between Airflow lines (``airflow.triggers.temporal``,
then the standard provider), and its event carries only the moment. This one echoes the operator's ``resume``
state in its event: ``dag.test()`` on Airflow 3 hands the resumed task the event alone, not the deferral's own
keyword arguments. It sends no request and reads no connection.

The event: ``{"status": "resume", "retry_at": <epoch seconds>, "resume": {...}}``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


def _now() -> float:
    """The clock (looked up at call time, so that tests can put the emulator's clock here)."""
    return time.time()


def _sleep(seconds: float) -> Awaitable[None]:
    """How the trigger waits (looked up at call time, so that tests can move a fake clock instead)."""
    return asyncio.sleep(seconds)


#: The longest single sleep: the trigger wakes at least this often to look at the clock again.
MAX_NAP = 300.0


class ConfluenceRateLimitTrigger(BaseTrigger):
    """Sleep until ``retry_at``, then hand the operator its ``resume`` state back.

    :param retry_at: when the rate limit ends, in epoch seconds.
    :param reason: the quota's ``X-Beta-RateLimit-Reason``, for the log.
    :param resume: what the operator had done (JSON only: a cursor, results so far, a page id; never a token).
    """

    def __init__(self, *, retry_at: float, reason: str | None = None, resume: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.retry_at = float(retry_at)
        self.reason = reason
        self.resume = dict(resume or {})

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the JSON-able arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"retry_at": self.retry_at, "reason": self.reason, "resume": self.resume},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep (in naps of at most :data:`MAX_NAP` seconds) until ``retry_at``; yield one event."""
        left = self.retry_at - _now()
        self.log.info("Waiting %.0f s for Atlassian's rate limit to reset (%s).", max(left, 0.0), self.reason or "429")
        while left > 0:
            await _sleep(min(left, MAX_NAP))
            left = self.retry_at - _now()
        yield TriggerEvent({"status": "resume", "retry_at": self.retry_at, "resume": self.resume})
