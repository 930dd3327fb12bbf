"""The rate-limit trigger waits a sane time whatever ``retry_at`` says (never in the past, never spinning, never
over two hours), a malformed ``retry_at`` is waited out as the minimum with a clear warning, and a deferred
operator resumed by an event that says the wait failed raises a clear error. No sockets, no sleeping."""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceError, ConfluenceRateLimited
from airflow_provider_confluence.operators.confluence import ConfluenceSearchOperator
from airflow_provider_confluence.triggers import rate_limit
from airflow_provider_confluence.triggers.rate_limit import MAX_WAIT, MIN_WAIT, ConfluenceRateLimitTrigger, wake_at

pytestmark = pytest.mark.airflow2

NOW = 1_790_000_000.0


@pytest.mark.parametrize(
    ("retry_at", "wake", "moved"),
    [
        (NOW + 1800, NOW + 1800, False),  # as Atlassian says
        (NOW + 5, NOW + MIN_WAIT, False),  # a few seconds: the minimum, silently
        (NOW - 600, NOW + MIN_WAIT, True),  # in the past: clocks out of step
        (NOW - 10 * 365 * 86400, NOW + MIN_WAIT, True),
        (NOW + 30 * 86400, NOW + MAX_WAIT, True),  # a month on: not believed
        ("soon", NOW + MIN_WAIT, True),
        (None, NOW + MIN_WAIT, True),
        (math.nan, NOW + MIN_WAIT, True),
        (math.inf, NOW + MIN_WAIT, True),
        (True, NOW + MIN_WAIT, True),
        (str(NOW + 1800), NOW + 1800, False),  # a number as text (a JSON row) is a number
    ],
)
def test_the_wake_up_time_stays_between_the_minimum_and_two_hours(retry_at: Any, wake: float, moved: bool) -> None:
    got, note = wake_at(retry_at, NOW)
    assert got == wake and (note is not None) == moved
    if moved:
        assert "then trying again" in str(note)


class Clock:
    def __init__(self, start: float) -> None:
        self.t = start
        self.naps: list[float] = []

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0  # never a busy loop
        self.naps.append(seconds)
        self.t += seconds


def run_trigger(trigger: ConfluenceRateLimitTrigger, clock: Clock, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(rate_limit, "_now", clock.now)
    monkeypatch.setattr(rate_limit, "_sleep", clock.sleep)

    async def first() -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("no event")

    payload = asyncio.run(first())
    assert isinstance(payload, dict)
    return payload


def test_a_retry_at_in_the_past_waits_the_minimum_then_resumes(monkeypatch, caplog) -> None:
    clock = Clock(NOW)
    trigger = ConfluenceRateLimitTrigger(retry_at=NOW - 3600, resume={"cursor": "c"})
    with caplog.at_level(logging.WARNING):
        event = run_trigger(trigger, clock, monkeypatch)
    assert sum(clock.naps) == MIN_WAIT and event["status"] == "resume" and event["resume"] == {"cursor": "c"}
    assert "in the past" in event["note"]


def test_a_malformed_retry_at_still_serializes_and_resumes_with_its_state(monkeypatch) -> None:
    trigger = ConfluenceRateLimitTrigger(retry_at="2026-13-45", resume={"page_id": "42", "action": "created"})
    _, kwargs = trigger.serialize()
    assert kwargs["retry_at"] == "2026-13-45"  # kept as given: the row rebuilds the same trigger
    clock = Clock(NOW)
    event = run_trigger(ConfluenceRateLimitTrigger(**kwargs), clock, monkeypatch)
    assert sum(clock.naps) == MIN_WAIT
    assert event["resume"] == {"page_id": "42", "action": "created"}
    assert "'2026-13-45' is not a moment in epoch seconds" in event["note"]


def test_an_hour_is_slept_in_naps_until_the_moment(monkeypatch) -> None:
    clock = Clock(NOW)
    event = run_trigger(ConfluenceRateLimitTrigger(retry_at=NOW + 3600), clock, monkeypatch)
    assert clock.t == NOW + 3600 and max(clock.naps) <= rate_limit.MAX_NAP and "note" not in event


def search(**kwargs: Any) -> ConfluenceSearchOperator:
    return ConfluenceSearchOperator(task_id="s", cql="type = page", deferrable=True, **kwargs)


def test_an_event_that_says_the_wait_failed_raises_a_clear_error() -> None:
    with pytest.raises(ConfluenceError, match="ended with status 'error': boom. Nothing more was sent"):
        search().resume_after_rate_limit({}, event={"status": "error", "message": "boom"}, resume={})


def test_a_note_in_the_event_is_logged_and_the_state_of_the_deferral_used_when_the_event_has_none(
    monkeypatch, caplog, capsys
) -> None:
    op = search()
    seen: list[dict[str, Any]] = []
    monkeypatch.setattr(op, "run_from", lambda context, resume: seen.append(resume) or ["done"])
    with caplog.at_level(logging.WARNING):
        result = op.resume_after_rate_limit({}, event={"status": "resume", "note": "clock skew"}, resume={"x": 1})
    assert result == ["done"] and seen == [{"x": 1}]
    captured = capsys.readouterr()  # Airflow 3 logs through structlog, to stdout
    assert "clock skew" in caplog.text + captured.out + captured.err


def test_the_operator_never_defers_to_a_moment_in_the_past(monkeypatch) -> None:
    import time

    from helpers.quota import task_deferred

    op = search()

    def refused(context: Any, resume: dict[str, Any]) -> Any:
        raise ConfluenceRateLimited(429, "GET", "https://api.example.test/x", None, "quota", retry_at=1.0)

    monkeypatch.setattr(op, "run_from", refused)
    before = time.time()
    with pytest.raises(task_deferred()) as info:
        op.execute({})
    retry_at = info.value.trigger.retry_at  # type: ignore[attr-defined]
    assert before + MIN_WAIT <= retry_at <= time.time() + MIN_WAIT
