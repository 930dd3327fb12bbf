"""The Test button's live check: one cheap request with an access token that is already saved, never a refresh.

Airflow tests a connection from its edit form under a temporary connection id (the form need not be saved), so a
refresh there would rotate the grant and lose the new refresh token. What can be checked without one: a saved
connection of the same grant (:func:`choose_saved_grant`) still holds a valid access token, and the form asks for
nothing that would send that token anywhere else. Then :func:`check_site` sends ``GET
/wiki/api/v2/spaces?limit=1`` through the API gateway with it, without retrying on a refusal.

The grant of a form is found by its refresh token: the saved connection's current one, the one it was seeded
from, or one it has rotated away (the rotation journal: an edit form opened before a rotation holds it). The
saved token is used only when the form's client ID, site, ``grant_url`` and ``api_url`` equal the saved
connection's: a form that changes an endpoint (or the app) gets no live check, so no token ever goes to a host
the form named.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import requests

from airflow_provider_confluence.auth import oauth
from airflow_provider_confluence.auth.fingerprint import fingerprint
from airflow_provider_confluence.auth.tokens import TokenState
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceError
from airflow_provider_confluence.retry import RetryPolicy

#: The request of the live check: the cheapest read the default scopes allow.
CHECK_PATH = "/wiki/api/v2/spaces"


@dataclass(frozen=True)
class SavedGrant:
    """A saved connection's token state, as its store holds it.

    :param conn_id: the saved connection.
    :param settings: its settings, as saved.
    :param state: the token state its store holds now.
    :param lineage: fingerprints of the refresh tokens of its grant: current, seeded from, rotated away.
    """

    conn_id: str
    settings: ConnectionSettings
    state: TokenState = field(repr=False)
    lineage: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Choice:
    """The saved grant to test with, or None and what to tell the user."""

    grant: SavedGrant | None
    message: str = ""


def changed_settings(form: ConnectionSettings, saved: ConnectionSettings) -> list[str]:
    """The fields the form changes that decide where a token goes (names only, never values)."""
    pairs = (
        ("Client ID (Login)", form.client_id, saved.client_id),
        ("site URL (Host)", form.site_host, saved.site_host),
        ("grant_url", form.token_url, saved.token_url),
        ("api_url", form.api_url, saved.api_url),
    )
    return [name for name, mine, theirs in pairs if mine != theirs]


def choose_saved_grant(form: ConnectionSettings, saved: Iterable[SavedGrant], now: float) -> Choice:
    """The saved grant whose stored access token may test the form, or why there is none.

    :param form: the settings under test (the form's, possibly unsaved).
    :param saved: every saved connection's grant that this process can read.
    :param now: the current time, epoch seconds.
    """
    held = fingerprint(form.refresh_token)
    if held is None:
        return Choice(None, "Settings are valid, but there is no refresh token yet: authorize the app first.")
    related = [grant for grant in saved if held in grant.lineage]
    if not related:
        return Choice(
            None,
            (
                "Settings are valid. No saved connection holds this grant (the refresh token is not one that a saved "
                "confluence_oauth connection holds or has rotated away), so there is no access token to test with, "
                "and testing never redeems the refresh token. Save the connection (authorize it if the token is "
                "new), run a task that uses it, then test again."
            ),
        )
    same = [grant for grant in related if not changed_settings(form, grant.settings)]
    if not same:
        grant = related[0]
        return Choice(
            None,
            (
                f"Settings are valid, but this form changes the {', '.join(changed_settings(form, grant.settings))} of "
                f"saved connection {grant.conn_id!r}: its access token is only ever sent with the settings it was "
                "issued for, so there was no live check. Save the connection (authorize it again if the app "
                "changed), run a task that uses it, then test again."
            ),
        )
    valid = [grant for grant in same if grant.state.access_token_valid(now)]
    if not valid:
        grant = same[0]
        return Choice(
            None,
            (
                f"Settings are valid. Saved connection {grant.conn_id!r} holds no valid access token now, and testing "
                "never redeems the refresh token (Airflow tests under a temporary connection, where a rotated token "
                f"would be lost). Run a task that uses the connection, or: airflow-confluence refresh --conn-id "
                f"{grant.conn_id}; then test again."
            ),
        )
    return Choice(max(valid, key=lambda grant: grant.state.expires_at or 0.0))


class _SavedAccessToken:
    """The client's token source for the live check: the saved access token, and no refresh, ever."""

    def __init__(self, grant: SavedGrant) -> None:
        self._grant = grant

    def get_access_token(self) -> str:
        return str(self._grant.state.access_token)

    def refresh_rejected(self, rejected_token: str) -> str:
        raise ConfluenceAuthError(
            f"Confluence refused the access token saved in connection {self._grant.conn_id!r}; testing never "
            "refreshes it. Run a task that uses the connection (it refreshes and saves the grant), then test again."
        )

    def access_token_expired(self) -> bool:
        return False


def check_site(form: ConnectionSettings, grant: SavedGrant, session: requests.Session) -> tuple[bool, str]:
    """Send ``GET /wiki/api/v2/spaces?limit=1`` with the grant's saved access token, through the form's (equal,
    pinned) API gateway; the Test button's answer.

    :param form: the settings under test; :func:`changed_settings` with the grant's must be empty.
    :param grant: a grant chosen by :func:`choose_saved_grant`.
    :param session: the HTTP session to use.
    """
    if changed_settings(form, grant.settings):  # choose_saved_grant never gives one; refuse rather than send
        return False, "The form's endpoints differ from the saved connection's; no request was sent."
    token = str(grant.state.access_token)
    where = f"the access token saved in connection {grant.conn_id!r}"
    try:
        cloud_id = form.cloud_id or grant.state.cloud_id or grant.settings.cloud_id
        if not cloud_id:
            resources = oauth.accessible_resources(
                session, api_url=form.api_url, access_token=token, timeout=form.timeout
            )
            cloud_id = oauth.find_cloud_id(resources, form.site_host)
        client = ConfluenceClient(
            api_url=form.api_url,
            cloud_id=cloud_id,
            tokens=_SavedAccessToken(grant),
            site_url=form.site_url,
            session=session,
            timeout=form.timeout,
            retry=RetryPolicy(max_attempts=1, max_attempts_with_retry_after=1),
        )
        client.request("GET", CHECK_PATH, params={"limit": 1})
    except ConfluenceError as exc:
        return False, f"Live check with {where} failed: {exc.message}"
    return True, (
        f"Connected to {form.site_url} (cloud id {cloud_id}) with {where}: GET {CHECK_PATH}?limit=1 answered "
        "successfully. Nothing was refreshed."
    )
