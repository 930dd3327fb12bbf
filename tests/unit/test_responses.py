"""Unit tests of error mapping and next-link handling (pure functions, no HTTP)."""

from __future__ import annotations

import json

import pytest

from airflow_provider_confluence.client.pagination import join_next_link, next_link
from airflow_provider_confluence.client.responses import MAX_ECHO, error_from_response, required_scope
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConflict,
    ConfluenceError,
    ConfluenceGone,
    ConfluenceNotFound,
    ConfluenceRateLimited,
    ConfluenceScopeError,
)

pytestmark = pytest.mark.airflow2  # Airflow-free code: the same on 2.11

GW = "https://api.atlassian.com/ex/confluence/abc-123"
PAGES = f"{GW}/wiki/api/v2/pages"
SPACES = f"{GW}/wiki/api/v2/spaces"
V1_410 = {
    "statusCode": 410,
    "data": {"authorized": True, "valid": True, "errors": [], "successful": True},
    "message": "com.atlassian.confluence.api.service.exceptions.pagesmodes.GoneException: "
    "This deprecated endpoint has been removed.",
}
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
SCOPE = {"code": 401, "message": "Unauthorized; scope does not match"}


def err(
    status: int,
    body: object,
    *,
    method: str = "GET",
    url: str = PAGES,
    headers: dict[str, str] | None = None,
    secrets: tuple[str, ...] = (),
) -> ConfluenceApiError:
    raw = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    return error_from_response(method, url, status, raw, headers or {}, secrets=secrets)


class TestErrorFormats:
    @pytest.mark.parametrize(
        ("status", "body", "cls", "code", "expected"),
        [
            (400, DUPLICATE, ConfluenceApiError, "BAD_REQUEST", "A page with this title already exists"),
            (
                404,
                {"errors": [{"status": 404, "code": "NOT_FOUND", "title": "Not Found", "detail": "No page 7"}]},
                ConfluenceNotFound,
                "NOT_FOUND",
                "Not Found: No page 7",
            ),
            (410, V1_410, ConfluenceGone, None, "This deprecated endpoint has been removed"),
            (401, SCOPE, ConfluenceScopeError, "401", "scope does not match"),
            (
                403,
                {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."},
                ConfluenceApiError,
                "invalid_grant",
                "Unknown or invalid refresh token.",
            ),
            (
                409,
                {
                    "errors": [
                        {
                            "status": 409,
                            "code": "CONFLICT",
                            "title": "Version must be incremented on update. Current version is: 4",
                        }
                    ]
                },
                ConfluenceConflict,
                "CONFLICT",
                "Current version is: 4",
            ),
            (429, {"code": 429, "message": "Rate limit exceeded"}, ConfluenceRateLimited, "429", "Rate limit exceeded"),
            (500, {"title": "Internal error", "detail": "boom"}, ConfluenceApiError, None, "Internal error: boom"),
        ],
    )
    def test_the_four_json_formats(
        self, status: int, body: object, cls: type[ConfluenceApiError], code: str | None, expected: str
    ) -> None:
        exc = err(status, body)
        assert type(exc) is cls
        assert exc.status_code == status
        assert exc.code == code
        assert exc.method == "GET" and exc.url == PAGES
        assert expected in exc.detail
        assert str(exc).startswith(f"GET {PAGES} answered {status}: ")

    @pytest.mark.parametrize(
        ("body", "expected"),
        [
            (
                "<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body><h1>Oops</h1></body></html>",
                "an HTML page: 502 Bad Gateway",
            ),
            (
                "<html><body><script>var x = 1;</script><p>Service   unavailable</p></body></html>",
                "an HTML page: Service unavailable",
            ),
            (b"", "Bad Gateway"),
            (None, "Bad Gateway"),
            ("   \n", "Bad Gateway"),
            (bytes(range(256)) * 4, "a non-text body of 1024 bytes"),
            (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01", "a non-text body of"),
            ('{"errors": [', '{"errors": ['),  # truncated JSON is shown as text
            ("[1, 2, 3]", "[1, 2, 3]"),
            ("null", "null"),
            ('{"unexpected": true}', '{"unexpected": true}'),
            ('{"errors": []}', '{"errors": []}'),
            ('{"errors": ["not an object"]}', '{"errors": ["not an object"]}'),
            ("upstream connect error or disconnect/reset before headers", "upstream connect error"),
            ("caf\xe9 na\xefve".encode("latin-1"), "caf"),
        ],
    )
    def test_non_json_and_odd_bodies_never_crash(self, body: object, expected: str) -> None:
        exc = err(502, body)
        assert isinstance(exc, ConfluenceApiError)
        assert exc.status_code == 502
        assert expected in exc.detail
        assert "the task may be retried" in exc.detail

    def test_unknown_status_with_empty_body(self) -> None:
        exc = err(599, b"")
        assert type(exc) is ConfluenceApiError
        assert "HTTP 599" in exc.detail

    def test_several_v2_errors_are_joined(self) -> None:
        body = {"errors": [{"code": "A", "title": "first"}, {"code": "B", "title": "second", "detail": "more"}]}
        exc = err(400, body)
        assert exc.code == "A"
        assert "first; second: more" in exc.detail


class TestAdvice:
    @pytest.mark.parametrize(
        ("method", "url", "scope"),
        [
            ("GET", SPACES, "read:space:confluence"),
            ("GET", f"{SPACES}/42", "read:space:confluence"),
            ("GET", f"{SPACES}/42/pages", "read:page:confluence"),
            ("GET", PAGES, "read:page:confluence"),
            ("GET", f"{PAGES}/7?body-format=storage", "read:page:confluence"),
            ("POST", PAGES, "write:page:confluence"),
            ("PUT", f"{PAGES}/7", "write:page:confluence"),
            ("DELETE", f"{PAGES}/7", "delete:page:confluence"),
            ("GET", f"{GW}/wiki/rest/api/search?cql=type%3Dpage", "search:confluence"),
        ],
    )
    def test_scope_mismatch_names_the_scope_and_the_fix(self, method: str, url: str, scope: str) -> None:
        exc = err(401, SCOPE, method=method, url=url)
        assert isinstance(exc, ConfluenceScopeError)
        assert f"add the granular scope {scope} in the developer console" in exc.detail
        assert "Permissions -> Confluence API" in exc.detail and "re-authorize" in exc.detail
        assert required_scope(method, url) == scope

    def test_scope_mismatch_on_an_unknown_route_still_says_what_to_do(self) -> None:
        exc = err(401, SCOPE, url=f"{GW}/wiki/api/v2/blogposts")
        assert isinstance(exc, ConfluenceScopeError)
        assert "x-atlassian-oauth2-scopes" in exc.detail
        assert required_scope("GET", f"{GW}/wiki/api/v2/blogposts") is None

    def test_plain_401_is_not_a_scope_error(self) -> None:
        exc = err(401, {"code": 401, "message": "Unauthorized"})
        assert type(exc) is ConfluenceApiError
        assert "re-authorize" in exc.detail

    def test_410_says_use_v2(self) -> None:
        exc = err(410, V1_410, url=f"{GW}/wiki/rest/api/space")
        assert isinstance(exc, ConfluenceGone)
        assert "this is a removed v1 endpoint; use the v2 api" in exc.detail.lower()

    def test_404_says_no_such_object_or_not_visible(self) -> None:
        exc = err(404, b"")
        assert isinstance(exc, ConfluenceNotFound)
        assert "No such object, or the app's user cannot see it" in exc.detail

    def test_duplicate_title_keeps_confluences_title(self) -> None:
        exc = err(400, DUPLICATE, method="POST")
        assert "A page with this title already exists: A page already exists with the same TITLE" in exc.detail
        assert "Use another title, or update the existing page" in exc.detail

    def test_invalid_grant_says_reauthorize(self) -> None:
        exc = err(403, {"error": "invalid_grant", "error_description": "Unknown or invalid refresh token."})
        assert "authorize the app again" in exc.detail

    @pytest.mark.parametrize(
        ("header", "expected"),
        [("17", 17.0), ("9223372036854775807", 9223372036854775807.0), ("garbage", None), (None, None)],
    )
    def test_429_carries_retry_after(self, header: str | None, expected: float | None) -> None:
        headers = {"retry-after": header} if header is not None else {}
        exc = err(429, b"", headers=headers)
        assert isinstance(exc, ConfluenceRateLimited)
        assert exc.retry_after == expected
        assert "rate-limited" in exc.detail

    def test_409_says_reread(self) -> None:
        assert "re-read" in err(409, b"").detail


class TestNoSecretsInMessages:
    TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl"

    @pytest.mark.parametrize(
        "body",
        [
            "Authorization: Bearer sekrit-token-value was rejected",
            '{"message": "bad token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhYmMifQ.c2lnbmF0dXJl"}',
            '{"error": "invalid_request", "error_description": "refresh_token=rt-very-secret-1 is malformed"}',
            '{"message": "echo {\\"access_token\\": \\"at-very-secret-2\\", \\"client_secret\\": \\"cs-3\\"}"}',
            "<html><title>token opaque-known-secret refused</title></html>",
        ],
    )
    def test_tokens_are_redacted(self, body: str) -> None:
        exc = err(400, body, secrets=("opaque-known-secret",))
        text = str(exc)
        for secret in (
            "sekrit-token-value",
            self.TOKEN,
            "rt-very-secret-1",
            "at-very-secret-2",
            "cs-3",
            "opaque-known-secret",
        ):
            assert secret not in text
        assert "[redacted]" in text

    def test_secret_in_url_is_redacted(self) -> None:
        exc = err(500, b"", url=f"{PAGES}?access_token=leaky", secrets=("leaky",))
        assert "leaky" not in str(exc) and "leaky" not in exc.url

    def test_echoed_body_is_capped(self) -> None:
        exc = err(400, {"errors": [{"title": "x" * 10_000}]})
        assert len(exc.detail) < MAX_ECHO + 200
        assert "x" * MAX_ECHO not in exc.detail
        html = err(502, "<html><body>" + "word " * 5000 + "</body></html>")
        assert len(html.detail) < MAX_ECHO + 200


class TestJoinNextLink:
    @pytest.mark.parametrize(
        ("base", "link", "expected"),
        [
            (GW, "/wiki/api/v2/pages?cursor=abc", f"{GW}/wiki/api/v2/pages?cursor=abc"),
            (
                GW,
                "/wiki/api/v2/spaces?cursor=c%3D%3D&limit=250&keys=A,B",
                f"{GW}/wiki/api/v2/spaces?cursor=c%3D%3D&limit=250&keys=A,B",
            ),  # cursor not last, kept verbatim
            (GW + "/", "/wiki/api/v2/pages?cursor=abc", f"{GW}/wiki/api/v2/pages?cursor=abc"),
            (GW + "/wiki", "/wiki/api/v2/pages?cursor=abc", f"{GW}/wiki/api/v2/pages?cursor=abc"),
            (GW + "/wiki/", "/wiki/api/v2/pages?cursor=abc", f"{GW}/wiki/api/v2/pages?cursor=abc"),
            (GW, "/wiki/wiki/api/v2/pages?cursor=abc", f"{GW}/wiki/api/v2/pages?cursor=abc"),
            (GW, f"{GW}/wiki/api/v2/pages?limit=5&cursor=x", f"{GW}/wiki/api/v2/pages?limit=5&cursor=x"),
            (
                GW,
                "HTTPS://API.ATLASSIAN.COM:443/ex/confluence/abc-123/wiki/api/v2/pages?cursor=x",
                f"{GW}/wiki/api/v2/pages?cursor=x",
            ),
            (GW, "https://api.atlassian.com/wiki/api/v2/pages?cursor=x", f"{GW}/wiki/api/v2/pages?cursor=x"),
            (GW, "/ex/confluence/abc-123/wiki/api/v2/pages?cursor=x", f"{GW}/wiki/api/v2/pages?cursor=x"),
            (GW, "/api/v2/pages?cursor=x", f"{GW}/wiki/api/v2/pages?cursor=x"),
            (GW, "  /wiki/api/v2/pages?cursor=x#frag ", f"{GW}/wiki/api/v2/pages?cursor=x"),
            (
                "http://127.0.0.1:8080/ex/confluence/c1",
                "/wiki/api/v2/pages?cursor=1",
                "http://127.0.0.1:8080/ex/confluence/c1/wiki/api/v2/pages?cursor=1",
            ),
            (
                "http://127.0.0.1:8080/ex/confluence/c1",
                "http://127.0.0.1:8080/ex/confluence/c1/wiki/x?cursor=1",
                "http://127.0.0.1:8080/ex/confluence/c1/wiki/x?cursor=1",
            ),
        ],
    )
    def test_joins(self, base: str, link: str, expected: str) -> None:
        joined = join_next_link(base, link)
        assert joined == expected
        assert "/wiki/wiki" not in joined

    @pytest.mark.parametrize(
        "link",
        [
            "https://evil.example.com/wiki/api/v2/pages?cursor=x",
            "https://your-site.atlassian.net/wiki/api/v2/pages?cursor=x",  # the site: drops the gateway
            "//evil.example.com/wiki/api/v2/pages",
            "http://api.atlassian.com/ex/confluence/abc-123/wiki/api/v2/pages",  # downgrade to http
            "https://api.atlassian.com:8443/ex/confluence/abc-123/wiki/api/v2/pages",
            "https://api.atlassian.com.evil.com/ex/confluence/abc-123/wiki/api/v2/pages",
            "https://api.atlassian.com:notaport/wiki",
            "ftp://api.atlassian.com/wiki/api/v2/pages",
            "",
            "   ",
            "?cursor=abc",
            "wiki/api/v2/pages?cursor=abc",
        ],
    )
    def test_refused(self, link: str) -> None:
        with pytest.raises(ConfluenceError):
            join_next_link(GW, link)

    def test_bad_base_is_refused(self) -> None:
        with pytest.raises(ConfluenceError):
            join_next_link("api.atlassian.com/ex/confluence/x", "/wiki/api/v2/pages")


class TestNextLink:
    def test_from_body(self) -> None:
        body = {
            "results": [],
            "_links": {"next": "/wiki/api/v2/pages?cursor=b", "base": "https://x.atlassian.net/wiki"},
        }
        assert next_link(body, {"Link": '</wiki/api/v2/pages?cursor=h>; rel="next"'}) == "/wiki/api/v2/pages?cursor=b"

    @pytest.mark.parametrize(
        ("header", "expected"),
        [
            ('</wiki/api/v2/pages?cursor=h>; rel="next"', "/wiki/api/v2/pages?cursor=h"),
            ("</wiki/api/v2/pages?cursor=h>; rel=next", "/wiki/api/v2/pages?cursor=h"),
            ('</wiki/a?cursor=1>; rel="prev", </wiki/a?x=1,2&cursor=2>; rel="next"', "/wiki/a?x=1,2&cursor=2"),
            ('</wiki/a?cursor=3>; type="application/json"; REL="Next Last"', "/wiki/a?cursor=3"),
            ('</wiki/a?cursor=1>; rel="prev"', None),
            ("garbage", None),
            ("", None),
        ],
    )
    def test_from_link_header(self, header: str, expected: str | None) -> None:
        assert next_link({"results": [], "_links": {}}, {"link": header}) == expected

    def test_none_on_last_page(self) -> None:
        assert next_link({"results": [], "_links": {"base": "https://x.atlassian.net/wiki"}}, {}) is None
        assert next_link({"results": [], "_links": {"next": ""}}, None) is None
        assert next_link(None, None) is None
        assert next_link([1, 2], {}) is None


@pytest.mark.parametrize("link", ["/wiki/../../ex/confluence/other-cloud/wiki/api/v2/spaces", "/wiki/./api/v2/pages"])
def test_next_links_with_dot_segments_are_refused(link: str) -> None:
    from airflow_provider_confluence.client.pagination import join_next_link
    from airflow_provider_confluence.exceptions import ConfluenceError

    with pytest.raises(ConfluenceError, match="dot segments"):
        join_next_link("https://api.atlassian.com/ex/confluence/cloud-1", link)
