"""The consent and status pages: Jinja2 templates shipped in the package, every value escaped."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airflow_provider_confluence.plugins import pages

pytestmark = pytest.mark.airflow2

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


def test_every_page_escapes_what_it_is_given():
    rendered = [
        pages.message_page(SCRIPT, SCRIPT, conn_id=SCRIPT, hint=SCRIPT, root="../"),
        pages.missing_redirect_page(SCRIPT, SCRIPT, SCRIPT),
        pages.success_page(SCRIPT, SCRIPT, [SCRIPT], SCRIPT),
    ]
    for html in rendered:
        assert "<script>" not in html and ESCAPED in html
    assert 'href="../connect/%3Cscript%3Ealert%281%29%3C%2Fscript%3E"' in rendered[0]
    closing = pages.message_page('"><b>', "m", conn_id='"><b>', root="")  # an attribute or a tag cannot be closed
    assert '"><b>' not in closing and "&#34;&gt;&lt;b&gt;" in closing


@dataclass
class Status:
    conn_id: str
    site: str | None = None
    source: str = "database"
    store: str | None = None
    access_token_expires_at: float | None = None
    rotated_at: float | None = None
    connected: bool = False
    can_write_consent: bool = True
    problem: str | None = None

    def days_left(self, now: float) -> float | None:
        return None


def test_the_status_page_escapes_every_cell_and_offers_connect_where_allowed():
    html = pages.status_page(
        [
            (Status("plain", site="https://s.atlassian.net", connected=True), True),
            (Status(SCRIPT, site=SCRIPT, store=SCRIPT, problem=SCRIPT), True),
            (Status("elsewhere", source="environment variable", can_write_consent=False), True),
            (Status("read_only"), False),
        ],
        now=0.0,
    )  # type: ignore[list-item]
    assert "<script>" not in html and html.count(ESCAPED) == 4  # id, site, store, problem
    assert 'href="connect/plain" target="_top">Reconnect</a>' in html
    assert "Not in the metadata database: airflow-confluence authorize --conn-id elsewhere" in html
    read_only = html[html.index("<code>read_only</code>") :]
    assert "button" not in read_only[: read_only.index("</tr>")]
    assert "No confluence_oauth connection" in pages.status_page([], now=0.0)


def test_the_templates_come_from_the_installed_package():
    """The wheel ships them (package-data): the loader finds every template the pages use."""
    names = set(pages.environment().list_templates())
    assert {"base.html", "macros.html", "message.html", "missing_redirect.html", "success.html", "status.html"} <= names
