"""The retry policy of the provider, in one place.

The Confluence client uses it for 429/5xx answers and connection errors; the token manager reuses it for
refresh calls whose answer was lost. It only computes delays: who sleeps, and whether a request is safe to
repeat, is the caller's business.

Atlassian's advice (https://developer.atlassian.com/cloud/confluence/rate-limiting/): honour ``Retry-After``;
otherwise back off exponentially with jitter up to a cap; cap every sleep (a ``Retry-After:
9223372036854775807`` has been seen in the wild).

:func:`file_marks` and :func:`rewind` make a multipart upload safe to send again: a file object is put back
where it stood before the first try (a re-send from its end would upload an empty file).

Why not urllib3's ``Retry`` or tenacity (both installed with Airflow): urllib3 retries inside the transport,
where the client cannot tell a write that is safe to repeat from one that is not, cannot rewind a multipart
file, and sleeps whatever ``Retry-After`` says, uncapped; tenacity owns the loop and the sleeping. Here three
callers (the client, the token manager, the broker client) each own their loop, their sleep (the tests inject
it) and what may be repeated (a refresh whose answer was lost is decided by the rotation protocol, never
re-sent blindly), and only share the arithmetic of the delays, which is this module.

This module imports nothing from Airflow.
"""

from __future__ import annotations

import math
import random
import re
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Any, Literal

__all__ = ["RetryPolicy", "RetryState", "file_marks", "parse_retry_after", "rewind"]

_DEFAULT_RNG = random.Random()
_DELTA_SECONDS = re.compile(r"^\+?\d+(?:\.\d+)?$")
_MAX_EXPONENT = 62  # 2**62 is far beyond any cap; keeps ``base * 2**n`` a finite float


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to retry one call.

    :param max_attempts: total tries including the first.
    :param max_attempts_with_retry_after: the same, while the server says when to come back (``Retry-After``
        on a 429 or 503: the request was not processed, and waiting as told is what Atlassian asks). Under a
        busy rate limit several clients compete for each slot, so a call may lose a few rounds in a row;
        ``max_total_wait`` still bounds it.
    :param max_total_wait: seconds of sleeping allowed across all retries of one call.
    :param base_delay: the first exponential backoff step, in seconds.
    :param max_delay: cap of one exponential backoff step, in seconds.
    :param retry_after_cap: cap applied to a server's ``Retry-After``, in seconds.
    :param max_retry_after: the longest ``Retry-After`` that is believed, in seconds (an exhausted hourly quota
        asks for up to an hour). A believed wait longer than what is left of ``max_total_wait`` is not slept at
        all: the client raises ``ConfluenceRateLimited`` with ``retry_at`` at once, for the task to defer or
        reschedule. A longer one (``9223372036854775807`` has been seen) is capped and retried as any other.
    :param jitter: ``"equal"`` (half the step fixed, half random; the default) or ``"full"`` (0 to the step).
    :param rng: the source of randomness; inject a seeded :class:`random.Random` for deterministic tests.
    """

    max_attempts: int = 6
    max_attempts_with_retry_after: int = 30
    max_total_wait: float = 180.0
    base_delay: float = 0.5
    max_delay: float = 30.0
    retry_after_cap: float = 60.0
    max_retry_after: float = 7200.0
    jitter: Literal["equal", "full"] = "equal"
    rng: random.Random | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_attempts_with_retry_after < 1:
            raise ValueError("max_attempts and max_attempts_with_retry_after must be at least 1")
        for name in ("max_total_wait", "base_delay", "max_delay", "retry_after_cap", "max_retry_after"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.jitter not in ("equal", "full"):
            raise ValueError(f"jitter must be 'equal' or 'full', not {self.jitter!r}")

    def _uniform(self, low: float, high: float) -> float:
        return (self.rng or _DEFAULT_RNG).uniform(low, high)

    def backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter after the ``attempt``-th failed try (1-based).

        The step is ``base_delay * 2 ** (attempt - 1)`` capped at ``max_delay``; equal jitter returns a value in
        ``[step / 2, step]``, full jitter one in ``[0, step]``.

        :param attempt: how many tries have failed so far (1 after the first failure).
        """
        exponent = min(max(attempt, 1) - 1, _MAX_EXPONENT)
        step = min(self.max_delay, self.base_delay * (2.0**exponent))
        if self.jitter == "full":
            return self._uniform(0.0, step)
        return step / 2 + self._uniform(0.0, step / 2)

    def delay_after(self, attempt: int, retry_after: float | None) -> float:
        """The delay before the next try.

        With a ``Retry-After`` the delay is never shorter than ``min(retry_after, retry_after_cap)``; a jitter of
        up to 10 % of it (at least 0.1 s, at most 1 s) is ADDED on top, so that many clients told the same
        moment do not all come back at once. Without one, :meth:`backoff` applies.

        :param attempt: how many tries have failed so far (1 after the first failure).
        :param retry_after: the server's ``Retry-After`` in seconds (see :func:`parse_retry_after`), or None.
        """
        if retry_after is None or math.isnan(retry_after):
            return self.backoff(attempt)
        floor = min(max(retry_after, 0.0), self.retry_after_cap)
        spread = min(1.0, max(0.1, 0.1 * floor))
        return floor + self._uniform(0.0, spread)

    def outlasts_budget(self, waited: float, retry_after: float | None) -> bool:
        """True when the server asks for a believable wait (at most ``max_retry_after``) longer than what is left
        of ``max_total_wait``: sleeping would only end in giving up, so the caller should give up now.

        :param waited: seconds already slept for this call.
        :param retry_after: the server's ``Retry-After`` in seconds, or None.
        """
        if retry_after is None or math.isnan(retry_after) or retry_after > self.max_retry_after:
            return False
        return retry_after > self.max_total_wait - waited

    def next_delay(self, attempt: int, waited: float, retry_after: float | None = None) -> float | None:
        """The delay before another try, or None when the policy says to give up.

        Gives up when ``attempt`` tries were already made (``max_attempts``, or ``max_attempts_with_retry_after``
        when the server gave a ``Retry-After``) or when sleeping the delay would take the call's total sleep past
        ``max_total_wait``.

        :param attempt: how many tries have failed so far (1 after the first failure).
        :param waited: seconds already slept for this call.
        :param retry_after: the server's ``Retry-After`` in seconds, or None.
        """
        told = retry_after is not None and not math.isnan(retry_after)
        if attempt >= (self.max_attempts_with_retry_after if told else self.max_attempts):
            return None
        delay = self.delay_after(attempt, retry_after)
        if waited + delay > self.max_total_wait:
            return None
        return delay


@dataclass
class RetryState:
    """What happened so far during one call, kept by the caller's retry loop.

    :param failures: tries that failed and counted against ``max_attempts``.
    :param waited: seconds slept so far.
    :param resent_after_uncertain: True once the request was sent again after a failure that may have been
        processed by the server (a 5xx other than 429, a read timeout): the last answer may then reflect the
        earlier try (for example a 409 for a PUT whose first try landed).
    """

    failures: int = 0
    waited: float = 0.0
    resent_after_uncertain: bool = False


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Parse an HTTP ``Retry-After`` header into seconds from now.

    Accepts delta-seconds (``"120"``, also ``"1.5"``) and an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``; a
    date in the past gives 0). A huge value such as ``9223372036854775807`` is returned as a large finite
    float: :class:`RetryPolicy` caps it. Garbage, an empty or a negative value gives None.

    :param value: the header's value, or None when it was absent.
    :param now: the current epoch time, for HTTP-dates (default: :func:`time.time`).
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if _DELTA_SECONDS.match(text):
        seconds = float(text)
        return seconds if math.isfinite(seconds) else sys.float_info.max
    if text[0] in "+-" or text[0].isdigit():
        return None  # a negative or malformed number, not a date
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def file_marks(files: Any) -> list[tuple[Any, int | None]]:
    """Each file object among multipart ``files`` with its position (None when it cannot tell)."""
    parts = files.values() if isinstance(files, Mapping) else (files or ())
    marks: list[tuple[Any, int | None]] = []
    for part in parts:
        value = part[1] if isinstance(part, tuple) and len(part) == 2 else part
        fileobj = value[1] if isinstance(value, tuple) and len(value) >= 2 else value
        if hasattr(fileobj, "read"):
            try:
                marks.append((fileobj, fileobj.tell() if fileobj.seekable() else None))
            except (AttributeError, OSError, ValueError):
                marks.append((fileobj, None))
    return marks


def rewind(marks: list[tuple[Any, int | None]]) -> bool:
    """Put every file object back where it stood before the first try; False when one cannot be."""
    for fileobj, position in marks:
        if position is None:
            return False
        try:
            fileobj.seek(position)
        except (OSError, ValueError):
            return False
    return True
