"""The DAG-author toolkit's operators against the emulator: update, get, create (labels, parent by title,
Markdown and tables), CQL search and attachment upload.

Each operator runs at least once in a real DAG run (``dag.test()``: templating, XCom, the extra link); the
option and error paths run ``execute`` directly, which is the same code without the scheduler's overhead.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceConfigError,
    ConfluenceNotFound,
    ConfluencePageMissing,
)
from airflow_provider_confluence.operators.confluence import (
    ConfluenceCreatePageOperator,
    ConfluenceGetPageOperator,
    ConfluenceSearchOperator,
    ConfluenceUpdatePageOperator,
    ConfluenceUploadAttachmentOperator,
)
from helpers.airflow_env import airflow_major
from helpers.dags import new_dag, run_dag, task_decorator

pytestmark = pytest.mark.airflow2

PUT_PAGE = "PUT /wiki/api/v2/pages/{id}"
ADD_LABELS = "POST /wiki/rest/api/content/{id}/label"
UPLOAD = "PUT /wiki/rest/api/content/{id}/child/attachment"
SEARCH = "GET /wiki/rest/api/search"
LINK_KEY = "confluence_page_url"


# -- running a DAG for real -------------------------------------------------------------------------------


def page_of(fake: Any, page_id: str) -> dict[str, Any]:
    return next(p for p in fake.pages if p["id"] == page_id)


def calls(fake: Any, route: str) -> int:
    return fake.counters["api_calls_by_route"].get(route, 0)


# -- create, update and get in one real run ---------------------------------------------------------------


def test_create_update_and_get_in_a_dag_run(fake_atlassian, confluence_conn):
    """Templated ids, titles, bodies and labels; Markdown converted; parent by title; XCom and links."""
    space = fake_atlassian.add_space("DEMO")
    parent = fake_atlassian.add_page("DEMO", "Reports")
    with new_dag("pages", params={"space": "DEMO", "day": "2026-05-01"}) as dag:
        create = ConfluenceCreatePageOperator(
            task_id="create",
            space_key="{{ params.space }}",
            title="Report {{ params.day }}",
            body="# Report {{ params.day }}\n\nRows: **42** <b>raw</b>",
            representation="markdown",
            parent_title="Reports",
            labels="daily-report, Metrics",
        )
        update = ConfluenceUpdatePageOperator(
            task_id="update",
            space_key="{{ params.space }}",
            title="Report {{ params.day }}",
            body="| check | ok |\n|---|---|\n| rows | yes |",
            representation="markdown",
            mode="append",
            labels=["checked"],
            version_message="checks of {{ params.day }}",
        )
        get = ConfluenceGetPageOperator(task_id="get", page_id="{{ ti.xcom_pull(task_ids='create')['id'] }}")
        create >> update >> get
    stored = run_dag(dag)
    results = stored["return_value"]

    created, updated, read = results["create"], results["update"], results["get"]
    page = page_of(fake_atlassian, created["id"])
    assert created == {
        "id": page["id"],
        "title": "Report 2026-05-01",
        "space_id": space["id"],
        "version": 1,
        "url": f"{fake_atlassian.site_url}/wiki{page['_links']['webui']}",
        "changed": True,
        "action": "created",
    }
    assert updated == {**created, "version": 2, "changed": True, "action": "updated"}
    assert page["parentId"] == parent["id"]
    assert page["version"]["message"] == "checks of 2026-05-01"
    assert read["body"] == page["body"]["storage"]["value"]
    assert "<h1>Report 2026-05-01</h1>" in read["body"] and "<strong>42</strong>" in read["body"]
    assert "&lt;b&gt;raw&lt;/b&gt;" in read["body"]  # raw HTML in Markdown arrives as text
    assert read["body"].index("Report 2026-05-01") < read["body"].index("<table>")  # appended after
    assert sorted(read["labels"]) == ["checked", "daily-report", "metrics"]
    assert read["parent_id"] == parent["id"]
    assert (read["id"], read["version"], read["url"]) == (created["id"], 2, created["url"])
    assert stored[LINK_KEY] == {"create": created["url"], "update": created["url"], "get": created["url"]}
    if airflow_major() >= 3:  # the task runner resolved the link in the worker, for the API server to serve
        assert stored["_link_ConfluencePageLink"] == stored[LINK_KEY]


# -- update -----------------------------------------------------------------------------------------------


def update(**kwargs: Any) -> dict[str, Any]:
    return ConfluenceUpdatePageOperator(task_id="update", **kwargs).execute(context={})


def test_update_replace_makes_no_new_version_on_a_rerun(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Status", "<p>old</p>")
    first = update(page_id=page["id"], body="<p>new</p>")
    again = update(page_id=page["id"], body="<p>new</p>")
    assert (first["version"], first["changed"]) == (2, True)
    assert (again["version"], again["changed"]) == (2, False)
    assert calls(fake_atlassian, PUT_PAGE) == 1
    assert page_of(fake_atlassian, page["id"])["body"]["storage"]["value"] == "<p>new</p>"
    assert first["title"] == "Status"  # new_title=None keeps the title


def in_run(run_id: str) -> dict[str, Any]:
    """The part of a task's context the update operator reads: which run this try belongs to."""
    from types import SimpleNamespace

    ti = SimpleNamespace(dag_id="log", task_id="update", run_id=run_id, map_index=-1, xcom_push=lambda **kwargs: None)
    return {"ti": ti}


def test_update_append_appends_once_per_run(fake_atlassian, confluence_conn):
    from airflow_provider_confluence.content.publish import append_marker

    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Log", "<p>day 1</p>")
    op = ConfluenceUpdatePageOperator(task_id="update", space_key="DEMO", title="Log", body="<p>ok</p>", mode="append")
    first = op.execute(context=in_run("scheduled__2026-05-02"))
    retried = op.execute(context=in_run("scheduled__2026-05-02"))  # a retry of the same run
    next_day = op.execute(context=in_run("scheduled__2026-05-03"))  # the same text, the next day
    assert (first["changed"], retried["changed"], next_day["changed"]) == (True, False, True)
    assert page_of(fake_atlassian, page["id"])["body"]["storage"]["value"] == (
        "<p>day 1</p>"
        + append_marker("log/update/scheduled__2026-05-02")
        + "<p>ok</p>"
        + append_marker("log/update/scheduled__2026-05-03")
        + "<p>ok</p>"
    )


def test_update_renames_and_adds_only_missing_labels(fake_atlassian, confluence_conn):
    space = fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Draft plan", "<p>plan</p>", labels=["plan"])
    result = update(space_id=space["id"], title="Draft plan", body="<p>plan</p>", new_title="Plan", labels="plan, Q3")
    assert (result["title"], result["changed"], result["version"]) == ("Plan", True, 2)
    assert fake_atlassian.page_labels(page["id"]) == ["plan", "q3"]
    label_posts = calls(fake_atlassian, ADD_LABELS)
    again = update(page_id=page["id"], body="<p>plan</p>", labels=["plan", "q3"])
    assert (again["changed"], again["version"], again["title"]) == (False, 2, "Plan")
    assert calls(fake_atlassian, ADD_LABELS) == label_posts  # nothing was missing: no label request


def test_update_moves_the_page_under_a_parent_by_title(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    archive = fake_atlassian.add_page("DEMO", "Archive")
    page = fake_atlassian.add_page("DEMO", "Old plan", "<p>plan</p>")
    moved = update(page_id=page["id"], body="<p>plan</p>", parent_title="Archive")
    assert (moved["changed"], page_of(fake_atlassian, page["id"])["parentId"]) == (True, archive["id"])
    again = update(page_id=page["id"], body="<p>plan</p>", parent_id=archive["id"])
    assert (again["changed"], again["version"]) == (False, moved["version"])


def test_update_with_a_table_body(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Metrics")
    rows = [{"metric": "rows", "value": 10}, {"metric": "<errors>", "value": None}]
    update(page_id=page["id"], body=rows, representation="table")
    body = page_of(fake_atlassian, page["id"])["body"]["storage"]["value"]
    assert "<th>metric</th>" in body and "<td>10</td>" in body and "&lt;errors&gt;" in body
    again = update(page_id=page["id"], body=json.dumps(rows), representation="table")  # a rendered template
    assert again["changed"] is False


def test_update_survives_one_conflict(fake_atlassian, confluence_conn):
    """A 409 (someone wrote a version between our read and our write) re-reads the page and tries once more."""
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Busy", "<p>a</p>")
    fake_atlassian.fail_next(409, route=PUT_PAGE)
    result = update(page_id=page["id"], body="<p>b</p>")
    assert (result["version"], result["changed"]) == (2, True)
    statuses = [r["status"] for r in fake_atlassian.requests if r["route"] == PUT_PAGE]
    assert statuses == [409, 200]


def test_update_of_a_missing_page_says_how_to_upsert(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    with pytest.raises(ConfluencePageMissing, match="if_exists='update'") as by_title:
        update(space_key="DEMO", title="Nope", body="<p>x</p>")
    assert (by_title.value.title, by_title.value.space_key, by_title.value.status_code) == ("Nope", "DEMO", None)
    with pytest.raises(ConfluenceNotFound, match="no page with id 999999"):
        update(page_id="999999", body="<p>x</p>")
    assert calls(fake_atlassian, PUT_PAGE) == 0


def test_update_to_a_parent_title_that_does_not_exist(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Child", "<p>c</p>")
    with pytest.raises(ConfluencePageMissing, match="Nowhere"):
        update(page_id=page["id"], body="<p>c2</p>", parent_title="Nowhere")
    assert calls(fake_atlassian, PUT_PAGE) == 0


# -- get --------------------------------------------------------------------------------------------------


def get(**kwargs: Any) -> dict[str, Any]:
    return ConfluenceGetPageOperator(task_id="get", **kwargs).execute(context={})


def test_get_by_title_in_atlas_doc_format(fake_atlassian, confluence_conn):
    space = fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Doc", "<p>hello</p>", labels=["a", "b"])
    result = get(space_id=space["id"], title="Doc", body_format="atlas_doc_format")
    assert isinstance(result["body"], str)
    assert json.loads(result["body"])["type"] == "doc"
    assert "hello" in result["body"]
    assert (result["id"], result["labels"], result["space_id"]) == (page["id"], ["a", "b"], space["id"])
    assert result["parent_id"] == page["parentId"]  # under the space's home page
    json.dumps(result)  # JSON-able: it goes to XCom


def test_get_of_a_missing_page_is_a_clear_not_found(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    with pytest.raises(ConfluencePageMissing, match="no current page titled 'Ghost' in space DEMO"):
        get(space_key="DEMO", title="Ghost")
    with pytest.raises(ConfluenceNotFound, match="no page with id 424242") as by_id:  # Confluence answered 404
        get(page_id="424242")
    [answered] = [r for r in fake_atlassian.requests if r["route"] == "GET /wiki/api/v2/pages/{id}"]
    assert (by_id.value.method, by_id.value.url.startswith(fake_atlassian.api_url), by_id.value.trace_id) == (
        "GET",
        True,
        answered["trace_id"],
    )


# -- create -----------------------------------------------------------------------------------------------


def create(**kwargs: Any) -> dict[str, Any]:
    return ConfluenceCreatePageOperator(task_id="create", **kwargs).execute(context={})


def test_create_with_labels_is_idempotent_with_if_exists_update(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    first = create(
        space_key="DEMO",
        title="Daily",
        body="Hello *world*",
        representation="markdown",
        labels=["daily-report"],
        if_exists="update",
    )
    posts = calls(fake_atlassian, ADD_LABELS)
    again = create(
        space_key="DEMO",
        title="Daily",
        body="Hello *world*",
        representation="markdown",
        labels=["daily-report"],
        if_exists="update",
    )
    assert (first["version"], again["version"], again["id"]) == (1, 1, first["id"])
    assert calls(fake_atlassian, PUT_PAGE) == 0
    assert calls(fake_atlassian, ADD_LABELS) == posts == 1
    assert fake_atlassian.page_labels(first["id"]) == ["daily-report"]
    assert "<em>world</em>" in page_of(fake_atlassian, first["id"])["body"]["storage"]["value"]


def test_create_a_table_page_from_a_dataframe(fake_atlassian, confluence_conn):
    pandas = pytest.importorskip("pandas")
    fake_atlassian.add_space("DEMO")
    frame = pandas.DataFrame({"table": ["orders", "users"], "rows": [120, 7]})
    result = create(space_key="DEMO", title="Tables", body=frame, representation="table")
    body = page_of(fake_atlassian, result["id"])["body"]["storage"]["value"]
    assert body.count("<tr>") == 3 and "<td>orders</td>" in body and "<td>120</td>" in body


def test_create_under_a_missing_parent_title_creates_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    before = len(fake_atlassian.pages)
    with pytest.raises(ConfluencePageMissing, match="Missing parent"):
        create(space_key="DEMO", title="Orphan", body="<p>x</p>", parent_title="Missing parent")
    assert len(fake_atlassian.pages) == before


# -- search -----------------------------------------------------------------------------------------------


def test_search_feeds_a_downstream_task(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    fake_atlassian.add_space("OTHER")
    for day in (1, 2, 3):
        fake_atlassian.add_page("DEMO", f"Report {day}", labels=["daily-report"])
    fake_atlassian.add_page("DEMO", "Unlabelled")
    fake_atlassian.add_page("OTHER", "Report elsewhere", labels=["daily-report"])
    task = task_decorator()
    with new_dag("search", params={"space": "DEMO"}) as dag:
        search = ConfluenceSearchOperator(
            task_id="search",
            cql='type = page AND space = "{{ params.space }}" AND label = "daily-report" ORDER BY title',
            limit=2,
        )

        @task
        def titles(results: list[dict[str, Any]]) -> list[str]:
            return [r["title"] for r in results]

        titles(search.output)
    results = run_dag(dag)["return_value"]
    assert results["titles"] == ["Report 1", "Report 2", "Report 3"]
    first = results["search"][0]
    assert set(first) == {"id", "type", "title", "space", "url", "excerpt", "last_modified"}
    assert first["type"] == "page" and first["url"].startswith(f"{fake_atlassian.site_url}/wiki/")
    assert calls(fake_atlassian, SEARCH) == 2  # 3 results, 2 per request


def test_search_follows_pages_and_stops_at_max_results(fake_atlassian, confluence_conn, caplog, capsys):
    fake_atlassian.add_space("BIG", homepage=False)
    for index in range(25):
        fake_atlassian.add_page("BIG", f"Page {index:02d}")
    with caplog.at_level(logging.INFO):
        everything = ConfluenceSearchOperator(task_id="s", cql="space = BIG AND type = page", limit=10).execute({})
    assert len(everything) == 25 and len({r["id"] for r in everything}) == 25
    assert calls(fake_atlassian, SEARCH) == 3
    assert "Fetched 25 search results in 3 requests" in caplog.text + capsys.readouterr().out
    some = ConfluenceSearchOperator(task_id="s", cql="space = BIG", max_results=15, limit=10).execute({})
    assert len(some) == 15
    assert calls(fake_atlassian, SEARCH) == 5  # 2 more: no request beyond the 15th result


def test_a_bad_cql_query_fails_with_confluences_message(fake_atlassian, confluence_conn):
    with pytest.raises(ConfluenceApiError, match="Could not parse cql") as raised:
        ConfluenceSearchOperator(task_id="s", cql="type === page").execute({})
    assert raised.value.status_code == 400


# -- upload -----------------------------------------------------------------------------------------------


def test_upload_by_path_by_text_from_xcom_and_by_bytes(fake_atlassian, confluence_conn, tmp_path):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Charts")
    chart = tmp_path / "chart.png"
    chart.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    task = task_decorator()
    with new_dag("upload", params={"path": str(chart), "space": "DEMO"}) as dag:

        @task
        def build_csv() -> str:
            return "metric,value\nrows,42\nnaïve,1\n"

        by_data = ConfluenceUploadAttachmentOperator(
            task_id="upload_csv",
            space_key="{{ params.space }}",
            title="Charts",
            data=build_csv(),
            filename="metrics-{{ ds }}.csv",
            media_type="text/csv",
            comment="from {{ dag.dag_id }}",
        )
        by_path = ConfluenceUploadAttachmentOperator(
            task_id="upload_png", page_id=page["id"], file_path="{{ params.path }}"
        )
        by_bytes = ConfluenceUploadAttachmentOperator(
            task_id="upload_bytes", page_id=page["id"], data=b"\x00\xff\x01", filename="raw.bin"
        )
        by_data >> by_path >> by_bytes
    stored = run_dag(dag)
    results = stored["return_value"]
    csv_name = results["upload_csv"]["title"]
    assert csv_name.startswith("metrics-") and csv_name.endswith(".csv")
    assert fake_atlassian.attachment_data(page["id"], csv_name) == "metric,value\nrows,42\nnaïve,1\n".encode()
    assert fake_atlassian.attachment_data(page["id"], "chart.png") == chart.read_bytes()
    png = results["upload_png"]
    assert (png["title"], png["page_id"], png["media_type"], png["file_size"], png["version"]) == (
        "chart.png",
        page["id"],
        "image/png",
        len(chart.read_bytes()),
        1,
    )
    assert results["upload_csv"]["media_type"] == "text/csv"
    assert fake_atlassian.attachment_data(page["id"], "raw.bin") == b"\x00\xff\x01"
    assert results["upload_bytes"]["file_size"] == 3
    assert stored[LINK_KEY]["upload_png"] == f"{fake_atlassian.site_url}/wiki{page['_links']['webui']}"


def test_binary_content_travels_through_xcom_as_base64(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Charts")
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    task = task_decorator()
    with new_dag("upload_base64") as dag:

        @task
        def render_chart() -> str:
            import base64

            return base64.b64encode(png).decode()

        ConfluenceUploadAttachmentOperator(
            task_id="upload_chart",
            page_id=page["id"],
            data=render_chart(),
            data_encoding="base64",
            filename="chart.png",
        )
    stored = run_dag(dag)
    assert fake_atlassian.attachment_data(page["id"], "chart.png") == png
    assert stored["return_value"]["upload_chart"]["media_type"] == "image/png"


def test_data_that_is_not_base64_uploads_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Charts")
    with pytest.raises(ConfluenceConfigError, match="not valid base64.*data_encoding='utf-8'"):
        ConfluenceUploadAttachmentOperator(
            task_id="u", page_id=page["id"], data="not base64!", data_encoding="base64", filename="x.png"
        ).execute({})
    assert fake_atlassian.attachments(page["id"]) == []
    with pytest.raises(ConfluenceConfigError, match="data_encoding='gzip' is not one of utf-8, base64"):
        ConfluenceUploadAttachmentOperator(task_id="u", page_id="1", data="x", data_encoding="gzip", filename="x.bin")


def test_uploading_the_same_name_again_makes_a_new_version_not_a_new_page_version(
    fake_atlassian, confluence_conn, tmp_path
):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Files")
    report = tmp_path / "report.txt"
    report.write_text("v1")
    first = ConfluenceUploadAttachmentOperator(task_id="u", page_id=page["id"], file_path=str(report)).execute({})
    report.write_text("v2")
    second = ConfluenceUploadAttachmentOperator(task_id="u", page_id=page["id"], file_path=str(report)).execute({})
    raw = ConfluenceUploadAttachmentOperator(
        task_id="u", page_id=page["id"], data=b"\x00\x01", filename="raw.bin"
    ).execute({})
    assert (first["id"], first["version"], second["version"]) == (second["id"], 1, 2)
    assert fake_atlassian.attachment_data(page["id"], "report.txt") == b"v2"
    assert fake_atlassian.attachment_data(page["id"], "raw.bin") == b"\x00\x01" and raw["file_size"] == 2
    assert len(fake_atlassian.attachments(page["id"])) == 2
    assert page_of(fake_atlassian, page["id"])["version"]["number"] == 1


def test_a_missing_file_fails_before_any_network_call(fake_atlassian, confluence_conn, tmp_path):
    missing = tmp_path / "nope.csv"
    with pytest.raises(ConfluenceConfigError, match="nope.csv"):
        ConfluenceUploadAttachmentOperator(task_id="u", page_id="1", file_path=str(missing)).execute({})
    assert fake_atlassian.counters["api_calls"] == 0
    assert fake_atlassian.counters["token_requests"] == 0


def test_upload_to_a_missing_page_uploads_nothing(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    with pytest.raises(ConfluencePageMissing, match="'Nowhere'"):
        ConfluenceUploadAttachmentOperator(
            task_id="u", space_key="DEMO", title="Nowhere", data="x", filename="x.txt"
        ).execute({})
    assert calls(fake_atlassian, UPLOAD) == 0


def test_upload_refuses_data_that_is_not_bytes_or_text(fake_atlassian, confluence_conn):
    with pytest.raises(ConfluenceConfigError, match="data is a dict"):
        ConfluenceUploadAttachmentOperator(task_id="u", page_id="1", data={"a": 1}, filename="a.json").execute({})
    assert fake_atlassian.counters["api_calls"] == 0


# -- checks at DAG parse time -----------------------------------------------------------------------------

PARSE_ERRORS = [
    (ConfluenceUpdatePageOperator, {"body": "b"}, "Say which page"),
    (ConfluenceUpdatePageOperator, {"page_id": "1", "title": "t", "space_key": "X", "body": "b"}, "not both"),
    (ConfluenceUpdatePageOperator, {"title": "t", "body": "b"}, "Say which page"),
    (ConfluenceUpdatePageOperator, {"space_key": "X", "space_id": "1", "title": "t", "body": "b"}, "space_id, not"),
    (ConfluenceUpdatePageOperator, {"page_id": "1", "body": "b", "mode": "prepend"}, "mode='prepend'"),
    (ConfluenceUpdatePageOperator, {"page_id": "1", "body": "b", "representation": "html"}, "representation"),
    (ConfluenceUpdatePageOperator, {"page_id": "1", "body": "b", "representation": "wiki", "mode": "append"}, "append"),
    (
        ConfluenceUpdatePageOperator,
        {"page_id": "1", "body": "b", "parent_id": "2", "parent_title": "P"},
        "parent_id or parent_title",
    ),
    (ConfluenceGetPageOperator, {"page_id": "1", "body_format": "view"}, "body_format='view'"),
    (ConfluenceGetPageOperator, {"space_key": "X"}, "Say which page"),
    (
        ConfluenceCreatePageOperator,
        {"space_key": "X", "title": "t", "body": "b", "parent_id": "1", "parent_title": "P"},
        "parent_id or parent_title",
    ),
    (
        ConfluenceCreatePageOperator,
        {"space_key": "X", "title": "t", "body": "b", "representation": "rst"},
        "representation='rst'",
    ),
    (ConfluenceSearchOperator, {"cql": "  "}, "cql is empty"),
    (ConfluenceSearchOperator, {"cql": "type = page", "limit": 0}, "limit=0"),
    (ConfluenceSearchOperator, {"cql": "type = page", "limit": 251}, "between 1 and 250"),
    (ConfluenceSearchOperator, {"cql": "type = page", "max_results": 0}, "max_results=0"),
    (ConfluenceUploadAttachmentOperator, {"page_id": "1"}, "exactly one of file_path"),
    (ConfluenceUploadAttachmentOperator, {"page_id": "1", "file_path": "a", "data": "b"}, "exactly one of file_path"),
    (ConfluenceUploadAttachmentOperator, {"page_id": "1", "data": "b"}, "filename is required"),
    (ConfluenceUploadAttachmentOperator, {"title": "t", "file_path": "a"}, "Say which page"),
]


@pytest.mark.parametrize(
    ("operator", "kwargs", "message"),
    PARSE_ERRORS,
    ids=[f"{op.__name__}-{i}" for i, (op, _k, _m) in enumerate(PARSE_ERRORS)],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(operator, kwargs, message):
    with pytest.raises(ConfluenceConfigError, match=message):
        operator(task_id="t", **kwargs)


def test_arguments_are_keyword_only_and_templated():
    for operator in (
        ConfluenceCreatePageOperator,
        ConfluenceUpdatePageOperator,
        ConfluenceGetPageOperator,
        ConfluenceSearchOperator,
        ConfluenceUploadAttachmentOperator,
    ):
        with pytest.raises(Exception, match="keyword|positional"):
            operator("t")
        assert "confluence_conn_id" in operator.template_fields
    assert {
        "page_id",
        "space_key",
        "space_id",
        "title",
        "body",
        "new_title",
        "labels",
        "parent_id",
        "parent_title",
        "version_message",
    } <= set(ConfluenceUpdatePageOperator.template_fields)
    assert {"labels", "parent_title", "body"} <= set(ConfluenceCreatePageOperator.template_fields)
    assert {"file_path", "data", "filename", "comment", "page_id", "title"} <= set(
        ConfluenceUploadAttachmentOperator.template_fields
    )
    assert "cql" in ConfluenceSearchOperator.template_fields


def test_operators_that_end_on_a_page_offer_the_page_link():
    from airflow_provider_confluence.links.confluence import ConfluencePageLink

    for operator in (
        ConfluenceCreatePageOperator,
        ConfluenceUpdatePageOperator,
        ConfluenceGetPageOperator,
        ConfluenceUploadAttachmentOperator,
    ):
        assert [type(link) for link in operator.operator_extra_links] == [ConfluencePageLink]
    assert not ConfluenceSearchOperator.operator_extra_links


def test_labels_rendered_from_a_list_param_are_the_list(fake_atlassian, confluence_conn):
    """``labels="{{ params.labels }}"`` renders Python's text of the list, ``['daily', 'kpi']``: read as the list."""
    fake_atlassian.add_space("DEMO")
    with new_dag("rendered_labels", params={"labels": ["daily", "KPI"]}) as dag:
        ConfluenceCreatePageOperator(
            task_id="create", space_key="DEMO", title="Rendered", body="<p>x</p>", labels="{{ params.labels }}"
        )
    created = run_dag(dag)["return_value"]["create"]
    assert fake_atlassian.page_labels(created["id"]) == ["daily", "kpi"]
