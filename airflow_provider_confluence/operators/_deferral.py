"""Deferring an operator while Atlassian's rate limit is exhausted, and resuming it where it stopped.

When the client gives up on a 429 whose wait is longer than a task may sleep (an exhausted hourly points quota:
https://developer.atlassian.com/cloud/confluence/rate-limiting/), it raises
:class:`~airflow_provider_confluence.exceptions.ConfluenceRateLimited` with ``retry_at``. An operator built with
``deferrable=True`` then defers to :class:`~airflow_provider_confluence.triggers.rate_limit.
ConfluenceRateLimitTrigger` until that moment (no worker slot is held), and is resumed with its ``resume`` state
(what it had done: a listing's cursor and results so far, a page already created), which travels both in the
deferral's keyword arguments and in the trigger's event. Without ``deferrable``, the error fails the try as
before (Airflow's ``retries`` apply).

The deferral never asks the trigger to wake in the past nor more than two hours on (see
:func:`~airflow_provider_confluence.triggers.rate_limit.wake_at`): a refused call after the wait defers again, with
Atlassian's new ``Retry-After``, and never spins.

Operators import this module at DAG-parse time: it imports nothing heavy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NoReturn

from airflow_provider_confluence.exceptions import ConfluenceError, ConfluenceRateLimited
from airflow_provider_confluence.version_compat import conf

if TYPE_CHECKING:
    from airflow.sdk.bases.operator import BaseOperator

#: The method a deferred operator is resumed with.
RESUME_METHOD = "resume_after_rate_limit"


def default_deferrable() -> bool:
    """``[operators] default_deferrable`` (False when unset)."""
    return bool(conf.getboolean("operators", "default_deferrable", fallback=False))


class RateLimitDeferralMixin:
    """Defer on :class:`ConfluenceRateLimited` and resume. Put it before ``BaseOperator`` in the bases; the
    operator sets ``deferrable``, implements :meth:`run_from` (its work, from a resume state), and its ``execute``
    returns ``self.run_or_defer(context, {})``."""

    deferrable: bool

    def init_deferrable(self, deferrable: bool | None) -> None:
        """Set ``deferrable`` from the operator's argument, by default ``[operators] default_deferrable``."""
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)

    def run_from(self, context: Any, resume: dict[str, Any]) -> Any:
        """Do the operator's work, skipping what ``resume`` says was already done.

        :raises ConfluenceRateLimited: with ``progress`` saying what was done, for :meth:`resume_state`.
        """
        raise NotImplementedError

    #: The facts of :attr:`ConfluenceRateLimited.progress` this operator resumes from (others, such as the
    #: cursor of a listing the operator makes along the way, are dropped).
    resume_keys: tuple[str, ...] = ()

    def resume_state(self, resume: dict[str, Any], exc: ConfluenceRateLimited) -> dict[str, Any]:
        """The state to resume from after ``exc``: the :attr:`resume_keys` of its ``progress``, over ``resume``."""
        return {**resume, **{key: exc.progress[key] for key in self.resume_keys if key in exc.progress}}

    def resume_after_rate_limit(
        self, context: Any, event: dict[str, Any] | None = None, resume: dict[str, Any] | None = None
    ) -> Any:
        """Resumed by the trigger: carry on from the state in its event (or in the deferral's arguments).

        :raises ConfluenceError: for an event that says the wait failed (``status`` other than ``resume``).
        """
        operator: BaseOperator = self  # type: ignore[assignment]
        status = event.get("status", "resume") if isinstance(event, dict) else "resume"
        if status != "resume":
            detail = event.get("message") if isinstance(event, dict) else None
            raise ConfluenceError(
                f"The wait for Atlassian's rate limit ended with status {str(status)[:40]!r}"
                f"{f': {str(detail)[:300]}' if detail else ''}. Nothing more was sent; clear the task to try again "
                "(pages it already wrote are found again, not written twice)."
            )
        if isinstance(event, dict) and event.get("note"):
            operator.log.warning("Atlassian's rate limit: %s.", event["note"])
        state = event.get("resume") if isinstance(event, dict) else None
        if not isinstance(state, dict):
            state = resume if isinstance(resume, dict) else {}
        return self.run_or_defer(context, state)

    def run_or_defer(self, context: Any, resume: dict[str, Any]) -> Any:
        """:meth:`run_from`; with ``deferrable``, defer on an exhausted rate limit that says when it ends."""
        try:
            return self.run_from(context, resume)
        except ConfluenceRateLimited as exc:
            if not self.deferrable or exc.retry_at is None:
                raise
            self._defer_until(exc, self.resume_state(resume, exc))

    def _defer_until(self, exc: ConfluenceRateLimited, state: dict[str, Any]) -> NoReturn:
        import time
        from datetime import UTC, datetime

        from airflow_provider_confluence.triggers.rate_limit import ConfluenceRateLimitTrigger, wake_at

        operator: BaseOperator = self  # type: ignore[assignment]
        retry_at, note = wake_at(exc.retry_at, time.time())
        if note:
            operator.log.warning("Atlassian's rate limit: %s.", note)
        when = datetime.fromtimestamp(retry_at, tz=UTC)
        operator.log.warning(
            "Atlassian's rate limit is exhausted (%s); deferring until %s, then resuming where this task stopped.",
            exc.reason or f"429 on {exc.method}",
            when.isoformat(timespec="seconds"),
        )
        operator.defer(
            trigger=ConfluenceRateLimitTrigger(retry_at=retry_at, reason=exc.reason, resume=state),
            method_name=RESUME_METHOD,
            kwargs={"resume": state},
        )
        raise AssertionError("unreachable: defer() raises")  # pragma: no cover
