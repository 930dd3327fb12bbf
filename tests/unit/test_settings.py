"""Parsing and checking a confluence_oauth connection's fields (no Airflow, no sockets)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.config.connection import DEFAULT_SCOPES, ConnectionSettings
from airflow_provider_confluence.exceptions import ConfluenceConfigError

pytestmark = pytest.mark.airflow2

SECRET = "planted-client-secret-123"


def parse(host="https://Example.atlassian.net", login="cid", password=SECRET, extra=None):
    return ConnectionSettings.from_connection_fields("c1", host=host, login=login, password=password, extra=extra)


def test_defaults_are_atlassians():
    s = parse(extra={"refresh_token": "rt"})
    assert s.site_url == "https://Example.atlassian.net"
    assert s.site_host == "example.atlassian.net"
    assert s.scope == DEFAULT_SCOPES
    assert s.token_url == "https://auth.atlassian.com/oauth/token"
    assert s.auth_url == "https://auth.atlassian.com/authorize"
    assert s.api_url == "https://api.atlassian.com"
    assert s.token_store == "auto"
    assert s.timeout == 30.0
    assert s.refresh_token == "rt"


@pytest.mark.parametrize(
    "raw",
    [
        "offline_access,read:space:confluence, write:page:confluence",
        "offline_access read:space:confluence\nwrite:page:confluence",
        " offline_access ,, read:space:confluence write:page:confluence read:space:confluence",
    ],
)
def test_scopes_are_normalised_to_space_separated(raw):
    assert parse(extra={"scopes": raw}).scope == "offline_access read:space:confluence write:page:confluence"


def test_scopes_without_offline_access_are_refused():
    with pytest.raises(ConfluenceConfigError, match="offline_access"):
        parse(extra={"scopes": "read:space:confluence write:page:confluence"})


def test_only_classic_scopes_warn_with_the_granular_names():
    s = parse(extra={"scopes": "offline_access write:confluence-content read:confluence-space.summary"})
    assert len(s.warnings) == 1
    assert "write:page:confluence" in s.warnings[0] and "read:space:confluence" in s.warnings[0]


def test_granular_scopes_do_not_warn():
    assert parse(extra={"scopes": DEFAULT_SCOPES}).warnings == ()


@pytest.mark.parametrize("name", ["grant_url", "auth_url", "api_url"])
def test_https_is_required_for_atlassian_urls(name):
    with pytest.raises(ConfluenceConfigError, match="https"):
        parse(extra={name: "http://auth.example.com/oauth/token"})


@pytest.mark.parametrize("host", ["127.0.0.1:8765", "localhost:1", "[::1]:9"])
def test_loopback_may_use_http_when_the_deployment_lists_it(host):
    s = ConnectionSettings.from_connection_fields(
        "c1",
        host="https://example.atlassian.net",
        login="cid",
        password=SECRET,
        allowed_endpoint_hosts=host,
        extra={"grant_url": f"http://{host}/oauth/token", "api_url": f"http://{host}"},
    )
    assert s.token_url.startswith("http://")


@pytest.mark.parametrize(
    ("host", "message"),
    [
        ("", "no Confluence site URL"),
        ("example.atlassian.net", "no scheme"),
        ("https://example.atlassian.net/wiki/spaces/ENG", "has a path"),
        ("http://example.atlassian.net", "https"),
    ],
)
def test_bad_site_urls(host, message):
    with pytest.raises(ConfluenceConfigError, match=message):
        parse(host=host)


def test_site_url_with_wiki_suffix_is_accepted():
    assert parse(host="https://example.atlassian.net/wiki/").site_url == "https://example.atlassian.net"


@pytest.mark.parametrize(("login", "password", "field"), [("", SECRET, "Client ID"), ("cid", " ", "Client secret")])
def test_missing_credentials(login, password, field):
    with pytest.raises(ConfluenceConfigError, match=field):
        parse(login=login, password=password)


def test_malformed_extra_json_is_refused_without_echoing_it():
    with pytest.raises(ConfluenceConfigError, match="not valid JSON") as info:
        parse(extra='{"refresh_token": "planted-rt-999", ')
    assert "planted-rt-999" not in str(info.value)


def test_extra_must_be_an_object():
    with pytest.raises(ConfluenceConfigError, match="not an object"):
        parse(extra=json.dumps(["a"]))


def test_unknown_token_store_and_bad_timeout():
    with pytest.raises(ConfluenceConfigError, match="state_store"):
        parse(extra={"state_store": "redis"})
    with pytest.raises(ConfluenceConfigError, match="timeout"):
        parse(extra={"timeout": "soon"})
    assert parse(extra={"timeout": "12.5"}).timeout == 12.5


def test_the_secret_is_not_in_repr():
    s = parse(extra={"refresh_token": "planted-rt-1"})
    assert SECRET not in repr(s) and "planted-rt-1" not in repr(s)


# -- every URL setting: one reading of scheme, host and port (the security review's attack 1) -----------

#: Each is refused in every URL setting; the message names the setting and says what is wrong.
MALFORMED_URLS = {
    "backslash": ("https://attacker.example:443\\@auth.atlassian.com/oauth/token", "backslash"),
    "userinfo": ("https://someone:planted-url-password@auth.atlassian.com/oauth/token", "'@'"),
    "space": ("https://auth.atlassian.com/oauth /token", "whitespace or a control character"),
    "tab": ("https://auth.atlassian.com\t.attacker.example/oauth/token", "whitespace or a control character"),
    "newline": ("https://auth.atlassian.com/oauth\n/token", "whitespace or a control character"),
    "nul": ("https://auth.atlassian.com\x00.attacker.example/oauth/token", "whitespace or a control character"),
    "zero-width": ("https://auth.atlassian\u200b.com/oauth/token", "whitespace or a control character"),
    "read-differently": ("https://\uff41uth.atlassian.com/oauth/token", "urllib3"),
}
URL_FIELDS = ("auth_url", "grant_url", "api_url", "redirect_uri", "broker_url")


@pytest.mark.parametrize("field", URL_FIELDS)
@pytest.mark.parametrize("kind", sorted(MALFORMED_URLS))
def test_every_url_setting_refuses_what_urllib3_could_read_differently(field, kind):
    url, words = MALFORMED_URLS[kind]
    with pytest.raises(ConfluenceConfigError) as info:
        parse(extra={field: url})
    message = info.value.message
    assert field in message and words in message, message
    assert "planted-url-password" not in message


@pytest.mark.parametrize("kind", sorted(MALFORMED_URLS))
def test_the_site_url_refuses_the_same(kind):
    url, words = MALFORMED_URLS[kind]
    with pytest.raises(ConfluenceConfigError) as info:
        parse(host=url.replace("/oauth/token", "").replace("auth.atlassian.com", "example.atlassian.net"))
    assert "site URL" in info.value.message
    assert "planted-url-password" not in info.value.message


# -- where credentials may go: Atlassian's hosts, or those the deployment lists (attack 2) ---------------


def parse_allowed(allowed, **extra):
    return ConnectionSettings.from_connection_fields(
        "c1",
        host="https://example.atlassian.net",
        login="cid",
        password=SECRET,
        extra=extra,
        allowed_endpoint_hosts=allowed,
    )


@pytest.mark.parametrize("field", ["auth_url", "grant_url", "api_url"])
def test_endpoints_are_pinned_to_atlassians_hosts(field):
    with pytest.raises(ConfluenceConfigError) as info:
        parse_allowed("", **{field: "https://attacker.example/oauth/token"})
    message = info.value.message
    assert f"{field} points at attacker.example:443" in message
    assert "auth.atlassian.com, api.atlassian.com" in message
    assert "[confluence] allowed_endpoint_hosts" in message and "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS" in message
    assert f"Leave {field} empty for Atlassian's default" in message


@pytest.mark.parametrize(
    ("allowed", "url", "accepted"),
    [
        ("attacker.example", "https://attacker.example/oauth/token", True),
        ("Attacker.Example:443", "https://attacker.example/oauth/token", True),
        ("attacker.example:8443", "https://attacker.example/oauth/token", False),  # another port than listed
        ("attacker.example:8443", "https://attacker.example:8443/oauth/token", True),
        ("proxy.example, attacker.example", "https://attacker.example/oauth/token", True),
        ("attacker.example", "https://sub.attacker.example/oauth/token", False),  # no wildcards
        ("127.0.0.1:8765", "http://127.0.0.1:8765/oauth/token", True),  # plain http: a listed loopback host
        ("127.0.0.1:8765", "http://127.0.0.1:8766/oauth/token", False),
        ("127.0.0.1:8765", "http://localhost:8765/oauth/token", False),  # listed by its address, not its name
        ("[::1]:8765", "http://[::1]:8765/oauth/token", True),
        ("", "http://127.0.0.1:8765/oauth/token", False),  # loopback alone no longer opens plain http
        ("attacker.example", "http://attacker.example/oauth/token", False),  # plain http only to loopback
        ("", "https://auth.atlassian.com:8443/oauth/token", False),  # Atlassian's host, another port
        ("", "http://auth.atlassian.com/oauth/token", False),
    ],
)
def test_the_deployment_may_list_other_endpoint_hosts(allowed, url, accepted):
    if accepted:
        assert parse_allowed(allowed, grant_url=url).token_url == url
    else:
        with pytest.raises(ConfluenceConfigError):
            parse_allowed(allowed, grant_url=url)


@pytest.mark.parametrize(
    "entry",
    [
        "https://attacker.example",
        "attacker.example/path",
        "attacker.example:port",
        "user@attacker.example",
        "attacker.example:99999",
    ],
)
def test_a_malformed_allow_list_entry_is_refused_and_named(entry):
    with pytest.raises(ConfluenceConfigError) as info:
        parse_allowed(f"api.example.com,{entry}")
    message = info.value.message
    assert "[confluence] allowed_endpoint_hosts" in message and "host or host:port" in message


def test_the_site_may_be_any_https_host_because_no_credential_is_sent_there():
    """Only links to pages are made from the site URL (tests/integration/test_security.py shows nothing is sent to it)."""
    assert parse_allowed("", refresh_token="rt").site_url == "https://example.atlassian.net"
    assert parse("https://wiki.example.org", extra={}).site_url == "https://wiki.example.org"


# -- the extras renamed in 0.2.0 (token_store -> state_store, token_url -> grant_url) ---------------------------


@pytest.mark.parametrize(
    ("old", "new", "value", "attribute"),
    [
        ("token_store", "state_store", "variable", "token_store"),
        ("token_url", "grant_url", "https://auth.atlassian.com/oauth/token2", "token_url"),
    ],
)
def test_an_old_extra_name_still_works_with_a_deprecation_warning(old, new, value, attribute):
    with pytest.warns(DeprecationWarning, match=f"rename it to {new}"):
        s = parse(extra={"refresh_token": "rt", old: value})
    assert getattr(s, attribute) == value
    assert any(old in w and new in w for w in s.warnings)  # the hook logs them


@pytest.mark.parametrize(
    ("old", "new", "value"),
    [
        ("token_store", "state_store", "variable"),
        ("token_url", "grant_url", "https://auth.atlassian.com/oauth/token2"),
    ],
)
def test_old_and_new_names_with_the_same_value_are_accepted(old, new, value):
    s = parse(extra={"refresh_token": "rt", old: value, new: value})
    assert value in (s.token_store, s.token_url)


@pytest.mark.parametrize(
    ("old", "new", "old_value", "new_value"),
    [
        ("token_store", "state_store", "variable", "connection"),
        ("token_url", "grant_url", "https://auth.atlassian.com/oauth/token2", "https://auth.atlassian.com/oauth/token"),
    ],
)
def test_old_and_new_names_with_different_values_are_refused(old, new, old_value, new_value):
    with pytest.raises(ConfluenceConfigError) as info:
        parse(extra={"refresh_token": "rt", old: old_value, new: new_value})
    assert f"both {new} and its old name {old}" in info.value.message
    assert f"Keep {new}" in info.value.message and f"delete {old}" in info.value.message


def test_the_new_names_raise_no_warning(recwarn):
    s = parse(extra={"refresh_token": "rt", "state_store": "memory", "grant_url": "https://auth.atlassian.com/t"})
    assert (s.token_store, s.token_url, s.warnings) == ("memory", "https://auth.atlassian.com/t", ())
    assert not [w for w in recwarn if issubclass(w.category, DeprecationWarning)]


def test_an_old_endpoint_name_is_pinned_like_the_new_one():
    with pytest.raises(ConfluenceConfigError, match="grant_url points at attacker.example:443"):
        parse_allowed("", token_url="https://attacker.example/oauth/token")


def test_the_journal_binds_an_old_and_a_new_endpoint_name_alike():
    from types import SimpleNamespace

    from airflow_provider_confluence.auth.stores.journal import connection_binding

    def row(extra):
        return SimpleNamespace(login="cid", host="https://example.atlassian.net", get_extra=lambda: json.dumps(extra))

    url = "https://auth.atlassian.com/oauth/token2"
    assert connection_binding(row({"token_url": url})) == connection_binding(row({"grant_url": url}))
    assert connection_binding(row({"grant_url": url})) != connection_binding(row({}))
