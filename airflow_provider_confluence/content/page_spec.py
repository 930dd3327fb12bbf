"""What a page write says, checked once: :class:`PageSpec`.

An operator (or the notifier, or a caller of the hook) builds one :class:`PageSpec` with :meth:`PageSpec.build`:
the body is converted to a Confluence wire format (Markdown and tables become storage format), the label names
are checked and normalised, and the options are checked, once. The hook and :mod:`.publish` take the spec as it
is and never convert or check it again.

This module imports nothing from Airflow and nothing heavy (operators import it at DAG parse time).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from airflow_provider_confluence.client.labels import normalize_labels
from airflow_provider_confluence.content.storage_format import BODY_REPRESENTATIONS, to_storage
from airflow_provider_confluence.exceptions import ConfluenceConfigError

__all__ = [
    "IF_EXISTS",
    "PageSpec",
    "REPRESENTATIONS",
    "STATUSES",
    "UPDATE_MODES",
    "check_page_options",
    "wire_representation",
]

IF_EXISTS = ("fail", "skip", "update")
#: The representations Confluence takes on the wire (``markdown`` and ``table`` are converted to storage first).
REPRESENTATIONS = ("storage", "atlas_doc_format", "wiki")
STATUSES = ("current", "draft")
UPDATE_MODES = ("replace", "append")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfluenceConfigError(f"{name}={value!r} is not one of {', '.join(allowed)}.")


def _given(value: object) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def check_page_options(*, if_exists: str, representation: str, status: str) -> None:
    """Refuse unknown option values early (at DAG parse time when called from an operator's constructor).

    :param representation: a wire format (see :data:`REPRESENTATIONS`).
    """
    _check_choice("if_exists", if_exists, IF_EXISTS)
    _check_choice("representation", representation, REPRESENTATIONS)
    _check_choice("status", status, STATUSES)


def wire_representation(representation: str) -> str:
    """Check a body ``representation`` (any of :data:`BODY_REPRESENTATIONS`) and return the one sent on the wire
    (``markdown`` and ``table`` become ``storage``)."""
    _check_choice("representation", representation, BODY_REPRESENTATIONS)
    return "storage" if representation in ("markdown", "table") else representation


def update_read_format(representation: str) -> str:
    """The body format an update reads the page in (to compare and to append to): the spec's own wire format,
    but ``storage`` for ``wiki`` (Confluence never returns wiki markup)."""
    return "storage" if representation == "wiki" else representation


@dataclass(frozen=True)
class PageSpec:
    """A page to create or a new version to write, checked: build it with :meth:`build`.

    :param body: the body in the wire format ``representation`` (already converted from Markdown or a table).
    :param title: the page's title; for an update, the new title (None keeps the current one).
    :param representation: ``storage``, ``atlas_doc_format`` or ``wiki``.
    :param status: ``current`` or ``draft``.
    :param space_key: the space's key (to create a page); or ``space_id``.
    :param space_id: the space's numeric id (to create a page).
    :param parent_id: the parent page's id; or ``parent_title``.
    :param parent_title: the parent page's exact title in the space.
    :param labels: the labels the page must carry, checked and lower-cased (see
        :func:`~airflow_provider_confluence.client.labels.normalize_labels`).
    :param if_exists: what creating does to an existing page of that title: ``fail``, ``skip`` or ``update``.
    :param mode: what updating does: ``replace`` the body or ``append`` to it (storage format only).
    :param message: the version comment of an update.
    """

    body: str
    title: str | None = None
    representation: str = "storage"
    status: str = "current"
    space_key: str | None = None
    space_id: str | None = None
    parent_id: str | None = None
    parent_title: str | None = None
    labels: tuple[str, ...] = ()
    if_exists: str = "fail"
    mode: str = "replace"
    message: str | None = None

    def __post_init__(self) -> None:
        # cheap checks of values a caller could set directly (or through dataclasses.replace); the body and the
        # labels are converted and normalised by build(), once
        PageSpec.check_options(
            representation=self.representation,
            status=self.status,
            if_exists=self.if_exists,
            mode=self.mode,
            parent_id=self.parent_id,
            parent_title=self.parent_title,
        )

    @staticmethod
    def check_options(
        *,
        representation: str,
        status: str = "current",
        if_exists: str = "fail",
        mode: str = "replace",
        parent_id: object = None,
        parent_title: object = None,
    ) -> str:
        """Refuse option values that no page write accepts, and return the wire representation.

        Operators call it from their constructors, so that a bad option fails when the DAG is parsed.

        :param representation: any of :data:`BODY_REPRESENTATIONS` (``markdown`` and ``table`` included).
        :raises ConfluenceConfigError: for an unknown value, an append of a non-storage body, or both parents.
        """
        wire = wire_representation(representation)
        check_page_options(if_exists=if_exists, representation=wire, status=status)
        _check_choice("mode", mode, UPDATE_MODES)
        if mode == "append" and wire != "storage":
            raise ConfluenceConfigError(
                f"mode='append' works on storage format only; representation={representation!r} cannot be "
                "appended. Use storage, markdown or table, or mode='replace'."
            )
        if _given(parent_id) and _given(parent_title):
            raise ConfluenceConfigError("Give parent_id or parent_title, not both: drop one of them.")
        return wire

    @classmethod
    def build(
        cls,
        *,
        body: Any,
        representation: str = "storage",
        title: str | None = None,
        status: str = "current",
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
        labels: str | Iterable[str] | None = None,
        if_exists: str = "fail",
        mode: str = "replace",
        message: str | None = None,
    ) -> PageSpec:
        """Check everything and convert the body, once; a spec that nothing downstream checks again.

        :param body: the body in ``representation``: ``markdown`` text and ``table`` rows are converted to
            storage format here (:func:`~airflow_provider_confluence.content.storage_format.to_storage`).
        :param labels: label names (a single string is one label).
        :raises ConfluenceConfigError: for a bad option, body or label name; nothing has been sent then.
        """
        cls.check_options(
            representation=representation,
            status=status,
            if_exists=if_exists,
            mode=mode,
            parent_id=parent_id,
            parent_title=parent_title,
        )
        wire, converted = to_storage(body, representation)
        return cls(
            body=converted,
            title=title,
            representation=wire,
            status=status,
            space_key=_text(space_key),
            space_id=_text(space_id),
            parent_id=_text(parent_id),
            parent_title=parent_title if _given(parent_title) else None,
            labels=tuple(normalize_labels(labels)),
            if_exists=if_exists,
            mode=mode,
            message=message,
        )

    @classmethod
    def of(cls, spec: PageSpec | None, fields: Mapping[str, Any]) -> PageSpec:
        """``spec``, or one built from the keyword ``fields`` of an older call (``hook.publish(title=...)``)."""
        if spec is None:
            return cls.build(**fields)
        if fields:
            raise TypeError(f"Give a PageSpec or keyword arguments, not both (got {', '.join(sorted(fields))}).")
        if not isinstance(spec, PageSpec):
            raise TypeError(f"Expected a PageSpec, not {type(spec).__name__}; or pass keyword arguments.")
        return spec

    def with_changes(self, **changes: Any) -> PageSpec:
        """A copy with some fields changed (only the cheap option checks run again)."""
        return replace(self, **changes)


def _text(value: object) -> str | None:
    return str(value).strip() if _given(value) else None
