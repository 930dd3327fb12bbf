"""``ConfluenceRateLimitTrigger``: wait in the triggerer until Atlassian's rate limit lets the app in again.

A deferrable operator whose call was refused with a long ``Retry-After`` (an exhausted hourly points quota:
https://developer.atlassian.com/cloud/confluence/rate-limiting/) defers to this trigger until ``retry_at`` and
resumes where it stopped, holding no worker slot meanwhile.

Why not Airflow's ``DateTimeTrigger``: its module moved between Airflow lines (``airflow.triggers.temporal``,
then the standard provider), and its event carries only the moment. This one echoes the operator's ``resume``
state in its event: ``dag.test()`` on Airflow 3 hands the resumed task the event alone, not the deferral's own
keyword arguments. It sends no request and reads no connection.

It waits at least :data:`MIN_WAIT` and at most :data:`MAX_WAIT` (:func:`wake_at`): a ``retry_at`` in the past (the
clocks of Atlassian, the worker and the triggerer out of step, or a triggerer that was down past it) never makes an
operator and its trigger spin, and a ``retry_at`` that is not a number (a hand-edited or foreign trigger row) is
waited out as the minimum, with a warning, rather than failing the task and losing its ``resume`` state.

The event: ``{"status": "resume", "retry_at": <epoch seconds it woke at>, "resume": {...}}``, plus ``"note"``
(what was wrong with ``retry_at``) when it was moved.
"""

from __future__ import annotations

import asyncio
import math
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
#: The shortest wait, in seconds: a ``retry_at`` in the past (clocks out of step) is waited out this long.
MIN_WAIT = 30.0
#: The longest wait, in seconds (Atlassian's hourly window, with a margin): a later ``retry_at`` is not believed;
#: the operator then tries again, and a call still refused defers again with Atlassian's new ``Retry-After``.
MAX_WAIT = 7200.0


def wake_at(retry_at: Any, now: float) -> tuple[float, str | None]:
    """When to wake for ``retry_at``: that moment, kept between :data:`MIN_WAIT` and :data:`MAX_WAIT` from ``now``;
    and, when it was moved for being malformed, past or too far, why (for a warning), else None.

    :param retry_at: epoch seconds (anything else is malformed).
    :param now: the clock, in epoch seconds.
    """
    try:
        value = float(retry_at)
    except (TypeError, ValueError, OverflowError):
        value = math.nan
    minimum = f"waiting the minimum of {MIN_WAIT:.0f} s instead, then trying again"
    if isinstance(retry_at, bool) or not math.isfinite(value):
        return now + MIN_WAIT, f"retry_at={str(retry_at)[:40]!r} is not a moment in epoch seconds; {minimum}"
    if value < now:
        return now + MIN_WAIT, (
            f"retry_at {_iso(value)} is {now - value:.0f} s in the past (clocks out of step, or the triggerer was "
            f"down past it); {minimum}"
        )
    if value > now + MAX_WAIT:
        return now + MAX_WAIT, (
            f"retry_at {_iso(value)} is more than {MAX_WAIT / 3600:.0f} hours away, longer than Atlassian's hourly "
            f"window (a clock out of step?); waiting {MAX_WAIT / 3600:.0f} hours instead, then trying again"
        )
    return max(value, now + MIN_WAIT), None


def _iso(epoch: float) -> str:
    from datetime import UTC, datetime

    try:
        return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="seconds")
    except (OverflowError, OSError, ValueError):
        return f"{epoch:.0f}"


class ConfluenceRateLimitTrigger(BaseTrigger):
    """Sleep until ``retry_at``, then hand the operator its ``resume`` state back.

    :param retry_at: when the rate limit ends, in epoch seconds (see :func:`wake_at` for one that is malformed or
        in the past).
    :param reason: the quota's ``X-Beta-RateLimit-Reason``, for the log.
    :param resume: what the operator had done (JSON only: a cursor, results so far, a page id; never a token).
    """

    def __init__(self, *, retry_at: float, reason: str | None = None, resume: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.retry_at = retry_at  # kept as given (checked in run: a malformed row must still serialize back)
        self.reason = reason
        self.resume = dict(resume) if isinstance(resume, dict) else {}

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """The class path and the JSON-able arguments."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {"retry_at": self.retry_at, "reason": self.reason, "resume": self.resume},
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Sleep (in naps of at most :data:`MAX_NAP` seconds) until :func:`wake_at`; yield one event."""
        wake, note = wake_at(self.retry_at, _now())
        if note:
            self.log.warning("Atlassian's rate limit: %s.", note)
        left = wake - _now()
        self.log.info("Waiting %.0f s for Atlassian's rate limit to reset (%s).", max(left, 0.0), self.reason or "429")
        while left > 0:
            await _sleep(min(left, MAX_NAP))
            left = wake - _now()
        event: dict[str, Any] = {"status": "resume", "retry_at": wake, "resume": self.resume}
        if note:
            event["note"] = note
        yield TriggerEvent(event)
