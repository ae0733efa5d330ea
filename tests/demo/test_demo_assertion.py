"""The backend accepts only a valid gateway assertion bound to this request."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey

from demo.assertion import AssertionVerifier, InvalidAssertion, KeysUnavailable
from tests.demo.conftest import FakeClock
from tests.demo.helpers import JwksServer, Signer, new_ed25519

USAGE = "/api/lines/436641000001/usage"


def b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


async def test_valid_assertion_answers_with_echo(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock
) -> None:
    token = signer.sign(
        "GET", USAGE, now=clock(), subject="acct-anna", request_id="req-42", parts=["private"]
    )
    response = await client.get(
        USAGE + "?lang=de",
        headers={
            "X-Portal-Assertion": token,
            "X-Portal-Subject": "acct-anna",
            "X-Portal-Access-Level": "full",
            "X-Portal-Auth-Methods": "pwd,otp",
            "X-Request-Id": "req-42",
            "X-Forwarded-For": "203.0.113.7",
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "portal.example.at",
            "Forwarded": 'for=203.0.113.7;proto=https;host="portal.example.at"',
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["asked_by"] == {
        "subject": "acct-anna",
        "access_level": "full",
        "auth_methods": ["pwd", "otp"],
        "request_id": "req-42",
        "parts": ["private"],
    }
    received = body["received"]
    assert received["method"] == "GET"
    assert received["path"] == USAGE
    assert received["query"] == "lang=de"
    assert received["x_portal_headers"] == {
        "x-portal-subject": "acct-anna",
        "x-portal-access-level": "full",
        "x-portal-auth-methods": "pwd,otp",
    }
    assert received["assertion_present"] is True
    assert received["x_request_id"] == "req-42"
    assert received["forwarded"] == {
        "x_forwarded_for": "203.0.113.7",
        "x_forwarded_proto": "https",
        "x_forwarded_host": "portal.example.at",
        "forwarded": 'for=203.0.113.7;proto=https;host="portal.example.at"',
    }
    assert token not in response.text


async def test_status_is_public(client: httpx.AsyncClient) -> None:
    response = await client.get("/api/status")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["asked_by"] is None
    assert body["received"]["path"] == "/api/status"


async def assert_rejected(
    client: httpx.AsyncClient,
    token: str | None,
    path: str = USAGE,
    method: str = "GET",
    detail: str | None = None,
) -> None:
    headers = {} if token is None else {"X-Portal-Assertion": token}
    response = await client.request(method, path, headers=headers)
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "invalid_assertion"
    assert body["asked_by"] is None
    assert "invalid_token" in response.headers["www-authenticate"]
    if detail is not None:
        assert detail in body["detail"]


async def test_missing_assertion(client: httpx.AsyncClient) -> None:
    await assert_rejected(client, None, detail="missing")


async def test_missing_assertion_on_write_and_unknown_paths(client: httpx.AsyncClient) -> None:
    await assert_rejected(client, None, path="/api/lines/436641000001/sim/block", method="POST")
    await assert_rejected(client, None, path="/api/does-not-exist")


async def test_expired(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    token = signer.sign("GET", USAGE, now=clock() - 120)
    await assert_rejected(client, token, detail="expired")


async def test_expiry_within_skew_is_accepted(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock
) -> None:
    token = signer.sign("GET", USAGE, now=clock() - 63)  # exp was 3 s ago, skew is 5 s
    response = await client.get(USAGE, headers={"X-Portal-Assertion": token})
    assert response.status_code == 200
    token = signer.sign("GET", USAGE, now=clock() - 66)  # exp 6 s ago
    await assert_rejected(client, token, detail="expired")


async def test_issued_in_the_future(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    await assert_rejected(client, signer.sign("GET", USAGE, now=clock() + 30), detail="future")
    ok = signer.sign("GET", USAGE, now=clock() + 4)
    assert (await client.get(USAGE, headers={"X-Portal-Assertion": ok})).status_code == 200


async def test_too_long_lifetime(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    token = signer.sign("GET", USAGE, now=clock(), exp=int(clock()) + 3600)
    await assert_rejected(client, token, detail="lifetime")


async def test_wrong_audience(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    await assert_rejected(client, signer.sign("GET", USAGE, now=clock(), aud="billing"), detail="audience")


async def test_audience_list_containing_us(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock
) -> None:
    token = signer.sign("GET", USAGE, now=clock(), aud=["billing", "portal"])
    assert (await client.get(USAGE, headers={"X-Portal-Assertion": token})).status_code == 200


async def test_wrong_issuer(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    await assert_rejected(client, signer.sign("GET", USAGE, now=clock(), iss="evil-gateway"), detail="issuer")


async def test_wrong_htm(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    token = signer.sign("GET", "/api/lines/436641000001/sim/block", now=clock())
    await assert_rejected(
        client, token, path="/api/lines/436641000001/sim/block", method="POST", detail="htm"
    )


@pytest.mark.parametrize(
    ("signed", "requested"),
    [
        ("/api/lines/436641000001/usage", "/api/lines/436641000010/usage"),
        ("/api/lines/436641000001/usage", "/api/lines/436641000001/tariff"),
        ("/api/lines/436641000001/usage", "/api/lines/436641000001/usage/"),
        ("/api/lines/436641000001/usage", "/api/lines/%34%33%36641000001/usage"),
        ("/api/lines/436641000001/usage?x=1", "/api/lines/436641000001/usage?x=1"),
    ],
)
async def test_wrong_htu(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock, signed: str, requested: str
) -> None:
    await assert_rejected(client, signer.sign("GET", signed, now=clock()), path=requested)


async def test_htu_is_the_raw_encoded_path(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock
) -> None:
    raw = "/api/invoices/RE-2026-%31%310001"  # a gateway forwards what it matched, byte for byte
    token = signer.sign("GET", raw, now=clock())
    response = await client.get(raw, headers={"X-Portal-Assertion": token})
    assert response.status_code == 200, response.text
    assert response.json()["received"]["path"] == raw
    assert response.json()["number"] == "RE-2026-110001"


async def test_bad_signature(client: httpx.AsyncClient, clock: FakeClock) -> None:
    impostor = Signer(new_ed25519("gw-key-1"))  # same kid, other key
    await assert_rejected(client, impostor.sign("GET", USAGE, now=clock()), detail="signature")


async def test_tampered_payload(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    header, payload, signature = signer.sign("GET", USAGE, now=clock()).split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["acl"] = "full"
    claims["sub"] = "acct-mallory"
    await assert_rejected(client, f"{header}.{b64(claims)}.{signature}")


async def test_alg_none(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    _, payload, _ = signer.sign("GET", USAGE, now=clock()).split(".")
    for alg in ("none", "None", "NONE"):
        header = b64({"alg": alg, "kid": "gw-key-1", "typ": "JWT"})
        await assert_rejected(client, f"{header}.{payload}.", detail=None)
        await assert_rejected(client, f"{header}.{payload}.c2ln", detail="algorithm")


async def test_hs256_with_the_public_key_as_secret(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock
) -> None:
    public = signer.key.as_dict(private=False)
    secret = OctKey.import_key(json.dumps(public).encode())
    claims = json.loads(base64.urlsafe_b64decode(signer.sign("GET", USAGE, now=clock()).split(".")[1] + "=="))
    token = jwt.encode({"alg": "HS256", "kid": "gw-key-1"}, claims, secret, algorithms=["HS256"])
    await assert_rejected(client, token, detail="algorithm")


async def test_garbage_tokens(client: httpx.AsyncClient) -> None:
    for token in ("x", "a.b", "a.b.c", "!!!.???.###", "e30.e30.e30", "Bearer abc.def.ghi"):
        await assert_rejected(client, token)


async def test_missing_claims(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
    for claim in ("sub", "htu", "htm", "exp", "rid", "acl"):
        drop: dict[str, Any] = {claim: None}
        await assert_rejected(client, signer.sign("GET", USAGE, now=clock(), **drop), detail=claim)


async def test_unknown_kid_refetches_after_rotation(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock, jwks: JwksServer
) -> None:
    old = signer.sign("GET", USAGE, now=clock())
    assert (await client.get(USAGE, headers={"X-Portal-Assertion": old})).status_code == 200
    assert jwks.hits == 1
    # The gateway rotates: a new key appears, the old one is kept until its assertions expire.
    new_key = new_ed25519("gw-key-2")
    jwks.publish(new_key, signer.key)
    clock.advance(11)
    fresh = Signer(new_key).sign("GET", USAGE, now=clock())
    assert (await client.get(USAGE, headers={"X-Portal-Assertion": fresh})).status_code == 200
    assert jwks.hits == 2
    # both keys now known: no further fetches
    for s in (signer, Signer(new_key)):
        token = s.sign("GET", USAGE, now=clock())
        assert (await client.get(USAGE, headers={"X-Portal-Assertion": token})).status_code == 200
    assert jwks.hits == 2


async def test_unknown_kid_refetch_is_rate_limited(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock, jwks: JwksServer
) -> None:
    ok = signer.sign("GET", USAGE, now=clock())
    assert (await client.get(USAGE, headers={"X-Portal-Assertion": ok})).status_code == 200
    stranger = Signer(new_ed25519("nobody"))
    for _ in range(5):
        clock.advance(1)
        await assert_rejected(client, stranger.sign("GET", USAGE, now=clock()), detail="unknown key")
    assert jwks.hits == 1  # within 10 s of the last fetch: no refetch
    clock.advance(6)
    await assert_rejected(client, stranger.sign("GET", USAGE, now=clock()), detail="unknown key")
    assert jwks.hits == 2
    await assert_rejected(client, stranger.sign("GET", USAGE, now=clock()), detail="unknown key")
    assert jwks.hits == 2


async def test_jwks_unreachable_is_503(
    client: httpx.AsyncClient, signer: Signer, clock: FakeClock, jwks: JwksServer
) -> None:
    jwks.fail = True
    response = await client.get(USAGE, headers={"X-Portal-Assertion": signer.sign("GET", USAGE, now=clock())})
    assert response.status_code == 503
    assert response.json()["error"] == "unavailable"
    # the gateway's JWKS comes back: the next request (a moment later) works
    jwks.fail = False
    clock.advance(2)
    response = await client.get(USAGE, headers={"X-Portal-Assertion": signer.sign("GET", USAGE, now=clock())})
    assert response.status_code == 200


async def test_es256_keys_are_accepted(clock: FakeClock) -> None:
    server = JwksServer().start()
    try:
        ec = ECKey.generate_key("P-256", parameters={"kid": "ec-1"})
        server.publish(ec)
        verifier = AssertionVerifier(jwks_url=server.url, audience="portal", clock=clock)
        token = Signer(ec, alg="ES256").sign("PUT", "/api/vpn/vpn-alpenblick-1", now=clock())
        verified = await verifier.verify(token, method="PUT", path="/api/vpn/vpn-alpenblick-1")
        assert verified.key_id == "ec-1"
        # an Ed25519 header naming the EC key is refused
        header, payload, sig = token.split(".")
        forged = b64({"alg": "EdDSA", "kid": "ec-1"}) + f".{payload}.{sig}"
        with pytest.raises(InvalidAssertion):
            await verifier.verify(forged, method="PUT", path="/api/vpn/vpn-alpenblick-1")
    finally:
        server.stop()


async def test_verifier_reports_unreachable_jwks(clock: FakeClock, signer: Signer) -> None:
    verifier = AssertionVerifier(
        jwks_url="http://127.0.0.1:9/.well-known/jwks.json", audience="portal", clock=clock, fetch_timeout=1
    )
    with pytest.raises(KeysUnavailable):
        await verifier.verify(signer.sign("GET", USAGE, now=clock()), method="GET", path=USAGE)


async def test_verifier_rejects_bad_config() -> None:
    with pytest.raises(ValueError):
        AssertionVerifier(jwks_url="file:///etc/passwd", audience="portal")
