"""Page labels: read them over v2, add them over v1 (a mixin of the client, and the name rules).

v2 can list a page's labels (``GET /wiki/api/v2/pages/{id}/labels``, scope ``read:page:confluence``) but has no
endpoint to add one, so adding goes through v1 ``POST /wiki/rest/api/content/{id}/label`` (granular scopes
``read:label:confluence`` + ``write:label:confluence``, or the classic ``write:confluence-content``), which
still answers behind the OAuth gateway. Adding an existing label is a no-op there, so the POST is marked
idempotent: it may be re-sent after a failure that may have landed.

Confluence lower-cases label names and answers 400 for a name with a space, one of ``!#&()*,.:;<>?@[]^`` or
more than 255 characters; :func:`normalize_labels` refuses those before anything is sent.

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = ["FORBIDDEN_LABEL_CHARACTERS", "LabelsMixin", "MAX_LABEL_LENGTH", "normalize_labels"]

log = logging.getLogger(__name__)

#: Characters Confluence refuses in a label name (besides whitespace).
FORBIDDEN_LABEL_CHARACTERS = "!#&()*,.:;<>?@[]^"
#: The longest label name Confluence accepts.
MAX_LABEL_LENGTH = 255


def normalize_labels(labels: str | Iterable[str] | None) -> list[str]:
    """Check label names as Confluence would, and return them lower-cased, without duplicates, in order.

    :param labels: label names; a single string is one label (``"daily-report"``), not a list of letters.
    :raises ConfluenceConfigError: for a name that is empty, not a string, too long, or holds whitespace or
        one of ``!#&()*,.:;<>?@[]^`` (Confluence would answer 400).
    """
    if labels is None:
        return []
    items: Iterable[Any] = [labels] if isinstance(labels, str) else labels
    names: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise ConfluenceConfigError(f"A label must be a string, not {type(item).__name__} ({item!r}).")
        name = item.strip().lower()
        if not name:
            raise ConfluenceConfigError("A label name is empty; remove it or give it a name such as 'daily-report'.")
        bad = sorted({ch for ch in name if ch.isspace() or ch in FORBIDDEN_LABEL_CHARACTERS})
        if bad:
            shown = " ".join("a space" if ch == " " else repr(ch) for ch in bad)
            raise ConfluenceConfigError(
                f"The label {name[:60]!r} contains {shown}, which Confluence refuses in label names "
                f"(whitespace and {FORBIDDEN_LABEL_CHARACTERS}); use '-' or '_' instead, "
                "and give several labels as a list."
            )
        if len(name) > MAX_LABEL_LENGTH:
            raise ConfluenceConfigError(
                f"The label {name[:40]!r}... has {len(name)} characters; Confluence accepts at most {MAX_LABEL_LENGTH}."
            )
        if name not in names:
            names.append(name)
    return names


def _labels_path(page_id: str, *, v1: bool = False) -> str:
    quoted = quote(str(page_id), safe="")
    return f"/wiki/rest/api/content/{quoted}/label" if v1 else f"/wiki/api/v2/pages/{quoted}/labels"


def _names(results: Any) -> list[str]:
    return [str(r["name"]) for r in results or () if isinstance(r, dict) and r.get("name") is not None]


class LabelsMixin(MixinBase):
    """Label methods; the host class provides ``request`` and ``paginate``."""

    def get_page_labels(self, page_id: str) -> list[str]:
        """Return the names of a page's labels, in Confluence's order, following every page of results.

        :param page_id: the page's id.
        :raises ConfluenceNotFound: when there is no such page or the app's user cannot see it.
        """
        return _names(self.paginate(_labels_path(page_id)))

    def add_page_labels(
        self, page_id: str, labels: str | Iterable[str], *, current: Iterable[str] | None = None
    ) -> list[str]:
        """Add the labels the page lacks (prefix ``global``) and return the page's label names afterwards.

        Names are checked and lower-cased first (:func:`normalize_labels`); labels the page already has are not
        sent, and when it has them all nothing is written.

        :param page_id: the page's id.
        :param labels: label names (a single string is one label).
        :param current: the page's labels when the caller knows them (a page it has just created has none): they
            are not read again, which saves a request. None (default): read them.
        :raises ConfluenceConfigError: for a name Confluence would refuse; nothing is sent then.
        """
        wanted = normalize_labels(labels)
        current = self.get_page_labels(page_id) if current is None else list(current)
        missing = [name for name in wanted if name not in current]
        if not missing:
            log.info("Page %s already has the labels %s; nothing to add.", page_id, wanted)
            return current
        answer = self.request(
            "POST",
            _labels_path(page_id, v1=True),
            json=[{"prefix": "global", "name": name} for name in missing],
            idempotent=True,  # adding an existing label is a no-op: safe to re-send
        )
        log.info("Added the labels %s to page %s.", missing, page_id)
        results = answer.get("results") if isinstance(answer, dict) else None
        limit = answer.get("limit") if isinstance(answer, dict) else None
        truncated = isinstance(limit, int) and isinstance(results, list) and len(results) >= limit
        if isinstance(results, list) and not truncated:
            return _names(results)
        return self.get_page_labels(page_id)  # no list, or one page of a longer one: read them all over v2
