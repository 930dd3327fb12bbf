"""``airflow-confluence``: authorize a connection, show the grants' status, refresh a grant now.

* ``authorize --conn-id ID``: the consent flow without the API-server plugin. When the connection's
  ``redirect_uri`` is an ``http://localhost:PORT/...`` (or ``127.0.0.1``, ``[::1]``) URL, a one-shot callback
  server listens there; otherwise the person pastes the URL the browser was sent to. The state is signed,
  single-use and bound to this run and connection. The grant is written into the connection row when Airflow
  reads the connection from the metadata database; otherwise the extra to put into the secrets backend is
  printed on stdout (it holds the new refresh token, never the client secret).
* ``status [--conn-id ID]``: the facts of the status page, as a table (or ``--json``).
* ``refresh --conn-id ID``: one refresh now, through the hook's token manager and store (keeps an idle grant
  alive past Atlassian's 90-day inactivity expiry). Prints fingerprints, never tokens.
* ``migrate-store ID [--dry-run]``: move the state that the Variable store rotated (Airflow 3's default before
  this version) into the connection, once, and say what it did.

Messages go to stderr, results to stdout; so does anything else (Airflow's own logging is sent to stderr), so
that ``airflow-confluence authorize ... > extra.json`` captures only the JSON. Exit codes: 0 done, 1 the operation failed (consent declined,
Atlassian refused, no answer in time), 2 bad input (arguments, unknown connection, unusable settings, a
refused state).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import secrets
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import parse_qs, urlsplit

from airflow_provider_confluence.exceptions import ConfluenceAuthError, ConfluenceConfigError, ConfluenceError

if TYPE_CHECKING:
    from airflow_provider_confluence.config.connection import ConnectionSettings

_LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1")
_DROP_FROM_PRINTED_EXTRA = ("access_token", "expires_at", "rotated_at", "refresh_token_fingerprint", "client_secret")


_results: list[TextIO] = []  # the real stdout while a command runs with sys.stdout sent to stderr


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _result(text: str) -> None:
    print(text, file=_results[-1] if _results else sys.stdout, flush=True)


def _settings(conn_id: str) -> tuple[ConnectionSettings, Any]:
    """The connection and its checked settings; ConfluenceConfigError (exit 2) when unknown or unusable."""
    from airflow_provider_confluence.config.deployment import connection_settings
    from airflow_provider_confluence.version_compat import get_connection

    try:
        conn = get_connection(conn_id)
    except Exception as exc:  # AirflowNotFoundException on both versions
        raise ConfluenceConfigError(f"Airflow has no connection {conn_id!r} ({type(exc).__name__}).") from None
    return connection_settings(conn_id, conn), conn


def _local_user() -> str:
    try:
        return "cli:" + getpass.getuser()
    except (KeyError, OSError):
        return "cli"


def _loopback(redirect_uri: str) -> tuple[str, int, str] | None:
    """``(host, port, path)`` when the callback URL is a plain-http loopback URL this command can serve."""
    parts = urlsplit(redirect_uri)
    if parts.scheme != "http" or (parts.hostname or "") not in _LOOPBACK_HOSTS:
        return None
    return str(parts.hostname), parts.port or 80, parts.path or "/"


def _query(text: str) -> dict[str, str]:
    query = urlsplit(text).query if "?" in text else text
    return {name: values[0] for name, values in parse_qs(query.strip()).items() if values}


#: Seconds a connection to the loopback callback may stay silent before it is dropped.
_CONNECTION_TIMEOUT = 10.0


class _Server(ThreadingHTTPServer):
    """The one-shot callback server: each connection in a daemon thread, so that a local process that connects
    and sends nothing never holds the command past ``--timeout`` (nor keeps it from exiting)."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, host: str, port: int, handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)


def _wait_on_loopback(
    where: tuple[str, int, str], accept: Callable[[dict[str, str]], str | None], timeout: float
) -> dict[str, str]:
    """Serve the callback path until a request with an acceptable state arrives, or ``timeout`` seconds pass.

    :param accept: checks a request's query; returns None to accept it, else why it was refused.
    """
    host, port, path = where
    answer: dict[str, str] = {}
    answered = threading.Event()
    refused: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        timeout = _CONNECTION_TIMEOUT  # a silent connection's thread ends; the wait below never depends on it

        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            parts = urlsplit(self.path)
            if parts.path != path:
                return self._reply(404, "This is not the OAuth callback.")
            query = _query(parts.query)
            problem = accept(query)
            if problem:
                refused.append(problem)
                return self._reply(400, problem)
            answer.update(query)
            answered.set()
            return self._reply(200, "airflow-confluence received Atlassian's answer: return to the terminal.")

        def _reply(self, status: int, text: str) -> None:
            from html import escape

            body = f"<!DOCTYPE html><html><body><p>{escape(text)}</p></body></html>".encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # the request line holds the code: never log it
            pass

    try:
        server = _Server("127.0.0.1" if host == "localhost" else host, port, Handler)
    except OSError as exc:
        raise ConfluenceConfigError(
            f"Cannot listen on {host}:{port} for the callback ({exc.strerror}). Use a free "
            "port in redirect_uri and register that URL in the developer console."
        ) from None
    deadline = time.monotonic() + timeout
    with server:
        _say(f"Waiting up to {timeout:.0f} s for the browser at http://{host}:{port}{path} ...")
        while not answered.is_set() and (remaining := deadline - time.monotonic()) > 0:
            server.timeout = min(0.25, remaining)
            server.handle_request()  # accepts one connection and hands it to a thread; never reads it here
    if not answered.is_set():
        last = f" The last request was refused: {refused[-1]}" if refused else ""
        raise ConfluenceError(
            f"No answer from the browser within {timeout:.0f} s; nothing was changed. Run the "
            "command again and approve the consent within --timeout seconds (default 300)."
            f"{last}"
        )
    return dict(answer)


def _authorize(args: argparse.Namespace) -> int:
    import requests

    from airflow_provider_confluence.auth import oauth
    from airflow_provider_confluence.auth.consent_state import ConsentStates, finish_consent, save_grant
    from airflow_provider_confluence.auth.status import DATABASE, connection_source
    from airflow_provider_confluence.auth.stores.choice import ConnectionTokenStore, fingerprint
    from airflow_provider_confluence.version_compat import mask_secret

    conn_id = args.conn_id
    settings, conn = _settings(conn_id)
    if not settings.uses_refresh_token:
        from airflow_provider_confluence.config.signin import no_consent_needed

        raise ConfluenceConfigError(no_consent_needed(conn_id, settings.auth_type))
    if not settings.redirect_uri:
        raise ConfluenceConfigError(
            f"Connection {conn_id!r} has no redirect_uri (Callback URL). Set it to the Callback URL registered in the "
            "developer console; an http://127.0.0.1:PORT/callback URL lets this command receive the answer itself."
        )
    states = ConsentStates(secrets.token_bytes(32))
    user = _local_user()
    binding = states.binding(settings)
    state = states.issue(conn_id=conn_id, user=user, binding=binding)
    url = oauth.authorization_url(
        auth_url=settings.auth_url,
        client_id=settings.client_id,
        scope=settings.scope,
        redirect_uri=settings.redirect_uri,
        state=state,
    )
    _say(
        f"Open this URL, log in to Atlassian as the user the DAGs should act as, choose {settings.site_url} and "
        f"accept (within 10 minutes):\n\n{url}\n"
    )
    if args.open:
        import webbrowser

        webbrowser.open(url)

    def check(query: dict[str, str]) -> str | None:
        try:
            states.consume(states.verify(query.get("state", ""), user=user, conn_id=conn_id), binding=binding)
        except ConfluenceAuthError as exc:
            return exc.message
        return None

    loopback = _loopback(settings.redirect_uri)
    if loopback:
        answer = _wait_on_loopback(loopback, check, args.timeout)
    else:
        _say(f"Then paste the whole URL the browser was sent to (it starts with {settings.redirect_uri}):")
        answer = _query(sys.stdin.readline().strip())
        problem = check(answer)
        if problem:
            raise ConfluenceConfigError(problem)
    if answer.get("error"):
        _say(
            f"The consent was not given ({answer['error']}: {answer.get('error_description', '')[:200]}). "
            "Nothing was changed."
        )
        return 1
    if not answer.get("code"):
        raise ConfluenceConfigError("The answer has no code; nothing was changed.")
    with requests.Session() as session:
        session.headers["User-Agent"] = "airflow-provider-confluence"
        grant = finish_consent(settings, answer["code"], session=session, on_secret=mask_secret)
    summary = (
        f"site {grant.site_url} (cloud id {grant.cloud_id}), scopes {grant.scope}, refresh token "
        f"fingerprint {fingerprint(grant.refresh_token)}"
    )
    source = connection_source(conn_id)
    if source == DATABASE:
        save_grant(ConnectionTokenStore(conn_id), grant)
        _result(f"Connection {conn_id!r} is connected: {summary}. Saved in the metadata database.")
        return 0
    extra = {k: v for k, v in conn.extra_dejson.items() if k not in _DROP_FROM_PRINTED_EXTRA}
    extra.update(grant.token_state().to_stored())
    _say(
        f"Connection {conn_id!r} is read from {source or 'a secrets backend'}, which this command cannot write. "
        f"Connected: {summary}.\nReplace the connection's extra with the JSON below (stdout). It holds the new "
        "refresh token: keep it secret, and use it nowhere else."
    )
    _result(json.dumps(extra, indent=2, sort_keys=True))
    return 0


def _status(args: argparse.Namespace) -> int:
    from airflow_provider_confluence.auth.status import all_statuses, connection_status, format_days, format_time

    if args.conn_id:
        found = connection_status(args.conn_id)
        if found is None:
            raise ConfluenceConfigError(f"Airflow has no connection {args.conn_id!r}.")
        statuses = [found]
    else:
        statuses = all_statuses()
    now = time.time()
    if args.json:
        rows = [{**vars(s), "days_left": s.days_left(now)} for s in statuses]
        _result(json.dumps(rows, indent=2, sort_keys=True))
        return 0
    head = (
        "CONNECTION",
        "SITE",
        "SOURCE",
        "STORE",
        "REFRESH TOKEN",
        "ACCESS TOKEN EXPIRES",
        "LAST ROTATION",
        "DAYS LEFT",
    )
    table = [head] + [
        (
            s.conn_id,
            s.site or "-",
            s.source,
            s.store or "-",
            s.refresh_token_fingerprint or "none",
            format_time(s.access_token_expires_at),
            format_time(s.rotated_at),
            format_days(s.days_left(now)),
        )
        for s in statuses
    ]
    widths = [max(len(row[i]) for row in table) for i in range(len(head))]
    for row in table:
        _result("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())
    for s in statuses:
        if s.problem:
            _result(f"{s.conn_id}: {s.problem}")
    if not statuses:
        _result("No confluence_oauth connection in the metadata database or AIRFLOW_CONN_* variables.")
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from airflow_provider_confluence.auth.status import format_time
    from airflow_provider_confluence.auth.stores.choice import fingerprint
    from airflow_provider_confluence.auth.tokens import TokenManager
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    settings, _conn = _settings(args.conn_id)
    if not settings.uses_refresh_token:
        raise ConfluenceConfigError(
            f"Connection {args.conn_id!r} has auth_type={settings.auth_type}, which has no "
            "refresh token: there is nothing to refresh or save."
        )
    manager = ConfluenceOAuthHook(args.conn_id).token_manager
    if not isinstance(manager, TokenManager):  # a process without the metadata database asks the broker
        raise ConfluenceConfigError("This process cannot use the metadata database; run the command where it can.")
    if manager.store.name == "memory":
        raise ConfluenceConfigError(
            f"Connection {args.conn_id!r} has state_store=memory, which saves nothing: the "
            "rotated refresh token would be lost. Refusing to refresh."
        )
    before = manager.store.load()
    manager.refresh_rejected(before.access_token or "")  # the stored token counts as used up: refresh now
    after = manager.store.load()
    old, new = fingerprint(before.refresh_token), fingerprint(after.refresh_token)
    change = f"{old} -> {new}" if old != new else f"{new} (Atlassian sent no new one; kept)"
    _result(
        f"Refreshed connection {args.conn_id!r} in the {manager.store.name} store: refresh token {change}; "
        f"access token valid until {format_time(after.expires_at)}."
    )
    return 0


def _migrate_store(args: argparse.Namespace) -> int:
    from airflow_provider_confluence.auth.status import format_time
    from airflow_provider_confluence.auth.stores.connection import migrate_variable_state
    from airflow_provider_confluence.auth.stores.support import variable_key

    _settings(args.conn_id)
    found = migrate_variable_state(args.conn_id, dry_run=args.dry_run)
    variable = found.variable or variable_key(args.conn_id)
    if found.action == "nothing":
        _result(
            f"Connection {args.conn_id!r} has no Variable {variable!r}: nothing to move; the connection keeps "
            f"its tokens (refresh token {found.before or 'none'})."
        )
    elif found.action == "kept":
        _result(
            f"Variable {variable!r} does not descend from the refresh token in connection {args.conn_id!r} "
            f"({found.before or 'none'}): the connection holds a newer consent, or the Variable is not this "
            "provider's state. Nothing was changed; delete the Variable once you have checked it."
        )
    else:
        done = "Would move" if args.dry_run else "Moved"
        _result(
            f"{done} the token state of Variable {variable!r} into connection {args.conn_id!r}: refresh token "
            f"{found.before} -> {found.after}, cloud id {found.cloud_id or 'none'}, last rotated "
            f"{format_time(found.rotated_at)}." + ("" if args.dry_run else f" Variable {variable!r} was deleted.")
        )
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="airflow-confluence",
        description="Authorize a confluence_oauth connection (Atlassian OAuth 2.0 consent), show the status of "
        "its grant, refresh it now, or move its tokens out of the Variable store. Exit codes: 0 done, 1 failed, 2 bad input.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    authorize = commands.add_parser("authorize", help="run the Atlassian consent and save the new grant")
    authorize.add_argument("--conn-id", required=True, help="the confluence_oauth connection")
    authorize.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the browser (loopback)")
    authorize.add_argument("--open", action="store_true", help="open the consent URL in a browser")
    authorize.set_defaults(func=_authorize)
    status = commands.add_parser("status", help="show every connection's grant, store and expiries")
    status.add_argument("--conn-id", help="only this connection (any secrets backend)")
    status.add_argument("--json", action="store_true", help="print JSON instead of a table")
    status.set_defaults(func=_status)
    refresh = commands.add_parser("refresh", help="refresh the grant now and save the rotated token")
    refresh.add_argument("--conn-id", required=True, help="the confluence_oauth connection")
    refresh.set_defaults(func=_refresh)
    migrate = commands.add_parser(
        "migrate-store",
        help="move the tokens that the Variable store rotated into the connection, once",
        description="Deployments that kept tokens in the Variable store (Airflow 3's default before 0.2) move them "
        "into the connection with this command, once. It runs where the metadata database is reachable.",
    )
    migrate.add_argument("conn_id", help="the confluence_oauth connection")
    migrate.add_argument("--dry-run", action="store_true", help="say what would be moved; change nothing")
    migrate.set_defaults(func=_migrate_store)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (0 done, 1 failed, 2 bad input)."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exc:  # argparse: 2 on bad arguments, 0 for --help
        return exc.code if isinstance(exc.code, int) else 2
    if getattr(args, "timeout", 1.0) <= 0:
        _say("error: --timeout must be more than 0 seconds")
        return 2
    _results.append(sys.stdout)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            return int(args.func(args))
    except ConfluenceConfigError as exc:
        _say(f"error: {exc.message}")
        return 2
    except ConfluenceError as exc:
        _say(f"error: {exc.message}")
        return 1
    except KeyboardInterrupt:
        _say("interrupted; nothing was changed unless a success message was printed")
        return 130
    finally:
        _results.pop()


if __name__ == "__main__":
    sys.exit(main())
