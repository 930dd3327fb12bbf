"""The points-based quota headers of Confluence Cloud, parsed into a :class:`RateLimitStatus`.

Atlassian enforces an hourly points budget on OAuth 2.0 (3LO), Forge and Connect apps since 2 March 2026
(https://developer.atlassian.com/cloud/confluence/rate-limiting/). Its answers carry, in the format of the IETF
RateLimit header fields draft (https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/)::

    Beta-RateLimit-Policy: "tenant-app-quota";q=100;w=3600     the pool, its points per window, the window (s)
    Beta-RateLimit: "tenant-app-quota";r=89;t=2107             points remaining, seconds until the window resets
    X-Beta-RateLimit-Reason: confluence-quota-tenant-based     which pool limits the app
    X-Beta-RateLimit-NearLimit: true                           under 20% of the budget is left
    X-Beta-RateLimit-Reset: 2026-03-26T17:00Z                  on a 429: when the window resets

The older burst-limit header ``X-RateLimit-NearLimit: true`` counts as "near the limit" too. Every parser here
is lenient: a malformed value is ignored, never an error (these headers are still marked beta).

This module imports nothing from Airflow and does no I/O.
"""

from __future__ import annotations

import datetime
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["RateLimitStatus", "parse_rate_limit", "reset_epoch"]

_ITEM = re.compile(r'^\s*(?:"(?P<quoted>[^"]*)"|(?P<token>[A-Za-z0-9_.*-]+))\s*(?P<params>(?:;[^,]*)?)$')
_RESET_FORMATS = ("%Y-%m-%dT%H:%MZ", "%Y-%m-%dT%H:%M:%SZ")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((str(v) for k, v in headers.items() if str(k).lower() == lowered), None)


def _number(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and value >= 0 else None


def _items(value: str | None) -> list[tuple[str, dict[str, str]]]:
    """The ``"name";k=v;k=v`` items of a structured-field list (malformed items are skipped)."""
    found: list[tuple[str, dict[str, str]]] = []
    for part in (value or "").split(","):
        match = _ITEM.match(part)
        if not match:
            continue
        params: dict[str, str] = {}
        for pair in match.group("params").split(";")[1:]:
            key, _, val = pair.partition("=")
            if key.strip():
                params[key.strip().lower()] = val.strip().strip('"')
        found.append((match.group("quoted") or match.group("token") or "", params))
    return found


def reset_epoch(value: str | None) -> float | None:
    """``X-Beta-RateLimit-Reset`` (``2026-03-26T17:00Z``) as epoch seconds; None when absent or malformed."""
    text = (value or "").strip()
    for fmt in _RESET_FORMATS:
        try:
            moment = datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC)
        except ValueError:
            continue
        return moment.timestamp()
    return None


@dataclass(frozen=True)
class RateLimitStatus:
    """Where the app stands in its points quota, as one answer's headers say.

    :param policy: the pool (``tenant-app-quota`` per site, ``global-app-quota`` for every site of the app).
    :param quota: the points of a window (``q=``), when the answer said (a 429 carries no policy header).
    :param remaining: the points left (``r=``).
    :param reset_seconds: seconds until the window resets (``t=``).
    :param window_seconds: the window's length (``w=``, an hour).
    :param near_limit: True when Atlassian says less than 20% of the budget is left.
    :param reason: ``X-Beta-RateLimit-Reason`` (``confluence-quota-tenant-based``, ...).
    :param reset_at: the window's end from ``X-Beta-RateLimit-Reset`` (epoch seconds), when sent.
    """

    policy: str | None = None
    quota: int | None = None
    remaining: int | None = None
    reset_seconds: float | None = None
    window_seconds: float | None = None
    near_limit: bool = False
    reason: str | None = None
    reset_at: float | None = None

    @property
    def known(self) -> bool:
        """True when the answer carried any quota header."""
        return any(v is not None for v in (self.policy, self.remaining, self.reason)) or self.near_limit

    def resets_at(self, now: float) -> float | None:
        """When the window resets, in epoch seconds: ``now + t``, else ``X-Beta-RateLimit-Reset``."""
        if self.reset_seconds is not None:
            return now + self.reset_seconds
        return self.reset_at

    def describe(self) -> str:
        """A log line's worth: ``tenant-app-quota: 12 of 100 points left, resets in 2107 s``."""
        left = "?" if self.remaining is None else str(self.remaining)
        of = f" of {self.quota}" if self.quota is not None else ""
        when = f", resets in {self.reset_seconds:.0f} s" if self.reset_seconds is not None else ""
        return f"{self.policy or 'quota'}: {left}{of} points left{when}"


def parse_rate_limit(headers: Mapping[str, str] | None) -> RateLimitStatus:
    """The quota headers of an answer (see the module docstring); every field None when absent or malformed.

    With several pools listed, the one with the fewest points left is the one that limits the app.

    :param headers: an answer's headers (names compared case-insensitively).
    """
    headers = headers or {}
    limits = _items(_header(headers, "Beta-RateLimit"))
    policies = {name: params for name, params in _items(_header(headers, "Beta-RateLimit-Policy"))}
    remaining: int | None = None
    reset: float | None = None
    policy: str | None = None
    for name, params in limits:
        left = _number(params.get("r"))
        if left is None:
            continue
        if remaining is None or left < remaining:
            policy, remaining, reset = name or None, int(left), _number(params.get("t"))
    if policy is None and policies:
        policy = next(iter(policies))
    quota = window = None
    if policy is not None and policy in policies:
        q, w = _number(policies[policy].get("q")), _number(policies[policy].get("w"))
        quota, window = (int(q) if q is not None else None), w
    near = any(
        (_header(headers, name) or "").strip().lower() == "true"
        for name in ("X-Beta-RateLimit-NearLimit", "X-RateLimit-NearLimit")
    )
    reason = (_header(headers, "X-Beta-RateLimit-Reason") or "").strip()[:100] or None
    return RateLimitStatus(
        policy=policy,
        quota=quota,
        remaining=remaining,
        reset_seconds=reset,
        window_seconds=window,
        near_limit=near,
        reason=reason,
        reset_at=reset_epoch(_header(headers, "X-Beta-RateLimit-Reset")),
    )
