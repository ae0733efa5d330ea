"""Run an ASGI app under a real uvicorn server on a loopback port, in the test's loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


async def serve_uvicorn(server: uvicorn.Server) -> None:
    # uvicorn answers a failed bind with sys.exit(1). A SystemExit out of a fixture is not a
    # test outcome to pytest: the fixture stays half set up and every later test that uses it
    # on the same worker errors with a bare AssertionError. Make it this test's error.
    try:
        await server.serve()
    except SystemExit as exc:
        raise RuntimeError(f"uvicorn could not start on 127.0.0.1:{server.config.port} (exit {exc.code})") from None


@asynccontextmanager
async def serve_asgi(app: Any, port_override: int = 0, **config: Any) -> AsyncIterator[str]:
    cfg = uvicorn.Config(
        app, host="127.0.0.1", port=port_override, log_level="warning", lifespan="on", access_log=False,
        proxy_headers=False, server_header=False, date_header=False, **config
    )
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(serve_uvicorn(server))
    # Startup (keys, database, policy) can take long on a loaded machine: wait for
    # the server's own signal, bounded generously, and say which way it failed.
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 60
    while not (server.started or task.done()) and loop.time() < give_up:
        await asyncio.sleep(0.01)
    if task.done():
        task.result()
        raise RuntimeError("server did not start")
    if not server.started:
        server.should_exit = True
        raise RuntimeError("server did not start within 60 s")
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
