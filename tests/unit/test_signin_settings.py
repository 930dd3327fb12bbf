"""The ``auth_type`` extra and the fields each way of signing in needs (config/connection.py, config/signin.py)."""

from __future__ import annotations

import datetime

import pytest

from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.config.signin import AUTH_TYPES
from airflow_provider_confluence.exceptions import ConfluenceConfigError
from airflow_provider_confluence.get_provider_info import AUTH_TYPE_CHOICES, get_provider_info

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

SECRET = "s3cret-VALUE-never-shown"
TOKEN = "ATATT-api-token-never-shown"


def parse(login: str = "cid", password: str = SECRET, **extra: object) -> ConnectionSettings:
    return ConnectionSettings.from_connection_fields(
        "conf", host="https://acme.atlassian.net", login=login, password=password, extra=extra
    )


def test_the_default_is_3lo_and_keeps_todays_rules():
    settings = parse()
    assert settings.auth_type == "oauth2_3lo"
    assert settings.uses_refresh_token
    with pytest.raises(ConfluenceConfigError, match="offline_access"):
        parse(scopes="read:page:confluence")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("oauth2_3lo", "oauth2_3lo"),
        (" Client_Credentials ", "client_credentials"),
        ("client-credentials", "client_credentials"),
        ("service_account", "client_credentials"),
        ("API_TOKEN", "api_token"),
        ("", "oauth2_3lo"),
        (None, "oauth2_3lo"),
    ],
)
def test_auth_type_values(raw, expected):
    login = "robot@example.com" if expected == "api_token" else "cid"
    settings = parse(login=login, auth_type=raw)
    assert settings.auth_type == expected
    assert settings.uses_refresh_token is (expected == "oauth2_3lo")


# (extra, login, password, what the message must say): every refusal names the field and the fix, never a secret
REFUSED = [
    ({"auth_type": "saml"}, "cid", SECRET, "use one of oauth2_3lo, client_credentials, api_token"),
    ({"auth_type": "client_credentials"}, "", SECRET, "no Client ID (the Login field)"),
    ({"auth_type": "client_credentials"}, "cid", "", "Service accounts"),
    ({"auth_type": "api_token"}, "", TOKEN, "no e-mail address (the Login field)"),
    ({"auth_type": "api_token"}, "robot@example.com", " ", "no API token (the Password field)"),
    ({"auth_type": "api_token"}, "robot", TOKEN, "Login is not an e-mail address"),
    ({"auth_type": "api_token"}, "cid-1234567890", TOKEN, "Login is not an e-mail address"),
    ({"auth_type": "api_token", "credential_expires": "next year"}, "robot@example.com", TOKEN, "YYYY-MM-DD"),
    ({"auth_type": "api_token", "credential_expires": "2027-02-30"}, "robot@example.com", TOKEN, "is not a date"),
    ({"auth_type": "api_token", "credential_expires": "31/01/2027"}, "robot@example.com", TOKEN, "is not a date"),
]


@pytest.mark.parametrize(("extra", "login", "password", "says"), REFUSED)
def test_refusals_say_what_to_fix_without_secrets(extra, login, password, says):
    with pytest.raises(ConfluenceConfigError) as caught:
        parse(login=login, password=password, **extra)
    message = caught.value.message
    assert says in message
    assert (SECRET in message) is False
    assert (TOKEN in message) is False


def test_service_accounts_need_no_offline_access_and_no_refresh_token():
    settings = parse(auth_type="client_credentials")
    assert settings.refresh_token is None
    assert settings.warnings == ()


@pytest.mark.parametrize("auth_type", ["client_credentials", "api_token"])
def test_a_scopes_extra_without_offline_access_is_accepted_but_ignored_with_a_warning(auth_type):
    login = "robot@example.com" if auth_type == "api_token" else "client-id"
    settings = parse(auth_type=auth_type, login=login, scopes="read:page:confluence")
    assert len(settings.warnings) == 1
    assert "a scopes extra, which it ignores and never sends" in settings.warnings[0]
    assert ("invalid_scope" in settings.warnings[0]) is (auth_type == "client_credentials")


def test_a_refresh_token_with_client_credentials_is_kept_but_ignored_with_a_warning():
    settings = parse(auth_type="client_credentials", refresh_token="rt-stale", state_store="variable")
    assert settings.auth_type == "client_credentials"
    assert len(settings.warnings) == 1
    assert "refresh_token, state_store" in settings.warnings[0]
    assert "ignores" in settings.warnings[0]
    assert ("rt-stale" in settings.warnings[0]) is False


def test_credential_expires_is_parsed_and_only_kept_for_api_tokens():
    settings = parse(login="robot@example.com", auth_type="api_token", credential_expires="2027-01-31")
    assert settings.credential_expires == datetime.date(2027, 1, 31)
    full = parse(login="robot@example.com", auth_type="api_token", credential_expires="2027-01-31T10:00:00+00:00")
    assert full.credential_expires == datetime.date(2027, 1, 31)
    three_lo = parse(credential_expires="2027-01-31")
    assert three_lo.credential_expires is None
    assert "credential_expires" in three_lo.warnings[0]


def test_api_token_does_not_warn_when_only_its_fields_are_set():
    settings = parse(
        login="Robot@Example.com",
        auth_type="api_token",
        credential_expires="2027-01-31",
        cloud_id="1324a887-45db-1bf4-1e99-ef0ff456d421",
    )
    assert settings.warnings == ()
    assert settings.cloud_id == "1324a887-45db-1bf4-1e99-ef0ff456d421"


def test_the_form_offers_exactly_the_types_the_settings_accept():
    assert tuple(AUTH_TYPE_CHOICES) == AUTH_TYPES
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    schema = fields["auth_type"]["schema"]
    assert schema["enum"] == list(AUTH_TYPES)
    assert schema["default"] == "oauth2_3lo"
    assert set(schema["values_display"]) == set(AUTH_TYPES)
    assert fields["credential_expires"]["schema"]["format"] == "date"
    assert "format" not in fields["auth_type"]["schema"]  # not a password field


def test_the_first_planned_name_api_token_expires_still_works_with_a_warning():
    settings = parse(login="robot@example.com", auth_type="api_token", api_token_expires="2027-01-31")
    assert settings.credential_expires == datetime.date(2027, 1, 31)
    assert any("rename it to credential_expires" in w for w in settings.warnings)
