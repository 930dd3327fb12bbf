"""CQL search over v1 ``GET /wiki/rest/api/search`` (a mixin of the client).

v2 has no search, and the v1 search still answers behind the OAuth gateway (scope ``search:confluence``, or
the granular ``read:content-details:confluence``). Its pages are linked by ``_links.next``, which is relative
to ``_links.context`` (``/wiki``), not to the site root as in v2: the client joins it onto ``{gateway}/wiki``.

Guards: a next link that was already followed stops the search (the client's looping-cursor guard), and so do
:data:`MAX_STALLED_PAGES` pages in a row that bring no new result (empty, or the previous page again).

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.client.pagination import next_link
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError

__all__ = ["DEFAULT_SEARCH_LIMIT", "MAX_SEARCH_LIMIT", "MAX_STALLED_PAGES", "SEARCH_PATH", "SearchMixin"]

log = logging.getLogger(__name__)

SEARCH_PATH = "/wiki/rest/api/search"
#: Results asked for per request unless told otherwise (Confluence's own default is 25).
DEFAULT_SEARCH_LIMIT = 100
#: The most results per request this client asks for. Atlassian documents no maximum for Cloud, only that
#: "this may be restricted by fixed system limits"; a smaller page than asked for is fine (the next link follows).
MAX_SEARCH_LIMIT = 250
#: Pages in a row without a new result (while a next link is still given) after which the search stops.
MAX_STALLED_PAGES = 3


def _key(result: Any) -> str | None:
    """What identifies a search result: its content id, else its URL; None when it has neither."""
    if not isinstance(result, dict):
        return None
    content = result.get("content")
    if isinstance(content, dict) and content.get("id") is not None:
        return f"id:{content['id']}"
    url = result.get("url")
    return f"url:{url}" if isinstance(url, str) and url else None


def _check(cql: object, max_results: object, limit: object) -> None:
    if not isinstance(cql, str) or not cql.strip():
        raise ConfluenceConfigError(
            f"A CQL query is required, such as 'type = page AND space = DEMO AND label = \"report\"', not {cql!r}."
        )
    if max_results is not None and (
        isinstance(max_results, bool) or not isinstance(max_results, int) or max_results < 1
    ):
        raise ConfluenceConfigError(f"max_results={max_results!r} must be a positive whole number, or None for all.")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_SEARCH_LIMIT:
        raise ConfluenceConfigError(f"limit={limit!r} must be a whole number from 1 to {MAX_SEARCH_LIMIT}.")


class SearchMixin(MixinBase):
    """The CQL search; the host class provides ``iter_pages``."""

    def search(
        self,
        cql: str,
        *,
        max_results: int | None = None,
        limit: int = DEFAULT_SEARCH_LIMIT,
        cursor: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the raw v1 search results of a CQL query, following every page, lazily.

        Each result has ``content`` (``id``, ``type``, ``status``, ``title``, ``_links.webui``), ``title``,
        ``excerpt``, ``url`` (relative to the site's ``/wiki``), ``lastModified`` and
        ``resultGlobalContainer`` (the space). See :func:`~.summaries.search_result_summary`.

        :param cql: the CQL query, such as ``type = page AND space = "DEMO" ORDER BY lastmodified DESC``.
        :param max_results: stop after this many results (default: all); no page beyond them is requested.
        :param limit: results per request, 1 to 250 (default 100).
        :param cursor: resume a search that a :class:`~airflow_provider_confluence.exceptions.ConfluenceRateLimited`
            interrupted, at its ``progress["cursor"]`` (``max_results`` then counts from there).
        :raises ConfluenceConfigError: for an empty query or a bad number, before anything is sent.
        :raises ConfluenceRateLimited: with ``progress["cursor"]``, where to resume.
        :raises ConfluenceApiError: 400 for a CQL query Confluence cannot parse.
        :raises ConfluenceError: when the next links loop or the pages stop bringing new results.
        """
        _check(cql, max_results, limit)
        return self._search(cql.strip(), max_results, limit, cursor)

    def _search(self, cql: str, max_results: int | None, limit: int, cursor: str | None) -> Iterator[dict[str, Any]]:
        params = {"cql": cql, "limit": min(limit, max_results) if max_results else limit}
        count = stalled = 0
        previous: set[str] = set()
        for results, body in self.iter_pages(SEARCH_PATH, params, api="v1", cursor=cursor):
            keys = {key for key in map(_key, results) if key is not None}
            fresh = [r for r in results if isinstance(r, dict) and (_key(r) is None or _key(r) not in previous)]
            previous = keys
            stalled = 0 if fresh else stalled + 1
            if stalled >= MAX_STALLED_PAGES and next_link(body) is not None:
                raise ConfluenceError(
                    f"The search made no progress over {stalled} pages in a row (no new result, but another next "
                    f"link); stopped after {count} results. Narrow the CQL query or retry later."
                )
            for result in fresh:
                yield result
                count += 1
                if max_results is not None and count >= max_results:
                    return
        log.debug("The search gave %d results.", count)
