"""Bounded request bodies for the control plane (/auth, /auth/oidc).

/auth is not behind the data plane's body limit, and some of it answers before
anyone is logged in (the back-channel logout endpoint takes any caller). So a
body is judged by its declared size first and read chunk by chunk, stopping at
the limit: a declared or streamed 100 MB body never sits in memory.

The bytes read are kept on the request as Starlette keeps its own cached body,
so ``await request.form()`` / ``request.json()`` afterwards parse exactly these
bytes without reading the (consumed) stream again.
"""

from __future__ import annotations

from starlette.requests import Request

__all__ = ["read_bounded"]


async def read_bounded(request: Request, limit: int) -> bytes | None:
    """The whole body, or None when it is (declared or turns out) longer than `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            return None
    data = bytes(body)
    request._body = data  # Starlette's own cache: form() and json() read this, not the stream
    return data
