"""Headers a client could use to pose as someone else, or to change method/path after the
policy decided, must never reach the backend in any spelling."""

from __future__ import annotations

import pytest

from tests.attacks.conftest import Recorded, raw_one
from tests.integration.conftest import Portal
from tests.integration.test_roles import login_anna

LINE = "436641000001"

SPOOFED = [
    "X-Portal-Subject: acc_other",
    "x-portal-subject: acc_other",
    "X-PORTAL-ACCESS-LEVEL: superuser",
    "X_Portal_Access_Level: superuser",
    "X-Portal-Auth-Methods: webauthn",
    "X-Portal-Assertion: eyJhbGciOiJub25lIn0.e30.",
    "X-Portal-Visible-Parts: private,business",
    "X-Portal-Anything: x",
    "X-Forwarded-For: 10.0.0.1",
    "X-Forwarded-Host: evil.example",
    "X-Forwarded-Proto: https",
    "X-Forwarded-Port: 443",
    "X-Forwarded-Prefix: /admin",
    "Forwarded: for=10.0.0.1;host=evil.example",
    "X-Real-IP: 10.0.0.1",
    "X-Client-IP: 10.0.0.1",
    "X-Original-URL: /api/lines/436641000020/usage",
    "X-Rewrite-URL: /api/lines/436641000020/usage",
    "X-HTTP-Method-Override: DELETE",
    "X-HTTP-Method: DELETE",
    "X-Method-Override: DELETE",
    "X-Original-Method: DELETE",
    # A client's X-Request-Id is adopted on purpose (correlation; [A-Za-z0-9._:-]{1,128}),
    # but a value outside that alphabet must not be forwarded.
    "X-Request-Id: forged by<client>",
]


@pytest.mark.parametrize("header", SPOOFED)
async def test_spoofed_header_never_reaches_backend(recorded: Recorded, header: str) -> None:
    async with recorded.client() as c:
        auth = (await login_anna(c))["Authorization"]
    name, _, value = header.partition(": ")
    # Sent twice, and once more with surrounding whitespace in the value.
    data = (
        f"GET /api/lines/{LINE}/usage HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"{name}: {value}\r\n{name}:   {value}  \r\nConnection: close\r\n\r\n"
    ).encode()
    r = await raw_one(recorded.url, data)
    assert r is not None and r.status == 200, r
    (pairs,) = recorded.recorder.heads()
    sent = [(k.lower(), v) for k, v in pairs]
    for k, v in sent:
        if k.replace("_", "-") == name.lower().replace("_", "-"):
            # Only the gateway's own value may be there (never the client's).
            assert value not in v, (k, v)
    # The gateway's own identity headers: exactly once each.
    for own in ("x-portal-subject", "x-portal-access-level", "x-portal-auth-methods", "x-portal-assertion",
                "x-forwarded-for", "x-forwarded-host", "forwarded", "x-request-id"):
        assert [k for k, _ in sent].count(own) == 1, (own, sent)
    assert not any(k in ("x-original-url", "x-rewrite-url", "x-http-method-override", "x-http-method",
                         "x-method-override", "x-original-method", "x-real-ip", "x-client-ip",
                         "x-forwarded-prefix", "x-forwarded-port", "x-portal-anything",
                         "x-portal-visible-parts") for k, _ in sent), sent
    assert recorded.recorder.request_lines() == [f"GET /api/lines/{LINE}/usage HTTP/1.1"]


async def test_public_route_gets_no_identity_and_no_assertion(recorded: Recorded) -> None:
    async with recorded.client() as c:
        h = await login_anna(c)
        r = await c.get("/api/status", headers={**h, "X-Portal-Subject": "acc_x"})
        assert r.status_code == 200
    (pairs,) = recorded.recorder.heads()
    assert not any(k.lower().startswith("x-portal-") for k, _ in pairs), pairs


async def test_demo_backend_echo_shows_only_gateway_identity(portal: Portal) -> None:
    async with portal.client() as c:
        h = await login_anna(c)
        r = await c.get(f"/api/lines/{LINE}/usage", headers={
            **h, "X-Portal-Subject": "acc_evil", "X-Portal-Access-Level": "restricted",
            "X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6", "X-Forwarded-Host": "evil.example"})
        assert r.status_code == 200
        received = r.json()["received"]
        assert "acc_evil" not in str(received["x_portal_headers"])
        assert received["x_portal_headers"]["x-portal-access-level"] == "full"
        assert "6.6.6.6" not in str(received["forwarded"]) and "evil.example" not in str(received["forwarded"])
