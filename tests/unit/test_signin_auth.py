"""Service-account tokens (a per-process cache) and scoped API tokens (HTTP Basic), over requests-mock."""

from __future__ import annotations

import base64
import datetime
import logging
import threading

import pytest
import requests
import requests_mock as rm

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.oauth import TokenResponse
from airflow_provider_confluence.auth.service_account import (
    ClientCredentialsCache,
    ClientCredentialsTokens,
    credential_key,
)
from airflow_provider_confluence.auth.signin import (
    api_token_authorization,
    client_credentials_tokens,
    tenant_cloud_id,
)
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceConfigError
from helpers.clock import Clock

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

TOKEN_URL = "https://auth.atlassian.com/oauth/token"
API = "https://api.atlassian.com"
SITE = "https://acme.atlassian.net"
GW = f"{API}/ex/confluence/cloud-1"
CLIENT_SECRET = "cc-SECRET-never-shown-0123456789"
API_TOKEN = "ATATT-api-TOKEN-never-shown-0123"
EMAIL = "robot@example.com"
NOW = 1_800_000_000.0


def cc_settings(**extra: object) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields(
        "sa", host=SITE, login="sa-client", password=CLIENT_SECRET, extra={"auth_type": "client_credentials", **extra}
    )


def api_settings(**extra: object) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields(
        "apitok", host=SITE, login=EMAIL, password=API_TOKEN, extra={"auth_type": "api_token", **extra}
    )


class Endpoint:
    """A token endpoint that counts its calls and hands out at-1, at-2, ..."""

    def __init__(self, lifetime: float = 3600.0) -> None:
        self.calls = 0
        self.lifetime = lifetime

    def __call__(self) -> TokenResponse:
        self.calls += 1
        return TokenResponse(access_token=f"at-{self.calls}", expires_in=self.lifetime)


def tokens(endpoint: Endpoint, clock: Clock, cache: ClientCredentialsCache | None = None, **kw: object):
    return ClientCredentialsTokens(
        fetch=endpoint, key=("u", "c", "s"), conn_id="sa", cache=cache or ClientCredentialsCache(), clock=clock, **kw
    )  # type: ignore[arg-type]


# -- the token request --------------------------------------------------------------------------------


def test_the_client_credentials_request_sends_no_scope_and_gets_no_refresh_token():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, json={"access_token": "at-1", "expires_in": 3600, "token_type": "Bearer"})
        answer = oauth.client_credentials(
            requests.Session(), token_url=TOKEN_URL, client_id="sa-client", client_secret=CLIENT_SECRET, timeout=5
        )
        body = m.last_request.json()
    assert body == {"grant_type": "client_credentials", "client_id": "sa-client", "client_secret": CLIENT_SECRET}
    assert answer.refresh_token is None
    assert answer.expires_in == 3600


def test_invalid_client_names_the_service_account_and_not_the_secret():
    with rm.Mocker() as m:
        m.post(TOKEN_URL, status_code=401, json={"error": "invalid_client", "error_description": "Unauthorized"})
        with pytest.raises(ConfluenceAuthError) as caught:
            oauth.client_credentials(
                requests.Session(), token_url=TOKEN_URL, client_id="sa-client", client_secret=CLIENT_SECRET, timeout=5
            )
    assert caught.value.error == "invalid_client"
    assert caught.value.transient is False
    assert "Service accounts" in caught.value.message
    assert (CLIENT_SECRET in str(caught.value)) is False


# -- the per-process cache ----------------------------------------------------------------------------


def test_the_token_is_cached_until_the_leeway_then_fetched_again():
    clock, endpoint = Clock(NOW), Endpoint()
    source = tokens(endpoint, clock)
    assert source.get_access_token() == "at-1"
    clock.now += 3600 - 61  # still more than the 60-second leeway left
    assert source.get_access_token() == "at-1"
    clock.now += 2  # inside the leeway
    assert source.get_access_token() == "at-2"
    assert endpoint.calls == 2


def test_a_short_lived_token_uses_a_quarter_of_its_lifetime_as_leeway():
    clock, endpoint = Clock(NOW), Endpoint(lifetime=100)
    source = tokens(endpoint, clock)
    source.get_access_token()
    clock.now += 74
    assert source.get_access_token() == "at-1"
    clock.now += 2
    assert source.get_access_token() == "at-2"


def test_hooks_of_one_credential_share_the_process_cache_and_a_new_secret_does_not():
    clock, endpoint, cache = Clock(NOW), Endpoint(), ClientCredentialsCache()
    first = ClientCredentialsTokens(fetch=endpoint, key=credential_key(TOKEN_URL, "c", "s1"), cache=cache, clock=clock)
    second = ClientCredentialsTokens(fetch=endpoint, key=credential_key(TOKEN_URL, "c", "s1"), cache=cache, clock=clock)
    rotated = ClientCredentialsTokens(
        fetch=endpoint, key=credential_key(TOKEN_URL, "c", "s2"), cache=cache, clock=clock
    )
    assert first.get_access_token() == second.get_access_token() == "at-1"
    assert rotated.get_access_token() == "at-2"
    assert endpoint.calls == 2
    assert ("s1" in repr(credential_key(TOKEN_URL, "c", "s1"))) is False


def test_a_rejected_token_is_replaced_once_and_a_sibling_token_is_adopted():
    clock, endpoint = Clock(NOW), Endpoint()
    source = tokens(endpoint, clock)
    assert source.get_access_token() == "at-1"
    assert source.refresh_rejected("at-1") == "at-2"
    assert source.refresh_rejected("at-1") == "at-2"  # another thread's fresh token: no second fetch
    assert endpoint.calls == 2


def test_expiry_is_counted_from_when_the_request_was_sent():
    clock = Clock(NOW)

    def slow() -> TokenResponse:
        clock.now += 30  # the answer arrives 30 s after the request left
        return TokenResponse(access_token="at-x", expires_in=3600)

    source = tokens(Endpoint(), clock)
    source._fetch = slow  # type: ignore[method-assign]
    source.get_access_token()
    assert source.access_token_expired() is False
    clock.now = NOW + 3600
    assert source.access_token_expired() is True


def test_concurrent_threads_wait_for_one_fetch():
    clock = Clock(NOW)
    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def blocking() -> TokenResponse:
        calls.append(1)
        started.set()
        assert release.wait(10)
        return TokenResponse(access_token="at-shared", expires_in=3600)

    cache = ClientCredentialsCache()
    sources = [ClientCredentialsTokens(fetch=blocking, key=("u", "c", "s"), cache=cache, clock=clock) for _ in range(8)]
    results: list[str] = []
    threads = [threading.Thread(target=lambda s=s: results.append(s.get_access_token())) for s in sources]
    threads[0].start()
    assert started.wait(10)
    for thread in threads[1:]:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(10)
    assert results == ["at-shared"] * 8
    assert len(calls) == 1


def test_a_transient_failure_is_tried_again_and_a_refusal_is_not():
    clock, sleeps = Clock(NOW), []
    answers: list[object] = [ConfluenceAuthError("503", transient=True), TokenResponse("at-ok", 3600)]

    def flaky() -> TokenResponse:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[return-value]

    source = ClientCredentialsTokens(
        fetch=flaky, key=("u", "c", "s"), cache=ClientCredentialsCache(), clock=clock, sleep=sleeps.append
    )
    assert source.get_access_token() == "at-ok"
    assert len(sleeps) == 1

    def refused() -> TokenResponse:
        raise ConfluenceAuthError("invalid_client", error="invalid_client")

    source = ClientCredentialsTokens(
        fetch=refused, key=("u", "c", "s"), cache=ClientCredentialsCache(), clock=clock, sleep=sleeps.append
    )
    with pytest.raises(ConfluenceAuthError):
        source.get_access_token()
    assert len(sleeps) == 1


def test_every_token_handed_out_is_masked_once():
    masked: list[str] = []
    clock, endpoint = Clock(NOW), Endpoint()
    source = tokens(endpoint, clock, on_secret=masked.append)
    source.get_access_token()
    source.get_access_token()
    assert masked == ["at-1"]


def test_the_client_sends_the_service_account_token_as_a_bearer_and_renews_it_after_a_401():
    cache = ClientCredentialsCache()
    with rm.Mocker() as m:
        m.post(
            TOKEN_URL,
            [
                {"json": {"access_token": "at-1", "expires_in": 3600}},
                {"json": {"access_token": "at-2", "expires_in": 3600}},
            ],
        )
        m.get(
            f"{GW}/wiki/api/v2/pages/1",
            [{"status_code": 401, "json": {"code": 401, "message": "Unauthorized"}}, {"json": {"id": "1"}}],
        )
        source = client_credentials_tokens(
            cc_settings(), session=requests.Session(), on_secret=lambda s: None, cache=cache
        )
        client = ConfluenceClient(api_url=API, cloud_id="cloud-1", tokens=source)
        assert client.request("GET", "/wiki/api/v2/pages/1") == {"id": "1"}
        sent = [r.headers["Authorization"] for r in m.request_history if r.method == "GET"]
    assert sent == ["Bearer at-1", "Bearer at-2"]


# -- scoped API tokens --------------------------------------------------------------------------------


def test_the_client_sends_http_basic_with_the_email_and_token():
    basic = api_token_authorization(api_settings(), on_secret=lambda s: None)
    with rm.Mocker() as m:
        m.get(f"{GW}/wiki/api/v2/spaces", json={"results": []})
        ConfluenceClient(api_url=API, cloud_id="cloud-1", authorization=basic).request("GET", "/wiki/api/v2/spaces")
        header = m.last_request.headers["Authorization"]
    expected = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert (header == f"Basic {expected}") is True


def test_a_refused_api_token_is_a_clear_error_without_a_retry_or_a_secret():
    basic = api_token_authorization(api_settings(), on_secret=lambda s: None)
    with rm.Mocker() as m:
        m.get(f"{GW}/wiki/api/v2/spaces", status_code=401, json={"code": 401, "message": "Unauthorized"})
        client = ConfluenceClient(api_url=API, cloud_id="cloud-1", authorization=basic)
        with pytest.raises(ConfluenceAuthError) as caught:
            client.request("GET", "/wiki/api/v2/spaces")
        assert m.call_count == 1
    text = str(caught.value) + repr(caught.value.__cause__)
    assert "e-mail (Login) or the API token (Password) is wrong" in caught.value.message
    assert caught.value.status_code == 401
    encoded = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert (API_TOKEN in text or encoded in text) is False


def test_a_refusal_after_the_expiry_date_says_the_token_expired():
    settings = api_settings(credential_expires="2027-01-31")
    after = datetime.datetime(2027, 2, 1, tzinfo=datetime.UTC).timestamp()
    basic = api_token_authorization(settings, on_secret=lambda s: None, clock=Clock(after))
    with pytest.raises(ConfluenceAuthError, match="expired on 31 January 2027") as caught:
        basic.rejected("Basic x")
    # Airflow masks the extra's value in logs (its key holds the word "token"): the message must not rely on it
    assert "2027-01-31" not in caught.value.message


@pytest.mark.parametrize(
    ("days_left", "level", "logged"), [(40, None, False), (29, logging.WARNING, True), (-1, logging.ERROR, True)]
)
def test_the_expiry_warning_comes_30_days_ahead_once(caplog, days_left, level, logged):
    expires = datetime.date(2027, 1, 31)
    midnight = datetime.datetime(2027, 1, 31, tzinfo=datetime.UTC).timestamp()
    settings = api_settings(credential_expires=expires.isoformat())
    basic = api_token_authorization(settings, on_secret=lambda s: None, clock=Clock(midnight - days_left * 86400))
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.signin"):
        basic.authorization()
        basic.authorization()
    records = [r for r in caplog.records if "31 January 2027" in r.getMessage()]
    assert len(records) == (1 if logged else 0)
    if logged:
        assert records[0].levelno == level


def test_the_api_token_and_its_basic_form_are_masked():
    masked: list[str] = []
    api_token_authorization(api_settings(), on_secret=masked.append)
    encoded = base64.b64encode(f"{EMAIL}:{API_TOKEN}".encode()).decode()
    assert (encoded in masked and API_TOKEN in masked) is True
    assert ("never-shown" in repr(api_token_authorization(api_settings(), on_secret=lambda s: None))) is False


def test_tenant_info_gives_the_cloud_id_without_credentials():
    with rm.Mocker() as m:
        m.get(f"{SITE}/_edge/tenant_info", json={"cloudId": "cloud-9"})
        assert tenant_cloud_id(requests.Session(), site_url=SITE, timeout=5) == "cloud-9"
        assert "Authorization" not in m.last_request.headers


@pytest.mark.parametrize("answer", [{"status_code": 404, "text": "nope"}, {"json": {"cloudId": "a/b"}}, {"json": []}])
def test_tenant_info_without_a_cloud_id_points_to_the_cloud_id_extra(answer):
    with rm.Mocker() as m:
        m.get(f"{SITE}/_edge/tenant_info", **answer)
        with pytest.raises(ConfluenceConfigError, match="cloud_id extra"):
            tenant_cloud_id(requests.Session(), site_url=SITE, timeout=5)


def test_tenant_info_redirects_are_not_followed():
    with rm.Mocker() as m:
        m.get(f"{SITE}/_edge/tenant_info", status_code=302, headers={"Location": "https://evil.example/x"})
        m.get("https://evil.example/x", json={"cloudId": "evil"})
        with pytest.raises(ConfluenceConfigError):
            tenant_cloud_id(requests.Session(), site_url=SITE, timeout=5)
        assert m.call_count == 1
