"""Run an ASGI app under a real uvicorn server on a loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serve_asgi(app: Any, port_override: int = 0, **config: Any) -> AsyncIterator[str]:
    cfg = uvicorn.Config(
        app, host="127.0.0.1", port=port_override, log_level="warning", lifespan="on", access_log=False,
        proxy_headers=False, server_header=False, date_header=False, **config
    )
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve())
    for _ in range(500):
        if server.started or task.done():
            break
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
        raise RuntimeError("server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
