"""How an SMS leaves the gateway: a `SmsSender` protocol with two implementations.

- `OutboxSender` (embedded default): appends ``{"to", "text", "at"}`` as one JSON
  line to a file (``var/sms-outbox.jsonl``), so a person running the demo, or a
  test, can read the code.
- `HttpSmsSender`: POSTs ``{"to", "text"}`` with ``Authorization: Bearer <api key>``
  to the configured provider URL, with a timeout, and retries with exponential
  backoff on 5xx answers and connection errors. When the provider stays down it
  raises `ServiceUnavailable("sms_unavailable")` (a clear 503, not a silent loss).
  A 4xx answer is not retried (our request is wrong: configuration) and is a 503 too.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import httpx

from gateway.errors import ServiceUnavailable

__all__ = ["HttpSmsSender", "OutboxSender", "SmsSender"]

log = logging.getLogger("gateway.auth.sms")


class SmsSender(Protocol):
    async def send(self, to: str, text: str) -> None:
        """Hand one message to the network; raise ServiceUnavailable when that is impossible."""
        ...

    async def close(self) -> None: ...


class OutboxSender:
    def __init__(self, path: Path, *, clock: Callable[[], float]) -> None:
        self.path = path
        self._clock = clock
        self._lock = asyncio.Lock()

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")

    async def send(self, to: str, text: str) -> None:
        line = json.dumps({"to": to, "text": text, "at": self._clock()}, ensure_ascii=False)
        async with self._lock:
            try:
                await asyncio.to_thread(self._append, line)
            except OSError as exc:
                raise ServiceUnavailable("sms_unavailable", f"outbox {self.path}: {exc.strerror}") from exc

    async def close(self) -> None:
        return None


class HttpSmsSender:
    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        timeout: float = 5.0,
        retries: int = 2,
        backoff: float = 0.5,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url
        self._headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
        self._retries = retries
        self._backoff = backoff
        self._sleep = sleep
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(timeout), transport=transport)

    async def send(self, to: str, text: str) -> None:
        body = json.dumps({"to": to, "text": text}).encode()
        problem = ""
        for attempt in range(self._retries + 1):
            if attempt:
                await self._sleep(self._backoff * 2 ** (attempt - 1))
            try:
                response = await self._client.post(self.url, content=body, headers=self._headers)
            except httpx.HTTPError as exc:
                problem = type(exc).__name__
                continue
            if response.status_code < 400:
                return
            problem = f"HTTP {response.status_code}"
            if response.status_code < 500:
                break
        log.error("sms provider %s failed after %d attempt(s): %s", self.url, attempt + 1, problem)
        raise ServiceUnavailable("sms_unavailable", f"SMS provider failed: {problem}")

    async def close(self) -> None:
        await self._client.aclose()
