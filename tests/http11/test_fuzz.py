"""Hypothesis against the client: random answers from a real socket, random headers on the way out.

Bounded (a few hundred examples, well under 30 s): the properties are the
ones a user would notice. The response path never crashes (only the client's
own errors), the next request always gets its own answer (never a parked or
injected one), and a connection whose exchange failed is never reused. The
request head never carries a line the gateway did not mean to write.
"""

from __future__ import annotations

import asyncio
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http11 import Http11Pool, InvalidRequestHeader, UpstreamIOError
from tests.http11.conftest import fetch, make_pool
from tests.servers.scripted import Request, serve_scripted

FRAGMENTS = [
    b"HTTP/1.1 200 OK\r\n",
    b"HTTP/1.1 204 No Content\r\n",
    b"HTTP/1.1 304 Not Modified\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n",
    b"HTTP/1.1 302 Found\r\nLocation: /x\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 5\r\n",
    b"Content-Length: 12\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding: gzip\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Set-Cookie: injected=1\r\n",
    b"X-Answer-To: /ok\r\n",
    b" folded\r\n",
    b"\r\n",
    b"hello",
    b"5\r\nhello\r\n",
    b"0\r\n\r\n",
    b"0\r\nX-Trailer: 1\r\n\r\n",
    b"fffffffffffffffff\r\n",
]

answers = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.binary(max_size=12)), min_size=1, max_size=14
).map(b"".join)


async def _exchange_twice(raw: bytes, close_after: bool) -> None:
    async with serve_scripted() as backend:

        async def hostile(req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
            writer.write(raw)
            await writer.drain()
            if close_after:
                writer.close()
                return False
            return True

        backend.on("/fuzz", hostile)
        pool: Http11Pool = make_pool(backend, read_timeout=0.03, stream_idle_timeout=0.03)
        try:
            failed = False
            try:
                await fetch(pool, "/fuzz")
            except UpstreamIOError:
                failed = True  # never anything else: no crash on any byte stream
            first = backend.requests[-1].connection
            target = f"/ok?id={uuid.uuid4().hex}"
            status, headers, body = await fetch(pool, target)
            assert (status, body) == (200, target.encode()), "the next request got an answer not its own"
            assert (b"x-answer-to", target.encode()) in headers
            assert not any(name == b"set-cookie" for name, _ in headers)
            if failed:
                assert backend.requests[-1].connection != first, "a connection that failed was reused"
        finally:
            await pool.close()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=answers, close_after=st.booleans())
def test_random_answers_never_leak_into_the_next_request(raw: bytes, close_after: bool) -> None:
    asyncio.run(_exchange_twice(raw, close_after))


# -- the outgoing header builder

header_bytes = st.binary(max_size=24) | st.sampled_from(
    [b"x-portal-subject", b"svc\n", b"a\r\nX-Injected: 1", b"v\x00", b"\rsplit", b"ok value", b"x:y", b""]
)


def _is_token(name: bytes) -> bool:
    return bool(name) and all(chr(c) in "!#$%&'*+-.^_`|~" or chr(c).isalnum() and c < 128 for c in name)


@settings(max_examples=300, deadline=None)
@given(headers=st.lists(st.tuples(header_bytes, header_bytes), max_size=6), target=st.sampled_from(
    [b"/a", b"/a?x=1", b"/a\r\nX: 1", b"/a b", b"/\x00"]))
def test_request_head_never_carries_an_unintended_line(
    headers: list[tuple[bytes, bytes]], target: bytes
) -> None:
    pool = Http11Pool("127.0.0.1", 9)
    clean = all(
        _is_token(n) and not any(c in n + v for c in (b"\r", b"\n", b"\0")) for n, v in headers
    ) and target in (b"/a", b"/a?x=1")
    try:
        head = pool._head("GET", target, headers, False, None)
    except InvalidRequestHeader:
        assert not clean, "a clean request head was refused"
        return
    assert clean, "a head with CR, LF, NUL or a non-token name was written"
    # Split the way every HTTP/1.1 parser splits: one line per header we meant, in order.
    lines = head.split(b"\r\n")
    assert lines[0] == b"GET " + target + b" HTTP/1.1"
    assert lines[1:] == [n + b": " + v for n, v in headers] + [b"", b""]


def test_builder_refuses_the_bearer_client_id_with_a_newline() -> None:
    """The case from the review: a client id `svc\\n` that `$` let through becomes a header value."""
    pool = Http11Pool("127.0.0.1", 9)
    for value in (b"svc\n", b"svc\r\nX-Portal-Access-Level: full", b"svc\x00"):
        try:
            pool._head("GET", b"/", [(b"x-portal-subject", value)], False, None)
        except InvalidRequestHeader as exc:
            assert "x-portal-subject" in str(exc)
            assert "Access-Level" not in str(exc) and "svc" not in str(exc), "the value is echoed"
        else:
            raise AssertionError(f"{value!r} was accepted")


