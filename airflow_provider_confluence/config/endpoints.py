"""Where a request really goes, and where credentials may go: the one check of every URL setting.

``requests`` hands a URL to urllib3, which finds the host to connect to with its own parser
(``urllib3.util.parse_url``, which follows the WHATWG URL standard and ends the authority at a backslash), while
Python's ``urllib.parse.urlsplit`` (RFC 3986) takes everything up to the first ``/`` as the authority and the host
after its last ``@``. ``http://a.example:80\\@127.0.0.1/`` is loopback to one and ``a.example`` to the other. :func:`parse_url` accepts a URL only when both read the same
scheme, host and port, and refuses outright what parsers disagree on: backslashes, userinfo (``@``),
whitespace and control characters. Every URL setting of a connection goes through it.

:func:`check_endpoint` then pins the URLs that receive credentials (``auth_url``, ``grant_url``, ``api_url``)
to Atlassian's hosts, ``https://auth.atlassian.com`` and ``https://api.atlassian.com``, or to a host the
deployment lists in ``[confluence] allowed_endpoint_hosts`` (:class:`AllowedHosts`): a comma-separated list of
``host`` (any port) or ``host:port``. Plain http goes only to a loopback host the list names. The list comes
from Airflow's configuration, read by :mod:`airflow_provider_confluence.config.deployment`; no connection field can
widen it, so whoever may edit a connection cannot choose where its secrets are sent.

:func:`redirect_target` is the rule for redirects: a write (POST, PUT, DELETE, ...) never follows one (requests
would send its body again, to the new location); a read follows one only on its own scheme, host and port.

References: urllib3's ``parse_url`` (https://urllib3.readthedocs.io/en/stable/reference/urllib3.util.html),
Python's ``urlsplit`` (https://docs.python.org/3/library/urllib.parse.html#url-parsing-security).

The parsing itself is not re-implemented: both readings come from the libraries (``urlsplit`` and urllib3's
``parse_url``); this module only compares them and applies the provider's policy (which hosts may receive
credentials, which redirects are followed), which no dependency offers.

This module imports nothing from Airflow.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError

__all__ = [
    "ALLOWED_HOSTS_ENV",
    "ALLOWED_HOSTS_OPTION",
    "ALLOWED_HOSTS_SETTING",
    "ATLASSIAN_HOSTS",
    "SECTION",
    "AllowedHosts",
    "MAX_REDIRECTS",
    "Origin",
    "check_endpoint",
    "is_loopback",
    "make_origin",
    "origin",
    "parse_url",
    "redirect_origin",
    "redirect_target",
    "refused_character",
]

#: Airflow's configuration section of the provider's deployment-level settings.
SECTION = "confluence"
#: ``[confluence] allowed_endpoint_hosts``: hosts other than Atlassian's that may receive credentials.
ALLOWED_HOSTS_OPTION = "allowed_endpoint_hosts"
ALLOWED_HOSTS_SETTING = f"[{SECTION}] {ALLOWED_HOSTS_OPTION}"
ALLOWED_HOSTS_ENV = f"AIRFLOW__{SECTION.upper()}__{ALLOWED_HOSTS_OPTION.upper()}"
#: Atlassian's OAuth and API hosts (https, port 443): the only endpoints allowed without the setting.
ATLASSIAN_HOSTS = ("auth.atlassian.com", "api.atlassian.com")

#: Redirects a read follows, one after the other, before it gives up.
MAX_REDIRECTS = 5
_READS = frozenset({"GET", "HEAD"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_LOOPBACK_NAMES = frozenset({"localhost"})


@dataclass(frozen=True)
class Origin:
    """The scheme, host and port a request is sent to.

    :param scheme: ``http`` or ``https``.
    :param host: the host, lower-cased; an IPv6 address without brackets.
    :param port: the port, the scheme's default when the URL gives none.
    """

    scheme: str
    host: str
    port: int

    @property
    def netloc(self) -> str:
        """``host:port`` as written in a URL (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        return f"{self.scheme}://{self.netloc}"


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (``127.0.0.0/8``, ``::1``)."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def make_origin(scheme: str, host: str | None, port: int | None) -> Origin | None:
    """The :class:`Origin` of these parts (lower-cased, the default port filled in); None unless http(s) with a host."""
    scheme = scheme.lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    return Origin(scheme, host.lower(), port or _DEFAULT_PORTS[scheme])


def origin(url: str) -> Origin | None:
    """Where ``url`` is sent, as ``urlsplit`` reads it; None when it is not an absolute http(s) URL.

    Lenient: use it to compare a URL received from a server (a redirect) with one already checked by
    :func:`parse_url`.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    return make_origin(parts.scheme, parts.hostname, port)


def refused_character(url: str) -> str | None:
    """Why ``url`` holds a character that URL parsers read differently, or None."""
    if "\\" in url:
        return "contains a backslash, which urllib3 (sending the request) reads as the end of the host"
    if "@" in url:
        return (
            "contains '@', which puts a user name or password into the URL (and hides the host after it); "
            "credentials never go into a URL"
        )
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Zs"):
            return f"contains whitespace or a control character (at position {position + 1})"
    return None


def parse_url(what: str, url: str, *, fix: str) -> Origin:
    """Where ``url`` is sent, after checking that ``urlsplit`` and urllib3 read the same scheme, host and port.

    :param what: what the URL is, for messages (``"Connection 'x': grant_url"``).
    :param url: the URL, stripped.
    :param fix: what to do instead, appended to every message.
    :raises ConfluenceConfigError: the URL is not an absolute http(s) URL, holds a backslash, userinfo,
        whitespace or a control character, or the two parsers disagree. The message never quotes a URL that
        holds ``@`` (it may carry a password).
    """
    from urllib3.exceptions import LocationParseError  # the HTTP stack loads when a connection is read, not at import
    from urllib3.util import parse_url as urllib3_parse_url

    problem = refused_character(url)
    if problem:
        raise ConfluenceConfigError(f"{what} {problem}; {fix}")
    split = origin(url)
    if split is None:
        raise ConfluenceConfigError(f"{what} {url!r} is not an absolute http(s) URL; {fix}")
    try:
        read = urllib3_parse_url(url)
        sent = Origin(
            str(read.scheme or "").lower(),
            str(read.host or "").lower().strip("[]"),
            read.port or _DEFAULT_PORTS.get(str(read.scheme or "").lower(), 0),
        )
    except (LocationParseError, ValueError) as exc:
        raise ConfluenceConfigError(
            f"{what} cannot be read by urllib3, which sends the request ({type(exc).__name__}), although Python's "
            f"urlsplit reads host {split.host}; write the host in ASCII (an international name in its xn-- form). "
            f"{fix}"
        ) from None
    if sent != split:
        raise ConfluenceConfigError(
            f"{what} is read as {split} by Python's urlsplit but as {sent} by urllib3, which sends the request; {fix}"
        )
    return split


@dataclass(frozen=True)
class AllowedHosts:
    """The hosts besides Atlassian's that may receive credentials: ``(host, port)`` pairs, port None for any.

    :param entries: the parsed entries; build it with :meth:`parse`.
    """

    entries: tuple[tuple[str, int | None], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> AllowedHosts:
        """Parse ``[confluence] allowed_endpoint_hosts``: ``host`` or ``host:port`` entries, separated by commas.

        :raises ConfluenceConfigError: an entry is not a host or ``host:port`` (the message names the setting).
        """
        entries: list[tuple[str, int | None]] = []
        for raw in (text or "").split(","):
            entry = raw.strip()
            if not entry:
                continue
            try:
                parts = urlsplit("//" + entry)
                host, port = parts.hostname, parts.port
            except ValueError:
                host, port = None, None
            if not host or refused_character(entry) or parts.netloc != entry or any(c in entry for c in "/?#"):
                shown = (
                    repr(entry) if refused_character(entry) is None else "an entry with '@', a backslash or whitespace"
                )
                raise ConfluenceConfigError(
                    f"{ALLOWED_HOSTS_SETTING} ({ALLOWED_HOSTS_ENV}) has {shown}, which is not a host or host:port; "
                    "list entries such as api.example.com or 127.0.0.1:8765, separated by commas."
                )
            entries.append((host.lower(), port))
        return cls(tuple(entries))

    def permits(self, where: Origin) -> bool:
        """True when an entry names ``where``'s host (and its port, when the entry has one)."""
        return any(host == where.host and port in (None, where.port) for host, port in self.entries)


def check_endpoint(conn_id: str, name: str, url: str, allowed: AllowedHosts) -> str:
    """Accept ``url`` for a connection's ``name`` setting only where credentials may be sent.

    :param conn_id: the connection, for messages.
    :param name: ``auth_url``, ``grant_url`` or ``api_url``.
    :param url: the URL, stripped.
    :param allowed: the deployment's :class:`AllowedHosts`.
    :returns: ``url``, unchanged.
    :raises ConfluenceConfigError: the URL is malformed (:func:`parse_url`), uses plain http to a host that is not
        loopback, or its host is neither Atlassian's nor listed; the message names the setting to change.
    """
    fix = f"leave {name} empty for Atlassian's default."
    where = parse_url(f"Connection {conn_id!r}: {name}", url, fix=fix)
    if where.scheme != "https" and not is_loopback(where.host):
        raise ConfluenceConfigError(
            f"Connection {conn_id!r}: {name} must use https:// (got {where.scheme}://{where.host}); "
            "the client secret and tokens are never sent in clear text."
        )
    if (where.scheme == "https" and where.host in ATLASSIAN_HOSTS and where.port == 443) or allowed.permits(where):
        return url
    raise ConfluenceConfigError(
        f"Connection {conn_id!r}: {name} points at {where.netloc}, which is neither Atlassian's "
        f"({', '.join(ATLASSIAN_HOSTS)}) nor listed in {ALLOWED_HOSTS_SETTING} ({ALLOWED_HOSTS_ENV}): the client "
        f"secret and tokens are only sent to those hosts. Leave {name} empty for Atlassian's default, or ask the "
        f"administrator of this Airflow deployment to add {where.netloc} to {ALLOWED_HOSTS_SETTING}."
    )


def redirect_origin(url: str, location: str | None) -> str:
    """Where a redirect from ``url`` to ``location`` leads, for a message: its origin, never its path or query."""
    from urllib.parse import urljoin

    there = origin(urljoin(url, location or ""))
    return str(there) if there is not None else "a location that is not an http(s) URL"


def redirect_target(
    method: str, url: str, status: int, location: str | None, hops: int, *, headers: Mapping[str, str] | None = None
) -> str:
    """Where a redirect answer to ``method url`` may be followed: the absolute target, or an error.

    :param hops: redirects already followed for this request.
    :param headers: the redirect answer's headers (the error keeps the trace id and the allow-listed ones).
    :raises ConfluenceApiError: ``method`` is a write, the target is on another scheme, host or port than ``url``,
        or more than :data:`MAX_REDIRECTS` were followed. The message shows the target's origin, never its path
        or query (which may carry a token).
    """
    from urllib.parse import urljoin

    here = origin(url)
    there = origin(urljoin(url, location or ""))
    said = f"Confluence answered {status}, a redirect to {redirect_origin(url, location)}"
    kept = dict(headers or {})  # ConfluenceApiError keeps only the allow-listed ones
    if method.upper() not in _READS:
        raise ConfluenceApiError(
            status,
            method,
            url,
            "redirect",
            f"{said}; writes never follow redirects (the body "
            "would be sent again, there), so nothing was sent again. Check api_url; if it is "
            "Atlassian's, report the answer to the provider's maintainers.",
            headers=kept,
        )
    if there is None or there != here:
        raise ConfluenceApiError(
            status,
            method,
            url,
            "redirect",
            f"{said}; reads follow redirects only on their own "
            f"host ({here}), the one the access token is meant for, so it was not followed. "
            "Check api_url.",
            headers=kept,
        )
    if hops >= MAX_REDIRECTS:
        raise ConfluenceApiError(
            status,
            method,
            url,
            "redirect",
            f"{said}, after {hops} redirects already; stopping instead of looping. Check api_url.",
            headers=kept,
        )
    return urljoin(url, location or "")
