"""``ConfluenceSearchOperator`` (import it from :mod:`airflow_provider_confluence.operators.confluence`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceRateLimited
from airflow_provider_confluence.operators._common import (
    CONN_ID_FIELD,
    PROGRESS_EVERY,
    ConfluenceOperatorMixin,
    check_positive,
    given,
)
from airflow_provider_confluence.operators._deferral import RateLimitDeferralMixin
from airflow_provider_confluence.version_compat import BaseOperator

#: The most results Confluence returns per request for a plain CQL search.
MAX_SEARCH_LIMIT = 250


class ConfluenceSearchOperator(RateLimitDeferralMixin, ConfluenceOperatorMixin, BaseOperator):
    """Search Confluence with CQL, following every page of results (v1 ``/wiki/rest/api/search``).

    Needs the ``search:confluence`` scope.

    :param cql: the CQL query (templated), such as ``type = page AND space = ENG AND label = "daily-report"``.
    :param max_results: stop after this many results (default: all).
    :param limit: results per request, 1 to 250 (default 100).
    :param confluence_conn_id: the ``confluence_oauth`` connection (templated).
    :param deferrable: when Atlassian's rate limit asks for a wait longer than the task may sleep (an exhausted
        hourly quota), defer until it ends and continue from the page of results that was refused, not from the
        first (default: ``[operators] default_deferrable``); otherwise the try fails with ``ConfluenceRateLimited``.
        The results so far and the cursor travel in the deferral.
    :returns: a list of ``{"id", "type", "title", "space", "url", "excerpt", "last_modified"}``.
    """

    resume_keys = ("cursor", "results")
    template_fields: Sequence[str] = ("cql", CONN_ID_FIELD)

    def __init__(
        self,
        *,
        cql: str,
        max_results: int | None = None,
        limit: int = 100,
        confluence_conn_id: str = "confluence_default",
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.init_deferrable(deferrable)
        if not given(cql):
            raise ConfluenceConfigError('cql is empty: give a CQL query, such as "type = page AND space = ENG".')
        check_positive("max_results", max_results, none_means="all results")
        check_positive("limit", limit, maximum=MAX_SEARCH_LIMIT)
        self.cql = cql
        self.max_results = max_results
        self.limit = limit
        self.confluence_conn_id = confluence_conn_id

    def execute(self, context: Any) -> list[dict[str, Any]]:
        return self.run_or_defer(context, {})  # type: ignore[no-any-return]

    def run_from(self, context: Any, resume: dict[str, Any]) -> list[dict[str, Any]]:
        """Search; after a deferral, from ``resume["cursor"]`` with ``resume["results"]`` already fetched."""
        from airflow_provider_confluence.content.summaries import search_result_summary

        cql = str(self.cql).strip() if given(self.cql) else ""
        if not cql:
            raise ConfluenceConfigError("cql rendered to an empty query: check the template that builds it.")
        hook = self.confluence_hook()
        client = hook.get_conn()
        base_url = f"{hook.settings.site_url}/wiki"
        requests_before = client.request_count
        results: list[dict[str, Any]] = [r for r in resume.get("results") or [] if isinstance(r, dict)]
        cursor = resume.get("cursor") if isinstance(resume.get("cursor"), str) else None
        if cursor:
            self.log.info("Resuming the search after %d results, at %s.", len(results), cursor)
        else:
            self.log.info(
                "Searching with CQL %r (%s per request, %s).",
                cql,
                self.limit,
                f"at most {self.max_results}" if self.max_results else "all results",
            )
        left = None if self.max_results is None else self.max_results - len(results)
        try:
            if left is None or left > 0:
                for result in hook.search(cql, max_results=left, limit=self.limit, cursor=cursor):
                    results.append(search_result_summary(result, base_url))
                    if len(results) % PROGRESS_EVERY == 0:
                        self.log.info("Fetched %d search results so far.", len(results))
        except ConfluenceRateLimited as exc:
            exc.with_progress(results=results)
            raise
        self.log.info("Fetched %d search results in %d requests.", len(results), client.request_count - requests_before)
        return results
