"""The codec suite: what a hostile backend sends, what the client makes of it, and the next request.

Modelled on h11's test_connection.py / test_against_stdlib_http.py and Envoy's
http1 codec tests. Every case runs against a real socket server that writes
the bytes exactly as listed, then proves the pool is clean: the next request
is answered by its own answer, and a dirty connection is never reused.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from dataclasses import dataclass

import pytest

from gateway.http11 import (
    ConnectionClosed,
    HeaderTooLarge,
    Http11Pool,
    ProtocolViolation,
    StreamIdleTimeout,
    UnsupportedFraming,
    UpstreamIOError,
)
from tests.http11.conftest import assert_next_answer_is_its_own, fetch
from tests.servers.scripted import Request, ScriptedBackend, read_body

INJECTED = b"HTTP/1.1 200 OK\r\nSet-Cookie: injected=1\r\nContent-Length: 8\r\n\r\ninjected"


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    #: the connection may go back to the pool (False: it must be closed)
    reusable: bool


CASES: list[tuple[str, str, bytes, Answer | type[UpstreamIOError]]] = [
    # -- well-formed answers keep the connection
    ("content_length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", Answer(200, b"hi", True)),
    ("chunked", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
     Answer(200, b"hi", True)),
    ("interim_then_final", "GET",
     b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", Answer(200, b"hi", True)),
    ("head_with_length_and_no_body", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
     Answer(200, b"", True)),
    ("no_content", "GET", b"HTTP/1.1 204 No Content\r\n\r\n", Answer(204, b"", True)),
    ("not_modified", "GET", b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\n\r\n", Answer(304, b"", True)),
    # -- the backend asks to close, or cannot keep the connection
    ("connection_close", "GET", b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
     Answer(200, b"hi", False)),
    ("http10_without_keep_alive", "GET", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi",
     Answer(200, b"hi", False)),
    # -- more bytes than the answer declared: the first answer stands, the connection goes
    ("extra_bytes_after_answer", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA",
     Answer(200, b"hi", False)),
    ("two_answers_for_one_request", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + INJECTED,
     Answer(200, b"hi", False)),
    ("length_counted_in_characters", "GET",
     "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nä".encode(), Answer(200, "ä".encode()[:1], False)),
    ("no_content_with_body", "GET", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nhello",
     Answer(204, b"", False)),
    ("no_content_then_injected_answer", "GET", b"HTTP/1.1 204 No Content\r\n\r\n" + INJECTED,
     Answer(204, b"", False)),
    ("not_modified_with_body", "GET", b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\nhello",
     Answer(304, b"", False)),
    ("head_with_body", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello", Answer(200, b"", False)),
    ("head_then_injected_answer", "HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n" + INJECTED,
     Answer(200, b"", False)),
    # -- framing the client refuses
    ("bad_chunk_size", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhi\r\n0\r\n\r\n",
     ProtocolViolation),
    ("huge_chunk_size", "GET",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffffff\r\nhi\r\n", ProtocolViolation),
    ("duplicate_content_length", "GET",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("conflicting_content_length", "GET",
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 7\r\n\r\nhi", ProtocolViolation),
    ("content_length_list", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\nhi", ProtocolViolation),
    ("negative_content_length", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: -2\r\n\r\nhi", ProtocolViolation),
    ("transfer_encoding_gzip", "GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhi", UnsupportedFraming),
    ("transfer_encoding_gzip_chunked", "GET",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n", UnsupportedFraming),
    ("transfer_encoding_twice", "GET",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
     UnsupportedFraming),
    ("transfer_encoding_and_length", "GET",
     b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 2\r\n\r\n2\r\nhi\r\n0\r\n\r\n",
     ProtocolViolation),
    ("obs_fold", "GET", b"HTTP/1.1 200 OK\r\nX-A: one\r\n two\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("nul_in_header", "GET", b"HTTP/1.1 200 OK\r\nX-A: o\x00ne\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("bare_cr_in_header", "GET", b"HTTP/1.1 200 OK\r\nX-A: o\rne\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("space_in_header_name", "GET", b"HTTP/1.1 200 OK\r\nX A: b\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("not_http", "GET", b"\x00\x01THIS IS NOT HTTP\r\n\r\n", ProtocolViolation),
    ("switching_protocols", "GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: upgrade\r\n\r\n",
     ProtocolViolation),
    ("one_huge_header", "GET",
     b"HTTP/1.1 200 OK\r\nX-Big: " + b"a" * 20_000 + b"\r\nContent-Length: 2\r\n\r\nhi", HeaderTooLarge),
    ("many_headers", "GET",
     b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(2000)) + b"Content-Length: 2\r\n\r\nhi",
     HeaderTooLarge),
    ("endless_interim_answers", "GET", b"HTTP/1.1 100 Continue\r\n\r\n" * 2000, HeaderTooLarge),
    # -- status lines llhttp takes but no client can relay, or after which it parses nothing more
    ("status_000", "GET", b"HTTP/1.1 000 Zero\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("status_099", "GET", b"HTTP/1.1 099 Low\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("status_600", "GET", b"HTTP/1.1 600 High\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("status_999", "GET", b"HTTP/1.1 999 High\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("http_2_status_line", "GET", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    ("http_0_9_status_line", "GET", b"HTTP/0.9 200 OK\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    # -- an interim answer has no body and no trailers: nothing of it may reach the final answer
    ("interim_with_a_body", "GET",
     b"HTTP/1.1 199 Odd\r\nContent-Length: 5\r\n\r\nEVIL!HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi",
     ProtocolViolation),
    ("interim_chunked_with_trailers", "GET",
     b"HTTP/1.1 199 Odd\r\nTransfer-Encoding: chunked\r\n\r\n0\r\nSet-Cookie: promoted=1\r\n\r\n"
     b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi", ProtocolViolation),
    # -- a 304 may repeat the representation's length; its answer still ends with the head
    ("not_modified_with_length_and_no_body", "GET",
     b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 5\r\n\r\n", Answer(304, b"", True)),
]


@pytest.mark.parametrize(("method", "raw", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_hostile_answer_then_a_clean_next_request(
    pool: Http11Pool, backend: ScriptedBackend, method: str, raw: bytes, expected: Answer | type[UpstreamIOError]
) -> None:
    backend.reply("/hostile", raw)
    if isinstance(expected, Answer):
        status, headers, body = await fetch(pool, "/hostile", method)
        assert (status, body) == (expected.status, expected.body)
        assert not any(name == b"set-cookie" for name, _ in headers), "an injected header reached the answer"
    else:
        with pytest.raises(expected):
            await fetch(pool, "/hostile", method)
    conn = backend.requests[-1].connection
    if isinstance(expected, Answer) and expected.reusable:
        await assert_next_answer_is_its_own(pool, backend, on=conn)
    else:
        await backend.wait_closed(conn)
        await assert_next_answer_is_its_own(pool, backend, not_on=conn)


async def test_second_answer_in_a_later_write_closes_the_idle_connection(
    pool: Http11Pool, backend: ScriptedBackend
) -> None:
    async def late_injection(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        await writer.drain()
        # A moment later, while the client's connection sits idle in the pool.
        await asyncio.sleep(0.05)
        writer.write(INJECTED)
        await writer.drain()
        return True

    backend.on("/late", late_injection)
    assert (await fetch(pool, "/late"))[2] == b"hi"
    conn = backend.requests[-1].connection
    await backend.wait_closed(conn)
    await assert_next_answer_is_its_own(pool, backend, not_on=conn)


async def test_trailers_are_never_promoted_to_headers(pool: Http11Pool, backend: ScriptedBackend) -> None:
    backend.reply(
        "/trailers",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: Set-Cookie\r\n\r\n"
        b"2\r\nhi\r\n0\r\nSet-Cookie: trailer=1\r\nX-Injected: 1\r\n\r\n",
    )
    status, headers, body = await fetch(pool, "/trailers")
    assert (status, body) == (200, b"hi")
    names = {name for name, _ in headers}
    assert b"set-cookie" not in names and b"x-injected" not in names
    await assert_next_answer_is_its_own(pool, backend, on=backend.requests[-1].connection)


async def test_the_answer_owns_its_headers(pool: Http11Pool, backend: ScriptedBackend) -> None:
    """Bytes parsed after the head (a second answer) never reach a response already handed out."""
    backend.reply("/two", b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi" + INJECTED)
    response = await pool.request("GET", b"/two", [(b"host", b"x")])
    snapshot = list(response.headers)
    await response.read()
    response.release()
    assert response.headers == snapshot
    await assert_next_answer_is_its_own(pool, backend)


async def test_early_close_mid_body(pool: Http11Pool, backend: ScriptedBackend) -> None:
    async def truncate(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
        await writer.drain()
        writer.close()
        return False

    backend.on("/truncated", truncate)
    with pytest.raises(ConnectionClosed):
        await fetch(pool, "/truncated")
    await assert_next_answer_is_its_own(pool, backend, not_on=backend.requests[-1].connection)


async def test_answer_that_stalls_mid_body_times_out(pool: Http11Pool, backend: ScriptedBackend) -> None:
    backend.reply("/stall", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 10)
    with pytest.raises(StreamIdleTimeout):
        await fetch(pool, "/stall")
    conn = backend.requests[-1].connection
    await backend.wait_closed(conn)
    await assert_next_answer_is_its_own(pool, backend, not_on=conn)


async def test_body_until_close_is_whole_and_not_reused(pool: Http11Pool, backend: ScriptedBackend) -> None:
    async def until_close(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\n\r\n" + b"z" * 100_000)
        await writer.drain()
        writer.close()
        return False

    backend.on("/until-close", until_close)
    assert (await fetch(pool, "/until-close"))[2] == b"z" * 100_000
    await assert_next_answer_is_its_own(pool, backend, not_on=backend.requests[-1].connection)


async def test_backend_that_never_reads_hits_the_write_timeout(backend: ScriptedBackend) -> None:
    from gateway.http11 import WriteTimeout
    from tests.http11.conftest import make_pool

    async def never_read(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await asyncio.Event().wait()
        return False

    async def upload() -> object:
        block = b"u" * 65536
        for _ in range(64 * 16):  # 64 MiB: more than every socket buffer on the way
            yield block

    backend.on("/never-read", never_read)
    pool = make_pool(backend, write_timeout=0.3)
    try:
        with pytest.raises(WriteTimeout):
            await pool.request("POST", b"/never-read", [(b"host", b"x")], upload(),  # type: ignore[arg-type]
                               content_length=64 * 1024 * 1024)
        assert pool.in_use == 0
        await assert_next_answer_is_its_own(pool, backend)
    finally:
        await pool.close()


async def test_http10_backend_is_remembered(pool: Http11Pool, backend: ScriptedBackend) -> None:
    backend.reply("/old", b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
    assert not pool.speaks_http10
    await fetch(pool, "/old")
    assert pool.speaks_http10


async def test_request_bodies_arrive_whole(pool: Http11Pool, backend: ScriptedBackend) -> None:
    async def chunks() -> object:
        for part in (b"a" * 70_000, b"b" * 5):
            yield part

    async def echo_size(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        await read_body(req, reader)
        size = str(len(req.body)).encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(size)).encode() + b"\r\n\r\n" + size)
        return True

    backend.on("/size", echo_size)
    assert (await fetch(pool, "/size", "POST", b"x" * 1000))[2] == b"1000"
    response = await pool.request("POST", b"/size", [(b"host", b"x")], chunks())  # type: ignore[arg-type]
    assert await response.read() == b"70005"
    response.release()
    assert backend.requests[-1].header("transfer-encoding") == "chunked"
    await assert_next_answer_is_its_own(pool, backend)


class _ThreadedLateInjector:
    """A backend in a thread of its own (as a real backend is another process): it answers
    /late, then 10 ms later writes an extra answer into the idle connection; every other
    request it answers with its own path."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.connections = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):  # the client closes the dirty connection
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buffered += data
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                path = head.split(b" ")[1]
                if path == b"/late":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
                    time.sleep(0.01)
                    conn.sendall(INJECTED)
                else:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(path), path))

    def close(self) -> None:
        self.server.close()


async def test_bytes_that_reach_an_idle_connection_while_the_loop_is_busy_are_never_an_answer() -> None:
    """Under load the event loop may not run `data_received` before the connection is taken
    again: the extra answer sits in the kernel. The pool looks at the socket before reuse."""
    await _late_bytes_on_a_busy_loop()


def test_the_same_on_uvloop_and_a_clean_idle_connection_is_still_reused() -> None:
    """uvloop (what `serve` picks when installed) hands out other socket objects: the check must
    work there too, and must not take a clean idle connection for a dirty one."""
    import uvloop

    async def both() -> None:
        await _late_bytes_on_a_busy_loop()
        backend = _ThreadedLateInjector()
        pool = Http11Pool("127.0.0.1", backend.port, size=1)
        try:
            for i in range(5):
                r = await pool.request("GET", b"/clean-%d" % i, [(b"host", b"b")])
                assert await r.read() == b"/clean-%d" % i
                r.release()
            assert backend.connections == 1
        finally:
            await pool.close()
            backend.close()

    uvloop.run(both())


async def _late_bytes_on_a_busy_loop() -> None:
    backend = _ThreadedLateInjector()
    pool = Http11Pool("127.0.0.1", backend.port, size=1)
    try:
        first = await pool.request("GET", b"/late", [(b"host", b"b")])
        assert await first.read() == b"hi"
        first.release()
        time.sleep(0.1)  # the loop is busy elsewhere; the backend's late bytes arrive meanwhile
        second = await pool.request("GET", b"/victim", [(b"host", b"b")])
        assert (second.status, await second.read()) == (200, b"/victim")
        assert b"set-cookie" not in {name for name, _ in second.headers}
        second.release()
        assert backend.connections == 2  # the dirty connection was not reused
    finally:
        await pool.close()
        backend.close()
