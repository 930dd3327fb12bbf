"""Property tests (hypothesis) of the pure parsers, and bounded fuzz runs of the emulator and the client.

* ``next_links.join_next_link``: never ``/wiki/wiki``, never another host, the query kept verbatim; any other
  link is a ``ConfluenceError``, never another exception.
* ``settings.parse_scopes``: order-preserving de-duplication over any mix of separators, idempotent.
* ``responses.error_from_response``: any status, bytes and headers give a ``ConfluenceApiError`` whose message
  is bounded and never holds a planted secret.
* the emulator's token endpoint: any body answers a JSON OAuth error or a token, never 500, never a hang.
* ``ConfluenceClient.request`` and ``paginate`` over requests-mock: a parsed result or a ``ConfluenceError``.

Storage-format escaping is not fuzzed here: the provider does not escape storage XHTML yet (a later issue).

Every test is derandomized (a fixed seed per test) with a bounded number of examples, so that CI runs are
reproducible and the file runs in seconds. Strategies never hold a real secret: placeholders are swapped for the
emulator's values inside the test, so that a falsifying example printed by hypothesis leaks nothing.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest
import requests
import requests_mock as rm
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.client.pagination import join_next_link
from airflow_provider_confluence.client.responses import MAX_ECHO, error_from_response
from airflow_provider_confluence.config.connection import parse_scopes
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.retry import RetryPolicy
from airflow_provider_confluence.testing import FakeAtlassian

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

FUZZ = settings(
    max_examples=300, deadline=None, derandomize=True, database=None, suppress_health_check=[HealthCheck.too_slow]
)
FUZZ_HTTP = settings(FUZZ, max_examples=200)

# A secret planted in answers (it has the shape of an Atlassian token but was never issued by anyone).
PLANTED = "pLaNtEd-5ecret-Zq8v2Xk9Lm4Nw7Rt3Yb6Hc1Jd0"

# -- next links ---------------------------------------------------------------------------------------

hosts = st.sampled_from(["api.atlassian.com", "127.0.0.1", "gw.example.test", "API.Atlassian.com"])
ports = st.one_of(st.none(), st.integers(min_value=1, max_value=65535))
cloud_ids = st.text(string.ascii_lowercase + string.digits + "-", min_size=1, max_size=36)
segment = st.text(string.ascii_letters + string.digits + "-_.~%", min_size=1, max_size=12).filter(
    lambda s: s not in (".", "..")
)
query_text = st.text(string.ascii_letters + string.digits + "-_.~%=&+[]:/?@!$'()*,;", max_size=40)


@st.composite
def gateway_bases(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["https", "http"]))
    port = draw(ports)
    netloc = draw(hosts) + (f":{port}" if port else "")
    suffix = draw(st.sampled_from(["", "/", "/wiki", "/wiki/"]))
    return f"{scheme}://{netloc}/ex/confluence/{draw(cloud_ids)}{suffix}"


@st.composite
def relative_links(draw: st.DrawFn, base: str) -> str:
    """A next link as Confluence or a proxy might send it: site-relative, gateway-relative or absolute."""
    tail = "/".join(draw(st.lists(segment, min_size=0, max_size=4)))
    path = draw(st.sampled_from(["/wiki/api/v2/", "/wiki/", "/wiki/wiki/api/v2/", "/api/v2/", "/"])) + tail
    parts = urlsplit(base)
    root = parts.path.rstrip("/")
    root = root[: -len("/wiki")] if root.endswith("/wiki") else root
    form = draw(st.sampled_from(["site", "gateway", "absolute"]))
    if form == "gateway":
        path = root + path
    elif form == "absolute":
        path = f"{parts.scheme}://{parts.netloc}{root}{path}"
    query = draw(query_text)
    return f"{path}?{query}" if query else path


def _gateway_root(base: str) -> str:
    parts = urlsplit(base)
    root = parts.path.rstrip("/")
    root = root[: -len("/wiki")] if root.endswith("/wiki") else root
    return f"{parts.scheme}://{parts.netloc}{root}"


@FUZZ
@given(data=st.data(), base=gateway_bases())
def test_next_links_stay_on_the_gateway_and_keep_their_query(data: st.DataObject, base: str) -> None:
    link = data.draw(relative_links(base))
    joined = join_next_link(base, link)
    parts = urlsplit(joined)
    assert "/wiki/wiki" not in parts.path
    assert parts.netloc == urlsplit(base).netloc  # never another host
    assert joined.startswith(_gateway_root(base) + "/wiki")
    assert parts.query == urlsplit(link).query  # verbatim: the cursor is not always the last parameter
    assert join_next_link(base, joined) == joined  # joining again changes nothing


@FUZZ
@given(
    base=gateway_bases(),
    host=st.sampled_from(["evil.example.com", "api.atlassian.com.evil.test", "[::1]"]),
    scheme=st.sampled_from(["https:", "http:", ""]),
    path=st.sampled_from(["/wiki/api/v2/spaces", "/x"]),
)
@example(
    base="https://api.atlassian.com/ex/confluence/c",
    host="api.atlassian.com:8443",
    scheme="https:",
    path="/wiki/api/v2/spaces",
)
def test_next_links_to_another_host_are_refused(base: str, host: str, scheme: str, path: str) -> None:
    assume(host.lower() != urlsplit(base).netloc.lower())
    with pytest.raises(ConfluenceError, match="Refusing to follow a link"):
        join_next_link(base, f"{scheme}//{host}{path}?cursor=abc")


@FUZZ
@given(base=gateway_bases(), link=st.text(max_size=60))
@example(base="https://api.atlassian.com/ex/confluence/c", link="http://[")
@example(base="https://api.atlassian.com/ex/confluence/c", link="//[::1/wiki/x")
@example(base="https://api.atlassian.com/ex/confluence/c", link="https://api.atlassian.com:99999/wiki/x")
def test_any_next_link_is_joined_onto_the_gateway_or_refused_cleanly(base: str, link: str) -> None:
    try:
        joined = join_next_link(base, link)
    except ConfluenceError:
        return
    parts = urlsplit(joined)
    assert parts.netloc == urlsplit(base).netloc
    assert "/wiki/wiki" not in parts.path


# -- scopes -------------------------------------------------------------------------------------------

scope_names = st.one_of(
    st.sampled_from(
        [
            "offline_access",
            "read:space:confluence",
            "read:page:confluence",
            "write:page:confluence",
            "write:confluence-content",
            "read:confluence-space.summary",
            "search:confluence",
        ]
    ),
    st.text(string.ascii_letters + string.digits + ":._-", min_size=1, max_size=20),
)
separators = st.text(" ,\t\n\r\f\v\u00a0\u3000", min_size=1, max_size=3)


@st.composite
def scope_strings(draw: st.DrawFn, *, with_offline: bool) -> tuple[str, list[str]]:
    names = draw(st.lists(scope_names, max_size=8))
    names = [n for n in names if n != "offline_access"]
    if with_offline:
        names.insert(draw(st.integers(0, len(names))), "offline_access")
        if draw(st.booleans()):
            names.append("offline_access")  # a duplicate
    raw = draw(separators) if draw(st.booleans()) else ""  # leading separators
    for index, name in enumerate(names):
        raw += name + (draw(separators) if index < len(names) - 1 or draw(st.booleans()) else "")
    return raw, names


@FUZZ
@given(case=scope_strings(with_offline=True))
def test_scopes_are_split_on_any_separator_in_order_without_duplicates(case: tuple[str, list[str]]) -> None:
    raw, names = case
    scopes, warnings = parse_scopes("c", raw)
    assert list(scopes) == list(dict.fromkeys(names))
    assert all(scope and not any(ch in scope for ch in " ,\t\n") for scope in scopes)
    # idempotent, whichever separator the normalised form is written with
    assert parse_scopes("c", " ".join(scopes)) == (scopes, warnings)
    assert parse_scopes("c", ",".join(scopes)) == (scopes, warnings)
    granular = any(s.endswith(":confluence") for s in scopes)
    classic = any(s in ("write:confluence-content", "read:confluence-space.summary") for s in scopes)
    assert bool(warnings) == (classic and not granular)


@FUZZ
@given(case=scope_strings(with_offline=False))
def test_scopes_without_offline_access_are_refused(case: tuple[str, list[str]]) -> None:
    with pytest.raises(ConfluenceConfigError, match="offline_access"):
        parse_scopes("c", case[0])


# -- error bodies -------------------------------------------------------------------------------------

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=30))
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=8), inner, max_size=3)),
    max_leaves=8,
)
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=30)


@st.composite
def error_bodies(draw: st.DrawFn) -> bytes:
    """Bytes that look like each known error shape, HTML, text or garbage, some with the planted secret."""
    secret = draw(st.sampled_from(["", PLANTED, f"Bearer {PLANTED}", f"access_token={PLANTED}"]))
    text = draw(st.text(max_size=400))
    pos = draw(st.integers(0, len(text)))
    said = text[:pos] + secret + text[pos:]
    shape = draw(
        st.sampled_from(["v2", "v1", "gateway", "token", "problem", "html", "text", "bytes", "json", "nested"])
    )
    if shape == "v2":
        item = {"status": draw(st.integers()), "code": draw(json_values), "title": said, "detail": draw(json_values)}
        return json.dumps({"errors": [item, draw(json_values)]}).encode()
    if shape == "v1":
        return json.dumps({"statusCode": draw(st.integers()), "message": said}).encode()
    if shape == "gateway":
        return json.dumps({"code": draw(json_values), "message": said}).encode()
    if shape == "token":
        return json.dumps({"error": said, "error_description": draw(json_values)}).encode()
    if shape == "problem":
        return json.dumps({"title": said, "detail": draw(json_values)}).encode()
    if shape == "html":
        return f"<!DOCTYPE html><html><head><title>{said}</title></head><body>{said}</body></html>".encode()
    if shape == "text":
        return said.encode(draw(st.sampled_from(["utf-8", "utf-16", "latin-1"])), errors="replace")
    if shape == "nested":
        depth = draw(st.integers(1, 5000))
        return b"[" * depth + secret.encode() + b"]" * draw(st.integers(0, depth))
    if shape == "json":
        return json.dumps(draw(json_values)).encode()
    return draw(st.binary(max_size=400)) + secret.encode()


statuses = st.one_of(
    st.sampled_from([400, 401, 403, 404, 409, 410, 413, 429, 500, 502, 503, 504]),
    st.integers(min_value=0, max_value=999),
)
error_headers = st.dictionaries(
    st.sampled_from(["Retry-After", "retry-after", "Content-Type", "Link", "X-Anything"]),
    st.one_of(
        header_text,
        st.sampled_from(
            [
                "9223372036854775807",
                "-1",
                "1e309",
                "Wed, 21 Oct 2015 07:28:00 GMT",
                "Fri, 31 Dec 9999 23:59:59 GMT",
                "NaN",
                "inf",
            ]
        ),
    ),
    max_size=3,
)


@FUZZ
@given(
    method=st.sampled_from(["GET", "post", "PUT", "DELETE"]),
    status=statuses,
    body=error_bodies(),
    headers=error_headers,
    path=st.sampled_from(["/wiki/api/v2/pages", "/wiki/api/v2/spaces/1", "/x"]),
)
@example(method="GET", status=500, body=b"[" * 3000, headers={}, path="/x")
@example(
    method="GET",
    status=401,
    body=b'{"code":401,"message":"Unauthorized; scope does not match"}',
    headers={},
    path="/wiki/api/v2/pages",
)
def test_any_error_answer_becomes_a_bounded_api_error_without_the_secret(
    method: str, status: int, body: bytes, headers: dict[str, str], path: str
) -> None:
    url = f"https://api.atlassian.com/ex/confluence/c{path}?access_token={PLANTED}"
    error = error_from_response(method, url, status, body, headers, secrets=[PLANTED])
    assert isinstance(error, ConfluenceApiError)
    assert error.status_code == status
    for text in (str(error), repr(error), error.detail, error.url, error.code or ""):
        assert PLANTED not in text
    assert len(error.detail) <= MAX_ECHO + 300  # Confluence's words, capped, then the advice
    assert len(error.code or "") <= 80
    assert error.detail.strip()


# -- the emulator's token endpoint --------------------------------------------------------------------


@pytest.fixture(scope="module")
def token_fake() -> Iterator[FakeAtlassian]:
    with FakeAtlassian() as fake:
        yield fake


# Placeholders for the emulator's real values, swapped in inside the test (never printed by hypothesis).
_REAL = {"<client_id>": "client_id", "<client_secret>": "client_secret", "<refresh_token>": "refresh_token"}
field_names = st.one_of(
    st.sampled_from(["grant_type", "client_id", "client_secret", "refresh_token", "code", "redirect_uri", "scope"]),
    st.text(max_size=10),
)
surrogate_text = st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=12)
field_values = st.one_of(
    st.sampled_from(["refresh_token", "authorization_code", "client_credentials", "", *_REAL]),
    surrogate_text,
    json_values,
)


@st.composite
def token_requests(draw: st.DrawFn) -> tuple[str, object, str | None]:
    """(encoding, payload, content type): a JSON or form body, or raw bytes."""
    encoding = draw(st.sampled_from(["json", "json", "form", "bytes", "json-scalar"]))
    content_type = draw(
        st.sampled_from(
            [
                None,
                "application/json",
                "application/json; charset=utf-8",
                "application/x-www-form-urlencoded",
                "text/plain",
            ]
        )
    )
    if encoding == "bytes":
        return encoding, draw(st.binary(max_size=200)), content_type
    if encoding == "json-scalar":
        return encoding, draw(json_values), content_type
    payload = draw(st.dictionaries(field_names, field_values, max_size=6))
    if draw(st.booleans()):
        payload.setdefault("grant_type", draw(st.sampled_from(["refresh_token", "authorization_code"])))
        payload.setdefault("client_id", "<client_id>")
        payload.setdefault("client_secret", "<client_secret>")
    return encoding, payload, content_type


def _swap(value: object, real: dict[str, str]) -> object:
    if isinstance(value, str):
        return real.get(value, value)
    if isinstance(value, dict):
        return {k: _swap(v, real) for k, v in value.items()}
    if isinstance(value, list):
        return [_swap(v, real) for v in value]
    return value


@FUZZ_HTTP
@given(case=token_requests())
@example(case=("json", {"grant_type": "refresh_token", "client_id": "\ud800", "client_secret": "x"}, None))
@example(
    case=(
        "json",
        {
            "grant_type": "refresh_token",
            "client_id": "<client_id>",
            "client_secret": "<client_secret>",
            "refresh_token": "\udfff",
        },
        None,
    )
)
@example(
    case=(
        "form",
        {
            "grant_type": "refresh_token",
            "client_id": "<client_id>",
            "client_secret": "<client_secret>",
            "refresh_token": "<refresh_token>",
        },
        None,
    )
)
def test_the_emulator_token_endpoint_answers_every_body_with_an_oauth_json(
    token_fake: FakeAtlassian, case: tuple[str, object, str | None]
) -> None:
    encoding, payload, content_type = case
    real = {placeholder: getattr(token_fake, attr) for placeholder, attr in _REAL.items() if attr != "refresh_token"}
    real["<refresh_token>"] = token_fake.latest_refresh_token or token_fake.issue_grant()
    payload = _swap(payload, real)
    if encoding == "bytes":
        data: bytes = payload  # type: ignore[assignment]
    elif encoding == "form":
        items = payload.items()  # type: ignore[union-attr]
        pairs = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in items}
        data = urlencode(pairs, encoding="utf-8", errors="surrogatepass").encode()
        content_type = content_type or "application/x-www-form-urlencoded"
    else:
        data = json.dumps(payload).encode()
    headers = {"Content-Type": content_type} if content_type else {}
    response = requests.post(token_fake.token_url, data=data, headers=headers, timeout=10)  # never a hang
    assert response.status_code in (200, 400, 401, 403), response.status_code
    answer = response.json()
    assert isinstance(answer, dict)
    if response.status_code == 200:
        assert isinstance(answer.get("access_token"), str) and answer["token_type"] == "Bearer"
    else:
        assert isinstance(answer.get("error"), str) and isinstance(answer.get("error_description"), str)


def test_the_token_fuzz_left_the_emulator_consistent(token_fake: FakeAtlassian) -> None:
    """Runs after the fuzz (same module fixture): the emulator still refreshes a fresh grant normally."""
    refresh_token = token_fake.issue_grant()
    body = {
        "grant_type": "refresh_token",
        "client_id": token_fake.client_id,
        "client_secret": token_fake.client_secret,
        "refresh_token": refresh_token,
    }
    answer = requests.post(token_fake.token_url, json=body, timeout=10)
    assert answer.status_code == 200 and answer.json()["refresh_token"] != refresh_token


# -- the client's response parsing --------------------------------------------------------------------

API = "https://api.example.test"
GW = f"{API}/ex/confluence/cloud-1"
TOKEN = "at-fuzz-5ecret-token-Qw3Er5Ty7Ui9"


class _Tokens:
    def __init__(self, expired: bool) -> None:
        self.expired = expired

    def get_access_token(self) -> str:
        return TOKEN

    def refresh_rejected(self, rejected_token: str) -> str:
        return TOKEN

    def access_token_expired(self) -> bool:
        return self.expired


answer_bodies = st.one_of(
    error_bodies(),
    st.builds(lambda v: json.dumps(v).encode(), json_values),
    st.builds(
        lambda results, nxt: json.dumps({"results": results, "_links": {"next": nxt}}).encode(),
        st.lists(json_values, max_size=3),
        st.one_of(
            st.none(),
            st.text(max_size=40),
            st.sampled_from(["/wiki/api/v2/spaces?cursor=2", "http://[", "//evil.test/wiki/x"]),
        ),
    ),
)
answer_headers = st.dictionaries(
    st.sampled_from(["Retry-After", "Content-Type", "Link", "X-RateLimit-NearLimit", "Beta-Retry-After"]),
    st.one_of(
        header_text,
        st.sampled_from(
            [
                '</wiki/api/v2/spaces?cursor=x>; rel="next"',
                '<http://[>; rel="next"',
                "<https://evil.test/wiki/x>; rel=next",
                "application/json",
            ]
        ),
    ),
    max_size=3,
)
answers = st.fixed_dictionaries(
    {
        "status_code": st.one_of(
            st.sampled_from([200, 204, 401, 403, 404, 409, 429, 500, 502, 503, 504]),
            st.integers(min_value=200, max_value=599),
        ),
        "content": answer_bodies,
        "headers": answer_headers,
    }
)


def _client(answers_: list[dict], expired: bool) -> tuple[ConfluenceClient, rm.Adapter, list[float]]:
    session = requests.Session()
    adapter = rm.Adapter()
    session.mount("https://", adapter)
    adapter.register_uri(rm.ANY, rm.ANY, answers_)
    slept: list[float] = []
    client = ConfluenceClient(
        api_url=API,
        cloud_id="cloud-1",
        tokens=_Tokens(expired),
        session=session,
        retry=RetryPolicy(rng=random.Random(5)),
        sleep=slept.append,
    )
    return client, adapter, slept


@FUZZ
@given(
    answers_=st.lists(answers, min_size=1, max_size=4),
    method=st.sampled_from(["GET", "POST", "PUT"]),
    expired=st.booleans(),
)
@example(answers_=[{"status_code": 200, "content": b"[" * 3000, "headers": {}}], method="GET", expired=False)
@example(
    answers_=[{"status_code": 503, "content": b"", "headers": {"Retry-After": "9223372036854775807"}}],
    method="GET",
    expired=False,
)
def test_any_answer_gives_a_parsed_result_or_a_confluence_error(
    answers_: list[dict], method: str, expired: bool
) -> None:
    client, adapter, slept = _client(answers_, expired)
    try:
        result = client.request(method, "/wiki/api/v2/spaces", json={"x": 1} if method != "GET" else None)
    except ConfluenceError as exc:
        assert TOKEN not in f"{exc} {exc!r}"
    else:
        json.dumps(result)  # JSON-able
        last = adapter.request_history[-1]
        assert 200 <= answers_[min(adapter.call_count, len(answers_)) - 1]["status_code"] < 300, last
    assert adapter.call_count <= RetryPolicy().max_attempts + 1  # bounded: retries plus one auth retry
    assert sum(slept) <= RetryPolicy().max_total_wait


@FUZZ
@given(answers_=st.lists(answers, min_size=1, max_size=4))
def test_any_listing_is_yielded_or_refused_never_half_silently(answers_: list[dict]) -> None:
    client, adapter, _ = _client(answers_, expired=False)
    items: list[object] = []
    try:
        for item in itertools.islice(client.paginate("/wiki/api/v2/spaces"), 1000):
            items.append(item)
    except ConfluenceError as exc:
        assert TOKEN not in str(exc)
    for request in adapter.request_history:  # the token went to the gateway only
        assert urlsplit(request.url).netloc == urlsplit(API).netloc
