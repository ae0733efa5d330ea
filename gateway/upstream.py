"""Data plane: forward an allowed request to its backend and stream the answer back.

Chosen by measurement (docs/benchmarks.md): a pure ASGI forwarder over aiohttp
is ~15x faster here than a Starlette route over httpx, so this module speaks
ASGI directly and keeps httpx off the hot path. It knows nothing of
authentication beyond the headers it is handed.

Bodies stream both ways (never fully buffered, except answers small enough to
send in one message); a request body over the limit is cut off with 413.
Client errors of aiohttp are translated into our own errors at one boundary
(`_translate`), with the cause chained.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

import aiohttp
from yarl import URL

from gateway.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.middleware.canonicalize import CanonicalRequest
from gateway.settings import UpstreamSettings
from starlette.types import Receive, Send

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


def _translate(upstream: str, exc: BaseException) -> GatewayError:
    """Map aiohttp's errors to ours, the most specific first (the cause is chained by the caller)."""
    if isinstance(exc, (TimeoutError, aiohttp.ServerTimeoutError)):
        return UpstreamTimeout(detail=f"upstream {upstream} did not answer in time")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamUnavailable(detail=f"upstream {upstream} refused the connection")
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError, aiohttp.ClientPayloadError)):
        return UpstreamUnavailable(detail=f"upstream {upstream} closed the connection")
    if isinstance(exc, aiohttp.ClientResponseError):
        return UpstreamError(detail=f"upstream {upstream} sent an invalid response")
    return UpstreamError(detail=f"upstream {upstream} failed")


_UPSTREAM_ERRORS = (TimeoutError, aiohttp.ClientError)


class UpstreamPool:
    """One aiohttp session (connection pool with keep-alive) per upstream.

    Created in the lifespan (`start`), closed in `close`; never at import.
    """

    def __init__(self, upstreams: Mapping[str, UpstreamSettings], *, max_body_bytes: int) -> None:
        self.upstreams = {
            name: Upstream(name, s.url.rstrip("/"), s) for name, s in upstreams.items()
        }
        self.max_body_bytes = max_body_bytes
        self._sessions: dict[str, aiohttp.ClientSession] = {}

    async def start(self) -> None:
        for name, up in self.upstreams.items():
            s = up.settings
            connector = aiohttp.TCPConnector(
                limit=s.pool_size,
                keepalive_timeout=s.keepalive_seconds,
                enable_cleanup_closed=False,
                ttl_dns_cache=60,
            )
            self._sessions[name] = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=s.connect_timeout_seconds, sock_read=s.read_timeout_seconds
                ),
                auto_decompress=False,
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Content-Type"),
                cookie_jar=aiohttp.DummyCookieJar(),
                trust_env=False,
            )

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

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
        session = self._sessions.get(upstream_name)
        if session is None:
            raise UpstreamUnavailable(detail=f"upstream {upstream_name} is not started")
        up = self.upstreams[upstream_name]
        out_headers, length, chunked = self._request_headers(request, headers, extra_headers)
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(detail=f"the request body is larger than {self.max_body_bytes} bytes")
        has_body = chunked or (length is not None and length > 0)
        url = URL(up.base + request.path + ("?" + request.query.decode("latin-1") if request.query else ""),
                  encoded=True)
        body_state = _BodyState()
        data = self._body(receive, body_state) if has_body else None

        watch = _DisconnectWatch(receive) if not has_body else None
        try:
            response = await self._request(session, up, request.method, url, out_headers, data)
        except asyncio.CancelledError:
            if watch is not None and watch.client_gone:
                raise ClientGone from None
            raise
        except GatewayError:
            if body_state.too_large:
                raise PayloadTooLarge(
                    detail=f"the request body is larger than {self.max_body_bytes} bytes"
                ) from None
            if body_state.client_gone:
                raise ClientGone from None
            raise
        finally:
            if watch is not None:
                watch.stop()
        try:
            return await self._relay(up, response, send, response_headers)
        finally:
            response.release()

    async def _request(
        self,
        session: aiohttp.ClientSession,
        up: Upstream,
        method: str,
        url: URL,
        headers: list[tuple[str, str]],
        data: AsyncIterator[bytes] | None,
    ) -> aiohttp.ClientResponse:
        try:
            return await session.request(
                method, url, headers=headers, data=data, allow_redirects=False, compress=None,
                chunked=None,
            )
        except _UPSTREAM_ERRORS as exc:
            raise _translate(up.name, exc) from exc

    def _request_headers(
        self,
        request: CanonicalRequest,
        headers: list[tuple[bytes, bytes]],
        extra: list[tuple[bytes, bytes]],
    ) -> tuple[list[tuple[str, str]], int | None, bool]:
        drop = HOP_BY_HOP | _connection_tokens(headers)
        out: list[tuple[str, str]] = []
        length: int | None = None
        chunked = False
        for name, value in headers:
            if name in drop:
                if name == b"transfer-encoding":
                    chunked = b"chunked" in value.lower()
                continue
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    raise BadRequest("bad_content_length", "Content-Length is not a number") from None
                if length < 0:
                    raise BadRequest("bad_content_length", "Content-Length is negative")
            if name == b"expect":
                continue
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        if chunked and length is not None:
            # RFC 9112 6.3: both present is a request-smuggling signal; refuse.
            raise BadRequest("ambiguous_length", "both Transfer-Encoding and Content-Length were sent")
        host = request.host
        forwarded = f'for="{request.client_ip}";proto={request.scheme}'
        if host:
            forwarded += f";host={host}"
        out.append(("X-Forwarded-For", request.forwarded_for))
        out.append(("X-Forwarded-Proto", request.scheme))
        if host:
            out.append(("X-Forwarded-Host", host))
        out.append(("Forwarded", forwarded))
        out.append(("X-Request-Id", request.request_id))
        for name, value in extra:
            out.append((name.decode("latin-1"), value.decode("latin-1")))
        return out, length, chunked

    async def _body(self, receive: Receive, state: _BodyState) -> AsyncIterator[bytes]:
        seen = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                state.client_gone = True
                raise ClientGone
            chunk: bytes = message.get("body", b"")
            if chunk:
                seen += len(chunk)
                if seen > self.max_body_bytes:
                    state.too_large = True
                    raise PayloadTooLarge(
                        detail=f"the request body is larger than {self.max_body_bytes} bytes"
                    )
                yield chunk
            if not message.get("more_body", False):
                return

    async def _relay(
        self, up: Upstream, response: aiohttp.ClientResponse, send: Send, added: list[tuple[bytes, bytes]]
    ) -> int:
        raw = response.raw_headers
        headers = [(k.lower(), v) for k, v in raw]
        drop = _RESPONSE_DROP | _connection_tokens(headers)
        headers = [h for h in headers if h[0] not in drop]
        headers.extend(added)
        length = response.content_length
        status = response.status
        try:
            if length is not None and length <= _SMALL_BODY:
                try:
                    body = await response.read()
                except _UPSTREAM_ERRORS as exc:
                    raise _translate(up.name, exc) from exc
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body, "more_body": False})
                return status
            await send({"type": "http.response.start", "status": status, "headers": headers})
            try:
                async for chunk in response.content.iter_chunked(_CHUNK):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            except _UPSTREAM_ERRORS:
                # Headers are out: the only honest signal left is an incomplete body.
                # Ending without the final message makes the server abort the connection.
                raise ClientGone from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return status
        except OSError as exc:
            raise ClientGone from exc


class _BodyState:
    __slots__ = ("client_gone", "too_large")

    def __init__(self) -> None:
        self.too_large = False
        self.client_gone = False


class _DisconnectWatch:
    """Cancels the request when the client goes away while the backend thinks.

    Watching costs a task per request, so it starts only once the backend has
    taken longer than `_WATCH_AFTER` (a timer handle is cheap; most answers
    arrive before it fires). Only used when the request body is fully read.
    """

    __slots__ = ("_handle", "_task", "_watcher", "client_gone", "receive")

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.client_gone = False
        self._task = asyncio.current_task()
        self._watcher: asyncio.Task[None] | None = None
        self._handle = asyncio.get_running_loop().call_later(_WATCH_AFTER, self._start)

    def _start(self) -> None:
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
        self._handle.cancel()
        if self._watcher is not None:
            self._watcher.cancel()
        if self.client_gone and self._task is not None:
            self._task.uncancel()
