"""The gateway's signing keys and the assertion it signs with them.

Keys are made on first start (0600, under data_dir/keys), reloaded on the next start,
rotated after `rotate_after`; a retired key stays in the JWKS until every assertion it
signed has expired (ttl + margin), then goes. A backend verifies the assertion against
the published JWKS (joserfc directly, and the demo backend's `AssertionVerifier`).
"""

from __future__ import annotations

import json
import stat
import threading
import warnings
from pathlib import Path
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from demo.assertion import AssertionVerifier, InvalidAssertion
from gateway.assertion import AssertionSigner, identity_headers
from gateway.keys import KeyStore
from gateway.principal import Principal

T0 = 1_800_000_000.0
DAY = 86400.0
TTL = 60
MARGIN = 300  # gateway.keys._PUBLISH_MARGIN_SECONDS
ROTATE = 30 * DAY


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def store(directory: Path, clock: Clock, algorithm: str = "EdDSA") -> KeyStore:
    return KeyStore(directory, algorithm=algorithm, rotate_after_seconds=ROTATE, assertion_ttl_seconds=TTL,
                    clock=clock)


def kids(keys: KeyStore) -> list[str]:
    return [k["kid"] for k in keys.jwks()["keys"]]


PRINCIPAL = Principal(
    subject="acc_123",
    access_level="full",
    auth_methods=frozenset({"password", "totp"}),
    role="customer",
    bound_customer="1000001",
)


def decode(token: str, jwks: dict[str, Any]) -> jwt.Token:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return jwt.decode(token, KeySet.import_key_set(jwks), algorithms=["EdDSA", "ES256"])


# --- key store -----------------------------------------------------------------------


def test_key_made_on_first_start_with_private_modes(tmp_path: Path) -> None:
    directory = tmp_path / "data" / "keys"
    keys = store(directory, Clock())
    keys.load()
    files = list(directory.glob("signing-*.json"))
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert not list(directory.glob("*.tmp"))
    data = json.loads(files[0].read_text())
    assert data["kid"] == keys.current.kid and data["alg"] == "EdDSA"
    published = keys.jwks()["keys"]
    assert len(published) == 1
    jwk = published[0]
    assert jwk["kid"] == keys.current.kid and jwk["alg"] == "EdDSA" and jwk["use"] == "sig"
    assert jwk["kty"] == "OKP" and jwk["crv"] == "Ed25519"
    assert "d" not in jwk  # never the private half


def test_current_before_load_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        _ = store(tmp_path, Clock()).current


def test_second_start_reloads_the_same_key(tmp_path: Path) -> None:
    clock = Clock()
    first = store(tmp_path, clock)
    first.load()
    clock.now += DAY
    second = store(tmp_path, clock)
    second.load()
    assert second.current.kid == first.current.kid
    assert second.jwks() == first.jwks()
    assert len(list(tmp_path.glob("signing-*.json"))) == 1


def test_rotation_at_start_keeps_the_previous_key_until_its_assertions_expired(tmp_path: Path) -> None:
    clock = Clock()
    first = store(tmp_path, clock)
    first.load()
    old = first.current.kid
    clock.now += ROTATE  # the key is now exactly rotate_after old
    restarted = store(tmp_path, clock)
    restarted.load()
    new = restarted.current.kid
    assert new != old
    assert kids(restarted) == [old, new]
    clock.now += TTL + MARGIN - 1
    assert kids(restarted) == [old, new]
    clock.now += 1
    assert kids(restarted) == [new]
    # ... and a later start does not bring it back.
    again = store(tmp_path, clock)
    again.load()
    assert kids(again) == [new] and again.current.kid == new


def test_no_rotation_before_rotate_after(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    kid = keys.current.kid
    clock.now += ROTATE - 1
    assert keys.current.kid == kid
    restarted = store(tmp_path, clock)
    restarted.load()
    assert restarted.current.kid == kid and kids(restarted) == [kid]


def test_rotation_while_running(tmp_path: Path) -> None:
    """A gateway that runs for longer than rotate_after still rotates."""
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    old = keys.current.kid
    clock.now += ROTATE + 5
    new = keys.current.kid
    assert new != old
    assert keys.current.kid == new  # once
    assert kids(keys) == [old, new]
    clock.now += TTL + MARGIN
    assert kids(keys) == [new]


def test_explicit_rotate(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    old = keys.current.kid
    clock.now += 10
    made = keys.rotate()
    assert keys.current is made and made.kid != old
    assert kids(keys) == [old, made.kid]


def test_workers_sharing_the_directory_publish_each_others_keys(tmp_path: Path) -> None:
    """`serve --workers N`: every worker's JWKS carries the key any worker signs with."""
    clock = Clock()
    a, b = store(tmp_path, clock), store(tmp_path, clock)
    a.load()
    b.load()
    assert a.current.kid == b.current.kid
    clock.now += ROTATE
    rotated = a.current.kid  # a rotates first, while running
    assert rotated in kids(b)
    assert b.current.kid == rotated  # b picks up a's fresh key instead of making another
    assert len(list(tmp_path.glob("signing-*.json"))) == 2


def test_workers_starting_at_once_agree_on_one_key(tmp_path: Path) -> None:
    clock = Clock()
    stores = [store(tmp_path, clock) for _ in range(8)]
    barrier = threading.Barrier(len(stores))

    def start(k: KeyStore) -> None:
        barrier.wait()
        k.load()

    threads = [threading.Thread(target=start, args=(k,)) for k in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({k.current.kid for k in stores}) == 1
    assert len(list(tmp_path.glob("signing-*.json"))) == 1


def test_unreadable_key_file_stops_the_start_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "signing-000000000001-x.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match=str(bad)):
        store(tmp_path, Clock()).load()


def test_es256_keys(tmp_path: Path) -> None:
    keys = store(tmp_path, Clock(), algorithm="ES256")
    keys.load()
    jwk = keys.jwks()["keys"][0]
    assert jwk["kty"] == "EC" and jwk["crv"] == "P-256" and jwk["alg"] == "ES256" and "d" not in jwk
    again = store(tmp_path, Clock(), algorithm="ES256")
    again.load()
    assert again.current.kid == keys.current.kid


# --- assertions ----------------------------------------------------------------------


def signer_for(keys: KeyStore, clock: Clock) -> AssertionSigner:
    return AssertionSigner(keys, issuer="portal-gateway", ttl_seconds=TTL, clock=clock)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
def test_assertion_verifies_against_the_published_jwks(tmp_path: Path, algorithm: str) -> None:
    clock = Clock()
    keys = store(tmp_path, clock, algorithm)
    keys.load()
    token = signer_for(keys, clock).sign(
        PRINCIPAL, audience="portal", method="GET", path="/api/lines/436641000001/usage", request_id="rid-1"
    )
    decoded = decode(token, keys.jwks())
    assert decoded.header["alg"] == algorithm and decoded.header["kid"] == keys.current.kid
    c = decoded.claims
    assert c["iss"] == "portal-gateway" and c["aud"] == "portal" and c["sub"] == "acc_123"
    assert c["iat"] == int(T0) and c["exp"] == int(T0) + TTL
    assert c["htm"] == "GET" and c["htu"] == "/api/lines/436641000001/usage"
    assert c["acl"] == "full" and c["amr"] == ["password", "totp"] and c["rid"] == "rid-1"
    assert c["jti"] and "parts" not in c and "client" not in c
    claims = jwt.JWTClaimsRegistry(
        now=int(T0) + 1,
        iss={"essential": True, "value": "portal-gateway"},
        aud={"essential": True, "value": "portal"},
        exp={"essential": True},
    )
    claims.validate(c)
    late = jwt.JWTClaimsRegistry(now=int(T0) + TTL + 1, exp={"essential": True}, leeway=0)
    with pytest.raises(Exception, match="expired"):
        late.validate(c)


def test_assertion_parts_service_and_unique_jti(tmp_path: Path) -> None:
    clock = Clock()
    keys = store(tmp_path, clock)
    keys.load()
    signer = signer_for(keys, clock)
    service = Principal(subject="client:billing", kind="service", access_level="full",
                        auth_methods=frozenset({"client_credentials"}))
    t1 = signer.sign(service, audience="billing", method="POST", path="/x", request_id="r",
                     parts=frozenset({"private", "business"}))
    t2 = signer.sign(service, audience="billing", method="POST", path="/x", request_id="r")
    c1, c2 = decode(t1, keys.jwks()).claims, decode(t2, keys.jwks()).claims
    assert c1["parts"] == ["business", "private"] and c1["client"] is True and c1["aud"] == "billing"
    assert c1["jti"] != c2["jti"]


def test_identity_headers() -> None:
    h = dict(identity_headers(PRINCIPAL, "tok", frozenset({"private"})))
    assert h == {
        b"x-portal-subject": b"acc_123",
        b"x-portal-access-level": b"full",
        b"x-portal-auth-methods": b"password,totp",
        b"x-portal-assertion": b"tok",
        b"x-portal-visible-parts": b"private",
    }
    assert b"x-portal-visible-parts" not in dict(identity_headers(PRINCIPAL, "tok", None))


def live_jwks(keys: KeyStore) -> httpx.MockTransport:
    """The gateway's /.well-known/jwks.json, answered from the key store as it is now."""

    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/.well-known/jwks.json"
        return httpx.Response(200, json=keys.jwks())

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("algorithm", ["EdDSA", "ES256"])
async def test_backend_verifier_follows_rotation_and_drops_expired_keys(tmp_path: Path, algorithm: str) -> None:
    gateway_clock = Clock()
    keys = store(tmp_path, gateway_clock, algorithm)
    keys.load()
    signer = signer_for(keys, gateway_clock)
    path = "/api/lines/436641000001/usage"
    old_token = signer.sign(PRINCIPAL, audience="portal", method="GET", path=path, request_id="r1")

    backend_clock = Clock(T0 + 1)
    verifier = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                                 clock=backend_clock, refetch_interval=0, transport=live_jwks(keys))
    verified = await verifier.verify(old_token, method="GET", path=path)
    assert verified.subject == "acc_123" and verified.key_id == keys.current.kid
    # Bound to audience, method and path.
    with pytest.raises(InvalidAssertion, match="htu"):
        await verifier.verify(old_token, method="GET", path="/api/lines/436641000002/usage")
    with pytest.raises(InvalidAssertion, match="htm"):
        await verifier.verify(old_token, method="PUT", path=path)
    other = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="billing",
                              clock=backend_clock, transport=live_jwks(keys))
    with pytest.raises(InvalidAssertion, match="audience"):
        await other.verify(old_token, method="GET", path=path)

    # The gateway rotates: a new token verifies (unknown kid → one refetch), the old one still does.
    old_kid = keys.current.kid
    gateway_clock.now += ROTATE
    new_token = signer.sign(PRINCIPAL, audience="portal", method="GET", path=path, request_id="r2")
    assert keys.current.kid != old_kid
    backend_clock.now = gateway_clock.now + 1
    assert (await verifier.verify(new_token, method="GET", path=path)).key_id == keys.current.kid
    fresh = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                              clock=Clock(T0 + 1), transport=live_jwks(keys))
    assert (await fresh.verify(old_token, method="GET", path=path)).key_id == old_kid

    # Once every assertion of the old key has expired, the key is gone from the JWKS: a backend
    # that fetches now cannot verify anything signed with it, even with a clock that says "valid".
    gateway_clock.now += TTL + MARGIN
    late = AssertionVerifier(jwks_url="http://gw.test/.well-known/jwks.json", audience="portal",
                             clock=Clock(T0 + 1), transport=live_jwks(keys))
    with pytest.raises(InvalidAssertion, match="unknown key id"):
        await late.verify(old_token, method="GET", path=path)
    # And with the true time it is expired anyway.
    with pytest.raises(InvalidAssertion, match="expired"):
        await verifier.verify(old_token, method="GET", path=path)


def test_retired_private_keys_are_deleted_from_disk(tmp_path):  # type: ignore[no-untyped-def]
    from gateway.keys import KeyStore

    now = [1_000_000.0]
    store = KeyStore(tmp_path / "keys", algorithm="EdDSA", rotate_after_seconds=86400,
                     assertion_ttl_seconds=60, clock=lambda: now[0])
    store.load()
    old = store.current.kid
    now[0] += 10
    store.rotate()
    assert len(list((tmp_path / "keys").glob("signing-*.json"))) == 2
    now[0] += 60 + 301
    kids = {k["kid"] for k in store.jwks()["keys"]}
    assert old not in kids
    files = list((tmp_path / "keys").glob("signing-*.json"))
    assert len(files) == 1 and old not in files[0].name
