"""Stage 1 over a real socket: every ambiguous path is a 400 and never reaches the backend.

Requests are written byte for byte on a raw socket so that no client library
"helpfully" normalises the path before the gateway sees it.
"""

from __future__ import annotations

import asyncio

import pytest

from gateway.errors import BadRequest
from gateway.middleware.canonicalize import canonical_segments
from tests.upstream.conftest import Gateway


async def raw_request(gw: Gateway, target: bytes, headers: bytes = b"") -> tuple[int, bytes]:
    host, port = gw.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET " + target + b" HTTP/1.1\r\nHost: gw.example\r\nConnection: close\r\n" + headers + b"\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    status = int(data.split(b" ", 2)[1])
    return status, data


AMBIGUOUS = {
    "encoded slash": b"/echo/a%2fb",
    "encoded slash upper": b"/echo/a%2Fb",
    "encoded backslash": b"/echo/a%5cb",
    "raw backslash": b"/echo/a\\b",
    "dot segment": b"/echo/./a",
    "dot-dot segment": b"/echo/a/../b",
    "trailing dot-dot": b"/echo/a/..",
    "encoded dot-dot": b"/echo/%2e%2e/a",
    "half encoded dot-dot": b"/echo/.%2e/a",
    "double slash": b"/echo//a",
    "leading double slash": b"//echo/a",
    "encoded NUL": b"/echo/a%00b",
    "encoded control char": b"/echo/a%0ab",
    "invalid utf-8": b"/echo/%ff%fe",
    "overlong utf-8 slash": b"/echo/%c0%af",
    "double encoding": b"/echo/%252e%252e",
    "needless escape of a letter": b"/echo/%61",
    "bad escape": b"/echo/a%zz",
    "truncated escape": b"/echo/a%2",
    "semicolon path parameter": b"/echo/a;jsessionid=1",
    "tomcat dot-dot-semicolon": b"/echo/..;/a",
    "overlong path": b"/echo/" + b"a" * 3000,
}


@pytest.mark.parametrize("target", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
async def test_ambiguous_path_is_400_and_not_forwarded(gateway: Gateway, target: bytes) -> None:
    status, data = await raw_request(gateway, target)
    assert status == 400
    assert b'"raw_path"' not in data  # the upstream never answered


@pytest.mark.parametrize(
    ("target", "forwarded"),
    [
        (b"/echo/caf%C3%A9", "/echo/caf%C3%A9"),
        (b"/echo/a%20b", "/echo/a%20b"),
        (b"/echo/x?y=../../etc&z=%2F", "/echo/x?y=../../etc&z=%2F"),
    ],
)
async def test_canonical_paths_are_forwarded_byte_for_byte(gateway: Gateway, target: bytes, forwarded: str) -> None:
    import json

    status, data = await raw_request(gateway, target)
    assert status == 200
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    assert body["raw_path"] == forwarded


async def test_query_never_takes_part_in_matching(gateway: Gateway) -> None:
    status, _ = await raw_request(gateway, b"/nothing?/echo")
    assert status == 404


async def test_fragment_never_takes_part_in_matching_nor_is_forwarded(gateway: Gateway) -> None:
    import json

    status, _ = await raw_request(gateway, b"/nothing#/echo")
    assert status in (400, 404)
    status, data = await raw_request(gateway, b"/echo#frag")
    if status == 200:
        assert json.loads(data.split(b"\r\n\r\n", 1)[1])["raw_path"] == "/echo"
    else:
        assert status == 400


async def test_trusted_proxy_chain_read_from_the_right(gateway: Gateway) -> None:
    # The peer (127.0.0.1) is not trusted in this fixture: its XFF is ignored.
    import json

    status, data = await raw_request(gateway, b"/echo", b"X-Forwarded-For: 1.2.3.4, 10.0.0.5\r\n")
    body = json.loads(data.split(b"\r\n\r\n", 1)[1])
    headers = {k.lower(): v for k, v in body["headers"]}
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_segments_decoded_once() -> None:
    assert canonical_segments(b"/api/lines/436641000020/usage", 2048) == ("api", "lines", "436641000020", "usage")
    assert canonical_segments(b"/", 2048) == ()
    assert canonical_segments(b"/a/caf%C3%A9", 2048) == ("a", "café")
    assert canonical_segments(b"/a/", 2048) == ("a", "")


@pytest.mark.parametrize("target", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
def test_segments_reject(target: bytes) -> None:
    with pytest.raises(BadRequest):
        canonical_segments(target, 2048)
