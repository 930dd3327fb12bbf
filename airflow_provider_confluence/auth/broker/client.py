"""The token broker's worker side: :class:`BrokerTokenSource` asks the API server for access tokens.

An Airflow 3 task cannot write a connection, so every refresh of a connection's grant happens in ONE place:
``POST /confluence-oauth/token`` in the API server (:mod:`airflow_provider_confluence.plugins.broker`), which
runs :class:`~airflow_provider_confluence.auth.tokens.TokenManager` over the connection row under
``SELECT ... FOR UPDATE``. The signed request and its checks are in :mod:`.protocol`. The broker answers
``{"access_token", "expires_at", "cloud_id"}``, never the refresh token, and refuses with 401 and
``{"error", "detail"}``.

While the API server cannot be reached (a restart, a rolling deploy), or answers 503 ``store_error`` (its metadata
database is busy: a pool timeout under load), a task waits for it within a bounded budget
(:data:`WAIT_FOR_BROKER`, honouring the broker's ``Retry-After``), saying so in its log, and then fails: it never
refreshes anywhere else, since a second place that redeems the refresh token could revoke the grant. This module imports nothing from Airflow.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

from airflow_provider_confluence.auth.broker.protocol import signed_request, token_fingerprint
from airflow_provider_confluence.auth.token_codec import parse_broker_answer
from airflow_provider_confluence.auth.tokens import MAX_LEEWAY
from airflow_provider_confluence.exceptions import (
    ConfluenceAuthError,
    ConfluenceBrokerError,
    ConfluenceConfigError,
    ConfluenceReauthorizationRequired,
    ConfluenceTokenStoreError,
)
from airflow_provider_confluence.retry import RetryPolicy, parse_retry_after

log = logging.getLogger(__name__)

URL_PREFIX = "/confluence-oauth"
TOKEN_PATH = URL_PREFIX + "/token"
_MAX_ECHO = 500
#: Seconds a task waits, in all, for an API server that cannot be reached (restarts take tens of seconds).
WAIT_FOR_BROKER = 180.0
#: How a task waits for the broker: backoff from 0.5 s up to 5 s between tries (or the broker's ``Retry-After``),
#: within :data:`WAIT_FOR_BROKER`.
BROKER_RETRY = RetryPolicy(
    max_attempts=200,
    max_attempts_with_retry_after=200,
    base_delay=0.5,
    max_delay=5.0,
    max_total_wait=WAIT_FOR_BROKER,
)


def endpoint_url(*, override: str | None, execution_api_server_url: str | None, api_base_url: str | None) -> str:
    """The broker's URL, on the API server that serves the execution API to the workers.

    :param override: the connection's ``broker_url`` extra: the API server's base URL (or the full endpoint).
    :param execution_api_server_url: Airflow's ``[core] execution_api_server_url`` (``.../execution/``).
    :param api_base_url: Airflow's ``[api] base_url``, from which Airflow derives the former when it is unset.
    """
    if override:
        base = override.strip().rstrip("/")
    elif execution_api_server_url:
        base = execution_api_server_url.strip().rstrip("/").removesuffix("/execution")
    else:  # the same default as airflow.executors.base_executor.get_execution_api_server_url
        base = (api_base_url or "/").strip()
        base = f"http://localhost:8080{base}" if base.startswith("/") else base
        base = base.rstrip("/")
    return base if base.endswith(TOKEN_PATH) else base + TOKEN_PATH


# -- the worker's side ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerCredentials:
    """What signs a token request: the connection's key, and the deployment's (None until the API server has
    created it: the broker then refuses the first request, after creating it)."""

    key: str = field(repr=False)
    gate_key: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BrokerAnswer:
    """An access token from the broker; ``expires_at`` is absolute epoch seconds."""

    access_token: str = field(repr=False)
    expires_at: float
    cloud_id: str | None
    received_at: float

    def valid(self, now: float) -> bool:
        """True until the leeway before expiry: 60 s, or a quarter of the lifetime it had left when it arrived."""
        leeway = min(MAX_LEEWAY, max(0.0, self.expires_at - self.received_at) / 4)
        return now < self.expires_at - leeway


class BrokerTokenSource:
    """Access tokens of one connection from the token broker; the client's ``AccessTokenSource``.

    The token is cached until the leeway before its expiry; every request is signed anew with the connection's
    broker key; every token received is given to ``on_secret`` (``mask_secret``) before it is returned.

    :param conn_id: the connection's id.
    :param credentials: reads the keys that sign the requests (:class:`BrokerCredentials`): at the first
        request (``credentials(False)``), and once more, afresh (``credentials(True)``), when the broker refuses
        them: the API server may have written a ``broker_secret`` into the connection, or created the
        deployment's key, after they were read.
    :param url: the broker's endpoint, ``.../confluence-oauth/token``.
    :param session: the HTTP session to use.
    :param timeout: seconds to wait for the broker (which may itself wait for the token endpoint), or a
        ``(connect, read)`` pair.
    :param on_secret: called once with every token received.
    :param retry: how long to wait for a broker that cannot be reached (:data:`BROKER_RETRY`).
    """

    name = "broker"

    def __init__(
        self,
        *,
        conn_id: str,
        credentials: Callable[[bool], BrokerCredentials],
        url: str,
        session: requests.Session | None = None,
        timeout: float | tuple[float, float] = 30.0,
        on_secret: Callable[[str], None] = lambda secret: None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy = BROKER_RETRY,
    ) -> None:
        self.conn_id = conn_id
        self._read_credentials = credentials
        self._credentials: BrokerCredentials | None = None
        self.url = url
        self._session = session if session is not None else requests.Session()
        self._timeout = timeout
        self._on_secret = on_secret
        self._clock = clock
        self._sleep = sleep
        self._retry = retry
        self._answer: BrokerAnswer | None = None
        self._seen: set[str] = set()
        self.requests_sent = 0

    @property
    def store(self) -> Any:
        """Where the tokens come from (``.name``), like ``TokenManager.store``: this broker."""
        return self

    # -- the AccessTokenSource protocol of the client ------------------------------------------------

    def get_access_token(self) -> str:
        """A valid access token: the cached one, or a fresh answer of the broker."""
        if self._answer is not None and self._answer.valid(self._clock()):
            return self._answer.access_token
        return self._ask(None).access_token

    def refresh_rejected(self, rejected_token: str) -> str:
        """Confluence refused ``rejected_token`` (401): the broker refreshes unless it holds a newer token."""
        return self._ask(token_fingerprint(rejected_token)).access_token

    def access_token_expired(self) -> bool:
        """True when the token handed out may be dead: past its expiry, or the broker holds another one."""
        answer = self._answer
        if answer is None or self._clock() >= answer.expires_at:
            return True
        return self._ask(None).access_token != answer.access_token

    def get_cloud_id(self, discover: Callable[[str], str] | None = None) -> str:
        """The site's cloud id, which the broker finds once and keeps in the token state."""
        token = self.get_access_token()
        if self._answer is not None and self._answer.cloud_id:
            return self._answer.cloud_id
        if discover is None:
            raise ConfluenceBrokerError(
                f"The token broker at {self.url} sent no cloud id.", url=self.url, reason="no_cloud_id"
            )
        return discover(token)

    # -- HTTP -----------------------------------------------------------------------------------------

    def _ask(self, rejected: str | None) -> BrokerAnswer:
        """One signed request (a new nonce per try). While nobody answers, wait within :attr:`_retry`'s budget;
        refused keys are read once more per kind of refusal, and tried again if they changed."""
        attempt, waited, refused = 0, 0.0, set[str]()
        if self._credentials is None:
            self._credentials = self._read_credentials(False)
        while True:
            try:
                return self._send(rejected, self._credentials)
            except ConfluenceBrokerError as exc:
                # A new deployment may refuse twice: first the deployment's key (not created yet when this task
                # read it), then the connection's (the first save wrote its broker_secret meanwhile).
                if exc.reason in ("invalid_signature", "invalid_gate") and exc.reason not in refused:
                    refused.add(exc.reason)
                    fresh = self._read_credentials(True)
                    if fresh != self._credentials:
                        log.info(
                            "The token broker refused the keys of connection %r read first (%s); trying "
                            "once more with the keys as they are now.",
                            self.conn_id,
                            exc.reason,
                        )
                        self._credentials = fresh
                        continue
                if not exc.retryable:
                    raise
                attempt += 1
                delay = self._retry.next_delay(attempt, waited, exc.retry_after)
                if delay is None:
                    raise ConfluenceBrokerError(
                        f"{exc.message} Waited {waited:.0f} s for it; this task did not refresh anywhere else.",
                        url=self.url,
                        reason=exc.reason,
                        status_code=exc.status_code,
                    ) from None
                if attempt == 1:
                    log.warning(
                        "%s Waiting up to %.0f s for the API server (%s); this task never refreshes the token "
                        "anywhere else.",
                        exc.message,
                        self._retry.max_total_wait,
                        "its metadata database is busy" if exc.reason == "store_error" else "a restart, a deploy",
                    )
                self._sleep(delay)
                waited += delay

    def _send(self, rejected: str | None, credentials: BrokerCredentials) -> BrokerAnswer:
        body = signed_request(
            credentials.key,
            self.conn_id,
            timestamp=int(self._clock()),
            rejected_token=rejected,
            gate_key=credentials.gate_key,
        )
        self.requests_sent += 1
        try:
            response = self._session.post(self.url, json=body, timeout=self._timeout, allow_redirects=False)
        except requests.ConnectionError as exc:  # refused, reset, DNS, connect timeout: nobody answered
            raise self._unreachable(f"could not be reached ({type(exc).__name__})") from None
        except requests.RequestException as exc:  # it was reached but did not answer in time
            raise ConfluenceBrokerError(
                f"The token broker at {self.url} did not answer in time ({type(exc).__name__}); it may be waiting "
                "for Atlassian's token endpoint.",
                url=self.url,
                reason="timeout",
            ) from None
        payload = _json_or_none(response)
        if response.status_code == 200 and isinstance(payload, dict):
            return self._accept(payload)
        if isinstance(payload, dict) and isinstance(payload.get("error"), str):
            if response.status_code == 503 and payload["error"] == "store_error":
                raise self._store_busy(payload, parse_retry_after(response.headers.get("Retry-After")))
            raise self._refused(response.status_code, payload)
        # 502/503/504: a proxy or a server that is (re)starting, so wait; anything else answers, but not as a broker
        reason = "unreachable" if response.status_code in (502, 503, 504) else "not_a_broker"
        raise self._unreachable(
            f"answered {response.status_code} without a broker's answer (is airflow-provider-confluence installed "
            "in the API server? Its plugin serves /confluence-oauth/token)",
            response.status_code,
            reason=reason,
        )

    def _accept(self, payload: dict[str, Any]) -> BrokerAnswer:
        parsed = parse_broker_answer(payload)
        if parsed is None:
            raise ConfluenceBrokerError(
                f"The token broker at {self.url} sent an unusable answer.",
                url=self.url,
                reason="bad_answer",
                status_code=200,
            )
        token, expires_at, cloud_id = parsed
        if token not in self._seen:
            self._on_secret(token)
            self._seen.add(token)
        self._answer = BrokerAnswer(token, expires_at, cloud_id, self._clock())
        return self._answer

    def _unreachable(
        self, what: str, status_code: int | None = None, *, reason: str = "unreachable"
    ) -> ConfluenceBrokerError:
        return ConfluenceBrokerError(
            f"The token broker at {self.url} {what}. Tasks of connection {self.conn_id!r} get their tokens from the "
            "Airflow API server: check that it runs this provider, and [core] execution_api_server_url or the "
            "connection's broker_url extra.",
            url=self.url,
            reason=reason,
            status_code=status_code,
        )

    def _store_busy(self, payload: dict[str, Any], retry_after: float | None) -> ConfluenceBrokerError:
        detail = str(payload.get("detail") or "")[:_MAX_ECHO]
        return ConfluenceBrokerError(
            f"The token broker at {self.url} (the Airflow API server) could not use its metadata database for "
            f"connection {self.conn_id!r} (503 store_error: {detail}). Check the API server's database and its "
            "connection pool ([database] sql_alchemy_pool_size and sql_alchemy_max_overflow, the database's "
            "max_connections), then run the task again.",
            url=self.url,
            reason="store_error",
            status_code=503,
            retry_after=retry_after,
        )

    def _refused(self, status: int, payload: dict[str, Any]) -> Exception:
        error = str(payload["error"])
        detail = str(payload.get("detail") or "")[:_MAX_ECHO]
        if error == "reauthorization_required":
            return ConfluenceReauthorizationRequired(detail, conn_id=self.conn_id, status_code=status)
        if error == "auth_error":
            return ConfluenceAuthError(detail, status_code=status, transient=bool(payload.get("transient")))
        if error == "config_error":
            return ConfluenceConfigError(detail)
        if error == "store_error":
            return ConfluenceTokenStoreError(detail, status_code=status)
        return ConfluenceBrokerError(
            f"The token broker at {self.url} refused the token request of connection {self.conn_id!r} "
            f"({status} {error}): {detail}",
            url=self.url,
            reason=error,
            status_code=status,
        )


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
