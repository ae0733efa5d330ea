"""A small HTTP/1.1 client for the data plane: keep-alive pools, streaming both ways.

Why not aiohttp or httpx here: measured on this machine (docs/benchmarks.md),
their per-request machinery (request/response objects, header multidicts,
cookie and redirect handling, timers) costs more CPU than the whole rest of the
gateway. The data plane needs far less: write one request we built ourselves,
parse the answer with the same llhttp parser uvicorn uses (httptools), stream
the body with flow control, and reuse the connection. httpx stays the client
of the control plane (OIDC, JWKS, SMS provider, directory adapter).

Errors are this module's own (`ConnectFailed`, `ConnectionClosed`,
`ProtocolViolation`, `ReadTimeout`); `gateway/upstream.py` maps them to the
gateway's error tree at one boundary.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator, Callable

import httptools

__all__ = [
    "ConnectFailed",
    "ConnectionClosed",
    "Http11Pool",
    "Http11Response",
    "ProtocolViolation",
    "ReadTimeout",
    "UpstreamIOError",
]

#: Pause reading from the backend while this much body is buffered and unread.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})


class UpstreamIOError(Exception):
    """Base of this module's errors."""


class ConnectFailed(UpstreamIOError):
    """No connection could be made (refused, unreachable, connect timeout)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout


class ConnectionClosed(UpstreamIOError):
    """The backend closed or reset the connection before the answer was complete."""


class ProtocolViolation(UpstreamIOError):
    """The backend did not speak HTTP/1.1."""


class ReadTimeout(UpstreamIOError):
    """The backend did not send the next bytes within the read timeout."""


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses answers as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self._reset()
        self._write_waiter: asyncio.Future[None] | None = None

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self.headers_done = False
        self.keep_alive = False
        self.until_close = False
        self.complete = False
        self.received_any = False
        self.error: UpstreamIOError | None = None
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolViolation("the backend switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(ProtocolViolation(f"the backend sent an invalid answer: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.headers_done and not self.complete and self.until_close and exc is None:
            # No Content-Length and not chunked: the body ends where the connection does.
            self.complete = True
            self._wake()
        if not self.complete:
            self._fail(ConnectionClosed("the backend closed the connection"), close=False)
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def pause_writing(self) -> None:
        if self._write_waiter is None:
            self._write_waiter = self.loop.create_future()

    def resume_writing(self) -> None:
        waiter, self._write_waiter = self._write_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- httptools callbacks
    def on_header(self, name: bytes, value: bytes | None) -> None:
        self.headers.append((name.lower(), value or b""))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # Interim answers (100 Continue, 103 Early Hints) are not relayed.
            self.headers = []
            return
        self.status = status
        # llhttp resets its flags once the message is complete: ask now.
        self.keep_alive = self.parser.should_keep_alive()
        self.until_close = not any(n in (b"content-length", b"transfer-encoding") for n, _ in self.headers)
        self.headers_done = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        if not self.headers_done:
            return
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done:
            return
        self.complete = True
        self._wake()

    # -- helpers
    def _wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, error: UpstreamIOError, close: bool = True) -> None:
        if self.error is None:
            self.error = error
        if close and self.transport is not None:
            self.transport.close()
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(error)

    async def wait(self, timeout: float) -> None:  # noqa: ASYNC109 - a timer handle is cheaper than asyncio.timeout
        """Wait for the next parser event, at most `timeout` seconds."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        handle = self.loop.call_later(timeout, _expire, waiter)
        try:
            await waiter
        finally:
            handle.cancel()
            self.waiter = None

    async def drain(self) -> None:
        if self._write_waiter is not None:
            await self._write_waiter
        if self.closed:
            raise ConnectionClosed("the backend closed the connection while we were sending")

    def take(self) -> bytes:
        chunk = self.body.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(ReadTimeout("the backend did not answer in time"))


class Http11Response:
    """An answer whose headers have arrived; the body is read with `read()` or `iter_chunks()`."""

    __slots__ = ("_conn", "_head", "_pool", "_timeout", "headers", "status")

    def __init__(self, pool: Http11Pool, conn: _Connection, head: bool, timeout: float) -> None:
        self._pool = pool
        self._conn = conn
        self._head = head
        self._timeout = timeout
        self.status = conn.status
        self.headers = conn.headers

    @property
    def complete(self) -> bool:
        return self._head or self._conn.complete

    def content_length(self) -> int | None:
        for name, value in self.headers:
            if name == b"content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    async def read(self) -> bytes:
        """The whole body (for answers known to be small)."""
        conn = self._conn
        if self._head:
            return b""
        while not conn.complete:
            await conn.wait(self._timeout)
        body = b"".join(conn.body)
        conn.body.clear()
        conn.buffered = 0
        if conn.paused and conn.transport is not None:
            conn.paused = False
            conn.transport.resume_reading()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        if self._head:
            return
        while True:
            if conn.body:
                yield conn.take()
            elif conn.complete:
                return
            else:
                await conn.wait(self._timeout)

    def release(self) -> None:
        """Give the connection back for reuse if the exchange ended cleanly, else close it."""
        conn = self._conn
        reusable = (
            not self._head
            and conn.complete
            and not conn.closed
            and conn.error is None
            and not conn.body
            and conn.keep_alive
        )
        self._pool._put(conn, reusable)


class Http11Pool:
    """Keep-alive connections to one backend, at most `size` at a time."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        size: int = 100,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
        keepalive: float = 30.0,
    ) -> None:
        self.host = host
        #: Idle connections older than this are closed instead of reused (servers
        #: close idle sockets too; reusing one just before they do costs a retry).
        self.keepalive = keepalive
        self.port = port
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if tls else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self._idle: collections.deque[_Connection] = collections.deque()
        self._slots = asyncio.Semaphore(size)
        self._open: set[_Connection] = set()

    async def close(self) -> None:
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        self._open.clear()

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port, ssl=self.ssl),
                self.connect_timeout,
            )
        except TimeoutError:
            raise ConnectFailed(f"connect to {self.host}:{self.port} timed out", timeout=True) from None
        except OSError as exc:
            raise ConnectFailed(f"connect to {self.host}:{self.port} failed: {exc.strerror or exc}") from exc
        self._open.add(conn)
        return conn

    def _take_idle(self) -> _Connection | None:
        if not self._idle:
            return None
        now = asyncio.get_running_loop().time()
        # Oldest at the left: drop the expired ones, then reuse the most recent.
        while self._idle and now - self._idle[0].idle_since > self.keepalive:
            self._discard(self._idle.popleft())
        while self._idle:
            conn = self._idle.pop()
            if not conn.closed and conn.transport is not None and not conn.transport.is_closing():
                conn.reused = True
                return conn
            self._open.discard(conn)
        return None

    def _put(self, conn: _Connection, reusable: bool) -> None:
        if reusable:
            conn._reset()
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            if conn.transport is not None:
                conn.transport.close()
            self._open.discard(conn)
        self._slots.release()

    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None = None,
        *,
        content_length: int | None = None,
        on_slow: Callable[[], None] | None = None,
        slow_after: float = 0.2,
    ) -> Http11Response:
        """Send one request and return once the answer's headers have arrived.

        `on_slow` is called once if no answer has come after `slow_after` seconds
        (the caller may then start watching for its own client going away).
        The caller must `release()` the response. A request without a body that
        fails on a reused connection before any byte came back is retried once on
        a new connection (the backend may have closed an idle keep-alive socket).
        """
        await self._slots.acquire()
        try:
            conn = self._take_idle() or await self._connect()
            try:
                return await self._exchange(conn, method, target, headers, body, content_length, on_slow, slow_after)
            except ConnectionClosed:
                if not (conn.reused and not conn.received_any and body is None and method in _IDEMPOTENT):
                    raise
                self._discard(conn)
                conn = await self._connect()
                return await self._exchange(conn, method, target, headers, body, content_length, on_slow, slow_after)
        except BaseException:
            self._slots.release()
            raise

    def _discard(self, conn: _Connection) -> None:
        if conn.transport is not None:
            conn.transport.close()
        self._open.discard(conn)

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: AsyncIterator[bytes] | None,
        content_length: int | None,
        on_slow: Callable[[], None] | None = None,
        slow_after: float = 0.2,
    ) -> Http11Response:
        transport = conn.transport
        assert transport is not None
        chunked = body is not None and content_length is None
        parts = [method.encode("ascii"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        if content_length is not None:
            parts += (b"content-length: ", str(content_length).encode(), b"\r\n")
        elif chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
        parts.append(b"\r\n")
        try:
            transport.write(b"".join(parts))
            if body is not None:
                await self._send_body(conn, transport, body, chunked)
            if on_slow is not None and not conn.headers_done and slow_after < self.read_timeout:
                # One timer either way: a short first wait, then the rest of the read timeout.
                try:
                    await conn.wait(slow_after)
                except ReadTimeout:
                    if conn.error is not None:
                        raise
                    on_slow()
                    while not conn.headers_done:
                        await conn.wait(self.read_timeout - slow_after)
            while not conn.headers_done:
                await conn.wait(self.read_timeout)
        except BaseException:
            self._discard(conn)
            raise
        return Http11Response(self, conn, method == "HEAD", self.read_timeout)

    async def _send_body(
        self, conn: _Connection, transport: asyncio.Transport, body: AsyncIterator[bytes], chunked: bool
    ) -> None:
        async for chunk in body:
            if conn.closed or conn.headers_done:
                # The backend answered (or gave up) before reading everything:
                # stop sending; the connection is not reused.
                conn.closed = True
                return
            if chunked:
                transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await conn.drain()
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")
