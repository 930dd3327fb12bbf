"""Injected failures: throttling (429/503 with ``Retry-After``), a rate limit, and failures on chosen routes.

Atlassian's rate-limit answers (https://developer.atlassian.com/cloud/confluence/rate-limiting/): 429 with ``Retry-After`` (seconds) and a v2 error body, plus the
warning headers ``X-RateLimit-NearLimit: true`` and ``Beta-Retry-After`` (a future limit, not a limit: a
client must not sleep on it) and ``X-RateLimit-Reset``. Some 503s carry ``Retry-After`` too.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._http import Reply, iso, reason, v2_error

#: what a 429 carries in ``Beta-Retry-After``: far longer than any sane test wait
BETA_RETRY_AFTER = "120"


@dataclass
class Failure:
    """A pending injected failure; ``landed``: the request is processed before the failure is answered;
    ``passes``: how many matching calls still go through before the failures start."""

    remaining: int
    route: str | None
    reply: Reply = field(repr=False)
    landed: bool = False
    passes: int = 0


class TokenBucket:
    """A rate limit: ``per_second`` calls per second on average, up to ``burst`` at once; on the given clock.

    :param per_second: the refill rate (calls per second, > 0).
    :param burst: the bucket's size (at least 1); it starts full.
    :param now: the clock, in seconds.
    """

    def __init__(self, per_second: float, burst: float, now: Callable[[], float]) -> None:
        if not per_second > 0 or not burst >= 1:
            raise ValueError("a rate limit needs per_second > 0 and burst >= 1")
        self.per_second = float(per_second)
        self.burst = float(burst)
        self._now = now
        self._tokens = self.burst
        self._at = now()

    def take(self) -> float | None:
        """Spend one call: None when allowed, else the seconds until the next call will be."""
        now = self._now()
        self._tokens = min(self.burst, self._tokens + max(0.0, now - self._at) * self.per_second)
        self._at = now
        if self._tokens >= 1:
            self._tokens -= 1
            return None
        return (1 - self._tokens) / self.per_second


class Injector:
    """The pending failures and throttling of one emulator.

    :param lock: the emulator's one lock.
    :param counters: the emulator's counters (``throttled``, ``injected_failures``).
    :param now: the emulator's clock.
    """

    def __init__(self, lock: threading.RLock, counters: dict[str, Any], now: Callable[[], float]) -> None:
        self._lock = lock
        self._counters = counters
        self._now = now
        self._failures: list[Failure] = []
        self._throttle: tuple[int, str | None, int] = (0, None, 429)
        self._bucket: TokenBucket | None = None
        self._bucket_retry_after: str | None = None

    def throttle(self, times: int = 1, retry_after: str | int | float | None = "2", status: int = 429) -> None:
        """Throttle the next ``times`` Confluence API calls (replaces any pending throttling)."""
        if status not in (429, 503):
            raise ValueError("throttle status must be 429 or 503; use fail_next() for others")
        with self._lock:
            self._throttle = (int(times), None if retry_after is None else str(retry_after), status)

    def rate_limit(
        self, per_second: float | None, burst: float | None = None, retry_after: str | int | float | None = None
    ) -> None:
        """Limit Confluence API calls to ``per_second`` (None or 0: no limit); see ``FakeAtlassian.rate_limit``."""
        with self._lock:
            if not per_second:
                self._bucket = None
                return
            size = burst if burst is not None else max(1.0, float(per_second))
            self._bucket = TokenBucket(float(per_second), float(size), self._now)
            self._bucket_retry_after = None if retry_after is None else str(retry_after)

    def fail_next(
        self,
        status: int,
        times: int = 1,
        route: str | None = None,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        landed: bool = False,
        after: int = 0,
    ) -> None:
        """Queue a failure for the next ``times`` calls matching ``route`` (see ``FakeAtlassian.fail_next``)."""
        if body is None:
            token = route is not None and route.split(" ", 1)[-1] == "/oauth/token"
            body = {"error": "server_error", "error_description": reason(status)} if token else v2_error(status).body
        json_body = isinstance(body, (dict, list))
        reply = Reply(
            int(status), body, dict(headers or {}), "application/json" if json_body else "text/plain; charset=utf-8"
        )
        with self._lock:
            self._failures.append(Failure(int(times), route, reply, landed, int(after)))

    def take_failure(self, route: str, concrete: str, *, api: bool) -> Failure | None:
        """Consume and return the first failure matching this call, if any.

        :param route: the route template of the call; :param concrete: ``"METHOD /path"`` of the call.
        :param api: True for Confluence API calls, which a failure without route matches.
        """
        with self._lock:
            for failure in self._failures:
                if (failure.route is None and api) or failure.route in (route, concrete):
                    if failure.passes > 0:
                        failure.passes -= 1
                        continue
                    failure.remaining -= 1
                    if failure.remaining <= 0:
                        self._failures.remove(failure)
                    self._counters["injected_failures"] += 1
                    return failure
        return None

    def take_throttle(self) -> Reply | None:
        """Consume one throttled answer, if any is pending; else answer 429 when over the rate limit."""
        with self._lock:
            times, retry_after, status = self._throttle
            if times > 0:
                self._throttle = (times - 1, retry_after, status)
            elif self._bucket is not None:
                wait = self._bucket.take()
                if wait is None:
                    return None
                status = 429
                retry_after = self._bucket_retry_after or str(max(1, math.ceil(wait)))
            else:
                return None
            self._counters["throttled"] += 1
        headers: dict[str, str] = {} if retry_after is None else {"Retry-After": retry_after}
        if status == 503:
            return Reply(503, v2_error(503, "SERVICE_UNAVAILABLE").body, headers)
        headers.update({"X-RateLimit-NearLimit": "true", "Beta-Retry-After": BETA_RETRY_AFTER})
        try:
            headers["X-RateLimit-Reset"] = iso(self._now() + float(retry_after or 0))
        except (ValueError, OverflowError, OSError):
            pass
        error = {"status": 429, "code": "TOO_MANY_REQUESTS", "title": "Rate limit exceeded", "detail": None}
        body = {"errors": [error]}
        return Reply(429, body, headers)
