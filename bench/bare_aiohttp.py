"""Baseline: the fastest bare Python proxy measured here, a pure ASGI streaming forwarder
over aiohttp. It does the least a correct reverse proxy must do (forward the client's
headers without the hop-by-hop ones, stream the answer back) and nothing else: no
canonicalization, routing, forwarding headers, request ids, logging or metrics."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:18081")
_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade"}


class Proxy:
    def __init__(self) -> None:
        self.session: aiohttp.ClientSession | None = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                msg = await receive()
                if msg["type"] == "lifespan.startup":
                    self.session = aiohttp.ClientSession(
                        connector=aiohttp.TCPConnector(limit=100), auto_decompress=False
                    )
                    await send({"type": "lifespan.startup.complete"})
                else:
                    assert self.session is not None
                    await self.session.close()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        assert self.session is not None
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]
                   if k.decode("latin-1") not in _HOP]
        async with self.session.request(scope["method"], UPSTREAM + scope["raw_path"].decode(),
                                        headers=headers) as r:
            headers = [(k.lower(), v) for k, v in r.raw_headers if k.lower().decode() not in _HOP]
            await send({"type": "http.response.start", "status": r.status, "headers": headers})
            async for chunk in r.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})


app = Proxy()
