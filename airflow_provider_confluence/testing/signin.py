"""The emulator's knobs for unattended sign-in and the points quota, mixed into ``FakeAtlassian``.

Service accounts (OAuth 2.0 client credentials)::

    cred = fake.add_service_account("read:space:confluence read:page:confluence")
    token = requests.post(fake.token_url, json={"grant_type": "client_credentials",
                                                "client_id": cred.client_id,
                                                "client_secret": cred.client_secret}).json()
    # {"access_token", "expires_in": 3600, "scope", "token_type": "Bearer"}: no refresh_token

Scoped API tokens (HTTP Basic ``email:token`` through the gateway; the cloud id from ``tenant_info``)::

    api = fake.add_api_token("robot@example.com", expires=datetime.date(2027, 1, 31))
    cloud_id = requests.get(fake.tenant_info_url).json()["cloudId"]
    requests.get(f"{fake.api_url}/ex/confluence/{cloud_id}/wiki/api/v2/spaces",
                 headers={"Authorization": api.basic()})

The points quota (off by default; see ``quota.py`` for the costs and headers)::

    fake.enable_quota(hourly_points=100)      # per app and site; global_hourly_points= adds the app-wide pool
    fake.quota_usage().remaining              # the 3LO app's pool on the emulated site
    fake.advance(3600)                        # the next window: the budget is whole again
"""

from __future__ import annotations

import base64
import threading
from typing import TYPE_CHECKING, Any

from ..get_provider_info import CONN_TYPE
from .api_tokens import ApiTokenCredential, ApiTokenModel, Expiry
from .auth import DEFAULT_SCOPES, AccessCheck, AuthModel, split_scopes
from .quota import SITE_POLICY, QuotaModel, QuotaUsage
from .service_accounts import DEFAULT_TOKEN_LIFETIME, ServiceAccountCredential, ServiceAccountModel

if TYPE_CHECKING:
    from .clock import Clock

#: what service accounts and API tokens get unless told otherwise: the emulator's default scopes without
#: ``offline_access`` (neither has a refresh token)
UNATTENDED_SCOPES = " ".join(scope for scope in DEFAULT_SCOPES.split() if scope != "offline_access")


def identify(
    auth: AuthModel, service: ServiceAccountModel, api_tokens: ApiTokenModel, headers: dict[str, str]
) -> AccessCheck:
    """Who calls: a 3LO or service-account bearer token, or a scoped API token (HTTP Basic)."""
    scheme, _, value = headers.get("authorization", "").partition(" ")
    scheme = scheme.lower()
    if scheme == "basic" and value.strip():
        return api_tokens.check_basic(value)
    if scheme != "bearer" or not value.strip():
        return AccessCheck("unknown")
    token = value.strip()
    check = auth.check_access(token)
    return check if check.state != "unknown" else service.check_access(token)


class SignInKnobs:
    """Service accounts, scoped API tokens and the points quota of a :class:`FakeAtlassian`."""

    _lock: threading.RLock
    clock: Clock
    cloud_id: str
    site_url: str
    client_id: str
    _auth: AuthModel
    _service: ServiceAccountModel
    _api_tokens: ApiTokenModel
    _quota: QuotaModel

    url: Any
    token_url: Any
    api_url: Any

    # ----------------------------------------------------------------- service accounts
    def add_service_account(
        self,
        scopes: str = UNATTENDED_SCOPES,
        *,
        cloud_ids: list[str] | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        token_lifetime: float = DEFAULT_TOKEN_LIFETIME,
        label: str = "",
    ) -> ServiceAccountCredential:
        """Register a service account's OAuth 2.0 credential (what an admin creates in Atlassian Administration).

        :param scopes: the scopes fixed at creation (space- or comma-separated).
        :param cloud_ids: the sites its tokens reach; default: the emulated site only.
        :param client_id: the client ID; default random.
        :param client_secret: the secret; default random (remembered as a canary, see ``issued_secrets``).
        :param token_lifetime: the ``expires_in`` of its access tokens (Atlassian: 3600).
        :param label: a name for the test's own messages.
        :return: the credential (``client_id``, ``client_secret``, ``scopes``, ``cloud_ids``).
        """
        sites = tuple(cloud_ids) if cloud_ids is not None else (self.cloud_id,)
        return self._service.register(
            split_scopes(scopes),
            sites,
            client_id=client_id,
            client_secret=client_secret,
            token_lifetime=token_lifetime,
            label=label,
        )

    def revoke_service_account(self, client_id: str) -> None:
        """Delete a credential: its access tokens stop working at once, and the token endpoint refuses it."""
        self._service.revoke(client_id)

    client_credentials_auth_error = property(
        lambda self: self._service.auth_error,
        lambda self, value: setattr(self._service, "auth_error", _auth_error(value)),
        doc="The ``error`` of a client-credentials request with an unknown client or a wrong secret (401): "
        "``invalid_client`` (default, RFC 6749) or ``access_denied`` (what the 3LO grants answer).",
    )

    def service_account_connection(
        self, credential: ServiceAccountCredential, **extra_overrides: Any
    ) -> dict[str, Any]:
        """An Airflow connection dict (``auth_type`` ``client_credentials``) for this credential.

        :param extra_overrides: extra fields to set; a None value removes the field.
        """
        extra = {"auth_type": "client_credentials", "grant_url": self.token_url, "api_url": self.api_url}
        return {
            "conn_type": CONN_TYPE,
            "host": self.site_url,
            "login": credential.client_id,
            "password": credential.client_secret,
            "extra": _merge(extra, extra_overrides),
        }

    # ----------------------------------------------------------------- scoped API tokens
    def add_api_token(
        self,
        email: str = "robot@example.com",
        scopes: str = UNATTENDED_SCOPES,
        *,
        token: str | None = None,
        expires: Expiry = None,
        cloud_ids: list[str] | None = None,
    ) -> ApiTokenCredential:
        """Register a scoped API token of the account ``email``.

        :param scopes: its granular scopes (space- or comma-separated).
        :param token: the token; default random (remembered as a canary).
        :param expires: a ``date`` (expired from 00:00 UTC that day), an aware or UTC ``datetime``, epoch seconds
            on the emulator's clock, or None: one year from now. More than a year away raises ValueError.
        :param cloud_ids: the sites it reaches; default: the emulated site only.
        :return: the credential (``email``, ``token``, ``scopes``, ``expires_at``, ``expires_on``, ``basic()``).
        """
        sites = tuple(cloud_ids) if cloud_ids is not None else (self.cloud_id,)
        return self._api_tokens.register(email, split_scopes(scopes), sites, token=token, expires=expires)

    def revoke_api_token(self, token: str) -> None:
        """Delete an API token: it answers 401 from now on."""
        self._api_tokens.revoke(token)

    @property
    def tenant_info_url(self) -> str:
        """``<site>/_edge/tenant_info`` as the emulator serves it: on its own origin, which stands in for the site
        (the origin that already answers the site's ``/wiki/...`` paths). ``GET`` answers ``{"cloudId": ...}``
        without credentials."""
        return f"{self.url}/_edge/tenant_info"

    def api_token_connection(self, credential: ApiTokenCredential, **extra_overrides: Any) -> dict[str, Any]:
        """An Airflow connection dict (``auth_type`` ``api_token``) for this token.

        Its Host is the emulator's origin (``http://127.0.0.1:PORT``), so that ``<host>/_edge/tenant_info`` reaches
        the emulator; ``credential_expires`` is the token's expiry date. No ``cloud_id``: pass ``cloud_id=`` to set it.

        :param extra_overrides: extra fields to set; a None value removes the field.
        """
        extra = {
            "auth_type": "api_token",
            "api_url": self.api_url,
            "credential_expires": credential.expires_on.isoformat(),
        }
        return {
            "conn_type": CONN_TYPE,
            "host": self.url,
            "login": credential.email,
            "password": credential.token,
            "extra": _merge(extra, extra_overrides),
        }

    # ----------------------------------------------------------------- the points quota
    def enable_quota(
        self, hourly_points: int | None, *, global_hourly_points: int | None = None, align_to_hour: bool = True
    ) -> None:
        """Enforce the points-based hourly quota on OAuth traffic (3LO and service accounts; never API tokens).

        Starts afresh: every pool is whole. Costs, headers and the 429 are described in ``quota.py``.

        :param hourly_points: the budget of each app on each site per hour (``tenant-app-quota``); None: unlimited.
        :param global_hourly_points: the budget of each app over all its sites (``global-app-quota``); None: none.
        :param align_to_hour: windows start at the top of each hour of the emulator's clock (as Atlassian's do);
            False: a window starts at the first call after the previous one ended.
        """
        self._quota.configure(hourly_points, global_hourly_points, align_to_hour=align_to_hour)

    def disable_quota(self) -> None:
        """Stop enforcing the quota (the default): no more quota headers or 429s."""
        self._quota.configure(None, None)

    def reset_quota(self) -> None:
        """Make every pool whole again, keeping the budgets."""
        self._quota.reset()

    @property
    def quota_enabled(self) -> bool:
        """True while the points quota is enforced."""
        return self._quota.enabled

    def quota_usage(self, app: str | None = None, *, pool: str = SITE_POLICY) -> QuotaUsage:
        """Where a pool stands now: ``limit``, ``used``, ``remaining``, ``resets_at`` (emulator epoch seconds).

        :param app: the client id of the 3LO app (default) or of a service-account credential.
        :param pool: ``"tenant-app-quota"`` (this site) or ``"global-app-quota"``.
        :raises ValueError: the quota is off, or that pool has no budget.
        """
        for use in self._quota.usage(app or self.client_id, self.cloud_id):
            if use.policy == pool:
                return use
        raise ValueError(f"the points quota has no {pool} budget; call enable_quota() first")


def _auth_error(value: str) -> str:
    if value not in ("invalid_client", "access_denied"):
        raise ValueError("client_credentials_auth_error must be invalid_client or access_denied")
    return value


def _merge(extra: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    for name, value in overrides.items():
        if value is None:
            extra.pop(name, None)
        else:
            extra[name] = value
    return extra


def basic_header(email: str, token: str) -> str:
    """``Basic base64(email:token)``: the ``Authorization`` value of any e-mail and token (for refusal tests)."""
    return "Basic " + base64.b64encode(f"{email}:{token}".encode()).decode("ascii")
