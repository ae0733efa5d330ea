"""Malformed input to every /auth endpoint: a 4xx JSON answer with a reason, never a 500,
never a stack trace or an internal detail."""

from __future__ import annotations

import pytest

from tests.attacks.conftest import raw_one
from tests.integration.conftest import Portal

ENDPOINTS = ["/auth/register", "/auth/login/password", "/auth/login/totp", "/auth/sms/send", "/auth/sms/verify",
             "/auth/totp/enroll", "/auth/totp/confirm", "/auth/step-up", "/auth/logout"]

BODIES: list[tuple[str, bytes]] = [
    ("application/json", b"{"),
    ("application/json", b"[1,2,3]"),
    ("application/json", b'"just a string"'),
    ("application/json", b"null"),
    ("application/json", b'{"login": 5, "password": ["x"], "msisdn": {"a": 1}, "code": true, "method": 1}'),
    ("application/json", b"\xff\xfe\x00{\x00}"),
    ("application/json", b'{"login": "\xe4\xf6\xfc"}'),
    ("application/json", b'{"login": "\\ud800", "msisdn": "\\u0000", "code": "\\ud83d"}'),
    ("application/json", b"[" * 8000 + b"]" * 8000),
    ("application/json", b'{"a":' * 5000 + b"1" + b"}" * 5000),
    ("application/json", b'{"login": "' + b"a" * 2_000_000 + b'"}'),
    ("application/json", b'{"msisdn": 1e999999, "code": NaN}'),
    ("application/json; charset=utf-16", '{"msisdn": "436641000040"}'.encode("utf-16")),
    ("text/plain", b'{"login": "x"}'),
    ("", b'{"login": "x"}'),
    ("application/x-www-form-urlencoded", b"%ff%fe=%00&login=%E4"),
    ("multipart/form-data; boundary=zzz", b"--zzz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n"),
    ("multipart/form-data", b"garbage"),
    ("application/json", b""),
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
async def test_malformed_bodies_get_a_4xx_with_a_reason(portal: Portal, endpoint: str) -> None:
    bad = []
    for content_type, body in BODIES:
        head = f"POST {endpoint} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += "Accept: application/json\r\n\r\n"
        r = await raw_one(portal.url, head.encode() + body, timeout=10)
        label = f"{content_type!r} {body[:30]!r}"
        if r is None:
            bad.append(f"{label}: no answer")
            continue
        text = r.body.decode("utf-8", "replace")
        # /auth/sms/send answers 202 to any number (no enumeration); logout always works.
        fine = {"/auth/logout": 200, "/auth/sms/send": 202}.get(endpoint)
        if not 400 <= r.status < 500 and r.status != fine:
            bad.append(f"{label}: {r.status} {text[:120]}")
            continue
        if "Traceback" in text or "File \"" in text or "sqlalchemy" in text.lower() or "Error:" in text:
            bad.append(f"{label}: leaks {text[:200]}")
        if r.status >= 400:
            ctype = r.header("content-type") or ""
            if "json" in ctype:
                data = r.json()
                if not data.get("reason") or not data.get("error"):
                    bad.append(f"{label}: no reason {text[:120]}")
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", ["/api/lines/436641000001/usage", "/api/customers/1000001/profile"])
async def test_malformed_bodies_on_api_routes_never_500(portal: Portal, path: str) -> None:
    for content_type, body in BODIES:
        head = (f"PUT {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                f"Content-Type: {content_type or 'x/y'}\r\nConnection: close\r\n\r\n")
        r = await raw_one(portal.url, head.encode() + body, timeout=10)
        assert r is not None and 400 <= r.status < 500, (path, body[:30], r and r.status)
        assert b"Traceback" not in r.body


@pytest.mark.parametrize(
    ("endpoint", "content_type"),
    [("/auth/login/password", "application/json"), ("/auth/register", "application/json"),
     ("/auth/login/password", "application/x-www-form-urlencoded"),
     ("/auth/sms/send", "multipart/form-data; boundary=z")],
)
async def test_a_huge_body_is_refused_before_it_is_read(portal: Portal, endpoint: str, content_type: str) -> None:
    """The control plane does not pass through the data plane's body limit: a login endpoint
    that reads a declared 100 MB body into memory before judging its size is a cheap DoS."""
    import asyncio

    host, port = portal.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST {endpoint} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
                  "Content-Length: 100000000\r\nConnection: close\r\n\r\n").encode())
    writer.write(b"login=" + b"a" * (64 * 1024))
    await writer.drain()
    try:
        head = await asyncio.wait_for(reader.read(4096), 5)
    finally:
        writer.close()
    assert head.startswith(b"HTTP/1.1 4"), head[:100]
