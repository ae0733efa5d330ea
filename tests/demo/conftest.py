from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from joserfc.jwk import OKPKey

from demo.backend import create_app
from tests.demo.helpers import JwksServer, Signer, new_ed25519

START = 1_793_000_000.0  # 2026-10-26 07:33 UTC


class FakeClock:
    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def key() -> OKPKey:
    return new_ed25519("gw-key-1")


@pytest.fixture
def jwks(key: OKPKey) -> Iterator[JwksServer]:
    server = JwksServer().start()
    server.publish(key)
    yield server
    server.stop()


@pytest.fixture
def signer(key: OKPKey) -> Signer:
    return Signer(key)


@pytest.fixture
def app(jwks: JwksServer, clock: FakeClock):  # type: ignore[no-untyped-def]
    return create_app(jwks_url=jwks.url, audience="portal", clock=clock)


@pytest.fixture
async def client(app) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.test") as c:
        yield c


class Api:
    """Sends requests with a fresh assertion bound to method and path."""

    def __init__(self, client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> None:
        self.client = client
        self.signer = signer
        self.clock = clock

    async def request(
        self,
        method: str,
        path: str,
        *,
        parts: list[str] | None = None,
        headers: dict[str, str] | None = None,
        **kwargs: object,
    ) -> httpx.Response:
        token = self.signer.sign(method, path.split("?")[0], now=self.clock(), parts=parts)
        all_headers = {"X-Portal-Assertion": token, **(headers or {})}
        return await self.client.request(method, path, headers=all_headers, **kwargs)  # type: ignore[arg-type]

    async def get(self, path: str, **kwargs: object) -> httpx.Response:
        return await self.request("GET", path, **kwargs)  # type: ignore[arg-type]


@pytest.fixture
def api(client: httpx.AsyncClient, signer: Signer, clock: FakeClock) -> Api:
    return Api(client, signer, clock)
