"""An offline emulator of Atlassian's OAuth 2.0 (3LO) service and Confluence Cloud REST, for tests.

``FakeAtlassian`` serves on loopback what Atlassian spreads over three hosts: ``auth.atlassian.com``
(``/authorize``, ``/oauth/token``), ``api.atlassian.com`` (``/oauth/token/accessible-resources`` and the gateway
``/ex/confluence/{cloudId}/...``) and the Confluence API behind the gateway. It follows the facts the provider
is built on: rotating refresh tokens with a 10-minute reuse leeway and family revocation, 90-day inactivity and
365-day absolute expiry, 404-for-expired on v2 paths (403 on v1), 401 "scope does not match", 410 on the
removed v1 endpoints, cursor pagination with a site-relative ``next`` link, the duplicate-title 400, the
stale-version 409, 429 with ``Retry-After``. Standard library only; nothing listens until ``start()``.

What it emulates behind the gateway:

* v2 spaces (``/spaces``, ``/spaces/{id}``, ``/spaces/{id}/pages``) and pages (list, create, read, update, delete);
* v2 page labels (``GET /pages/{id}/labels``) and attachments (``GET /pages/{id}/attachments``);
* v2 children (``GET /pages/{id}/children``) and folders (``POST /folders``, ``GET /folders/{id}``), and the
  v1 label removal (``DELETE /wiki/rest/api/content/{id}/label/{label}``; see ``tree.py``); the direct children
  and descendants of pages and folders (``GET /{pages|folders}/{id}/{direct-children|descendants}``; see
  ``hierarchy.py``);
* the v1 endpoints that have no v2 equivalent: ``POST /wiki/rest/api/content/{id}/label`` (add labels),
  ``PUT``/``POST /wiki/rest/api/content/{id}/child/attachment`` (upload, multipart, ``X-Atlassian-Token:
  no-check`` required) and ``GET /wiki/rest/api/search`` (a strict CQL subset, see ``cql.py``; the ``next`` link
  is relative to ``/wiki``). Every other ``/wiki/rest/api/space...`` or ``/wiki/rest/api/content...`` path
  answers 410.

Example::

    import requests
    from airflow_provider_confluence.testing import FakeAtlassian

    with FakeAtlassian() as fake:
        space = fake.add_space("DEMO", "Demo")
        refresh_token = fake.issue_grant()
        tokens = requests.post(fake.token_url, json={
            "grant_type": "refresh_token", "client_id": fake.client_id,
            "client_secret": fake.client_secret, "refresh_token": refresh_token}).json()
        spaces = requests.get(
            f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki/api/v2/spaces",
            params={"keys": "DEMO"}, headers={"Authorization": f"Bearer {tokens['access_token']}"},
        ).json()["results"]
        assert spaces[0]["id"] == space["id"]
        fake.advance(3601)               # the access token is now expired: v2 answers 404
        assert fake.counters["refreshes"] == 1

Seeding and reading content: ``fake.add_space(key)``, ``fake.add_page(space, title, body, parent_id,
labels=[...])``, ``fake.pages``, ``fake.page_labels(page_id)``, ``fake.attachments(page_id)`` and
``fake.attachment_data(page_id, filename)`` (the bytes a DAG uploaded), ``fake.broken_images(page_id)`` (images
the body shows that the page has no attachment of). Grants and connections default to
:data:`DEFAULT_SCOPES`: the provider's scopes plus those of labels, attachments and search (never
``delete:page:confluence``).

``fake.connection()`` returns an Airflow connection dict (``conn_type`` ``confluence_oauth``) pointing at the
emulator. Other processes can read ``GET /_emulator/state`` (counters, refresh log, a hash of the latest
refresh token, the 3LO app's quota pools) and move time with ``POST /_emulator/advance`` ``{"seconds": n}``;
``POST /_emulator/throttle``, ``/_emulator/fail_next``, ``/_emulator/reset_counters`` and ``/_emulator/quota``
(:meth:`~FakeAtlassian.enable_quota`) take the keyword arguments of those methods.

Unattended sign-in and the points quota (``signin.py``, ``service_accounts.py``, ``api_tokens.py``, ``quota.py``):
``fake.add_service_account(scopes)`` registers an OAuth 2.0 client-credentials credential (``grant_type=
client_credentials``: a token without ``refresh_token``; ``scope`` sent: 400 ``invalid_scope``; bad client: 401
``invalid_client``); ``fake.add_api_token(email, scopes, expires=date)`` a scoped API token (HTTP Basic through the
gateway; wrong or expired: 401); ``GET /_edge/tenant_info`` (:attr:`~FakeAtlassian.tenant_info_url`) answers the
cloud id; ``fake.enable_quota(hourly_points)`` enforces the points-based hourly quota (``Beta-RateLimit*`` headers,
429 with a ``Retry-After`` of up to an hour) on OAuth traffic, and ``fake.quota_usage()`` tells where it stands.

Counters (``fake.counters``): ``token_requests`` (``_json``/``_form``: how the body was encoded), ``refreshes``
(successful), ``code_exchanges`` (successful), ``invalid_grants`` (every ``invalid_grant`` answer),
``stale_refresh_reuses`` (refreshes with a token that was not the latest of its grant, inside or outside the
leeway), ``grant_revocations`` (families killed by a reuse outside the leeway), ``refresh_with_extra_params``
(refreshes sending ``scope`` or ``redirect_uri``), ``client_auth_failures``, ``accessible_resources_calls``,
``api_calls`` and ``api_calls_by_route`` (gateway calls only, keyed by route template such as
``"POST /wiki/rest/api/content/{id}/label"``), ``throttled``, ``injected_failures``, ``client_credentials_grants``
(successful), ``client_credentials_with_scope``, ``api_token_failures`` (wrong e-mail or token),
``api_token_expired_uses``, ``tenant_info_calls``, ``quota_points`` (points charged) and ``quota_rejections``
(429s of the quota).

The module ``airflow_provider_confluence.testing.pytest_plugin`` provides a ``fake_atlassian`` fixture; ``python
-m airflow_provider_confluence.testing --port 8765`` runs the emulator standalone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from .canaries import find_leaks, issued_secrets

if TYPE_CHECKING:
    from .emulator import FakeAtlassian

__all__ = ["DEFAULT_SCOPES", "FakeAtlassian", "fake_atlassian", "find_leaks", "issued_secrets"]


def __getattr__(name: str) -> Any:
    # lazy: importing this package must stay cheap (http.server is only loaded when the emulator is used)
    if name == "FakeAtlassian":
        from .emulator import FakeAtlassian

        return FakeAtlassian
    if name == "DEFAULT_SCOPES":
        from .auth import DEFAULT_SCOPES

        return DEFAULT_SCOPES
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@contextmanager
def fake_atlassian(**kwargs: Any) -> Iterator[FakeAtlassian]:
    """Run a :class:`FakeAtlassian` for the duration of a ``with`` block.

    :param kwargs: the arguments of :class:`FakeAtlassian`.
    """
    from .emulator import FakeAtlassian

    with FakeAtlassian(**kwargs) as fake:
        yield fake
