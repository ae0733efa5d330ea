"""Baseline: a bare Starlette route proxying over httpx (the model the hot path avoids)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

UPSTREAM = os.environ.get("BENCH_UPSTREAM", "http://127.0.0.1:18081")
_state: dict[str, httpx.AsyncClient] = {}


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    _state["client"] = httpx.AsyncClient(base_url=UPSTREAM, limits=httpx.Limits(max_connections=100))
    yield
    await _state["client"].aclose()


async def proxy(request: Request) -> Response:
    r = await _state["client"].request(request.method, request.url.path, content=await request.body())
    return Response(r.content, status_code=r.status_code, headers={"content-type": r.headers["content-type"]})


app = Starlette(routes=[Route("/{path:path}", proxy, methods=["GET", "POST"])], lifespan=lifespan)
