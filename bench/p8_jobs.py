"""The client side of row P8 of ``make bench``: each operation done by this provider and by atlassian-python-api
5.0.5, against an emulator in this process, with the requests it answered counted per operation.

    python bench/p8_jobs.py PORT      prints one line of JSON: {"provider": {op: counts}, "peer": {op: counts}}

The emulator listens on PORT (the run's one allowed loopback port). Every operation starts from the same state:
a space ``P8`` with a home page and a page ``Reports`` under it; the provider's token and cloud id are already
in its token state (as in any task after the connection's first use), so only API requests are expected.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

from airflow_provider_confluence.testing import FakeAtlassian

SPACE, PEER_SPACE, PARENT, TITLE, MISSING = "P8", "APA", "Reports", "Weekly report", "Not there yet"
LABELS = ["weekly", "report"]
BODY, BODY2, LINE = "<p>Week 1</p>", "<p>Week 2</p>", "<p>One more line</p>"
FILENAME, DATA = "figures.csv", b"week,value\n1,42\n"
CQL = f'space = "{SPACE}" AND title = "{TITLE}"'  # the provider's page; the peer looks in its space
PEER_CQL = CQL.replace(f'"{SPACE}"', f'"{PEER_SPACE}"')
OPERATIONS = ("create", "rerun", "replace", "append", "attachment", "search", "poke")


def counted(fake: FakeAtlassian, action: Callable[[], Any], *, may_fail: bool = False) -> dict[str, Any]:
    """Run ``action``; return the API requests it made (method and route each), the token and
    accessible-resources requests, and how it ended (a failure is recorded when ``may_fail``, else raised)."""
    fake.reset_counters()
    outcome = "ok"
    try:
        action()
    except Exception as exc:
        if not may_fail:
            raise
        status = getattr(getattr(exc, "response", None), "status_code", None)
        outcome = f"fails: {type(exc).__name__}" + (f" (HTTP {status})" if status else "")
    counters = fake.counters
    calls = [f"{r['route']} -> {r['status']}" for r in fake.requests if "/wiki/" in r["route"]]
    return {
        "requests": counters["api_calls"],
        "token_requests": counters["token_requests"],
        "accessible_resources": counters["accessible_resources_calls"],
        "calls": calls,
        "outcome": outcome,
    }


# -- this provider: the operators and the sensor, as a task runs them ---------------------------------------


def provider_jobs(fake: FakeAtlassian, conn_id: str) -> dict[str, dict[str, Any]]:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook
    from airflow_provider_confluence.operators.confluence import (
        ConfluenceCreatePageOperator,
        ConfluenceSearchOperator,
        ConfluenceUpdatePageOperator,
        ConfluenceUploadAttachmentOperator,
    )
    from airflow_provider_confluence.sensors.confluence import ConfluencePageSensor

    hook = ConfluenceOAuthHook(conn_id)  # the connection's first use: its token and cloud id, kept (uncounted)
    hook.get_access_token()
    _ = hook.get_conn().cloud_id
    # what the operators use of a running task instance: its key (append's anchor) and XCom (the page link)
    ti = SimpleNamespace(dag_id="p8", task_id="append", run_id="bench", map_index=-1, xcom_push=lambda **_: None)
    context: dict[str, Any] = {"ti": ti}
    page: dict[str, Any] = {}

    def create() -> None:
        op = ConfluenceCreatePageOperator(
            task_id="create",
            space_key=SPACE,
            title=TITLE,
            body=BODY,
            parent_title=PARENT,
            labels=LABELS,
            if_exists="update",
            confluence_conn_id=conn_id,
        )
        page.update(op.execute(context))

    def replace() -> None:
        op = ConfluenceUpdatePageOperator(task_id="replace", page_id=page["id"], body=BODY2, confluence_conn_id=conn_id)
        op.execute(context)

    def append() -> None:
        op = ConfluenceUpdatePageOperator(
            task_id="append", page_id=page["id"], body=LINE, mode="append", confluence_conn_id=conn_id
        )
        op.execute(context)

    def upload() -> None:
        op = ConfluenceUploadAttachmentOperator(
            task_id="attach", page_id=page["id"], data=DATA, filename=FILENAME, confluence_conn_id=conn_id
        )
        op.execute(context)

    def search() -> None:
        found = ConfluenceSearchOperator(task_id="search", cql=CQL, confluence_conn_id=conn_id).execute(context)
        assert len(found) == 1, found

    def poke() -> None:
        sensor = ConfluencePageSensor(task_id="wait", space_key=SPACE, title=MISSING, confluence_conn_id=conn_id)
        result = sensor.poke(context)
        assert not getattr(result, "is_done", result), result

    out = {"create": counted(fake, create), "rerun": counted(fake, create)}
    out["replace"] = counted(fake, replace)
    out["append"] = counted(fake, append)
    upload()  # the first upload, uncounted: the counted one finds the same bytes already there
    out["attachment"] = counted(fake, upload)
    out["search"] = counted(fake, search)
    out["poke"] = counted(fake, poke)
    return out


# -- atlassian-python-api 5.0.5 -------------------------------------------------------------------------------


def peer_jobs(fake: FakeAtlassian, token: str) -> dict[str, dict[str, Any]]:
    """The same jobs, written the way its documentation shows: its Cloud v2 client (what ``Confluence(url,
    token=...)`` returns for an API-gateway URL), and its v1 client (``ConfluenceServer``) for what the v2 client
    has no working method for (labels, attachments, CQL), since Confluence Cloud still serves those v1 endpoints."""
    from atlassian import Confluence
    from atlassian.confluence import ConfluenceServer

    wiki = f"{fake.api_url}/ex/confluence/{fake.cloud_id}/wiki"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        v2 = Confluence(wiki, token=token, api_version=2)
        v1 = ConfluenceServer(wiki, token=token)
    page: dict[str, Any] = {}

    def create() -> None:
        space_id = v2.get_space_by_key(PEER_SPACE)["id"]
        parent_id = v2.get_page_id(PEER_SPACE, PARENT)
        existing = v2.get_page_id(PEER_SPACE, TITLE)
        if existing is None:
            created = v2.create_page(space_id, TITLE, BODY, parent_id=parent_id)
            page["id"] = str(created["id"])
        else:
            page["id"] = existing
            current = v2.get_page_by_id(existing, body_format="storage")
            if current["body"]["storage"]["value"] != BODY:
                v2.update_page(existing, title=TITLE, body=BODY, version=current["version"]["number"])
        for label in LABELS:
            v1.set_page_label(page["id"], label)

    def replace() -> None:  # update_page() without version= asks for body-format=none, which Cloud refuses
        current = v2.get_page_by_id(page["id"], body_format="storage")
        v2.update_page(page["id"], title=TITLE, body=BODY2, version=current["version"]["number"])

    def append() -> None:
        current = v2.get_page_by_id(page["id"], body_format="storage")
        body = current["body"]["storage"]["value"] + LINE
        v2.update_page(page["id"], title=TITLE, body=body, version=current["version"]["number"])

    def upload() -> None:
        v1.attach_content(DATA, name=FILENAME, content_type="text/csv", page_id=page["id"])

    def search() -> None:
        found = v1.cql(PEER_CQL)["results"]
        assert len(found) == 1, found

    def poke() -> None:
        assert v2.get_page_id(PEER_SPACE, MISSING) is None

    out = {"create": counted(fake, create, may_fail=True), "rerun": counted(fake, create, may_fail=True)}
    out["replace"] = counted(fake, replace, may_fail=True)
    out["append"] = counted(fake, append, may_fail=True)
    upload()
    out["attachment"] = counted(fake, upload, may_fail=True)
    out["search"] = counted(fake, search, may_fail=True)
    out["poke"] = counted(fake, poke, may_fail=True)
    # what its v2 client offers for these two, which Confluence Cloud does not serve (api/v2/search, and label
    # writes through api/v2/pages/{id}/labels)
    out["search_v2_client"] = counted(fake, lambda: v2.search(PEER_CQL), may_fail=True)
    out["update_without_version"] = counted(
        fake, lambda: v2.update_page(page["id"], title=TITLE, body=BODY), may_fail=True
    )
    out["labels_v2_client"] = counted(fake, lambda: v2.add_page_labels(page["id"], LABELS), may_fail=True)
    return out


def main(port: int) -> dict[str, Any]:
    with FakeAtlassian(port=port) as fake:
        os.environ.setdefault("AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS", fake.allowed_endpoint_hosts)
        # Long-lived tokens: the figures are API requests, the token lifecycle is row 4's.
        fake.access_token_lifetime = 10 * 3600
        fake.add_space(SPACE)
        home = next(p for p in fake.pages if p["spaceId"] == fake.spaces[0]["id"])
        fake.add_page(SPACE, PARENT, "<p>index</p>", parent_id=home["id"])
        conn_id = "confluence_p8"
        # in the metadata database, as in a deployment: the token and cloud id a task saved serve the next task
        from worker import put_connection

        put_connection(conn_id, json.dumps(fake.connection(conn_id)))
        provider = provider_jobs(fake, conn_id)
        import requests

        grant = {
            "grant_type": "refresh_token",
            "client_id": fake.client_id,
            "client_secret": fake.client_secret,
            "refresh_token": fake.issue_grant(),
        }
        token = str(requests.post(fake.token_url, json=grant, timeout=30).json()["access_token"])
        fake.add_space(PEER_SPACE)  # the peer works in a space of its own: its "create" creates
        home = next(p for p in fake.pages if p["spaceId"] == fake.spaces[1]["id"])
        fake.add_page(PEER_SPACE, PARENT, "<p>index</p>", parent_id=home["id"])
        peer = peer_jobs(fake, token)
        return {"provider": provider, "peer": peer}


if __name__ == "__main__":
    sys.stdout.write(json.dumps(main(int(sys.argv[1]))) + "\n")
