"""Data plane: forward an allowed request to its backend and stream the answer back.

Chosen by measurement (docs/benchmarks.md): a pure ASGI forwarder is an order
of magnitude faster here than a Starlette route over httpx, and our own HTTP/1.1
client (`gateway/http11.py`) costs less CPU per request than aiohttp's, so this
module speaks ASGI directly and keeps httpx and aiohttp off the hot path. It
knows nothing of authentication beyond the headers it is handed.

Bodies stream both ways (never fully buffered, except answers small enough to
send in one message); a request body over the limit is cut off with 413.
The client's errors are translated into our own at one boundary
(`_translate`), with the cause chained.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import Receive, Send

from gateway.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.http11 import (
    ConnectFailed,
    ConnectionClosed,
    Http11Pool,
    Http11Response,
    ReadTimeout,
    UpstreamIOError,
)
from gateway.middleware.canonicalize import CanonicalRequest
from gateway.settings import UpstreamSettings

__all__ = ["HOP_BY_HOP", "ClientGone", "Upstream", "UpstreamPool"]

#: RFC 9110 section 7.6.1 connection-specific fields, plus the legacy ones.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
    }
)
_RESPONSE_DROP = HOP_BY_HOP | {b"server", b"date"}
#: Removed from requests; the length headers are set again by the client from what we send.
_REQUEST_DROP = HOP_BY_HOP | {b"content-length", b"expect"}
#: Answers up to this size with a Content-Length are read and sent in one ASGI
#: message (fewer event-loop turns); larger ones stream chunk by chunk.
_SMALL_BODY = 64 * 1024
_CHUNK = 64 * 1024
_WATCH_AFTER = 0.2


class ClientGone(Exception):
    """The client disconnected; nothing can be answered."""


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base: str
    settings: UpstreamSettings


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def _translate(upstream: str, exc: UpstreamIOError) -> GatewayError:
    """Map the client's errors to ours (the caller chains the cause)."""
    if isinstance(exc, ReadTimeout) or (isinstance(exc, ConnectFailed) and exc.timeout):
        return UpstreamTimeout(detail=f"upstream {upstream} did not answer in time")
    if isinstance(exc, (ConnectFailed, ConnectionClosed)):
        return UpstreamUnavailable(detail=f"upstream {upstream}: {exc}")
    return UpstreamError(detail=f"upstream {upstream} sent an invalid answer")


class UpstreamPool:
    """One keep-alive connection pool per upstream.

    Created in the lifespan (`start`), closed in `close`; never at import.
    """

    def __init__(self, upstreams: Mapping[str, UpstreamSettings], *, max_body_bytes: int) -> None:
        self.upstreams = {
            name: Upstream(name, s.url.rstrip("/"), s) for name, s in upstreams.items()
        }
        self.max_body_bytes = max_body_bytes
        self._pools: dict[str, Http11Pool] = {}

    async def start(self) -> None:
        for name, up in self.upstreams.items():
            s = up.settings
            url = urlsplit(s.url)
            tls = url.scheme == "https"
            self._pools[name] = Http11Pool(
                url.hostname or "127.0.0.1",
                url.port or (443 if tls else 80),
                tls=tls,
                size=s.pool_size,
                connect_timeout=s.connect_timeout_seconds,
                read_timeout=s.read_timeout_seconds,
                keepalive=s.keepalive_seconds,
            )

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()

    async def forward(
        self,
        upstream_name: str,
        request: CanonicalRequest,
        headers: list[tuple[bytes, bytes]],
        extra_headers: list[tuple[bytes, bytes]],
        receive: Receive,
        send: Send,
        response_headers: list[tuple[bytes, bytes]],
    ) -> int:
        """Forward one request; return the status sent to the client.

        Raises a GatewayError (before anything was sent) for 4xx/5xx that the
        gateway itself produces; once the answer has started, errors end the
        stream instead.
        """
        pool = self._pools.get(upstream_name)
        if pool is None:
            raise UpstreamUnavailable(detail=f"upstream {upstream_name} is not started")
        out_headers, length, chunked = self._request_headers(request, headers, extra_headers)
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(detail=f"the request body is larger than {self.max_body_bytes} bytes")
        has_body = chunked or (length is not None and length > 0)
        target = request.path.encode("ascii")
        if request.query:
            target += b"?" + request.query
        body = self._body(receive) if has_body else None
        watch = _DisconnectWatch(receive) if not has_body else None
        try:
            response = await pool.request(
                request.method,
                target,
                out_headers,
                body,
                content_length=None if chunked else length,
                on_slow=watch.start if watch is not None else None,
                slow_after=_WATCH_AFTER,
            )
        except asyncio.CancelledError:
            if watch is not None and watch.client_gone:
                raise ClientGone from None
            raise
        except UpstreamIOError as exc:
            raise _translate(upstream_name, exc) from exc
        finally:
            if watch is not None:
                watch.stop()
        try:
            return await self._relay(upstream_name, response, receive, send, response_headers)
        finally:
            response.release()

    def _request_headers(
        self,
        request: CanonicalRequest,
        headers: list[tuple[bytes, bytes]],
        extra: list[tuple[bytes, bytes]],
    ) -> tuple[list[tuple[bytes, bytes]], int | None, bool]:
        drop = _REQUEST_DROP | _connection_tokens(headers)
        out: list[tuple[bytes, bytes]] = []
        length: int | None = None
        chunked = False
        for name, value in headers:
            if name in drop:
                if name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                elif name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise BadRequest("bad_content_length", "Content-Length is not a number") from None
                    if length < 0:
                        raise BadRequest("bad_content_length", "Content-Length is negative")
                continue
            out.append((name, value))
        if chunked and length is not None:
            # RFC 9112 6.3: both present is a request-smuggling signal; refuse.
            raise BadRequest("ambiguous_length", "both Transfer-Encoding and Content-Length were sent")
        host = request.host.encode()
        forwarded = b'for="' + request.client_ip.encode() + b'";proto=' + request.scheme.encode()
        if host:
            forwarded += b";host=" + host
        out.append((b"x-forwarded-for", request.forwarded_for.encode()))
        out.append((b"x-forwarded-proto", request.scheme.encode()))
        if host:
            out.append((b"x-forwarded-host", host))
        out.append((b"forwarded", forwarded))
        out.append((b"x-request-id", request.request_id.encode()))
        out.extend(extra)
        return out, length, chunked

    async def _body(self, receive: Receive) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                seen += len(chunk)
                if seen > self.max_body_bytes:
                    raise PayloadTooLarge(
                        detail=f"the request body is larger than {self.max_body_bytes} bytes"
                    )
                yield chunk
            if not message.get("more_body", False):
                return

    async def _relay(
        self,
        upstream: str,
        response: Http11Response,
        receive: Receive,
        send: Send,
        added: list[tuple[bytes, bytes]],
    ) -> int:
        headers = response.headers
        drop = _RESPONSE_DROP | _connection_tokens(headers)
        out = [h for h in headers if h[0] not in drop]
        out.extend(added)
        length = response.content_length()
        status = response.status
        try:
            if length is not None and length <= _SMALL_BODY:
                try:
                    body = await response.read()
                except UpstreamIOError as exc:
                    raise _translate(upstream, exc) from exc
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return status
            await send({"type": "http.response.start", "status": status, "headers": out})
            # A long answer: stop pulling from the backend as soon as the client is gone
            # (the server drops our sends silently then), and close that connection.
            gone = asyncio.ensure_future(_wait_disconnect(receive))
            try:
                async for chunk in response.iter_chunks():
                    if gone.done():
                        raise ClientGone
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except UpstreamIOError:
                # Headers are out: the only honest signal left is an incomplete body.
                # Ending without the final message makes the server abort the connection.
                raise ClientGone from None
            finally:
                gone.cancel()
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        except OSError as exc:
            raise ClientGone from exc


async def _wait_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


class _DisconnectWatch:
    """Cancels the request when the client goes away while the backend thinks.

    Watching costs a task per request, so it starts only when the client's
    `Http11Pool.request` reports the backend slow (`on_slow`, after
    `_WATCH_AFTER` seconds without an answer); most answers arrive before.
    Only used when the request body is fully read.
    """

    __slots__ = ("_task", "_watcher", "client_gone", "receive")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.client_gone = False
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                if self._task is not None:
                    self._task.cancel()
                return

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
        if self.client_gone and self._task is not None:
            self._task.uncancel()
