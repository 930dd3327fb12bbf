"""The offline Atlassian emulator, exercised over real HTTP on loopback.

Each test asserts an outcome of Atlassian's documented behaviour that a wrong emulator would get wrong; time moves with
``fake.advance``, never with ``sleep``.
"""

from __future__ import annotations

import hashlib
import json
import os
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from airflow_provider_confluence.testing import FakeAtlassian
from airflow_provider_confluence.testing.pytest_plugin import fake_atlassian  # noqa: F401  (the fixture)

DAY = 86400
INVALID_GRANT = {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."}
SCOPE_MISMATCH = {"code": 401, "message": "Unauthorized; scope does not match"}
DUPLICATE = {
    "errors": [
        {
            "status": 400,
            "code": "BAD_REQUEST",
            "title": "A page with this title already exists: A page already exists with the same TITLE in this space",
            "detail": None,
        }
    ]
}
GONE = {
    "statusCode": 410,
    "data": {"authorized": True, "valid": True, "errors": [], "successful": True},
    "message": "com.atlassian.confluence.api.service.exceptions.pagesmodes.GoneException: "
    "This deprecated endpoint has been removed.",
}


@pytest.fixture
def fake(fake_atlassian: FakeAtlassian) -> Iterator[FakeAtlassian]:  # noqa: F811
    yield fake_atlassian


@pytest.fixture
def http() -> Iterator[requests.Session]:
    with requests.Session() as session:
        yield session


def refresh(http: requests.Session, fake: FakeAtlassian, token: str, **extra: str) -> requests.Response:
    body = {
        "grant_type": "refresh_token",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "refresh_token": token,
        **extra,
    }
    return http.post(fake.token_url, json=body, timeout=5)


def gw(fake: FakeAtlassian, path: str) -> str:
    return f"{fake.api_url}/ex/confluence/{fake.cloud_id}{path}"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def access_token(http: requests.Session, fake: FakeAtlassian, scopes: str | None = None) -> str:
    rt = fake.issue_grant(scopes) if scopes else fake.issue_grant()
    response = refresh(http, fake, rt)
    assert response.status_code == 200
    return str(response.json()["access_token"])


# --------------------------------------------------------------------------- rotation
def test_every_refresh_rotates_and_a_superseded_token_works_within_the_leeway(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    rt0 = fake.issue_grant()
    first = refresh(http, fake, rt0)
    assert first.status_code == 200
    body = first.json()
    assert set(body) == {"access_token", "expires_in", "scope", "token_type", "refresh_token"}
    assert body["expires_in"] == 3600 and body["token_type"] == "Bearer"
    rt1 = body["refresh_token"]
    assert rt1 != rt0 and fake.latest_refresh_token == rt1

    fake.advance(599)
    again = refresh(http, fake, rt0)  # a stale copy, inside the leeway: yields yet another pair
    assert again.status_code == 200
    rt2 = again.json()["refresh_token"]
    assert rt2 not in (rt0, rt1)
    counters = fake.counters
    assert counters["refreshes"] == 2 and counters["stale_refresh_reuses"] == 1
    assert counters["invalid_grants"] == 0 and counters["grant_revocations"] == 0
    log = fake.refresh_log
    assert [(e["was_latest"], e["within_leeway"], e["ok"]) for e in log] == [(True, True, True), (False, True, True)]
    assert log[0]["latest_access_remaining"] is None
    assert 3000 < log[1]["latest_access_remaining"] <= 3600 - 599


def test_a_superseded_token_used_after_the_leeway_revokes_the_whole_family(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    rt0 = fake.issue_grant()
    first = refresh(http, fake, rt0).json()
    rt1, at1 = first["refresh_token"], first["access_token"]
    assert http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(at1)).status_code == 200

    fake.advance(601)
    stale = refresh(http, fake, rt0)
    assert stale.status_code == 403 and stale.json() == INVALID_GRANT
    latest = refresh(http, fake, rt1)  # even the latest token of the family is dead now
    assert latest.status_code == 403 and latest.json() == INVALID_GRANT
    assert http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(at1)).status_code == 404
    counters = fake.counters
    assert counters["invalid_grants"] == 2 and counters["grant_revocations"] == 1
    assert counters["stale_refresh_reuses"] == 1 and counters["refreshes"] == 1
    assert [e["reason"] for e in fake.refresh_log] == ["ok", "reuse_outside_leeway", "revoked"]
    other = fake.issue_grant()  # another family is untouched
    assert refresh(http, fake, other).status_code == 200


def test_unknown_refresh_token_and_wrong_client_secret(fake: FakeAtlassian, http: requests.Session) -> None:
    unknown = refresh(http, fake, "not-a-token")
    assert unknown.status_code == 403 and unknown.json() == INVALID_GRANT
    rt = fake.issue_grant()
    wrong = http.post(
        fake.token_url,
        json={"grant_type": "refresh_token", "client_id": fake.client_id, "client_secret": "nope", "refresh_token": rt},
        timeout=5,
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"error": "access_denied", "error_description": "Unauthorized"}
    assert refresh(http, fake, rt).status_code == 200  # a refused client did not burn the token
    assert fake.counters["invalid_grants"] == 1


def test_earlier_access_tokens_die_when_the_grace_period_ends(fake: FakeAtlassian, http: requests.Session) -> None:
    first = refresh(http, fake, fake.issue_grant()).json()
    second = refresh(http, fake, first["refresh_token"]).json()
    url = gw(fake, "/wiki/api/v2/spaces")
    fake.advance(599)
    assert http.get(url, headers=bearer(first["access_token"])).status_code == 200
    fake.advance(2)
    assert http.get(url, headers=bearer(first["access_token"])).status_code == 404
    assert http.get(url, headers=bearer(second["access_token"])).status_code == 200


def test_refresh_sending_scope_is_counted(fake: FakeAtlassian, http: requests.Session) -> None:
    response = refresh(http, fake, fake.issue_grant(), scope="read:page:confluence")
    assert response.status_code == 200
    assert fake.counters["refresh_with_extra_params"] == 1


def test_omit_refresh_token_once_keeps_the_old_token_valid(fake: FakeAtlassian, http: requests.Session) -> None:
    rt0 = fake.issue_grant()
    fake.omit_refresh_token_once()
    first = refresh(http, fake, rt0)
    assert first.status_code == 200 and "refresh_token" not in first.json() and "access_token" in first.json()
    fake.advance(3 * 3600)  # far beyond the leeway: rt0 was never superseded
    second = refresh(http, fake, rt0)
    assert second.status_code == 200 and second.json()["refresh_token"] != rt0
    assert fake.counters["stale_refresh_reuses"] == 0


def test_inactivity_expiry_is_90_days_and_reset_by_each_refresh(fake: FakeAtlassian, http: requests.Session) -> None:
    token = fake.issue_grant()
    for _ in range(2):
        fake.advance(89 * DAY)
        response = refresh(http, fake, token)
        assert response.status_code == 200
        token = response.json()["refresh_token"]
    fake.advance(90 * DAY + 1)
    dead = refresh(http, fake, token)
    assert dead.status_code == 403 and dead.json() == INVALID_GRANT
    assert fake.refresh_log[-1]["reason"] == "inactivity_expiry"


def test_absolute_expiry_is_365_days_from_the_first_token(fake: FakeAtlassian, http: requests.Session) -> None:
    token = fake.issue_grant()
    for _ in range(4):  # day 80, 160, 240, 320: each refresh is fine
        fake.advance(80 * DAY)
        token = refresh(http, fake, token).json()["refresh_token"]
    fake.advance(45 * DAY + 1)  # day 365 + 1 s: the token is only 45 days old, yet the grant is over
    dead = refresh(http, fake, token)
    assert dead.status_code == 403 and dead.json() == INVALID_GRANT
    assert fake.refresh_log[-1]["reason"] == "absolute_expiry"


# --------------------------------------------------------------------------- consent
def consent(
    http: requests.Session, fake: FakeAtlassian, redirect: str = "http://localhost:9/cb", **override: str
) -> requests.Response:
    params = {
        "audience": "api.atlassian.com",
        "client_id": fake.client_id,
        "scope": "offline_access read:page:confluence",
        "redirect_uri": redirect,
        "state": "s-123",
        "response_type": "code",
        "prompt": "consent",
        **override,
    }
    return http.get(fake.auth_url, params=params, allow_redirects=False, timeout=5)


def test_authorize_and_single_use_code_exchange(fake: FakeAtlassian, http: requests.Session) -> None:
    answer = consent(http, fake)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.netloc == "localhost:9" and location.path == "/cb"
    query = parse_qs(location.query)
    assert query["state"] == ["s-123"]
    form = {
        "grant_type": "authorization_code",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "code": query["code"][0],
        "redirect_uri": "http://localhost:9/cb",
    }
    exchanged = http.post(fake.token_url, data=form, timeout=5)  # form-encoded, as requests-oauthlib sends it
    assert exchanged.status_code == 200
    body = exchanged.json()
    assert body["scope"] == "offline_access read:page:confluence" and body["refresh_token"]
    reused = http.post(fake.token_url, data=form, timeout=5)
    assert reused.status_code == 403 and reused.json()["error"] == "invalid_grant"
    counters = fake.counters
    assert counters["code_exchanges"] == 1 and counters["token_requests_form"] == 2
    assert fake.requests[-1]["form"]["code"] == "***"


def test_code_exchange_needs_the_same_redirect_uri(fake: FakeAtlassian, http: requests.Session) -> None:
    code = parse_qs(urlsplit(consent(http, fake).headers["Location"]).query)["code"][0]
    body = {
        "grant_type": "authorization_code",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "code": code,
        "redirect_uri": "http://localhost:9/other",
    }
    answer = http.post(fake.token_url, json=body, timeout=5)
    assert answer.status_code == 403 and answer.json()["error"] == "invalid_grant"
    assert fake.counters["code_exchanges"] == 0


def test_authorize_validates_parameters_and_honours_denial(fake: FakeAtlassian, http: requests.Session) -> None:
    missing = consent(http, fake, state="")
    assert missing.status_code == 400 and "state" in missing.text
    assert consent(http, fake, audience="x").status_code == 400
    assert consent(http, fake, scope="offline_access,read:page:confluence").status_code == 400
    fake.deny_consent = True
    denied = parse_qs(urlsplit(consent(http, fake).headers["Location"]).query)
    assert denied == {"error": ["access_denied"], "state": ["s-123"]}


def test_no_refresh_token_without_offline_access(fake: FakeAtlassian, http: requests.Session) -> None:
    code = parse_qs(urlsplit(consent(http, fake, scope="read:page:confluence").headers["Location"]).query)["code"][0]
    body = {
        "grant_type": "authorization_code",
        "client_id": fake.client_id,
        "client_secret": fake.client_secret,
        "code": code,
        "redirect_uri": "http://localhost:9/cb",
    }
    answer = http.post(fake.token_url, json=body, timeout=5).json()
    assert "access_token" in answer and "refresh_token" not in answer


# --------------------------------------------------------------------------- gateway
def test_accessible_resources(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    url = fake.api_url + "/oauth/token/accessible-resources"
    fake.extra_sites = [("other", "https://other.atlassian.net")]
    resources = http.get(url, headers=bearer(token), timeout=5).json()
    assert [r["url"] for r in resources] == ["https://other.atlassian.net", fake.site_url]
    mine = resources[-1]
    assert mine["id"] == fake.cloud_id and "read:space:confluence" in mine["scopes"] and mine["avatarUrl"]
    bad = http.get(url, headers=bearer("garbage"), timeout=5)
    assert bad.status_code == 401 and bad.json() == {"code": 401, "message": "Unauthorized"}
    fake.advance(3601)
    assert http.get(url, headers=bearer(token), timeout=5).status_code == 401


def test_expired_token_is_404_on_v2_and_403_on_v1(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    fake.advance(3600)
    v2 = http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(token), timeout=5)
    assert v2.status_code == 404 and v2.json()["errors"][0]["status"] == 404
    v1 = http.get(gw(fake, "/wiki/rest/api/space"), headers=bearer(token), timeout=5)
    assert v1.status_code == 403 and v1.json()["statusCode"] == 403
    assert http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer("unknown"), timeout=5).status_code == 401
    assert http.get(gw(fake, "/wiki/api/v2/spaces"), timeout=5).json() == {"code": 401, "message": "Unauthorized"}


def test_wrong_cloud_id_and_site_url_calls(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    wrong = http.get(f"{fake.api_url}/ex/confluence/not-my-site/wiki/api/v2/spaces", headers=bearer(token), timeout=5)
    assert wrong.status_code == 404 and wrong.json()["code"] == 404
    no_gateway = http.get(f"{fake.api_url}/wiki/api/v2/spaces", headers=bearer(token), timeout=5)
    assert no_gateway.status_code == 401
    doubled = http.get(gw(fake, "/wiki/wiki/api/v2/spaces"), headers=bearer(token), timeout=5)
    assert doubled.status_code == 404


def test_missing_scope_is_401_scope_does_not_match(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_page(fake.add_space("DEMO")["id"], "P")
    token = access_token(http, fake, "offline_access read:page:confluence")
    spaces = http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(token), timeout=5)
    assert spaces.status_code == 401 and spaces.json() == SCOPE_MISMATCH
    assert http.get(gw(fake, "/wiki/api/v2/pages"), headers=bearer(token), timeout=5).status_code == 200
    full = access_token(http, fake)  # the default scopes lack delete:page:confluence
    page_id = fake.pages[-1]["id"]
    delete = http.delete(gw(fake, f"/wiki/api/v2/pages/{page_id}"), headers=bearer(full), timeout=5)
    assert delete.status_code == 401 and delete.json() == SCOPE_MISMATCH


def test_v1_space_and_content_are_gone(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    listed = http.get(gw(fake, "/wiki/rest/api/space"), headers=bearer(token), timeout=5)
    created = http.post(gw(fake, "/wiki/rest/api/content"), headers=bearer(token), json={"title": "x"}, timeout=5)
    assert (listed.status_code, listed.json()) == (410, GONE)
    assert (created.status_code, created.json()) == (410, GONE)


# --------------------------------------------------------------------------- spaces and pagination
def test_cursor_pagination_of_1000_spaces(fake: FakeAtlassian, http: requests.Session) -> None:
    made = fake.add_spaces(1000)
    token = access_token(http, fake)
    url, seen, pages = gw(fake, "/wiki/api/v2/spaces?limit=250&type=global"), [], 0
    while url:
        response = http.get(url, headers=bearer(token), timeout=5)
        assert response.status_code == 200
        body, pages = response.json(), pages + 1
        seen += [space["id"] for space in body["results"]]
        assert body["_links"]["base"] == fake.site_url + "/wiki"
        next_link = body["_links"].get("next")
        if next_link:
            assert next_link.startswith("/wiki/api/v2/spaces?")
            params = [pair.split("=")[0] for pair in urlsplit(next_link).query.split("&")]
            assert "cursor" in params and params[-1] != "cursor" and "type" in params
            assert response.links["next"]["url"] == next_link
            url = gw(fake, next_link)
        else:
            assert "next" not in response.links
            url = ""
    assert pages == 4 and len(seen) == 1000 and len(set(seen)) == 1000
    assert seen == [space["id"] for space in made] == sorted(seen, key=int)


def test_limit_is_clamped_and_validated_and_cursors_are_tamper_proof(
    fake: FakeAtlassian, http: requests.Session
) -> None:
    fake.add_spaces(300)
    token = access_token(http, fake)
    url = gw(fake, "/wiki/api/v2/spaces")
    clamped = http.get(url, params={"limit": 1000}, headers=bearer(token), timeout=5).json()
    assert len(clamped["results"]) == 250
    assert len(http.get(url, headers=bearer(token), timeout=5).json()["results"]) == 25
    for bad in ("0", "x"):
        answer = http.get(url, params={"limit": bad}, headers=bearer(token), timeout=5)
        assert answer.status_code == 400 and answer.json()["errors"][0]["status"] == 400
    cursor = parse_qs(urlsplit(clamped["_links"]["next"]).query)["cursor"][0]
    tampered = cursor[:-2] + ("AA" if cursor[-2:] != "AA" else "BB")
    assert http.get(url, params={"cursor": tampered}, headers=bearer(token), timeout=5).status_code == 400
    other_filters = http.get(url, params={"cursor": cursor, "type": "personal"}, headers=bearer(token), timeout=5)
    assert other_filters.status_code == 400


def test_space_filters_and_single_space(fake: FakeAtlassian, http: requests.Session) -> None:
    demo = fake.add_space("DEMO", "Demo", labels=["reports"])
    fake.add_space("ARCH", status="archived")
    token = access_token(http, fake)
    by_key = http.get(gw(fake, "/wiki/api/v2/spaces"), params={"keys": "DEMO"}, headers=bearer(token), timeout=5)
    assert [s["key"] for s in by_key.json()["results"]] == ["DEMO"]
    archived = http.get(gw(fake, "/wiki/api/v2/spaces?status=archived"), headers=bearer(token), timeout=5).json()
    assert [s["key"] for s in archived["results"]] == ["ARCH"]
    assert http.get(gw(fake, "/wiki/api/v2/spaces?type=nope"), headers=bearer(token), timeout=5).status_code == 400
    single = http.get(gw(fake, f"/wiki/api/v2/spaces/{demo['id']}"), headers=bearer(token), timeout=5).json()
    assert single["_links"] == {"webui": "/spaces/DEMO", "base": fake.site_url + "/wiki"}
    assert single["homepageId"] and single["createdAt"].endswith("Z")
    assert http.get(gw(fake, "/wiki/api/v2/spaces/DEMO"), headers=bearer(token), timeout=5).status_code == 400


# --------------------------------------------------------------------------- pages
def test_create_page_duplicate_malformed_and_too_large(fake: FakeAtlassian, http: requests.Session) -> None:
    space = fake.add_space("DEMO", "Demo")
    token = access_token(http, fake)
    url = gw(fake, "/wiki/api/v2/pages")

    def create(title: str, value: str, space_id: str = space["id"]) -> requests.Response:
        body = {
            "spaceId": space_id,
            "status": "current",
            "title": title,
            "body": {"representation": "storage", "value": value},
        }
        return http.post(url, json=body, headers=bearer(token), timeout=10)

    made = create("Report & more", '<p>Hello&nbsp;<ac:emoticon ac:name="smile"/></p>')
    assert made.status_code == 200
    page = made.json()
    assert page["spaceId"] == space["id"] and page["version"]["number"] == 1
    assert page["parentId"] == space["homepageId"] and page["_links"]["base"] == fake.site_url + "/wiki"
    assert page["_links"]["webui"] == f"/spaces/DEMO/pages/{page['id']}/Report+%26+more"
    duplicate = create("Report & more", "<p>again</p>")
    assert (duplicate.status_code, duplicate.json()) == (400, DUPLICATE)
    malformed = create("Broken", "<p>unclosed <b>bold</p>")
    assert malformed.status_code == 400 and "storage format" in malformed.json()["errors"][0]["title"]
    assert create("Huge", "<p>" + "x" * (5 * 1024 * 1024) + "</p>").status_code == 413
    assert create("By key", "<p>x</p>", space_id="DEMO").status_code == 400
    assert create("Nowhere", "<p>x</p>", space_id="999999999").status_code == 404
    titles = [p["title"] for p in fake.pages]
    assert titles == ["Demo Home", "Report & more"]


def test_get_page_body_only_when_asked_and_space_pages(fake: FakeAtlassian, http: requests.Session) -> None:
    space = fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Notes", "<p>hi</p>")
    token = access_token(http, fake)
    plain = http.get(gw(fake, f"/wiki/api/v2/pages/{page['id']}"), headers=bearer(token), timeout=5).json()
    assert "body" not in plain and plain["title"] == "Notes"
    stored = http.get(
        gw(fake, f"/wiki/api/v2/pages/{page['id']}"),
        params={"body-format": "storage"},
        headers=bearer(token),
        timeout=5,
    )
    assert stored.json()["body"]["storage"] == {"representation": "storage", "value": "<p>hi</p>"}
    listed = http.get(
        gw(fake, f"/wiki/api/v2/spaces/{space['id']}/pages"),
        params={"title": "Notes"},
        headers=bearer(token),
        timeout=5,
    ).json()
    assert [p["id"] for p in listed["results"]] == [page["id"]]
    missing = http.get(gw(fake, "/wiki/api/v2/pages/42"), headers=bearer(token), timeout=5)
    assert missing.status_code == 404 and missing.json()["errors"][0]["code"] == "NOT_FOUND"


def test_update_needs_the_next_version_and_a_free_title(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Weekly")
    fake.add_page("DEMO", "Taken")
    token = access_token(http, fake)
    url = gw(fake, f"/wiki/api/v2/pages/{page['id']}")

    def update(number: int, title: str = "Weekly") -> requests.Response:
        body = {
            "id": page["id"],
            "status": "current",
            "title": title,
            "version": {"number": number},
            "body": {"representation": "storage", "value": "<p>v2</p>"},
        }
        return http.put(url, json=body, headers=bearer(token), timeout=5)

    stale = update(1)
    assert stale.status_code == 409
    assert stale.json()["errors"][0]["title"] == "Version must be incremented on update. Current version is: 1"
    assert (update(2, "Taken").status_code, update(2, "Taken").json()) == (400, DUPLICATE)
    ok = update(2)
    assert ok.status_code == 200 and ok.json()["version"]["number"] == 2
    assert update(2).json()["errors"][0]["title"].endswith("Current version is: 2")


def test_delete_page_moves_it_to_the_trash(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Old")
    token = access_token(http, fake, "offline_access read:page:confluence delete:page:confluence")
    url = gw(fake, f"/wiki/api/v2/pages/{page['id']}")
    assert http.delete(url, headers=bearer(token), timeout=5).status_code == 204
    assert http.get(url, headers=bearer(token), timeout=5).status_code == 404
    assert [p["status"] for p in fake.pages if p["id"] == page["id"]] == ["trashed"]


# --------------------------------------------------------------------------- injected failures
def test_throttle_answers_429_with_retry_after_then_recovers(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    fake.throttle(times=2, retry_after="7")
    url = gw(fake, "/wiki/api/v2/spaces")
    first = http.get(url, headers=bearer(token), timeout=5)
    assert first.status_code == 429 and first.headers["Retry-After"] == "7"
    assert first.headers["X-RateLimit-NearLimit"] == "true" and "Beta-Retry-After" in first.headers
    assert first.json() == {
        "errors": [{"status": 429, "code": "TOO_MANY_REQUESTS", "title": "Rate limit exceeded", "detail": None}]
    }
    assert refresh(http, fake, fake.issue_grant()).status_code == 200  # the token endpoint is not throttled
    assert http.get(url, headers=bearer(token), timeout=5).status_code == 429
    assert http.get(url, headers=bearer(token), timeout=5).status_code == 200
    fake.throttle(retry_after=None, status=503)
    unavailable = http.get(url, headers=bearer(token), timeout=5)
    assert unavailable.status_code == 503 and "Retry-After" not in unavailable.headers
    assert fake.counters["throttled"] == 3


def test_fail_next_on_a_route_and_a_landed_token_failure(fake: FakeAtlassian, http: requests.Session) -> None:
    token = access_token(http, fake)
    fake.fail_next(502, route="GET /wiki/api/v2/pages")
    assert http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(token), timeout=5).status_code == 200
    assert http.get(gw(fake, "/wiki/api/v2/pages"), headers=bearer(token), timeout=5).status_code == 502
    assert http.get(gw(fake, "/wiki/api/v2/pages"), headers=bearer(token), timeout=5).status_code == 200

    rt0 = fake.issue_grant()
    fake.fail_next(504, route="POST /oauth/token", landed=True)
    lost = refresh(http, fake, rt0)
    assert lost.status_code == 504 and lost.json()["error"] == "server_error"
    assert fake.latest_refresh_token != rt0  # it landed: the grant rotated although the answer was lost
    retried = refresh(http, fake, rt0)  # retry with the same token inside the leeway works
    assert retried.status_code == 200 and fake.counters["stale_refresh_reuses"] == 1


def test_a_landed_api_failure_has_its_effect(fake: FakeAtlassian, http: requests.Session) -> None:
    space = fake.add_space("DEMO")
    token = access_token(http, fake)
    fake.fail_next(504, route="POST /wiki/api/v2/pages", landed=True)
    body = {"spaceId": space["id"], "title": "Landed", "body": {"representation": "storage", "value": "<p>x</p>"}}
    lost = http.post(gw(fake, "/wiki/api/v2/pages"), json=body, headers=bearer(token), timeout=5)
    assert lost.status_code == 504 and lost.json()["errors"][0]["status"] == 504
    assert "Landed" in [page["title"] for page in fake.pages]  # the page exists: a blind re-send would duplicate
    again = http.post(gw(fake, "/wiki/api/v2/pages"), json=body, headers=bearer(token), timeout=5)
    assert (again.status_code, again.json()) == (400, DUPLICATE)
    assert fake.counters["api_calls_by_route"]["POST /wiki/api/v2/pages"] == 2


def test_requests_log_never_holds_a_secret_or_token(fake: FakeAtlassian, http: requests.Session) -> None:
    fake.add_space("DEMO")
    rt0 = fake.issue_grant()
    issued = [rt0]
    answer = refresh(http, fake, rt0).json()
    issued += [answer["refresh_token"], answer["access_token"]]
    http.post(
        fake.token_url,
        data={
            "grant_type": "refresh_token",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": answer["refresh_token"],
        },
        timeout=5,
    )
    http.get(gw(fake, "/wiki/api/v2/spaces"), headers=bearer(answer["access_token"]), timeout=5)
    http.get(fake.api_url + "/oauth/token/accessible-resources", headers=bearer(answer["access_token"]), timeout=5)
    http.get(gw(fake, "/wiki/api/v2/pages"), params={"access_token": answer["access_token"]}, timeout=5)
    dump = repr(fake.requests) + repr(fake.refresh_log) + repr(fake.counters)
    for secret in [fake.client_secret, *issued, fake.latest_refresh_token]:
        assert secret and secret not in dump
    assert len(fake.requests) == 5 and "***" in dump


def test_admin_state_and_advance(fake: FakeAtlassian, http: requests.Session) -> None:
    refresh(http, fake, fake.issue_grant())
    state = http.get(fake.url + "/_emulator/state", timeout=5).json()
    latest = fake.latest_refresh_token
    assert latest and state["latest_refresh_token_sha256"] == hashlib.sha256(latest.encode()).hexdigest()[:12]
    assert latest not in json.dumps(state) and state["counters"]["refreshes"] == 1
    before = fake.now()
    http.post(fake.url + "/_emulator/advance", json={"seconds": 1000}, timeout=5)
    assert fake.now() - before >= 1000


# --------------------------------------------------------------------------- python -m
@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_module_command_prints_one_json_line_and_exits_cleanly(stop_signal: int) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    command = [sys.executable, "-m", "airflow_provider_confluence.testing", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True) as proc:
        assert proc.stdout is not None and proc.stderr is not None
        try:
            ready, _, _ = select.select([proc.stdout], [], [], 15)
            assert ready, "the emulator printed nothing"
            line: dict[str, Any] = json.loads(proc.stdout.readline())
            conn, url = line["conn"], line["url"]
            assert url.startswith("http://127.0.0.1:") and not url.endswith(":0")
            assert conn["conn_type"] == "confluence_oauth" and conn["extra"]["grant_url"] == url + "/oauth/token"
            with requests.Session() as http:
                tokens = http.post(
                    conn["extra"]["grant_url"],
                    json={
                        "grant_type": "refresh_token",
                        "client_id": conn["login"],
                        "client_secret": conn["password"],
                        "refresh_token": conn["extra"]["refresh_token"],
                    },
                    timeout=5,
                ).json()
                sites = http.get(
                    url + "/oauth/token/accessible-resources", headers=bearer(tokens["access_token"]), timeout=5
                ).json()
                assert sites[0]["url"] == conn["host"]
                spaces = http.get(
                    f"{url}/ex/confluence/{sites[0]['id']}/wiki/api/v2/spaces",
                    headers=bearer(tokens["access_token"]),
                    timeout=5,
                ).json()["results"]
                assert [space["key"] for space in spaces] == ["DEMO", "ENG", "OPS"]
            proc.send_signal(stop_signal)
            assert proc.wait(timeout=10) == 0, proc.stderr.read()
        finally:
            if proc.poll() is None:
                proc.kill()
