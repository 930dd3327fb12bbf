"""The points-based hourly quota of Confluence Cloud apps: costs, pools, response headers, and the 429.

Atlassian enforces it on OAuth 2.0 (3LO), Forge and Connect apps since 2 March 2026
(https://developer.atlassian.com/cloud/confluence/rate-limiting/ ; the enforcement date is on
https://developer.atlassian.com/cloud/jira/platform/rate-limiting/). Off by default: nothing here runs until
:meth:`QuotaModel.configure` is given a budget, so existing tests and the demo see no new header.

The model:

* **cost** (:func:`call_cost`): every call costs a base of 1 point; a read (``GET``) adds points for each object
  it returns; a write costs the base only. The table is :data:`COSTS`.
* **pools**: each app (the 3LO app's client id, or a service account's OAuth 2.0 credential) has a pool per site
  (``tenant-app-quota``) and, when :attr:`QuotaModel.global_points` is set, one shared by every site it reaches
  (``global-app-quota``). A call is refused with 429 while any of its pools has nothing left; a call that is let
  through is charged in full, even past zero (its cost is only known once it has run).
* **the window**: one hour; by default the windows start at the top of each hour of the emulator's clock, as the
  ``t=`` values Atlassian sends show (a budget seen at 16:24:52 reset in 2107 s: at 17:00). ``align_to_hour=False``
  starts a window at the first call after the previous one ended (handy for tests that want a fixed wait).
* **API-token traffic is not charged** (Basic auth with a scoped API token): "API token-based traffic is not
  affected by this change, and will continue to be governed by existing burst rate limits"
  (https://developer.atlassian.com/cloud/jira/platform/rate-limiting/). The emulator's ``throttle`` and
  ``rate_limit`` knobs are those burst limits and apply to every caller.

The headers (names from the Confluence page above; formats as Atlassian sends them, seen in responses posted on
https://community.developer.atlassian.com/t/2026-point-based-rate-limits/97828 ; they follow the IETF draft
https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/):

* ``Beta-RateLimit-Policy: "tenant-app-quota";q=<points per window>;w=3600`` on answers that were let through;
* ``Beta-RateLimit: "tenant-app-quota";r=<points remaining>;t=<seconds until the window resets>``;
* ``X-Beta-RateLimit-Reason: confluence-quota-tenant-based`` (Jira sends ``jira-quota-tenant-based``; the
  Confluence value is named by analogy) or ``confluence-quota-global-based`` for the global pool;
* ``X-Beta-RateLimit-NearLimit: true`` while less than 20% of the budget is left (absent otherwise);
* on the 429: ``Retry-After`` (whole seconds until the window resets, at least 1: up to an hour),
  ``Beta-RateLimit`` with ``r=0``, ``X-Beta-RateLimit-Reason`` and ``X-Beta-RateLimit-Reset`` (the reset moment,
  ``YYYY-MM-DDTHH:MMZ``), but no ``Beta-RateLimit-Policy`` (Atlassian's 429s observed on the forum above had none).

The pool whose headers are sent is the one with the fewest points left.
"""

from __future__ import annotations

import datetime
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._http import Reply

#: The points table of https://developer.atlassian.com/cloud/confluence/rate-limiting/ ("Each request starts
#: with a base cost of 1 point, and additional points are added for each object involved. Write requests are
#: charged only the base cost, with no additional points."). Every object the emulator serves (pages, spaces,
#: labels, attachments, comments, search results) is a core domain object: 1 point each.
COSTS: dict[str, int] = {
    "base": 1,  # every call
    "core_object": 1,  # per object a read returns: pages, blog posts, spaces, comments, attachments, labels, ...
}
#: the methods that only cost the base (writes)
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
WINDOW_SECONDS = 3600.0
NEAR_LIMIT_FRACTION = 0.2
SITE_POLICY, GLOBAL_POLICY = "tenant-app-quota", "global-app-quota"
SITE_REASON, GLOBAL_REASON = "confluence-quota-tenant-based", "confluence-quota-global-based"


def objects_returned(reply: Reply) -> int:
    """How many objects an answer carries: the length of ``results`` for a list, 1 for a single object or a
    downloaded file, 0 for an error or an empty answer."""
    if not 200 <= reply.status < 300 or reply.body is None:
        return 0
    if isinstance(reply.body, dict) and isinstance(reply.body.get("results"), list):
        return len(reply.body["results"])
    return 1


def call_cost(method: str, reply: Reply) -> int:
    """The points a call costs (see :data:`COSTS`): the base, plus one per object for a read."""
    if method.upper() in WRITE_METHODS:
        return COSTS["base"]
    return COSTS["base"] + COSTS["core_object"] * objects_returned(reply)


@dataclass
class _Pool:
    limit: int
    used: int = 0
    window_start: float | None = None


@dataclass(frozen=True)
class QuotaUsage:
    """Where one pool stands (what :meth:`FakeAtlassian.quota_usage` returns).

    :param policy: ``tenant-app-quota`` (per site) or ``global-app-quota`` (every site of the app).
    :param limit: the points of a window.
    :param used: points charged in the current window (may exceed ``limit``: the last call is charged in full).
    :param remaining: ``max(0, limit - used)``.
    :param resets_at: when the current window ends (emulator epoch seconds).
    """

    policy: str
    limit: int
    used: int
    remaining: int
    resets_at: float


class QuotaModel:
    """The hourly points pools of every app, on the emulator's clock.

    :param lock: the emulator's one lock.
    :param counters: the emulator's counters (``quota_points``, ``quota_rejections``).
    :param now: the emulator's clock.
    """

    def __init__(self, lock: threading.RLock, counters: dict[str, Any], now: Callable[[], float]) -> None:
        self._lock = lock
        self._counters = counters
        self._now = now
        self.site_points: int | None = None
        self.global_points: int | None = None
        self.align_to_hour = True
        self._pools: dict[tuple[str, str | None], _Pool] = {}

    @property
    def enabled(self) -> bool:
        """True when a budget is set."""
        return self.site_points is not None or self.global_points is not None

    def configure(
        self, site_points: int | None, global_points: int | None = None, *, align_to_hour: bool = True
    ) -> None:
        """Set the budgets (points per hour; None: that pool is not limited) and forget what was used."""
        for value in (site_points, global_points):
            if value is not None and (isinstance(value, bool) or int(value) < 1):
                raise ValueError("an hourly points budget must be a positive integer (None: no limit)")
        with self._lock:
            self.site_points = None if site_points is None else int(site_points)
            self.global_points = None if global_points is None else int(global_points)
            self.align_to_hour = bool(align_to_hour)
            self._pools.clear()

    def reset(self) -> None:
        """Forget every pool's usage (a new window starts at the next call)."""
        with self._lock:
            self._pools.clear()

    # ----------------------------------------------------------------- pools
    def _window(self, pool: _Pool, now: float) -> float:
        """Roll the pool's window forward if it has ended; return when the current one ends."""
        if self.align_to_hour:
            start = math.floor(now / WINDOW_SECONDS) * WINDOW_SECONDS
            if pool.window_start != start:
                pool.window_start, pool.used = start, 0
        elif pool.window_start is None or now >= pool.window_start + WINDOW_SECONDS:
            pool.window_start, pool.used = now, 0
        return pool.window_start + WINDOW_SECONDS

    def _pools_of(self, app: str, site: str) -> list[tuple[str, _Pool]]:
        found: list[tuple[str, _Pool]] = []
        for policy, key, limit in (
            (SITE_POLICY, (app, site), self.site_points),
            (GLOBAL_POLICY, (app, None), self.global_points),
        ):
            if limit is None:
                continue
            pool = self._pools.get(key)
            if pool is None or pool.limit != limit:
                pool = self._pools[key] = _Pool(limit)
            found.append((policy, pool))
        return found

    def usage(self, app: str, site: str) -> list[QuotaUsage]:
        """The pools of ``app`` on ``site`` (the per-site pool first), as they stand now."""
        with self._lock:
            now = self._now()
            out = []
            for policy, pool in self._pools_of(app, site):
                ends = self._window(pool, now)
                out.append(QuotaUsage(policy, pool.limit, pool.used, max(0, pool.limit - pool.used), ends))
            return out

    def _binding(self, app: str, site: str) -> QuotaUsage:
        return min(self.usage(app, site), key=lambda use: (use.remaining, use.policy != SITE_POLICY))

    # ----------------------------------------------------------------- the gateway's side
    def refuse(self, app: str | None, site: str) -> Reply | None:
        """The 429 for a call of ``app`` while one of its pools is empty; None when the call may go on (or when the
        quota is off, or for API-token traffic: ``app`` None)."""
        if app is None or not self.enabled:
            return None
        with self._lock:
            use = self._binding(app, site)
            if use.remaining > 0:
                return None
            self._counters["quota_rejections"] = self._counters.get("quota_rejections", 0) + 1
            wait = max(1, math.ceil(use.resets_at - self._now()))
        reset = datetime.datetime.fromtimestamp(use.resets_at, tz=datetime.UTC).strftime("%Y-%m-%dT%H:%MZ")
        headers = {
            "Retry-After": str(wait),
            "Beta-RateLimit": f'"{use.policy}";r=0;t={wait}',
            "X-Beta-RateLimit-Reason": _reason(use.policy),
            "X-Beta-RateLimit-Reset": reset,
        }
        error = {"status": 429, "code": "TOO_MANY_REQUESTS", "title": "Rate limit exceeded", "detail": None}
        return Reply(429, {"errors": [error]}, headers)

    def charge(self, app: str | None, site: str, method: str, reply: Reply) -> dict[str, str]:
        """Charge a call that was let through; return the quota headers for its answer (none when the quota is off,
        or for API-token traffic)."""
        if app is None or not self.enabled:
            return {}
        cost = call_cost(method, reply)
        with self._lock:
            now = self._now()
            for _, pool in self._pools_of(app, site):
                self._window(pool, now)
                pool.used += cost
            self._counters["quota_points"] = self._counters.get("quota_points", 0) + cost
            use = self._binding(app, site)
            wait = max(0, math.ceil(use.resets_at - now))
        headers = {
            "Beta-RateLimit-Policy": f'"{use.policy}";q={use.limit};w={int(WINDOW_SECONDS)}',
            "Beta-RateLimit": f'"{use.policy}";r={use.remaining};t={wait}',
            "X-Beta-RateLimit-Reason": _reason(use.policy),
        }
        if use.remaining < NEAR_LIMIT_FRACTION * use.limit:
            headers["X-Beta-RateLimit-NearLimit"] = "true"
        return headers


def _reason(policy: str) -> str:
    return SITE_REASON if policy == SITE_POLICY else GLOBAL_REASON
