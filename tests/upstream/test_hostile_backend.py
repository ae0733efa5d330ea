"""The whole gateway (uvicorn on loopback) in front of a scripted hostile backend.

What a client of the gateway notices when a backend misbehaves or a client
stalls: the status and reason it gets, that nobody else's answer (or cookie)
reaches it, and that one slow party cannot hold every backend connection.
"""

from __future__ import annotations

import asyncio
import io
import json
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from gateway.app import Components, build_app
from gateway.auth.base import Credentials
from gateway.principal import Principal
from gateway.routes import build_table
from gateway.settings import load_settings
from tests.servers.gateway import serve_asgi
from tests.servers.scripted import Request, ScriptedBackend, read_body, serve_scripted
from tests.upstream.conftest import ScriptedAuthorizer

ROUTES = [
    {"methods": ["GET", "POST"], "path": "/h/{name}", "public": True, "upstream": "hostile"},
    {"methods": ["GET", "POST"], "path": "/ok", "public": True, "upstream": "hostile"},
    {
        "methods": ["GET"],
        "path": "/lines/{msisdn}/usage",
        "action": "view_usage",
        "resource": "line",
        "param": "msisdn",
        "upstream": "hostile",
    },
]

INJECTED = b"HTTP/1.1 200 OK\r\nSet-Cookie: session=attacker\r\nContent-Length: 8\r\n\r\ninjected"


class BrokenSubjectAuthenticator:
    """Stands for an authenticator that let `svc\\n…` through as a subject (the `$` regex bug)."""

    id = "broken-subject"

    async def authenticate(self, credentials: Credentials) -> Principal | None:
        if credentials.authorization != "Bearer newline-subject":
            return None
        return Principal(
            subject="svc\r\nX-Portal-Access-Level: full",
            access_level="restricted",
            auth_methods=frozenset({"password"}),
            role="customer",
            bound_customer="1000001",
        )


@dataclass
class Hostile:
    url: str
    backend: ScriptedBackend
    registry: CollectorRegistry
    log: io.StringIO

    def metric(self, text: str) -> bool:
        return text in generate_latest(self.registry).decode()


@asynccontextmanager
async def hostile_gateway(tmp_path: Path, **upstream: Any) -> AsyncIterator[Hostile]:
    async with serve_scripted() as backend:
        options = {"url": backend.url, "read_timeout_seconds": 2.0, "connect_timeout_seconds": 1.0}
        options.update(upstream)
        settings = load_settings(
            None,
            environ={},
            overrides={
                "server.data_dir": str(tmp_path),
                "server.max_body_bytes": 96 * 1024 * 1024,
                "upstreams.hostile": options,
            },
        )
        registry = CollectorRegistry()
        log = io.StringIO()
        app = build_app(
            settings,
            components=Components(authenticators=[BrokenSubjectAuthenticator()], authorizer=ScriptedAuthorizer()),
            routes=build_table(ROUTES, "test-routes", settings.upstreams),
            registry=registry,
            access_log_stream=log,
        )
        async with serve_asgi(app) as url:
            yield Hostile(url, backend, registry, log)


async def own_answer(gw: Hostile) -> None:
    """The next request through the gateway is answered by its own answer."""
    target = f"/ok?id={uuid.uuid4().hex}"
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
        r = await c.get(target)
    assert r.status_code == 200 and r.text == target
    assert "set-cookie" not in r.headers


async def test_no_content_followed_by_an_injected_answer(tmp_path: Path) -> None:
    async with hostile_gateway(tmp_path) as gw:
        gw.backend.reply("/h/inject", b"HTTP/1.1 204 No Content\r\n\r\n" + INJECTED)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/inject")
        assert r.status_code == 204 and r.content == b""
        assert "set-cookie" not in r.headers
        for _ in range(5):
            await own_answer(gw)


async def test_two_answers_for_one_request(tmp_path: Path) -> None:
    async with hostile_gateway(tmp_path) as gw:
        gw.backend.reply("/h/two", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + INJECTED)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/two")
        assert r.text == "hi" and "set-cookie" not in r.headers
        for _ in range(5):
            await own_answer(gw)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", "upstream_bad_framing"),
        (b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 5000 + b"\r\nContent-Length: 0\r\n\r\n", "upstream_header_too_large"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nhi", "upstream_protocol_error"),
    ],
    ids=["transfer_encoding_gzip", "head_over_the_limit", "conflicting_length"],
)
async def test_invalid_answers_are_502_with_their_reason(tmp_path: Path, raw: bytes, reason: str) -> None:
    async with hostile_gateway(tmp_path, max_response_header_bytes=4096) as gw:
        gw.backend.reply("/h/bad", raw)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/bad")
        assert r.status_code == 502 and r.json()["reason"] == reason
        assert gw.metric(f'portal_gateway_upstream_errors_total{{kind="{reason}",upstream="hostile"}} 1.0')
        await own_answer(gw)


async def test_a_backend_that_trickles_hits_the_request_deadline(tmp_path: Path) -> None:
    async def trickle(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi":
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.05)
        return True

    async with hostile_gateway(tmp_path, request_timeout_seconds=0.4, read_timeout_seconds=1.0) as gw:
        gw.backend.on("/h/trickle", trickle)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/trickle")
        assert r.status_code == 504 and r.json()["reason"] == "upstream_deadline"
        await own_answer(gw)


async def test_an_answer_that_stalls_is_cut_off_and_not_counted_as_the_client_leaving(tmp_path: Path) -> None:
    gw_cm = hostile_gateway(tmp_path, stream_idle_timeout_seconds=0.3)
    async with gw_cm as gw:
        gw.backend.reply("/h/stall", b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"y" * 100_000)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            with pytest.raises(httpx.RemoteProtocolError):
                await c.get("/h/stall")
        assert not gw.metric("portal_gateway_client_disconnects_total 1.0")
        records = [json.loads(line) for line in gw.log.getvalue().splitlines()]
        assert all(rec["status"] != 499 for rec in records)
        await own_answer(gw)


async def test_backend_that_never_reads_the_upload_is_504(tmp_path: Path) -> None:
    async def never_read(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(30)
        return False

    async with hostile_gateway(tmp_path, write_timeout_seconds=0.3) as gw:
        gw.backend.on("/h/never-read", never_read)

        async def upload() -> AsyncIterator[bytes]:
            for _ in range(64 * 16):
                yield b"u" * 65536

        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as c:
            try:
                r = await c.post("/h/never-read", content=upload(), headers={"content-length": str(64 << 20)})
            except httpx.WriteError:
                pytest.fail("the gateway should answer 504, not drop the upload")
        assert r.status_code == 504 and r.json()["reason"] == "upstream_write_timeout"
        await own_answer(gw)


async def test_queue_bound_and_acquire_timeout_answer_upstream_busy(tmp_path: Path) -> None:
    release = asyncio.Event()

    async def held(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nheld")
        await writer.drain()
        return True

    async with hostile_gateway(
        tmp_path, pool_size=1, max_pending_requests=1, acquire_timeout_seconds=0.5
    ) as gw:
        gw.backend.on("/h/held", held)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            holder = asyncio.create_task(c.get("/h/held"))
            while not gw.backend.requests:
                await asyncio.sleep(0.01)
            # Two more: one takes the only place in the queue and waits out the acquire
            # timeout, the other finds the queue full (whichever comes first).
            first, second = await asyncio.gather(c.get("/ok?a"), c.get("/ok?b"))
            assert {first.status_code, second.status_code} == {503}
            assert {first.json()["reason"], second.json()["reason"]} == {"upstream_busy", "upstream_pool_timeout"}
            release.set()
            assert (await holder).text == "held"
        await own_answer(gw)


async def _stalled_upload(
    url: str, declared: int, sent: int
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    host, port = url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /h/upload HTTP/1.1\r\nHost: gw\r\nContent-Length: %d\r\n\r\n" % declared + b"s" * sent)
    await writer.drain()
    return reader, writer  # the caller keeps the writer: dropping it closes the socket


async def test_slow_small_uploads_hold_no_backend_connection(tmp_path: Path) -> None:
    """pool_size clients that stop mid-upload: everybody else is still answered."""
    async with hostile_gateway(
        tmp_path, pool_size=2, acquire_timeout_seconds=0.3, body_idle_timeout_seconds=30.0
    ) as gw:
        stalled = [await _stalled_upload(gw.url, 1000, 10) for _ in range(2)]
        for _ in range(3):
            await own_answer(gw)  # would be 503 upstream_pool_timeout if the uploads held the pool
        assert not any(req.target == "/h/upload" for req in gw.backend.requests)
        for _, writer in stalled:
            writer.close()


async def test_slow_large_uploads_are_cut_by_the_body_idle_timeout(tmp_path: Path) -> None:
    async def sink(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(req, reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    async with hostile_gateway(
        tmp_path, pool_size=2, acquire_timeout_seconds=10.0, body_idle_timeout_seconds=0.3
    ) as gw:
        gw.backend.on("/h/upload", sink)
        uploads = [await _stalled_upload(gw.url, 1_000_000, 100_000) for _ in range(2)]
        await own_answer(gw)  # waits for a connection, which the idle timeout frees
        for reader, writer in uploads:
            status = await asyncio.wait_for(reader.readline(), 10)
            assert b" 408 " in status
            writer.close()
        records = [json.loads(line) for line in gw.log.getvalue().splitlines()]
        assert [rec["status"] for rec in records if rec["path"] == "/h/upload"] == [408, 408]
        assert all(rec.get("reason") == "client_body_timeout" for rec in records if rec["path"] == "/h/upload")


async def test_a_header_value_with_a_newline_never_reaches_the_backend(tmp_path: Path) -> None:
    async with hostile_gateway(tmp_path) as gw:
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/lines/1000001/usage", headers={"Authorization": "Bearer newline-subject"})
        assert r.status_code == 502 and r.json()["reason"] == "bad_upstream_request_header"
        assert not any(req.target.startswith("/lines/") for req in gw.backend.requests)
        await own_answer(gw)


async def test_chunked_upload_to_an_http10_backend_gets_a_length(tmp_path: Path) -> None:
    async def old_server(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(req, reader)
        body = json.dumps({"te": req.header("transfer-encoding"), "cl": req.header("content-length"),
                           "size": len(req.body)}).encode()
        writer.write(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
        return True

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"c" * 50_000

    async with hostile_gateway(tmp_path) as gw:
        gw.backend.on("/h/old", old_server)
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            await c.get("/h/old")  # the backend says it speaks HTTP/1.0
            r = await c.post("/h/old", content=chunks())
        assert r.json() == {"te": None, "cl": "200000", "size": 200_000}


@pytest.mark.parametrize("status", [b"000", b"099", b"600", b"999"])
async def test_a_status_no_client_can_take_is_502_with_an_access_line(tmp_path: Path, status: bytes) -> None:
    """llhttp parses any three digits; the client gets 502 (not a dropped connection), and the
    request stays in the access log and metrics (a hostile backend cannot make it vanish)."""
    async with hostile_gateway(tmp_path) as gw:
        gw.backend.reply("/h/odd", b"HTTP/1.1 " + status + b" Odd\r\nContent-Length: 2\r\n\r\nhi")
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/odd")
        assert r.status_code == 502 and r.json()["reason"] == "upstream_protocol_error"
        records = [json.loads(line) for line in gw.log.getvalue().splitlines()]
        assert [(rec["path"], rec["status"]) for rec in records] == [("/h/odd", 502)]
        await own_answer(gw)


@pytest.mark.parametrize("raw", [
    b"HTTP/1.1 304 Not Modified\r\nETag: \"v1\"\r\nContent-Length: 5\r\n\r\n",
    b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n",
], ids=["not_modified_with_length", "no_content_with_length"])
async def test_a_length_on_a_bodyless_answer_keeps_the_clients_connection(tmp_path: Path, raw: bytes) -> None:
    """A 304 may repeat the representation's Content-Length (RFC 9110 8.6). Relayed as is, the
    server waited for a body that never comes and dropped the client's keep-alive connection."""
    async with hostile_gateway(tmp_path) as gw:
        gw.backend.reply("/h/cond", raw)
        reader, writer = await asyncio.open_connection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]))
        try:
            # Two requests pipelined on one connection: both must be answered, in order.
            writer.write(b"GET /h/cond HTTP/1.1\r\nHost: x\r\n\r\nGET /ok?second HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            data = b""
            while b"/ok?second" not in data:
                chunk = await asyncio.wait_for(reader.read(65536), 5)
                assert chunk, data
                data += chunk
        finally:
            writer.close()
        first, _, rest = data.partition(b"\r\n\r\n")
        assert first.split(b"\r\n")[0] in (b"HTTP/1.1 304 Not Modified", b"HTTP/1.1 204 No Content")
        assert b"content-length" not in first.lower()
        assert rest.startswith(b"HTTP/1.1 200 OK")
        records = [json.loads(line) for line in gw.log.getvalue().splitlines()]
        assert [rec["path"] for rec in records] == ["/h/cond", "/ok"]


async def test_a_backend_cannot_set_or_clear_the_gateways_cookies(tmp_path: Path) -> None:
    """Session fixation through a backend: its Set-Cookie for the gateway's own cookies
    (session, CSRF, OIDC state; any case, with or without __Host-) is dropped, its own stay."""
    async with hostile_gateway(tmp_path) as gw:
        gw.backend.reply(
            "/h/cookies",
            b"HTTP/1.1 200 OK\r\n"
            b"Set-Cookie: __Host-pg_session=attacker; Path=/; Secure; HttpOnly\r\n"
            b"Set-Cookie: __host-PG_session=attacker2; Path=/; Secure\r\n"
            b"Set-Cookie: pg_session=; Max-Age=0\r\n"
            b"Set-Cookie: __Host-pg_csrf=x; Path=/; Secure\r\n"
            b"Set-Cookie: __Secure-pg_oidc=x; Secure\r\n"
            b"Set-Cookie: backend_pref=dark; Path=/\r\n"
            b"Content-Length: 2\r\n\r\nhi",
        )
        async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
            r = await c.get("/h/cookies")
        assert r.status_code == 200
        assert r.headers.get_list("set-cookie") == ["backend_pref=dark; Path=/"]


async def test_a_client_that_stops_reading_a_long_answer_frees_the_backend_connection(tmp_path: Path) -> None:
    """One pooled connection, a 16 MB answer, a client that reads nothing: after the stream
    idle timeout the answer is cut off, counted as the client's, and the next user is served
    (before, the pool stayed taken until the request deadline)."""
    size = 16 * 1024 * 1024
    async with hostile_gateway(tmp_path, pool_size=1, stream_idle_timeout_seconds=0.5,
                               acquire_timeout_seconds=10.0, request_timeout_seconds=60.0) as gw:
        gw.backend.reply("/h/big", b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"z" * size)
        stalled = socket.socket()
        try:
            stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # before connect: a small window
            stalled.connect(("127.0.0.1", int(gw.url.rsplit(":", 1)[1])))
            stalled.sendall(b"GET /h/big HTTP/1.1\r\nHost: x\r\n\r\n")  # and never a recv
            await asyncio.sleep(0.3)
            loop = asyncio.get_running_loop()
            started = loop.time()
            await own_answer(gw)
            assert loop.time() - started < 5
            assert gw.metric('portal_gateway_client_read_timeouts_total{upstream="hostile"} 1.0')
        finally:
            stalled.close()


@pytest.mark.parametrize("codings", [
    b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
], ids=["gzip_then_chunked_in_two_headers"])
async def test_a_request_body_in_another_transfer_coding_is_501_and_never_relayed(
    tmp_path: Path, codings: bytes
) -> None:
    """Relayed as plain chunked, a gzip-coded body would reach the backend as if it were the
    body itself. 501 (RFC 9112 6.1), and nothing reaches the backend."""
    async with hostile_gateway(tmp_path) as gw:
        reader, writer = await asyncio.open_connection("127.0.0.1", int(gw.url.rsplit(":", 1)[1]))
        try:
            writer.write(b"POST /ok HTTP/1.1\r\nHost: x\r\n" + codings + b"\r\n5\r\nhello\r\n0\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        finally:
            writer.close()
        assert head.startswith(b"HTTP/1.1 501 ")
        assert gw.backend.requests == []
        await own_answer(gw)
