"""The gateway's own credentials never reach a backend (issue 8, point 2).

A hostile or compromised backend keeps whatever the gateway sends it. The signed
assertion it gets is bound to one audience, method and path; the session cookie
or ``pgs_`` bearer the gateway checked works everywhere. Each test logs in for
real, sends the credential the way a browser or an API client would, and reads the
exact bytes that reached a raw recording backend on a loopback socket: the
credential must be absent, the client's other cookies intact, and a route that
opts in (``pass_authorization = true``) must get the client's own Authorization.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from tests.attacks.conftest import Recorder, raw_one
from tests.integration.conftest import ROOT, portal_settings
from tests.integration.test_roles import login_anna
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

LINE = "436641000001"
USAGE = f"/api/lines/{LINE}/usage"
#: The route the test table opts in to pass the client's Authorization.
TARIFF = f"/api/lines/{LINE}/tariff"
SESSION_COOKIE = "__Host-pg_session"  # cookie_secure = true, as in production

# One gateway and one login for the module: each test reads what its own request did.
pytestmark = pytest.mark.asyncio(loop_scope="module")


@dataclass
class Backend:
    url: str
    recorder: Recorder
    token: str | None = None

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=20)

    def last(self) -> bytes:
        assert self.recorder.requests, "nothing reached the backend"
        return self.recorder.requests[-1]

    def last_headers(self) -> list[tuple[str, str]]:
        return [(k.lower(), v) for k, v in self.recorder.heads()[-1]]


def opted_in_routes(tmp_path: Path) -> Path:
    """config/routes.toml with GET tariff opted in to pass the client's Authorization."""
    text = (ROOT / "config" / "routes.toml").read_text()
    anchor = 'path = "/api/lines/{msisdn}/tariff"\naction = "view_tariff"\n'
    assert text.count(anchor) == 1
    path = tmp_path / "routes.toml"
    path.write_text(text.replace(anchor, anchor + "pass_authorization = true\n"))
    return path


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def backend(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Backend]:
    tmp_path = tmp_path_factory.mktemp("credentials")
    recorder = Recorder()
    server = await asyncio.start_server(recorder.handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    gw_port = free_port()
    settings = portal_settings(
        tmp_path,
        gw_port,
        f"http://127.0.0.1:{port}",
        **{"server.cookie_secure": True, "routes.path": str(opted_in_routes(tmp_path))},
    )
    app = build_app(settings, registry=CollectorRegistry(), access_log_stream=io.StringIO())
    try:
        async with serve_asgi(app, port_override=gw_port) as url:
            yield Backend(url, recorder)
    finally:
        server.close()
        await server.wait_closed()


async def anna_token(backend: Backend) -> str:
    if backend.token is None:
        async with backend.client() as c:
            bearer: str = (await login_anna(c))["Authorization"]
        backend.token = bearer.removeprefix("Bearer ")
    assert backend.token.startswith("pgs_")
    return backend.token


def session_id(token: str) -> str:
    """The cookie carries the session id, the bearer the same id behind ``pgs_``."""
    return token.removeprefix("pgs_")


async def send(backend: Backend, path: str, headers: str) -> int:
    data = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{headers}Connection: close\r\n\r\n".encode("latin-1")
    r = await raw_one(backend.url, data)
    assert r is not None
    return r.status


def cookie_headers(backend: Backend) -> list[str]:
    return [v for k, v in backend.last_headers() if k == "cookie"]


# ------------------------------------------------------------------ the session cookie
async def test_session_cookie_is_cut_out_other_cookies_stay_byte_for_byte(backend: Backend) -> None:
    sid = session_id(await anna_token(backend))
    cookie = f'theme=dark; {SESSION_COOKIE}={sid}; consent={{"a":1}}; pg_lang=de'
    assert await send(backend, USAGE, f"Cookie: {cookie}\r\n") == 200  # authenticated by the cookie
    assert sid.encode() not in backend.last()
    assert cookie_headers(backend) == ['theme=dark; consent={"a":1}; pg_lang=de']


async def test_only_the_session_cookie_means_no_cookie_header(backend: Backend) -> None:
    sid = session_id(await anna_token(backend))
    assert await send(backend, USAGE, f"Cookie: {SESSION_COOKIE}={sid}\r\n") == 200
    assert sid.encode() not in backend.last()
    assert cookie_headers(backend) == []


@pytest.mark.parametrize(
    "spelling",
    [
        "{name}={sid}; {name}={sid}",  # twice
        "a=1;{name}={sid};b=2",  # no spaces
        "a=1;   {name}  =  {sid}  ; b=2",  # spaces around the pair and '='
        'a=1; {name}="{sid}"',  # quoted value
        "a=1; \t{name}={sid}",  # a tab before the name
        "a=1; \xa0{name}={sid}",  # NBSP: latin-1 text strip() removes it, bytes strip() does not
    ],
    ids=["twice", "no-spaces", "padded", "quoted", "tab", "nbsp"],
)
async def test_session_cookie_in_any_spelling_never_leaves(backend: Backend, spelling: str) -> None:
    sid = session_id(await anna_token(backend))
    before = len(backend.recorder.requests)
    status = await send(backend, USAGE, f"Cookie: {spelling.format(name=SESSION_COOKIE, sid=sid)}\r\n")
    if status == 200:
        assert sid.encode() not in backend.last()
    else:  # not read as a login: then nothing reached the backend at all
        assert len(backend.recorder.requests) == before
        assert status == 401


async def test_several_cookie_headers_each_lose_the_session_cookie(backend: Backend) -> None:
    sid = session_id(await anna_token(backend))
    headers = f"Cookie: a=1\r\nCookie: {SESSION_COOKIE}={sid}; b=2\r\n"
    assert await send(backend, USAGE, headers) == 200
    assert sid.encode() not in backend.last()
    assert "; ".join(cookie_headers(backend)) == "a=1; b=2"


async def test_public_route_gets_neither_cookie_nor_bearer(backend: Backend) -> None:
    token = await anna_token(backend)
    sid = session_id(token)
    headers = f"Authorization: Bearer {token}\r\nCookie: {SESSION_COOKIE}={sid}; theme=dark\r\n"
    assert await send(backend, "/api/status", headers) == 200
    raw = backend.last()
    assert sid.encode() not in raw
    assert b"authorization" not in raw.lower()
    assert cookie_headers(backend) == ["theme=dark"]


async def test_public_route_gets_no_oidc_bearer(backend: Backend) -> None:
    # A public route runs no authenticator, so no token is checked: whatever a client
    # sends as a bearer (an access token of the IdP in real life) stays at the gateway.
    jwt = "eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwczovL2lkcC5leGFtcGxlIn0.c2lnbmF0dXJl"
    assert await send(backend, "/api/status", f"Authorization: Bearer {jwt}\r\n") == 200
    assert jwt.encode() not in backend.last()


# ------------------------------------------------------------------ Authorization
async def test_session_bearer_is_not_forwarded(backend: Backend) -> None:
    token = await anna_token(backend)
    assert await send(backend, USAGE, f"Authorization: Bearer {token}\r\n") == 200
    raw = backend.last()
    assert session_id(token).encode() not in raw
    assert not [k for k, _ in backend.last_headers() if k == "authorization"]
    # The backend still learns who asked: from the gateway's signed statement.
    assert [k for k, _ in backend.last_headers()].count("x-portal-assertion") == 1


async def test_other_authorization_is_not_forwarded_by_default(backend: Backend) -> None:
    sid = session_id(await anna_token(backend))
    headers = f"Cookie: {SESSION_COOKIE}={sid}\r\nAuthorization: Basic YmFja2VuZDpzZWNyZXQ=\r\n"
    # A non-Bearer scheme leaves the cookie in charge (the session authenticator's rule).
    assert await send(backend, USAGE, headers) == 200
    assert b"YmFja2VuZDpzZWNyZXQ=" not in backend.last()


async def test_opted_in_route_gets_the_clients_own_authorization(backend: Backend) -> None:
    sid = session_id(await anna_token(backend))
    headers = f"Cookie: {SESSION_COOKIE}={sid}\r\nAuthorization: Basic YmFja2VuZDpzZWNyZXQ=\r\n"
    assert await send(backend, TARIFF, headers) == 200
    assert ("authorization", "Basic YmFja2VuZDpzZWNyZXQ=") in backend.last_headers()
    assert sid.encode() not in backend.last()  # the cookie is still cut


async def test_opted_in_route_never_gets_a_session_token(backend: Backend) -> None:
    token = await anna_token(backend)
    assert await send(backend, TARIFF, f"Authorization: Bearer {token}\r\n") == 200
    assert session_id(token).encode() not in backend.last()
    assert not [k for k, _ in backend.last_headers() if k == "authorization"]
    # Spelled so that the gateway does not read it as a session (the cookie logs in),
    # it still carries one: it stays at the gateway all the same.
    cookie = f"Cookie: {SESSION_COOKIE}={session_id(token)}\r\n"
    for spelling in (f"Token {token}", f"Bearer\t{token}", f"Basic x, Bearer {token}"):
        assert await send(backend, TARIFF, f"{cookie}Authorization: {spelling}\r\n") == 200, spelling
        assert session_id(token).encode() not in backend.last(), spelling
