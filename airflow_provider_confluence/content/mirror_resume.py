"""What a mirror has done so far, to resume it after Atlassian's rate limit refused a call.

:func:`.mirror.mirror_plan` keeps a :class:`MirrorProgress`: the pages of the plan it has written or found
unchanged, the pages it has trashed (``delete_missing``), and the pages whose labels are still to add (the page was
written, the labels' call was refused). When a call is refused with
:class:`~airflow_provider_confluence.exceptions.ConfluenceRateLimited`, the progress goes into the error's
``progress`` (:meth:`MirrorProgress.progress`: ``mirrored`` and ``labels_pending``, JSON only, ids and titles,
never a body); a deferrable operator carries it through its deferral and hands it back as ``resume``
(:meth:`MirrorProgress.from_resume`). The resumed mirror then looks up and writes only the pages not done yet:
a page is never created twice, a page already written is not read nor written again, and the summary says what
the whole task did (``created`` for a page created before the wait). Everything not done is derived again from
Confluence (the lookups by title and the version messages' marks), so a resume after a partly applied plan is the
same as a re-run, less the pages already done.

A dry run records nothing (it writes nothing: it simply reads again). A ``resume`` state is checked before it is
used, entry by entry: an entry whose path is not in the plan any more, whose title changed, or that is not what
this module writes (a hand-edited trigger row), is dropped, and that page is looked up again.

This module imports nothing from Airflow and nothing heavy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_confluence.content.mirror_plan import MirrorPlan

__all__ = ["MISSING_PREFIX", "MirrorProgress", "entry"]

#: The key of a page below the parent that the directory does not have (``delete_missing``): this + its id.
MISSING_PREFIX = "page:"
#: The actions of a page of the plan that count as done.
DONE_ACTIONS = frozenset({"created", "updated", "unchanged"})
_ID = re.compile(r"^[0-9]{1,30}$")


def entry(page_id: object, title: str, action: str, **more: Any) -> dict[str, Any]:
    """A line of the mirror's summary: ``{"id", "title", "action", ...}``."""
    return {"id": None if page_id is None else str(page_id), "title": title, "action": action, **more}


def _valid_id(value: object) -> bool:
    return isinstance(value, (str, int)) and not isinstance(value, bool) and bool(_ID.match(str(value)))


@dataclass
class MirrorProgress:
    """The pages done so far, by the plan's path; the pages trashed, by ``page:<id>``; the paths whose labels are
    still to add."""

    pages: dict[str, dict[str, Any]] = field(default_factory=dict)
    trashed: dict[str, dict[str, Any]] = field(default_factory=dict)
    labels_pending: list[str] = field(default_factory=list)

    @classmethod
    def from_resume(cls, resume: Mapping[str, Any] | None, plan: MirrorPlan) -> MirrorProgress:
        """The progress a ``resume`` state (a :meth:`progress`) says, kept only where it fits ``plan``."""
        progress = cls()
        if not isinstance(resume, Mapping):
            return progress
        mirrored = resume.get("mirrored")
        titles = plan.titles()
        for key, item in mirrored.items() if isinstance(mirrored, Mapping) else ():
            if not isinstance(item, Mapping) or not _valid_id(item.get("id")):
                continue
            title, action = item.get("title"), item.get("action")
            if isinstance(key, str) and key.startswith(MISSING_PREFIX):
                if action == "trashed" and key == f"{MISSING_PREFIX}{item['id']}":
                    progress.trashed[key] = entry(item["id"], str(title), "trashed")
            elif key in titles and titles[key] == title and action in DONE_ACTIONS:
                progress.pages[key] = entry(item["id"], titles[key], str(action))
        pending = resume.get("labels_pending")
        if isinstance(pending, list):
            progress.labels_pending = [path for path in pending if isinstance(path, str) and path in progress.pages]
        return progress

    def ids(self) -> dict[str, str]:
        """``{path: page id}`` of the pages done."""
        return {path: str(done["id"]) for path, done in self.pages.items()}

    def progress(self) -> dict[str, Any]:
        """The JSON-able state to resume from (``mirrored``, ``labels_pending``)."""
        return {
            "mirrored": {
                **{k: dict(v) for k, v in self.pages.items()},
                **{k: dict(v) for k, v in self.trashed.items()},
            },
            "labels_pending": list(self.labels_pending),
        }

    def summary(self, plan: MirrorPlan) -> dict[str, dict[str, Any]]:
        """The summary of the pages done, in the plan's order, then the pages trashed."""
        summary: dict[str, dict[str, Any]] = {}
        for page in plan.pages:
            if page.path in self.pages:
                more = (
                    {"unresolved_links": plan.unresolved_links[page.path]} if page.path in plan.unresolved_links else {}
                )
                summary[page.path] = {**self.pages[page.path], **more}
        return {**summary, **self.trashed}
