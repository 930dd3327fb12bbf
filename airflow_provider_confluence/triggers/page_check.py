"""The one check behind :class:`~.confluence.ConfluencePageSensor` and its trigger: is the page there yet?

Both the sensor (in the worker) and :class:`~airflow_provider_confluence.triggers.confluence.ConfluencePageTrigger`
(in a thread of the triggerer) run :meth:`PageWait.check`, so poke, reschedule and deferrable modes decide alike.

Outcomes: the page's summary (done); ``None`` (not yet: the page is missing, its version is lower than
``min_version``, it lacks ``label``, or Confluence had a passing failure, such as a timeout, 5xx or 429 after
the client's retries); or an exception (fail now: bad settings, a missing space, authorization or scope errors
and any other 4xx, which waiting never fixes). A trigger carries such an exception to the sensor as JSON with
:meth:`~airflow_provider_confluence.exceptions.ConfluenceError.to_event`.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_confluence.content.summaries import page_summary
from airflow_provider_confluence.exceptions import (
    ConfluenceApiError,
    ConfluenceAuthError,
    ConfluenceBrokerError,
    ConfluenceConfigError,
    ConfluenceConnectionError,
    ConfluenceNotFound,
    ConfluenceRateLimited,
    ConfluenceSpaceMissing,
)

if TYPE_CHECKING:
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

log = logging.getLogger(__name__)


def _text(value: object) -> str | None:
    text = "" if value is None else str(value).strip()
    return text or None


@dataclass(frozen=True)
class PageWait:
    """What to wait for: a page by id, or by title in a space, optionally at a version and with a label.

    :param page_id: the page's id; or give ``title`` and one of ``space_key``/``space_id``.
    :param space_key: the key of the space holding ``title``.
    :param space_id: the numeric id of that space.
    :param title: the page's exact title.
    :param min_version: done only once the page's version number is at least this.
    :param label: done only once the page carries this label (compared lower-cased, as Confluence stores it).
    """

    page_id: str | None = None
    space_key: str | None = None
    space_id: str | None = None
    title: str | None = None
    min_version: int | None = None
    label: str | None = None

    @classmethod
    def build(
        cls,
        *,
        page_id: object = None,
        space_key: object = None,
        space_id: object = None,
        title: object = None,
        min_version: object = None,
        label: object = None,
    ) -> PageWait:
        """Check and normalise rendered values (:class:`ConfluenceConfigError` saying what to change)."""
        page_id, space_key, space_id, title = _text(page_id), _text(space_key), _text(space_id), _text(title)
        label = _text(label)
        if bool(page_id) == bool(title):
            raise ConfluenceConfigError("Give the sensor either page_id, or title with space_key or space_id.")
        if page_id and (space_key or space_id):
            raise ConfluenceConfigError("page_id identifies the page on its own: drop space_key/space_id.")
        if title and bool(space_key) == bool(space_id):
            raise ConfluenceConfigError(f"Title {title!r} needs exactly one of space_key and space_id.")
        version: int | None = None
        if _text(min_version) is not None:
            try:
                version = int(str(min_version).strip())
            except ValueError:
                raise ConfluenceConfigError(f"min_version must be a whole number, not {min_version!r}.") from None
            if version < 1:
                raise ConfluenceConfigError(f"min_version must be 1 or more, not {version}.")
        return cls(page_id, space_key, space_id, title, version, label.lower() if label else None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-able fields (what a trigger serializes)."""
        return asdict(self)

    def describe(self) -> str:
        """``page 123`` or ``page 'Title' in space ENG``, for log lines and errors."""
        if self.page_id:
            return f"page {self.page_id}"
        return f"page {self.title!r} in space {self.space_key or self.space_id}"

    def check(self, hook: ConfluenceOAuthHook) -> tuple[dict[str, Any] | None, str]:
        """One look at Confluence: ``(summary, why)`` when done, ``(None, why not)`` when not yet.

        :raises ConfluenceError: when waiting cannot help (see the module docstring).
        """
        summary, reason, _ = self.look(hook)
        return summary, reason

    def look(self, hook: ConfluenceOAuthHook) -> tuple[dict[str, Any] | None, str, float | None]:
        """:meth:`check`, plus when to look again at the earliest: the ``retry_at`` (epoch seconds) of a rate
        limit that refused this look (an exhausted hourly quota), else None."""
        try:
            summary, reason = self._check(hook)
        except ConfluenceRateLimited as exc:
            if exc.retry_at is not None:
                why = f"Atlassian's rate limit is exhausted ({exc.reason or '429'}); looking again once it resets"
                return None, why, exc.retry_at
            return None, "Confluence did not answer this time (ConfluenceRateLimited); trying again later", None
        except ConfluenceConnectionError as exc:
            return None, f"Confluence did not answer this time ({type(exc).__name__}); trying again later", None
        except ConfluenceApiError as exc:
            if (exc.status_code or 0) >= 500:
                return None, f"Confluence answered {exc.status_code} this time; trying again later", None
            raise
        except ConfluenceAuthError as exc:
            if exc.transient:  # the token endpoint timed out or answered 5xx: the grant itself is fine
                return None, "Atlassian's token endpoint did not answer this time; trying again later", None
            raise
        except ConfluenceBrokerError as exc:
            if exc.unreachable or (exc.status_code or 0) >= 500:  # the API server restarting, say
                return None, "The token broker did not answer this time; trying again later", None
            raise
        return summary, reason, None

    def _check(self, hook: ConfluenceOAuthHook) -> tuple[dict[str, Any] | None, str]:
        client = hook.get_conn()
        if self.page_id:
            try:
                page = client.get_page(self.page_id)
            except ConfluenceNotFound:
                return None, f"{self.describe()} does not exist yet (or the app's user cannot see it)"
        else:
            space_id = self.space_id or self._space_id(hook)
            found = client.find_page(space_id=space_id, title=str(self.title))
            if found is None:
                return None, f"{self.describe()} does not exist yet"
            page = found
        if page.get("status") not in (None, "current"):
            return None, f"{self.describe()} is {page.get('status')}, not published"
        version = (page.get("version") or {}).get("number")
        if self.min_version is not None and (not isinstance(version, int) or version < self.min_version):
            return None, f"{self.describe()} is at version {version}, waiting for {self.min_version}"
        if self.label is not None:
            labels = client.get_page_labels(str(page.get("id")))
            if self.label not in {str(name).lower() for name in labels}:
                return None, f"{self.describe()} does not carry label {self.label!r} yet"
        return page_summary(page), f"{self.describe()} is there (version {version})"

    def _space_id(self, hook: ConfluenceOAuthHook) -> str:
        try:
            return hook.get_space_id(str(self.space_key))
        except ConfluenceSpaceMissing:
            raise ConfluenceSpaceMissing(
                f"Space {self.space_key!r} does not exist, or the connection's user cannot see it: check "
                "space_key (the sensor waits for pages, not for spaces).",
                space_key=str(self.space_key),
            ) from None
