"""What a client writes into X-Forwarded-For and X-Request-Id (issue 8, point 5).

`client_ip` is believed by rate limits, the policy, the logs and the backend, and
the request id goes into logs, the assertion and the backend's headers. The
gateway here trusts its loopback peer as a proxy (as behind a load balancer),
so the chain is read; every hop must be an IP address before one becomes the
client, and a request id is adopted only in a safe shape. Judged by the bytes a
raw recording backend received and by the access log.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.attacks.conftest import RawResponse, Recorder, raw_one
from tests.integration.conftest import portal_settings
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

# One gateway for the module: these tests only read what one request did.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class BehindProxy:
    url: str
    recorder: Recorder
    log: io.StringIO

    def sent(self, name: str) -> list[str]:
        return [v for k, v in self.recorder.heads()[-1] if k.lower() == name]

    def access(self) -> dict[str, object]:
        record: dict[str, object] = json.loads(self.log.getvalue().splitlines()[-1])
        return record


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def proxied(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[BehindProxy]:
    tmp_path = tmp_path_factory.mktemp("proxied")
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw_port = free_port()
    settings = portal_settings(
        tmp_path, gw_port, f"http://127.0.0.1:{port}", **{"server.trusted_proxies": ["127.0.0.1", "10.0.0.0/8"]}
    )
    log = io.StringIO()
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=log)
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield BehindProxy(url, recorder, log)
    finally:
        server.close()
        await server.wait_closed()


async def status_with(gw: BehindProxy, headers: str) -> RawResponse:
    data = f"GET /api/status HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n"
    r = await raw_one(gw.url, data.encode("latin-1"))
    assert r is not None
    return r


# ------------------------------------------------------------------ X-Forwarded-For
@pytest.mark.parametrize(
    ("xff", "client", "chain"),
    [
        ("203.0.113.7", "203.0.113.7", "203.0.113.7, 127.0.0.1"),
        ("203.0.113.7, 10.1.2.3", "203.0.113.7", "203.0.113.7, 10.1.2.3, 127.0.0.1"),
        # Left of the client the client wrote the hops itself: not judged, not forwarded.
        ("<script>, 198.51.100.1, 203.0.113.7", "203.0.113.7", "203.0.113.7, 127.0.0.1"),
        ("::ffff:203.0.113.7", "203.0.113.7", "203.0.113.7, 127.0.0.1"),
        ("2001:DB8::1", "2001:db8::1", "2001:db8::1, 127.0.0.1"),
    ],
    ids=["one-hop", "through-a-trusted-proxy", "client-written-junk", "ipv4-mapped", "ipv6-normalised"],
)
async def test_client_address_is_an_ip_from_the_trusted_chain(
    proxied: BehindProxy, xff: str, client: str, chain: str
) -> None:
    r = await status_with(proxied, f"X-Forwarded-For: {xff}\r\n")
    assert r.status == 200, r
    assert proxied.sent("x-forwarded-for") == [chain]
    assert proxied.access()["client_ip"] == client


@pytest.mark.parametrize(
    "xff",
    [
        "not-an-ip",
        "203.0.113.7, evil",
        "203.0.113.7:4711",
        "[2001:db8::1]",
        "fe80::1%eth0",
        "203.0.113.7 , , 10.1.2.3",
        "0203.0.113.7",
        "\xd9\xa3.0.113.7",  # UTF-8 of an Arabic-Indic three: int() would read it as 3
    ],
    ids=["word", "junk-after-the-client", "port", "brackets", "ipv6-zone", "empty-hop", "octal", "arabic-digit"],
)
async def test_a_hop_that_is_no_ip_address_is_400_and_never_forwarded(proxied: BehindProxy, xff: str) -> None:
    before = len(proxied.recorder.requests)
    r = await status_with(proxied, f"X-Forwarded-For: {xff}\r\n")
    assert r.status == 400, r
    assert r.json()["reason"] == "bad_forwarded_for"
    assert len(proxied.recorder.requests) == before


async def test_untrusted_peer_chain_is_ignored_whatever_it_says(tmp_path: Path) -> None:
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw_port = free_port()
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{port}")
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            gw = BehindProxy(url, recorder, io.StringIO())
            r = await status_with(gw, "X-Forwarded-For: not-an-ip, 203.0.113.7\r\n")
            assert r.status == 200
            assert gw.sent("x-forwarded-for") == ["127.0.0.1"]
    finally:
        server.close()
        await server.wait_closed()


# ------------------------------------------------------------------ X-Request-Id
async def test_a_safe_request_id_is_adopted(proxied: BehindProxy) -> None:
    rid = "trace-4711.a:b_c"
    r = await status_with(proxied, f"X-Request-Id: {rid}\r\n")
    assert r.status == 200
    assert r.header("x-request-id") == rid
    assert proxied.sent("x-request-id") == [rid]


@pytest.mark.parametrize(
    "rid",
    ["forged by<client>", "a" * 129, "caf\xe9", "id;drop", "x-portal-subject: acc_1", '"quoted"', ""],
    ids=["space-and-angle", "too-long", "latin-1", "semicolon", "header-lookalike", "quotes", "empty"],
)
async def test_any_other_request_id_is_replaced_by_a_fresh_one(proxied: BehindProxy, rid: str) -> None:
    r = await status_with(proxied, f"X-Request-Id: {rid}\r\n")
    assert r.status == 200
    fresh = r.header("x-request-id")
    assert fresh and fresh != rid.strip()
    # One id, the gateway's, everywhere: answer, backend, access log.
    assert proxied.sent("x-request-id") == [fresh]
    assert proxied.access()["request_id"] == fresh
