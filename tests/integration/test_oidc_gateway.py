"""OpenID Connect through the REAL gateway (`gateway.app.build_app`): a real provider
(node-oidc-provider, tests/idp), the real policy, SQLite directory and accounts, and the
demo backend behind it, all on loopback sockets.

tests/oidc/ drives the OIDC component in a test-only app; this module checks the wiring
in gateway/components.py and gateway/app.py: the provider configured through settings
like `[oidc.providers.customer]`, bearer tokens in the authenticator chain, the OIDC
routes mounted, linking through auth's registration, sessions the data plane accepts, and
back-channel logout ending them.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
import pytest
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from gateway.settings import load_settings
from tests.oidc.conftest import gateway_url, web_idp  # noqa: F401  (fixtures: the provider)
from tests.oidc.gateway_app import browser_login, forms_of, location
from tests.oidc.idp import RESOURCE, Idp
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

ROOT = Path(__file__).resolve().parents[2]
TARIFF = "/api/lines/436641000001/tariff"
USAGE = "/api/lines/436641000001/usage"


@dataclass
class RecordingBackend:
    """The demo backend, remembering every path that reached it."""

    app: Any
    paths: list[str] = field(default_factory=list)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.paths.append(str(scope["path"]))
        await self.app(scope, receive, send)


@dataclass
class OidcPortal:
    url: str
    backend: RecordingBackend
    decisions: Path
    idp: Idp

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20, follow_redirects=False)

    def decision(self, decision_id: str) -> dict[str, Any]:
        for line in self.decisions.read_text().splitlines():
            entry: dict[str, Any] = json.loads(line)
            if entry.get("decision_id") == decision_id:
                return entry
        raise AssertionError(f"decision {decision_id} not in the decision log")


@pytest.fixture
async def portal(tmp_path: Path, web_idp: Idp, gateway_url: str) -> AsyncIterator[OidcPortal]:  # noqa: F811
    gw_port = int(gateway_url.rsplit(":", 1)[1])
    backend_port = free_port()
    decisions = tmp_path / "decisions.jsonl"
    provider = {
        "issuer": web_idp.issuer,
        "client_id": "portal-web",
        "client_secret": "portal-web-secret",
        "audience": RESOURCE,
        "allowed_algorithms": ["RS256"],
        "scopes": ["openid", "email", "profile", "phone"],
        "display_name": "Kunden-IdP",
        "allow_service_clients": True,
    }
    settings = load_settings(
        ROOT / "config" / "demo.toml",
        environ={},
        overrides={
            "server.port": gw_port,
            "server.public_url": gateway_url,
            "server.data_dir": str(tmp_path),
            "database.url": f"sqlite+aiosqlite:///{tmp_path}/portal.db",
            "directory.seed_file": str(ROOT / "demo" / "directory.yaml"),
            "policy.path": str(ROOT / "policies" / "portal.polar"),
            "policy.tests": str(ROOT / "policies" / "tests"),
            "policy.watch": False,
            "policy.decision_log": str(decisions),
            "routes.path": str(ROOT / "config" / "routes.toml"),
            "sms.outbox_path": str(tmp_path / "sms-outbox.jsonl"),
            "sms.sender": "outbox",
            "upstreams.portal": {"url": f"http://127.0.0.1:{backend_port}"},
            "oidc.enabled": True,
            "oidc.providers": {"customer": provider},
        },
    )
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    backend = RecordingBackend(
        create_backend(jwks_url=f"{gateway_url}/.well-known/jwks.json", audience="portal")
    )
    async with serve_asgi(backend, port_override=backend_port):
        async with serve_asgi(app, port_override=gw_port) as url:
            yield OidcPortal(url, backend, decisions, web_idp)


def unsigned(token: str) -> str:
    """The token's claims under ``alg: none`` (no signature)."""
    head = base64.urlsafe_b64encode(json.dumps({"alg": "none", "kid": "k1"}).encode()).rstrip(b"=")
    return head.decode() + "." + token.split(".")[1] + "."


# ------------------------------------------------------------------ (1) service client
async def test_client_credentials_token_is_refused_by_the_policy(portal: OidcPortal) -> None:
    token = portal.idp.client_credentials("portal:read")
    async with portal.client() as c:
        r = await c.get(TARIFF, headers={"Authorization": f"Bearer {token}"})
        # Authenticated (not 401): the token is valid; the policy grants a service client
        # nothing, and answers like every caller without a relation (invariant 2).
        assert r.status_code == 404, r.text
        assert r.json()["error"] == "not_found"
        decision = portal.decision(r.headers["x-decision-id"])
        assert decision["subject"] == "client:portal-api"
        assert (decision["outcome"], decision["reason"]) == ("not_found", "service_client_not_permitted")
        assert decision["action"] == "view_tariff" and decision["resource_id"] == "436641000001"
        # A write scope changes nothing either.
        both = portal.idp.client_credentials("portal:read portal:write")
        r = await c.put(
            "/api/lines/436641000001/tariff",
            headers={"Authorization": f"Bearer {both}"},
            json={"tariff": "x"},
        )
        assert r.status_code == 404
        assert portal.decision(r.headers["x-decision-id"])["reason"] == "service_client_not_permitted"
    assert not [p for p in portal.backend.paths if p.startswith("/api/lines/")]


# ------------------------------------------------------------- (2) bad bearer tokens
@pytest.mark.parametrize("variant", ["alg_none", "wrong_audience"])
async def test_bad_bearer_jwt_is_401(portal: OidcPortal, variant: str) -> None:
    claims = {"sub": "portal-api", "client_id": "portal-api", "scope": "portal:read"}
    if variant == "alg_none":
        token = unsigned(portal.idp.mint(claims))
    else:
        token = portal.idp.mint({**claims, "aud": "urn:someone-else"})
    async with portal.client() as c:
        r = await c.get(TARIFF, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401, r.text
        assert r.json()["error"] == "unauthenticated"
        assert "x-decision-id" not in r.headers  # refused before the policy
    assert not portal.backend.paths


# ------------------------------------------------- (3) + (4) browser flow and logout
async def sign_out_at_provider(browser: httpx.AsyncClient, idp: Idp) -> None:
    page = await browser.get(f"{idp.issuer}/session/end")
    assert page.status_code == 200, page.text
    form = forms_of(page.text)[0]
    r = await browser.post(
        urljoin(str(page.url), form["action"]), data={**form["fields"], "logout": "yes"}
    )
    assert r.status_code in (200, 302, 303), r.text


async def test_browser_login_links_then_back_channel_logout_ends_the_session(
    portal: OidcPortal,
) -> None:
    async with httpx.AsyncClient(follow_redirects=False, timeout=20) as browser:
        # First login of the provider's "anna": unknown (issuer, subject) → link page.
        r = await browser_login(browser, portal.url, "anna", "anna-idp-pass", next_path=USAGE)
        assert r.status_code == 303, r.text
        assert location(r) == "/auth/oidc/link"
        assert (await browser.get(f"{portal.url}{USAGE}")).status_code == 401  # no session yet
        page = {"Origin": portal.url}  # the link page's own post, as a browser sends it
        wrong = await browser.post(
            f"{portal.url}/auth/oidc/link",
            json={"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "falsch"},
            headers=page,
        )
        assert wrong.status_code in (400, 401), wrong.text
        ok = await browser.post(
            f"{portal.url}/auth/oidc/link",
            json={"identifier": "1000001", "proof_type": "kundenkennwort", "proof": "Huber-Kennwort-1"},
            headers=page,
        )
        assert ok.status_code == 200, ok.text
        assert ok.json() == {"linked": True, "next": USAGE}

        # The session works on the data plane: the policy allows, the backend echoes who.
        r = await browser.get(f"{portal.url}{USAGE}")
        assert r.status_code == 200, r.text
        asked = r.json()["asked_by"]
        subject = asked["subject"]
        assert subject and not subject.startswith("client:")
        assert "oidc" in asked["auth_methods"]
        decision = portal.decision(r.headers["x-decision-id"])
        assert (decision["subject"], decision["outcome"]) == (subject, "allow")
        # Reach comes from the Kundenkennwort binding (customer 1000001), not from claims.
        assert (await browser.get(f"{portal.url}/api/lines/436641000010/usage")).status_code == 404

        # A second login of the same provider subject maps straight to that account.
        async with httpx.AsyncClient(follow_redirects=False, timeout=20) as again:
            r = await browser_login(again, portal.url, "anna", "anna-idp-pass", next_path=USAGE)
            assert r.status_code == 303 and location(r) == USAGE, r.text
            r = await again.get(f"{portal.url}{USAGE}")
            assert r.status_code == 200 and r.json()["asked_by"]["subject"] == subject

        # (4) She signs out at the provider: it sends a logout token to the gateway's
        # back-channel endpoint, which ends that gateway session.
        await sign_out_at_provider(browser, portal.idp)
        r = await browser.get(f"{portal.url}{USAGE}")
        assert r.status_code == 401, r.text
