"""The JWT bearer authenticator against the real provider's keys and tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from gateway.auth.oidc.bearer import OidcBearerAuthenticator
from gateway.auth.oidc.errors import TokenRejected

from .helpers import ANNA, Clock, FakeAccounts, bearer, make_providers
from .idp import RESOURCE, Idp, new_key


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def accounts(idp: Idp) -> FakeAccounts:
    return FakeAccounts(links={(idp.issuer, "anna"): ANNA})


@pytest.fixture
def auth(
    idp: Idp, http: httpx.AsyncClient, clock: Clock, accounts: FakeAccounts
) -> OidcBearerAuthenticator:
    return OidcBearerAuthenticator(make_providers(idp, http, clock), accounts)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unsigned(header: dict[str, object], claims: dict[str, object]) -> tuple[str, str]:
    return b64(json.dumps(header).encode()), b64(json.dumps(claims).encode())


async def rejected(auth: OidcBearerAuthenticator, token: str) -> str:
    with pytest.raises(TokenRejected) as info:
        await auth.authenticate(bearer(token))
    return info.value.reason


async def test_client_credentials_token_is_a_service_client(
    auth: OidcBearerAuthenticator, idp: Idp
) -> None:
    token = idp.client_credentials("portal:read portal:write")
    principal = await auth.authenticate(bearer(token))
    assert principal is not None
    assert principal.kind == "service"
    assert principal.subject == "client:portal-api"
    assert principal.scopes == frozenset({"portal:read", "portal:write"})
    assert principal.auth_methods == frozenset({"client_credentials"})
    assert (
        principal.role is None
        and principal.bound_customer is None
        and principal.bound_msisdn is None
    )
    assert principal.provider == "idp"


async def test_linked_subject_acts_as_its_account(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    token = idp.mint({"sub": "anna", "client_id": "portal-web", "scope": "portal:read"})
    principal = await auth.authenticate(bearer(token))
    assert principal is not None
    assert principal.subject == "acc_anna" and principal.kind == "account"
    assert principal.role == "customer" and principal.bound_customer == "1000001"
    assert principal.auth_methods == frozenset({"bearer_jwt"})
    assert principal.second_factor_at is None


async def test_unlinked_subject_is_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    token = idp.mint({"sub": "markus", "client_id": "portal-web"})
    assert await rejected(auth, token) == "oidc_subject_not_linked"


@pytest.mark.parametrize(
    "credentials",
    [None, "Basic YTpi", "Bearer pgs_abcdef", "Bearer ", "Negotiate xyz"],
)
async def test_other_credentials_are_not_ours(
    auth: OidcBearerAuthenticator, credentials: str | None
) -> None:
    from gateway.auth.base import Credentials

    creds = Credentials(
        authorization=credentials, cookies={}, client_ip="127.0.0.1", method="GET", path="/"
    )
    assert await auth.authenticate(creds) is None


async def test_alg_none_is_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    h, c = unsigned(
        {"alg": "none", "kid": "k1"},
        {"iss": idp.issuer, "aud": RESOURCE, "sub": "anna", "exp": 2**40},
    )
    assert await rejected(auth, f"{h}.{c}.") == "oidc_token_algorithm"
    h, c = unsigned(
        {"alg": "None", "kid": "k1"},
        {"iss": idp.issuer, "aud": RESOURCE, "sub": "anna", "exp": 2**40},
    )
    assert await rejected(auth, f"{h}.{c}.") == "oidc_token_algorithm"


@pytest.mark.parametrize("alg", ["HS256", "HS384", "HS512"])
async def test_hmac_signed_with_the_public_key_is_refused(
    auth: OidcBearerAuthenticator, idp: Idp, alg: str
) -> None:
    # The key-confusion attack: the provider's public key used as an HMAC secret.
    public_pem = idp.keys[0].as_pem(private=False)
    jwks_json = json.dumps(idp.keys[0].as_dict(private=False)).encode()
    for secret in (public_pem, jwks_json):
        h, c = unsigned(
            {"alg": alg, "kid": idp.keys[0].kid, "typ": "at+jwt"},
            {"iss": idp.issuer, "aud": RESOURCE, "sub": "anna", "exp": 2**40},
        )
        digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384, "HS512": hashlib.sha512}[alg]
        sig = b64(hmac.new(secret, f"{h}.{c}".encode(), digest).digest())
        assert await rejected(auth, f"{h}.{c}.{sig}") == "oidc_token_algorithm"


async def test_missing_kid_is_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    token = idp.mint({"sub": "anna", "client_id": "portal-web"}, header={"kid": None})
    assert await rejected(auth, token) == "oidc_token_no_kid"


async def test_algorithm_outside_the_allow_list_is_refused(
    auth: OidcBearerAuthenticator, idp: Idp
) -> None:
    # Properly signed by the provider's key, but RS384 is not on this provider's list.
    from joserfc.jwk import RSAKey

    key = RSAKey.generate_key(2048, parameters={"kid": idp.keys[0].kid}, private=True)
    token = idp.mint({"sub": "anna"}, key=key, header={"alg": "RS384"})
    assert await rejected(auth, token) == "oidc_token_algorithm"


async def test_expired_token_is_refused(
    auth: OidcBearerAuthenticator, idp: Idp, clock: Clock
) -> None:
    token = idp.mint({"sub": "anna", "client_id": "portal-web"})
    clock.offset = 300 + 31  # exp + leeway (30 s) + 1
    assert await rejected(auth, token) == "oidc_token_expired"
    clock.offset = 300 + 20  # within the leeway
    assert await auth.authenticate(bearer(token)) is not None


async def test_token_not_yet_valid_is_refused(
    auth: OidcBearerAuthenticator, idp: Idp, clock: Clock
) -> None:
    token = idp.mint({"sub": "anna", "nbf": int(clock()) + 120})
    assert await rejected(auth, token) == "oidc_token_not_yet_valid"


async def test_wrong_audience_is_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    assert (
        await rejected(auth, idp.mint({"sub": "anna", "aud": "urn:other-api"}))
        == "oidc_token_audience"
    )
    assert (
        await rejected(auth, idp.mint({"sub": "anna", "aud": "portal-web"}))
        == "oidc_token_audience"
    )
    assert await rejected(auth, idp.mint({"sub": "anna", "aud": None})) == "oidc_token_claims"


async def test_unknown_issuer_is_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    assert (
        await rejected(auth, idp.mint({"sub": "anna", "iss": "https://evil.example"}))
        == "oidc_token_issuer"
    )


async def test_forged_signature_with_a_known_kid_is_refused(
    auth: OidcBearerAuthenticator, idp: Idp
) -> None:
    attacker = new_key(idp.keys[0].kid or "k1")
    assert await rejected(auth, idp.mint({"sub": "anna"}, key=attacker)) == "oidc_token_signature"


async def test_id_token_is_not_an_access_token(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    token = idp.mint({"sub": "anna", "nonce": "n", "aud": RESOURCE})
    assert await rejected(auth, token) == "oidc_token_type"


async def test_missing_sub_and_garbage_are_refused(auth: OidcBearerAuthenticator, idp: Idp) -> None:
    assert await rejected(auth, idp.mint({"client_id": "portal-api"})) == "oidc_token_claims"
    assert await rejected(auth, idp.mint({"sub": ""})) == "oidc_token_claims"
    assert await rejected(auth, idp.mint({"sub": 42})) == "oidc_token_claims"
    assert await rejected(auth, "not-a-jwt") == "oidc_token_issuer"
    assert await rejected(auth, "a.b.c") == "oidc_token_issuer"
