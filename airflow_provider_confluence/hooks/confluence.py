"""``ConfluenceOAuthHook``: a ``confluence_oauth`` connection turned into a token manager and a client."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property
from typing import Any, BinaryIO

import requests

from airflow_provider_confluence.auth.broker.client import BrokerCredentials, BrokerTokenSource
from airflow_provider_confluence.auth.broker.protocol import GATE_VARIABLE, broker_key
from airflow_provider_confluence.auth.manager import token_manager_for
from airflow_provider_confluence.auth.service_account import ClientCredentialsTokens
from airflow_provider_confluence.auth.signin import api_token_authorization, client_credentials_tokens
from airflow_provider_confluence.auth.stores.choice import broker_endpoint, choose_token_store, uses_broker
from airflow_provider_confluence.auth.tokens import TokenManager
from airflow_provider_confluence.client.authorization import AuthorizationSource, BearerAuthorization
from airflow_provider_confluence.client.confluence import ConfluenceClient
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.config.deployment import connection_settings
from airflow_provider_confluence.config.signin import API_TOKEN, CLIENT_CREDENTIALS
from airflow_provider_confluence.content.page_spec import PageSpec
from airflow_provider_confluence.content.publish import Published, publish, resolve_parent_id, update_page_body
from airflow_provider_confluence.content.storage_format import to_storage
from airflow_provider_confluence.exceptions import ConfluenceConfigError, ConfluenceError
from airflow_provider_confluence.get_provider_info import (
    AUTH_TYPE_CHOICES,
    CONN_TYPE,
    CONNECTION_EXTRAS,
    HIDDEN_FIELDS,
    HOOK_NAME,
    PLACEHOLDERS,
    RELABELING,
)
from airflow_provider_confluence.hooks import _signin
from airflow_provider_confluence.hooks._tree import TreeHookMixin
from airflow_provider_confluence.version_compat import BaseHook, get_connection, get_variable, mask_secret


class ConfluenceOAuthHook(TreeHookMixin, BaseHook):
    """Talk to Confluence Cloud with a ``confluence_oauth`` connection, signed in as its ``auth_type`` says.

    ``oauth2_3lo`` (default): access tokens are refreshed before they expire, and every rotated refresh token is
    saved (in the connection, or where the ``state_store`` extra says) before the new access token is used.
    ``client_credentials`` (an Atlassian service account): access tokens are fetched with the client ID and secret
    and cached in this process only. ``api_token``: every request carries HTTP Basic with the e-mail and API token.

    :param confluence_conn_id: the ``confluence_oauth`` connection to use.
    """

    conn_name_attr = "confluence_conn_id"
    default_conn_name = "confluence_default"
    conn_type = CONN_TYPE
    hook_name = HOOK_NAME

    def __init__(self, confluence_conn_id: str = default_conn_name, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.confluence_conn_id = confluence_conn_id

    # -- from connection to client --------------------------------------------------------------------

    @cached_property
    def settings(self) -> ConnectionSettings:
        """The connection's settings, checked (:class:`ConfluenceConfigError` when unusable)."""
        settings = self._read_settings()
        for warning in settings.warnings:
            self.log.warning("%s", warning)
        return settings

    def _read_settings(self) -> ConnectionSettings:
        settings = connection_settings(self.confluence_conn_id, get_connection(self.confluence_conn_id), any_type=True)
        mask_secret(settings.client_secret)
        return settings

    @cached_property
    def authorization(self) -> AuthorizationSource:
        """What the client puts in the ``Authorization`` header: a bearer token (3LO, service account) or, for
        ``api_token``, HTTP Basic with the e-mail and token."""
        if self.settings.auth_type == API_TOKEN:
            return api_token_authorization(self.settings, on_secret=mask_secret)
        return BearerAuthorization(self.token_manager)

    @cached_property
    def session(self) -> requests.Session:
        """One HTTP session (connection pool) for the token endpoint and Confluence."""
        session = requests.Session()
        session.headers["User-Agent"] = "airflow-provider-confluence"
        return session

    @cached_property
    def token_manager(self) -> TokenManager | BrokerTokenSource | ClientCredentialsTokens:
        """Where access tokens come from: the rotation protocol over the connection's store, or, in an Airflow 3
        task worker or triggerer (which cannot write connections), the token broker in the API server; for a
        service account (``client_credentials``), this process's cache, never a store nor the broker.

        :raises ConfluenceConfigError: for ``api_token``, which has no access token.
        """
        settings = self.settings
        if settings.auth_type == CLIENT_CREDENTIALS:
            return client_credentials_tokens(settings, session=self.session, on_secret=mask_secret)
        if settings.auth_type == API_TOKEN:
            raise _signin.no_bearer_token(settings.conn_id)
        if uses_broker(settings):
            return self._broker_source(settings)
        store = choose_token_store(settings)
        self.log.info("Connection %r keeps its rotated tokens in the %s store.", settings.conn_id, store.name)
        return token_manager_for(settings, store, session=self.session)

    def _broker_source(self, settings: ConnectionSettings) -> BrokerTokenSource:
        url = broker_endpoint(settings)
        self.log.info(
            "Connection %r gets its access tokens from the token broker at %s: this process cannot write "
            "connections, and the API server keeps the rotated tokens in the connection.",
            settings.conn_id,
            url,
        )
        if broker_key(settings) is None:
            raise ConfluenceConfigError(
                f"Connection {settings.conn_id!r} has no refresh token yet: authorize the app first (the Connect "
                "button under Admin -> Confluence OAuth, or airflow-confluence authorize)."
            )
        return BrokerTokenSource(
            conn_id=settings.conn_id,
            credentials=self._broker_credentials,
            url=url,
            session=self.session,
            # the broker may itself wait for the token endpoint (with retries) before it answers
            timeout=(settings.timeout, max(60.0, 4 * settings.timeout)),
            on_secret=mask_secret,
        )

    def _broker_credentials(self, fresh: bool) -> BrokerCredentials:
        """The keys that sign this connection's requests to the broker (see :mod:`.broker_protocol`).

        :param fresh: read the connection again, rather than use the settings this hook read first.
        """
        key = broker_key(self._read_settings() if fresh else self.settings)
        if key is None:
            raise ConfluenceConfigError(f"Connection {self.confluence_conn_id!r} has no refresh token any more.")
        return BrokerCredentials(key=key, gate_key=get_variable(GATE_VARIABLE))

    def get_access_token(self) -> str:
        """A valid access token (masked in logs), refreshed and saved first when it is about to expire.

        :raises ConfluenceConfigError: for an ``api_token`` connection, which has no bearer token (see
            :meth:`get_authorization_header`).
        """
        return self.token_manager.get_access_token()

    def get_authorization_header(self) -> str:
        """The value of the ``Authorization`` header for the gateway, whatever the ``auth_type`` (masked in logs):
        ``Bearer <access token>``, or ``Basic <e-mail:token in base64>``."""
        header = self.authorization.authorization()
        mask_secret(self.authorization.secret_of(header))
        return header

    def get_conn(self) -> ConfluenceClient:
        """The Confluence v2 client of this connection."""
        return self._client

    @cached_property
    def _client(self) -> ConfluenceClient:
        settings = self.settings
        return ConfluenceClient(
            api_url=settings.api_url,
            cloud_id=settings.cloud_id or self._discover_cloud_id,
            authorization=self.authorization,
            site_url=settings.site_url,
            session=self.session,
            timeout=settings.timeout,
        )

    def _discover_cloud_id(self) -> str:
        return _signin.discover_cloud_id(self)

    # -- typed API ------------------------------------------------------------------------------------

    def get_space_id(self, space_key: str) -> str:
        """The numeric id of the space with this key (:class:`ConfluenceSpaceMissing` when there is none)."""
        return self.get_conn().get_space_id(space_key)

    def iter_spaces(
        self,
        keys: list[str] | None = None,
        space_type: str | None = None,
        status: str | None = None,
        labels: list[str] | None = None,
        cursor: str | None = None,
    ) -> Iterator[dict[str, Any]]:
        """Every space matching the filters, page after page, as a generator (from ``cursor`` when resuming)."""
        return self.get_conn().iter_spaces(
            keys=keys, space_type=space_type, status=status, labels=labels, cursor=cursor
        )

    def resolve_space_id(self, space_key: str | None = None, space_id: str | None = None) -> str:
        """The numeric id of a space given by key or id (exactly one of them)."""
        if bool(space_key) == bool(space_id):
            raise ConfluenceConfigError("Give exactly one of space_key and space_id.")
        return str(space_id) if space_id else self.get_space_id(str(space_key))

    def get_page(self, page_id: str, *, body_format: str | None = "storage") -> dict[str, Any]:
        """The page with this id, with its body in ``body_format`` (:class:`ConfluenceNotFound` when missing)."""
        return self.get_conn().get_page(str(page_id), body_format=body_format)

    def find_page(
        self,
        *,
        title: str,
        space_key: str | None = None,
        space_id: str | None = None,
        body_format: str | None = None,
        status: str = "current",
    ) -> dict[str, Any] | None:
        """The page with exactly this title in the space (by key or id), or None."""
        return self.get_conn().find_page(
            space_id=self.resolve_space_id(space_key, space_id), title=title, body_format=body_format, status=status
        )

    def resolve_parent_id(
        self,
        *,
        space_key: str | None = None,
        space_id: str | None = None,
        parent_id: str | None = None,
        parent_title: str | None = None,
    ) -> str | None:
        """``parent_id``, or the id of the page titled ``parent_title`` in the space (None when neither)."""
        if not parent_title:
            return str(parent_id) if parent_id else None
        return resolve_parent_id(
            self.get_conn(),
            space_id=self.resolve_space_id(space_key, space_id),
            parent_id=parent_id,
            parent_title=parent_title,
        )

    def create_page(self, spec: PageSpec | None = None, /, **fields: Any) -> dict[str, Any]:
        """Create a page, or deal with an existing page of the same title as ``if_exists`` says; the page.

        The arguments are those of :meth:`publish`, which also says what was done.
        """
        return self.publish(spec, **fields).page

    def publish(self, spec: PageSpec | None = None, /, **fields: Any) -> Published:
        """Create a page, or deal with an existing page of the same title as ``if_exists`` says.

        :param spec: the page, built and checked once by :meth:`PageSpec.build
            <airflow_provider_confluence.content.page_spec.PageSpec.build>`; its space by ``space_key`` or
            ``space_id``. Or, instead of a spec, the keyword arguments of ``PageSpec.build``: ``space_key`` or
            ``space_id``, ``title``, ``body``, ``parent_id`` or ``parent_title`` (the parent's title in the space),
            ``representation`` (a wire format, or ``markdown``/``table``, converted to storage format),
            ``status``, ``if_exists`` (``fail`` raises :class:`ConfluencePageExists` naming the page, ``skip``
            returns it, ``update`` writes a new version with this body unless it is unchanged) and ``labels``
            (labels the page should carry; only the missing ones are added).
        :returns: the page, and ``action``: ``created``, ``updated``, ``unchanged`` or ``skipped``.
        """
        spec = PageSpec.of(spec, fields)  # a body that cannot convert sends no request
        space_id = self.resolve_space_id(spec.space_key, spec.space_id)
        return publish(self.get_conn(), spec.with_changes(space_key=None, space_id=space_id))

    def update_page(
        self,
        spec: PageSpec | None = None,
        /,
        *,
        page_id: str,
        append_key: str | None = None,
        read: dict[str, Any] | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """Write a new version of the page (``mode`` ``replace`` or ``append``), unless it would be unchanged.

        :param spec: the new version, built and checked once by :meth:`PageSpec.build
            <airflow_provider_confluence.content.page_spec.PageSpec.build>`: ``body``, ``title`` (None keeps the
            current one), ``representation`` (a wire format, or ``markdown``/``table``), ``status``, ``mode``,
            ``message`` (the version comment), ``labels`` (only the missing ones are added) and ``parent_id``
            (move the page under this parent, same space). Or, instead of a spec, those keyword arguments.
        :param page_id: the page's id.
        :param append_key: with ``mode="append"``, what identifies this append: a page that already holds it is
            left alone (see :func:`~airflow_provider_confluence.content.publish.update_page_body`).
        :param read: the page just read with its body in the format the update reads (``storage``, or the spec's
            representation when it is ``atlas_doc_format``): saves reading it again.
        """
        return update_page_body(
            self.get_conn(), PageSpec.of(spec, fields), page_id=str(page_id), append_key=append_key, read=read
        )

    def get_page_labels(self, page_id: str) -> list[str]:
        """The names of the page's labels."""
        return self.get_conn().get_page_labels(str(page_id))

    def add_labels(self, page_id: str, labels: Iterable[str]) -> list[str]:
        """Add the labels the page lacks (names checked and lower-cased); return the page's labels after."""
        return self.get_conn().add_page_labels(str(page_id), labels)

    def search(
        self, cql: str, *, max_results: int | None = None, limit: int = 100, cursor: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Raw CQL search results (v1), page after page, as a generator (from ``cursor`` when resuming)."""
        return self.get_conn().search(cql, max_results=max_results, limit=limit, cursor=cursor)

    def list_attachments(self, page_id: str, *, filename: str | None = None) -> Iterator[dict[str, Any]]:
        """The page's attachments (v2 objects), optionally only the one with this file name."""
        return self.get_conn().list_attachments(str(page_id), filename=filename)

    def upload_attachment(
        self,
        page_id: str,
        *,
        filename: str,
        data: bytes | BinaryIO,
        media_type: str | None = None,
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Attach ``data`` to the page as ``filename`` (a new version when that name exists); the v1 object."""
        return self.get_conn().upload_attachment(
            str(page_id), filename=filename, data=data, media_type=media_type, comment=comment
        )

    def find_attachment(self, page_id: str, filename: str) -> dict[str, Any]:
        """The page's attachment with this file name (a v2 object).

        :raises ConfluenceAttachmentMissing: when the page has no attachment of that name.
        :raises ConfluenceNotFound: when Confluence answered 404 (no such page, or the app's user cannot see it).
        """
        from airflow_provider_confluence.exceptions import ConfluenceAttachmentMissing

        client = self.get_conn()
        found = next(iter(client.list_attachments(str(page_id), filename=filename)), None)
        if found is None:
            raise ConfluenceAttachmentMissing(
                f"Page {page_id} has no attachment named {filename!r}: check filename (it is case-sensitive) and "
                "the page.",
                page_id=str(page_id),
                filename=filename,
            )
        return found

    def download_attachment(self, attachment: dict[str, Any]) -> bytes:
        """The content of an attachment (a v2 object), from its ``downloadLink`` through the API gateway."""
        return self.get_conn().download_attachment(attachment)

    def add_footer_comment(self, page_id: str, body: Any, *, representation: str = "storage") -> dict[str, Any]:
        """Add a footer comment to the page (``markdown``/``table`` bodies converted to storage); the v2 comment.

        Needs the ``write:comment:confluence`` scope.
        """
        representation, body = to_storage(body, representation)  # a body that cannot convert sends no request
        return self.get_conn().add_footer_comment(str(page_id), body, representation=representation)

    def list_footer_comments(self, page_id: str, *, body_format: str | None = "storage") -> Iterator[dict[str, Any]]:
        """The page's footer comments (v2 objects), page after page; needs ``read:comment:confluence``."""
        return self.get_conn().list_footer_comments(str(page_id), body_format=body_format)

    # -- Airflow UI -----------------------------------------------------------------------------------

    def test_connection(self) -> tuple[bool, str]:
        """Check the settings, then the site with an access token already saved for this grant; never refresh.

        Airflow tests the edit form under a temporary connection id (the form need not be saved), where a
        rotated refresh token could not be saved: redeeming it there would lose the grant. So the live check
        (``GET /wiki/api/v2/spaces?limit=1`` through the gateway) uses the access token that the real store of
        the saved connection holds, when it is still valid and the form keeps that connection's client ID, site
        and endpoints (:mod:`~airflow_provider_confluence.auth.live_check`); otherwise the answer says why there
        was none and what to do. Needs the metadata database (the API server, the Airflow 2 webserver).

        ``client_credentials`` and ``api_token`` connections are checked live with their own credentials, since
        that uses nothing up (:func:`~airflow_provider_confluence.hooks._signin.test_connection`).
        """
        from airflow_provider_confluence.auth.live_check import check_site, choose_saved_grant
        from airflow_provider_confluence.auth.stores.saved import saved_grants
        from airflow_provider_confluence.version_compat import orm_available

        try:
            settings = self.settings
            if not settings.uses_refresh_token:
                return _signin.test_connection(self)
            if not settings.refresh_token:
                return False, "Settings are valid, but there is no refresh token yet: authorize the app first."
            if not orm_available():
                return True, (
                    "Settings are valid. A live check reads the saved tokens from the metadata database, "
                    "which this process cannot use; use Test in the Airflow UI."
                )
            choice = choose_saved_grant(settings, saved_grants(), _now())
            if choice.grant is None:
                return True, choice.message
            mask_secret(str(choice.grant.state.access_token))
            return check_site(settings, choice.grant, self.session)
        except ConfluenceError as exc:
            return False, exc.message

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The extra fields of the Airflow 2 connection form (Airflow 3 reads ``conn-fields``)."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField
        from wtforms.validators import AnyOf, Optional

        widgets: dict[str, Any] = {}
        for name, label, _placeholder, description, secret in CONNECTION_EXTRAS:
            if name == "auth_type":  # a text field that accepts only the three types (empty: oauth2_3lo)
                widgets[name] = StringField(
                    lazy_gettext(label),
                    widget=BS3TextFieldWidget(),
                    description=description,
                    validators=[Optional(), AnyOf(list(AUTH_TYPE_CHOICES))],
                )
            elif secret:
                widgets[name] = PasswordField(
                    lazy_gettext(label), widget=BS3PasswordFieldWidget(), description=description
                )
            else:
                widgets[name] = StringField(lazy_gettext(label), widget=BS3TextFieldWidget(), description=description)
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Relabelled, hidden and placeholder fields of the Airflow 2 connection form."""
        placeholders = {**PLACEHOLDERS, **{n: p for n, _l, p, _d, _s in CONNECTION_EXTRAS if p}}
        return {"hidden_fields": list(HIDDEN_FIELDS), "relabeling": dict(RELABELING), "placeholders": placeholders}


def _now() -> float:
    import time

    return time.time()
