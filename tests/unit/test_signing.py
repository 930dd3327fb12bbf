"""Attacks on the signed values: the consent ``state`` and the token broker's requests (JWT, HS256).

Every forgery must be refused: a signature changed at any character (the last one included, whose unused bits
base64 decoders ignore), a header or payload changed anywhere, a token of one purpose offered for another,
``alg: none`` and other algorithms, expired and future tokens, a replayed ``jti``, a missing claim.
"""

from __future__ import annotations

import base64
import json
import string
from typing import Any

import jwt
import pytest

from airflow_provider_confluence.auth import signing
from airflow_provider_confluence.auth.broker.protocol import (
    MAX_AGE,
    BrokerRefusal,
    RequestVerifier,
    signed_request,
    token_fingerprint,
)
from airflow_provider_confluence.auth.consent_state import ConsentStates
from airflow_provider_confluence.exceptions import ConfluenceAuthError

pytestmark = pytest.mark.airflow2

NOW = 1_700_000_000.0
SECRET = "the-shared-secret-of-this-test"
KEY = signing.signing_key(SECRET)
ALPHABET = string.ascii_letters + string.digits + "-_"
AUDIENCES = (signing.CONSENT_STATE, signing.BROKER_REQUEST, signing.BROKER_GATE)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def token(audience: str = signing.BROKER_REQUEST, **claims: Any) -> str:
    return signing.issue(KEY, audience, {"sub": "conf", **claims}, now=NOW, lifetime=MAX_AGE)


def reason(value: Any, audience: str = signing.BROKER_REQUEST, *, key: bytes = KEY, now: float = NOW) -> str:
    with pytest.raises(signing.SignatureRefused) as info:
        signing.verify(value, key, audience, now=now, max_age=MAX_AGE, max_future=30, require=("sub",))
    return info.value.reason


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: bytes | None = KEY) -> str:
    """A token built without PyJWT's encoder: any header, any payload, signed with HS256 under ``key``."""
    import hashlib
    import hmac

    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b64(hmac.new(key, signing_input.encode(), hashlib.sha256).digest()) if key else ""
    return f"{signing_input}.{signature}"


def claims(**changes: Any) -> dict[str, Any]:
    base = {"sub": "conf", "aud": signing.BROKER_REQUEST, "iat": int(NOW), "exp": int(NOW) + MAX_AGE, "jti": "j" * 24}
    return {k: v for k, v in {**base, **changes}.items() if v is not None}


def test_a_token_of_ours_verifies_with_every_claim():
    good = token(rejected_token="a" * 64)
    verified = signing.verify(good, KEY, signing.BROKER_REQUEST, now=NOW, max_age=MAX_AGE, max_future=30)
    assert set(verified) == {"sub", "rejected_token", "aud", "iat", "exp", "jti"}
    assert jwt.get_unverified_header(good)["alg"] == "HS256"
    assert verified["exp"] - verified["iat"] == MAX_AGE and verified["aud"] == signing.BROKER_REQUEST


def test_a_signature_changed_at_any_character_is_refused():
    good = token()
    head, _, signature = good.rpartition(".")
    tried = 0
    for position in range(len(signature)):
        for char in ALPHABET:
            if char != signature[position]:
                forged = f"{head}.{signature[:position]}{char}{signature[position + 1 :]}"
                assert reason(forged) == "forged", (position, char)
                tried += 1
    assert tried == len(signature) * (len(ALPHABET) - 1)


def test_a_last_character_that_decodes_to_the_same_bytes_is_refused():
    """Base64's unused low bits: PyJWT alone would accept these; every textual change must count."""
    good = token()
    head, _, signature = good.rpartition(".")
    alike = [c for c in ALPHABET if c != signature[-1] and unb64(signature[:-1] + c) == unb64(signature)]
    assert alike, "the last character carries unused bits"
    for char in alike:
        assert reason(f"{head}.{signature[:-1]}{char}") == "forged"
    assert reason(good + "=") == "forged" and reason(good[:-1]) == "forged"


def test_a_header_or_payload_changed_at_any_character_is_refused():
    good = token()
    body = good.rpartition(".")[0]
    for position in range(len(body)):
        if body[position] == ".":
            continue
        char = "A" if body[position] != "A" else "B"
        forged = f"{body[:position]}{char}{good[position + 1 :]}"
        assert reason(forged) in ("forged", "malformed"), position


def test_a_payload_rewritten_under_the_old_signature_is_refused():
    header, payload, signature = token().split(".")
    moved = json.loads(unb64(payload)) | {"sub": "another_connection"}
    assert reason(f"{header}.{b64(json.dumps(moved).encode())}.{signature}") == "forged"


@pytest.mark.parametrize("issued_for", AUDIENCES)
@pytest.mark.parametrize("offered_as", AUDIENCES)
def test_a_token_for_one_purpose_is_refused_for_another_under_the_same_key(issued_for, offered_as):
    issued = token(issued_for)
    if issued_for == offered_as:
        signing.verify(issued, KEY, offered_as, now=NOW, max_age=MAX_AGE, max_future=30)
    else:
        assert reason(issued, offered_as) == "forged"


def test_an_audience_list_that_holds_ours_is_refused():
    both = hand_made({"alg": "HS256", "typ": "JWT"}, claims(aud=[signing.BROKER_REQUEST, signing.CONSENT_STATE]))
    assert reason(both) == "forged"


@pytest.mark.parametrize(
    "header", [{"alg": "none"}, {"alg": "None"}, {"alg": "HS512"}, {"alg": "HS384"}, {"alg": "RS256"}, {}]
)
def test_other_algorithms_are_refused(header):
    assert reason(hand_made({**header, "typ": "JWT"}, claims(), key=None)) in ("forged", "malformed")
    unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims()).encode())}."
    assert reason(unsigned) in ("forged", "malformed")
    if header.get("alg", "").startswith("HS"):  # a valid HMAC of another size
        import hashlib
        import hmac

        digest = {"HS512": hashlib.sha512, "HS384": hashlib.sha384}[header["alg"]]
        signing_input = f"{b64(json.dumps({**header, 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims()).encode())}"
        other = f"{signing_input}.{b64(hmac.new(KEY, signing_input.encode(), digest).digest())}"
        assert reason(other) == "forged"


def test_the_hand_made_tokens_of_these_tests_do_verify_when_honest():
    """So that the refusals above are about the change made, not about how the tests build tokens."""
    honest = hand_made({"alg": "HS256", "typ": "JWT"}, claims())
    assert signing.verify(honest, KEY, signing.BROKER_REQUEST, now=NOW, max_age=MAX_AGE, max_future=30)["sub"] == "conf"


@pytest.mark.parametrize("missing", ["aud", "iat", "exp", "jti", "sub"])
def test_a_missing_claim_is_refused(missing):
    assert reason(hand_made({"alg": "HS256", "typ": "JWT"}, claims(**{missing: None}))) in ("malformed", "forged")


@pytest.mark.parametrize(
    "change", [{"iat": "1700000000"}, {"exp": True}, {"jti": 7}, {"jti": ""}, {"exp": int(NOW) + MAX_AGE + 3600}]
)
def test_claims_of_the_wrong_type_or_a_lifetime_too_long_are_refused(change):
    assert reason(hand_made({"alg": "HS256", "typ": "JWT"}, claims(**change))) == "malformed"


def test_expired_and_future_tokens_are_refused_and_say_when_they_were_issued():
    good = token()
    signing.verify(good, KEY, signing.BROKER_REQUEST, now=NOW + MAX_AGE, max_age=MAX_AGE, max_future=30)
    assert reason(good, now=NOW + MAX_AGE + 1) == "expired"
    signing.verify(good, KEY, signing.BROKER_REQUEST, now=NOW - 30, max_age=MAX_AGE, max_future=30)
    assert reason(good, now=NOW - 31) == "future"
    with pytest.raises(signing.SignatureRefused) as info:
        signing.verify(good, KEY, signing.BROKER_REQUEST, now=NOW + 999, max_age=MAX_AGE, max_future=30)
    assert info.value.issued_at == int(NOW)


@pytest.mark.parametrize("value", ["", "a.b", "a.b.c.d", "not a token", None, 42, "é.é.é"])
def test_garbage_is_malformed_or_forged(value):
    assert reason(value) in ("malformed", "forged")


def test_a_forged_token_that_is_also_expired_says_forged():
    """Time is only looked at once the signature holds: a forger learns nothing from the answer."""
    wrong = signing.issue(
        signing.signing_key("another key"), signing.BROKER_REQUEST, {"sub": "conf"}, now=NOW, lifetime=MAX_AGE
    )
    assert reason(wrong, now=NOW + 3600) == "forged"


# -- the same attacks on the two users of the tokens ----------------------------------------------------


def refusal(verifier: RequestVerifier, body: dict[str, Any], secret: str | None = SECRET) -> str:
    with pytest.raises(BrokerRefusal) as info:
        verifier.verify(body, secret=secret)
    return info.value.error


def test_a_consent_state_is_refused_as_a_broker_request_and_the_other_way_round():
    states = ConsentStates(SECRET, clock=lambda: NOW)
    state = states.issue(conn_id="conf", user="u", binding="b")
    verifier = RequestVerifier(clock=lambda: NOW)
    assert refusal(verifier, {"conn_id": "conf", "request": state}) == "invalid_signature"
    request = signed_request(SECRET, "conf", timestamp=int(NOW), gate_key=SECRET)
    for offered in (request["request"], request["gate"]):
        with pytest.raises(ConfluenceAuthError) as info:
            states.verify(offered, user="u")
        assert info.value.error in ("forged_state", "malformed_state")
    # the gate token (same key here) is not a request, and the request is not a gate
    assert refusal(verifier, {"conn_id": "conf", "request": request["gate"]}) == "invalid_signature"
    with pytest.raises(BrokerRefusal) as gate:
        verifier.check_gate({**request, "gate": request["request"]}, gate_key=SECRET)
    assert gate.value.error == "invalid_gate"
    verifier.check_gate(request, gate_key=SECRET)
    assert verifier.verify(request, secret=SECRET).conn_id == "conf"


def test_a_gate_vouches_for_one_request_and_one_connection_only():
    verifier = RequestVerifier(clock=lambda: NOW)
    first = signed_request(SECRET, "conf", timestamp=int(NOW), gate_key="gate-key")
    second = signed_request(SECRET, "conf", timestamp=int(NOW), gate_key="gate-key")
    for body in ({**first, "gate": second["gate"]}, {**first, "conn_id": "other"}, {**first, "gate": None}):
        with pytest.raises(BrokerRefusal) as info:
            verifier.check_gate(body, gate_key="gate-key")
        assert info.value.error == "invalid_gate"
    verifier.check_gate(first, gate_key="gate-key")


def test_a_broker_request_is_used_once_and_a_forged_one_uses_nothing_up():
    verifier = RequestVerifier(clock=lambda: NOW)
    body = signed_request(SECRET, "conf", timestamp=int(NOW), rejected_token=token_fingerprint("old"))
    head, _, signature = body["request"].rpartition(".")
    alike = next(c for c in ALPHABET if c != signature[-1] and unb64(signature[:-1] + c) == unb64(signature))
    assert refusal(verifier, {**body, "request": f"{head}.{signature[:-1]}{alike}"}) == "invalid_signature"
    verified = verifier.verify(body, secret=SECRET)
    assert verified.rejected_token == token_fingerprint("old")
    assert refusal(verifier, body) == "replayed_nonce"


def test_a_broker_request_with_a_rejected_token_that_is_not_a_fingerprint_is_refused():
    request = signing.issue(
        KEY, signing.BROKER_REQUEST, {"sub": "conf", "rejected_token": "the-token-itself"}, now=NOW, lifetime=MAX_AGE
    )
    assert refusal(RequestVerifier(clock=lambda: NOW), {"conn_id": "conf", "request": request}) == "invalid_signature"


def test_a_consent_state_is_used_once_and_expires():
    clock = [NOW]
    states = ConsentStates(SECRET, clock=lambda: clock[0])
    binding = "tag"
    issued = states.verify(states.issue(conn_id="conf", user="u", binding=binding), user="u")
    states.consume(issued, binding=binding)
    with pytest.raises(ConfluenceAuthError) as replay:
        states.consume(issued, binding=binding)
    assert replay.value.error == "reused_state"
    late = states.issue(conn_id="conf", user="u", binding=binding)
    clock[0] += 601
    with pytest.raises(ConfluenceAuthError) as expired:
        states.verify(late, user="u")
    assert expired.value.error == "expired_state"
