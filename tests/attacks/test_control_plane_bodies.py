"""The OIDC endpoints read a body only up to their limit (issue 9, point 5).

The back-channel logout endpoint answers any caller, before anyone logs in. A body
read whole before its size is judged lets one client park a declared 100 MB upload
(or an endless chunked one) in memory. Each test writes on a raw socket to the
whole gateway (real IdP, tests/idp) and leaves the body unfinished: only a reader
that stops at the limit can answer, so a missing answer (the bounded wait below
runs out) means the defence is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.oidc.idp import Idp, start_idp
from tests.oidc.portal import OidcPortal, free_port, idp_login, oidc_portal

#: Generous: the gateway answers in milliseconds; this only turns a hang into a failure.
ANSWER_WITHIN = 15.0


@pytest.fixture(scope="module")
def gw_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory, gw_port: int) -> Iterator[Idp]:
    provider = start_idp(Path(tmp_path_factory.mktemp("idp")), gateway=f"http://127.0.0.1:{gw_port}")
    yield provider
    provider.stop()


@pytest.fixture
async def gw(tmp_path: Path, idp: Idp, gw_port: int) -> AsyncIterator[OidcPortal]:
    async with oidc_portal(tmp_path, idp, gw_port) as portal:
        yield portal


async def unfinished(gw: OidcPortal, head: str, body: bytes) -> bytes:
    """Send `head` and part of a body that never ends; the status line the gateway answers."""
    host, port = gw.url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        line = await asyncio.wait_for(reader.readline(), ANSWER_WITHIN)
    finally:
        writer.close()
    return line


def post(path: str, ctype: str, framing: str, extra: str = "") -> str:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ctype}\r\n{extra}{framing}\r\n"


async def pending_link_headers(gw: OidcPortal) -> str:
    """An IdP login the gateway does not know yet: the link form is what it may post next."""
    async with gw.client() as c:
        r = await idp_login(c, gw.url, "markus", "markus-idp-pass")
        assert r.status_code == 303 and r.headers["location"] == "/auth/oidc/link", r.text
        # IdP and gateway share 127.0.0.1 (cookies ignore ports): send them all, as a browser would.
        cookie = "; ".join(f"{ck.name}={ck.value}" for ck in c.cookies.jar)
    return f"Origin: {gw.url}\r\nCookie: {cookie}\r\n"


async def headers_for(gw: OidcPortal, path: str) -> str:
    return await pending_link_headers(gw) if path == "/auth/oidc/link" else ""


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/auth/oidc/backchannel-logout", "application/x-www-form-urlencoded"),
        ("/auth/oidc/link", "application/json"),
    ],
)
async def test_a_declared_huge_body_is_refused_before_it_arrives(gw: OidcPortal, path: str, ctype: str) -> None:
    head = post(path, ctype, "Content-Length: 104857600\r\n", await headers_for(gw, path))
    line = await unfinished(gw, head, b"logout_token=")
    assert line.startswith(b"HTTP/1.1 4"), line


@pytest.mark.parametrize(
    ("path", "ctype"),
    [
        ("/auth/oidc/backchannel-logout", "application/x-www-form-urlencoded"),
        ("/auth/oidc/link", "application/json"),
    ],
)
async def test_an_endless_chunked_body_is_cut_at_the_limit(gw: OidcPortal, path: str, ctype: str) -> None:
    chunk = b"a" * 8192
    body = (b"%x\r\n" % len(chunk) + chunk + b"\r\n") * 8  # 64 KiB, four times the limit, no last chunk
    head = post(path, ctype, "Transfer-Encoding: chunked\r\n", await headers_for(gw, path))
    line = await unfinished(gw, head, body)
    assert line.startswith(b"HTTP/1.1 4"), line
