"""HttpDirectory against the reference service on a real loopback socket: cache, negative
cache, server down → DirectoryUnavailable, recovery; malformed answers fail closed."""

from __future__ import annotations

import httpx
import pytest

from gateway.directory.base import DirectoryUnavailable
from gateway.directory.http import HttpDirectory
from gateway.directory.records import LineRecord

from .conftest import CountingApp, FakeClock, LoopbackServer


async def test_cache_and_negative_cache(
    reference_server: tuple[LoopbackServer, CountingApp], clock: FakeClock
) -> None:
    server, app = reference_server
    d = HttpDirectory(server.url, cache_ttl_seconds=30, negative_ttl_seconds=5, clock=clock)
    try:
        line = await d.line("436641000020")
        assert isinstance(line, LineRecord)
        assert await d.line("436641000020") == line
        assert app.paths.count("/lines/436641000020") == 1
        assert await d.line("436641999999") is None
        assert await d.line("436641999999") is None
        assert app.paths.count("/lines/436641999999") == 1
        clock.now += 6  # negative entry expired, positive one not
        assert await d.line("436641999999") is None
        assert await d.line("436641000020") == line
        assert app.paths.count("/lines/436641999999") == 2
        assert app.paths.count("/lines/436641000020") == 1
        clock.now += 30
        await d.line("436641000020")
        assert app.paths.count("/lines/436641000020") == 2
        # Proof checks always reach the service.
        assert await d.verify_puk("436641000020", "20202020") is True
        assert await d.verify_puk("436641000020", "20202020") is True
        assert app.paths.count("/lines/436641000020/puk/verify") == 2
    finally:
        await d.close()


async def test_ids_are_one_path_segment(reference_server: tuple[LoopbackServer, CountingApp]) -> None:
    server, app = reference_server
    d = HttpDirectory(server.url)
    try:
        assert await d.line("436641000020/../../customers/1000001") is None
        assert await d.line("..") is None
        assert all(p.startswith("/lines/") for p in app.paths)
    finally:
        await d.close()


async def test_server_down_then_recovers(
    reference_server: tuple[LoopbackServer, CountingApp], clock: FakeClock
) -> None:
    server, _ = reference_server
    d = HttpDirectory(server.url, timeout_seconds=1.0, cache_ttl_seconds=10, clock=clock)
    try:
        assert await d.customer("1000001") is not None
        await server.stop()
        # Within the TTL the cached fact still answers; anything else fails closed.
        assert await d.customer("1000001") is not None
        for call in (d.customer("1000010"), d.verify_kundenkennwort("1000001", "Huber-Kennwort-1"), d.ping()):
            with pytest.raises(DirectoryUnavailable):
                await call
        clock.now += 11
        with pytest.raises(DirectoryUnavailable):
            await d.customer("1000001")
        await server.start()
        assert await d.customer("1000001") is not None  # errors were not cached
        assert await d.verify_kundenkennwort("1000001", "Huber-Kennwort-1") is True
        await d.ping()
    finally:
        await d.close()


def _mock(handler: httpx.MockTransport) -> HttpDirectory:
    return HttpDirectory("http://directory.test", transport=handler)


@pytest.mark.parametrize(
    "response",
    [
        httpx.Response(500, json={"error": "boom"}),
        httpx.Response(401, json={}),
        httpx.Response(302, headers={"location": "http://elsewhere/"}),
        httpx.Response(200, text="<html>"),
        httpx.Response(200, json={"msisdn": "436641000020"}),  # fields missing
        httpx.Response(200, json={"msisdn": "1", "contract_id": "c", "customer_number": "1", "part": "both"}),
        httpx.Response(200, json=["not", "an", "object"]),
    ],
)
async def test_bad_answers_fail_closed(response: httpx.Response) -> None:
    d = _mock(httpx.MockTransport(lambda request: response))
    with pytest.raises(DirectoryUnavailable):
        await d.line("436641000020")
    await d.close()


@pytest.mark.parametrize("body", [{"valid": "yes"}, {}, [True]])
async def test_bad_verify_answers_fail_closed(body: object) -> None:
    d = _mock(httpx.MockTransport(lambda request: httpx.Response(200, json=body)))
    with pytest.raises(DirectoryUnavailable):
        await d.verify_puk("436641000020", "20202020")
    await d.close()


async def test_timeout_fails_closed() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("slow", request=request)

    d = _mock(httpx.MockTransport(slow))
    with pytest.raises(DirectoryUnavailable) as info:
        await d.relations("p-anna-huber")
    assert isinstance(info.value.__cause__, httpx.ReadTimeout)
    await d.close()


async def test_candidate_travels_in_the_body_only() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"valid": False})

    d = _mock(httpx.MockTransport(handler))
    assert await d.verify_kundenkennwort("1000001", "Huber-Kennwort-1") is False
    assert seen[0].method == "POST"
    assert "Huber" not in str(seen[0].url)
    assert b"Huber-Kennwort-1" in seen[0].content
    await d.close()


def test_rejects_non_http_url() -> None:
    with pytest.raises(ValueError, match="http"):
        HttpDirectory("file:///etc/passwd")
