"""Footer comments: the emulator's two v2 routes (scopes, 201, 404, cursor pages), the client and hook methods,
and ``ConfluenceAddCommentOperator`` in a real DAG run (once per run) on Airflow 2.11 and 3.x."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import requests

from airflow_provider_confluence.exceptions import (
    ConfluenceConfigError,
    ConfluenceError,
    ConfluencePageMissing,
    ConfluenceScopeError,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import ConfluenceAddCommentOperator
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.dags import new_dag, run_dag
from helpers.gateway import gateway_call

pytestmark = pytest.mark.airflow2

COMMENT_SCOPES = f"{DEFAULT_SCOPES} read:comment:confluence write:comment:confluence"
POST = "POST /wiki/api/v2/footer-comments"
LIST = "GET /wiki/api/v2/pages/{id}/footer-comments"


@pytest.fixture
def comments_conn(fake_atlassian: Any, airflow_db: Any) -> str:
    """``confluence_default`` with a grant that includes the comment scopes."""
    put_connection("confluence_default", fake_atlassian.connection("confluence_default", scopes=COMMENT_SCOPES))
    return "confluence_default"


def api(fake: Any, method: str, path: str, scopes: str = COMMENT_SCOPES, **kwargs: Any) -> requests.Response:
    return gateway_call(fake, method, path, scopes, **kwargs)


# -- the emulator ------------------------------------------------------------------------------------------


def test_the_emulator_adds_and_lists_comments_with_cursor_pages(fake_atlassian):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    for n in range(3):
        answer = api(
            fake_atlassian,
            "POST",
            "/wiki/api/v2/footer-comments",
            json={"pageId": page["id"], "body": {"representation": "storage", "value": f"<p>c{n}</p>"}},
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["pageId"] == page["id"] and answer.json()["_links"]["base"].endswith("/wiki")
    first = api(
        fake_atlassian,
        "GET",
        f"/wiki/api/v2/pages/{page['id']}/footer-comments",
        params={"limit": 2, "body-format": "storage"},
    )
    assert first.status_code == 200
    assert [c["body"]["storage"]["value"] for c in first.json()["results"]] == ["<p>c0</p>", "<p>c1</p>"]
    assert "cursor=" in first.json()["_links"]["next"]
    assert [c["body"]["storage"]["value"] for c in fake_atlassian.footer_comments(page["id"])][-1] == "<p>c2</p>"
    assert next(p for p in fake_atlassian.pages if p["id"] == page["id"])["version"]["number"] == 1


@pytest.mark.parametrize(
    ("method", "path", "scope"),
    [
        ("POST", "/wiki/api/v2/footer-comments", "write:comment:confluence"),
        ("GET", "/wiki/api/v2/pages/{id}/footer-comments", "read:comment:confluence"),
    ],
)
def test_the_emulator_checks_the_scopes_of_each_route(fake_atlassian, method, path, scope):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    body = {"pageId": page["id"], "body": {"representation": "storage", "value": "<p>x</p>"}}
    answer = api(
        fake_atlassian,
        method,
        path.replace("{id}", page["id"]),
        scopes=DEFAULT_SCOPES,
        json=body if method == "POST" else None,
    )
    assert answer.status_code == 401 and "scope" in answer.text.lower()
    assert fake_atlassian.footer_comments(page["id"]) == []


def test_the_emulator_refuses_a_missing_page_and_a_bad_body(fake_atlassian):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    missing = api(
        fake_atlassian,
        "POST",
        "/wiki/api/v2/footer-comments",
        json={"pageId": "999999", "body": {"representation": "storage", "value": "<p>x</p>"}},
    )
    assert missing.status_code == 404
    empty = api(
        fake_atlassian,
        "POST",
        "/wiki/api/v2/footer-comments",
        json={"pageId": page["id"], "body": {"representation": "storage", "value": " "}},
    )
    assert empty.status_code == 400
    reply = api(
        fake_atlassian,
        "POST",
        "/wiki/api/v2/footer-comments",
        json={"parentCommentId": "1", "body": {"representation": "storage", "value": "<p>x</p>"}},
    )
    assert reply.status_code == 400
    assert api(fake_atlassian, "GET", "/wiki/api/v2/pages/999999/footer-comments").status_code == 404


# -- client and hook ---------------------------------------------------------------------------------------


def test_the_hook_adds_markdown_and_lists_every_comment(fake_atlassian, comments_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    hook = ConfluenceOAuthHook(comments_conn)
    added = hook.add_footer_comment(page["id"], "Rows: **42** <b>", representation="markdown")
    assert added["pageId"] == page["id"] and added["id"].isdigit()
    (comment,) = list(hook.list_footer_comments(page["id"]))
    assert comment["body"]["storage"]["value"].startswith("<p>Rows: <strong>42</strong> &lt;b&gt;")
    assert fake_atlassian.counters["api_calls_by_route"][POST] == 1


def test_the_client_refuses_bad_input_before_sending(fake_atlassian, comments_conn):
    client = ConfluenceOAuthHook(comments_conn).get_conn()
    before = fake_atlassian.counters["api_calls"]
    for kwargs in (
        {"page_id": "12a", "body": "<p>x</p>"},
        {"page_id": "1", "body": "  "},
        {"page_id": "1", "body": "x", "representation": "markdown"},
    ):
        with pytest.raises(ConfluenceConfigError):
            client.add_footer_comment(**kwargs)
    with pytest.raises(ConfluenceConfigError, match="not a page id"):
        list(client.list_footer_comments("../pages"))
    assert fake_atlassian.counters["api_calls"] == before


def test_a_grant_without_the_comment_scope_is_a_scope_error(fake_atlassian, confluence_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    with pytest.raises(ConfluenceScopeError, match="write:comment:confluence"):
        ConfluenceOAuthHook(confluence_conn).add_footer_comment(page["id"], "<p>x</p>")


def test_a_comment_post_is_not_resent_after_a_5xx(fake_atlassian, comments_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report")
    fake_atlassian.fail_next(502, route=POST, landed=True)
    with pytest.raises(ConfluenceError):
        ConfluenceOAuthHook(comments_conn).add_footer_comment(page["id"], "<p>x</p>")
    assert len(fake_atlassian.footer_comments(page["id"])) == 1  # landed once, never re-sent
    assert fake_atlassian.counters["api_calls_by_route"][POST] == 1


# -- the operator ------------------------------------------------------------------------------------------


def test_the_operator_comments_once_per_run_in_a_dag_run(fake_atlassian, comments_conn):
    fake_atlassian.add_space("DEMO")
    page = fake_atlassian.add_page("DEMO", "Report 2026-05-01")
    with new_dag("comment", params={"day": "2026-05-01"}) as dag:
        ConfluenceAddCommentOperator(
            task_id="comment",
            space_key="DEMO",
            title="Report {{ params.day }}",
            body="Checked **{{ params.day }}**: ok",
            representation="markdown",
        )
        ConfluenceAddCommentOperator(task_id="again", page_id=page["id"], body="<p>second task</p>")
    stored = run_dag(dag)
    result = stored["return_value"]["comment"]
    assert result["action"] == "created" and result["page_id"] == page["id"]
    assert result["url"].startswith(f"{fake_atlassian.site_url}/wiki/") and result["id"].isdigit()
    comments = fake_atlassian.footer_comments(page["id"])
    assert len(comments) == 2
    (checked,) = [c for c in comments if "Checked <strong>2026-05-01</strong>: ok" in c["body"]["storage"]["value"]]
    assert checked["id"] == result["id"]

    op = ConfluenceAddCommentOperator(task_id="comment", page_id=page["id"], body="<p>retry</p>")
    ti = SimpleNamespace(
        dag_id=dag.dag_id, task_id="again", run_id="manual__x", map_index=-1, xcom_push=lambda *args, **kwargs: None
    )
    first = op.execute({"ti": ti})
    retried = op.execute({"ti": ti})  # a retry of the same run: the comment is there already
    assert (first["action"], retried["action"], retried["id"]) == ("created", "skipped", first["id"])
    assert len(fake_atlassian.footer_comments(page["id"])) == 3


def test_a_missing_page_is_not_found_and_nothing_is_posted(fake_atlassian, comments_conn):
    fake_atlassian.add_space("DEMO")
    op = ConfluenceAddCommentOperator(task_id="c", space_key="DEMO", title="Nope", body="<p>x</p>")
    with pytest.raises(ConfluencePageMissing, match="Nope"):
        op.execute({})
    assert fake_atlassian.counters["api_calls_by_route"].get(POST, 0) == 0


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"body": "<p>x</p>"}, "Say which page"),
        ({"page_id": "1", "body": " "}, "body is empty"),
        ({"page_id": "1", "body": "x", "representation": "table"}, "representation='table' is not one of"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, words):
    with pytest.raises(ConfluenceConfigError, match=words):
        ConfluenceAddCommentOperator(task_id="c", **kwargs)


def test_the_operator_is_keyword_only_and_templated():
    assert "confluence_conn_id" in ConfluenceAddCommentOperator.template_fields
    assert "body" in ConfluenceAddCommentOperator.template_fields
    with pytest.raises(Exception, match="keyword|positional"):  # TypeError on 3.x, AirflowException on 2.11
        ConfluenceAddCommentOperator("c")  # type: ignore[misc]
