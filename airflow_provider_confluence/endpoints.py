"""Where a request really goes: the one check of every URL setting.

``requests`` hands a URL to urllib3, which finds the host to connect to with its own parser
(``urllib3.util.parse_url``, which follows the WHATWG URL standard and ends the authority at a backslash), while
Python's ``urllib.parse.urlsplit`` (RFC 3986) ends it at the last ``@``. ``http://a.example:80\\@127.0.0.1/``
is loopback to one and ``a.example`` to the other. :func:`parse_url` accepts a URL only when both read the same
scheme, host and port, and refuses outright what parsers disagree on: backslashes, userinfo (``@``),
whitespace and control characters. Every URL setting of a connection goes through it.

References: urllib3's ``parse_url`` (https://urllib3.readthedocs.io/en/stable/reference/urllib3.util.html),
Python's ``urlsplit`` (https://docs.python.org/3/library/urllib.parse.html#url-parsing-security).

This module imports nothing from Airflow.
"""

from __future__ import annotations

import ipaddress
import unicodedata
from dataclasses import dataclass
from urllib.parse import urlsplit

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url as urllib3_parse_url

from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = ["Origin", "is_loopback", "origin", "parse_url", "refused_character"]

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
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return Origin(scheme, parts.hostname.lower(), port or _DEFAULT_PORTS[scheme])


def refused_character(url: str) -> str | None:
    """Why ``url`` holds a character that URL parsers read differently, or None."""
    if "\\" in url:
        return "contains a backslash, which urllib3 (sending the request) reads as the end of the host"
    if "@" in url:
        return ("contains '@', which puts a user name or password into the URL (and hides the host after it); "
                "credentials never go into a URL")
    for position, char in enumerate(url):
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf", "Zl", "Zp", "Zs"):
            return f"contains whitespace or a control character (at position {position + 1})"
    return None


def parse_url(what: str, url: str, *, fix: str) -> Origin:
    """Where ``url`` is sent, after checking that ``urlsplit`` and urllib3 read the same scheme, host and port.

    :param what: what the URL is, for messages (``"Connection 'x': token_url"``).
    :param url: the URL, stripped.
    :param fix: what to do instead, appended to every message.
    :raises ConfluenceConfigError: the URL is not an absolute http(s) URL, holds a backslash, userinfo,
        whitespace or a control character, or the two parsers disagree. The message never quotes a URL that
        holds ``@`` (it may carry a password).
    """
    problem = refused_character(url)
    if problem:
        raise ConfluenceConfigError(f"{what} {problem}; {fix}")
    split = origin(url)
    if split is None:
        raise ConfluenceConfigError(f"{what} {url!r} is not an absolute http(s) URL; {fix}")
    try:
        read = urllib3_parse_url(url)
        sent = Origin(str(read.scheme or "").lower(), str(read.host or "").lower().strip("[]"),
                      read.port or _DEFAULT_PORTS.get(str(read.scheme or "").lower(), 0))
    except (LocationParseError, ValueError) as exc:
        raise ConfluenceConfigError(
            f"{what} cannot be read by urllib3, which sends the request ({type(exc).__name__}), although Python's "
            f"urlsplit reads host {split.host}; write the host in ASCII (an international name in its xn-- form). "
            f"{fix}"
        ) from None
    if sent != split:
        raise ConfluenceConfigError(
            f"{what} is read as {split} by Python's urlsplit but as {sent} by urllib3, which sends the request; "
            f"{fix}"
        )
    return split
