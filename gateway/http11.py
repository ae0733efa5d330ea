"""A small HTTP/1.1 client for the data plane: keep-alive pools, streaming both ways.

Why not aiohttp or httpx here: measured on this machine (docs/benchmarks.md),
their per-request machinery (request/response objects, header multidicts,
cookie and redirect handling, timers) costs more CPU than the whole rest of the
gateway. The data plane needs far less: write one request we built ourselves,
parse the answer with the same llhttp parser uvicorn uses (httptools), stream
the body with flow control, and reuse the connection. httpx stays the client
of the control plane (OIDC, JWKS, SMS provider, directory adapter).

A connection is a small state machine, in the spirit of h11:

    IDLE ──request()──▶ ACTIVE ──final answer complete──▶ DONE ──release()──▶ IDLE (pool)
      │                   │                                 │
      └──── bytes ────────┴── second answer, bad framing ───┴──▶ closed, never reused

llhttp happily parses whatever follows a complete answer, so a backend that
sends more than it declared (a body on a 204, a wrong Content-Length, a second
answer) would leave a parsed answer waiting for the next user of the pooled
connection. Here any byte that arrives while no answer is expected, and any
second message start within one exchange, is a `ProtocolViolation` that
closes the connection; the current answer keeps only what belonged to it. A
connection goes back to the pool only from a clean DONE with nothing buffered
and keep-alive agreed.

Nothing this client writes can carry CR, LF or NUL in a header name or value
(`InvalidRequestHeader`, raised before a byte is written).

Errors are this module's own (`UpstreamIOError` and its subclasses, each with a
stable `reason`); `gateway/upstream.py` maps them to the gateway's error tree
at one boundary.
"""

from __future__ import annotations

import asyncio
import collections
import re
import select
import ssl
from collections.abc import AsyncIterator, Callable

import httptools

__all__ = [
    "ConnectFailed",
    "ConnectionClosed",
    "HeaderTooLarge",
    "Http11Pool",
    "Http11Response",
    "InvalidRequestHeader",
    "PoolBusy",
    "PoolTimeout",
    "ProtocolViolation",
    "ReadTimeout",
    "StreamIdleTimeout",
    "UnsupportedFraming",
    "UpstreamIOError",
    "WriteTimeout",
]

#: Pause reading from the backend while this much body is buffered and unread.
_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})
#: RFC 9110 token: what a header name (and a method) may be made of.
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: Names checked once are remembered (they repeat on every request); bounded.
_NAME_CACHE_SIZE = 1024

# Connection states.
_IDLE = 0
_ACTIVE = 1
_DONE = 2


class UpstreamIOError(Exception):
    """Base of this module's errors; `reason` is the gateway's reason code for it."""

    reason = "upstream_error"


class ConnectFailed(UpstreamIOError):
    """No connection could be made (refused, unreachable, connect timeout)."""

    reason = "upstream_unavailable"

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(message)
        self.timeout = timeout
        if timeout:
            self.reason = "upstream_connect_timeout"


class ConnectionClosed(UpstreamIOError):
    """The backend closed or reset the connection before the answer was complete."""

    reason = "upstream_unavailable"


class ProtocolViolation(UpstreamIOError):
    """The backend did not speak HTTP/1.1 (or sent bytes nobody asked for)."""

    reason = "upstream_protocol_error"


class HeaderTooLarge(ProtocolViolation):
    """The answer's head (status line and headers) is over the configured limit."""

    reason = "upstream_header_too_large"


class UnsupportedFraming(ProtocolViolation):
    """A Transfer-Encoding other than exactly `chunked` (h11 refuses these too)."""

    reason = "upstream_bad_framing"


class ReadTimeout(UpstreamIOError):
    """The backend did not send its answer's head within the read timeout."""

    reason = "upstream_timeout"


class StreamIdleTimeout(ReadTimeout):
    """The backend's answer stalled: no body bytes within the stream idle timeout."""

    reason = "upstream_idle_timeout"


class WriteTimeout(UpstreamIOError):
    """The backend stopped reading what we send (drain did not finish in time)."""

    reason = "upstream_write_timeout"


class PoolBusy(UpstreamIOError):
    """Every connection is in use and the wait queue is full (Envoy: max_pending_requests)."""

    reason = "upstream_busy"


class PoolTimeout(UpstreamIOError):
    """Waited in the queue for a free connection longer than the acquire timeout."""

    reason = "upstream_pool_timeout"


class InvalidRequestHeader(UpstreamIOError):
    """The gateway built a request head it must not send (CR, LF, NUL, not a token).

    Raised before anything is written: it is a bug of the gateway (or of input
    that slipped past a validator), never something to put on the wire.
    """

    reason = "bad_upstream_request_header"


def _pending_input(transport: asyncio.BaseTransport) -> bool:
    """Bytes (or the end) wait on an idle connection's socket that the event loop has not read yet.

    `data_received` catches what a backend sends an idle connection, but only once the
    loop runs it: under load the loop is busy, and a connection can be taken from the pool
    in the same turn in which a hostile backend's extra answer arrived. Looking at the
    socket itself (a poll with no wait, as Go's transport reads from idle connections)
    closes that window; anything there, data or EOF, makes the connection unusable.
    """
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    try:
        readable, _, _ = select.select((sock.fileno(),), (), (), 0)
    except (OSError, ValueError):
        return True
    return bool(readable)


class _Connection(asyncio.Protocol):
    """One keep-alive connection; parses answers as they arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, max_head_bytes: int) -> None:
        self.loop = loop
        self.max_head_bytes = max_head_bytes
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.state = _IDLE
        self.error: UpstreamIOError | None = None
        self._write_waiter: asyncio.Future[None] | None = None
        self.waiter: asyncio.Future[None] | None = None
        self._reset()

    def _reset(self) -> None:
        """Prepare for the next exchange (only ever from a clean DONE, or a new connection)."""
        self.status = 0
        self._head: list[tuple[bytes, bytes]] = []
        self.headers: list[tuple[bytes, bytes]] = self._head
        self.head_request = False
        self.head_bytes = 0
        self.head_wait_bytes = 0
        self.began = False
        self.headers_done = False
        self.keep_alive = False
        self.until_close = False
        self.http10 = False
        self.complete = False
        self.received_any = False
        self.body: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.paused = False

    def begin(self, head_request: bool) -> None:
        """IDLE → ACTIVE: a request is about to be written."""
        if self.head_request:
            # After an answer to HEAD llhttp still expects the body its headers
            # announced; a new parser starts at a clean message boundary.
            self.parser = httptools.HttpResponseParser(self)
        self._reset()
        self.head_request = head_request
        self.state = _ACTIVE

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.state != _ACTIVE:
            # Idle in the pool, or after the answer was complete: nobody asked
            # for these bytes. They would become the next user's answer.
            self._fail(ProtocolViolation("the backend sent bytes while no answer was expected"))
            return
        self.received_any = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(ProtocolViolation("the backend switched protocols"))
            return
        except httptools.HttpParserError as exc:
            cause = exc.__context__
            if isinstance(cause, UpstreamIOError):
                self._fail(cause)
            else:
                self._fail(ProtocolViolation(f"the backend sent an invalid answer: {exc}"))
            return
        if not self.headers_done:
            # Still no final head after this read (headers split over reads, or
            # an endless run of interim answers): count every byte of it.
            self.head_wait_bytes += len(data)
            if self.head_wait_bytes > self.max_head_bytes:
                self._fail(HeaderTooLarge(f"the answer's head is larger than {self.max_head_bytes} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.state == _ACTIVE and self.headers_done and not self.complete and self.until_close and exc is None:
            # No Content-Length and not chunked: the body ends where the connection does.
            self._finish()
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

    # -- httptools callbacks (an exception raised here stops the parser)
    def on_message_begin(self) -> None:
        if self.began or self.complete:
            raise ProtocolViolation("the backend sent a second answer to one request")
        self.began = True

    def on_header(self, name: bytes, value: bytes | None) -> None:
        if self.headers_done:
            # Trailers of a chunked body: never promoted to headers, not relayed.
            return
        value = value or b""
        self.head_bytes += len(name) + len(value) + 4
        if self.head_bytes > self.max_head_bytes:
            raise HeaderTooLarge(f"the answer's head is larger than {self.max_head_bytes} bytes")
        self._head.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        status = self.parser.get_status_code()
        if not 100 <= status <= 599:
            # llhttp takes any three digits; no client or server can relay "999".
            raise ProtocolViolation(f"the backend sent status {status}")
        version = self.parser.get_http_version()
        if version not in ("1.0", "1.1"):
            # llhttp parses an "HTTP/2.0" or "HTTP/0.9" status line but then refuses every
            # later byte: such a connection must never go back to the pool.
            raise ProtocolViolation(f"the backend answered in HTTP/{version}")
        if 100 <= status < 200:
            # Interim answers (100 Continue, 103 Early Hints) are not relayed; the final
            # answer may begin after this one. An interim answer has no body (RFC 9112
            # 6.1, 6.2): one that announces a length or chunks is not HTTP.
            if any(name in (b"content-length", b"transfer-encoding") for name, _ in self._head):
                raise ProtocolViolation("the backend announced a body on an interim answer")
            self._head = []
            self.began = False
            return
        self.status = status
        headers = self.headers = self._head
        # The answer owns this list; anything parsed later goes elsewhere.
        self._head = []
        self.http10 = version == "1.0"
        transfer: list[bytes] = []
        has_length = False
        tokens: list[bytes] = []
        for name, value in headers:
            if name == b"transfer-encoding":
                transfer += (t.strip().lower() for t in value.split(b","))
            elif name == b"content-length":
                has_length = True
            elif name == b"connection":
                tokens += (t.strip().lower() for t in value.split(b","))
        if transfer and transfer != [b"chunked"]:
            raise UnsupportedFraming("the backend sent a Transfer-Encoding other than chunked")
        if self.http10:
            self.keep_alive = b"keep-alive" in tokens and b"close" not in tokens
        else:
            self.keep_alive = b"close" not in tokens
        # And never when llhttp itself will not parse another answer on this connection.
        self.keep_alive = self.keep_alive and self.parser.should_keep_alive()
        self.headers_done = True
        if self.head_request or status == 204 or status == 304:
            # These answers end with their head (RFC 9112 6.3); any byte after it
            # is not part of this answer.
            self._finish()
            return
        self.until_close = not transfer and not has_length
        if self.until_close:
            self.keep_alive = False
        self._wake()

    def on_body(self, body: bytes) -> None:
        if self.complete or not self.headers_done:
            raise ProtocolViolation("the backend sent a body on an answer that has none")
        self.body.append(body)
        self.buffered += len(body)
        if self.buffered > _HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if not self.headers_done or self.complete:
            return  # an interim answer, or one already finished at its head
        self._finish()

    # -- helpers
    def _finish(self) -> None:
        self.complete = True
        self.state = _DONE
        self._wake()

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

    async def wait(self, timeout: float, error: type[ReadTimeout] = ReadTimeout) -> None:  # noqa: ASYNC109 - a timer handle is cheaper than asyncio.timeout
        """Wait for the next parser event, at most `timeout` seconds."""
        if self.error is not None:
            raise self.error
        waiter = self.waiter = self.loop.create_future()
        handle = self.loop.call_later(timeout, _expire, waiter, error)
        try:
            await waiter
        finally:
            handle.cancel()
            self.waiter = None

    async def drain(self, timeout: float) -> None:  # noqa: ASYNC109 - a timer only while the backend is not reading
        waiter = self._write_waiter
        if waiter is not None:
            handle = self.loop.call_later(timeout, _expire_write, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
        if self.closed:
            raise ConnectionClosed("the backend closed the connection while we were sending")

    def take(self) -> bytes:
        chunk = self.body.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered < _LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk


def _expire(waiter: asyncio.Future[None], error: type[ReadTimeout]) -> None:
    if not waiter.done():
        stalled = issubclass(error, StreamIdleTimeout)
        waiter.set_exception(error("the backend's answer stalled" if stalled else "the backend did not answer in time"))


def _expire_write(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(WriteTimeout("the backend stopped reading the request"))


class Http11Response:
    """An answer whose headers have arrived; the body is read with `read()` or `iter_chunks()`.

    `headers` is the answer's own list (lower-case names): later bytes on the
    connection can never add to it.
    """

    __slots__ = ("_conn", "_pool", "_released", "_timeout", "headers", "http10", "status")

    def __init__(self, pool: Http11Pool, conn: _Connection, timeout: float) -> None:
        self._pool = pool
        self._conn = conn
        self._timeout = timeout
        self._released = False
        self.status = conn.status
        self.headers = conn.headers
        self.http10 = conn.http10

    @property
    def complete(self) -> bool:
        return self._conn.complete

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
        while not conn.complete:
            await conn.wait(self._timeout, StreamIdleTimeout)
        body = b"".join(conn.body)
        conn.body.clear()
        conn.buffered = 0
        if conn.paused and conn.transport is not None:
            conn.paused = False
            conn.transport.resume_reading()
        return body

    async def iter_chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        while True:
            if conn.body:
                yield conn.take()
            elif conn.complete:
                return
            else:
                await conn.wait(self._timeout, StreamIdleTimeout)

    def release(self) -> None:
        """Give the connection back for reuse if the exchange ended cleanly, else close it.

        Idempotent: the forwarder releases small answers before relaying them.
        """
        if self._released:
            return
        self._released = True
        conn = self._conn
        reusable = (
            conn.state == _DONE
            and conn.error is None
            and not conn.closed
            and not conn.body
            and conn.keep_alive
        )
        self._pool._put(conn, reusable)


class Http11Pool:
    """Keep-alive connections to one backend, at most `size` at a time.

    A request that finds every connection busy waits in a queue of at most
    `max_pending` for at most `acquire_timeout` seconds (`PoolBusy`,
    `PoolTimeout`); one slow user can hold a connection, not the upstream.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool = False,
        size: int = 100,
        max_pending: int = 1000,
        acquire_timeout: float = 5.0,
        connect_timeout: float = 2.0,
        read_timeout: float = 30.0,
        write_timeout: float = 30.0,
        stream_idle_timeout: float = 30.0,
        keepalive: float = 30.0,
        max_response_header_bytes: int = 64 * 1024,
    ) -> None:
        if size < 1:
            raise ValueError("pool size must be at least 1")
        self.host = host
        self.port = port
        #: Idle connections older than this are closed instead of reused (servers
        #: close idle sockets too; reusing one just before they do costs a retry).
        self.keepalive = keepalive
        self.ssl: ssl.SSLContext | None = ssl.create_default_context() if tls else None
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self.stream_idle_timeout = stream_idle_timeout
        self.max_response_header_bytes = max_response_header_bytes
        self.max_pending = max_pending
        self.acquire_timeout = acquire_timeout
        #: True once the backend answered as HTTP/1.0: it cannot read a chunked body.
        self.speaks_http10 = False
        self._idle: collections.deque[_Connection] = collections.deque()
        self._free = size
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._open: set[_Connection] = set()
        self._checked_names: set[bytes] = set()

    @property
    def in_use(self) -> int:
        """Connections handed out right now (for tests and readiness)."""
        return len(self._open) - len(self._idle)

    async def close(self) -> None:
        for conn in list(self._open):
            if conn.transport is not None:
                conn.transport.close()
        self._idle.clear()
        self._open.clear()

    # -- slots
    async def _acquire(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if len(self._waiters) >= self.max_pending:
            raise PoolBusy(f"all connections to {self.host}:{self.port} are busy and the queue is full")
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.append(waiter)
        handle = loop.call_later(self.acquire_timeout, _expire_acquire, waiter)
        try:
            await waiter
        except BaseException:
            if waiter.done() and not waiter.cancelled() and waiter.exception() is None:
                # The slot was handed to us just as we were cancelled: pass it on.
                self._release_slot()
            else:
                try:
                    self._waiters.remove(waiter)
                except ValueError:
                    pass
            raise
        finally:
            handle.cancel()

    def _release_slot(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        limit = self.max_response_header_bytes
        try:
            _, conn = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop, limit), self.host, self.port, ssl=self.ssl),
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
            if (
                conn.error is None
                and not conn.closed
                and conn.transport is not None
                and not conn.transport.is_closing()
                and not _pending_input(conn.transport)
            ):
                conn.reused = True
                return conn
            self._discard(conn)
        return None

    def _put(self, conn: _Connection, reusable: bool) -> None:
        if reusable:
            conn.state = _IDLE
            if self.speaks_http10 is False and conn.http10:
                self.speaks_http10 = True
            conn.idle_since = conn.loop.time()
            self._idle.append(conn)
        else:
            if conn.http10:
                self.speaks_http10 = True
            self._discard(conn)
        self._release_slot()

    def _discard(self, conn: _Connection) -> None:
        if conn.transport is not None:
            conn.transport.close()
        self._open.discard(conn)

    # -- requests
    async def request(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes | AsyncIterator[bytes] | None = None,
        *,
        content_length: int | None = None,
        on_slow: Callable[[], None] | None = None,
        slow_after: float = 0.2,
    ) -> Http11Response:
        """Send one request and return once the answer's headers have arrived.

        `body` is bytes (sent with its length) or a stream (sent with
        `content_length`, or chunked when that is None). `on_slow` is called
        once if no answer has come after `slow_after` seconds (the caller may
        then start watching for its own client going away). The caller must
        `release()` the response. A request without a body that fails on a
        reused connection before any byte came back is retried once on a new
        connection (the backend may have closed an idle keep-alive socket).
        """
        if isinstance(body, bytes):
            content_length = len(body)
        chunked = body is not None and content_length is None
        head = self._head(method, target, headers, chunked, content_length)
        await self._acquire()
        try:
            conn = self._take_idle() or await self._connect()
            try:
                return await self._exchange(conn, method, head, body, chunked, on_slow, slow_after)
            except ConnectionClosed:
                if not (conn.reused and not conn.received_any and body is None and method in _IDEMPOTENT):
                    raise
                self._discard(conn)
                conn = await self._connect()
                return await self._exchange(conn, method, head, body, chunked, on_slow, slow_after)
        except BaseException:
            self._release_slot()
            raise

    def _head(
        self,
        method: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        chunked: bool,
        content_length: int | None,
    ) -> bytes:
        """The request head, refused if any part could end a line or split the message."""
        checked = self._checked_names
        for name, _ in headers:
            if name not in checked:
                self._check_name(name)
        parts = [method.encode("latin-1"), b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        lines = len(headers) + 2
        if content_length is not None:
            parts += (b"content-length: ", str(content_length).encode(), b"\r\n")
            lines += 1
        elif chunked:
            parts.append(b"transfer-encoding: chunked\r\n")
            lines += 1
        parts.append(b"\r\n")
        head = b"".join(parts)
        # Every line we wrote ends in exactly one CRLF: any other CR or LF, or a
        # NUL, came from a value (three scans in C instead of one per header).
        if head.count(b"\n") != lines or head.count(b"\r") != lines or b"\0" in head:
            raise InvalidRequestHeader(_describe_bad_head(method, target, headers))
        if b" " in target or not _TOKEN.fullmatch(method.encode("latin-1")):
            raise InvalidRequestHeader("the request line has a bad method or target")
        return head

    def _check_name(self, name: bytes) -> None:
        if not _TOKEN.fullmatch(name):
            raise InvalidRequestHeader(f"header name {name[:40]!r} is not an HTTP token")
        if len(self._checked_names) < _NAME_CACHE_SIZE:
            self._checked_names.add(name)

    async def _exchange(
        self,
        conn: _Connection,
        method: str,
        head: bytes,
        body: bytes | AsyncIterator[bytes] | None,
        chunked: bool,
        on_slow: Callable[[], None] | None,
        slow_after: float,
    ) -> Http11Response:
        transport = conn.transport
        assert transport is not None
        conn.begin(method == "HEAD")
        try:
            if body is None:
                transport.write(head)
            elif isinstance(body, bytes):
                transport.write(head + body)
                await conn.drain(self.write_timeout)
            else:
                transport.write(head)
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
        return Http11Response(self, conn, self.stream_idle_timeout)

    async def _send_body(
        self, conn: _Connection, transport: asyncio.Transport, body: AsyncIterator[bytes], chunked: bool
    ) -> None:
        async for chunk in body:
            if conn.closed or conn.headers_done or conn.error is not None:
                # The backend answered (or gave up) before reading everything:
                # stop sending; the connection is not reused.
                conn.keep_alive = False
                return
            if chunked:
                transport.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            else:
                transport.write(chunk)
            await conn.drain(self.write_timeout)
        if chunked and not conn.closed:
            transport.write(b"0\r\n\r\n")


def _expire_acquire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(PoolTimeout("no connection to the backend became free in time"))


def _describe_bad_head(method: str, target: bytes, headers: list[tuple[bytes, bytes]]) -> str:
    """Name the offending part (never its value: it may hold a credential)."""
    bad = (b"\r", b"\n", b"\0")
    if any(c in method.encode("latin-1") or c in target for c in bad):
        return "the request line contains CR, LF or NUL"
    for name, value in headers:
        if any(c in name or c in value for c in bad):
            return f"header {name[:40]!r} contains CR, LF or NUL"
    return "the request head contains CR, LF or NUL"  # pragma: no cover - counts disagree only for these
