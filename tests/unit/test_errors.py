"""The error tree: every class pickles, rides a trigger event, and keeps Atlassian's trace id but no secret header.

The classes are enumerated from the tree and their arguments built from their signatures, so a new error class
is tested without anyone adding it here.
"""

from __future__ import annotations

import inspect
import json
import pickle

import pytest

import airflow_provider_confluence.exceptions as errors
from airflow_provider_confluence._error_support import KEPT_HEADERS, kept_headers, trace_id_of
from airflow_provider_confluence.client.responses import error_from_response
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceAuthError,
    ConfluenceBrokerError,
    ConfluenceError,
    ConfluenceMissing,
    ConfluenceNotFound,
    ConfluencePageExists,
    ConfluencePageMissing,
    ConfluenceRateLimited,
    ConfluenceReauthorizationRequired,
)

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

PACKAGE = "airflow_provider_confluence"
PAGES = "https://api.atlassian.com/ex/confluence/abc-123/wiki/api/v2/pages"
SECRET_HEADERS = {
    "Authorization": "Bearer eyJhbGciOi.secret-access-token.sig",
    "Proxy-Authorization": "Basic c2VjcmV0",
    "Set-Cookie": "cloud.session.token=secret-session; Path=/",
    "Cookie": "tenant.session.token=secret-cookie",
    "WWW-Authenticate": 'Bearer realm="secret-realm"',
    "X-Amz-Security-Token": "secret-amz",
    "X-Refresh-Token": "secret-refresh",
}


def tree() -> list[type[ConfluenceError]]:
    """Every error class the provider defines: ConfluenceError and all its subclasses in the package."""
    found: list[type[ConfluenceError]] = []
    todo: list[type[ConfluenceError]] = [ConfluenceError]
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith(PACKAGE) and cls not in found:
            found.append(cls)
        todo.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


VALUES = {  # a non-default value for every kind of parameter the tree uses
    "str": "value",
    "str | None": "value",
    "int": 418,
    "int | None": 418,
    "bool": True,
    "float | None": 2.5,
    "list[str]": ["5898241", "5898242"],
    "Mapping[str, str] | None": {"Atl-Traceid": "0123abcd", "Retry-After": "7", "Set-Cookie": "s=secret"},
    "Mapping[str, Any] | None": {"cursor": "https://api.example/wiki/api/v2/spaces?cursor=X", "results": [{"id": "1"}]},
}


def example(cls: type[ConfluenceError]) -> ConfluenceError:
    """An instance of ``cls`` with every argument given, by name, from its signature."""
    kwargs = {}
    for name, param in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        annotation = str(param.annotation)
        assert annotation in VALUES, f"{cls.__name__}({name}: {annotation}): add a value for this type to VALUES"
        value = VALUES[annotation]
        if name == "trace_id":
            value = None  # taken from the headers
        kwargs[name] = f"{name}-{value}" if isinstance(value, str) else value
    return cls(**kwargs)


def same(rebuilt: BaseException, original: BaseException) -> bool:
    return (
        type(rebuilt) is type(original)
        and str(rebuilt) == str(original)
        and rebuilt.args == original.args
        and vars(rebuilt) == vars(original)
    )


def test_the_tree_holds_every_class_the_module_exports():
    names = {cls.__name__ for cls in tree()}  # plus any subclass defined elsewhere in the package, once imported
    assert set(errors.__all__) <= names
    assert len(errors.__all__) >= 19


@pytest.mark.parametrize("cls", tree(), ids=lambda c: c.__name__)
@pytest.mark.parametrize("protocol", range(2, pickle.HIGHEST_PROTOCOL + 1))
def test_every_error_pickles_with_its_class_message_and_attributes(cls, protocol):
    original = example(cls)
    original.add_note("a note added later")  # state set after __init__ survives too
    rebuilt = pickle.loads(pickle.dumps(original, protocol=protocol))
    assert same(rebuilt, original), (vars(rebuilt), vars(original))
    assert rebuilt.__notes__ == ["a note added later"]


@pytest.mark.parametrize("cls", tree(), ids=lambda c: c.__name__)
def test_every_error_rides_a_trigger_event(cls):
    original = example(cls)
    event = json.loads(json.dumps(original.to_event()))  # a trigger event holds only JSON
    assert event["error_type"] == cls.__name__ and event["message"] == str(original)
    rebuilt = ConfluenceError.from_event({"status": "error", **event})
    assert same(rebuilt, original), (vars(rebuilt), vars(original))


def test_the_facts_survive_pickling_under_their_names():
    limited = ConfluenceRateLimited(
        429, "GET", PAGES, "TOO_MANY", "Slow down.", retry_after=30.0, headers={"Atl-Traceid": "beef01"}
    )
    again = pickle.loads(pickle.dumps(limited))
    assert (
        again.status_code,
        again.method,
        again.url,
        again.code,
        again.detail,
        again.retry_after,
        again.trace_id,
    ) == (429, "GET", PAGES, "TOO_MANY", "Slow down.", 30.0, "beef01")
    dead = pickle.loads(pickle.dumps(ConfluenceReauthorizationRequired("Authorize again.", conn_id="wiki")))
    assert (dead.conn_id, dead.error, dead.message) == ("wiki", "invalid_grant", "Authorize again.")
    broker = pickle.loads(pickle.dumps(ConfluenceBrokerError("No.", url="http://api:8080/x", reason="unreachable")))
    assert broker.unreachable and broker.url == "http://api:8080/x"


def test_an_event_never_names_a_class_outside_the_tree():
    class LocalError(ConfluenceError):  # defined outside the package: not in the registry
        pass

    for name in ("SystemExit", "os.system", "builtins.eval", "ErrorSupport", "LocalError", "__class__", ""):
        rebuilt = ConfluenceError.from_event(
            {"status": "error", "error_type": name, "message": "boom", "kwargs": {"message": "boom"}}
        )
        assert type(rebuilt) is ConfluenceError
    assert "LocalError: boom" in str(ConfluenceError.from_event(LocalError("boom").to_event()))


def test_a_bad_event_still_gives_an_error_that_says_what_arrived():
    assert "Unexpected trigger event" in str(ConfluenceError.from_event(None))
    assert "Unexpected trigger event" in str(ConfluenceError.from_event({"status": "found", "page": "x"}))
    wrong = ConfluenceError.from_event({"error_type": "ConfluenceNotFound", "message": "m", "kwargs": {"nope": 1}})
    assert type(wrong) is ConfluenceError and str(wrong) == "ConfluenceNotFound: m"
    damaged = {"status_code": 404, "method": "GET", "url": PAGES, "code": None, "message": "m", "headers": "oops"}
    rebuilt = ConfluenceError.from_event({"error_type": "ConfluenceNotFound", "message": "m", "kwargs": damaged})
    assert type(rebuilt) is ConfluenceError and str(rebuilt) == "ConfluenceNotFound: m"


def test_events_of_0_1_triggers_still_rebuild_their_class():
    old_api = {
        "status": "error",
        "error_type": "ConfluenceNotFound",
        "message": "Space 'X' is missing.",
        "status_code": 404,
        "method": "GET",
        "url": PAGES,
        "code": "NOT_FOUND",
    }
    rebuilt = ConfluenceError.from_event(old_api)
    assert type(rebuilt) is ConfluenceNotFound and (rebuilt.status_code, rebuilt.url) == (404, PAGES)
    old_auth = {
        "status": "error",
        "error_type": "ConfluenceAuthError",
        "message": "Timed out.",
        "error": "temporarily_unavailable",
        "transient": True,
    }
    auth = ConfluenceError.from_event(old_auth)
    assert type(auth) is ConfluenceAuthError and auth.transient and auth.error == "temporarily_unavailable"


def test_a_class_that_takes_positional_only_arguments_is_refused_at_definition():
    with pytest.raises(TypeError, match="named arguments only"):

        class Bad(ConfluenceError):  # noqa: F841
            def __init__(self, *parts: str) -> None:
                super().__init__(" ".join(parts))


def test_lookups_that_found_nothing_carry_no_http_status():
    missing = ConfluencePageMissing("No page 'Q3' in space ENG.", title="Q3", space_key="ENG")
    exists = ConfluencePageExists("Page 'Q3' exists.", title="Q3", space_id="42", page_id="7")
    assert missing.status_code is None and exists.status_code is None
    assert not isinstance(missing, ConfluenceApiError) and isinstance(missing, ConfluenceMissing)
    assert not isinstance(exists, ConfluenceApiError)


# -- the trace id and the header allow-list ----------------------------------------------------------------------


def test_the_trace_id_reaches_the_error_and_its_message():
    exc = error_from_response(
        "get", PAGES + "/7", 404, b'{"errors":[{"status":404,"title":"Not Found"}]}', {"ATL-TRACEID": "9f8e7d6c5b4a"}
    )
    assert isinstance(exc, ConfluenceNotFound)
    assert (exc.method, exc.url, exc.status_code, exc.trace_id) == ("GET", PAGES + "/7", 404, "9f8e7d6c5b4a")
    assert str(exc).startswith(f"GET {PAGES}/7 answered 404: ") and str(exc).endswith("(Atl-Traceid 9f8e7d6c5b4a)")
    assert exc.headers == {"Atl-Traceid": "9f8e7d6c5b4a"}


def test_without_a_trace_id_the_message_is_as_before():
    exc = error_from_response("GET", PAGES, 500, b"", {})
    assert exc.trace_id is None and "Atl-Traceid" not in str(exc) and exc.headers == {}
    assert str(exc) == f"GET {PAGES} answered 500: {exc.detail}" and exc.detail.startswith("Internal Server Error.")


@pytest.mark.parametrize("value", ["a b", "x\r\nSet-Cookie: y", "", "z" * 200, "<script>"])
def test_a_malformed_trace_id_is_dropped(value):
    assert trace_id_of({"Atl-Traceid": value}) is None


def test_rate_limit_headers_are_kept_under_their_usual_names():
    exc = error_from_response(
        "GET",
        PAGES,
        429,
        b"",
        {"retry-after": "30", "x-ratelimit-remaining": "0", "X-RATELIMIT-NEARLIMIT": "true", "beta-retry-after": "60"},
    )
    assert isinstance(exc, ConfluenceRateLimited) and exc.retry_after == 30.0
    assert exc.headers == {
        "Retry-After": "30",
        "X-RateLimit-Remaining": "0",
        "X-RateLimit-NearLimit": "true",
        "Beta-Retry-After": "60",
    }


def test_no_secret_header_is_kept_pickled_or_put_in_an_event():
    headers = {**SECRET_HEADERS, "Atl-Traceid": "abc123", "Retry-After": "5"}
    built = [error_from_response("GET", PAGES, status, b"", headers) for status in (401, 404, 409, 429, 503)]
    built.append(ConfluenceApiError(400, "POST", PAGES, None, "Bad.", headers=headers))  # direct use filters too
    for exc in built:
        assert set(exc.headers) == {"Atl-Traceid", "Retry-After"}
        leaked = [
            name
            for name, value in SECRET_HEADERS.items()
            if value.encode() in pickle.dumps(exc) or value in json.dumps(exc.to_event()) or value in str(exc)
        ]
        assert leaked == []


def test_the_allow_list_holds_no_credential_header():
    risky = ("authorization", "cookie", "token", "secret", "session", "auth", "key")
    assert [name for name in KEPT_HEADERS if any(word in name.lower() for word in risky)] == []


def test_header_values_are_cleaned_and_capped():
    kept = kept_headers({"Content-Type": "text/html\r\nX-Evil: 1" + "x" * 500})
    assert "\r" not in kept["Content-Type"] and "\n" not in kept["Content-Type"]
    assert len(kept["Content-Type"]) == 200


def test_the_token_endpoints_trace_id_reaches_the_auth_error() -> None:
    import requests
    import requests_mock

    from airflow_provider_confluence.auth import oauth
    from airflow_provider_confluence.exceptions import ConfluenceInvalidGrant

    token_url = "https://auth.atlassian.com/oauth/token"
    with requests_mock.Mocker() as mocked:
        mocked.post(
            token_url,
            status_code=403,
            headers={"Atl-Traceid": "feed0042"},
            json={"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
        )
        with pytest.raises(ConfluenceInvalidGrant) as caught:
            oauth.refresh(
                requests.Session(),
                token_url=token_url,
                client_id="cid",
                client_secret="s3cret-value",
                refresh_token="rt-value",
                timeout=5,
            )
    assert caught.value.trace_id == "feed0042" and str(caught.value).endswith("(Atl-Traceid feed0042)")
    assert ("s3cret-value" in str(caught.value), "rt-value" in str(caught.value)) == (False, False)


def test_reauthorization_keeps_the_trace_id_of_the_refused_refresh() -> None:
    from airflow_provider_confluence.auth.tokens import MemoryTokenStore, TokenManager, TokenState
    from airflow_provider_confluence.exceptions import ConfluenceInvalidGrant

    def endpoint(refresh_token: str) -> object:
        raise ConfluenceInvalidGrant("invalid_grant", status_code=403, error="invalid_grant", trace_id="cafe99")

    manager = TokenManager(
        store=MemoryTokenStore(TokenState(refresh_token="rt-dead")),
        refresh=endpoint,
        conn_id="wiki",
        sleep=lambda seconds: None,
    )
    with pytest.raises(ConfluenceReauthorizationRequired) as caught:
        manager.get_access_token()
    assert (caught.value.trace_id, caught.value.conn_id) == ("cafe99", "wiki")
