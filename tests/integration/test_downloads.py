"""Attachment download (to a file, or base64 for XCom) and page export, through the gateway with the OAuth
token, in a real DAG run on Airflow 2.11 and 3.x; the emulator's download route and its scope."""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import (
    ConfluenceAttachmentMissing,
    ConfluenceConfigError,
    ConfluenceError,
    ConfluenceNotFound,
    ConfluenceScopeError,
)
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from airflow_provider_confluence.operators.confluence import (
    ConfluenceDownloadAttachmentOperator,
    ConfluenceExportPageOperator,
)
from airflow_provider_confluence.testing import DEFAULT_SCOPES
from helpers.airflow_env import put_connection
from helpers.dags import new_dag, run_dag

pytestmark = pytest.mark.airflow2

DOWNLOAD = "GET /wiki/download/attachments/{id}/{filename}"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def seeded(fake: Any, conn_id: str) -> dict[str, Any]:
    """A page in DEMO with two attachments, uploaded through the provider (a second version of one)."""
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Quarterly report", "<p>Figures &amp; charts</p>", labels=["report"])
    hook = ConfluenceOAuthHook(conn_id)
    hook.upload_attachment(page["id"], filename="chart v1.png", data=b"old")
    hook.upload_attachment(page["id"], filename="chart v1.png", data=PNG)
    hook.upload_attachment(page["id"], filename="rows.csv", data=b"a,b\n1,2\n")
    return page


def test_download_and_export_in_a_dag_run(fake_atlassian, confluence_conn, tmp_path):
    page = seeded(fake_atlassian, confluence_conn)
    with new_dag("downloads", params={"file": "chart v1.png"}) as dag:
        ConfluenceDownloadAttachmentOperator(
            task_id="to_xcom", space_key="DEMO", title="Quarterly report", filename="{{ params.file }}"
        )
        ConfluenceDownloadAttachmentOperator(
            task_id="to_file", page_id=page["id"], filename="rows.csv", output_path=str(tmp_path / "{{ ds }}-rows.csv")
        )
        ConfluenceExportPageOperator(
            task_id="export",
            page_id=page["id"],
            body_format="atlas_doc_format",
            output_path=str(tmp_path / "export.json"),
        )
    stored = run_dag(dag)["return_value"]
    as_xcom = stored["to_xcom"]
    assert base64.b64decode(as_xcom["content_base64"]) == PNG
    assert as_xcom["sha256"] == hashlib.sha256(PNG).hexdigest()
    assert (as_xcom["title"], as_xcom["version"], as_xcom["page_id"]) == ("chart v1.png", 2, page["id"])
    to_file = stored["to_file"]
    assert open(to_file["path"], "rb").read() == b"a,b\n1,2\n" and "content_base64" not in to_file
    export = stored["export"]
    assert export["body_format"] == "atlas_doc_format" and json.loads(export["body"])["type"] == "doc"
    assert export["labels"] == ["report"] and export["version"] == 1 and export["id"] == page["id"]
    assert json.loads((tmp_path / "export.json").read_text())["body"] == export["body"]

    downloads = [r for r in fake_atlassian.requests if r["route"] == DOWNLOAD]
    assert len(downloads) == 2  # through the gateway (/ex/confluence/{cloudId}/wiki/download/...), with the token
    assert all(r["path"].startswith(f"/wiki/download/attachments/{page['id']}/") for r in downloads)
    assert fake_atlassian.counters["api_calls_by_route"][DOWNLOAD] == 2


def test_export_in_storage_format_by_title(fake_atlassian, confluence_conn):
    seeded(fake_atlassian, confluence_conn)
    op = ConfluenceExportPageOperator(task_id="e", space_key="DEMO", title="Quarterly report")
    result = op.execute({})
    assert result["body"] == "<p>Figures &amp; charts</p>"
    assert result["sha256"] == hashlib.sha256(result["body"].encode()).hexdigest()
    assert {"created_at", "version_created_at", "author_id", "status", "parent_id"} <= set(result)
    json.dumps(result)


def test_too_large_for_xcom_fails_before_downloading(fake_atlassian, confluence_conn):
    page = seeded(fake_atlassian, confluence_conn)
    op = ConfluenceDownloadAttachmentOperator(
        task_id="d", page_id=page["id"], filename="chart v1.png", max_xcom_bytes=10
    )
    with pytest.raises(ConfluenceConfigError, match="Give output_path"):
        op.execute({})
    assert fake_atlassian.counters["api_calls_by_route"].get(DOWNLOAD, 0) == 0


def test_a_missing_attachment_is_not_found(fake_atlassian, confluence_conn):
    page = seeded(fake_atlassian, confluence_conn)
    op = ConfluenceDownloadAttachmentOperator(task_id="d", page_id=page["id"], filename="Rows.csv")
    with pytest.raises(ConfluenceAttachmentMissing, match="no attachment named 'Rows.csv'") as caught:
        op.execute({})
    assert (caught.value.page_id, caught.value.filename, caught.value.status_code) == (page["id"], "Rows.csv", None)


def test_a_missing_output_directory_fails_before_any_request(fake_atlassian, confluence_conn, tmp_path):
    before = fake_atlassian.counters["api_calls"]
    op = ConfluenceDownloadAttachmentOperator(
        task_id="d", page_id="1", filename="a.csv", output_path=str(tmp_path / "nope" / "a.csv")
    )
    with pytest.raises(ConfluenceConfigError, match="directory that does not exist"):
        op.execute({})
    assert fake_atlassian.counters["api_calls"] == before


def test_the_download_route_checks_its_scope(fake_atlassian, airflow_db):
    put_connection("full", fake_atlassian.connection("full"))
    page = seeded(fake_atlassian, "full")
    narrow = DEFAULT_SCOPES.replace("read:attachment:confluence", "").replace("  ", " ")
    put_connection("narrow", fake_atlassian.connection("narrow", scopes=narrow))
    attachment = {"id": "att1", "downloadLink": f"/download/attachments/{page['id']}/rows.csv?version=1&api=v2"}
    assert ConfluenceOAuthHook("full").download_attachment(attachment) == b"a,b\n1,2\n"
    with pytest.raises(ConfluenceScopeError):
        ConfluenceOAuthHook("narrow").download_attachment(attachment)
    stale = {"id": "att1", "downloadLink": f"/download/attachments/{page['id']}/rows.csv?version=7"}
    with pytest.raises(ConfluenceNotFound):
        ConfluenceOAuthHook("full").download_attachment(stale)


def test_a_link_to_the_site_host_is_refused_before_sending(fake_atlassian, confluence_conn):
    client = ConfluenceOAuthHook(confluence_conn).get_conn()
    before = fake_atlassian.counters["api_calls"]
    for link in (f"{fake_atlassian.site_url}/wiki/download/attachments/1/a.csv", "https://evil.example/a.csv"):
        with pytest.raises(ConfluenceError):
            client.download(link)
    with pytest.raises(ConfluenceError, match="no download link"):
        client.download_attachment({"id": "att9"})
    assert fake_atlassian.counters["api_calls"] == before


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: ConfluenceDownloadAttachmentOperator(task_id="d", page_id="1", filename=" "), "filename is empty"),
        (lambda: ConfluenceDownloadAttachmentOperator(task_id="d", filename="a.csv"), "Say which page"),
        (
            lambda: ConfluenceDownloadAttachmentOperator(task_id="d", page_id="1", filename="a", max_xcom_bytes=0),
            "max_xcom_bytes=0",
        ),
        (lambda: ConfluenceExportPageOperator(task_id="e", page_id="1", body_format="view"), "body_format='view'"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(make, words):
    with pytest.raises(ConfluenceConfigError, match=words):
        make()


def test_the_operators_are_templated_with_the_connection():
    for operator in (ConfluenceDownloadAttachmentOperator, ConfluenceExportPageOperator):
        assert "confluence_conn_id" in operator.template_fields and "output_path" in operator.template_fields
