"""The attacks of the security review, each replayed against the provider (SECURITY.md names these tests).

Each test plays the attacker with what that role really has: a connection editor edits fields of a
connection row (never seeing its secrets), a host on the network answers what it likes, a local process
opens sockets. An attack is shown to fail by what reached the attacker's host (``CaptureServer`` records
every request and connection), not by the error text alone.
"""

from __future__ import annotations

import json
import socket
import subprocess
from typing import Any

import pytest

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
from helpers.airflow_env import put_connection
from helpers.capture import CaptureServer, reroute

pytestmark = pytest.mark.airflow2


def _attempt(call: Any) -> ConfluenceError | None:
    try:
        call()
    except ConfluenceError as exc:
        return exc
    return None


# -- 1. the https check and the host urllib3 really connects to --------------------------------------------


def test_a_url_that_urlsplit_and_urllib3_read_differently_sends_nothing(fake_atlassian, airflow_db, monkeypatch):
    """``http://attacker.example:8080\\@127.0.0.1/...``: ``urlsplit`` reads the loopback host after the ``@``, so
    plain http passed the https check, while urllib3 (which sends the request) reads ``attacker.example:8080``
    before the backslash. The client secret and the refresh token went there in clear text."""
    with CaptureServer() as attacker:
        asked = reroute(monkeypatch, "attacker.example", 8080, ("127.0.0.1", attacker.port))
        conn = fake_atlassian.connection(
            "split_url", state_store="connection", grant_url="http://attacker.example:8080\\@127.0.0.1/oauth/token"
        )
        put_connection("split_url", conn)
        error = _attempt(lambda: ConfluenceOAuthHook("split_url").get_access_token())
    assert not attacker.requests, f"urllib3 sent {attacker.requests} to attacker.example over plain http"
    assert ("attacker.example", 8080) not in asked
    assert isinstance(error, ConfluenceConfigError), repr(error)
    assert "grant_url" in error.message and "backslash" in error.message
    assert fake_atlassian.counters["token_requests"] == 0


# -- 2. a connection editor points an endpoint at a host of their own ---------------------------------------


def edit_connection(
    conn_id: str, *, host: str | None = None, login: str | None = None, extra: dict[str, Any] | None = None
) -> None:
    """Save fields of the connection row the way the edit form does: in place (its journal stays)."""
    from airflow.models.connection import Connection
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(Connection).filter(Connection.conn_id == conn_id).one()
        if host is not None:
            row.host = host
        if login is not None:
            row.login = login
        if extra is not None:
            row.set_extra(json.dumps(extra))


def without_token_state(conn: dict[str, Any]) -> dict[str, Any]:
    """The connection's Extra with its token state cleared, as an editor who clears the secret fields leaves it."""
    return {k: v for k, v in conn["extra"].items() if k not in ("refresh_token", "access_token", "expires_at")}


def emulator_url(fake, extra: str) -> str:
    """The emulator's URL for the endpoint extra ``grant_url`` (its token endpoint) or ``api_url``."""
    return fake.token_url if extra == "grant_url" else getattr(fake, extra)


@pytest.mark.parametrize("field", ["grant_url", "api_url"])
def test_a_connection_editor_cannot_send_the_connections_tokens_to_a_host_of_their_own(
    field, fake_atlassian, airflow_db
):
    """The editor sees ``***`` for the client secret and the refresh token, but may point ``grant_url`` (or
    ``api_url``) at a host of their own and clear the Extra's token state: the rotation journal restored the newest
    rotated token and the provider sent it there, with the client secret (or the access token to ``api_url``)."""
    from airflow_provider_confluence.testing import FakeAtlassian

    fake_atlassian.add_space("DEMO")
    conn = fake_atlassian.connection("edited", state_store="connection")
    put_connection("edited", conn)
    ConfluenceOAuthHook("edited").get_conn().get_space_id("DEMO")  # a rotation, and the cloud id, on record
    with FakeAtlassian() as attacker:  # another loopback port: plain http to it passed the old check
        edit_connection("edited", extra={**without_token_state(conn), field: emulator_url(attacker, field)})
        error = _attempt(lambda: ConfluenceOAuthHook("edited").get_conn().get_space_id("DEMO"))
        reached, address = attacker.counters, attacker.allowed_endpoint_hosts
    assert (reached["token_requests"], reached["api_calls"], reached["accessible_resources_calls"]) == (0, 0, 0), (
        f"the attacker's host received {reached['token_requests']} token request(s) and {reached['api_calls']} API call(s)"
    )
    assert isinstance(error, ConfluenceConfigError), repr(error)
    assert f"{field} points at {address}" in error.message
    assert (
        "[confluence] allowed_endpoint_hosts" in error.message
        and "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS" in error.message
    )


@pytest.mark.parametrize("changed", ["grant_url", "api_url", "site", "client_id"])
def test_the_rotation_journal_never_hands_a_rotated_token_to_a_changed_connection(
    changed, fake_atlassian, airflow_db, monkeypatch
):
    """Even between two endpoints the deployment allows, a connection whose client ID, token URL, API URL or
    site changed and whose token state was cleared must not inherit the journal's rotated token."""
    from airflow_provider_confluence.exceptions import ConfluenceReauthorizationRequired
    from airflow_provider_confluence.testing import FakeAtlassian

    conn = fake_atlassian.connection("rebound", state_store="connection")
    put_connection("rebound", conn)
    ConfluenceOAuthHook("rebound").get_access_token()  # a rotation on record in the journal
    with FakeAtlassian() as other:
        monkeypatch.setenv(
            "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS",
            f"{fake_atlassian.allowed_endpoint_hosts},{other.allowed_endpoint_hosts}",
        )
        extra = without_token_state(conn)
        if changed in ("grant_url", "api_url"):
            extra[changed] = emulator_url(other, changed)
        edit_connection(
            "rebound",
            extra=extra,
            host="https://other-site.atlassian.net" if changed == "site" else None,
            login="another-client-id" if changed == "client_id" else None,
        )
        before = fake_atlassian.counters["token_requests"]
        error = _attempt(lambda: ConfluenceOAuthHook("rebound").get_access_token())
        sent = (
            other.counters["token_requests"],
            other.counters["api_calls"],
            fake_atlassian.counters["token_requests"] - before,
        )
    assert sent == (0, 0, 0), f"the changed connection redeemed the journal's rotated token {sent}"
    assert isinstance(error, ConfluenceReauthorizationRequired), repr(error)
    assert "has no refresh token" in error.message


def test_no_credential_is_ever_sent_to_the_site_url(airflow_db, monkeypatch):
    """The site URL may be any https host: it only makes links. A site on a capture server sees no connection
    at all (not even a TLS handshake) while the provider refreshes, reads, writes, uploads, searches and tests."""
    from airflow_provider_confluence.operators.confluence import (
        ConfluenceCreatePageOperator,
        ConfluenceSearchOperator,
        ConfluenceUploadAttachmentOperator,
    )
    from airflow_provider_confluence.testing import FakeAtlassian

    with CaptureServer() as site, FakeAtlassian(site_url=f"https://127.0.0.1:{site.port}") as fake:
        monkeypatch.setenv("AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS", fake.allowed_endpoint_hosts)
        fake.add_space("DEMO")
        put_connection("links_only", fake.connection("links_only", state_store="connection"))
        hook = ConfluenceOAuthHook("links_only")
        page = ConfluenceCreatePageOperator(
            task_id="create",
            space_key="DEMO",
            title="Report",
            body="<p>x</p>",
            labels=["report"],
            confluence_conn_id="links_only",
        ).execute({})
        ConfluenceUploadAttachmentOperator(
            task_id="upload", page_id=page["id"], data="a,b\n", filename="a.csv", confluence_conn_id="links_only"
        ).execute({})
        ConfluenceSearchOperator(task_id="search", cql="type = page", confluence_conn_id="links_only").execute({})
        hook.token_manager.refresh_rejected(hook.get_access_token())
        assert hook.test_connection()[0]
        assert page["url"].startswith(f"https://127.0.0.1:{site.port}/wiki/")
    assert (site.connections, site.requests) == (0, [])


# -- 4. a local process and the loopback server of ``airflow-confluence authorize`` ---------------------------


def test_a_silent_local_client_cannot_hold_authorize_past_its_timeout(fake_atlassian, airflow_db):
    """A local process opens a TCP connection to the command's loopback callback and sends nothing: the server,
    one request at a time, waited for it, and ``--timeout 2`` returned only when the client went away. The
    command must return while the silent client still holds its socket open (bounded: 60 s)."""
    from helpers.cli import Cli, raw_extra
    from helpers.processes import free_port

    port = free_port()
    put_connection(
        "silent",
        fake_atlassian.connection("silent", state_store="connection", redirect_uri=f"http://127.0.0.1:{port}/callback"),
    )
    before = raw_extra("silent")
    cli = Cli("authorize", "--conn-id", "silent", "--timeout", "2")
    cli.wait_for("Waiting up to")  # printed once the server listens
    with socket.create_connection(("127.0.0.1", port), timeout=10):  # connected, silent, held open
        try:
            code, _out, err = cli.finish(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail("authorize --timeout 2 was still waiting on the silent client after 60 s")
    assert code == 1, err
    assert "No answer from the browser within 2 s; nothing was changed." in err
    assert "Run the command again" in err
    assert raw_extra("silent") == before
    assert fake_atlassian.counters["token_requests"] == 0


# -- 5. redirects ---------------------------------------------------------------------------------------------

#: (route the redirect answers, status, the call) for every kind of write the client makes.
WRITES = {
    "create-page": (
        "POST /wiki/api/v2/pages",
        307,
        lambda hook, page: hook.create_page(space_key="DEMO", title="New", body="<p>the body</p>"),
    ),
    "update-page": (
        "PUT /wiki/api/v2/pages/{id}",
        308,
        lambda hook, page: hook.update_page(page_id=page["id"], body="<p>the new body</p>"),
    ),
    "upload-attachment": (
        "PUT /wiki/rest/api/content/{id}/child/attachment",
        307,
        lambda hook, page: hook.upload_attachment(page["id"], filename="a.csv", data=b"a,b\n"),
    ),
    "add-label": (
        "POST /wiki/rest/api/content/{id}/label",
        308,
        lambda hook, page: hook.add_labels(page["id"], ["reviewed"]),
    ),
}


def _demo(fake: Any, conn_id: str) -> tuple[ConfluenceOAuthHook, dict[str, Any]]:
    fake.add_space("DEMO")
    page = fake.add_page("DEMO", "Report", "<p>old</p>")
    put_connection(conn_id, fake.connection(conn_id, state_store="connection"))
    return ConfluenceOAuthHook(conn_id), page


@pytest.mark.parametrize("write", sorted(WRITES))
def test_a_write_never_follows_a_redirect(write, fake_atlassian, airflow_db):
    """A 307 or 308 answer to a POST or PUT made requests send the body again, to the new location."""
    from airflow_provider_confluence.exceptions import ConfluenceApiError

    route, status, call = WRITES[write]
    hook, page = _demo(fake_atlassian, "redirected_write")
    with CaptureServer(status=200, body={"id": "1"}) as elsewhere:
        fake_atlassian.fail_next(status, route=route, headers={"Location": f"{elsewhere.url}/wiki/captured"})
        error = _attempt(lambda: call(hook, page))
    assert elsewhere.requests == [], f"the {write} body was sent again to the redirect's host"
    assert isinstance(error, ConfluenceApiError) and error.status_code == status, repr(error)
    assert "writes never follow redirects" in error.message and "127.0.0.1" in error.message
    assert [p["version"]["number"] for p in fake_atlassian.pages if p["id"] == page["id"]] == [1]


def test_a_write_does_not_follow_a_redirect_even_to_the_same_host(fake_atlassian, airflow_db):
    hook, _page = _demo(fake_atlassian, "redirected_same_host")
    gateway = f"{fake_atlassian.api_url}/ex/confluence/{fake_atlassian.cloud_id}"
    fake_atlassian.fail_next(307, route="POST /wiki/api/v2/pages", headers={"Location": f"{gateway}/wiki/api/v2/pages"})
    error = _attempt(lambda: hook.create_page(space_key="DEMO", title="New", body="<p>x</p>"))
    assert error is not None and "writes never follow redirects" in error.message
    assert [p for p in fake_atlassian.pages if p["title"] == "New"] == []
    assert len([r for r in fake_atlassian.requests if r["route"] == "POST /wiki/api/v2/pages"]) == 1


@pytest.mark.parametrize("route", ["GET /wiki/api/v2/spaces", "GET /oauth/token/accessible-resources"])
def test_a_read_follows_a_redirect_only_on_the_same_host(route, fake_atlassian, airflow_db):
    """A read redirected to another host was followed there; on the gateway's own host it still is."""
    from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceAuthError

    hook, _page = _demo(fake_atlassian, "redirected_read")
    if route.endswith("accessible-resources"):
        read = lambda: hook.get_conn().get_space_id("DEMO")  # noqa: E731 - the cloud id is looked up first
    else:
        hook.get_conn().get_space_id("DEMO")
        read = lambda: hook.get_conn().get_space_id("DEMO")  # noqa: E731
    with CaptureServer(status=200, body={"results": [{"id": "666", "key": "DEMO"}]}) as elsewhere:
        fake_atlassian.fail_next(302, route=route, headers={"Location": f"{elsewhere.url}/captured?keys=DEMO"})
        error = _attempt(read)
    assert elsewhere.requests == [], "a read followed a redirect to another host"
    assert isinstance(error, (ConfluenceApiError, ConfluenceAuthError)) and error.status_code == 302, repr(error)

    gateway = f"{fake_atlassian.api_url}/ex/confluence/{fake_atlassian.cloud_id}"
    fake_atlassian.fail_next(
        302, route="GET /wiki/api/v2/spaces", headers={"Location": f"{gateway}/wiki/api/v2/spaces?keys=DEMO"}
    )
    assert hook.get_conn().get_space_id("DEMO") == next(s["id"] for s in fake_atlassian.spaces if s["key"] == "DEMO")


def test_a_redirect_loop_on_the_same_host_ends(fake_atlassian, airflow_db):
    from airflow_provider_confluence.config.endpoints import MAX_REDIRECTS
    from airflow_provider_confluence.exceptions import ConfluenceApiError

    hook, _page = _demo(fake_atlassian, "redirect_loop")
    hook.get_conn().get_space_id("DEMO")
    gateway = f"{fake_atlassian.api_url}/ex/confluence/{fake_atlassian.cloud_id}"
    fake_atlassian.fail_next(
        302,
        times=MAX_REDIRECTS + 3,
        route="GET /wiki/api/v2/spaces",
        headers={"Location": f"{gateway}/wiki/api/v2/spaces?keys=DEMO"},
    )
    before = fake_atlassian.counters["api_calls"]
    error = _attempt(lambda: hook.get_conn().get_space_id("DEMO"))
    assert isinstance(error, ConfluenceApiError) and "stopping instead of looping" in error.message
    assert fake_atlassian.counters["api_calls"] - before == MAX_REDIRECTS + 1


# -- file_path: which of the worker's files a task may upload ----------------------------------------------------


def test_file_path_outside_attachment_roots_is_refused(fake_atlassian, airflow_db, monkeypatch, tmp_path):
    """``file_path`` is templated: whoever sets it (a DAG author, or a ``dag_run.conf`` value a DAG passes on)
    could upload any file the worker can read, such as ``/proc/self/environ`` (the worker's environment, with
    Airflow's secrets). With ``[confluence] attachment_roots`` set, only files under those folders go, after
    symlinks and ``..`` are resolved."""
    from airflow_provider_confluence.operators.confluence import ConfluenceUploadAttachmentOperator

    reports, private = tmp_path / "reports", tmp_path / "private"
    reports.mkdir()
    private.mkdir()
    (reports / "metrics.csv").write_bytes(b"a,b\n1,2\n")
    (private / "secret.txt").write_bytes(b"not for Confluence\n")
    (reports / "innocent.csv").symlink_to(private / "secret.txt")
    (reports / "also-metrics.csv").symlink_to(reports / "metrics.csv")
    monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", f"{reports}, /nonexistent-root")
    _hook, page = _demo(fake_atlassian, "uploads")

    def upload(path: str) -> ConfluenceError | None:
        return _attempt(
            lambda: ConfluenceUploadAttachmentOperator(
                task_id="upload", page_id=page["id"], file_path=path, confluence_conn_id="uploads"
            ).execute({})
        )

    for path in ("/proc/self/environ", f"{reports}/../private/secret.txt", f"{reports}/innocent.csv"):
        error = upload(path)
        assert fake_atlassian.attachments(page["id"]) == [], f"{path} was uploaded"
        assert isinstance(error, ConfluenceConfigError), repr(error)
        assert "outside [confluence] attachment_roots" in error.message and "nothing was uploaded" in error.message

    assert upload(f"{reports}/metrics.csv") is None
    assert upload(f"{reports}/also-metrics.csv") is None  # a symlink that stays under the root
    assert [a["title"] for a in fake_atlassian.attachments(page["id"])] == ["metrics.csv", "also-metrics.csv"]
    assert fake_atlassian.attachment_data(page["id"], "metrics.csv") == b"a,b\n1,2\n"


@pytest.mark.parametrize("roots", ["reports", "/srv/reports, ./tmp"])
def test_a_relative_attachment_root_is_refused_and_named(roots, fake_atlassian, airflow_db, monkeypatch, tmp_path):
    from airflow_provider_confluence.operators.confluence import ConfluenceUploadAttachmentOperator

    (tmp_path / "a.csv").write_bytes(b"a\n")
    monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", roots)
    _hook, page = _demo(fake_atlassian, "uploads_relative")
    error = _attempt(
        lambda: ConfluenceUploadAttachmentOperator(
            task_id="upload",
            page_id=page["id"],
            file_path=str(tmp_path / "a.csv"),
            confluence_conn_id="uploads_relative",
        ).execute({})
    )
    assert isinstance(error, ConfluenceConfigError), repr(error)
    assert "[confluence] attachment_roots" in error.message and "not an absolute path" in error.message
    assert fake_atlassian.attachments(page["id"]) == []


# -- the network: a host that is not who it claims to be ----------------------------------------------------------


def test_a_listed_endpoint_with_an_untrusted_certificate_receives_no_request(fake_atlassian, airflow_db, monkeypatch):
    """Listing a host lets credentials go to it over verified TLS only: a self-signed certificate (a host in the
    middle) fails the handshake, and no request, so no secret, is sent. Nothing in the provider turns requests'
    certificate verification off."""
    from airflow_provider_confluence.exceptions import ConfluenceAuthError

    with CaptureServer(status=200, body={"access_token": "x", "expires_in": 3600}, tls=True) as impostor:
        monkeypatch.setenv(
            "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS",
            f"{fake_atlassian.allowed_endpoint_hosts},127.0.0.1:{impostor.port}",
        )
        put_connection(
            "impostor",
            fake_atlassian.connection("impostor", state_store="connection", grant_url=f"{impostor.url}/oauth/token"),
        )
        error = _attempt(lambda: ConfluenceOAuthHook("impostor").get_access_token())
    assert impostor.requests == []
    assert isinstance(error, ConfluenceAuthError) and "could not be reached (SSLError)" in error.message, repr(error)


# -- SECURITY.md ------------------------------------------------------------------------------------------------


def test_every_test_security_md_cites_exists():
    """SECURITY.md names, for each promise, the test that shows it: each name must be a test of that file."""
    import ast
    import re

    from helpers.airflow_env import REPO

    text = (REPO / "SECURITY.md").read_text(encoding="utf-8")
    cited = re.findall(r"`tests/((?:unit|integration|system)/test_\w+\.py)::([\w:]+)`", text)
    assert len(cited) >= 40, len(cited)
    for filename, name in cited:
        tree = ast.parse((REPO / "tests" / filename).read_text(encoding="utf-8"))
        *classes, function = name.split("::")
        scope: list[ast.stmt] = tree.body
        for cls in classes:
            scope = next(n.body for n in scope if isinstance(n, ast.ClassDef) and n.name == cls)
        assert function.startswith("test_") and any(
            isinstance(n, ast.FunctionDef) and n.name == function for n in scope
        ), f"{filename}::{name}"
    for path in re.findall(r"`(tests/[\w/]+\.py)`", text):
        assert (REPO / path).is_file(), path


def test_a_broker_url_of_the_editors_choosing_receives_no_secret(fake_atlassian, airflow_db, monkeypatch):
    """``broker_url`` may name any Airflow API server (it is not pinned): an editor may point it at a host of
    their own. What a worker sends there is a signed request that holds no secret: no client secret, refresh or
    access token, nor the connection's broker key."""
    from helpers.airflow_env import airflow_major, read_connection_extra

    if airflow_major() < 3:
        pytest.skip("task workers ask the token broker on Airflow 3 only")
    from airflow_provider_confluence.auth.stores import choice as stores

    conn = fake_atlassian.connection("editor_broker")
    put_connection("editor_broker", conn)
    ConfluenceOAuthHook("editor_broker").get_access_token()  # a rotation: the row holds every kind of secret
    extra = read_connection_extra("editor_broker")
    secrets = [
        fake_atlassian.client_secret,
        conn["extra"]["refresh_token"],
        extra["refresh_token"],
        extra["access_token"],
        extra.get("broker_secret") or "",
    ]
    monkeypatch.setattr(stores, "orm_available", lambda: False)  # this process now plays a task worker
    with CaptureServer(status=401, body={"error": "invalid_signature", "detail": "not this deployment"}) as editor:
        edit_connection("editor_broker", extra={**extra, "broker_url": editor.url})
        hook = ConfluenceOAuthHook("editor_broker")
        hook.token_manager._sleep = lambda seconds: None
        _attempt(hook.get_access_token)
    assert editor.requests, "the worker sent nothing: this test would show nothing"
    for captured in editor.requests:
        sent = captured.body.decode(errors="replace") + json.dumps(captured.headers)
        assert not [secret for secret in secrets if secret and secret in sent], f"{captured} holds a secret"


def test_output_path_outside_attachment_roots_is_refused(fake_atlassian, airflow_db, monkeypatch, tmp_path):
    """``output_path`` of the download and export operators is templated too: a value from ``dag_run.conf`` could
    overwrite any file the worker may write (a DAG file, a shell profile), through a symlink as well. With
    ``[confluence] attachment_roots`` set, only files under those folders are written; nothing outside changes."""
    from airflow_provider_confluence.operators.confluence import (
        ConfluenceDownloadAttachmentOperator,
        ConfluenceExportPageOperator,
    )

    exports, dags = tmp_path / "exports", tmp_path / "dags"
    exports.mkdir()
    dags.mkdir()
    dag_file = dags / "a_dag.py"
    dag_file.write_bytes(b"# the original DAG\n")
    (exports / "innocent.bin").symlink_to(dag_file)
    monkeypatch.setenv("AIRFLOW__CONFLUENCE__ATTACHMENT_ROOTS", str(exports))
    hook, page = _demo(fake_atlassian, "downloads")
    hook.upload_attachment(page["id"], filename="a.bin", data=b"downloaded payload")

    def download(path: str) -> ConfluenceError | None:
        return _attempt(
            lambda: ConfluenceDownloadAttachmentOperator(
                task_id="download",
                page_id=page["id"],
                filename="a.bin",
                output_path=path,
                confluence_conn_id="downloads",
            ).execute({})
        )

    def export(path: str) -> ConfluenceError | None:
        return _attempt(
            lambda: ConfluenceExportPageOperator(
                task_id="export", page_id=page["id"], output_path=path, confluence_conn_id="downloads"
            ).execute({})
        )

    for write in (download, export):
        for path in (str(dag_file), f"{exports}/../dags/a_dag.py", f"{exports}/innocent.bin"):
            error = write(path)
            assert dag_file.read_bytes() == b"# the original DAG\n", f"{write.__name__} to {path} overwrote it"
            assert isinstance(error, ConfluenceConfigError), repr(error)
            assert "outside [confluence] attachment_roots" in error.message and "nothing was" in error.message

    assert download(f"{exports}/a.bin") is None and (exports / "a.bin").read_bytes() == b"downloaded payload"
    assert (
        export(f"{exports}/page.json") is None and json.loads((exports / "page.json").read_text())["id"] == page["id"]
    )
