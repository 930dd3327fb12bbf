"""Typed space methods of :class:`~airflow_provider_confluence.client.confluence.ConfluenceClient` (a mixin).

Kept apart from ``client.py`` so that the transport (auth, retries, pagination) stays small and readable.
This module imports nothing from Airflow.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import quote

from airflow_provider_confluence.client._host import MixinBase
from airflow_provider_confluence.exceptions import ConfluenceApiError, ConfluenceConfigError, ConfluenceSpaceMissing

__all__ = ["SPACES_PATH", "SpacesMixin", "csv_param"]

SPACES_PATH = "/wiki/api/v2/spaces"


def csv_param(value: str | Iterable[str]) -> str:
    """A v2 array query parameter: ``["A", "B"]`` -> ``"A,B"`` (a string is passed through)."""
    if isinstance(value, str):
        return value.strip()
    return ",".join(str(item).strip() for item in value if str(item).strip())


class SpacesMixin(MixinBase):
    """Space methods; the host class provides ``request``, ``paginate`` and ``url``."""

    def iter_spaces(
        self,
        *,
        keys: str | Iterable[str] | None = None,
        space_type: str | None = None,
        status: str | None = None,
        labels: str | Iterable[str] | None = None,
        cursor: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Yield the spaces the app's user can see, one by one (250 per request).

        :param keys: only these space keys (a list, or a comma-separated string).
        :param space_type: ``global``, ``collaboration``, ``knowledge_base`` or ``personal``.
        :param status: ``current`` or ``archived``.
        :param labels: only spaces with these labels (a list, or a comma-separated string).
        :param cursor: resume a listing that a ``ConfluenceRateLimited`` interrupted, at its ``progress["cursor"]``.
        """
        params: dict[str, Any] = {}
        if keys:
            params["keys"] = csv_param(keys)
        if space_type:
            params["type"] = space_type
        if status:
            params["status"] = status
        if labels:
            params["labels"] = csv_param(labels)
        return self.paginate(SPACES_PATH, params, cursor=cursor)

    def get_space(self, space_id: str) -> dict[str, Any]:
        """Return one space by its id.

        :param space_id: the space's numeric id (not its key; see :meth:`get_space_id`).
        :raises ConfluenceNotFound: when there is no such space or the app's user cannot see it.
        """
        space = self.request("GET", f"{SPACES_PATH}/{quote(str(space_id), safe='')}")
        if not isinstance(space, dict):
            url = self.url(f"{SPACES_PATH}/{space_id}")
            raise ConfluenceApiError(200, "GET", url, None, "The answer is not a space.")
        return space

    def get_space_id(self, space_key: str) -> str:
        """Return the id of the space with this key (``GET /spaces?keys=KEY``).

        :param space_key: the space key, such as ``DOCS`` (personal spaces start with ``~``).
        :raises ConfluenceSpaceMissing: when no space has this key or the app's user cannot see it (Confluence
            answers such a lookup with an empty list, not a 404).
        """
        key = (space_key or "").strip()
        if not key:
            raise ConfluenceConfigError("A space key is required.")
        body = self.request("GET", SPACES_PATH, params={"keys": key})
        results = body.get("results") if isinstance(body, dict) else None
        candidates = [r for r in results or [] if isinstance(r, dict) and r.get("id") is not None]
        match = next((r for r in candidates if r.get("key") == key), candidates[0] if candidates else None)
        if match is None:
            raise ConfluenceSpaceMissing(
                f"No space with key {key!r}. Check the key (keys are case-sensitive; personal spaces start with ~) "
                "and that the app's user can see the space.",
                space_key=key,
            )
        return str(match["id"])
