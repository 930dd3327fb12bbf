"""The three Confluence v1 routes still served behind the OAuth gateway: label add, attachment upload, CQL search.

Every other ``/wiki/rest/api/space...`` and ``/wiki/rest/api/content...`` path answers 410 (https://developer.atlassian.com/cloud/confluence/rest/v2/intro/; see
``v2.py``). Errors use the v1 form ``{"statusCode", "data", "message"}``.

* ``POST /wiki/rest/api/content/{id}/label``: body ``[{"prefix", "name"}, ...]`` or one object; answers every
  label of the content afterwards (``{"results", "start", "limit", "size"}``).
* ``PUT /wiki/rest/api/content/{id}/child/attachment``: multipart/form-data, part ``file`` (several allowed),
  optional ``comment`` and ``minorEdit``; needs the header ``X-Atlassian-Token: no-check`` (else 403 "XSRF check
  failed"); a known file name makes a new version. ``POST`` on the same path only creates (400 on a known name).
* ``GET /wiki/rest/api/search?cql=...``: the CQL subset of ``cql.py``; ``limit`` default 25, at most 250; the
  ``next`` link is relative to ``_links.context`` (``/wiki``): ``/rest/api/search?cql=...&cursor=...&limit=N``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlencode

from ._http import ApiRequest, Reply, v1_bad_request, v1_error, v1_not_found
from .attachments import MAX_ATTACHMENT_BYTES, parse_multipart
from .confluence import ConfluenceModel, Page
from .cql import CqlError, parse
from .labels import parse_label_body
from .paging import Cursors
from .search import find, render

SEARCH_DEFAULT_LIMIT = 25
SEARCH_MAX_LIMIT = 250
CONTEXT = "/wiki"
#: a route: (method, path regex under /wiki/rest/api, template, scope alternatives, handler)
RouteSpec = tuple[str, str, str, tuple[tuple[str, ...], ...], Callable[[ApiRequest, tuple[str, ...]], Reply]]


class V1Api:
    """The v1 routes of one emulated site.

    :param model: the spaces, pages, labels and attachments.
    :param cursors: the emulator's cursor signer (shared with the v2 lists).
    """

    def __init__(self, model: ConfluenceModel, cursors: Cursors) -> None:
        self.model = model
        self._cursors = cursors

    def routes(self) -> list[RouteSpec]:
        """The routes, each with the scopes it accepts: any one tuple, all of its scopes (granular or classic)."""
        labels = (("read:label:confluence", "write:label:confluence"), ("write:confluence-content",))
        upload = (("read:content-details:confluence", "write:attachment:confluence"), ("write:confluence-file",))
        search = (("search:confluence",), ("read:content-details:confluence",))
        return [
            ("POST", r"/content/([^/]+)/label", "/content/{id}/label", labels, self._add_labels),
            (
                "PUT",
                r"/content/([^/]+)/child/attachment",
                "/content/{id}/child/attachment",
                upload,
                lambda req, args: self._upload(req, args, create_only=False),
            ),
            (
                "POST",
                r"/content/([^/]+)/child/attachment",
                "/content/{id}/child/attachment",
                upload,
                lambda req, args: self._upload(req, args, create_only=True),
            ),
            ("GET", r"/search", "/search", search, self._search),
        ]

    def _content(self, content_id: str) -> Page:
        page = self.model.page(int(content_id)) if content_id.isdigit() else None
        if page is None or page.status in ("trashed", "deleted"):
            raise v1_not_found(content_id)
        return page

    # ----------------------------------------------------------------- labels
    def _add_labels(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        try:
            payload = json.loads(req.body or b"null")
        except ValueError:
            raise v1_bad_request("The request body is not valid JSON") from None
        with self.model.lock:
            page = self._content(args[0])
            labels = self.model.labels.add(page.id, parse_label_body(payload))
        results = [label.v1_json() for label in labels]
        return Reply(
            200,
            {
                "results": results,
                "start": 0,
                "limit": 200,
                "size": len(results),
                "_links": {"base": self.model.base, "context": CONTEXT},
            },
        )

    # ----------------------------------------------------------------- attachments
    def _upload(self, req: ApiRequest, args: tuple[str, ...], *, create_only: bool) -> Reply:
        if req.headers.get("x-atlassian-token", "").strip().lower() != "no-check":
            return Reply(403, "XSRF check failed", content_type="text/plain; charset=utf-8")
        if len(req.body) > MAX_ATTACHMENT_BYTES:
            return v1_error(413, f"The attachment is larger than {MAX_ATTACHMENT_BYTES} bytes", authorized=True)
        parts = parse_multipart(req.headers.get("content-type"), req.body)
        files = [part for part in parts if part.name == "file"]
        if not files:
            raise v1_bad_request("At least one file must be sent, in a multipart part named 'file'")
        if any(not part.filename for part in files):
            raise v1_bad_request("The 'file' part must have a filename in its Content-Disposition")
        comments = [part.data.decode("utf-8", "replace") for part in parts if part.name == "comment"]
        minor = [part.data.decode("utf-8", "replace").strip().lower() for part in parts if part.name == "minorEdit"]
        if any(value not in ("true", "false") for value in minor):
            raise v1_bad_request("minorEdit must be true or false")
        with self.model.lock:
            page = self._content(args[0])
            store = self.model.attachments
            if create_only:
                taken = [part.filename for part in files if store.find(page.id, str(part.filename))]
                if taken:
                    raise v1_bad_request(
                        f"Cannot add a new attachment with same file name as an existing attachment: {taken[0]}"
                    )
            stored = [
                store.upload(
                    page.id,
                    filename=str(part.filename),
                    data=part.data,
                    media_type=part.content_type,
                    comment=comments[index] if index < len(comments) else "",
                    minor_edit=bool(minor) and minor[-1] == "true",
                    create_only=create_only,
                )
                for index, part in enumerate(files)
            ]
            results = [store.v1_json(att, page.title) for att in stored]
        return Reply(
            200, {"results": results, "size": len(results), "_links": {"base": self.model.base, "context": CONTEXT}}
        )

    # ----------------------------------------------------------------- search
    @staticmethod
    def _number(req: ApiRequest, name: str, default: int) -> int:
        raw = req.one(name)
        if raw is None:
            return default
        if not raw.isdigit():
            raise v1_bad_request(f"{name} must be a non-negative integer, got {raw!r}")
        return int(raw)

    def _search(self, req: ApiRequest, args: tuple[str, ...]) -> Reply:
        cql = req.one("cql")
        if cql is None:
            raise v1_bad_request("CQL query parameter is required but was empty")
        try:
            query = parse(cql)
        except CqlError:
            raise v1_bad_request(f"Could not parse cql : {cql}") from None
        limit = min(self._number(req, "limit", SEARCH_DEFAULT_LIMIT) or SEARCH_DEFAULT_LIMIT, SEARCH_MAX_LIMIT)
        signed = ApiRequest(req.method, req.path, [(name, value) for name, value in req.pairs if name != "start"])
        signature = self._cursors.signature(signed)
        offset = self._cursors.offset(req, signature, v1_bad_request)
        if offset is None:
            offset = self._number(req, "start", 0)
        hits = find(self.model, query)
        with self.model.lock:
            results = [render(self.model, hit) for hit in hits[offset : offset + limit]]
        rest = [(name, value) for name, value in req.pairs if name not in ("cql", "cursor", "limit", "start")]

        def link(at: int) -> str:
            query_text = urlencode(
                [("cql", cql), ("cursor", Cursors.encode(at, signature)), ("limit", str(limit)), *rest]
            )
            return f"/rest/api/search?{query_text}"

        links = {"base": self.model.base, "context": CONTEXT}
        if offset + limit < len(hits):
            links["next"] = link(offset + limit)
        if offset > 0:
            links["prev"] = link(max(0, offset - limit))
        links["self"] = f"{self.model.base}/rest/api/search?{urlencode(req.pairs)}"
        body = {
            "results": results,
            "start": offset,
            "limit": limit,
            "size": len(results),
            "totalSize": len(hits),
            "cqlQuery": cql,
            "searchDuration": 7,
            "_links": links,
        }
        return Reply(200, body)
