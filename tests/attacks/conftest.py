"""Attack fixtures: the real gateway on loopback, in front of either the demo backend
(`portal`, from the integration tests) or a raw recording backend (`recorded`) that
keeps the exact bytes the gateway sent, so header and framing attacks can be judged
by what really reached a backend."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.integration.conftest import ROOT, Portal, portal, portal_settings  # noqa: F401 - fixture re-export
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port


@dataclass
class RawResponse:
    status: int
    head: bytes
    body: bytes
    raw: bytes

    def header(self, name: str) -> str | None:
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == name.lower().encode():
                return v.strip().decode("latin-1")
        return None

    def json(self) -> dict[str, object]:
        return json.loads(self.body)  # type: ignore[no-any-return]


def _split(raw: bytes) -> list[RawResponse]:
    """Split what came back on one connection into responses (Content-Length framed)."""
    out: list[RawResponse] = []
    rest = raw
    while rest.startswith(b"HTTP/"):
        head, sep, tail = rest.partition(b"\r\n\r\n")
        if not sep:
            break
        status = int(head.split(b" ", 2)[1])
        resp = RawResponse(status, head, b"", b"")
        length = resp.header("content-length")
        if resp.header("transfer-encoding") == "chunked":
            body = bytearray()
            while True:
                size_line, _, tail = tail.partition(b"\r\n")
                size = int(size_line.split(b";")[0] or b"0", 16)
                if size == 0:
                    tail = tail.partition(b"\r\n")[2]
                    break
                body += tail[:size]
                tail = tail[size + 2 :]
            resp.body = bytes(body)
        else:
            n = int(length) if length is not None else len(tail)
            resp.body, tail = tail[:n], tail[n:]
        resp.raw = rest[: len(rest) - len(tail)]
        out.append(resp)
        rest = tail
    return out


async def raw_exchange(url: str, data: bytes, *, timeout: float = 5.0) -> list[RawResponse]:
    """Write `data` on one fresh socket; read until the server closes (or the timeout)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(data)
    await writer.drain()
    got = bytearray()
    try:
        while True:
            chunk = await asyncio.wait_for(reader.read(65536), timeout)
            if not chunk:
                break
            got += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    writer.close()
    return _split(bytes(got))


async def raw_one(url: str, data: bytes, *, timeout: float = 5.0) -> RawResponse | None:
    responses = await raw_exchange(url, data, timeout=timeout)
    return responses[0] if responses else None


@dataclass
class Recorder:
    """A raw HTTP/1.1 backend: records each request's bytes, answers 200 JSON."""

    requests: list[bytes] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                length = 0
                chunked = False
                for line in lines[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        length = int(v)
                    if k.strip().lower() == b"transfer-encoding" and b"chunked" in v.lower():
                        chunked = True
                body = b""
                if chunked:
                    while True:
                        size_line = await reader.readuntil(b"\r\n")
                        size = int(size_line.strip(), 16)
                        if size == 0:
                            await reader.readuntil(b"\r\n")
                            break
                        body += (await reader.readexactly(size + 2))[:-2]
                elif length:
                    body = await reader.readexactly(length)
                self.requests.append(head + body)
                answer = json.dumps({"ok": True, "n": len(self.requests)}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: "
                    + str(len(answer)).encode()
                    + b"\r\n\r\n"
                    + answer
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def heads(self) -> list[list[tuple[str, str]]]:
        out = []
        for req in self.requests:
            head = req.split(b"\r\n\r\n", 1)[0]
            pairs = []
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                pairs.append((k.decode("latin-1"), v.strip().decode("latin-1")))
            out.append(pairs)
        return out

    def request_lines(self) -> list[str]:
        return [r.split(b"\r\n", 1)[0].decode("latin-1") for r in self.requests]


@dataclass
class Recorded:
    url: str
    recorder: Recorder
    outbox: Path
    access_log: io.StringIO

    def client(self, **kw: object) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20, **kw)  # type: ignore[arg-type]


def gateway_settings(tmp_path: Path, gw_port: int, upstream: str, outbox: Path) -> object:
    return portal_settings(tmp_path, gw_port, upstream, **{"sms.outbox_path": str(outbox)})


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[Recorded]:
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    backend_port = server.sockets[0].getsockname()[1]
    gw_port = free_port()
    outbox = tmp_path / "sms-outbox.jsonl"
    settings = gateway_settings(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}", outbox)
    log = io.StringIO()
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=log)  # type: ignore[arg-type]
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Recorded(url, recorder, outbox, log)
    finally:
        server.close()
        await server.wait_closed()


@dataclass
class Clock:
    """A wall clock that tests can move forward (gateway and demo backend share it)."""

    offset: float = 0.0

    def __call__(self) -> float:
        import time

        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


@dataclass
class ClockedPortal(Portal):
    clock: Clock = field(default_factory=Clock)


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[ClockedPortal]:
    """The integration `portal`, but with a clock the test can move (step-up windows)."""
    from demo.backend import create_app as create_backend

    clock = Clock()
    gw_port = free_port()
    backend_port = free_port()
    outbox = tmp_path / "sms-outbox.jsonl"
    settings = gateway_settings(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}", outbox)
    log = io.StringIO()
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=log, clock=clock)  # type: ignore[arg-type]
    backend = create_backend(jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal",
                             clock=clock)
    async with serve_asgi(backend, port_override=backend_port) as backend_url:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield ClockedPortal(url, backend_url, outbox, log, tmp_path, clock=clock)
