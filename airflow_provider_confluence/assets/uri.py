"""The ``confluence://<site host>/pages/<page id>`` asset URI: building and normalising it.

Airflow calls :func:`sanitize_uri` for every Asset (Dataset on Airflow 2) whose URI has the ``confluence`` scheme,
after its own clean-up (scheme lower-cased, user info, fragment and trailing slashes dropped): the provider-info
entries ``asset-uris`` (Airflow 3) and ``dataset-uris`` (Airflow 2) register it, as Airflow's own providers register
theirs (``postgres``, ``s3``). It imports nothing from Airflow: the providers manager imports it.
"""

from __future__ import annotations

import re
from urllib.parse import SplitResult, urlsplit

#: The asset URI scheme of Confluence pages.
SCHEME = "confluence"
#: Ports that name the site's default (https, or http on a test site) and are dropped from the URI.
DEFAULT_PORTS = (443, 80)
_PAGE_PATH = re.compile(r"^/pages/(\d+)$")
_EXAMPLE = "confluence://your-site.atlassian.net/pages/123456"


def _refuse(uri: str, problem: str) -> ValueError:
    return ValueError(
        f"Confluence asset URI {uri!r} {problem}. Write it as confluence://<site host>/pages/<numeric page id>, "
        f"such as {_EXAMPLE} (page_asset_uri(site_url, page_id) builds it)."
    )


def sanitize_uri(parts: SplitResult) -> SplitResult:
    """Normalise a ``confluence://`` URI: lower-case host, no default port, ``/pages/<digits>`` as the path.

    :param parts: the URI as Airflow split it.
    :returns: the normalised parts; two spellings of one page (``Your-Site.atlassian.net:443/pages/7/``) are equal.
    :raises ValueError: the URI names no site host, no numeric page id, or has a query (which would be lost).
    """
    uri = parts.geturl()
    try:
        port = parts.port
    except ValueError:
        raise _refuse(uri, "has a port that is not a number") from None
    host = (parts.hostname or "").lower()
    if not host:
        raise _refuse(uri, "names no site host")
    if parts.query:
        raise _refuse(uri, "has a query, which names nothing of a page")
    path = parts.path.rstrip("/")
    if not _PAGE_PATH.match(path):
        raise _refuse(uri, "names no numeric page id")
    if ":" in host:  # an IPv6 address keeps its brackets
        host = f"[{host}]"
    netloc = host if port is None or port in DEFAULT_PORTS else f"{host}:{port}"
    return SplitResult(scheme=SCHEME, netloc=netloc, path=path, query="", fragment="")


def page_asset_uri(site_url: str, page_id: str | int) -> str:
    """The normalised asset URI of a page.

    :param site_url: the Confluence site, ``https://your-site.atlassian.net`` (a host alone is accepted too).
    :param page_id: the page's numeric id.
    :raises ValueError: the site has no host or the id is not a number.
    """
    site = str(site_url).strip()
    parts = urlsplit(site if "//" in site else f"//{site}")
    pid = str(page_id).strip()
    return sanitize_uri(SplitResult(SCHEME, parts.netloc.rpartition("@")[2], f"/pages/{pid}", "", "")).geturl()


def page_id_of(uri: str) -> str:
    """The page id an asset URI names (the URI is checked as :func:`sanitize_uri` checks it)."""
    match = _PAGE_PATH.match(sanitize_uri(urlsplit(uri)).path)
    assert match is not None  # sanitize_uri refused every other path
    return match.group(1)
