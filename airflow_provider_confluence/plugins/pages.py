"""The small HTML pages of the consent flow and the status page: no script, every value escaped.

They are Jinja2 templates (``plugins/templates/*.html``, shipped in the wheel) rendered with autoescaping, so
every value (a connection id, a site, an error text) is escaped by the template engine; nothing here builds
HTML from strings. Jinja2 comes with Airflow on every supported line.

Links are relative, so the pages work under any ``[api] base_url`` path, and open in the top window
(``target="_top"``), because the status page is shown inside the Airflow UI's frame and Atlassian's consent
screen refuses to be framed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from functools import cache
from typing import Any
from urllib.parse import quote

import jinja2

from airflow_provider_confluence.auth.status import ConnectionStatus, format_days, format_time

#: Response headers of every page: never cached (the callback URL carries a code), never framed by others.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
}
CONNECTIONS_HREF = "../connections"  # from /confluence-oauth/: the UI's Admin -> Connections
STATUS_COLUMNS = (
    "Connection",
    "Site",
    "Source",
    "Token store",
    "Access token expires",
    "Last rotation",
    "Days before re-consent",
    "",
)


def connect_href(conn_id: str, root: str = "") -> str:
    """The relative link to ``/confluence-oauth/connect/<conn_id>``.

    :param root: the relative path from the current page to ``/confluence-oauth/``: ``""`` from the status
        page and the callback, ``"../"`` from a page answering ``/connect/<conn_id>``.
    """
    return f"{root}connect/{quote(conn_id, safe='')}"


@cache
def environment() -> jinja2.Environment:
    """The templates of this package, autoescaped, failing on any undefined name."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("airflow_provider_confluence.plugins", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        keep_trailing_newline=False,
    )
    env.globals.update(connect_href=connect_href, connections_href=CONNECTIONS_HREF)
    return env


def render(template: str, **values: Any) -> str:
    """The page ``template`` (a file of ``plugins/templates``) with ``values``, every one escaped."""
    return environment().get_template(template).render(**values)


def message_page(
    title: str, message: str, *, conn_id: str | None = None, hint: str | None = None, root: str = ""
) -> str:
    """A refusal or problem page: what happened, what to do, and links onwards (``root``: see connect_href)."""
    return render("message.html", title=title, message=message, conn_id=conn_id, hint=hint, root=root)


def missing_redirect_page(conn_id: str, callback_url: str, current: str | None) -> str:
    """Explains which Callback URL to set in the connection and in the developer console.

    Answers ``/connect/<conn_id>``, so its links climb one level.
    """
    return render(
        "missing_redirect.html",
        title="Set the Callback URL first",
        conn_id=conn_id,
        callback_url=callback_url,
        current=current,
    )


def success_page(conn_id: str, site: str, scopes: Iterable[str], fingerprint: str | None) -> str:
    """The page after a consent was saved: the site, the granted scopes, a link back."""
    return render(
        "success.html",
        title="Connected to Confluence",
        conn_id=conn_id,
        site=site,
        scopes=list(scopes),
        fingerprint=fingerprint,
    )


def status_page(statuses: list[tuple[ConnectionStatus, bool]], now: float | None = None) -> str:
    """The table of every connection; each ``(status, may_edit)`` pair gets a Connect button if allowed."""
    now = time.time() if now is None else now
    rows = []
    for status, may_edit in statuses:
        can_connect = may_edit and status.can_write_consent
        rows.append(
            {
                "conn_id": status.conn_id,
                "cells": (
                    status.conn_id,
                    status.site or "-",
                    status.source,
                    status.store or "-",
                    format_time(status.access_token_expires_at),
                    format_time(status.rotated_at),
                    format_days(status.days_left(now)),
                ),
                "connect": ("Reconnect" if status.connected else "Connect") if can_connect else None,
                "note": (
                    f"Not in the metadata database: airflow-confluence authorize --conn-id {status.conn_id}"
                    if may_edit and not can_connect
                    else None
                ),
                "problem": status.problem,
            }
        )
    return render("status.html", title="Confluence OAuth connections", head=STATUS_COLUMNS, rows=rows)
