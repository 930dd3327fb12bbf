"""Waiting out the emulator's points quota in tests: the triggers' clock moved onto the emulator's, operators driven
through their deferrals as Airflow drives them, and points spent on purpose."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from airflow_provider_confluence.triggers import confluence as page_trigger_module
from airflow_provider_confluence.triggers import rate_limit
from airflow_provider_confluence.triggers.rate_limit import ConfluenceRateLimitTrigger


def task_deferred() -> type[BaseException]:
    """Airflow's ``TaskDeferred`` (where this Airflow line keeps it)."""
    try:
        from airflow.sdk.exceptions import TaskDeferred  # Airflow 3
    except ImportError:
        from airflow.exceptions import TaskDeferred  # Airflow 2.11
    return TaskDeferred  # type: ignore[no-any-return]


class EmulatorTime:
    """The triggers' clock and sleep, moved onto the emulator's clock: a sleep advances it at once."""

    def __init__(self, fake: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.fake = fake
        self.slept: list[float] = []
        self.looks = 0
        for module in (rate_limit, page_trigger_module):
            monkeypatch.setattr(module, "_now", self.now)
            monkeypatch.setattr(module, "_sleep", self.sleep)

    def now(self) -> float:
        """The provider's clock (real time, plus what the triggers slept), as the client computed retry_at."""
        self.looks += 1
        if self.looks > 200:
            raise RuntimeError(f"looked at the clock 200 times (slept {self.slept}): a task that never gets through")
        return time.time() + sum(self.slept)

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.fake.advance(max(seconds, 0.0))


def first_event(trigger: Any) -> dict[str, Any]:
    """The payload of the first event ``trigger`` yields."""

    async def run() -> Any:
        async for event in trigger.run():
            return event.payload
        raise AssertionError("the trigger ended without an event")

    payload = asyncio.run(run())
    assert isinstance(payload, dict)
    return payload


def run_deferrable(
    operator: Any, emulator_time: EmulatorTime, context: dict[str, Any] | None = None
) -> tuple[Any, list[dict[str, Any]]]:
    """Run ``operator`` as Airflow would: execute, and while it defers, run its trigger and resume it with the
    event and the deferral's keyword arguments (as the triggerer hands them back). Returns (result, deferrals)."""
    deferred = task_deferred()
    deferrals: list[dict[str, Any]] = []
    context = context or {}
    step: Any = lambda: operator.execute(context=context)  # noqa: E731
    for _ in range(5):
        try:
            return step(), deferrals
        except deferred as exc:
            trigger = exc.trigger  # type: ignore[attr-defined]
            assert isinstance(trigger, ConfluenceRateLimitTrigger)
            classpath, kwargs = trigger.serialize()
            assert classpath.endswith("ConfluenceRateLimitTrigger")
            event = first_event(ConfluenceRateLimitTrigger(**kwargs))  # rebuilt from what the DB would hold
            deferrals.append({"method": exc.method_name, "kwargs": exc.kwargs, "retry_at": trigger.retry_at})  # type: ignore[attr-defined]
            method = getattr(operator, exc.method_name)  # type: ignore[attr-defined]
            next_kwargs = {**(exc.kwargs or {}), "event": event}  # type: ignore[attr-defined]
            step = lambda method=method, next_kwargs=next_kwargs: method(context, **next_kwargs)  # noqa: E731
    raise AssertionError("deferred more than 5 times")


def spend(conn_id: str, points: int) -> None:
    """Spend ``points`` of the quota: look up a page that does not exist (a 404 costs the base point only)."""
    from airflow_provider_confluence.exceptions import ConfluenceNotFound
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    client = ConfluenceOAuthHook(confluence_conn_id=conn_id).get_conn()
    for _ in range(points):
        with pytest.raises(ConfluenceNotFound):
            client.request("GET", "/wiki/api/v2/pages/987654321")


def calls(fake: Any, route: str) -> int:
    """How many gateway calls ``route`` (``"POST /wiki/api/v2/pages"``) received, refused ones included."""
    return int(fake.counters["api_calls_by_route"].get(route, 0))
