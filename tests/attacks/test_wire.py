"""Path and framing confusion through real sockets (raw bytes, nothing normalised).

Each attack must either be refused by the gateway (400/404/405/413/431) or reach the
backend as exactly the request the policy decided on: the demo backend echoes the
method and path it received and only answers with a valid assertion (htm/htu)."""

from __future__ import annotations

import pytest

from tests.attacks.conftest import Recorded, raw_exchange, raw_one
from tests.integration.conftest import Portal
from tests.integration.test_roles import login_anna

ANNA_LINE = "436641000001"


async def _anna(portal: Portal | Recorded) -> str:
    async with portal.client() as c:
        return (await login_anna(c))["Authorization"]


def _req(line: str, auth: str, extra: str = "", version: str = "HTTP/1.1", host: bool = True) -> bytes:
    head = f"{line} {version}\r\n"
    if host:
        head += "Host: 127.0.0.1\r\n"
    head += f"Authorization: {auth}\r\nConnection: close\r\n{extra}\r\n"
    return head.encode("latin-1")


CONFUSED_PATHS = [
    "/API/lines/436641000001/usage",
    "/api/LINES/436641000001/usage",
    "/api/lines/436641000001/USAGE",
    "/api/lines/436641000001/usage/",
    "/api/lines/436641000001/usage/..",
    "/api/lines/436641000001/usage/.",
    "/api/lines/436641000001/./usage",
    "/api/lines/436641000020/../436641000001/usage",
    "/api/lines/436641000001/usage/%2e%2e",
    "/api/lines/436641000001/usage/%2E",
    "/api/lines/436641000001/%2e%2e/436641000020/usage",
    "/api/lines/436641000001%2fusage",
    "/api/lines/436641000001/usage%00",
    "/api/lines/436641000001/usage;x=1",
    "/api/lines/436641000001/usage%3bx=1",
    "//api/lines/436641000001/usage",
    "/api//lines/436641000001/usage",
    "/api/lines/436641000001/usag%65",
    "/api/lines/%34%33%36641000001/usage",
    "/api/lines/436641000001/usage%20",
    "/api/lines/436641000001/usage%09",
    "/api/lines/436641000001%0a/usage",
    # Unicode lookalikes: fullwidth digits, Arabic-Indic digits, Cyrillic 'а' in 'api'.
    "/api/lines/%EF%BC%94%EF%BC%93%EF%BC%96641000001/usage",
    "/api/lines/%D9%A4%D9%A3%D9%A6641000001/usage",
    "/%D0%B0pi/lines/436641000001/usage",
    "/api/lines/436641000001/us%C9%91ge",
    # Overlong UTF-8 for '.' and '/'
    "/api/lines/436641000001/usage/%C0%AE%C0%AE",
    "/api/lines/436641000001%C0%AFusage",
    "/api/lines/436641000001/usage/%25%32%65",
    "/api/lines/436641000001\\usage",
    "/api/lines/436641000001/usage#frag",
]


@pytest.mark.parametrize("path", CONFUSED_PATHS)
async def test_confused_paths_never_reach_the_backend_as_something_else(portal: Portal, path: str) -> None:
    auth = await _anna(portal)
    r = await raw_one(portal.url, _req(f"GET {path}", auth))
    assert r is not None
    if r.status == 200:
        # Only acceptable if the backend saw exactly the path we sent and it is Anna's canonical route.
        received = r.json()["received"]
        # (a fragment is dropped by the server's parser: the same resource)
        assert received["path"] == f"/api/lines/{ANNA_LINE}/usage"  # type: ignore[index]
        assert path.split("#")[0] == f"/api/lines/{ANNA_LINE}/usage"
    else:
        assert r.status in (400, 404, 405), (path, r.status, r.body)
        assert b"Traceback" not in r.body


async def test_canonical_path_still_works_through_raw_socket(portal: Portal) -> None:
    auth = await _anna(portal)
    r = await raw_one(portal.url, _req(f"GET /api/lines/{ANNA_LINE}/usage", auth))
    assert r is not None and r.status == 200, r
    assert r.json()["received"]["path"] == f"/api/lines/{ANNA_LINE}/usage"  # type: ignore[index]


async def test_absolute_form_target_does_not_change_what_is_forwarded(recorded: Recorded) -> None:
    auth = await _anna(recorded)
    r = await raw_one(recorded.url, _req(f"GET http://evil.example/api/lines/{ANNA_LINE}/usage", auth))
    assert r is not None
    if r.status == 200:
        line = recorded.recorder.request_lines()[-1]
        assert line == f"GET /api/lines/{ANNA_LINE}/usage HTTP/1.1"
        assert b"evil.example" not in recorded.recorder.requests[-1]
    else:
        assert r.status == 400
    # Absolute form pointing to another line: never Anna's decision forwarded elsewhere.
    before = len(recorded.recorder.requests)
    r = await raw_one(recorded.url, _req("GET http://127.0.0.1/api/lines/436641000020/usage", auth))
    assert r is not None and r.status in (400, 404)
    assert len(recorded.recorder.requests) == before


async def test_http10_without_host(portal: Portal) -> None:
    auth = await _anna(portal)
    r = await raw_one(portal.url, _req(f"GET /api/lines/{ANNA_LINE}/usage", auth, version="HTTP/1.0", host=False))
    assert r is not None and r.status in (200, 400)
    if r.status == 200:
        assert r.json()["received"]["path"] == f"/api/lines/{ANNA_LINE}/usage"  # type: ignore[index]


async def test_duplicate_host_headers_are_refused(recorded: Recorded) -> None:
    auth = await _anna(recorded)
    before = len(recorded.recorder.requests)
    r = await raw_one(
        recorded.url, _req(f"GET /api/lines/{ANNA_LINE}/usage", auth, "Host: evil.example\r\n")
    )
    assert r is not None and r.status == 400, r
    assert len(recorded.recorder.requests) == before


async def test_very_long_header_is_refused_without_500(portal: Portal) -> None:
    auth = await _anna(portal)
    r = await raw_one(portal.url, _req(f"GET /api/lines/{ANNA_LINE}/usage", auth, "X-Long: " + "a" * 200_000 + "\r\n"))
    # uvicorn's httptools protocol has no header size limit: the gateway must refuse it
    # itself rather than copy 200 kB of header to the backend on every request.
    assert r is not None and r.status in (400, 431), r.status
    assert r.json()["reason"] == "headers_too_large"


async def test_very_long_path_is_refused(portal: Portal) -> None:
    auth = await _anna(portal)
    r = await raw_one(portal.url, _req("GET /api/lines/" + "1" * 5000 + "/usage", auth))
    assert r is not None and r.status in (400, 414)


async def test_many_headers_do_not_crash(portal: Portal) -> None:
    auth = await _anna(portal)
    extra = "".join(f"X-H{i}: v\r\n" for i in range(2000))
    r = await raw_one(portal.url, _req(f"GET /api/lines/{ANNA_LINE}/usage", auth, extra))
    assert r is None or r.status in (200, 400, 431)


SMUGGLING = [
    # CL + TE
    "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
    "Transfer-Encoding: chunked\r\nContent-Length: 4\r\n",
    # TE obfuscation
    "Transfer-Encoding: xchunked\r\nContent-Length: 4\r\n",
    "Transfer-Encoding: xchunked\r\n",
    "Transfer-Encoding: chunked, identity\r\n",
    "Transfer-Encoding: identity, chunked\r\nContent-Length: 4\r\n",
    "Transfer-Encoding : chunked\r\n",
    "Transfer-Encoding:\tchunked\r\nContent-Length: 4\r\n",
    "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n",
    " Transfer-Encoding: chunked\r\n",
    "Transfer_Encoding: chunked\r\nContent-Length: 4\r\n",
    # two Content-Length
    "Content-Length: 4\r\nContent-Length: 40\r\n",
    "Content-Length: 4, 40\r\n",
    "Content-Length: +4\r\n",
    "Content-Length: -1\r\n",
    "Content-Length: 0x4\r\n",
]


@pytest.mark.parametrize("headers", SMUGGLING)
async def test_request_smuggling_is_refused_or_harmless(recorded: Recorded, headers: str) -> None:
    auth = await _anna(recorded)
    # The body hides a second request to someone else's line.
    hidden = (
        "GET /api/lines/436641000020/usage HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: {auth}\r\n\r\n"
    )
    body = "0\r\n\r\n" + hidden
    data = (
        f"POST /api/lines/{ANNA_LINE}/barrings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\n{headers}\r\n{body}"
    ).encode()
    responses = await raw_exchange(recorded.url, data, timeout=2.0)
    for r in responses:
        assert r.status < 500 or r.status == 504, (headers, r.status, r.body)
    lines = recorded.recorder.request_lines()
    # The hidden request must never reach the backend, neither as its own request ...
    assert not any("436641000020" in line for line in lines), lines
    # ... nor smuggled inside a forwarded body that the backend could parse as a second request.
    for req in recorded.recorder.requests:
        head, _, fwd_body = req.partition(b"\r\n\r\n")
        assert b"436641000020" not in head
    # What did reach the backend is framed by the gateway itself: at most one length header.
    for pairs in recorded.recorder.heads():
        names = [k.lower() for k, _ in pairs]
        assert names.count("content-length") + names.count("transfer-encoding") <= 1, pairs
        assert names.count("host") <= 1, pairs



@pytest.mark.parametrize(
    "header",
    ["Transfer_Encoding: chunked", "Content_Length: 400", "Host_: evil.example", "Connection_: close",
     "Authorization_: Bearer x", "X_Original_URL: /api/lines/436641000020/usage"],
)
async def test_underscore_spellings_of_any_header_never_reach_the_backend(recorded: Recorded, header: str) -> None:
    """CGI/WSGI-style backends fold '_' into '-' (HTTP_TRANSFER_ENCODING): a `Transfer_Encoding`
    the gateway ignores but a backend honours is request smuggling by another name. Dropped,
    as nginx does by default (underscores_in_headers off)."""
    auth = await _anna(recorded)
    data = (
        f"POST /api/lines/{ANNA_LINE}/barrings HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
        f"Content-Type: application/json\r\nContent-Length: 2\r\n{header}\r\nConnection: close\r\n\r\n{{}}"
    ).encode()
    r = await raw_one(recorded.url, data)
    assert r is not None and r.status in (200, 400), r
    for pairs in recorded.recorder.heads():
        assert not any("_" in name for name, _ in pairs), pairs
