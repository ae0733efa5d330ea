"""The benchmark's small JSON upstream: a pure ASGI app, so that it is never the bottleneck."""

from __future__ import annotations

import json
from typing import Any

BODY = json.dumps({"status": "ok", "network": "all systems normal", "region": "AT", "cells": 4211}).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
