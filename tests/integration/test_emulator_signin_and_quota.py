"""The emulator's unattended sign-in (service accounts, scoped API tokens) and its points-based hourly quota,
over real HTTP on loopback.

Each test asserts an answer that a wrong emulator would get wrong; time moves with ``fake.advance``. Secrets are
compared as booleans, so that a failing assertion never prints one.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.signin import basic_header

READ_ONLY = "read:space:confluence read:page:confluence"
SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}
UNAUTHORIZED = {"code": 401, "message": "Unauthorized"}


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:
    yield fake_atlassian


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def gateway(fake: FakeAtlassian, path: str) -> str:
    return f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki{path}"


def client_credentials(
    http: requests.Session, fake: FakeAtlassian, client_id: str, client_secret: str, **extra: str
) -> requests.Response:
    body = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret, **extra}
    return http.post(fake.token_url, json=body)


def sa_token(http: requests.Session, fake: FakeAtlassian, scopes: str | None = None) -> tuple[Any, dict[str, str]]:
    cred = fake.add_service_account(scopes) if scopes else fake.add_service_account()
    answer = client_credentials(http, fake, cred.client_id, cred.client_secret)
    assert answer.status_code == 200
    return cred, {"Authorization": f"Bearer {answer.json()['access_token']}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# --------------------------------------------------------------------------- service accounts
def test_client_credentials_token_has_fixed_scopes_and_no_refresh_token(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    cred = fake.add_service_account(READ_ONLY)
    answer = client_credentials(http, fake, cred.client_id, cred.client_secret)
    assert answer.status_code == 200
    body = answer.json()
    assert sorted(body) == ["access_token", "expires_in", "scope", "token_type"]
    assert ("refresh_token" in body) is False
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
    assert body["scope"] == READ_ONLY
    assert answer.headers["Cache-Control"] == "no-store"
    assert fake.counters["client_credentials_grants"] == 1 and fake.counters["token_requests_json"] == 1


def test_client_credentials_form_body_and_lifetime_knob(fake: FakeAtlassian, http: requests.Session) -> None:
    cred = fake.add_service_account(READ_ONLY, token_lifetime=600)
    answer = http.post(
        fake.token_url,
        data={"grant_type": "client_credentials", "client_id": cred.client_id, "client_secret": cred.client_secret},
    )
    assert answer.status_code == 200 and answer.json()["expires_in"] == 600
    assert fake.counters["token_requests_form"] == 1


@pytest.mark.parametrize("which", ["wrong_secret", "unknown_client"])
def test_client_credentials_refuses_bad_client(fake: FakeAtlassian, http: requests.Session, which: str) -> None:
    cred = fake.add_service_account()
    client_id = cred.client_id if which == "wrong_secret" else "no-such-client"
    answer = client_credentials(http, fake, client_id, "not-the-secret")
    assert answer.status_code == 401
    assert answer.json()["error"] == "invalid_client"
    assert fake.counters["client_auth_failures"] == 1 and fake.counters["client_credentials_grants"] == 0


def test_client_credentials_auth_error_knob(fake: FakeAtlassian, http: requests.Session) -> None:
    cred = fake.add_service_account()
    fake.client_credentials_auth_error = "access_denied"
    answer = client_credentials(http, fake, cred.client_id, "not-the-secret")
    assert (answer.status_code, answer.json()["error"]) == (401, "access_denied")
    with pytest.raises(ValueError):
        fake.client_credentials_auth_error = "nope"


@pytest.mark.parametrize("scope", [READ_ONLY, ""])
def test_client_credentials_refuses_a_scope_parameter(fake: FakeAtlassian, http: requests.Session, scope: str) -> None:
    cred = fake.add_service_account(READ_ONLY)
    answer = client_credentials(http, fake, cred.client_id, cred.client_secret, scope=scope)
    assert answer.status_code == 400
    assert answer.json()["error"] == "invalid_scope"
    assert fake.counters["client_credentials_with_scope"] == 1 and fake.counters["client_credentials_grants"] == 0


def test_the_3lo_app_is_not_a_service_account(fake: FakeAtlassian, http: requests.Session) -> None:
    answer = client_credentials(http, fake, fake.client_id, fake.client_secret)
    assert (answer.status_code, answer.json()["error"]) == (403, "unauthorized_client")


def test_accessible_resources_lists_the_sites_a_service_account_reaches(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    fake.extra_sites.append(("other", "https://other-site.atlassian.net"))
    cred, headers = sa_token(http, fake, READ_ONLY)
    resources = http.get(fake.api_url + "/oauth/token/accessible-resources", headers=headers).json()
    assert [(site["id"], site["url"]) for site in resources] == [(fake.cloud_id, fake.site_url)]
    assert resources[0]["scopes"] == READ_ONLY.split()
    nowhere = fake.add_service_account(READ_ONLY, cloud_ids=[])
    token = client_credentials(http, fake, nowhere.client_id, nowhere.client_secret).json()["access_token"]
    assert http.get(fake.api_url + "/oauth/token/accessible-resources", headers=bearer(token)).json() == []
    refused = http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(token))
    assert (refused.status_code, refused.json()) == (401, UNAUTHORIZED)


def test_gateway_checks_service_account_scopes_and_expiry(fake: FakeAtlassian, http: requests.Session) -> None:
    space = fake.add_space("DEMO")
    cred, headers = sa_token(http, fake, READ_ONLY)
    listed = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)
    assert listed.status_code == 200 and [s["id"] for s in listed.json()["results"]] == [space["id"]]
    write = http.post(
        gateway(fake, "/api/v2/pages"),
        headers=headers,
        json={"spaceId": space["id"], "title": "T", "body": {"representation": "storage", "value": "x"}},
    )
    assert (write.status_code, write.json()) == (401, SCOPE_MISMATCH)
    assert len(fake.pages) == 1  # only the homepage
    fake.advance(3601)
    expired = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)
    assert expired.status_code == 404  # like an expired 3LO token on a v2 path
    again = client_credentials(http, fake, cred.client_id, cred.client_secret)
    assert again.status_code == 200 and ("refresh_token" in again.json()) is False


def test_revoked_service_account(fake: FakeAtlassian, http: requests.Session) -> None:
    cred, headers = sa_token(http, fake)
    fake.revoke_service_account(cred.client_id)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=headers).status_code == 404
    assert client_credentials(http, fake, cred.client_id, cred.client_secret).status_code == 401


# --------------------------------------------------------------------------- scoped API tokens
def test_api_token_basic_auth_accepted_with_scope_checks(fake: FakeAtlassian, http: requests.Session) -> None:
    space = fake.add_space("DEMO")
    api = fake.add_api_token("Robot@Example.com", READ_ONLY)
    listed = http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": api.basic()})
    assert listed.status_code == 200 and listed.json()["results"][0]["id"] == space["id"]
    other_case = {"Authorization": basic_header("robot@example.com", api.token)}
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=other_case).status_code == 200
    write = http.post(
        gateway(fake, "/api/v2/pages"),
        headers={"Authorization": api.basic()},
        json={"spaceId": space["id"], "title": "T", "body": {"representation": "storage", "value": "x"}},
    )
    assert (write.status_code, write.json()) == (401, SCOPE_MISMATCH)


@pytest.mark.parametrize("which", ["wrong_token", "wrong_email", "not_base64", "empty"])
def test_api_token_refusals(fake: FakeAtlassian, http: requests.Session, which: str) -> None:
    api = fake.add_api_token("robot@example.com")
    header = {
        "wrong_token": basic_header(api.email, "not-the-token"),
        "wrong_email": basic_header("someone@example.com", api.token),
        "not_base64": "Basic !!!",
        "empty": "Basic ",
    }[which]
    answer = http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": header})
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)


def test_expired_api_token(fake: FakeAtlassian, http: requests.Session) -> None:
    today = datetime.datetime.fromtimestamp(fake.now(), tz=datetime.UTC).date()
    api = fake.add_api_token(expires=today + datetime.timedelta(days=2))
    assert api.expires_on == today + datetime.timedelta(days=2)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": api.basic()}).status_code == 200
    fake.advance(2 * 86400)
    answer = http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": api.basic()})
    assert (answer.status_code, answer.json()) == (401, UNAUTHORIZED)
    assert fake.counters["api_token_expired_uses"] == 1 and fake.counters["api_token_failures"] == 0


def test_api_tokens_live_at_most_a_year(fake: FakeAtlassian) -> None:
    today = datetime.datetime.fromtimestamp(fake.now(), tz=datetime.UTC).date()
    fake.add_api_token(expires=today + datetime.timedelta(days=365))
    with pytest.raises(ValueError):
        fake.add_api_token(expires=today + datetime.timedelta(days=400))
    default = fake.add_api_token()
    assert 364 * 86400 < default.expires_at - fake.now() <= 365 * 86400


def test_api_token_is_not_an_oauth_token(fake: FakeAtlassian, http: requests.Session) -> None:
    api = fake.add_api_token()
    resources = http.get(fake.api_url + "/oauth/token/accessible-resources", headers={"Authorization": api.basic()})
    assert resources.status_code == 401
    as_bearer = http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(api.token))
    assert as_bearer.status_code == 401


def test_the_request_log_says_how_each_gateway_caller_signed_in(fake: FakeAtlassian, http: requests.Session) -> None:
    cred, sa_headers = sa_token(http, fake)
    api = fake.add_api_token()
    fake.reset_counters()
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=sa_headers).status_code == 200
    assert http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": api.basic()}).status_code == 200
    wrong = basic_header(api.email, api.token[::-1])
    assert http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": wrong}).status_code == 401
    seen = [(r["auth_kind"], r["auth_app"], r["status"]) for r in fake.requests]
    assert seen == [("client_credentials", cred.client_id, 200), ("api_token", None, 200), (None, None, 401)]
    assert fake.counters["api_token_failures"] == 1  # the wrong token was judged once


def test_tenant_info_needs_no_credentials(fake: FakeAtlassian, http: requests.Session) -> None:
    answer = http.get(fake.tenant_info_url)
    assert (answer.status_code, answer.json()) == (200, {"cloudId": fake.cloud_id})
    conn = fake.api_token_connection(fake.add_api_token())
    assert http.get(conn["host"] + "/_edge/tenant_info").json()["cloudId"] == fake.cloud_id
    assert conn["extra"]["auth_type"] == "api_token" and fake.counters["tenant_info_calls"] == 2


def test_connection_dicts(fake: FakeAtlassian) -> None:
    cred = fake.add_service_account()
    conn = fake.service_account_connection(cred, scopes=None, timeout=5)
    assert conn["extra"] == {
        "auth_type": "client_credentials",
        "grant_url": fake.token_url,
        "api_url": fake.api_url,
        "timeout": 5,
    }
    assert conn["host"] == fake.site_url and conn["login"] == cred.client_id
    assert (conn["password"] == cred.client_secret) is True


# --------------------------------------------------------------------------- the points quota
def quota_headers(answer: requests.Response) -> dict[str, str]:
    return {name: value for name, value in answer.headers.items() if "ratelimit" in name.lower()}


def remaining(answer: requests.Response) -> int:
    parts = dict(part.split("=") for part in answer.headers["Beta-RateLimit"].split(";")[1:])
    return int(parts["r"])


def test_quota_is_off_by_default(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_space("DEMO")
    answer = http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(fake.issue_access_token()))
    assert answer.status_code == 200 and quota_headers(answer) == {}
    assert fake.quota_enabled is False
    with pytest.raises(ValueError):
        fake.quota_usage()


def test_quota_headers_decrease_by_documented_costs(fake: FakeAtlassian, http: requests.Session) -> None:
    spaces = fake.add_spaces(3)
    fake.enable_quota(100, align_to_hour=False)
    headers = bearer(fake.issue_access_token())
    listed = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)  # 1 + 3 spaces
    assert listed.headers["Beta-RateLimit-Policy"] == '"tenant-app-quota";q=100;w=3600'
    assert listed.headers["X-Beta-RateLimit-Reason"] == "confluence-quota-tenant-based"
    assert remaining(listed) == 96
    one = http.get(gateway(fake, f"/api/v2/spaces/{spaces[0]['id']}"), headers=headers)  # 1 + 1
    assert remaining(one) == 94
    page = {"spaceId": spaces[0]["id"], "title": "T", "body": {"representation": "storage", "value": "<p>x</p>"}}
    created = http.post(gateway(fake, "/api/v2/pages"), headers=headers, json=page)  # a write: the base only
    assert created.status_code == 200 and remaining(created) == 93
    pages = http.get(gateway(fake, "/api/v2/pages"), headers=headers, params={"limit": 2})  # 1 + 2 of 4 pages
    assert len(pages.json()["results"]) == 2 and remaining(pages) == 90
    missing = http.get(gateway(fake, "/api/v2/pages/999"), headers=headers)  # an error returns no object
    assert missing.status_code == 404 and remaining(missing) == 89
    use = fake.quota_usage()
    assert (use.limit, use.used, use.remaining) == (100, 11, 89)
    assert fake.counters["quota_points"] == 11
    t_value = int(missing.headers["Beta-RateLimit"].rsplit("t=", 1)[1])
    assert abs(t_value - (use.resets_at - fake.now())) <= 2
    assert "X-Beta-RateLimit-NearLimit" not in missing.headers


def test_quota_exhausted_answers_429_until_the_window_resets(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_spaces(9)
    fake.enable_quota(20, align_to_hour=False)
    headers = bearer(fake.issue_access_token())
    first = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)  # 1 + 9: 10 left
    assert remaining(first) == 10 and "X-Beta-RateLimit-NearLimit" not in first.headers
    second = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)  # 0 left
    assert remaining(second) == 0 and second.headers["X-Beta-RateLimit-NearLimit"] == "true"
    fake.advance(1800)
    before = len(fake.pages)
    refused = http.post(gateway(fake, "/api/v2/pages"), headers=headers, json={"spaceId": "1", "title": "T"})
    assert refused.status_code == 429
    assert refused.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    wait = int(refused.headers["Retry-After"])
    assert 1795 <= wait <= 1800  # tens of minutes: the rest of the hour
    assert refused.headers["Beta-RateLimit"] == f'"tenant-app-quota";r=0;t={wait}'
    assert "Beta-RateLimit-Policy" not in refused.headers
    reset_at = datetime.datetime.strptime(refused.headers["X-Beta-RateLimit-Reset"], "%Y-%m-%dT%H:%MZ")
    assert abs(reset_at.replace(tzinfo=datetime.UTC).timestamp() - fake.quota_usage().resets_at) < 60
    assert len(fake.pages) == before and fake.counters["quota_rejections"] == 1
    fake.advance(wait)
    again = http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(fake.issue_access_token()))  # the old one expired
    assert again.status_code == 200 and remaining(again) == 10


def test_aligned_windows_reset_at_the_top_of_the_hour(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.enable_quota(1)
    headers = bearer(fake.issue_access_token())
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=headers).status_code == 200
    refused = http.get(gateway(fake, "/api/v2/spaces"), headers=headers)
    top = (math.floor(fake.now() / 3600) + 1) * 3600
    assert refused.status_code == 429
    assert abs(int(refused.headers["Retry-After"]) - (top - fake.now())) <= 2
    fake.advance(3600)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(fake.issue_access_token())).status_code == 200


def test_api_token_traffic_is_not_charged(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.enable_quota(1)
    oauth = bearer(fake.issue_access_token())
    http.get(gateway(fake, "/api/v2/spaces"), headers=oauth)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=oauth).status_code == 429
    api = fake.add_api_token()
    answer = http.get(gateway(fake, "/api/v2/spaces"), headers={"Authorization": api.basic()})
    assert answer.status_code == 200 and quota_headers(answer) == {}
    assert fake.counters["quota_points"] == 1


def test_each_app_has_its_own_pool_and_the_global_pool_binds(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.enable_quota(1)
    oauth = bearer(fake.issue_access_token())
    http.get(gateway(fake, "/api/v2/spaces"), headers=oauth)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=oauth).status_code == 429
    cred, sa_headers = sa_token(http, fake)
    assert http.get(gateway(fake, "/api/v2/spaces"), headers=sa_headers).status_code == 200
    assert fake.quota_usage(cred.client_id).used == 1
    fake.enable_quota(100, global_hourly_points=3, align_to_hour=False)
    answer = http.get(gateway(fake, "/api/v2/spaces"), headers=sa_headers)
    assert answer.headers["Beta-RateLimit-Policy"] == '"global-app-quota";q=3;w=3600'
    assert answer.headers["X-Beta-RateLimit-Reason"] == "confluence-quota-global-based"
    assert remaining(answer) == 2 and "X-Beta-RateLimit-NearLimit" not in answer.headers


def test_quota_through_the_admin_endpoints(fake: FakeAtlassian, http: requests.Session) -> None:
    assert http.post(fake.url + "/_emulator/quota", json={"hourly_points": 5}).json() == {"ok": True}
    http.get(gateway(fake, "/api/v2/spaces"), headers=bearer(fake.issue_access_token()))
    state = http.get(fake.url + "/_emulator/state").json()
    assert [(pool["policy"], pool["used"], pool["remaining"]) for pool in state["quota"]] == [
        ("tenant-app-quota", 1, 4)
    ]
    fake.disable_quota()
    assert http.get(fake.url + "/_emulator/state").json()["quota"] == []
