"""The points-quota headers (RateLimitStatus), the near-limit warning, and giving up on a wait longer than the
in-task budget (ConfluenceRateLimited with retry_at, reason and a listing's cursor). No sockets, no sleeping."""

from __future__ import annotations

import logging
import pickle
import random
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests_mock as rm

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.client.rate_limits import RateLimitStatus, parse_rate_limit, reset_epoch
from airflow_provider_confluence.exceptions import ConfluenceError, ConfluenceRateLimited
from airflow_provider_confluence.retry import RetryPolicy

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

API = "https://api.example.test"
GW = f"{API}/ex/confluence/cloud-1"
SPACES = f"{GW}/wiki/api/v2/spaces"
TOKEN = "at-QUOTA-5ecret-token"
#: the headers of an answer let through, as Atlassian sends them (and the emulator, testing/quota.py)
OK_HEADERS = {
    "Beta-RateLimit-Policy": '"tenant-app-quota";q=100;w=3600',
    "Beta-RateLimit": '"tenant-app-quota";r=12;t=2107',
    "X-Beta-RateLimit-Reason": "confluence-quota-tenant-based",
    "X-Beta-RateLimit-NearLimit": "true",
}
#: the headers of the 429 of an exhausted quota: no policy, r=0, a reset moment
REFUSED_HEADERS = {
    "Retry-After": "1800",
    "Beta-RateLimit": '"tenant-app-quota";r=0;t=1800',
    "X-Beta-RateLimit-Reason": "confluence-quota-tenant-based",
    "X-Beta-RateLimit-Reset": "2026-03-26T17:00Z",
}
TOO_MANY = {"errors": [{"status": 429, "code": "TOO_MANY_REQUESTS", "title": "Rate limit exceeded"}]}


class Tokens:
    def get_access_token(self) -> str:
        return TOKEN

    def refresh_rejected(self, rejected_token: str) -> str:
        return TOKEN

    def access_token_expired(self) -> bool:
        return False


def client(sleeps: list[float]) -> ConfluenceClient:
    return ConfluenceClient(
        api_url=API,
        cloud_id="cloud-1",
        tokens=Tokens(),
        retry=RetryPolicy(rng=random.Random(7)),
        sleep=sleeps.append,
    )


# ----------------------------------------------------------------------------------------- parsing the headers


def test_the_headers_of_an_answer_that_was_let_through() -> None:
    status = parse_rate_limit(OK_HEADERS)
    assert status == RateLimitStatus(
        policy="tenant-app-quota",
        quota=100,
        remaining=12,
        reset_seconds=2107.0,
        window_seconds=3600.0,
        near_limit=True,
        reason="confluence-quota-tenant-based",
    )
    assert status.known and status.resets_at(1000.0) == 3107.0
    assert status.describe() == "tenant-app-quota: 12 of 100 points left, resets in 2107 s"


def test_the_headers_of_the_429_of_an_exhausted_quota() -> None:
    status = parse_rate_limit(REFUSED_HEADERS)
    assert (status.policy, status.quota, status.remaining, status.reset_seconds) == (
        "tenant-app-quota",
        None,
        0,
        1800.0,
    )
    assert status.reset_at == reset_epoch("2026-03-26T17:00Z") == 1774544400.0
    assert status.near_limit is False


def test_with_two_pools_the_one_with_fewest_points_left_limits_the_app() -> None:
    status = parse_rate_limit(
        {
            "beta-ratelimit": '"tenant-app-quota";r=50;t=100, "global-app-quota";r=3;t=900',
            "beta-ratelimit-policy": '"tenant-app-quota";q=100;w=3600, "global-app-quota";q=500;w=3600',
        }
    )
    assert (status.policy, status.remaining, status.reset_seconds, status.quota) == ("global-app-quota", 3, 900.0, 500)


def test_the_older_near_limit_header_counts_too() -> None:
    assert parse_rate_limit({"X-RateLimit-NearLimit": "TRUE"}).near_limit


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Beta-RateLimit": "garbage;;;"},
        {"Beta-RateLimit": '"p";r=-4;t=x'},
        {"Beta-RateLimit": '"p";r=nan;t=inf'},
        {"Beta-RateLimit-Policy": '"p";q=lots'},
        {"X-Beta-RateLimit-Reset": "soon"},
        {"X-Beta-RateLimit-NearLimit": "yes"},
    ],
)
def test_malformed_or_missing_headers_give_unknowns_never_an_error(headers: dict[str, str]) -> None:
    status = parse_rate_limit(headers)
    assert status.remaining is None and status.reset_seconds is None and status.reset_at is None
    assert status.quota is None and not status.near_limit


# ----------------------------------------------------------------------------------------- the near-limit warning


def test_near_the_limit_warns_once_per_window_and_never_logs_the_token(
    requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
) -> None:
    requests_mock.get(f"{SPACES}/1", json={"id": "1"}, headers=OK_HEADERS)
    c = client([])
    with caplog.at_level(logging.DEBUG, logger="airflow_provider_confluence"):
        for _ in range(3):
            c.get_space("1")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "tenant-app-quota: 12 of 100 points left" in warnings[0]
    assert "confluence-quota-tenant-based" in warnings[0]
    assert not any(TOKEN in r.getMessage() for r in caplog.records)
    assert c.rate_limit is not None and c.rate_limit.remaining == 12


def test_a_new_window_warns_again(requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture) -> None:
    later = {**OK_HEADERS, "Beta-RateLimit": '"tenant-app-quota";r=10;t=5707'}  # an hour further
    requests_mock.get(f"{SPACES}/1", [{"json": {"id": "1"}, "headers": OK_HEADERS}, {"json": {}, "headers": later}])
    c = client([])
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence"):
        c.get_space("1")
        c.get_space("1")
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 2


def test_far_from_the_limit_nothing_is_logged(requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture) -> None:
    headers = {k: v for k, v in OK_HEADERS.items() if k != "X-Beta-RateLimit-NearLimit"}
    requests_mock.get(f"{SPACES}/1", json={"id": "1"}, headers=headers)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence"):
        client([]).get_space("1")
    assert caplog.records == []


# ----------------------------------------------------------------------------------------- giving up early


def test_a_wait_longer_than_the_budget_is_not_slept_but_raised_with_retry_at(requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{SPACES}/1", status_code=429, json=TOO_MANY, headers=REFUSED_HEADERS)
    sleeps: list[float] = []
    before = time.time()
    with pytest.raises(ConfluenceRateLimited) as info:
        client(sleeps).get_space("1")
    exc = info.value
    assert sleeps == [] and requests_mock.call_count == 1
    assert exc.retry_after == 1800.0 and exc.reason == "confluence-quota-tenant-based"
    assert exc.retry_at is not None and before + 1800 <= exc.retry_at <= time.time() + 1800
    again = pickle.loads(pickle.dumps(exc))
    assert (again.retry_at, again.reason) == (exc.retry_at, exc.reason)
    event = ConfluenceError.from_event(exc.to_event())
    assert isinstance(event, ConfluenceRateLimited) and (event.retry_at, event.reason) == (exc.retry_at, exc.reason)


def test_without_retry_after_the_quota_reset_says_when(requests_mock: rm.Mocker) -> None:
    headers = {k: v for k, v in REFUSED_HEADERS.items() if k != "Retry-After"}
    requests_mock.get(f"{SPACES}/1", status_code=429, json=TOO_MANY, headers=headers)
    before = time.time()
    with pytest.raises(ConfluenceRateLimited) as info:
        client([]).get_space("1")
    assert info.value.retry_at is not None and before + 1800 <= info.value.retry_at <= time.time() + 1800


def test_an_absurd_retry_after_is_still_capped_and_retried_not_believed(requests_mock: rm.Mocker) -> None:
    requests_mock.get(
        f"{SPACES}/1",
        [{"status_code": 429, "headers": {"Retry-After": "9223372036854775807"}}, {"json": {"id": "1"}}],
    )
    sleeps: list[float] = []
    assert client(sleeps).get_space("1") == {"id": "1"}
    assert len(sleeps) == 1 and 60.0 <= sleeps[0] <= 61.0


def test_a_short_burst_limit_is_still_waited_out_in_the_task(requests_mock: rm.Mocker) -> None:
    requests_mock.get(f"{SPACES}/1", [{"status_code": 429, "headers": {"Retry-After": "5"}}, {"json": {"id": "1"}}])
    sleeps: list[float] = []
    assert client(sleeps).get_space("1") == {"id": "1"}
    assert len(sleeps) == 1 and 5.0 <= sleeps[0] <= 5.5


@pytest.mark.parametrize(
    ("waited", "retry_after", "outlasts"),
    [(0, 181, True), (0, 180, False), (170, 11, True), (0, None, False), (0, float("nan"), False), (0, 7201, False)],
)
def test_outlasts_budget(waited: float, retry_after: float | None, outlasts: bool) -> None:
    assert RetryPolicy().outlasts_budget(waited, retry_after) is outlasts


def test_max_retry_after_is_checked() -> None:
    with pytest.raises(ValueError, match="max_retry_after"):
        RetryPolicy(max_retry_after=float("inf"))


# ----------------------------------------------------------------------------------------- a listing's cursor


def test_a_listing_refused_midway_says_where_to_resume_and_resumes_there(requests_mock: rm.Mocker) -> None:
    first = {"results": [{"id": "1"}, {"id": "2"}], "_links": {"next": "/wiki/api/v2/spaces?cursor=PAGE2&limit=2"}}
    second = {"results": [{"id": "3"}], "_links": {}}
    requests_mock.get(SPACES, json=first)
    requests_mock.get(f"{SPACES}?cursor=PAGE2", status_code=429, json=TOO_MANY, headers=REFUSED_HEADERS)
    c = client([])
    seen: list[str] = []
    with pytest.raises(ConfluenceRateLimited) as info:
        for space in c.iter_spaces():
            seen.append(space["id"])
    assert seen == ["1", "2"]
    cursor = info.value.progress["cursor"]
    assert parse_qs(urlsplit(cursor).query)["cursor"] == ["PAGE2"] and cursor.startswith(GW)
    assert ConfluenceError.from_event(info.value.to_event()).progress == {"cursor": cursor}  # type: ignore[attr-defined]

    requests_mock.reset_mock()
    requests_mock.get(f"{SPACES}?cursor=PAGE2", json=second)
    assert [s["id"] for s in c.iter_spaces(cursor=cursor)] == ["3"]
    assert [r.url for r in requests_mock.request_history] == [cursor]  # not the first page again


def test_a_cursor_on_another_host_is_refused(requests_mock: rm.Mocker) -> None:
    with pytest.raises(ConfluenceError):
        list(client([]).iter_spaces(cursor="https://evil.example/wiki/api/v2/spaces?cursor=X"))
    assert requests_mock.call_count == 0
