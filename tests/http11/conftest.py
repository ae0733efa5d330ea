"""The data plane's HTTP/1.1 client against a scripted hostile backend on loopback."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from gateway.http11 import Http11Pool
from tests.servers.scripted import ScriptedBackend, serve_scripted

HOST = [(b"host", b"backend.test")]


@pytest.fixture
async def backend() -> AsyncIterator[ScriptedBackend]:
    async with serve_scripted() as b:
        yield b


@pytest.fixture
async def pool(backend: ScriptedBackend) -> AsyncIterator[Http11Pool]:
    p = make_pool(backend)
    yield p
    await p.close()


def make_pool(backend: ScriptedBackend, **kw: object) -> Http11Pool:
    options: dict[str, object] = {
        "size": 4,
        "read_timeout": 2.0,
        "stream_idle_timeout": 0.5,
        "write_timeout": 0.5,
        "acquire_timeout": 1.0,
        "max_response_header_bytes": 8 * 1024,
    }
    options.update(kw)
    return Http11Pool(backend.host, backend.port, **options)  # type: ignore[arg-type]


async def fetch(
    pool: Http11Pool, target: str, method: str = "GET", body: bytes | None = None
) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    response = await pool.request(method, target.encode(), HOST, body)
    try:
        data = b"".join([chunk async for chunk in response.iter_chunks()])
    finally:
        response.release()
    return response.status, response.headers, data


async def assert_next_answer_is_its_own(
    pool: Http11Pool, backend: ScriptedBackend, *, not_on: int | None = None, on: int | None = None
) -> None:
    """The next request gets the answer to itself (never a parked or injected one).

    `not_on`: the connection that must not have been reused; `on`: the one that must.
    """
    target = f"/ok?id={uuid.uuid4().hex}"
    status, headers, body = await fetch(pool, target)
    assert (status, body) == (200, target.encode())
    assert (b"x-answer-to", target.encode()) in headers
    used = backend.requests[-1].connection
    if not_on is not None:
        assert used != not_on, "a dirty connection was reused"
    if on is not None:
        assert used == on, "a clean connection was not reused"
