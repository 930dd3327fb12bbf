"""The token broker: signing and verification, the worker-side client, the router in the API server's app.

* Signing, verification and :class:`BrokerTokenSource` import nothing from Airflow: they run on 2.11 too.
* The router (Airflow 3 only: FastAPI and the API server) runs under FastAPI's TestClient against the emulator
  and the SQLite metadata DB of this test session; one test puts a real HTTP server (uvicorn, in a thread)
  between the hook of a "worker" (ORM reported blocked) and the router.
* The plugin registers through the ``airflow.plugins`` entry point on both versions, and serves only on 3.

The real ``airflow api-server`` on PostgreSQL, with worker processes racing, is in test_broker_server.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from airflow_provider_confluence.auth.broker.client import BrokerCredentials, BrokerTokenSource, endpoint_url
from airflow_provider_confluence.auth.broker.protocol import (
    GATE_VARIABLE,
    MAX_AGE,
    BrokerRefusal,
    NonceCache,
    RequestVerifier,
    broker_key,
    signed_request,
    token_fingerprint,
)
from airflow_provider_confluence.config.connection import ConnectionSettings
from airflow_provider_confluence.exceptions import (
    ConfluenceBrokerError,
    ConfluenceConfigError,
    ConfluenceReauthorizationRequired,
)
from airflow_provider_confluence.retry import RetryPolicy
from helpers.airflow_env import airflow_major, put_connection, read_connection_extra, read_variable, run_airflow
from helpers.broker import ask as ask_broker
from helpers.broker import broker_app_client, gate_key, key_of, running_broker
from helpers.clock import Clock
from helpers.processes import free_port

SECRET = "s3cret-of-the-oauth-app-0123456789"
GATE_KEY = "the-deployments-broker-key-0123456789"
TOKEN_URL = "http://broker.test/confluence-oauth/token"


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _with_claims(token: str, **changes: Any) -> str:
    """The same signed token with its payload changed under the original signature."""
    header, payload, signature = token.split(".")
    claims = {**json.loads(_unb64(payload)), **changes}
    return f"{header}.{base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip('=')}.{signature}"


def refusal(verifier: RequestVerifier, body: dict[str, Any], secret: str | None = SECRET) -> BrokerRefusal:
    with pytest.raises(BrokerRefusal) as info:
        verifier.verify(body, secret=secret)
    return info.value


# -- signing and verification (no Airflow) --------------------------------------------------------------


@pytest.mark.airflow2
class TestVerification:
    def setup_method(self) -> None:
        self.clock = Clock(1_700_000_000.0)
        self.verifier = RequestVerifier(clock=self.clock)

    def body(self, conn_id: str = "conf", *, age: float = 0, secret: str = SECRET, **kw: Any) -> dict[str, Any]:
        return signed_request(secret, conn_id, timestamp=int(self.clock.now - age), **kw)

    def test_a_request_signed_with_the_client_secret_passes(self):
        assert self.verifier.verify(self.body(), secret=SECRET).rejected_token is None
        verified = self.verifier.verify(self.body(rejected_token=token_fingerprint("old")), secret=SECRET)
        assert verified.conn_id == "conf" and verified.rejected_token == token_fingerprint("old")

    def test_a_wrong_key_is_refused(self):
        assert refusal(self.verifier, self.body(secret="another-secret")).error == "invalid_signature"

    def test_a_tampered_conn_id_is_refused(self):
        body = self.body("conf")
        body["conn_id"] = "other"
        assert refusal(self.verifier, body).error == "invalid_signature"

    def test_a_tampered_rejected_token_is_refused(self):
        body = self.body(rejected_token=token_fingerprint("a"))
        body["request"] = _with_claims(body["request"], rejected_token=token_fingerprint("b"))
        assert refusal(self.verifier, body).error == "invalid_signature"

    def test_a_tampered_timestamp_is_refused(self):
        body = self.body()
        body["request"] = _with_claims(body["request"], iat=int(self.clock.now) - 1)
        assert refusal(self.verifier, body).error == "invalid_signature"

    def test_stale_and_future_timestamps_are_refused(self):
        self.verifier.verify(self.body(age=MAX_AGE - 1), secret=SECRET)
        stale = refusal(self.verifier, self.body(age=MAX_AGE + 1))
        assert stale.error == "stale_timestamp" and "121 s ago" in stale.detail
        self.verifier.verify(self.body(age=-29), secret=SECRET)
        future = refusal(self.verifier, self.body(age=-31))
        assert future.error == "future_timestamp" and "31 s ahead" in future.detail

    def test_a_replayed_nonce_is_refused_until_its_timestamp_ages_out(self):
        body = self.body()
        self.verifier.verify(body, secret=SECRET)
        assert refusal(self.verifier, body).error == "replayed_nonce"
        assert len(self.verifier.nonces) == 1
        # Once the timestamp is too old the nonce is forgotten: the age check refuses the replay instead.
        self.clock.now += MAX_AGE + 15
        assert refusal(self.verifier, body).error == "stale_timestamp"
        self.verifier.verify(self.body(), secret=SECRET)
        assert len(self.verifier.nonces) == 1

    def test_a_bad_signature_does_not_burn_the_nonce(self):
        good = self.body()
        nonce = json.loads(_unb64(good["request"].split(".")[1]))["jti"]
        forged = signed_request("wrong", "conf", timestamp=int(self.clock.now), nonce=nonce)
        assert refusal(self.verifier, forged).error == "invalid_signature"
        self.verifier.verify(good, secret=SECRET)

    def test_an_unknown_connection_is_refused_like_a_bad_signature(self):
        unknown = refusal(self.verifier, self.body(), secret=None)
        wrong = refusal(self.verifier, self.body(secret="another-secret"))
        assert (unknown.error, unknown.detail) == (wrong.error, wrong.detail) == ("invalid_signature", wrong.detail)

    def test_the_nonce_cache_is_thread_safe(self):
        cache, now = NonceCache(), time.time()
        accepted: list[bool] = []
        threads = [threading.Thread(target=lambda: accepted.append(cache.add("n", now + 60, now))) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert sorted(accepted) == [False] * 15 + [True]


@pytest.mark.airflow2
@pytest.mark.parametrize(
    ("override", "execution", "base", "expected"),
    [
        (None, "http://api:8080/execution/", None, "http://api:8080/confluence-oauth/token"),
        (None, "https://h/airflow/execution", None, "https://h/airflow/confluence-oauth/token"),
        (None, None, "https://airflow.example.com/", "https://airflow.example.com/confluence-oauth/token"),
        (None, None, None, "http://localhost:8080/confluence-oauth/token"),
        ("https://b.example.com/", "http://api:8080/execution/", None, "https://b.example.com/confluence-oauth/token"),
        ("https://b/confluence-oauth/token", None, None, "https://b/confluence-oauth/token"),
    ],
)
def test_the_broker_url_comes_from_the_execution_api_or_the_extra(override, execution, base, expected):
    assert endpoint_url(override=override, execution_api_server_url=execution, api_base_url=base) == expected


# -- the worker-side client (no Airflow) ----------------------------------------------------------------


def verify_both(body: dict[str, Any], key: str) -> None:
    """What the broker checks of a request: the deployment's gate signature, then the connection's."""
    issued_at = json.loads(_unb64(body["request"].split(".")[1]))["iat"]
    verifier = RequestVerifier(clock=lambda: issued_at)
    verifier.check_gate(body, gate_key=GATE_KEY)
    verifier.verify(body, secret=key)


def answer(token: str = "tok-1", expires_in: float = 3600, cloud_id: str | None = "cloud-1") -> dict[str, Any]:
    return {"access_token": token, "expires_at": time.time() + expires_in, "cloud_id": cloud_id}


def broker_source(**kwargs: Any) -> tuple[BrokerTokenSource, list[str]]:
    masked: list[str] = []
    kwargs.setdefault("sleep", lambda seconds: None)
    kwargs.setdefault("credentials", lambda fresh: BrokerCredentials(SECRET, GATE_KEY))
    return BrokerTokenSource(conn_id="conf", url=TOKEN_URL, on_secret=masked.append, **kwargs), masked


@pytest.mark.airflow2
class TestBrokerTokenSource:
    def test_tokens_are_cached_masked_and_every_request_is_signed_anew(self, requests_mock):
        clock = Clock(time.time())
        first = {**answer("tok-1"), "expires_at": clock.now + 3600}
        requests_mock.post(
            TOKEN_URL, [{"json": first}, {"json": {**first, "access_token": "tok-2", "expires_at": clock.now + 7200}}]
        )
        source, masked = broker_source(clock=clock)
        assert source.get_access_token() == "tok-1"
        clock.now += 3600 - 61
        assert source.get_access_token() == "tok-1"  # cached until the leeway (60 s) before its expiry
        clock.now += 2
        assert source.get_access_token() == "tok-2"  # inside the leeway: asked again
        assert source.get_access_token() == "tok-2"
        assert requests_mock.call_count == 2 and masked == ["tok-1", "tok-2"]
        bodies = [r.json() for r in requests_mock.request_history]
        for body in bodies:  # each valid when it was sent
            verify_both(body, SECRET)
        first, second = (json.loads(_unb64(body["request"].split(".")[1])) for body in bodies)
        assert first["jti"] != second["jti"] and second["iat"] - first["iat"] >= 3540
        assert source.get_cloud_id() == "cloud-1" and requests_mock.call_count == 2

    def test_a_rejected_token_is_named_by_its_fingerprint_only(self, requests_mock):
        requests_mock.post(TOKEN_URL, [{"json": answer("tok-1")}, {"json": answer("tok-2")}])
        source, _ = broker_source()
        rejected = source.get_access_token()
        assert source.refresh_rejected(rejected) == "tok-2"
        sent = requests_mock.request_history[1]
        claims = json.loads(_unb64(sent.json()["request"].split(".")[1]))
        assert claims["rejected_token"] == token_fingerprint("tok-1")
        assert "tok-1" not in sent.text

    def test_access_token_expired_asks_whether_the_broker_holds_another_token(self, requests_mock):
        requests_mock.post(TOKEN_URL, [{"json": answer("tok-1")}, {"json": answer("tok-1")}, {"json": answer("tok-2")}])
        source, _ = broker_source()
        source.get_access_token()
        assert source.access_token_expired() is False  # a real 404: the broker's token is the same
        assert source.access_token_expired() is True  # a sibling's forced refresh replaced it

    def test_an_unreachable_broker_is_waited_for_within_a_budget_then_fails_clearly(self, requests_mock, caplog):
        requests_mock.post(TOKEN_URL, exc=requests.exceptions.ConnectionError("refused"))
        slept: list[float] = []
        budget = RetryPolicy(max_attempts=200, base_delay=0.5, max_delay=5.0, max_total_wait=30.0)
        source, masked = broker_source(sleep=slept.append, retry=budget)
        with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.broker.client"):
            with pytest.raises(ConfluenceBrokerError) as info:
                source.get_access_token()
        assert info.value.unreachable and info.value.url == TOKEN_URL
        assert "execution_api_server_url" in info.value.message and "broker_url" in info.value.message
        assert "did not refresh anywhere else" in info.value.message
        assert 20.0 < sum(slept) <= 30.0 and max(slept) <= 5.0  # waited the budget, in bounded steps
        assert requests_mock.call_count == len(slept) + 1 and masked == []
        assert caplog.text.count("Waiting up to 30 s for the API server") == 1  # one line, not one per try

    def test_a_restarting_broker_is_waited_for_and_then_answers(self, requests_mock, caplog):
        requests_mock.post(
            TOKEN_URL,
            [
                {"exc": requests.exceptions.ConnectionError("refused")},
                {"status_code": 502, "text": "<html>Bad Gateway</html>"},
                {"status_code": 503, "text": "starting"},
                {"json": answer("tok-after-restart")},
            ],
        )
        slept: list[float] = []
        source, masked = broker_source(sleep=slept.append)
        with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.broker.client"):
            assert source.get_access_token() == "tok-after-restart"
        assert len(slept) == 3 and masked == ["tok-after-restart"]
        assert "could not be reached" in caplog.text and "never refreshes the token anywhere else" in caplog.text

    def test_an_answer_without_a_broker_says_the_plugin_may_be_missing(self, requests_mock):
        requests_mock.post(TOKEN_URL, status_code=404, text="<html>Not Found</html>")
        source, _ = broker_source()
        with pytest.raises(ConfluenceBrokerError, match="is airflow-provider-confluence installed") as info:
            source.get_access_token()
        assert not info.value.unreachable and info.value.status_code == 404 and requests_mock.call_count == 1

    def test_a_refused_key_is_tried_once_more_with_the_connection_read_again(self, requests_mock):
        """The API server wrote a broker_secret into the connection after this task read it."""
        requests_mock.post(
            TOKEN_URL,
            [
                {"status_code": 401, "json": {"error": "invalid_signature", "detail": "no"}},
                {"json": answer("tok-1")},
            ],
        )
        source, _ = broker_source(
            credentials=lambda fresh: BrokerCredentials("the-new-broker-secret" if fresh else SECRET, GATE_KEY)
        )
        assert source.get_access_token() == "tok-1"
        first, second = (r.json() for r in requests_mock.request_history)
        verify_both(second, "the-new-broker-secret")
        with pytest.raises(BrokerRefusal):
            verify_both(first, "the-new-broker-secret")

    def test_a_new_deployment_may_refuse_the_gate_then_the_key_and_still_answers(self, requests_mock):
        """The task read the Variable before the API server created it, and the connection before the first save
        gave it a broker_secret: each refusal is read again once."""
        requests_mock.post(
            TOKEN_URL,
            [
                {"status_code": 401, "json": {"error": "invalid_gate", "detail": "no"}},
                {"status_code": 401, "json": {"error": "invalid_signature", "detail": "no"}},
                {"json": answer("tok-1")},
            ],
        )
        reads = iter(
            [
                BrokerCredentials("derived", None),
                BrokerCredentials("derived", GATE_KEY),
                BrokerCredentials(SECRET, GATE_KEY),
            ]
        )
        source, _ = broker_source(credentials=lambda fresh: next(reads))
        assert source.get_access_token() == "tok-1"
        verify_both(requests_mock.request_history[2].json(), SECRET)

    def test_a_refused_key_that_did_not_change_is_not_tried_again(self, requests_mock):
        requests_mock.post(TOKEN_URL, status_code=401, json={"error": "invalid_signature", "detail": "no"})
        reads: list[bool] = []
        source, _ = broker_source(credentials=lambda fresh: reads.append(fresh) or BrokerCredentials(SECRET, GATE_KEY))
        with pytest.raises(ConfluenceBrokerError) as info:
            source.get_access_token()
        assert info.value.reason == "invalid_signature" and not info.value.unreachable
        assert requests_mock.call_count == 1 and reads == [False, True]

    def test_the_brokers_errors_keep_their_types(self, requests_mock):
        requests_mock.post(TOKEN_URL, status_code=403, json={"error": "reauthorization_required", "detail": "consent"})
        source, _ = broker_source()
        with pytest.raises(ConfluenceReauthorizationRequired) as info:
            source.get_access_token()
        assert info.value.conn_id == "conf" and info.value.message == "consent"


# -- the router, in the API server's app (Airflow 3) ----------------------------------------------------

needs_airflow3 = pytest.mark.skipif(airflow_major() < 3, reason="the token broker runs in the Airflow 3 API server")


@pytest.fixture
def broker(airflow_db: Any) -> Iterator[Any]:
    """A TestClient of an app that mounts the plugin's app where the API server does."""
    pytest.importorskip("fastapi")
    with broker_app_client() as client:
        yield client


def ask(client: Any, fake: Any, conn_id: str, *, secret: str | None = None, **kw: Any) -> Any:
    return ask_broker(client, conn_id, secret=secret, **kw)


def refresh_tokens_of(fake: Any, *planted: str) -> list[str]:
    return [t for t in (*planted, fake.latest_refresh_token, *getattr(fake._auth, "_refresh", {})) if t]


def second_worker(airflow_db: Any) -> Any:
    """Another API-server worker: its own app, hence its own verifier, on the same metadata database."""
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from airflow_provider_confluence.plugins.app import create_app

    root = FastAPI()
    root.mount("/confluence-oauth", create_app())
    return TestClient(root)


@needs_airflow3
def test_a_request_replayed_to_another_api_server_worker_is_refused(fake_atlassian, broker, airflow_db):
    """Seen nonces live in the metadata database (the single-use table), not in one worker's memory."""
    put_connection("brokered", fake_atlassian.connection("brokered"))
    assert ask(broker, fake_atlassian, "brokered").status_code == 200  # the first save gives it its key
    body = signed_request(key_of("brokered"), "brokered", timestamp=int(time.time()), gate_key=gate_key())
    assert broker.post("/confluence-oauth/token", json=body).status_code == 200
    with second_worker(airflow_db) as other:
        replayed = other.post("/confluence-oauth/token", json=body)
        assert replayed.status_code == 401 and replayed.json()["error"] == "replayed_nonce"
        fresh = signed_request(key_of("brokered"), "brokered", timestamp=int(time.time()), gate_key=gate_key())
        assert other.post("/confluence-oauth/token", json=fresh).status_code == 200  # a new nonce is fine
    assert fake_atlassian.counters["token_requests"] == 1


@pytest.mark.airflow2
def test_single_use_values_are_claimed_once_across_processes_and_pruned(airflow_db):
    """The ledger works on every Airflow line (its own table), and stores fingerprints, not the values."""
    from airflow_provider_confluence.plugins import single_use
    from airflow_provider_confluence.plugins.single_use import SingleUseLedger
    from airflow_provider_confluence.version_compat import create_session

    clock = Clock(time.time())
    value = "nonce-" + "n" * 40
    first, second = SingleUseLedger("broker-nonce", clock), SingleUseLedger("broker-nonce", clock)
    assert first.claim(value, clock.now + 120) and not second.claim(value, clock.now + 120)
    assert SingleUseLedger("consent-state", clock).claim(value, clock.now + 120)  # another namespace
    ours = {hashlib.sha256(f"{space}\n{value}".encode()).hexdigest() for space in ("broker-nonce", "consent-state")}

    def stored() -> set[str]:
        with create_session() as session:
            return {row[0] for row in session.execute(single_use._single_use_table().select()).all()}

    assert ours <= stored() and not [key for key in stored() if value in key]
    clock.now += 200  # both claims have expired: the next claim prunes them
    single_use._next_prune = 0.0
    assert second.claim("another-" + "x" * 40, clock.now + 120)
    assert not ours & stored()


@needs_airflow3
class TestRouter:
    def test_answers_an_access_token_and_writes_the_rotation_into_the_connection(self, fake_atlassian, broker):
        fake = fake_atlassian
        conn = fake.connection("brokered", state_store="broker")
        put_connection("brokered", conn)
        response = ask(broker, fake, "brokered")
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        body = response.json()
        assert set(body) == {"access_token", "expires_at", "cloud_id"}
        assert body["cloud_id"] == fake.cloud_id
        # Never a refresh token: neither the planted one nor any the emulator issued.
        assert not [t for t in refresh_tokens_of(fake, conn["extra"]["refresh_token"]) if t in response.text]
        extra = read_connection_extra("brokered")
        assert extra["refresh_token"] == fake.latest_refresh_token != conn["extra"]["refresh_token"]
        assert extra["access_token"] == body["access_token"] and extra["expires_at"] == body["expires_at"]
        assert extra["cloud_id"] == fake.cloud_id
        assert fake.counters["refreshes"] == 1 and fake.counters["accessible_resources_calls"] == 1
        # The first save gave the connection a random broker key of its own; the derived key is retired.
        assert len(extra["broker_secret"]) >= 40 and key_of("brokered") == extra["broker_secret"]
        derived = broker_key(
            ConnectionSettings.from_connection_fields(
                "brokered",
                host=conn["host"],
                login=conn["login"],
                password=conn["password"],
                extra=conn["extra"],
                allowed_endpoint_hosts=fake.allowed_endpoint_hosts,
            )
        )
        assert ask(broker, fake, "brokered", secret=derived).json()["error"] == "invalid_signature"
        # The next caller gets the same token: no refresh, no second discovery of the cloud id.
        again = ask(broker, fake, "brokered")
        assert again.json() == body
        assert fake.counters["refreshes"] == 1 and fake.counters["accessible_resources_calls"] == 1

    def test_refusals_say_why_and_refresh_nothing(self, fake_atlassian, broker):
        fake = fake_atlassian
        put_connection("brokered", fake.connection("brokered", state_store="broker"))
        put_connection("not_confluence", {**fake.connection("x"), "conn_type": "http"})
        wrong = ask(broker, fake, "brokered", secret="not-the-connections-key")
        unknown = ask(broker, fake, "no_such_connection", secret="not-the-connections-key")
        other_type = ask(broker, fake, "not_confluence", secret="not-the-connections-key")
        stale = broker.post(
            "/confluence-oauth/token",
            json=signed_request(
                key_of("brokered"), "brokered", timestamp=int(time.time()) - MAX_AGE - 5, gate_key=gate_key()
            ),
        )
        future = broker.post(
            "/confluence-oauth/token",
            json=signed_request(key_of("brokered"), "brokered", timestamp=int(time.time()) + 300, gate_key=gate_key()),
        )
        for response, error in [
            (wrong, "invalid_signature"),
            (unknown, "invalid_signature"),
            (other_type, "invalid_signature"),
            (stale, "stale_timestamp"),
            (future, "future_timestamp"),
        ]:
            assert response.status_code == 401, response.text
            assert response.json()["error"] == error and response.json()["detail"]
            assert "access_token" not in response.json()
        # An unknown connection reads exactly like a wrong signature: no oracle for which ids exist.
        assert unknown.json() == wrong.json() == other_type.json()
        assert "no confluence_oauth connection with this id" in wrong.json()["detail"]
        assert "signed 125 s ago" in stale.json()["detail"] or "signed 126 s ago" in stale.json()["detail"]
        assert fake.counters["token_requests"] == 0
        # A replay of a good request: answered once, refused after.
        assert ask(broker, fake, "brokered").status_code == 200  # the first save gives the connection its key
        body = signed_request(key_of("brokered"), "brokered", timestamp=int(time.time()), gate_key=gate_key())
        assert broker.post("/confluence-oauth/token", json=body).status_code == 200
        replayed = broker.post("/confluence-oauth/token", json=body)
        assert replayed.status_code == 401 and replayed.json()["error"] == "replayed_nonce"
        assert "access_token" not in replayed.json()
        assert fake.counters["token_requests"] == 1
        # Malformed requests never reach the verifier.
        assert broker.post("/confluence-oauth/token", json={**body, "request": "short"}).status_code == 422
        assert broker.post("/confluence-oauth/token", json={"conn_id": "brokered"}).status_code == 422

    def test_a_rejected_current_token_is_refreshed_and_an_old_one_is_not(self, fake_atlassian, broker):
        fake = fake_atlassian
        put_connection("brokered", fake.connection("brokered", state_store="broker"))
        first = ask(broker, fake, "brokered").json()["access_token"]
        second = ask(broker, fake, "brokered", rejected_token=token_fingerprint(first)).json()["access_token"]
        assert second != first and fake.counters["refreshes"] == 2
        # A worker still holding the first token gets the current one, without another refresh.
        third = ask(broker, fake, "brokered", rejected_token=token_fingerprint(first)).json()["access_token"]
        assert third == second and fake.counters["refreshes"] == 2
        assert read_connection_extra("brokered")["refresh_token"] == fake.latest_refresh_token
        assert fake.counters["invalid_grants"] == 0

    def test_a_request_from_outside_the_deployment_costs_no_lookup(self, fake_atlassian, broker, monkeypatch):
        """Without the deployment's gate signature, a request is refused before any connection (or secrets
        backend) is looked up, whatever connection it names."""
        from airflow_provider_confluence.plugins import broker as plugin

        fake = fake_atlassian
        put_connection("gated", fake.connection("gated"))
        lookups: list[str] = []
        real = plugin.get_connection_in_server
        monkeypatch.setattr(
            plugin, "get_connection_in_server", lambda conn_id: lookups.append(conn_id) or real(conn_id)
        )
        for gate in (None, "not-the-deployments-key"):
            refused = ask(broker, fake, "gated", gate_key=gate)
            assert refused.status_code == 401 and refused.json()["error"] == "invalid_gate", refused.text
            assert "Nothing was looked up" in refused.json()["detail"]
        assert lookups == [] and fake.counters["token_requests"] == 0
        assert ask(broker, fake, "gated").status_code == 200 and lookups == ["gated"]

    def test_forged_requests_do_not_make_the_broker_read_its_key_again_and_again(
        self, fake_atlassian, broker, monkeypatch
    ):
        from airflow_provider_confluence.plugins.broker import DeploymentGate

        reads: list[int] = []
        real = DeploymentGate._read_or_create
        monkeypatch.setattr(DeploymentGate, "_read_or_create", staticmethod(lambda: reads.append(1) or real()))
        put_connection("gated", fake_atlassian.connection("gated"))
        for _ in range(20):
            assert ask(broker, fake_atlassian, "gated", gate_key="forged").json()["error"] == "invalid_gate"
        assert len(reads) <= 2  # read once, and again at most once per 10 s

    def test_the_first_request_creates_the_deployments_key_and_a_task_picks_it_up(self, fake_atlassian, broker):
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        with create_session() as session:
            session.query(Variable).filter(Variable.key == GATE_VARIABLE).delete()
        fake = fake_atlassian
        put_connection("first", fake.connection("first"))
        refused = ask(broker, fake, "first", gate_key=None)  # a task that found no key yet
        assert refused.status_code == 401 and refused.json()["error"] == "invalid_gate"
        created = read_variable(GATE_VARIABLE)
        assert created and len(created) >= 40 and ask(broker, fake, "first", gate_key=created).status_code == 200

    def test_a_connection_of_the_same_oauth_app_cannot_get_anothers_token(self, fake_atlassian, broker):
        """Team A and team B use one Atlassian app (one client secret) with their own grants. Neither the shared
        client secret nor team B's own key gets team A's access token."""
        fake = fake_atlassian
        put_connection("team_a", fake.connection("team_a"))
        put_connection("team_b", fake.connection("team_b", refresh_token=fake.issue_grant()))
        assert ask(broker, fake, "team_b").status_code == 200  # team B is served with its own key
        for key in (fake.client_secret, key_of("team_b")):
            refused = ask(broker, fake, "team_a", secret=key)
            assert refused.status_code == 401 and refused.json()["error"] == "invalid_signature"
            assert "access_token" not in refused.json()
        assert [e["was_latest"] for e in fake.refresh_log] == [True]  # only team B's grant was redeemed
        assert ask(broker, fake, "team_a").status_code == 200  # team A's own key works

    def test_auto_is_served_by_default_and_not_where_the_deployment_turned_the_broker_off(
        self, fake_atlassian, broker, monkeypatch
    ):
        fake = fake_atlassian
        put_connection("auto_conn", fake.connection("auto_conn"))
        put_connection("variable_conn", fake.connection("variable_conn", state_store="variable"))
        variable = ask(broker, fake, "variable_conn")
        assert variable.status_code == 422 and "state_store=variable" in variable.json()["detail"]
        monkeypatch.setenv("AIRFLOW__CONFLUENCE__TOKEN_BROKER", "False")
        off = ask(broker, fake, "auto_conn")
        assert off.status_code == 422 and off.json()["error"] == "config_error"
        assert "[confluence] token_broker = False" in off.json()["detail"]
        assert fake.counters["token_requests"] == 0
        monkeypatch.delenv("AIRFLOW__CONFLUENCE__TOKEN_BROKER")
        on = ask(broker, fake, "auto_conn")  # no configuration at all
        assert on.status_code == 200, on.text
        assert read_connection_extra("auto_conn")["access_token"] == on.json()["access_token"]

    def test_an_env_var_connection_keeps_its_state_in_the_variable_row(self, fake_atlassian, broker, monkeypatch):
        from airflow.models.connection import Connection
        from airflow.models.variable import Variable
        from airflow.utils.session import create_session

        fake = fake_atlassian
        conn = fake.connection("from_env")
        with create_session() as session:
            session.query(Connection).filter(Connection.conn_id == "from_env").delete()
            session.query(Variable).filter(Variable.key == "confluence_oauth_token_state__from_env").delete()
        monkeypatch.setenv("AIRFLOW_CONN_FROM_ENV", json.dumps(conn))
        first = ask(broker, fake, "from_env")
        assert first.status_code == 200, first.text
        state = json.loads(read_variable("confluence_oauth_token_state__from_env") or "{}")
        assert state["refresh_token"] == fake.latest_refresh_token != conn["extra"]["refresh_token"]
        assert state["access_token"] == first.json()["access_token"] and state["cloud_id"] == fake.cloud_id
        forced = ask(broker, fake, "from_env", rejected_token=token_fingerprint(first.json()["access_token"]))
        assert forced.status_code == 200 and forced.json()["access_token"] != first.json()["access_token"]
        assert json.loads(read_variable("confluence_oauth_token_state__from_env") or "{}")["refresh_token"] == (
            fake.latest_refresh_token
        )
        assert fake.counters["refreshes"] == 2 and fake.counters["stale_refresh_reuses"] == 0

    def test_a_dead_grant_is_reported_and_the_stored_token_kept(self, fake_atlassian, broker):
        fake = fake_atlassian
        put_connection("dead", fake.connection("dead", refresh_token="revoked-or-unknown-token", state_store="broker"))
        response = ask(broker, fake, "dead")
        assert response.status_code == 403 and response.json()["error"] == "reauthorization_required"
        assert "authorize the app again" in response.json()["detail"]
        assert read_connection_extra("dead")["refresh_token"] == "revoked-or-unknown-token"

    def test_state_left_in_the_variable_store_is_never_adopted_silently_and_moves_once(self, fake_atlassian, broker):
        """Before this version, Airflow 3 kept rotations in the Variable; the row still holds the first token.

        A normal read must neither adopt the Variable (any Airflow 3 task can write one) nor redeem the retired
        token in the row (after 10 minutes that revokes the grant): the broker refuses with the command to run,
        and ``migrate-store`` moves the state once.
        """
        from airflow.models.connection import Connection
        from airflow.utils.session import create_session

        from airflow_provider_confluence.auth.stores.connection import migrate_variable_state
        from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

        fake = fake_atlassian
        conn = fake.connection("migrated", state_store="variable")
        put_connection("migrated", conn)
        ConfluenceOAuthHook("migrated").get_access_token()
        rotated = fake.latest_refresh_token
        with create_session() as session:  # the upgrade: the connection goes back to auto
            row = session.query(Connection).filter(Connection.conn_id == "migrated").one()
            row.set_extra(json.dumps({k: v for k, v in conn["extra"].items() if k != "state_store"}))
        refused = ask(broker, fake, "migrated")
        assert refused.status_code == 422 and "airflow-confluence migrate-store migrated" in refused.json()["detail"]
        assert fake.counters["token_requests"] == 1  # the Variable store's refresh only
        assert migrate_variable_state("migrated", dry_run=True).action == "moved"
        assert read_variable("confluence_oauth_token_state__migrated")  # a dry run changes nothing
        moved = migrate_variable_state("migrated")
        assert moved.action == "moved" and read_variable("confluence_oauth_token_state__migrated") is None
        assert read_connection_extra("migrated")["refresh_token"] == rotated
        assert migrate_variable_state("migrated").action == "nothing"
        response = ask(broker, fake, "migrated")
        assert response.status_code == 200, response.text
        forced = ask(broker, fake, "migrated", rejected_token=token_fingerprint(response.json()["access_token"]))
        assert forced.status_code == 200, forced.text
        assert fake.counters["stale_refresh_reuses"] == 0 and fake.counters["invalid_grants"] == 0
        assert [e["was_latest"] for e in fake.refresh_log] == [True, True]
        assert read_connection_extra("migrated")["refresh_token"] == fake.latest_refresh_token != rotated


# -- which store `auto` picks with the broker --------------------------------------------------------------


@pytest.mark.airflow2
def test_token_store_broker_where_the_orm_may_be_used_is_the_brokers_own_store(fake_atlassian, airflow_db):
    """The scheduler, the CLI, an in-process dag.test() (and every Airflow 2 process) use the broker's store
    directly: the connection row, exactly what the broker locks for the workers."""
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    put_connection("broker_local", fake_atlassian.connection("broker_local", state_store="broker"))
    hook = ConfluenceOAuthHook("broker_local")
    hook.get_access_token()
    assert hook.token_manager.store.name == "connection"
    assert read_connection_extra("broker_local")["refresh_token"] == fake_atlassian.latest_refresh_token


@needs_airflow3
def test_auto_is_one_store_in_every_process_with_no_configuration(fake_atlassian, airflow_db, monkeypatch, caplog):
    from airflow_provider_confluence.auth.stores import choice as stores
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    fake = fake_atlassian
    put_connection("auto_rule", fake.connection("auto_rule"))
    monkeypatch.setenv("AIRFLOW_CONN_AUTO_RULE_ENV", json.dumps(fake.connection("auto_rule_env")))
    # Where the ORM may be used: the connection row, else the Variable locked by its row.
    assert isinstance(ConfluenceOAuthHook("auto_rule").token_manager.store, stores.ConnectionTokenStore)
    assert isinstance(ConfluenceOAuthHook("auto_rule_env").token_manager.store, stores.VariableRowTokenStore)
    # In a task worker or the triggerer (ORM blocked): the broker, which uses that same store.
    monkeypatch.setattr(stores, "orm_available", lambda: False)
    worker = ConfluenceOAuthHook("auto_rule").token_manager
    assert isinstance(worker, BrokerTokenSource) and worker.store.name == "broker"
    with pytest.raises(ConfluenceConfigError, match="must ask the token broker"):
        stores.choose_token_store(ConfluenceOAuthHook("auto_rule").settings)
    # Only a deployment that turns the broker off gets the host-locked Variable, in every process, warned.
    monkeypatch.setenv("AIRFLOW__CONFLUENCE__TOKEN_BROKER", "False")
    monkeypatch.setattr(stores, "orm_available", lambda: True)
    with caplog.at_level(logging.WARNING, logger="airflow_provider_confluence.auth.stores.choice"):
        store = ConfluenceOAuthHook("auto_rule").token_manager.store
    assert type(store) is stores.VariableTokenStore
    assert "runs on ONE host" in caplog.text and "[confluence] token_broker = False" in caplog.text
    assert fake.counters["token_requests"] == 0


# -- the connection store's transaction ------------------------------------------------------------------


@pytest.mark.airflow2
def test_a_read_inside_a_row_transaction_does_not_drop_the_save(fake_atlassian, airflow_db):
    """TokenManager re-reads the store under its lock after invalid_grant; that read must not end the
    transaction (the thread's scoped session used to be committed and closed there, so the save wrote nothing)."""
    from airflow_provider_confluence.auth.stores.choice import ConnectionTokenStore
    from airflow_provider_confluence.auth.tokens import TokenState

    put_connection("nested", fake_atlassian.connection("nested", refresh_token="r0", state_store="connection"))
    store = ConnectionTokenStore("nested")
    with store.transaction() as tx:
        assert store.load().refresh_token == "r0"
        tx.save(TokenState(refresh_token="r1", access_token="a1", expires_at=time.time() + 3600))
    assert store.load().refresh_token == "r1"
    assert read_connection_extra("nested")["refresh_token"] == "r1"


# -- a worker's hook, over real HTTP, to the router -------------------------------------------------------


@pytest.fixture
def broker_server(airflow_db: Any) -> Iterator[str]:
    """The plugin's app behind uvicorn on loopback, in a thread; its base URL."""
    pytest.importorskip("fastapi")
    with running_broker() as url:
        yield url


@pytest.fixture
def worker_mode(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """This process plays an Airflow 3 task worker (ORM blocked) for the store choice; tokens masked are kept."""
    from airflow_provider_confluence.auth.stores import choice as stores
    from airflow_provider_confluence.hooks import confluence

    monkeypatch.setattr(stores, "orm_available", lambda: False)
    masked: list[str] = []
    monkeypatch.setattr(confluence, "mask_secret", masked.append)
    return masked


@needs_airflow3
def test_a_workers_hook_gets_its_tokens_from_the_broker(fake_atlassian, broker_server, worker_mode, capsys):
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session

    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    with create_session() as session:  # a new deployment: the broker's key is created by the first request
        session.query(Variable).filter(Variable.key == GATE_VARIABLE).delete()
    fake = fake_atlassian
    fake.add_space("DEMO")
    put_connection("worker_conn", fake.connection("worker_conn", broker_url=broker_server))
    hook = ConfluenceOAuthHook("worker_conn")
    page = hook.create_page(space_key="DEMO", title="From a worker", body="<p>hello</p>")
    assert isinstance(hook.token_manager, BrokerTokenSource) and hook.token_manager.store.name == "broker"
    assert f"token broker at {broker_server}/confluence-oauth/token" in capsys.readouterr().out
    assert [p["title"] for p in fake.pages if p["id"] == page["id"]] == ["From a worker"]
    extra = read_connection_extra("worker_conn")
    assert extra["refresh_token"] == fake.latest_refresh_token and extra["cloud_id"] == fake.cloud_id
    assert extra["access_token"] in worker_mode  # masked in the worker before use
    assert fake.counters["refreshes"] == 1 and hook.token_manager.requests_sent == 2  # refused once: no key yet
    # Confluence refuses its token once (401): the worker names it to the broker, which refreshes once.
    fake.fail_next(401, route="GET /wiki/api/v2/spaces")
    assert hook.get_space_id("DEMO")
    assert fake.counters["refreshes"] == 2 and fake.counters["invalid_grants"] == 0
    assert read_connection_extra("worker_conn")["access_token"] == hook.get_access_token() in worker_mode


@needs_airflow3
def test_an_unreachable_broker_fails_the_task_without_a_local_refresh(fake_atlassian, airflow_db, worker_mode):
    from airflow_provider_confluence.hooks.confluence import ConfluenceOAuthHook

    fake = fake_atlassian
    closed = f"http://127.0.0.1:{free_port()}"
    put_connection("no_broker", fake.connection("no_broker", state_store="broker", broker_url=closed))
    hook = ConfluenceOAuthHook("no_broker")
    hook.token_manager._sleep = lambda seconds: None
    with pytest.raises(ConfluenceBrokerError) as info:
        hook.get_space_id("DEMO")
    assert info.value.unreachable and closed in info.value.message
    assert fake.counters["token_requests"] == 0 and fake.counters["api_calls"] == 0


# -- the plugin ------------------------------------------------------------------------------------------


@pytest.mark.airflow2
def test_the_plugin_is_registered_and_serves_only_on_airflow_3(airflow_db):
    listed = run_airflow("plugins", "--output", "json").stdout
    plugins = {p["name"]: p for p in json.loads(listed[listed.index("[") :])}
    plugin = plugins["confluence"]
    assert "airflow_provider_confluence.plugins.confluence:ConfluencePlugin" in str(plugin["source"])
    if airflow_major() >= 3:
        assert [(a["url_prefix"], a["name"]) for a in plugin["fastapi_apps"]] == [
            ("/confluence-oauth", "Confluence OAuth")
        ]
    else:
        from airflow_provider_confluence.plugins.confluence import ConfluencePlugin

        assert ConfluencePlugin().fastapi_apps == []


@pytest.mark.airflow2
def test_loading_the_plugin_does_not_import_fastapi():
    """Task workers load every plugin: building the app is left to the API server."""
    code = (
        "import sys\n"
        "from airflow_provider_confluence.plugins.confluence import ConfluencePlugin\n"
        "plugin = ConfluencePlugin()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'starlette') or m.startswith(\n"
        "    ('airflow_provider_confluence.plugins.', 'airflow_provider_confluence.hooks', 'airflow_provider_confluence.b'))\n"
        "    and m != 'airflow_provider_confluence.plugins.confluence'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[]"
