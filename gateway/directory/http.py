"""`HttpDirectory`: the directory asked from a backend service over HTTP (httpx).

The API it expects is documented (and implemented for reference) in
`gateway.directory.server`; in short ``GET {url}/lines/{msisdn}`` → a LineRecord as JSON or
404, and ``POST {url}/lines/{msisdn}/puk/verify`` → ``{"valid": bool}``.

Behaviour, and why:

- **Fail closed.** A timeout, a refused connection, a 5xx, an unexpected status or a
  malformed body raises `DirectoryUnavailable`; the gateway answers 503 rather than decide
  on facts it does not have. Errors are never cached, so the adapter recovers as soon as
  the service answers again.
- **TTL cache** of answers (``cache_ttl_seconds``), bounded (least recently used out first),
  per adapter instance. A 404 is cached for a shorter time (``negative_ttl_seconds``,
  default min(5 s, TTL)) so that a newly created customer or line shows up quickly while
  a flood of requests for unknown ids still does not reach the backend.
- **Proof checks are never cached** and always go to the service (POST, candidate in the body).
- Ids are percent-encoded as one path segment; "", "." and ".." are answered as unknown
  without asking, so no id can move the request to another path.
- Time comes from the injected ``clock`` (monotonic seconds).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import quote

import httpx

from gateway.directory.base import DirectoryUnavailable
from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)
from gateway.directory.wire import WireError, decode, decode_relations

__all__ = ["HttpDirectory"]

R = TypeVar("R")
_MISSING = object()
#: The value cached for a 404.
_ABSENT = object()


class HttpDirectory:
    def __init__(
        self,
        url: str,
        *,
        timeout_seconds: float = 2.0,
        cache_ttl_seconds: float = 30.0,
        negative_ttl_seconds: float | None = None,
        max_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"directory.url must be an http(s) URL, got {url!r}")
        self.url = url.rstrip("/")
        self.ttl = cache_ttl_seconds
        if negative_ttl_seconds is None:
            negative_ttl_seconds = min(5.0, cache_ttl_seconds)
        self.negative_ttl = negative_ttl_seconds
        self.max_entries = max_entries
        self._clock = clock
        self._cache: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._client = httpx.AsyncClient(
            base_url=self.url,
            timeout=httpx.Timeout(timeout_seconds),
            transport=transport,
            headers={"accept": "application/json", **(headers or {})},
            follow_redirects=False,
            limits=httpx.Limits(max_connections=100, max_keepalive_connections=20),
        )

    # -- transport -----------------------------------------------------------------------

    @staticmethod
    def _segment(value: str) -> str | None:
        if value in ("", ".", ".."):
            return None
        return quote(value, safe="")

    async def _request(self, method: str, path: str, body: Any = None) -> httpx.Response:
        try:
            return await self._client.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise DirectoryUnavailable(f"directory service {self.url}: {type(exc).__name__}") from exc

    def _cached(self, path: str) -> Any:
        entry = self._cache.get(path)
        if entry is None:
            return _MISSING
        expires, value = entry
        if self._clock() >= expires:
            del self._cache[path]
            return _MISSING
        self._cache.move_to_end(path)
        return value

    def _store(self, path: str, value: Any, ttl: float) -> None:
        if ttl <= 0:
            return
        self._cache[path] = (self._clock() + ttl, value)
        self._cache.move_to_end(path)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)

    async def _get(self, path: str) -> Any:
        """The decoded JSON at `path`, or `_ABSENT` for 404; cached."""
        value = self._cached(path)
        if value is not _MISSING:
            return value
        response = await self._request("GET", path)
        if response.status_code == 404:
            self._store(path, _ABSENT, self.negative_ttl)
            return _ABSENT
        data = self._json(response, path)
        self._store(path, data, self.ttl)
        return data

    def _json(self, response: httpx.Response, path: str) -> Any:
        if response.status_code != 200:
            status = response.status_code
            raise DirectoryUnavailable(f"directory service {self.url}: {path} answered {status}")
        try:
            return response.json()
        except ValueError as exc:
            raise DirectoryUnavailable(f"directory service {self.url}: {path}: not JSON") from exc

    async def _record(self, cls: type[R], prefix: str, key: str, suffix: str = "") -> R | None:
        segment = self._segment(key)
        if segment is None:
            return None
        path = f"/{prefix}/{segment}{suffix}"
        data = await self._get(path)
        if data is _ABSENT:
            return None
        return self._decode(cls, data, path)

    async def _records(self, cls: type[R], prefix: str, key: str, suffix: str) -> list[R]:
        segment = self._segment(key)
        if segment is None:
            return []
        path = f"/{prefix}/{segment}{suffix}"
        data = await self._get(path)
        if data is _ABSENT:
            return []
        if not isinstance(data, list):
            raise DirectoryUnavailable(f"directory service {self.url}: {path}: expected a list")
        return [self._decode(cls, item, path) for item in data]

    def _decode(self, cls: type[R], data: Any, path: str) -> R:
        try:
            return decode(cls, data)
        except WireError as exc:
            raise DirectoryUnavailable(f"directory service {self.url}: {path}: {exc}") from exc

    # -- Directory protocol ----------------------------------------------------------------

    async def person(self, person_id: str) -> PersonRecord | None:
        return await self._record(PersonRecord, "persons", person_id)

    async def relations(self, person_id: str) -> PersonRelations:
        segment = self._segment(person_id)
        if segment is None:
            return PersonRelations(person_id=person_id)
        path = f"/persons/{segment}/relations"
        data = await self._get(path)
        if data is _ABSENT:
            return PersonRelations(person_id=person_id)
        try:
            return decode_relations(person_id, data)
        except WireError as exc:
            raise DirectoryUnavailable(f"directory service {self.url}: {path}: {exc}") from exc

    async def customer(self, number: str) -> CustomerRecord | None:
        return await self._record(CustomerRecord, "customers", number)

    async def contract(self, contract_id: str) -> ContractRecord | None:
        return await self._record(ContractRecord, "contracts", contract_id)

    async def line(self, msisdn: str) -> LineRecord | None:
        return await self._record(LineRecord, "lines", msisdn)

    async def invoice(self, number: str) -> InvoiceRecord | None:
        return await self._record(InvoiceRecord, "invoices", number)

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        return await self._records(InvoiceRecord, "contracts", contract_id, "/invoices")

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        return await self._record(VpnRecord, "vpns", vpn_id)

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        return await self._records(LineRecord, "customers", number, "/lines")

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        return await self._records(ContractRecord, "customers", number, "/contracts")

    async def _verify(self, path: str, candidate: str) -> bool:
        response = await self._request("POST", path, {"candidate": candidate})
        if response.status_code == 404:
            return False
        data = self._json(response, path)
        valid = data.get("valid") if isinstance(data, dict) else None
        if not isinstance(valid, bool):
            raise DirectoryUnavailable(f"directory service {self.url}: {path}: expected {{'valid': bool}}")
        return valid

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        segment = self._segment(customer_number)
        if segment is None:
            return False
        return await self._verify(f"/customers/{segment}/kundenkennwort/verify", candidate)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        segment = self._segment(msisdn)
        if segment is None:
            return False
        return await self._verify(f"/lines/{segment}/puk/verify", candidate)

    async def ping(self) -> None:
        self._json(await self._request("GET", "/health"), "/health")

    def clear_cache(self) -> None:
        self._cache.clear()

    async def close(self) -> None:
        await self._client.aclose()
