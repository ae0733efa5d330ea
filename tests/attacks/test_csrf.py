"""Cross-site request forgery against /api and /auth, over real sockets.

A hostile page makes the victim's browser send an unsafe request with the session
cookie attached. The gateway's one check (`gateway.auth.origin`) lets a cookie
request through only when the browser says it came from the gateway's own pages
(Sec-Fetch-Site same-origin / none, or Origin = ``server.public_url``); ``Origin:
null`` and a cookie request with neither header are refused; bearer requests carry
no ambient credential and are exempt. Each refused case is shown to change nothing:
the backend never sees the request, and the session is still alive after a refused
logout."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.attacks.conftest import Recorder
from tests.integration.conftest import portal_settings
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

COOKIE = "pg_session"  # demo config: cookie_secure = false, so no __Host- prefix
ADDON = "/api/lines/436641000001/addons"
BODY = {"addon": "data-10gb"}

# One gateway for the module, and one login of Anna shared by the tests that leave her
# session alive; a test that ends a session logs in for itself.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Gateway:
    url: str
    recorder: Recorder
    outbox: Path
    shared: tuple[str, dict[str, str]] | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=30)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def recorded(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    tmp_path = tmp_path_factory.mktemp("csrf")
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw_port = free_port()
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{port}")
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Gateway(url, recorder, tmp_path / "sms-outbox.jsonl")
    finally:
        server.close()
        await server.wait_closed()


async def fresh_login(recorded: Gateway, msisdn: str) -> tuple[str, dict[str, str]]:
    """A new SMS-TAN session on `msisdn` (one TOTP login per 30 s step is all Anna gets):
    its id (the cookie's value) and its bearer header."""
    async with recorded.client() as c:
        assert (await c.post("/auth/sms/send", json={"msisdn": msisdn})).status_code == 202
        sent = [json.loads(x) for x in recorded.outbox.read_text().splitlines() if x.strip()]
        code = re.search(r"\b(\d{6})\b", [m["text"] for m in sent if m["to"] == msisdn][-1])
        assert code is not None
        r = await c.post("/auth/sms/verify", json={"msisdn": msisdn, "code": code.group(1)})
        assert r.status_code == 200, r.text
    token = r.json()["token"]
    return token.removeprefix("pgs_"), {"Authorization": "Bearer " + token}


async def anna(recorded: Gateway) -> tuple[str, dict[str, str]]:
    """Anna's session (password + TOTP), shared by the tests that leave it alive."""
    if recorded.shared is None:
        async with recorded.client() as c:
            bearer = await login_anna(c)
        recorded.shared = bearer["Authorization"].removeprefix("Bearer pgs_"), bearer
    return recorded.shared


def own_origin(recorded: Gateway) -> str:
    return recorded.url  # the test settings' server.public_url is the gateway's address


FORGED = {
    # name: (headers a hostile page's request carries, reason)
    "cross-site page": ({"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, "cross_site_request"),
    "same-site sibling host": (
        {"Origin": "http://evil.127.0.0.1.nip.io", "Sec-Fetch-Site": "same-site"},
        "cross_site_request",
    ),
    "other origin, old browser": ({"Origin": "https://evil.example"}, "cross_site_request"),
    "sandboxed frame (Origin: null)": ({"Origin": "null"}, "origin_null"),
    "null origin with same-site": ({"Origin": "null", "Sec-Fetch-Site": "same-site"}, "origin_null"),
    "neither header": ({}, "origin_missing"),
}


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_cookie_write_on_api_never_reaches_the_backend(recorded: Gateway, case: str) -> None:
    token, _ = await anna(recorded)
    headers, reason = FORGED[case]
    async with recorded.client() as c:
        before = len(recorded.recorder.requests)
        r = await c.post(ADDON, json=BODY, headers={"Cookie": f"{COOKIE}={token}", **headers})
    assert r.status_code == 403, r.text
    assert r.json()["reason"] == reason
    assert len(recorded.recorder.requests) == before


@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "same-origin"},
        {"Sec-Fetch-Site": "none"},
        {"Sec-Fetch-Site": "same-origin", "Origin": "OWN"},
        {"Origin": "OWN"},
    ],
    ids=["same-origin", "user-initiated", "same-origin+origin", "origin-only"],
)
async def test_the_portals_own_pages_may_write_with_the_cookie(recorded: Gateway, headers: dict[str, str]) -> None:
    token, _ = await anna(recorded)
    headers = {k: (own_origin(recorded) if v == "OWN" else v) for k, v in headers.items()}
    async with recorded.client() as c:
        before = len(recorded.recorder.requests)
        r = await c.post(ADDON, json=BODY, headers={"Cookie": f"{COOKIE}={token}", **headers})
    assert r.status_code == 200, r.text
    assert len(recorded.recorder.requests) == before + 1


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}])
async def test_bearer_requests_are_exempt(recorded: Gateway, headers: dict[str, str]) -> None:
    """An app's token is never attached by a browser on its own, so no page can forge it."""
    _, bearer = await anna(recorded)
    async with recorded.client() as c:
        r = await c.post(ADDON, json=BODY, headers={**bearer, **headers})
    assert r.status_code == 200, r.text


async def test_safe_methods_are_not_checked(recorded: Gateway) -> None:
    token, _ = await anna(recorded)
    async with recorded.client() as c:
        r = await c.get(
            "/api/lines/436641000001/usage",
            headers={"Cookie": f"{COOKIE}={token}", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
    assert r.status_code == 200


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_logout_on_auth_changes_nothing(recorded: Gateway, case: str) -> None:
    token, bearer = await anna(recorded)
    headers, reason = FORGED[case]
    async with recorded.client() as c:
        r = await c.post("/auth/logout", json={}, headers={"Cookie": f"{COOKIE}={token}", **headers})
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == reason
        assert (await c.get("/auth/me", headers=bearer)).status_code == 200  # still logged in


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_step_up_or_enrolment_on_auth_is_refused(recorded: Gateway, case: str) -> None:
    token, _ = await anna(recorded)
    headers, reason = FORGED[case]
    async with recorded.client() as c:
        cookie = {"Cookie": f"{COOKIE}={token}", **headers}
        r = await c.post("/auth/totp/enroll", json={}, headers=cookie)
        assert r.status_code == 403 and r.json()["reason"] == reason
        assert "secret" not in r.json()
        r = await c.post("/auth/step-up", json={"method": "totp", "code": "000000"}, headers=cookie)
        assert r.status_code == 403 and r.json()["reason"] == reason


async def test_the_portals_own_logout_works_with_the_cookie(recorded: Gateway) -> None:
    token, bearer = await fresh_login(recorded, "436641000040")
    async with recorded.client() as c:
        r = await c.post(
            "/auth/logout", json={}, headers={"Cookie": f"{COOKIE}={token}", "Sec-Fetch-Site": "same-origin"}
        )
        assert r.status_code == 200, r.text
        assert (await c.get("/auth/me", headers=bearer)).status_code == 401


async def test_bearer_logout_is_exempt(recorded: Gateway) -> None:
    _, bearer = await fresh_login(recorded, "436641000011")
    async with recorded.client() as c:
        r = await c.post("/auth/logout", json={}, headers={**bearer, "Origin": "null"})
        assert r.status_code == 200, r.text
        assert (await c.get("/auth/me", headers=bearer)).status_code == 401


async def test_a_login_from_another_site_is_refused_but_a_cookieless_client_may_log_in(recorded: Gateway) -> None:
    """Login CSRF (the victim logged into the attacker's account) is refused by the headers;
    an app without the cookie, sending neither header, logs in as before."""
    creds = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
    async with recorded.client() as c:
        r = await c.post("/auth/login/password", json=creds, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["reason"] == "cross_site_request"
        r = await c.post("/auth/login/password", json=creds, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = await c.post("/auth/login/password", json=creds)
        assert r.status_code == 200, r.text
