"""Unit tests of the retry policy (no sleeping: the policy only computes delays)."""

from __future__ import annotations

import random
import sys
from email.utils import formatdate

import pytest

from airflow_provider_confluence.retry import RetryPolicy, RetryState, parse_retry_after

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

HUGE = "9223372036854775807"


def policy(**kwargs: object) -> RetryPolicy:
    return RetryPolicy(rng=random.Random(1234), **kwargs)  # type: ignore[arg-type]


class TestBackoff:
    def test_equal_jitter_doubles_and_stays_within_half_to_full_step(self) -> None:
        p = policy(base_delay=0.5, max_delay=30.0)
        for attempt, step in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 16.0), (7, 30.0), (12, 30.0)]:
            for _ in range(200):
                delay = p.backoff(attempt)
                assert step / 2 <= delay <= step, (attempt, delay)

    def test_full_jitter_is_between_zero_and_the_step(self) -> None:
        p = policy(jitter="full", base_delay=1.0, max_delay=8.0)
        delays = [p.backoff(4) for _ in range(500)]
        assert all(0.0 <= d <= 8.0 for d in delays)
        assert min(delays) < 2.0 < max(delays)  # really spread out, not a constant

    def test_huge_attempt_number_is_capped_without_overflow(self) -> None:
        p = policy(max_delay=30.0)
        assert 15.0 <= p.backoff(10_000) <= 30.0

    def test_same_seed_gives_same_delays(self) -> None:
        a = RetryPolicy(rng=random.Random(7))
        b = RetryPolicy(rng=random.Random(7))
        assert [a.backoff(i) for i in range(1, 7)] == [b.backoff(i) for i in range(1, 7)]

    def test_jitter_is_random_without_a_seed(self) -> None:
        p = RetryPolicy()
        assert len({p.backoff(6) for _ in range(20)}) > 1


class TestRetryAfter:
    @pytest.mark.parametrize(
        ("retry_after", "low", "high"),
        [
            (5.0, 5.0, 5.5),  # jitter up to 10 %
            (0.0, 0.0, 0.1),  # "now" still gets a little spread
            (30.0, 30.0, 31.0),  # at most 1 s on top
            (60.0, 60.0, 61.0),
            (3600.0, 60.0, 61.0),  # capped at retry_after_cap
            (float(HUGE), 60.0, 61.0),
            (sys.float_info.max, 60.0, 61.0),
        ],
    )
    def test_retry_after_is_honoured_capped_and_jitter_is_added_on_top(
        self, retry_after: float, low: float, high: float
    ) -> None:
        p = policy()
        delays = [p.delay_after(1, retry_after) for _ in range(300)]
        assert all(low <= d <= high for d in delays), (min(delays), max(delays))
        if high > low:
            assert max(delays) > low  # jitter really is added

    def test_never_sooner_than_retry_after_whatever_the_randomness(self) -> None:
        for seed in range(50):
            p = RetryPolicy(rng=random.Random(seed), jitter="full")
            assert p.delay_after(3, 12.0) >= 12.0

    def test_without_retry_after_it_is_the_backoff(self) -> None:
        a = RetryPolicy(rng=random.Random(3))
        b = RetryPolicy(rng=random.Random(3))
        assert a.delay_after(4, None) == b.backoff(4)

    def test_custom_cap(self) -> None:
        assert 10.0 <= policy(retry_after_cap=10.0).delay_after(1, 500.0) <= 11.0


class TestNextDelay:
    def test_gives_up_after_max_attempts(self) -> None:
        p = policy(max_attempts=3)
        assert p.next_delay(1, 0.0) is not None
        assert p.next_delay(2, 0.0) is not None
        assert p.next_delay(3, 0.0) is None

    def test_a_server_that_says_when_to_come_back_gets_more_tries(self) -> None:
        p = policy(max_attempts=3, max_attempts_with_retry_after=5)
        assert p.next_delay(3, 0.0) is None  # backoff: 3 tries
        assert p.next_delay(3, 0.0, retry_after=1.0) is not None  # Retry-After: up to 5
        assert p.next_delay(5, 0.0, retry_after=1.0) is None
        assert p.next_delay(3, 0.0, retry_after=float("nan")) is None  # an unparsable header counts as none

    def test_gives_up_when_the_total_wait_would_be_exceeded(self) -> None:
        p = policy(max_attempts=100, max_total_wait=100.0)
        assert p.next_delay(1, 39.0, retry_after=60.0) is not None  # 39 + at most 61 = 100
        assert p.next_delay(1, 41.0, retry_after=60.0) is None

    def test_a_whole_call_stays_within_both_bounds(self) -> None:
        p = policy(max_attempts=50, max_total_wait=20.0, base_delay=1.0, max_delay=8.0)
        state = RetryState()
        while (delay := p.next_delay(state.failures + 1, state.waited)) is not None:
            state.failures += 1
            state.waited += delay
        assert state.waited <= 20.0
        assert state.failures < 50

    def test_default_policy_matches_the_documented_values(self) -> None:
        p = RetryPolicy()
        assert (p.max_attempts, p.max_total_wait, p.base_delay, p.max_delay, p.retry_after_cap) == (
            6,
            180.0,
            0.5,
            30.0,
            60.0,
        )

    @pytest.mark.parametrize(
        "kwargs",
        [{"max_attempts": 0}, {"base_delay": -1.0}, {"max_total_wait": float("inf")}, {"jitter": "none"}],
    )
    def test_invalid_settings_are_refused(self, kwargs: dict[str, object]) -> None:
        with pytest.raises(ValueError):
            RetryPolicy(**kwargs)  # type: ignore[arg-type]


class TestParseRetryAfter:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            ("120", 120.0),
            (" 7 ", 7.0),
            ("0", 0.0),
            ("1.5", 1.5),
            (None, None),
            ("", None),
            ("   ", None),
            ("-5", None),
            ("-0.5", None),
            ("soon", None),
            ("12abc", None),
            ("1e3", None),
            ("NaN", None),
            ("inf", None),
            ("Wed, 99 Foo 2015 07:28:00 GMT", None),
            ("\x00\xff", None),
        ],
    )
    def test_values(self, value: str | None, expected: float | None) -> None:
        assert parse_retry_after(value) == expected

    def test_huge_delta_is_a_large_finite_float(self) -> None:
        value = parse_retry_after(HUGE)
        assert value is not None and value > 1e18
        longer = parse_retry_after("9" * 400)
        assert longer is not None and longer == sys.float_info.max

    def test_http_date(self) -> None:
        now = 1_700_000_000.0
        assert parse_retry_after(formatdate(now + 42, usegmt=True), now=now) == pytest.approx(42.0)

    def test_http_date_in_the_past_means_now(self) -> None:
        now = 1_700_000_000.0
        assert parse_retry_after(formatdate(now - 300, usegmt=True), now=now) == 0.0

    def test_http_date_without_zone_is_utc(self) -> None:
        now = 1_700_000_000.0
        stamp = formatdate(now + 10, usegmt=True).replace(" GMT", " -0000")
        assert parse_retry_after(stamp, now=now) == pytest.approx(10.0)
