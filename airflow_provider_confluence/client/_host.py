"""What the client's mixins (pages, spaces, labels, attachments, comments, search, tree, folders, clean-up) use of the class they are mixed
into, :class:`~airflow_provider_confluence.client.confluence.ConfluenceClient`: declared once, for the type checker.

At run time :data:`MixinBase` is ``object``; only mypy sees :class:`ClientHost`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from airflow_provider_confluence.retry import RetryState

    class ClientHost(Protocol):
        """The transport of :class:`~airflow_provider_confluence.client.confluence.ConfluenceClient`."""

        _site_url: str | None

        def request(
            self,
            method: str,
            path: str,
            *,
            params: Mapping[str, Any] | None = None,
            json: Any = None,
            files: Any = None,
            headers: Mapping[str, str] | None = None,
            idempotent: bool | None = None,
        ) -> Any: ...

        def url(self, path: str) -> str: ...

        def download(self, link: str) -> bytes: ...

        def paginate(
            self, path: str, params: Mapping[str, Any] | None = None, *, api: str = "v2", cursor: str | None = None
        ) -> Iterator[dict[str, Any]]: ...

        def _send(
            self,
            method: str,
            url: str,
            *,
            params: Mapping[str, Any] | None = None,
            json_body: Any = None,
            files: Any = None,
            headers: Mapping[str, str] | None = None,
            idempotent: bool | None = None,
            state: RetryState | None = None,
            raw: bool = False,
        ) -> tuple[Any, Mapping[str, str]]: ...

        def iter_pages(
            self, path: str, params: Mapping[str, Any] | None = None, *, api: str = "v2", cursor: str | None = None
        ) -> Iterator[tuple[list[Any], dict[str, Any]]]: ...

        # Methods of one mixin that another uses (tree and clean-up build on pages and labels).

        def get_page(self, page_id: str, *, body_format: str | None = None) -> dict[str, Any]: ...

        def find_page(
            self, *, space_id: str, title: str, body_format: str | None = None, status: str = "current"
        ) -> dict[str, Any] | None: ...

        def list_children(
            self, page_id: str, *, sort: str | None = None, cursor: str | None = None
        ) -> Iterator[dict[str, Any]]: ...

        def get_page_labels(self, page_id: str) -> list[str]: ...

        def get_space(self, space_id: str) -> dict[str, Any]: ...

        def list_direct_children(
            self, parent_id: str, *, parent_type: str = "page", sort: str | None = None, cursor: str | None = None
        ) -> Iterator[dict[str, Any]]: ...

        def space_homepage_id(self, space_id: str) -> str: ...

    MixinBase = ClientHost
else:
    MixinBase = object
