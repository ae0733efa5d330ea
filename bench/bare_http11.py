"""Baseline: a bare pure ASGI forwarder over the gateway's own HTTP/1.1 client
(gateway/http11.py), the fastest client measured here. It forwards the client's
headers without the hop-by-hop ones and streams the answer; nothing else."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

from gateway.http11 import Http11Pool

UPSTREAM = urlsplit(os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:18081"))
_HOP = {b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade", b"content-length"}


class Proxy:
    def __init__(self) -> None:
        self.pool: Http11Pool | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.pool = Http11Pool(UPSTREAM.hostname or "127.0.0.1", UPSTREAM.port or 80)
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert self.pool is not None
                    await self.pool.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.pool is not None
        headers = [(k, v) for k, v in scope["headers"] if k not in _HOP]
        r = await self.pool.request(scope["method"], scope["raw_path"], headers)
        try:
            out = [(k, v) for k, v in r.headers if k not in _HOP]
            await send({"type": "http.response.start", "status": r.status, "headers": out})
            async for chunk in r.iter_chunks():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            r.release()


app = Proxy()
