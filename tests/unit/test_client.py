"""Unit tests of ConfluenceClient over requests-mock (no sockets, no sleeping)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import requests_mock as rm

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceConflict,
    ConfluenceError,
    ConfluenceGone,
    ConfluenceNotFound,
    ConfluenceRateLimited,
    ConfluenceScopeError,
    ConfluenceSpaceMissing,
)
from airflow_provider_confluence.retry import RetryPolicy

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

API = "https://api.example.test"
CLOUD = "cloud-1"
GW = f"{API}/ex/confluence/{CLOUD}"
PAGES = f"{GW}/wiki/api/v2/pages"
SPACES = f"{GW}/wiki/api/v2/spaces"
SITE = "https://acme.atlassian.net"
TOKEN_1 = "at-FIRST-5ecret-token"
TOKEN_2 = "at-SECOND-5ecret-token"
REFRESHED = "at-REFRESHED-5ecret-token"
PAGE = {
    "id": "9001",
    "status": "current",
    "title": "Weekly report",
    "spaceId": "42",
    "version": {"number": 1},
    "_links": {"webui": "/spaces/DOCS/pages/9001", "base": f"{SITE}/wiki"},
}
SCOPE_BODY = {"code": 401, "message": "Unauthorized; scope does not match"}


class FakeTokens:
    """An AccessTokenSource that records how it was used."""

    def __init__(self, tokens: tuple[str, ...] = (TOKEN_1,), *, expired: bool = False) -> None:
        self.tokens = list(tokens)
        self.expired = expired
        self.handed_out: list[str] = []
        self.rejected: list[str] = []

    def get_access_token(self) -> str:
        token = self.tokens[min(len(self.handed_out), len(self.tokens) - 1)]
        self.handed_out.append(token)
        return token

    def refresh_rejected(self, rejected_token: str) -> str:
        self.rejected.append(rejected_token)
        self.expired = False
        return REFRESHED

    def access_token_expired(self) -> bool:
        return self.expired


class Harness:
    def __init__(self, tokens: FakeTokens | None = None, retry: RetryPolicy | None = None) -> None:
        self.tokens = tokens or FakeTokens()
        self.sleeps: list[float] = []
        self.client = ConfluenceClient(
            api_url=API + "/",
            cloud_id=CLOUD,
            tokens=self.tokens,
            site_url=SITE,
            timeout=12.5,
            retry=retry or RetryPolicy(rng=random.Random(42)),
            sleep=self.sleeps.append,
        )


@pytest.fixture
def h() -> Harness:
    return Harness()


def sent(m: rm.Mocker, method: str | None = None) -> list[Any]:
    return [r for r in m.request_history if method is None or r.method == method]


def last(m: rm.Mocker) -> Any:
    request = m.last_request
    assert request is not None
    return request


def query(request: Any) -> dict[str, list[str]]:
    return parse_qs(urlsplit(request.url).query)


class TestBasics:
    def test_gateway_base_and_lazy_cloud_id(self) -> None:
        calls: list[int] = []

        def find() -> str:
            calls.append(1)
            return "lazy-id"

        client = ConfluenceClient(api_url=API + "/", cloud_id=find, tokens=FakeTokens())
        assert calls == []  # nothing resolved (no network) in __init__
        assert client.gateway_base == f"{API}/ex/confluence/lazy-id"
        assert client.gateway_base == f"{API}/ex/confluence/lazy-id"
        assert calls == [1]

    @pytest.mark.parametrize("cloud_id", ["", "  ", "a/b"])
    def test_unusable_cloud_id(self, cloud_id: str) -> None:
        client = ConfluenceClient(api_url=API, cloud_id=cloud_id, tokens=FakeTokens())
        with pytest.raises(ConfluenceConfigError):
            _ = client.gateway_base

    def test_bad_api_url(self) -> None:
        with pytest.raises(ConfluenceConfigError):
            ConfluenceClient(api_url="api.atlassian.com", cloud_id=CLOUD, tokens=FakeTokens())

    def test_request_sends_bearer_accept_and_timeout_and_parses_json(
        self, h: Harness, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.get(f"{SPACES}/42", json={"id": "42", "key": "DOCS"})
        assert h.client.request("GET", "/wiki/api/v2/spaces/42") == {"id": "42", "key": "DOCS"}
        req = last(requests_mock)
        assert req.headers["Authorization"] == f"Bearer {TOKEN_1}"
        assert req.headers["Accept"] == "application/json"
        assert req.timeout == 12.5

    def test_absolute_gateway_url_and_path_without_slash(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{SPACES}/1", json={"id": "1"})
        assert h.client.request("GET", f"{SPACES}/1") == {"id": "1"}
        assert h.client.request("GET", "wiki/api/v2/spaces/1") == {"id": "1"}

    def test_absolute_url_on_another_host_is_refused_before_sending(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get("https://evil.example.com/wiki/api/v2/pages", json={})
        with pytest.raises(ConfluenceError):
            h.client.request("GET", "https://evil.example.com/wiki/api/v2/pages")
        assert requests_mock.call_count == 0
        assert h.tokens.handed_out == []

    def test_204_gives_none(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.delete(f"{PAGES}/5", status_code=204)
        assert h.client.request("DELETE", "/wiki/api/v2/pages/5") is None

    def test_non_json_success_is_an_api_error(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(PAGES, text="<html>login</html>", headers={"Content-Type": "text/html"})
        with pytest.raises(ConfluenceApiError, match="not JSON"):
            h.client.request("GET", "/wiki/api/v2/pages")

    def test_a_fresh_token_is_fetched_for_every_request(self, requests_mock: rm.Mocker) -> None:
        h = Harness(FakeTokens((TOKEN_1, TOKEN_2)))
        requests_mock.get(f"{SPACES}/1", json={"id": "1"})
        h.client.request("GET", "/wiki/api/v2/spaces/1")
        h.client.request("GET", "/wiki/api/v2/spaces/1")
        assert [r.headers["Authorization"] for r in sent(requests_mock)] == [f"Bearer {TOKEN_1}", f"Bearer {TOKEN_2}"]
        assert h.tokens.handed_out == [TOKEN_1, TOKEN_2]

    def test_a_fresh_token_is_fetched_for_every_retry_and_every_page(self, requests_mock: rm.Mocker) -> None:
        h = Harness(FakeTokens(("t-1", "t-2", "t-3")))
        requests_mock.get(
            SPACES,
            [
                {"status_code": 503, "headers": {"Retry-After": "1"}},
                {"json": {"results": [{"id": "1"}], "_links": {"next": "/wiki/api/v2/spaces?cursor=2"}}},
                {"json": {"results": [{"id": "2"}], "_links": {}}},
            ],
        )
        assert [s["id"] for s in h.client.paginate("/wiki/api/v2/spaces")] == ["1", "2"]
        assert [r.headers["Authorization"] for r in sent(requests_mock)] == ["Bearer t-1", "Bearer t-2", "Bearer t-3"]


class TestRateLimitsAndBackoff:
    def test_429_retry_after_is_capped_at_60_with_jitter_on_top(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            PAGES,
            [{"status_code": 429, "headers": {"Retry-After": "9223372036854775807"}}, {"json": {"results": []}}],
        )
        assert h.client.request("GET", "/wiki/api/v2/pages") == {"results": []}
        assert len(h.sleeps) == 1
        assert 60.0 <= h.sleeps[0] <= 61.0

    def test_429_retry_after_is_never_undercut(self, requests_mock: rm.Mocker) -> None:
        for seed in range(20):
            h = Harness(retry=RetryPolicy(rng=random.Random(seed)))
            requests_mock.get(PAGES, [{"status_code": 429, "headers": {"Retry-After": "7"}}, {"json": {}}])
            h.client.request("GET", "/wiki/api/v2/pages")
            assert 7.0 <= h.sleeps[0] <= 7.7

    def test_429_http_date_form(self, h: Harness, requests_mock: rm.Mocker) -> None:
        when = formatdate(time.time() + 30, usegmt=True)
        requests_mock.get(PAGES, [{"status_code": 429, "headers": {"Retry-After": when}}, {"json": {}}])
        h.client.request("GET", "/wiki/api/v2/pages")
        assert 27.0 <= h.sleeps[0] <= 32.0

    def test_429_without_retry_after_backs_off(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(PAGES, [{"status_code": 429}, {"json": {}}])
        h.client.request("GET", "/wiki/api/v2/pages")
        assert 0.25 <= h.sleeps[0] <= 0.5

    def test_429_exhausted_raises_rate_limited_with_retry_after(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            PAGES, status_code=429, headers={"Retry-After": "20"}, json={"code": 429, "message": "Too many"}
        )
        with pytest.raises(ConfluenceRateLimited) as info:
            h.client.request("GET", "/wiki/api/v2/pages")
        assert info.value.retry_after == 20.0
        # told when to come back: tried until the waits reach max_total_wait (180 s), not after max_attempts (6)
        assert len(h.sleeps) == requests_mock.call_count - 1 == 8
        assert all(20.0 <= s <= 21.0 for s in h.sleeps) and sum(h.sleeps) <= 180.0

    def test_long_retry_after_is_not_slept_but_raised_at_once(self, h: Harness, requests_mock: rm.Mocker) -> None:
        # an hour is longer than the 180 s a task may sleep: sleeping part of it would only end in giving up
        requests_mock.get(PAGES, status_code=429, headers={"Retry-After": "3600"})
        before = time.time()
        with pytest.raises(ConfluenceRateLimited) as info:
            h.client.request("GET", "/wiki/api/v2/pages")
        assert info.value.retry_after == 3600.0
        assert info.value.retry_at is not None and info.value.retry_at >= before + 3600
        assert h.sleeps == [] and requests_mock.call_count == 1

    def test_503_with_retry_after_is_retried(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{SPACES}/1", [{"status_code": 503, "headers": {"Retry-After": "4"}}, {"json": {"id": "1"}}])
        assert h.client.get_space("1") == {"id": "1"}
        assert len(h.sleeps) == 1 and 4.0 <= h.sleeps[0] <= 4.4

    @pytest.mark.parametrize("status", [502, 503, 504])
    def test_5xx_backoff_is_bounded_by_attempts(self, h: Harness, requests_mock: rm.Mocker, status: int) -> None:
        requests_mock.get(PAGES, status_code=status, text="<html><title>Bad</title></html>")
        with pytest.raises(ConfluenceApiError) as info:
            h.client.request("GET", "/wiki/api/v2/pages")
        assert info.value.status_code == status
        assert requests_mock.call_count == 6
        assert len(h.sleeps) == 5
        for attempt, delay in enumerate(h.sleeps, start=1):
            step = min(30.0, 0.5 * 2 ** (attempt - 1))
            assert step / 2 <= delay <= step

    def test_5xx_backoff_is_bounded_by_total_wait(self, requests_mock: rm.Mocker) -> None:
        policy = RetryPolicy(
            max_attempts=1000, max_total_wait=20.0, base_delay=1.0, max_delay=8.0, rng=random.Random(1)
        )
        h = Harness(retry=policy)
        requests_mock.get(PAGES, status_code=504)
        with pytest.raises(ConfluenceApiError):
            h.client.request("GET", "/wiki/api/v2/pages")
        assert 0 < sum(h.sleeps) <= 20.0
        assert requests_mock.call_count == len(h.sleeps) + 1 < 1000

    def test_500_is_not_retried(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(PAGES, status_code=500)
        with pytest.raises(ConfluenceApiError):
            h.client.request("GET", "/wiki/api/v2/pages")
        assert requests_mock.call_count == 1 and h.sleeps == []

    @pytest.mark.parametrize(
        "exc",
        [requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout, requests.exceptions.ReadTimeout],
    )
    def test_get_connection_errors_back_off_then_succeed(
        self, h: Harness, requests_mock: rm.Mocker, exc: type[Exception]
    ) -> None:
        requests_mock.get(PAGES, [{"exc": exc}, {"exc": exc}, {"json": {"ok": True}}])
        assert h.client.request("GET", "/wiki/api/v2/pages") == {"ok": True}
        assert len(h.sleeps) == 2

    def test_get_connection_errors_exhausted_raise_confluence_error(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(PAGES, exc=requests.exceptions.ReadTimeout)
        with pytest.raises(ConfluenceError, match="failed after 6 tries") as info:
            h.client.request("GET", "/wiki/api/v2/pages")
        assert not isinstance(info.value, ConfluenceApiError)
        assert requests_mock.call_count == 6

    def test_rate_limit_warnings_are_not_slept_on(
        self, h: Harness, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture
    ) -> None:
        headers = {"X-RateLimit-NearLimit": "true", "Beta-Retry-After": "120", "X-Beta-RateLimit-Reset": "1"}
        requests_mock.get(PAGES, json={"results": []}, headers=headers)
        with caplog.at_level(logging.DEBUG, logger="airflow_provider_confluence"):
            h.client.request("GET", "/wiki/api/v2/pages")
        assert h.sleeps == []
        assert requests_mock.call_count == 1
        assert any("rate-limit warning" in r.getMessage() and r.levelno == logging.DEBUG for r in caplog.records)

    def test_put_is_retried_after_502(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.put(f"{PAGES}/9001", [{"status_code": 502}, {"json": PAGE}])
        page = h.client.update_page(page_id="9001", title="Weekly report", body="<p>x</p>", version=2)
        assert page["id"] == "9001"
        assert len(sent(requests_mock, "PUT")) == 2


class TestCreatePageNeverSentTwice:
    FIND = f"{PAGES}?space-id=42&title=Weekly+report&status=current"

    @pytest.mark.parametrize(
        "failure",
        [
            {"status_code": 502, "text": "<html><title>502 Bad Gateway</title></html>"},
            {"status_code": 503, "headers": {"Retry-After": "1"}},
            {"status_code": 500},
            {"exc": requests.exceptions.ConnectTimeout},
            {"exc": requests.exceptions.ReadTimeout},
            {"exc": requests.exceptions.ConnectionError},
        ],
    )
    def test_landed_post_is_found_and_returned(
        self, h: Harness, requests_mock: rm.Mocker, failure: dict[str, Any], caplog: pytest.LogCaptureFixture
    ) -> None:
        requests_mock.post(PAGES, [failure, {"json": PAGE}])
        listing = {
            "results": [{k: v for k, v in PAGE.items() if k != "_links"} | {"_links": {"webui": "/x"}}],
            "_links": {"base": f"{SITE}/wiki"},
        }
        requests_mock.get(PAGES, json=listing)
        with caplog.at_level(logging.INFO):
            page = h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>")
        assert len(sent(requests_mock, "POST")) == 1
        assert page["id"] == "9001"
        assert page["_links"]["base"] == f"{SITE}/wiki"
        check = sent(requests_mock, "GET")
        assert len(check) == 1
        assert query(check[0]) == {"space-id": ["42"], "title": ["Weekly report"], "status": ["current"]}
        assert "had landed" in caplog.text
        assert h.sleeps == []

    @pytest.mark.parametrize(
        ("failure", "error_type"),
        [
            ({"status_code": 502}, ConfluenceApiError),
            ({"status_code": 504}, ConfluenceApiError),
            ({"exc": requests.exceptions.ConnectTimeout}, ConfluenceError),
            ({"exc": requests.exceptions.ReadTimeout}, ConfluenceError),
        ],
    )
    def test_post_that_did_not_land_raises_the_original_error(
        self, h: Harness, requests_mock: rm.Mocker, failure: dict[str, Any], error_type: type[Exception]
    ) -> None:
        requests_mock.post(PAGES, [failure, {"json": PAGE}])
        requests_mock.get(PAGES, json={"results": [], "_links": {}})
        with pytest.raises(error_type, match="The page was not created") as info:
            h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>")
        assert "task may be retried" in str(info.value)
        if isinstance(info.value, ConfluenceApiError):
            assert info.value.status_code == failure["status_code"] and info.value.method == "POST"
        assert len(sent(requests_mock, "POST")) == 1

    def test_when_the_check_itself_fails_the_original_error_is_raised(
        self, h: Harness, requests_mock: rm.Mocker
    ) -> None:
        requests_mock.post(PAGES, status_code=502)
        requests_mock.get(PAGES, status_code=500)
        with pytest.raises(ConfluenceApiError, match="could not be checked") as info:
            h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>")
        assert info.value.status_code == 502
        assert len(sent(requests_mock, "POST")) == 1

    def test_post_hitting_429_is_retried(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.post(PAGES, [{"status_code": 429, "headers": {"Retry-After": "2"}}, {"json": PAGE}])
        page = h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>")
        assert page["id"] == "9001"
        assert len(sent(requests_mock, "POST")) == 2
        assert len(h.sleeps) == 1 and 2.0 <= h.sleeps[0] <= 2.2
        assert not sent(requests_mock, "GET")

    def test_duplicate_title_is_raised_without_a_check(self, h: Harness, requests_mock: rm.Mocker) -> None:
        title = "A page with this title already exists: A page already exists with the same TITLE in this space"
        requests_mock.post(
            PAGES,
            status_code=400,
            json={"errors": [{"status": 400, "code": "BAD_REQUEST", "title": title, "detail": None}]},
        )
        with pytest.raises(ConfluenceApiError) as info:
            h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>")
        assert info.value.status_code == 400 and info.value.code == "BAD_REQUEST"
        assert title in info.value.detail
        assert requests_mock.call_count == 1


class TestAuthFailures:
    def test_401_refreshes_once_and_retries_with_the_new_token(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            f"{PAGES}/1",
            [{"status_code": 401, "json": {"code": 401, "message": "Unauthorized"}}, {"json": {"id": "1"}}],
        )
        assert h.client.get_page("1")["id"] == "1"
        assert h.tokens.rejected == [TOKEN_1]
        assert [r.headers["Authorization"] for r in sent(requests_mock)] == [f"Bearer {TOKEN_1}", f"Bearer {REFRESHED}"]
        assert h.sleeps == []

    def test_second_401_raises(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{PAGES}/1", status_code=401, json={"code": 401, "message": "Unauthorized"})
        with pytest.raises(ConfluenceApiError) as info:
            h.client.get_page("1")
        assert info.value.status_code == 401 and not isinstance(info.value, ConfluenceScopeError)
        assert h.tokens.rejected == [TOKEN_1]
        assert requests_mock.call_count == 2

    def test_scope_mismatch_raises_at_once_naming_the_scope(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, status_code=401, json=SCOPE_BODY)
        with pytest.raises(ConfluenceScopeError) as info:
            list(h.client.iter_spaces())
        assert "read:space:confluence" in str(info.value)
        assert h.tokens.rejected == []
        assert requests_mock.call_count == 1

    def test_scope_mismatch_on_create_names_write_scope(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.post(PAGES, status_code=401, json=SCOPE_BODY)
        with pytest.raises(ConfluenceScopeError, match="write:page:confluence"):
            h.client.create_page(space_id="42", title="t", body="b")

    @pytest.mark.parametrize("status", [403, 404])
    def test_403_404_with_unexpired_token_costs_no_refresh(
        self, h: Harness, requests_mock: rm.Mocker, status: int
    ) -> None:
        requests_mock.get(f"{PAGES}/404", status_code=status, json={"errors": [{"status": status, "title": "Nope"}]})
        with pytest.raises(ConfluenceApiError) as info:
            h.client.get_page("404")
        assert info.value.status_code == status
        assert isinstance(info.value, ConfluenceNotFound) == (status == 404)
        assert h.tokens.rejected == []
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize("status", [403, 404])
    def test_403_404_with_expired_stored_token_refreshes_and_retries(
        self, requests_mock: rm.Mocker, status: int
    ) -> None:
        h = Harness(FakeTokens(expired=True))
        requests_mock.get(f"{PAGES}/7", [{"status_code": status}, {"json": {"id": "7"}}])
        assert h.client.get_page("7")["id"] == "7"
        assert h.tokens.rejected == [TOKEN_1]
        assert last(requests_mock).headers["Authorization"] == f"Bearer {REFRESHED}"

    def test_404_after_the_refresh_is_a_real_404(self, requests_mock: rm.Mocker) -> None:
        h = Harness(FakeTokens(expired=True))
        requests_mock.get(f"{PAGES}/7", status_code=404)
        with pytest.raises(ConfluenceNotFound, match="cannot see it"):
            h.client.get_page("7")
        assert len(h.tokens.rejected) == 1 and requests_mock.call_count == 2

    def test_410_v1_endpoint_is_gone(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            f"{GW}/wiki/rest/api/space",
            status_code=410,
            json={
                "statusCode": 410,
                "data": {"authorized": True, "valid": True, "errors": [], "successful": True},
                "message": "com.atlassian.confluence.api.service.exceptions.pagesmodes.GoneException: "
                "This deprecated endpoint has been removed.",
            },
        )
        with pytest.raises(ConfluenceGone, match="use the v2 API"):
            h.client.request("GET", "/wiki/rest/api/space")
        assert requests_mock.call_count == 1


def serve_pages(total: int, *, via_link_header: bool = False, cursor_first: bool = True):  # type: ignore[no-untyped-def]
    """A requests-mock callback listing ``total`` items, 250 (or ``limit``) per page, with opaque cursors."""

    def callback(request: Any, context: Any) -> dict[str, Any]:
        q = query(request)
        limit = int(q.get("limit", ["25"])[0])
        start = int(q["cursor"][0].removeprefix("c")) if "cursor" in q else 0
        items = [{"id": str(i)} for i in range(start, min(start + limit, total))]
        body: dict[str, Any] = {"results": items, "_links": {"base": f"{SITE}/wiki"}}
        if start + limit < total:
            nxt = (
                f"/wiki/api/v2/spaces?cursor=c{start + limit}&limit={limit}"
                if cursor_first
                else f"/wiki/api/v2/spaces?limit={limit}&cursor=c{start + limit}&status=current"
            )
            if via_link_header:
                context.headers["Link"] = f'<{nxt}>; rel="next"'
            else:
                body["_links"]["next"] = nxt
        return body

    return callback


class TestPagination:
    @pytest.mark.parametrize(("via_link_header", "cursor_first"), [(False, True), (False, False), (True, False)])
    def test_1000_plus_items_each_once(
        self, h: Harness, requests_mock: rm.Mocker, via_link_header: bool, cursor_first: bool
    ) -> None:
        requests_mock.get(SPACES, json=serve_pages(1_234, via_link_header=via_link_header, cursor_first=cursor_first))
        ids = [item["id"] for item in h.client.paginate("/wiki/api/v2/spaces", {"status": "current"})]
        assert ids == [str(i) for i in range(1_234)]
        history = sent(requests_mock)
        assert len(history) == 5
        assert query(history[0]) == {"limit": ["250"], "status": ["current"]}
        assert all(query(r)["limit"] == ["250"] for r in history)
        assert all("/wiki/wiki" not in r.url and r.url.startswith(f"{SPACES}?") for r in history)

    def test_caller_limit_is_kept(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json=serve_pages(30))
        assert len(list(h.client.paginate("/wiki/api/v2/spaces", {"limit": 10}))) == 30
        assert requests_mock.call_count == 3

    def test_items_are_yielded_lazily(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json=serve_pages(1_000))
        iterator: Iterator[dict[str, Any]] = h.client.paginate("/wiki/api/v2/spaces")
        assert requests_mock.call_count == 0
        assert next(iterator)["id"] == "0"
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize(
        "links",
        [
            ["/wiki/api/v2/spaces?cursor=A", "/wiki/api/v2/spaces?cursor=A"],
            ["/wiki/api/v2/spaces?cursor=A", "/wiki/api/v2/spaces?cursor=B", "/wiki/api/v2/spaces?cursor=A"],
            ["/wiki/api/v2/spaces?limit=250"],  # points back at the first page
        ],
    )
    def test_looping_cursor_raises(self, h: Harness, requests_mock: rm.Mocker, links: list[str]) -> None:
        responses = [{"json": {"results": [{"id": str(i)}], "_links": {"next": link}}} for i, link in enumerate(links)]
        responses.append({"json": {"results": [], "_links": {}}})
        requests_mock.get(SPACES, responses)
        seen: list[str] = []
        with pytest.raises(ConfluenceError, match="already followed"):
            for item in h.client.paginate("/wiki/api/v2/spaces"):
                seen.append(item["id"])
        assert requests_mock.call_count == len(links)
        assert len(seen) == len(links)

    def test_next_link_to_another_host_is_refused(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(
            SPACES, json={"results": [{"id": "1"}], "_links": {"next": "https://evil.example.com/wiki/x"}}
        )
        requests_mock.get("https://evil.example.com/wiki/x", json={"results": []})
        with pytest.raises(ConfluenceError, match="Refusing"):
            list(h.client.paginate("/wiki/api/v2/spaces"))
        assert all(r.hostname == "api.example.test" for r in sent(requests_mock))

    def test_listing_without_results_is_an_error(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json={"id": "1"})
        with pytest.raises(ConfluenceApiError, match="no 'results'"):
            list(h.client.paginate("/wiki/api/v2/spaces"))


class TestTypedApi:
    def test_iter_spaces_filters(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json={"results": [{"id": "1", "key": "A"}], "_links": {}})
        spaces = list(h.client.iter_spaces(keys=["A", "B"], space_type="global", status="current", labels="x,y"))
        assert spaces == [{"id": "1", "key": "A"}]
        assert query(last(requests_mock)) == {
            "keys": ["A,B"],
            "type": ["global"],
            "status": ["current"],
            "labels": ["x,y"],
            "limit": ["250"],
        }

    def test_get_space_id(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json={"results": [{"id": 98304, "key": "DOCS"}], "_links": {}})
        assert h.client.get_space_id("DOCS") == "98304"
        assert query(last(requests_mock)) == {"keys": ["DOCS"]}

    def test_unknown_space_key(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(SPACES, json={"results": [], "_links": {}})
        with pytest.raises(ConfluenceSpaceMissing, match="No space with key 'NOPE'") as caught:
            h.client.get_space_id("NOPE")
        assert caught.value.space_key == "NOPE" and caught.value.status_code is None  # Confluence answered 200

    def test_empty_space_key(self, h: Harness) -> None:
        with pytest.raises(ConfluenceConfigError):
            h.client.get_space_id("  ")

    def test_get_page_with_body_format_keeps_links_base(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{PAGES}/9001", json=PAGE)
        page = h.client.get_page("9001", body_format="storage")
        assert page["_links"]["base"] == f"{SITE}/wiki"
        assert query(last(requests_mock)) == {"body-format": ["storage"]}

    def test_get_page_without_base_gets_the_sites(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{PAGES}/9001", json={"id": "9001", "_links": {"webui": "/x"}})
        assert h.client.get_page("9001")["_links"] == {"webui": "/x", "base": f"{SITE}/wiki"}

    def test_get_page_id_is_quoted(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(f"{PAGES}/..%2Fspaces", json={"id": "x"})
        h.client.get_page("../spaces")
        assert last(requests_mock).path == "/ex/confluence/cloud-1/wiki/api/v2/pages/..%2fspaces"

    def test_find_page(self, h: Harness, requests_mock: rm.Mocker) -> None:
        listing = {
            "results": [{"id": "1", "title": "weekly REPORT"}, {"id": "2", "title": "Weekly report"}],
            "_links": {"base": f"{SITE}/wiki"},
        }
        requests_mock.get(PAGES, json=listing)
        page = h.client.find_page(space_id="42", title="Weekly report", body_format="storage")
        assert page is not None and page["id"] == "2"
        assert page["_links"]["base"] == f"{SITE}/wiki"
        assert query(last(requests_mock)) == {
            "space-id": ["42"],
            "title": ["Weekly report"],
            "status": ["current"],
            "body-format": ["storage"],
        }

    def test_find_page_none(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.get(PAGES, json={"results": [], "_links": {}})
        assert h.client.find_page(space_id="42", title="Nope") is None

    def test_create_page_body_and_200(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.post(PAGES, status_code=200, json=PAGE)
        page = h.client.create_page(space_id="42", title="Weekly report", body="<p>hi</p>", parent_id="7")
        assert page == PAGE
        assert last(requests_mock).json() == {
            "spaceId": "42",
            "status": "current",
            "title": "Weekly report",
            "parentId": "7",
            "body": {"representation": "storage", "value": "<p>hi</p>"},
        }

    def test_create_page_without_parent(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.post(PAGES, json=PAGE)
        h.client.create_page(space_id="42", title="T", body="x", representation="wiki", status="draft")
        assert last(requests_mock).json() == {
            "spaceId": "42",
            "status": "draft",
            "title": "T",
            "body": {"representation": "wiki", "value": "x"},
        }

    def test_update_page_body(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.put(f"{PAGES}/9001", json=PAGE | {"version": {"number": 5}})
        page = h.client.update_page(page_id="9001", title="T", body="<p>v5</p>", version=5, message="nightly")
        assert page["version"]["number"] == 5
        assert last(requests_mock).json() == {
            "id": "9001",
            "status": "current",
            "title": "T",
            "body": {"representation": "storage", "value": "<p>v5</p>"},
            "version": {"number": 5, "message": "nightly"},
        }

    def test_update_conflict(self, h: Harness, requests_mock: rm.Mocker) -> None:
        body = {
            "errors": [
                {
                    "status": 409,
                    "code": "CONFLICT",
                    "title": "Version must be incremented on update. Current version is: 6",
                }
            ]
        }
        requests_mock.put(f"{PAGES}/9001", status_code=409, json=body)
        with pytest.raises(ConfluenceConflict, match="Current version is: 6"):
            h.client.update_page(page_id="9001", title="T", body="b", version=6)
        assert requests_mock.call_count == 1

    def test_resent_put_that_had_landed_is_not_a_conflict(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.put(f"{PAGES}/9001", [{"status_code": 504}, {"status_code": 409}])
        stored = PAGE | {"title": "T", "version": {"number": 2}, "body": {"storage": {"value": "<p>new</p>"}}}
        requests_mock.get(f"{PAGES}/9001", json=stored)
        page = h.client.update_page(page_id="9001", title="T", body="<p>new</p>", version=2)
        assert page["version"]["number"] == 2
        assert len(sent(requests_mock, "PUT")) == 2

    def test_resent_put_with_a_real_conflict_still_raises(self, h: Harness, requests_mock: rm.Mocker) -> None:
        requests_mock.put(f"{PAGES}/9001", [{"status_code": 504}, {"status_code": 409}])
        other = PAGE | {"title": "T", "version": {"number": 2}, "body": {"storage": {"value": "<p>theirs</p>"}}}
        requests_mock.get(f"{PAGES}/9001", json=other)
        with pytest.raises(ConfluenceConflict):
            h.client.update_page(page_id="9001", title="T", body="<p>mine</p>", version=2)


class TestNoSecretsLeak:
    def test_no_token_in_errors_or_logs(self, requests_mock: rm.Mocker, caplog: pytest.LogCaptureFixture) -> None:
        h = Harness(FakeTokens((TOKEN_1, TOKEN_2), expired=True))

        def echo(request: Any, context: Any) -> str:  # the worst server: it echoes the credentials it got
            return f"you sent {request.headers['Authorization']}; token={request.headers['Authorization'][7:]}"

        requests_mock.get(f"{PAGES}/1", status_code=401, text=echo)  # TOKEN_1, then REFRESHED
        requests_mock.get(f"{PAGES}/2", status_code=500, text=echo)
        requests_mock.get(f"{PAGES}/3", exc=requests.exceptions.ReadTimeout(f"read timed out {TOKEN_2}"))
        requests_mock.get(f"{PAGES}/4", status_code=404, text=echo)
        requests_mock.post(PAGES, exc=requests.exceptions.ConnectionError(f"reset while sending {TOKEN_2}"))
        requests_mock.get(PAGES, status_code=429, headers={"Retry-After": "1"}, text=echo)
        requests_mock.get(SPACES, status_code=401, json=SCOPE_BODY)
        errors: list[BaseException] = []
        with caplog.at_level(logging.DEBUG):
            for call in (
                lambda: h.client.get_page("1"),
                lambda: h.client.get_page("2"),
                lambda: h.client.get_page("3"),
                lambda: h.client.get_page("4"),
                lambda: h.client.create_page(space_id="42", title="T", body="<p>secret body</p>"),
                lambda: h.client.find_page(space_id="42", title="T"),
                lambda: h.client.get_space_id("DOCS"),
            ):
                with pytest.raises(ConfluenceError) as info:
                    call()
                errors.append(info.value)
        assert h.tokens.rejected == [TOKEN_1]
        texts = [caplog.text] + [str(e) for e in errors] + [repr(e) for e in errors]
        texts += [str(getattr(e, "url", "")) for e in errors] + [str(getattr(e, "detail", "")) for e in errors]
        for text in texts:
            for secret in (TOKEN_1, TOKEN_2, REFRESHED, "secret body", "Authorization"):
                assert secret not in text, (secret, text)
        assert "you sent Bearer [redacted]" in str(errors[0])  # the echoed text is there, redacted


@pytest.mark.parametrize("exc", [requests.ConnectionError, requests.ReadTimeout])
def test_no_answer_is_its_own_error_type(h: Harness, exc: type[Exception]) -> None:
    from airflow_provider_confluence.exceptions import ConfluenceConnectionError

    with rm.Mocker() as m:
        m.get(SPACES, exc=exc)
        with pytest.raises(ConfluenceConnectionError):
            h.client.request("GET", "/wiki/api/v2/spaces")
    assert len(sent(m)) == RetryPolicy().max_attempts


def test_find_page_ignores_a_title_that_only_looks_alike(h: Harness) -> None:
    with rm.Mocker() as m:
        m.get(PAGES, json={"results": [{**PAGE, "title": "weekly REPORT"}], "_links": {}})
        assert h.client.find_page(space_id="42", title="Weekly report") is None
