"""The emulator's rate limit (``FakeAtlassian.rate_limit``): a token bucket that answers 429 with Retry-After.

Used by ``make bench`` (creating pages under a limit of R calls per second). Time moves with ``fake.advance``;
the real time a test takes adds a few milliseconds' worth of calls, which never reaches one call here.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.knobs import TokenBucket
from airflow_provider_confluence.testing.pytest_plugin import fake_atlassian  # noqa: F401  (the fixture)


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:  # noqa: F811
    fake_atlassian.add_space("DEMO")
    yield fake_atlassian


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def refresh(http: requests.Session, fake: FakeAtlassian, token: str) -> requests.Response:
    body = {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": token,
    }
    return http.post(fake.token_url, json=body, timeout=5)


def bearer(http: requests.Session, fake: FakeAtlassian) -> dict[str, str]:
    response = refresh(http, fake, fake.issue_grant())
    assert response.status_code == 200
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


def spaces_url(fake: FakeAtlassian) -> str:
    return f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki/api/v2/spaces"


def test_calls_over_the_rate_answer_429_with_retry_after_and_are_not_processed(fake, http):
    headers = bearer(http, fake)
    fake.rate_limit(1)  # one call per second, bucket of one
    assert http.get(spaces_url(fake), headers=headers, timeout=5).status_code == 200
    space_id = fake.spaces[0]["id"]
    page = {"spaceId": space_id, "title": "Limited", "body": {"representation": "storage", "value": "<p>x</p>"}}
    limited = http.post(spaces_url(fake).replace("/spaces", "/pages"), json=page, headers=headers, timeout=5)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "1"  # the seconds until the next call is allowed, rounded up
    assert limited.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert "X-RateLimit-Reset" in limited.headers
    assert [p["title"] for p in fake.pages if p["title"] == "Limited"] == []  # not processed
    assert refresh(http, fake, fake.issue_grant()).status_code == 200  # the token endpoint is never limited
    fake.advance(1)
    created = http.post(spaces_url(fake).replace("/spaces", "/pages"), json=page, headers=headers, timeout=5)
    assert created.status_code == 200
    assert fake.counters["throttled"] == 1


def test_burst_refill_explicit_retry_after_and_removal(fake, http):
    headers = bearer(http, fake)
    fake.rate_limit(2, burst=3, retry_after="5")
    statuses = [http.get(spaces_url(fake), headers=headers, timeout=5).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert http.get(spaces_url(fake), headers=headers, timeout=5).headers["Retry-After"] == "5"
    fake.advance(1)  # two calls' worth at 2 per second
    statuses = [http.get(spaces_url(fake), headers=headers, timeout=5).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    fake.rate_limit(None)
    assert all(http.get(spaces_url(fake), headers=headers, timeout=5).status_code == 200 for _ in range(5))
    assert fake.counters["throttled"] == 3


def test_pending_throttling_comes_first_and_spends_nothing(fake, http):
    headers = bearer(http, fake)
    fake.rate_limit(1)
    fake.throttle(times=1, retry_after="9")
    first = http.get(spaces_url(fake), headers=headers, timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "9"
    assert http.get(spaces_url(fake), headers=headers, timeout=5).status_code == 200  # the bucket was still full


def test_token_bucket_arithmetic():
    now = [100.0]
    bucket = TokenBucket(4, 2, lambda: now[0])
    assert bucket.take() is None and bucket.take() is None
    assert bucket.take() == pytest.approx(0.25)
    now[0] += 0.25
    assert bucket.take() is None
    now[0] += 10  # refills up to the burst only
    assert [bucket.take() for _ in range(3)][:2] == [None, None]
    with pytest.raises(ValueError):
        TokenBucket(0, 1, lambda: 0.0)
