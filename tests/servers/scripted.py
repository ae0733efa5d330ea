"""A hostile HTTP/1.1 backend on a real loopback socket, scripted per path.

Unlike `misbehaving.py` (an aiohttp app, so it can only misbehave in ways
aiohttp allows), this server writes raw bytes: two answers for one request,
a body on a 204, chunk sizes that overflow, bytes on an idle connection.
Each path's script gets the parsed request head and the raw streams and
decides what goes on the wire. Paths without a script get a well-formed
answer naming the request it answers (`X-Answer-To` and the body are the
request target), so a test can prove an answer is not someone else's.

Every accepted connection gets a number; `Request.connection` says which
connection a request came on and `closed` lists the connections the client
closed (a readiness signal: no sleeps needed to see a dirty connection go).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field


@dataclass
class Request:
    method: str
    target: str
    headers: list[tuple[str, str]]
    connection: int
    body: bytes = b""

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None


Script = Callable[[Request, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]
"""Answer one request; return False to stop reading requests on this connection."""


@dataclass
class ScriptedBackend:
    host: str
    port: int
    scripts: dict[str, Script] = field(default_factory=dict)
    requests: list[Request] = field(default_factory=list)
    closed: set[int] = field(default_factory=set)
    _closed_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def on(self, path: str, script: Script) -> None:
        self.scripts[path] = script

    def reply(self, path: str, raw: bytes, *, keep_open: bool = True) -> None:
        """Answer `path` with exactly these bytes (after reading the request body)."""

        async def script(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            await read_body(req, reader)
            writer.write(raw)
            await writer.drain()
            return keep_open

        self.on(path, script)

    async def wait_closed(self, connection: int, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Until the client has closed `connection` (or fail)."""
        async with asyncio.timeout(timeout):
            while connection not in self.closed:
                self._closed_event.clear()
                await self._closed_event.wait()


async def read_body(req: Request, reader: asyncio.StreamReader) -> None:
    length = req.header("content-length")
    if length is not None:
        req.body = await reader.readexactly(int(length))
        return
    if (req.header("transfer-encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        req.body = bytes(body)


def well_formed(req: Request) -> bytes:
    body = req.target.encode()
    return (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Answer-To: " + body
        + b"\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


async def _default(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
    await read_body(req, reader)
    writer.write(well_formed(req))
    await writer.drain()
    return True


@asynccontextmanager
async def serve_scripted() -> AsyncIterator[ScriptedBackend]:
    numbers = itertools.count(1)
    backend: ScriptedBackend | None = None
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert backend is not None
        number = next(numbers)
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = [tuple(x.split(": ", 1)) for x in lines[1:] if x]
                req = Request(method, target, [(k, v) for k, v in headers], number)
                backend.requests.append(req)
                script = backend.scripts.get(target.split("?", 1)[0], _default)
                if not await script(req, reader, writer):
                    # Keep the socket open but stop answering: EOF from the client ends it.
                    try:
                        while await reader.read(65536):
                            pass
                    except ConnectionError:
                        pass
                    break
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            backend.closed.add(number)
            backend._closed_event.set()
            writer.close()
            tasks.discard(task)
            writers.discard(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    backend = ScriptedBackend("127.0.0.1", port)
    try:
        yield backend
    finally:
        server.close()
        # Abort the sockets (handlers see EOF and end) rather than cancel the
        # handler tasks, which asyncio's stream callback would log as errors.
        for writer in list(writers):
            writer.transport.abort()
        if tasks:
            done, pending = await asyncio.wait(list(tasks), timeout=2)
            for task in pending:
                task.cancel()
        await server.wait_closed()
