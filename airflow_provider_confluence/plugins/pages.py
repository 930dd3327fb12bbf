"""The small HTML pages of the consent flow and the status page: no script, every value escaped.

Links are relative, so the pages work under any ``[api] base_url`` path, and open in the top window
(``target="_top"``), because the status page is shown inside the Airflow UI's frame and Atlassian's consent
screen refuses to be framed.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from html import escape
from urllib.parse import quote

from airflow_provider_confluence.auth.status import ConnectionStatus, format_days, format_time

#: Response headers of every page: never cached (the callback URL carries a code), never framed by others.
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'",
}
CONNECTIONS_HREF = "../connections"  # from /confluence-oauth/: the UI's Admin -> Connections

_STYLE = (
    "body{font-family:system-ui,sans-serif;margin:2rem;max-width:72rem;color:#1b1f23}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccd;padding:.35rem .6rem;text-align:left}"
    ".button{display:inline-block;padding:.3rem .8rem;border-radius:4px;background:#0052cc;color:#fff;"
    "text-decoration:none}.problem{color:#a40000}.ok{color:#006644}code{background:#f4f5f7;padding:0 .2rem}"
)


def connect_href(conn_id: str, root: str = "") -> str:
    """The relative link to ``/confluence-oauth/connect/<conn_id>``.

    :param root: the relative path from the current page to ``/confluence-oauth/``: ``""`` from the status
        page and the callback, ``"../"`` from a page answering ``/connect/<conn_id>``.
    """
    return f"{root}connect/{quote(conn_id, safe='')}"


def document(title: str, body: str) -> str:
    """A whole page; ``body`` must already be escaped HTML."""
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body><h1>{escape(title)}</h1>{body}</body></html>"
    )


def _link(href: str, text: str, css: str = "") -> str:
    klass = f' class="{css}"' if css else ""
    return f'<a{klass} href="{escape(href)}" target="_top">{escape(text)}</a>'


def message_page(
    title: str, message: str, *, conn_id: str | None = None, hint: str | None = None, root: str = ""
) -> str:
    """A refusal or problem page: what happened, what to do, and links onwards (``root``: see connect_href)."""
    parts = [f"<p>{escape(message)}</p>"]
    if hint:
        parts.append(f"<p>{escape(hint)}</p>")
    links = []
    if conn_id:
        links.append(_link(connect_href(conn_id, root), f"Start the consent for {conn_id} again"))
    links.append(_link(f"{root}status", "Confluence OAuth status"))
    links.append(_link(root + CONNECTIONS_HREF, "Airflow connections"))
    parts.append("<p>" + " &middot; ".join(links) + "</p>")
    return document(title, "".join(parts))


def missing_redirect_page(conn_id: str, callback_url: str, current: str | None) -> str:
    """Explains which Callback URL to set in the connection and in the developer console.

    Answers ``/connect/<conn_id>``, so its links climb one level.
    """
    now = f" It is now <code>{escape(current)}</code>, which is not this server's callback." if current else ""
    body = (
        f"<p>Connection <code>{escape(conn_id)}</code> needs the Callback URL of this Airflow.{now}</p><ol>"
        f"<li>In Admin &rarr; Connections &rarr; <code>{escape(conn_id)}</code>, set <b>Callback URL</b> "
        f"(<code>redirect_uri</code>) to <code>{escape(callback_url)}</code> (as your users reach Airflow, "
        "behind any proxy).</li>"
        "<li>In the Atlassian developer console, open your app &rarr; Authorization &rarr; OAuth 2.0 (3LO) "
        "&rarr; Configure, and register exactly the same URL as its Callback URL.</li>"
        f"<li>{_link(connect_href(conn_id, '../'), 'Connect again')}.</li></ol>"
        "<p>For a callback on your own machine instead, run "
        f"<code>airflow-confluence authorize --conn-id {escape(conn_id)}</code>.</p>"
    )
    return document("Set the Callback URL first", body)


def success_page(conn_id: str, site: str, scopes: Iterable[str], fingerprint: str | None) -> str:
    """The page after a consent was saved: the site, the granted scopes, a link back."""
    items = "".join(f"<li><code>{escape(scope)}</code></li>" for scope in scopes)
    body = (
        f'<p class="ok">Connection <code>{escape(conn_id)}</code> is connected to '
        f"<b>{escape(site)}</b>. Its new refresh token (fingerprint <code>{escape(fingerprint or '-')}</code>) "
        "was saved; the next task that uses the connection refreshes it.</p>"
        f"<p>Atlassian granted these scopes:</p><ul>{items}</ul>"
        "<p>The grant ends after 365 days, or after 90 days without a refresh: reconnect before then.</p>"
        f"<p>{_link(CONNECTIONS_HREF, 'Back to Airflow connections')} &middot; "
        f"{_link('status', 'Confluence OAuth status')}</p>"
    )
    return document("Connected to Confluence", body)


def status_page(statuses: list[tuple[ConnectionStatus, bool]], now: float | None = None) -> str:
    """The table of every connection; each ``(status, may_edit)`` pair gets a Connect button if allowed."""
    now = time.time() if now is None else now
    head = ("Connection", "Site", "Source", "Token store", "Access token expires", "Last rotation",
            "Days before re-consent", "")
    rows = []
    for status, may_edit in statuses:
        action = ""
        if not status.needs_consent:
            action = escape(f"No consent needed ({status.auth_type})")
        elif may_edit and status.can_write_consent:
            action = _link(connect_href(status.conn_id), "Reconnect" if status.connected else "Connect", "button")
        elif may_edit:
            action = escape(f"Not in the metadata database: airflow-confluence authorize --conn-id {status.conn_id}")
        cells = (
            f"<code>{escape(status.conn_id)}</code>",
            escape(status.site or "-"),
            escape(status.source),
            escape(status.store or "-"),
            escape(format_time(status.access_token_expires_at)),
            escape(format_time(status.rotated_at)),
            escape(format_days(status.days_left(now))),
            action,
        )
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        if status.problem:
            rows.append(f'<tr><td></td><td colspan="7" class="problem">{escape(status.problem)}</td></tr>')
    if not rows:
        rows.append('<tr><td colspan="8">No confluence_oauth connection that you may see.</td></tr>')
    header = "".join(f"<th>{escape(name)}</th>" for name in head)
    body = (
        f"<table><thead><tr>{header}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        "<p>Connections kept in a secrets backend other than environment variables are not listed: run "
        "<code>airflow-confluence status --conn-id ID</code>.</p>"
    )
    return document("Confluence OAuth connections", body)
