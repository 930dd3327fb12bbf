"""Contract test: what the client sends is valid for Atlassian's published Confluence v2 OpenAPI document.

The document is vendored, unmodified, as ``tests/data/confluence-v2.openapi.json`` (its source and checksum are in
``tests/data/README.md``), so the test runs on every clone.

Every v2 request is checked against it, including the toolkit's label and attachment listings
(``GET /pages/{id}/labels``, ``GET /pages/{id}/attachments``). The three v1 calls the toolkit makes, CQL search
(``GET /wiki/rest/api/search``), adding labels (``POST /wiki/rest/api/content/{id}/label``) and uploading an
attachment (``PUT /wiki/rest/api/content/{id}/child/attachment``), are outside the v2 document: they are checked
against notes taken from the v1 reference instead (``V1_NOTES`` below: body shape, multipart, query
parameters).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_confluence.content.publish import update_page_body
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.api_operations import CLIENT_V2_ROUTES

V2_PREFIX = "/wiki/api/v2"
V1_PREFIX = "/wiki/rest/api"
#: What the v1 reference says each v1 call takes (https://developer.atlassian.com/cloud/confluence/rest/v1/).
V1_NOTES = {
    "GET /wiki/rest/api/search": "query: cql (required), limit (default 25), cursor from the next link; no body",
    "POST /wiki/rest/api/content/{id}/label": "JSON array of {prefix, name}; names lower-case, no space or "
    "!#&()*,.:;<>?@[]^, at most 255 characters",
    "PUT /wiki/rest/api/content/{id}/child/attachment": "multipart/form-data with a 'file' part (filename), "
    "optional 'comment' and 'minorEdit'; header X-Atlassian-Token: no-check",
}


#: Atlassian's v2 OpenAPI document, vendored with its source (tests/data/README.md).
OPENAPI = Path(__file__).resolve().parents[1] / "data" / "confluence-v2.openapi.json"


@lru_cache(maxsize=1)
def spec() -> dict[str, Any]:
    """The document, with ``oneOf`` read as ``anyOf``.

    Atlassian's page-body alternatives (``PageBodyWrite`` and ``PageNestedBodyWrite``) overlap: neither
    requires a property nor forbids others, so every body matches both and a strict ``oneOf`` would refuse
    even Atlassian's own examples.
    """
    text = OPENAPI.read_text()
    return json.loads(text.replace('"oneOf"', '"anyOf"'))


def resolve(node: Any) -> Any:
    """Follow a local ``$ref`` of the document."""
    while isinstance(node, dict) and "$ref" in node:
        target: Any = spec()
        for part in node["$ref"].lstrip("#/").split("/"):
            target = target[part]
        node = target
    return node


def schema_errors(instance: Any, schema: dict[str, Any]) -> list[str]:
    """Validation errors, with ``$ref``s resolved against the whole document."""
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT4

    document = dict(spec())
    document["x-instance-schema"] = schema
    registry = Registry().with_resource("urn:confluence-v2", Resource(contents=document, specification=DRAFT4))
    check = jsonschema.Draft4Validator({"$ref": "urn:confluence-v2#/x-instance-schema"}, registry=registry)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in check.iter_errors(instance)]


def as_typed(value: str, schema: dict[str, Any]) -> Any:
    """A query string value as the schema's type (arrays are comma-separated, as the client sends them)."""
    kind = schema.get("type")
    if kind == "array":
        return [as_typed(item, resolve(schema.get("items", {}))) for item in value.split(",")]
    if kind == "integer" and value.lstrip("-").isdigit():
        return int(value)
    if kind == "boolean" and value in ("true", "false"):
        return value == "true"
    return value


def operation(route: str) -> dict[str, Any]:
    method, path = route.split(" ", 1)
    assert path.startswith(V2_PREFIX), f"{route} is not a v2 route"
    paths = spec()["paths"]
    spec_path = path[len(V2_PREFIX) :]
    assert spec_path in paths, f"{spec_path} is not in the OpenAPI document"
    return paths[spec_path][method.lower()]


def contract_violations(recorded: dict[str, Any]) -> list[str]:
    op = operation(recorded["route"])
    problems: list[str] = []
    if recorded["route"] not in CLIENT_V2_ROUTES:
        problems.append(
            f"{recorded['route']} ({op.get('operationId')}) is not in helpers/api_operations.py: list it there and "
            "mark its row covered in docs/features.md"
        )
    parameters = {p["name"]: p for p in (resolve(p) for p in op.get("parameters", [])) if p.get("in") == "query"}
    for name, values in recorded["query"].items():
        if name not in parameters:
            problems.append(f"{recorded['route']}: query parameter {name!r} is not in the document")
            continue
        schema = resolve(parameters[name].get("schema", {}))
        for value in values:
            problems += [f"{recorded['route']} ?{name}: {e}" for e in schema_errors(as_typed(value, schema), schema)]
    if recorded["json"] is not None:
        body = resolve(op["requestBody"])["content"]["application/json"]["schema"]
        problems += [f"{recorded['route']} body {e}" for e in schema_errors(recorded["json"], body)]
    return problems


@pytest.fixture
def exercised(fake_atlassian, confluence_conn):
    """Every request the provider's page and space features send, recorded by the emulator."""
    fake_atlassian.add_space("DEMO", labels=("reports",))
    fake_atlassian.add_spaces(260)
    parent = fake_atlassian.add_page("DEMO", "Parent")
    hook = ConfluenceOAuthHook(confluence_conn)
    list(hook.iter_spaces(keys=["DEMO", "S1"], space_type="global", status="current", labels=["reports"]))
    assert len(list(hook.iter_spaces())) == 261  # two pages: the second one through a cursor
    created = hook.create_page(space_key="DEMO", title="Contract", body="<p>one</p>", parent_id=parent["id"])
    hook.create_page(space_key="DEMO", title="Contract", body="<p>two</p>", if_exists="update")
    hook.create_page(space_key="DEMO", title="Draft", body="<p>d</p>", status="draft")
    update_page_body(hook.get_conn(), page_id=created["id"], title="Contract renamed", body="<p>three</p>")
    hook.get_page(created["id"])
    elsewhere = fake_atlassian.add_page("DEMO", "Elsewhere")  # the toolkit's updates: a move, a keyed append
    update_page_body(
        hook.get_conn(), page_id=created["id"], body="<p>four</p>", parent_id=elsewhere["id"], message="moved"
    )
    update_page_body(
        hook.get_conn(),
        page_id=created["id"],
        body="**five**",
        representation="markdown",
        mode="append",
        append_key="run-1",
    )
    hook.create_page(
        space_key="DEMO", title="Child", body="- a <b>", representation="markdown", parent_title="Parent", labels=["x"]
    )
    hook.get_page(created["id"], body_format="atlas_doc_format")
    client = hook.get_conn()
    client.add_page_labels(created["id"], ["Contract", "daily-report"])
    assert client.get_page_labels(created["id"]) == ["contract", "daily-report"]
    client.upload_attachment(created["id"], filename="chart.png", data=b"\x89PNG", comment="c")
    assert [a["title"] for a in client.list_attachments(created["id"], filename="chart.png")] == ["chart.png"]
    for n in range(3):
        fake_atlassian.add_page("DEMO", f"Labelled {n}", labels=["contract"])
    assert len(list(client.search("label = contract", limit=2))) == 4  # two pages: the second through a cursor
    return [r for r in fake_atlassian.requests if r["route"].startswith(("GET /wiki", "POST /wiki", "PUT /wiki"))]


def v2_requests(exercised: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [r for r in exercised if r["path"].startswith(V2_PREFIX)]


def v1_violations(recorded: dict[str, Any]) -> list[str]:
    """Problems of a v1 request against :data:`V1_NOTES`."""
    route, query, body = recorded["route"], recorded["query"], recorded["json"]
    problems: list[str] = [] if recorded.get("status", 200) < 400 else [f"{route}: answered {recorded['status']}"]
    if route not in V1_NOTES:
        return problems + [f"{route}: not a v1 call the toolkit is known to make"]
    if route == "GET /wiki/rest/api/search":
        if len(query.get("cql", [])) != 1 or not query["cql"][0].strip():
            problems.append(f"{route}: needs exactly one non-empty cql")
        if not all(v.isdigit() and 1 <= int(v) <= 250 for v in query.get("limit", [])):
            problems.append(f"{route}: limit must be 1..250")
        problems += [f"{route}: unknown parameter {k!r}" for k in query if k not in ("cql", "limit", "cursor", "next")]
    elif route == "POST /wiki/rest/api/content/{id}/label":
        if not isinstance(body, list) or not body:
            return problems + [f"{route}: the body must be a non-empty JSON array"]
        for item in body:
            name = item.get("name") if isinstance(item, dict) else None
            if not isinstance(item, dict) or set(item) != {"prefix", "name"} or item["prefix"] != "global":
                problems.append(f"{route}: {item!r} is not {{prefix: global, name}}")
            elif (
                not isinstance(name, str)
                or name != name.lower()
                or not 0 < len(name) <= 255
                or any(ch.isspace() or ch in "!#&()*,.:;<>?@[]^" for ch in name)
            ):
                problems.append(f"{route}: bad label name {name!r}")
    elif not (recorded.get("content_type") or "").startswith("multipart/form-data; boundary="):
        problems.append(f"{route}: must be multipart/form-data")
    return problems


def test_every_request_matches_the_openapi_document(exercised):
    v2 = v2_requests(exercised)
    routes = {r["route"] for r in v2}
    assert {
        "POST /wiki/api/v2/pages",
        "PUT /wiki/api/v2/pages/{id}",
        "GET /wiki/api/v2/spaces",
        "GET /wiki/api/v2/pages",
        "GET /wiki/api/v2/pages/{id}/labels",
        "GET /wiki/api/v2/pages/{id}/attachments",
    } <= routes
    assert any("cursor" in r["query"] for r in v2)
    assert any(r["query"].get("filename") == ["chart.png"] for r in v2)
    problems = [p for r in v2 for p in contract_violations(r)]
    assert problems == []


def test_the_v1_requests_match_the_v1_notes(exercised):
    """v1 search, label add and upload are not in the v2 document: checked against the v1 reference's notes."""
    v1 = [r for r in exercised if r["path"].startswith(V1_PREFIX)]
    assert {r["route"] for r in v1} == set(V1_NOTES)
    assert any("cursor" in r["query"] for r in v1 if r["route"] == "GET /wiki/rest/api/search")
    problems = [p for r in v1 for p in v1_violations(r)]
    assert problems == []


@pytest.mark.parametrize(
    "recorded",
    [
        {"route": "POST /wiki/rest/api/content/{id}/label", "query": {}, "json": [{"name": "Upper"}]},
        {"route": "POST /wiki/rest/api/content/{id}/label", "query": {}, "json": [{"prefix": "global", "name": "a b"}]},
        {"route": "POST /wiki/rest/api/content/{id}/label", "query": {}, "json": {"prefix": "global", "name": "a"}},
        {"route": "GET /wiki/rest/api/search", "query": {"cql": ["x"], "limit": ["1000"]}, "json": None},
        {"route": "GET /wiki/rest/api/search", "query": {"limit": ["10"]}, "json": None},
        {
            "route": "PUT /wiki/rest/api/content/{id}/child/attachment",
            "query": {},
            "json": None,
            "content_type": "application/json",
        },
        {"route": "GET /wiki/rest/api/space", "query": {}, "json": None},
    ],
)
def test_the_v1_check_catches_bad_requests(recorded):
    assert v1_violations(recorded) != []


def test_the_create_and_update_bodies_carry_what_confluence_requires(exercised):
    posts = [r["json"] for r in exercised if r["route"] == "POST /wiki/api/v2/pages"]
    puts = [r["json"] for r in exercised if r["route"] == "PUT /wiki/api/v2/pages/{id}"]
    assert posts and puts
    assert all(isinstance(b["spaceId"], str) and b["spaceId"].isdigit() for b in posts)
    assert all(b["body"]["representation"] == "storage" for b in posts + puts)
    assert [b["version"]["number"] for b in puts] == [2, 3, 4, 5]
    moved, appended = puts[2], puts[3]
    assert moved["parentId"].isdigit() and moved["version"]["message"] == "moved"
    assert appended["body"]["value"].endswith("<p><strong>five</strong></p>\n")


@pytest.mark.parametrize(
    ("route", "body"),
    [
        ("POST /wiki/api/v2/pages", {"title": "no space id", "body": {"representation": "storage", "value": "x"}}),
        ("POST /wiki/api/v2/pages", {"spaceId": 123, "title": "numeric id"}),
        ("PUT /wiki/api/v2/pages/{id}", {"id": "1", "status": "current", "title": "t", "body": {}}),
        ("POST /wiki/api/v2/pages", {"spaceId": "1", "status": "published"}),
        ("POST /wiki/api/v2/footer-comments", {"pageId": 123, "body": {"representation": "storage", "value": "x"}}),
        ("POST /wiki/api/v2/footer-comments", {"pageId": "1", "body": "<p>a string, not an object</p>"}),
    ],
)
def test_the_contract_check_catches_bad_bodies(route, body):
    """The check itself can fail: bodies Confluence would refuse are reported."""
    assert contract_violations({"route": route, "query": {}, "json": body}) != []


def test_the_contract_check_catches_an_operation_the_feature_table_does_not_cover():
    recorded = {"route": "GET /wiki/api/v2/spaces/{id}/pages", "query": {}, "json": None}
    (problem,) = contract_violations(recorded)
    assert "getPagesInSpace" in problem and "docs/features.md" in problem


def test_the_contract_check_catches_unknown_query_parameters():
    recorded = {"route": "GET /wiki/api/v2/spaces", "query": {"spaceKey": ["DEMO"]}, "json": None}
    assert contract_violations(recorded) == [
        "GET /wiki/api/v2/spaces: query parameter 'spaceKey' is not in the document"
    ]


COMMENT_SCOPES = f"{DEFAULT_SCOPES} read:comment:confluence write:comment:confluence"


def test_the_footer_comment_requests_match_the_openapi_document(fake_atlassian, airflow_db):
    """Adding and listing footer comments (with a cursor page): bodies and parameters as the v2 document says."""
    put_connection("contract_comments", fake_atlassian.connection("contract_comments", scopes=COMMENT_SCOPES))
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Commented")
    hook = ConfluenceOAuthHook("contract_comments")
    for text in ("<p>one</p>", "**two**"):
        hook.add_footer_comment(page["id"], text, representation="markdown" if "*" in text else "storage")
    hook.add_footer_comment(page["id"], "h1. three", representation="wiki")
    assert len(list(hook.list_footer_comments(page["id"]))) == 3
    listed = hook.get_conn().paginate(
        f"/wiki/api/v2/pages/{page['id']}/footer-comments", {"limit": 2, "body-format": "atlas_doc_format"}
    )
    assert len(list(listed)) == 3  # two pages: the second through a cursor
    recorded = [r for r in fake_atlassian.requests if "footer-comments" in r["path"]]
    assert {r["route"] for r in recorded} == {
        "POST /wiki/api/v2/footer-comments",
        "GET /wiki/api/v2/pages/{id}/footer-comments",
    }
    assert any("cursor" in r["query"] for r in recorded)
    posts = [r["json"] for r in recorded if r["route"].startswith("POST")]
    assert [b["body"]["representation"] for b in posts] == ["storage", "storage", "wiki"]
    assert all(b["pageId"] == page["id"] for b in posts)
    assert [p for r in recorded for p in contract_violations(r)] == []


TREE_SCOPES = (
    f"{DEFAULT_SCOPES} delete:page:confluence read:folder:confluence write:folder:confluence "
    "read:hierarchical-content:confluence"
)
#: The v1 label removal (https://developer.atlassian.com/cloud/confluence/rest/v1/api-group-content-labels/):
#: the label's name in the path, no body, no query; answers 204.
LABEL_REMOVAL = "DELETE /wiki/rest/api/content/{id}/label/{label}"


def document_scopes(route: str) -> list[str]:
    """The ``x-atlassian-oauth2-scopes`` of a v2 route in the document."""
    return [scope for entry in operation(route).get("x-atlassian-oauth2-scopes", []) for scope in entry["scopes"]]


def test_the_tree_and_clean_up_requests_match_the_openapi_document(fake_atlassian, airflow_db):
    """Children (a cursor page), descendants, find by path, folders, delete and purge, retention's id listing,
    label removal: parameters and bodies as the document says, the scopes it names, the answers it promises."""
    from datetime import UTC, datetime

    from airflow_provider_confluence.client.responses import required_scope

    put_connection("contract_tree", fake_atlassian.connection("contract_tree", scopes=TREE_SCOPES))
    space = fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Reports")
    kids = [fake_atlassian.add_page("DEMO", f"R{n}", parent_id=parent["id"], labels=["old"]) for n in range(3)]
    fake_atlassian.add_page("DEMO", "Deep", parent_id=kids[0]["id"])
    hook = ConfluenceOAuthHook("contract_tree")
    client = hook.get_conn()
    assert len(list(client.paginate(f"/wiki/api/v2/pages/{parent['id']}/children", {"limit": 2}))) == 3
    assert len(list(client.list_children(parent["id"], sort="-created-date"))) == 3
    assert len(hook.list_children(parent["id"], depth=2)) == 4
    assert hook.find_page_by_path(["Reports", "R0", "Deep"], space_key="DEMO") is not None
    folder = hook.create_folder("Archive", space_id=space["id"], parent_id=parent["id"])
    client.get_folder(folder["id"])
    # folders as parents: direct children (a cursor page) and descendants of pages and folders, ensure-folder
    hook.get_conn().create_page(space_id=space["id"], title="In the folder", body="<p>f</p>", parent_id=folder["id"])
    assert hook.ensure_folder("Archive", space_id=space["id"], parent_id=parent["id"])["created"] is False
    assert hook.ensure_folder("Top", space_id=space["id"])["created"] is True
    assert len(list(client.paginate(f"/wiki/api/v2/pages/{parent['id']}/direct-children", {"limit": 2}))) == 4
    assert len(list(client.list_direct_children(folder["id"], parent_type="folder", sort="-title"))) == 1
    assert len(hook.list_children(folder["id"], parent_type="folder", depth=2)) == 1
    assert len(list(client.paginate(f"/wiki/api/v2/pages/{parent['id']}/descendants", {"limit": 2, "depth": 3}))) == 6
    assert hook.find_page_by_path(["Reports", "Archive", "In the folder"], space_key="DEMO") is not None
    hook.remove_label(kids[2]["id"], "old")
    hook.delete_page(kids[1]["id"], purge=True)
    hook.apply_retention(parent["id"], keep_latest=1, now=datetime.now(UTC))

    recorded = [r for r in fake_atlassian.requests if r["path"].startswith("/wiki/")]
    v2 = [r for r in recorded if r["path"].startswith(V2_PREFIX)]
    assert {
        "GET /wiki/api/v2/pages/{id}/children",
        "POST /wiki/api/v2/folders",
        "GET /wiki/api/v2/folders/{id}",
        "DELETE /wiki/api/v2/pages/{id}",
        "GET /wiki/api/v2/pages/{id}",
        "GET /wiki/api/v2/pages",
        "GET /wiki/api/v2/pages/{id}/direct-children",
        "GET /wiki/api/v2/folders/{id}/direct-children",
        "GET /wiki/api/v2/pages/{id}/descendants",
        "GET /wiki/api/v2/folders/{id}/descendants",
    } <= {r["route"] for r in v2}
    for listing in ("/children", "/direct-children", "/descendants"):
        assert any("cursor" in r["query"] for r in v2 if r["route"].endswith(listing)), listing
    assert any(r["query"].get("purge") == ["true"] for r in v2 if r["route"].startswith("DELETE"))
    assert [p for r in v2 for p in contract_violations(r)] == []
    for r in v2:
        answered = str(r["status"])
        assert answered in operation(r["route"])["responses"], f"{r['route']} answered {answered}"
        scopes = document_scopes(r["route"])
        assert set(scopes) <= set(TREE_SCOPES.split()), r["route"]
        assert required_scope(r["method"], r["path"]) in scopes, r["route"]  # a scope error names it
    assert [r["status"] for r in v2 if r["method"] == "DELETE"] == [204] * len(
        [r for r in v2 if r["method"] == "DELETE"]
    )
    removals = [r for r in recorded if r["path"].startswith(V1_PREFIX) and r["method"] == "DELETE"]
    assert [(r["route"], r["query"], r["json"], r["status"]) for r in removals] == [(LABEL_REMOVAL, {}, None, 204)]
    assert removals[0]["path"].endswith("/label/old")
    assert required_scope("DELETE", removals[0]["path"]).startswith("write:label:confluence")


def answer_schema(route: str) -> dict[str, Any]:
    """The schema of a route's 200 JSON answer in the document."""
    return dict(resolve(operation(route)["responses"]["200"])["content"]["application/json"]["schema"])


def test_the_tree_answers_have_the_shapes_of_the_openapi_document(fake_atlassian, airflow_db):
    """The emulator's direct-children, descendants and folder answers validate against the document's schemas, and
    carry every property of ``ChildrenResponse`` / ``DescendantsResponse`` (so a client reading ``type`` or
    ``childPosition`` is tested against what Confluence sends)."""
    put_connection("contract_shapes", fake_atlassian.connection("contract_shapes", scopes=TREE_SCOPES))
    space = fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Reports")
    client = ConfluenceOAuthHook("contract_shapes").get_conn()
    folder = client.create_folder(space_id=space["id"], title="2026", parent_id=parent["id"])
    fake_atlassian.add_page("DEMO", "December", parent_id=folder["id"])
    schemas = spec()["components"]["schemas"]
    for kind, ident in (("pages", parent["id"]), ("folders", folder["id"])):
        for what, item in (("direct-children", "ChildrenResponse"), ("descendants", "DescendantsResponse")):
            route = f"GET {V2_PREFIX}/{kind}/{{id}}/{what}"
            body = client.request("GET", f"{V2_PREFIX}/{kind}/{ident}/{what}")
            assert schema_errors(body, answer_schema(route)) == [], route
            assert body["results"] and all(set(r) == set(schemas[item]["properties"]) for r in body["results"]), route
    single = client.request("GET", f"{V2_PREFIX}/folders/{folder['id']}")
    assert schema_errors(single, answer_schema("GET /wiki/api/v2/folders/{id}")) == []
    assert set(single) - {"_links"} <= set(schemas["FolderSingle"]["properties"])


def test_the_chart_requests_match_the_openapi_document(fake_atlassian, confluence_conn):
    """A page with an image, published twice: the attachment listing (no filename filter, limit 250) and the
    page writes as the document says; the upload as the v1 notes say, with the digest in its ``comment`` part;
    and the field the unchanged check reads back, ``comment``, is one the document's ``AttachmentBulk`` declares."""
    from airflow_provider_confluence.client.attachments import recorded_sha256
    from airflow_provider_confluence.content.images import prepare_images
    from airflow_provider_confluence.content.page_spec import PageSpec

    fake_atlassian.add_space("DEMO")
    hook = ConfluenceOAuthHook(confluence_conn)
    markdown = "![Daily volume](chart.png)"
    prepared = prepare_images({"chart.png": b"\x89PNG\r\n\x1a\nchart"}, markdown=markdown)
    spec = PageSpec.build(
        space_key="DEMO",
        title="Chart contract",
        body=markdown,
        representation="markdown",
        if_exists="update",
        attachments=prepared.names,
    )
    first = hook.publish_with_images(spec, prepared.files)
    assert hook.publish_with_images(spec, prepared.files).uploaded == 0
    recorded = [r for r in fake_atlassian.requests if r["path"].startswith("/wiki/")]
    v2 = [r for r in recorded if r["path"].startswith(V2_PREFIX)]
    listings = [r for r in v2 if r["route"] == "GET /wiki/api/v2/pages/{id}/attachments"]
    assert len(listings) == 2 and all(r["query"] == {"limit": ["250"]} for r in listings)
    assert {"POST /wiki/api/v2/pages", "PUT /wiki/api/v2/pages/{id}"} <= {r["route"] for r in v2}
    assert [p for r in v2 for p in contract_violations(r)] == []
    uploads = [r for r in recorded if r["route"] == "PUT /wiki/rest/api/content/{id}/child/attachment"]
    assert len(uploads) == 1 and [p for r in uploads for p in v1_violations(r)] == []
    bulk = resolve(spec_schema("AttachmentBulk"))
    assert bulk["properties"]["comment"]["type"] == "string"
    listed = fake_atlassian.attachments(first.page["id"])
    assert recorded_sha256(listed[0]) == prepared.files[0].sha256
    assert schema_errors(listed[0], bulk) == []


def spec_schema(name: str) -> dict[str, Any]:
    """A component schema of the document, by name."""
    return {"$ref": f"#/components/schemas/{name}"}


def test_the_mirror_requests_match_the_openapi_document(fake_atlassian, airflow_db, tmp_path):
    """Mirroring a directory (create, update, unchanged, a dry run, delete_missing): the lookups by title with the
    storage body, the creates, the updates with a version message, the listing and the deletes are all as the v2
    document says, with the scopes it names."""
    from airflow_provider_confluence.client.responses import required_scope

    put_connection("contract_mirror", fake_atlassian.connection("contract_mirror", scopes=TREE_SCOPES))
    fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Docs")
    (tmp_path / "guide").mkdir()
    (tmp_path / "a.md").write_text("# A\n[guide](guide/)\n")
    (tmp_path / "guide" / "b.md").write_text("# B\n")
    hook = ConfluenceOAuthHook("contract_mirror")
    hook.mirror_directory(tmp_path, space_key="DEMO", parent_id=parent["id"], labels=["docs"])
    (tmp_path / "guide" / "b.md").write_text("# B\nchanged\n")
    hook.mirror_directory(tmp_path, space_key="DEMO", parent_id=parent["id"], dry_run=True, delete_missing=True)
    hook.mirror_directory(tmp_path, space_key="DEMO", parent_id=parent["id"])
    (tmp_path / "a.md").unlink()
    hook.mirror_directory(tmp_path, space_key="DEMO", parent_id=parent["id"], delete_missing=True)

    v2 = [r for r in fake_atlassian.requests if r["path"].startswith(V2_PREFIX)]
    assert {
        "GET /wiki/api/v2/pages",
        "POST /wiki/api/v2/pages",
        "PUT /wiki/api/v2/pages/{id}",
        "GET /wiki/api/v2/pages/{id}/children",
        "DELETE /wiki/api/v2/pages/{id}",
    } <= {r["route"] for r in v2}
    assert any(r["query"].get("body-format") == ["storage"] for r in v2 if r["route"] == "GET /wiki/api/v2/pages")
    (put,) = [r for r in v2 if r["method"] == "PUT"]
    assert put["json"]["version"]["message"].startswith("Mirrored from guide/b.md (mirror-sha256:")
    assert [p for r in v2 for p in contract_violations(r)] == []
    for r in v2:
        assert str(r["status"]) in operation(r["route"])["responses"], f"{r['route']} answered {r['status']}"
        assert required_scope(r["method"], r["path"]) in document_scopes(r["route"]), r["route"]
