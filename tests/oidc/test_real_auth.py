"""OIDC over the auth component's real parts: linking with the registration proof, sessions.

`build_oidc(settings, auth=services, ...)` is what the gateway wires; here the
ports are exercised against real accounts (SQLite), the real registrar (regulator,
policy's can_register, the demo directory's proofs) and real sessions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from starlette.responses import Response

from gateway.auth.base import Credentials
from gateway.auth.component import build_auth
from gateway.auth.oidc.adapters import AuthOidcAccounts, AuthOidcSessions
from gateway.auth.oidc.component import OidcComponent, build_oidc
from gateway.auth.oidc.links import OidcLinks
from gateway.auth.oidc.ports import LinkRequest
from gateway.auth.outcomes import Conflict, RegistrationRefused, SecretRejected
from gateway.auth.services import AuthServices
from gateway.database import Database
from gateway.directory.memory import MemoryDirectory
from gateway.directory.proofs import ProofHasher, ProofHashers
from gateway.directory.world import load_world
from gateway.policy.authorizer import Authorizer
from gateway.settings import PolicySettings, ServerSettings, Settings
from gateway.store.memory import MemoryStore

from .helpers import Clock
from .idp import RESOURCE, Idp

REPO = Path(__file__).resolve().parents[2]
ISS = "https://idp.example.at"


@dataclass
class Env:
    services: AuthServices
    oidc: OidcComponent
    accounts: AuthOidcAccounts
    sessions: AuthOidcSessions
    db: Database


@pytest.fixture(scope="module")
def directory() -> MemoryDirectory:
    cheap = ProofHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return MemoryDirectory(
        load_world(REPO / "demo" / "directory.yaml"),
        hashers=ProofHashers(kundenkennwort=cheap, puk=cheap),
    )


@pytest.fixture
async def env(tmp_path: Path, directory: MemoryDirectory, idp: Idp) -> AsyncIterator[Env]:
    clock = Clock()
    db = Database("sqlite+aiosqlite:///:memory:")
    await db.migrate()
    store = MemoryStore(clock=clock)
    authorizer = Authorizer(
        directory=directory,
        clock=clock,
        settings=PolicySettings(
            path="policies/portal.polar", tests="policies/tests", decision_log="off"
        ),
        base_dir=REPO,
        routes_path=REPO / "config" / "routes.toml",
        run_tests=False,
    )
    settings = Settings(
        server=ServerSettings(public_url="https://testserver", data_dir=str(tmp_path)),
        extra={
            "auth": {"argon2_time_cost": 1, "argon2_memory_kib": 1024, "argon2_parallelism": 1},
            "totp": {"encryption_key": "test-totp-encryption-key-0123456789abcdef"},
            "sms": {"outbox_path": str(tmp_path / "sms.jsonl")},
            "oidc": {
                "enabled": True,
                "providers": {
                    "customer": {
                        "issuer": idp.issuer,
                        "client_id": "portal-web",
                        "client_secret": "portal-web-secret",
                        "audience": RESOURCE,
                    }
                },
            },
        },
        base_dir=str(REPO),
    )
    auth = build_auth(
        settings,
        store=store,
        db=db,
        directory=directory,
        authorizer=authorizer,
        clock=clock,
        registry=CollectorRegistry(),
    )
    assert auth.services is not None
    oidc = build_oidc(settings, auth=auth.services, store=store, db=db, clock=clock)
    for hook in oidc.on_startup:
        await hook()
    links = OidcLinks(db, clock=clock)
    s = auth.services
    yield Env(
        s,
        oidc,
        AuthOidcAccounts(
            accounts=s.accounts, links=links, registrar=s.registrar, directory=directory
        ),
        AuthOidcSessions(
            sessions=s.sessions, accounts=s.accounts, cookies=s.cookies, clock=clock
        ),
        db,
    )
    for hook in [*oidc.on_shutdown, *auth.on_shutdown]:
        await hook()
    await db.close()


def request(
    subject: str, identifier: str, proof_type: str, proof: str, email: str | None = None
) -> LinkRequest:
    return LinkRequest(
        provider="customer",
        issuer=ISS,
        subject=subject,
        identifier=identifier,
        proof_type=proof_type,
        proof=proof,
        client_ip="127.0.0.1",
        login_hint=email,
    )


async def test_link_with_kundenkennwort_binds_the_customer(env: Env) -> None:
    account_id = await env.accounts.link(
        request(
            "sub-anna", "1000001", "kundenkennwort", "Huber-Kennwort-1", "Anna.Huber@idp.example"
        )
    )
    p = await env.accounts.principal_for_subject(
        ISS, "sub-anna", provider="customer", auth_methods=frozenset({"oidc"})
    )
    assert p is not None and p.subject == account_id
    assert (p.role, p.bound_customer, p.access_level) == ("customer", "1000001", "full")
    assert p.login == "anna.huber@idp.example"
    account = await env.services.accounts.get(account_id)
    assert (
        account is not None
        and not account.has_password
        and account.registered_with == "oidc:kundenkennwort"
    )
    # Linked once: a second link of the same subject is refused.
    with pytest.raises(Conflict):
        await env.accounts.link(
            request("sub-anna", "1000001", "kundenkennwort", "Huber-Kennwort-1")
        )


async def test_wrong_proof_and_company_customer_are_refused(env: Env) -> None:
    with pytest.raises(SecretRejected):
        await env.accounts.link(request("sub-x", "1000001", "kundenkennwort", "wrong"))
    with pytest.raises(RegistrationRefused) as info:
        await env.accounts.link(
            request("sub-y", "1000020", "kundenkennwort", "Alpenblick-Kennwort")
        )
    assert info.value.hint_url
    assert (
        await env.accounts.principal_for_subject(
            ISS, "sub-x", provider="customer", auth_methods=frozenset()
        )
        is None
    )


async def test_business_member_link_makes_the_lines_account_once(env: Env) -> None:
    first = await env.accounts.link(request("sub-sophie", "436641000020", "puk", "20202020"))
    p = await env.accounts.principal_for_subject(
        ISS, "sub-sophie", provider="c", auth_methods=frozenset()
    )
    assert p is not None and p.subject == first
    assert p.role == "business_member" and p.bound_msisdn == "436641000020"
    assert p.person_id == "p-sophie-wagner"
    # Another subject with a proof of the same line: a proof shows the contract, not
    # the account, so it gets registration's 409 and never the existing account.
    with pytest.raises(Conflict) as info:
        await env.accounts.link(
            request("sub-sophie-2", "436641000020", "invoice_number", "RE-2026-110021")
        )
    assert info.value.reason == "already_registered"
    assert (
        await env.accounts.principal_for_subject(
            ISS, "sub-sophie-2", provider="c", auth_methods=frozenset()
        )
        is None
    )


async def test_sessions_adapter_uses_auths_sessions_and_cookie(env: Env) -> None:
    account_id = await env.accounts.link(
        request("sub-anna", "1000001", "kundenkennwort", "Huber-Kennwort-1")
    )
    p = await env.accounts.principal_for_subject(
        ISS, "sub-anna", provider="customer", auth_methods=frozenset()
    )
    assert p is not None
    issued = await env.sessions.create(p, client_ip="127.0.0.1", max_lifetime=3600)
    response = Response()
    issued.set_cookie(response)
    name = env.services.cookies.session_name
    token = response.headers["set-cookie"].split(f"{name}=", 1)[1].split(";", 1)[0]
    creds = Credentials(
        authorization=None, cookies={name: token}, client_ip="1", method="GET", path="/"
    )
    assert env.sessions.session_handle(creds) == issued.handle
    session = await env.services.sessions.lookup(token)
    assert session is not None and session.principal().subject == account_id
    assert session.data.methods == ("oidc",) and session.data.provider == "customer"
    await env.sessions.end_handle(issued.handle)
    assert await env.services.sessions.lookup(token) is None


async def test_component_has_routes_and_authenticators(env: Env) -> None:
    paths = {getattr(r, "path", "") for r in env.oidc.routes}
    assert {"/auth/oidc/login", "/auth/oidc/callback", "/auth/oidc/backchannel-logout"} <= paths
    assert [a.id for a in env.oidc.authenticators] == ["oidc_session_guard", "oidc_bearer"]
    assert env.oidc.providers_for_login_page()[0]["name"] == "customer"


async def test_parallel_links_of_one_line_make_one_account(env: Env) -> None:
    """Five IdP subjects link Sophie's line with her PUK at once: the database keeps one
    account for the line, the others get registration's 409 and no link."""
    subjects = [f"sub-racer-{i}" for i in range(5)]
    results = await asyncio.gather(
        *(env.accounts.link(request(s, "436641000020", "puk", "20202020")) for s in subjects),
        return_exceptions=True,
    )
    won = [r for r in results if isinstance(r, str)]
    lost = [r for r in results if isinstance(r, Conflict)]
    assert len(won) == 1 and len(lost) == 4, results
    assert {c.reason for c in lost} == {"already_registered"}
    linked = [await env.accounts.principal_for_subject(ISS, s, provider="c", auth_methods=frozenset())
              for s in subjects]
    assert [p.subject for p in linked if p is not None] == won
