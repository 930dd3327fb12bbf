"""``make demo``: the provider's main job, end to end, against the offline Atlassian emulator.

Starts the emulator, prepares a temporary AIRFLOW_HOME with a ``confluence_default`` connection, runs the
example DAGs with ``airflow dags test`` (publish a report, list spaces, publish a metrics table with labels and an
attached CSV, index the reports found by CQL), and prints the page URLs, the number of spaces read, and the
fingerprints that show the refresh token was rotated and written back. Tokens are never printed.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LOGICAL_DATE = "2026-11-29"


def fingerprint(token: str | None) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:12] if token else "-"


def airflow(env: dict[str, str], *args: str, shown: str | None = None) -> str:
    """Run an ``airflow`` command; stop the demo with its output when it fails.

    :param shown: what to print instead of the arguments (when they hold secrets).
    """
    print(f"$ airflow {shown or ' '.join(args)}", flush=True)
    result = subprocess.run(
        [sys.executable, "-m", "airflow", *args], env=env, capture_output=True, text=True, cwd=env["AIRFLOW_HOME"]
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-5000:] + result.stderr[-5000:])
        raise SystemExit(f"airflow {args[0]} failed (exit {result.returncode})")
    return result.stdout


READ_STATE = """
import json
from sqlalchemy import text
from airflow.utils.session import create_session
from airflow.models.variable import Variable
from airflow.models.connection import Connection
with create_session() as session:
    conn = session.query(Connection).filter(Connection.conn_id == "confluence_default").one()
    var = session.query(Variable).filter(Variable.key == "confluence_oauth_token_state__confluence_default").one_or_none()
    summary = session.execute(text(
        "SELECT value FROM xcom WHERE dag_id = 'confluence_list_spaces' AND task_id = 'summarize'"
        " AND key = 'return_value'")).scalar()
if isinstance(summary, bytes):
    summary = summary.decode()
if isinstance(summary, str):
    summary = json.loads(summary)
print(json.dumps({"extra": json.loads(conn.get_extra() or "{}"),
                  "variable": json.loads(var.get_val()) if var is not None else None, "summary": summary}))
"""


def main() -> None:
    from cryptography.fernet import Fernet

    from airflow_provider_confluence.testing import FakeAtlassian

    with FakeAtlassian() as fake, tempfile.TemporaryDirectory(prefix="confluence-demo-") as home:
        fake.add_space("DEMO", "Demo reports")
        fake.add_space("ENG", "Engineering")
        fake.add_spaces(598, prefix="TEAM")
        conn = fake.connection("confluence_default")
        planted = conn["extra"]["refresh_token"]
        print(f"Emulator of auth.atlassian.com, api.atlassian.com and Confluence v2 at {fake.url}")
        print(f"Site {fake.site_url}: {len(fake.spaces)} spaces; refresh token from consent {fingerprint(planted)}\n")

        env = {
            **os.environ,
            "AIRFLOW_HOME": home,
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "example_dags"),
            "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            # The deployment's list of endpoint hosts besides Atlassian's: the emulator, and nothing else.
            "AIRFLOW__CONFLUENCE__ALLOWED_ENDPOINT_HOSTS": fake.allowed_endpoint_hosts,
        }
        airflow(env, "db", "migrate")
        airflow(
            env,
            "connections",
            "add",
            "confluence_default",
            "--conn-json",
            json.dumps(conn),
            shown="connections add confluence_default --conn-json '<the emulator's connection JSON>'",
        )
        airflow(env, "dags", "test", "confluence_publish_report", LOGICAL_DATE)
        space_requests_before = fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/spaces", 0)
        airflow(env, "dags", "test", "confluence_list_spaces", LOGICAL_DATE)
        space_requests = fake.counters["api_calls_by_route"].get("GET /wiki/api/v2/spaces", 0) - space_requests_before
        airflow(env, "dags", "test", "confluence_daily_report", LOGICAL_DATE)
        airflow(env, "dags", "test", "confluence_search_pages", LOGICAL_DATE)

        state = json.loads(
            subprocess.run(
                [sys.executable, "-c", READ_STATE], env=env, capture_output=True, text=True, check=True, cwd=home
            ).stdout
        )
        stored = state["variable"] or state["extra"]
        where = (
            "Variable confluence_oauth_token_state__confluence_default"
            if state["variable"]
            else "the connection's extra"
        )
        pages = [p for p in fake.pages if p["title"].startswith("Pipeline report")]
        counters = fake.counters
        print("\nResults")
        for page in pages:
            print(
                f"  page:          {fake.site_url}/wiki{page['_links']['webui']} (version {page['version']['number']})"
            )
        metrics = [p for p in fake.pages if p["title"].startswith("Daily metrics")]
        index = [p for p in fake.pages if p["title"] == "Daily report index"]
        for page in metrics:
            files = ", ".join(f"{a['title']} ({a['fileSize']} bytes)" for a in fake.attachments(page["id"]))
            print(f"  metrics page:  {fake.site_url}/wiki{page['_links']['webui']}")
            print(f"                 labels {fake.page_labels(page['id'])}, attached {files or 'nothing'}")
        for page in index:
            print(f"  report index:  {fake.site_url}/wiki{page['_links']['webui']} (found by CQL search)")
        summary: dict[str, Any] = state["summary"] or {}
        print(f"  spaces read:   {summary.get('total')} in {space_requests} requests")
        print(f"  token refreshes: {counters['refreshes']}, invalid_grant: {counters['invalid_grants']}")
        print(
            f"  refresh token: {fingerprint(planted)} (consent) -> {fingerprint(stored.get('refresh_token'))} "
            f"(saved in {where}); emulator's latest: {fingerprint(fake.latest_refresh_token)}"
        )
        rotated = stored.get("refresh_token") == fake.latest_refresh_token != planted
        print(f"  rotated and written back: {'yes' if rotated else 'NO'}")
        toolkit = bool(metrics and index and fake.attachments(metrics[0]["id"]) and fake.page_labels(metrics[0]["id"]))
        if not (pages and rotated and toolkit and summary.get("total") == len(fake.spaces)):
            raise SystemExit("The demo did not reach its end state; see the output above.")


if __name__ == "__main__":
    main()
