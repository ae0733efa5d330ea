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

import httpx
import pytest

from tests.attacks.conftest import Recorded
from tests.integration.test_roles import login_anna

COOKIE = "pg_session"  # demo config: cookie_secure = false, so no __Host- prefix
ADDON = "/api/lines/436641000001/addons"
BODY = {"addon": "data-10gb"}


async def anna(recorded: Recorded) -> tuple[str, dict[str, str]]:
    """Anna's session id and her bearer header (a fresh login each time)."""
    async with recorded.client() as c:
        bearer = await login_anna(c)
    return bearer["Authorization"].removeprefix("Bearer pgs_"), bearer


def own_origin(recorded: Recorded) -> str:
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
async def test_a_forged_cookie_write_on_api_never_reaches_the_backend(recorded: Recorded, case: str) -> None:
    token, _ = await anna(recorded)
    headers, reason = FORGED[case]
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
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
async def test_the_portals_own_pages_may_write_with_the_cookie(recorded: Recorded, headers: dict[str, str]) -> None:
    token, _ = await anna(recorded)
    headers = {k: (own_origin(recorded) if v == "OWN" else v) for k, v in headers.items()}
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        before = len(recorded.recorder.requests)
        r = await c.post(ADDON, json=BODY, headers={"Cookie": f"{COOKIE}={token}", **headers})
    assert r.status_code == 200, r.text
    assert len(recorded.recorder.requests) == before + 1


@pytest.mark.parametrize("headers", [{}, {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}])
async def test_bearer_requests_are_exempt(recorded: Recorded, headers: dict[str, str]) -> None:
    """An app's token is never attached by a browser on its own, so no page can forge it."""
    _, bearer = await anna(recorded)
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.post(ADDON, json=BODY, headers={**bearer, **headers})
    assert r.status_code == 200, r.text


async def test_safe_methods_are_not_checked(recorded: Recorded) -> None:
    token, _ = await anna(recorded)
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.get(
            "/api/lines/436641000001/usage",
            headers={"Cookie": f"{COOKIE}={token}", "Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
        )
    assert r.status_code == 200


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_logout_on_auth_changes_nothing(recorded: Recorded, case: str) -> None:
    token, bearer = await anna(recorded)
    headers, reason = FORGED[case]
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.post("/auth/logout", json={}, headers={"Cookie": f"{COOKIE}={token}", **headers})
        assert r.status_code == 403, r.text
        assert r.json()["reason"] == reason
        assert (await c.get("/auth/me", headers=bearer)).status_code == 200  # still logged in


@pytest.mark.parametrize("case", sorted(FORGED))
async def test_a_forged_step_up_or_enrolment_on_auth_is_refused(recorded: Recorded, case: str) -> None:
    token, _ = await anna(recorded)
    headers, reason = FORGED[case]
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        cookie = {"Cookie": f"{COOKIE}={token}", **headers}
        r = await c.post("/auth/totp/enroll", json={}, headers=cookie)
        assert r.status_code == 403 and r.json()["reason"] == reason
        assert "secret" not in r.json()
        r = await c.post("/auth/step-up", json={"method": "totp", "code": "000000"}, headers=cookie)
        assert r.status_code == 403 and r.json()["reason"] == reason


async def test_the_portals_own_logout_works_with_the_cookie(recorded: Recorded) -> None:
    token, bearer = await anna(recorded)
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.post(
            "/auth/logout", json={}, headers={"Cookie": f"{COOKIE}={token}", "Sec-Fetch-Site": "same-origin"}
        )
        assert r.status_code == 200, r.text
        assert (await c.get("/auth/me", headers=bearer)).status_code == 401


async def test_bearer_logout_is_exempt(recorded: Recorded) -> None:
    _, bearer = await anna(recorded)
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.post("/auth/logout", json={}, headers={**bearer, "Origin": "null"})
        assert r.status_code == 200, r.text
        assert (await c.get("/auth/me", headers=bearer)).status_code == 401


async def test_a_login_from_another_site_is_refused_but_a_cookieless_client_may_log_in(recorded: Recorded) -> None:
    """Login CSRF (the victim logged into the attacker's account) is refused by the headers;
    an app without the cookie, sending neither header, logs in as before."""
    creds = {"login": "anna.huber@example.at", "password": "anna-portal-2025"}
    async with httpx.AsyncClient(base_url=recorded.url, timeout=20) as c:
        r = await c.post("/auth/login/password", json=creds, headers={"Origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["reason"] == "cross_site_request"
        r = await c.post("/auth/login/password", json=creds, headers={"Sec-Fetch-Site": "cross-site"})
        assert r.status_code == 403
        r = await c.post("/auth/login/password", json=creds)
        assert r.status_code == 200, r.text
