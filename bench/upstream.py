"""The benchmark's small JSON upstream: a pure ASGI app, so that it is never the bottleneck.

With the query string ``bench-echo`` it answers the ``X-Portal-Assertion`` it received
instead (the bench's probe: is the full path really forwarded, and which binding signed it).
"""

from __future__ import annotations

import json
from typing import Any

BODY = json.dumps({"status": "ok", "network": "all systems normal", "region": "AT", "cells": 4211}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


def _echo(scope: dict[str, Any]) -> bytes:
    received = dict(scope["headers"])
    return json.dumps({"assertion": received.get(b"x-portal-assertion", b"").decode()}).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["query_string"] == b"bench-echo":
        body = _echo(scope)
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
