"""How the assertion is made, and `[signing] binding = "session"`.

The token is built without joserfc (header encoded once per key, compact claims, one
signature with `cryptography`), so joserfc and the demo backend's verifier check it here.
Session binding reuses one assertion per (session, upstream) for at most half its TTL and
signs again whenever the session id, the principal, the key or the invoice parts change.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path

import pytest

from demo.assertion import AssertionVerifier, InvalidAssertion
from gateway.assertion import AssertionSigner
from gateway.keys import KeyStore
from gateway.settings import SettingsError, SigningSettings, load_settings

from .test_keys import PRINCIPAL, ROTATE, T0, TTL, Clock, decode, live_jwks, store

SESSION = dataclasses.replace(PRINCIPAL, session_id="ses_handle_1")
PATH = "/api/lines/436641000001/usage"


def session_signer(keys: KeyStore, clock: Clock, size: int = 100) -> AssertionSigner:
    return AssertionSigner(keys, issuer="portal-gateway", ttl_seconds=TTL, clock=clock, binding="session",
                           session_cache_size=size)


def sign(signer: AssertionSigner, principal: object = SESSION, audience: str = "portal", **kw: object) -> str:
    return signer.sign(principal, audience=audience, method="GET", path=PATH, request_id="rid", **kw)  # type: ignore[arg-type]


def segment(token: str, i: int) -> bytes:
    part = token.split(".")[i]
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_token_is_compact_and_verified_by_joserfc(tmp_path: Path, algorithm: str) -> None:
    clock = Clock()
    keys = store(tmp_path, clock, algorithm)
    keys.load()
    token = AssertionSigner(keys, issuer="portal-gateway", ttl_seconds=TTL, clock=clock).sign(
        PRINCIPAL, audience="portal", method="GET", path=PATH, request_id="rid-1"
    )
    assert "=" not in token and token.count(".") == 2
    header = json.loads(segment(token, 0))
    assert header == {"alg": algorithm, "kid": keys.current.kid, "typ": "JWT"}
    raw_claims = segment(token, 1)
    assert b" " not in raw_claims  # compact separators
    assert list(json.loads(raw_claims))[:3] == ["iss", "aud", "sub"]  # not re-sorted
    if algorithm == "ES256":
        assert len(segment(token, 2)) == 64  # JWS r||s, not DER
    assert decode(token, keys.jwks()).claims["htu"] == PATH


def test_request_binding_is_the_default() -> None:
    assert SigningSettings().binding == "request"


def test_session_binding_from_the_toml_file(tmp_path: Path) -> None:
    cfg = tmp_path / "gateway.toml"
    cfg.write_text('[signing]\nbinding = "session"\nsession_cache_size = 50\n')
    settings = load_settings(cfg)
    assert settings.signing.binding == "session" and settings.signing.session_cache_size == 50
    cfg.write_text('[signing]\nbinding = "sometimes"\n')
    with pytest.raises(SettingsError, match="signing.binding"):
        load_settings(cfg)
    cfg.write_text("[signing]\nsession_cache_size = 0\n")
    with pytest.raises(SettingsError, match="signing.session_cache_size"):
        load_settings(cfg)


async def test_session_bound_assertion_is_reused_and_verified_by_the_backend(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    first = sign(signer)
    clock.now += TTL / 2 - 1
    assert sign(signer) == first  # one signature for many requests
    claims = decode(first, keys.jwks()).claims
    assert not {"htm", "htu", "rid", "jti"} & set(claims)
    assert claims["sub"] == "acc_123" and claims["aud"] == "portal" and claims["exp"] == int(T0) + TTL
    verifier = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                                 clock=Clock(T0 + 1), transport=live_jwks(keys), binding="session")
    for path in (PATH, "/api/lines/436641000001/tariff"):  # not bound to a request: reusable
        verified = await verifier.verify(first, method="GET", path=path)
        assert verified.subject == "acc_123" and verified.request_id is None
    # A backend that insists on request binding (the default) refuses it.
    strict = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                               clock=Clock(T0 + 1), transport=live_jwks(keys))
    with pytest.raises(InvalidAssertion, match="missing claims"):
        await strict.verify(first, method="GET", path=PATH)
    # A request-bound assertion presented to a session-mode backend is still checked as one.
    bound = AssertionSigner(keys, issuer="portal-gateway", ttl_seconds=TTL, clock=clock).sign(
        PRINCIPAL, audience="portal", method="GET", path=PATH, request_id="r"
    )
    lenient = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                                clock=Clock(clock.now), transport=live_jwks(keys), binding="session")
    with pytest.raises(InvalidAssertion, match="htu"):
        await lenient.verify(bound, method="GET", path="/api/lines/436641000001/tariff")
    await lenient.verify(bound, method="GET", path=PATH)
    with pytest.raises(InvalidAssertion, match="replay"):
        await lenient.verify(bound, method="GET", path=PATH)


def test_reused_for_at_most_half_its_lifetime(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    first = sign(signer)
    clock.now += TTL / 2
    second = sign(signer)
    assert second != first and decode(second, keys.jwks()).claims["iat"] == int(clock.now)


def test_new_session_id_after_rotation_gets_a_new_assertion(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    first = sign(signer)
    clock.now += 1  # Ed25519 is deterministic: a re-signed token differs by its iat
    rotated = dataclasses.replace(SESSION, session_id="ses_handle_2")
    assert sign(signer, rotated) != first
    assert sign(signer, audience="billing") != first  # per upstream too
    assert decode(sign(signer, audience="billing"), keys.jwks()).claims["aud"] == "billing"


def test_ended_session_is_forgotten(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    first = sign(signer)
    sign(signer, audience="billing")
    other = sign(signer, dataclasses.replace(SESSION, session_id="ses_other"))
    assert signer.reusable_count() == 3
    signer.forget_session("ses_handle_1")  # logout / revocation
    assert signer.reusable_count() == 1
    clock.now += 1
    assert sign(signer) != first
    assert sign(signer, dataclasses.replace(SESSION, session_id="ses_other")) == other


def test_principal_change_is_signed_again(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    restricted = dataclasses.replace(SESSION, access_level="restricted", auth_methods=frozenset({"sms_tan"}))
    first = sign(signer, restricted)
    # The same session after a step-up to full access: the backend must hear it at once.
    stepped = dataclasses.replace(restricted, access_level="full", auth_methods=frozenset({"sms_tan", "totp"}),
                                  second_factor_at=clock.now)
    second = sign(signer, stepped)
    assert second != first
    c = decode(second, keys.jwks()).claims
    assert c["acl"] == "full" and c["amr"] == ["sms_tan", "totp"]
    # Other invoice parts are another assertion as well.
    parts = sign(signer, stepped, parts=frozenset({"private"}))
    assert parts != second and decode(parts, keys.jwks()).claims["parts"] == ["private"]
    assert sign(signer, stepped) == second


def test_key_rotation_is_signed_again(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    first = sign(signer)
    keys.rotate()
    second = sign(signer)
    assert second != first and json.loads(segment(second, 0))["kid"] == keys.current.kid
    clock.now += ROTATE  # rotation when due, while running
    third = sign(signer)
    assert json.loads(segment(third, 0))["kid"] == keys.current.kid != json.loads(segment(second, 0))["kid"]


def test_reuse_cache_is_bounded_lru(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock, size=2)
    hot = sign(signer)
    sign(signer, dataclasses.replace(SESSION, session_id="s2"))
    assert sign(signer) == hot  # used again: most recent
    sign(signer, dataclasses.replace(SESSION, session_id="s3"))  # evicts s2, not the hot one
    assert signer.reusable_count() == 2
    assert sign(signer) == hot


def test_callers_without_a_session_stay_request_bound(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = session_signer(keys, clock)
    a, b = sign(signer, PRINCIPAL), sign(signer, PRINCIPAL)  # e.g. an OIDC access token: no session id
    assert a != b and decode(a, keys.jwks()).claims["htu"] == PATH
    assert signer.reusable_count() == 0
