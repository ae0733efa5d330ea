"""A purpose-built upstream that misbehaves on request, served on a real socket.

Paths: /echo (what arrived, as JSON), /slow?s=, /reset (connection reset),
/garbage (not HTTP), /huge?mb= (streamed), /chunked, /status/{code},
/upload (size and sha256 of the body), /hang (never answers).
"""

from __future__ import annotations

import asyncio
import hashlib
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from aiohttp import web

from deploy.ports import free_port  # noqa: F401 - re-exported: the tests import it from here


async def echo(request: web.Request) -> web.Response:
    body = await request.read()
    return web.json_response(
        {
            "method": request.method,
            "raw_path": request.raw_path,
            "headers": [[k.decode(), v.decode()] for k, v in request.raw_headers],
            "body_bytes": len(body),
            "peer_port": request.transport.get_extra_info("peername")[1] if request.transport else None,
        }
    )


async def slow(request: web.Request) -> web.Response:
    await asyncio.sleep(float(request.query.get("s", "5")))
    return web.json_response({"slow": True})


async def hang(request: web.Request) -> web.Response:
    request.app["hangs"].append(request.path)
    try:
        await asyncio.sleep(3600)
    except asyncio.CancelledError:
        request.app["cancelled"].append(request.path)
        raise
    return web.Response()


async def reset(request: web.Request) -> web.StreamResponse:
    sock = request.transport.get_extra_info("socket") if request.transport else None
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    assert request.transport is not None
    request.transport.abort()
    raise asyncio.CancelledError


async def garbage(request: web.Request) -> web.StreamResponse:
    assert request.transport is not None
    request.transport.write(b"\x00\x01THIS IS NOT HTTP\r\n\r\n\xff\xfe")
    request.transport.close()
    raise asyncio.CancelledError


async def huge(request: web.Request) -> web.StreamResponse:
    mb = int(request.query.get("mb", "20"))
    resp = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    resp.content_length = mb * 1024 * 1024
    await resp.prepare(request)
    block = b"x" * (1024 * 1024)
    sent = 0
    try:
        for _ in range(mb):
            await resp.write(block)
            sent += 1
            await asyncio.sleep(0.001 if mb > 50 else 0)
        await resp.write_eof()
    except (ConnectionError, asyncio.CancelledError):
        request.app["huge_aborted"].append(sent)
        raise
    return resp


async def chunked(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(headers={"Content-Type": "text/plain"})
    resp.enable_chunked_encoding()
    await resp.prepare(request)
    for i in range(5):
        await resp.write(f"chunk-{i}\n".encode())
        await asyncio.sleep(0.01)
    await resp.write_eof()
    return resp


async def truncated(request: web.Request) -> web.StreamResponse:
    """Promises 1 MiB, sends 10 KiB, then closes."""
    resp = web.StreamResponse()
    resp.content_length = 1024 * 1024
    await resp.prepare(request)
    await resp.write(b"y" * 10240)
    assert request.transport is not None
    request.transport.close()
    raise asyncio.CancelledError


async def until_close(request: web.Request) -> web.StreamResponse:
    """An HTTP/1.0-style answer: no Content-Length, not chunked, the body ends at close."""
    assert request.transport is not None
    request.transport.write(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"z" * 100_000)
    request.transport.close()
    raise asyncio.CancelledError


async def status(request: web.Request) -> web.Response:
    code = int(request.match_info["code"])
    return web.json_response({"status": code}, status=code)


async def upload(request: web.Request) -> web.Response:
    digest = hashlib.sha256()
    size = 0
    async for chunk in request.content.iter_chunked(65536):
        digest.update(chunk)
        size += len(chunk)
    return web.json_response(
        {"size": size, "sha256": digest.hexdigest(), "chunked": request.headers.get("Transfer-Encoding")}
    )


async def headers_out(request: web.Request) -> web.Response:
    """Answers with hop-by-hop headers that must not reach the client."""
    return web.Response(
        text="ok",
        headers={
            "Connection": "keep-alive, X-Secret-Hop",
            "X-Secret-Hop": "1",
            "Keep-Alive": "timeout=5",
            "Proxy-Authenticate": "Basic",
            "X-Kept": "yes",
            "Content-Encoding": "identity",
        },
    )


@web.middleware
async def remember_connection(request: web.Request, handler):  # type: ignore[no-untyped-def]
    request.app["connections"].add(request.protocol)
    return await handler(request)


def make_app() -> web.Application:
    app = web.Application(client_max_size=1024**3, middlewares=[remember_connection])
    app["connections"] = set()
    app["huge_aborted"] = []
    app["hangs"] = []
    app["cancelled"] = []
    app.router.add_route("*", "/echo", echo)
    app.router.add_route("*", "/echo/{tail:.*}", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/hang", hang)
    app.router.add_get("/reset", reset)
    app.router.add_get("/garbage", garbage)
    app.router.add_get("/huge", huge)
    app.router.add_get("/chunked", chunked)
    app.router.add_get("/truncated", truncated)
    app.router.add_get("/until-close", until_close)
    app.router.add_get("/status/{code}", status)
    app.router.add_post("/upload", upload)
    app.router.add_get("/headers", headers_out)
    return app


@asynccontextmanager
async def serve_misbehaving() -> AsyncIterator[tuple[str, web.Application]]:
    app = make_app()
    runner = web.AppRunner(app, access_log=None, handler_cancellation=True)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", app
    finally:
        await runner.cleanup()


