"""Data plane: forward an allowed request to its backend and stream the answer back.

Chosen by measurement (docs/benchmarks.md): a pure ASGI forwarder is an order
of magnitude faster here than a Starlette route over httpx, and our own HTTP/1.1
client (`gateway/http11.py`) costs less CPU per request than aiohttp's, so this
module speaks ASGI directly and keeps httpx and aiohttp off the hot path. It
knows nothing of authentication beyond the headers it is handed.

Bodies stream both ways (never fully buffered, except answers small enough to
send in one message); a request body over the limit is cut off with 413.
Small request bodies (a declared length up to `_BUFFER_BODY`) are read before
a backend connection is taken, as nginx does, so a client that uploads slowly
holds no connection; longer ones stream under the client-body idle timeout.
Every request runs under one deadline (`request_timeout_seconds`). A backend
that fails after the answer's head went out cuts the client's connection off
(an incomplete body is the only honest signal left); that is counted as an
upstream error, never as the client going away.

The client's errors are translated into our own at one boundary
(`_translate`), with the cause chained.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import Receive, Send

from gateway.auth import cookies
from gateway.errors import (
    BadRequest,
    GatewayError,
    PayloadTooLarge,
    RequestTimeout,
    TransferCodingNotImplemented,
    UpstreamBusy,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from gateway.http11 import (
    ConnectFailed,
    ConnectionClosed,
    Http11Pool,
    Http11Response,
    PoolBusy,
    PoolTimeout,
    ReadTimeout,
    UpstreamIOError,
    WriteTimeout,
)
from gateway.metrics import GatewayMetrics
from gateway.middleware.canonicalize import CanonicalRequest
from gateway.settings import UpstreamSettings

__all__ = ["HOP_BY_HOP", "ClientGone", "Upstream", "UpstreamPool", "forwarded_header"]

log = logging.getLogger("gateway.upstream")

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
#: Also removed from 204 and 304 answers, which end with their head.
_NO_BODY_DROP = frozenset({b"content-length", b"transfer-encoding"})


def _sets_ours(set_cookie: bytes) -> bool:
    """A backend's Set-Cookie for one of the gateway's own cookies (session, CSRF, OIDC state).

    A backend must not be able to plant, replace or clear the browser's gateway session
    (session fixation, or a logout the gateway never made); such a header is dropped.
    """
    name = set_cookie.partition(b"=")[0].decode("latin-1").strip()
    return cookies.is_gateways(name)
#: Removed from requests; the length headers are set again by the client from what we send.
_REQUEST_DROP = HOP_BY_HOP | {b"content-length", b"expect"}
#: Answers up to this size with a Content-Length are read and sent in one ASGI
#: message (fewer event-loop turns, and the backend connection is free before
#: the client reads); larger ones stream chunk by chunk.
_SMALL_BODY = 64 * 1024
#: Request bodies up to this declared size are read before a connection is taken.
_BUFFER_BODY = 64 * 1024
_WATCH_AFTER = 0.2
#: RFC 7230 token: a Forwarded parameter value that needs no quotes.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


class ClientGone(Exception):
    """The client disconnected; nothing can be answered."""


@dataclass(frozen=True, slots=True)
class Upstream:
    name: str
    base: str
    settings: UpstreamSettings


class _Progress:
    """What the client has been sent so far (0 = nothing): decides 504 or a cut-off."""

    __slots__ = ("status",)

    def __init__(self) -> None:
        self.status = 0


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return frozenset(tokens)


def forwarded_header(client_ip: str, scheme: str, host: str) -> bytes:
    """RFC 7239 `Forwarded`: IPv6 nodes in brackets, values that are not tokens quoted."""
    node = f"[{client_ip}]" if ":" in client_ip else (client_ip or "unknown")
    value = f'for="{node}";proto={scheme}'
    if host:
        value += ";host=" + (host if _TOKEN.fullmatch(host) else _quoted(host))
    return value.encode("latin-1")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _translate(upstream: str, exc: UpstreamIOError) -> GatewayError:
    """Map the client's errors to ours, each with its own reason (the caller chains the cause)."""
    detail = f"upstream {upstream}: {exc}"
    if isinstance(exc, (PoolBusy, PoolTimeout)):
        return UpstreamBusy(exc.reason, detail)
    if isinstance(exc, (ReadTimeout, WriteTimeout)) or (isinstance(exc, ConnectFailed) and exc.timeout):
        return UpstreamTimeout(exc.reason, detail)
    if isinstance(exc, (ConnectFailed, ConnectionClosed)):
        return UpstreamUnavailable(exc.reason, detail)
    return UpstreamError(exc.reason, detail)


class UpstreamPool:
    """One keep-alive connection pool per upstream.

    Created in the lifespan (`start`), closed in `close`; never at import.
    `metrics` counts what only this module sees: answers cut off after their
    head was sent, and client bodies that stopped arriving.
    """

    def __init__(
        self,
        upstreams: Mapping[str, UpstreamSettings],
        *,
        max_body_bytes: int,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        self.upstreams = {
            name: Upstream(name, s.url.rstrip("/"), s) for name, s in upstreams.items()
        }
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
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
                max_pending=s.max_pending_requests,
                acquire_timeout=s.acquire_timeout_seconds,
                connect_timeout=s.connect_timeout_seconds,
                read_timeout=s.read_timeout_seconds,
                write_timeout=s.write_timeout_seconds,
                stream_idle_timeout=s.stream_idle_timeout_seconds,
                keepalive=s.keepalive_seconds,
                max_response_header_bytes=s.max_response_header_bytes,
            )

    async def close(self) -> None:
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            await pool.close()

    def pool(self, upstream_name: str) -> Http11Pool | None:
        """The started client of one upstream (tests look at its connections)."""
        return self._pools.get(upstream_name)

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
        settings = self.upstreams[upstream_name].settings
        out_headers, length, chunked = self._request_headers(request, headers, extra_headers)
        if length is not None and length > self.max_body_bytes:
            raise PayloadTooLarge(detail=f"the request body is larger than {self.max_body_bytes} bytes")
        target = request.path.encode("ascii")
        if request.query:
            target += b"?" + request.query
        progress = _Progress()
        try:
            async with asyncio.timeout(settings.request_timeout_seconds):
                return await self._exchange(
                    pool, upstream_name, settings, request, target, out_headers, length, chunked,
                    receive, send, response_headers, progress,
                )
        except TimeoutError:
            if progress.status:
                self._cut_off(upstream_name, request, "upstream_deadline")
                return progress.status
            raise UpstreamTimeout(
                "upstream_deadline", f"upstream {upstream_name}: no complete answer within the request deadline"
            ) from None
        except RequestTimeout:
            if self.metrics is not None:
                self.metrics.client_body_timeouts.labels(upstream_name).inc()
            raise

    async def _exchange(
        self,
        pool: Http11Pool,
        upstream_name: str,
        settings: UpstreamSettings,
        request: CanonicalRequest,
        target: bytes,
        out_headers: list[tuple[bytes, bytes]],
        length: int | None,
        chunked: bool,
        receive: Receive,
        send: Send,
        response_headers: list[tuple[bytes, bytes]],
        progress: _Progress,
    ) -> int:
        body: bytes | AsyncIterator[bytes] | None = None
        stream: _ClientBody | None = None
        if chunked or (length is not None and length > 0):
            stream = _ClientBody(receive, self.max_body_bytes, settings.body_idle_timeout_seconds)
            if (length is not None and length <= _BUFFER_BODY) or (chunked and pool.speaks_http10):
                # Read before a connection is taken (a slow uploader holds none), and
                # an HTTP/1.0 backend cannot read chunked: send it with a length.
                body = await stream.read_all()
                length = len(body)
            else:
                body = stream.chunks()
        watch = _DisconnectWatch(receive) if body is None or isinstance(body, bytes) else None
        try:
            response = await pool.request(
                request.method,
                target,
                out_headers,
                body,
                content_length=None if chunked and not isinstance(body, bytes) else length,
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
            if stream is not None:
                await stream.close()
        try:
            return await self._relay(upstream_name, request, response, receive, send, response_headers, progress)
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
        codings: list[bytes] = []
        for name, value in headers:
            if name in drop:
                if name == b"transfer-encoding":
                    # Every Transfer-Encoding header counts (two headers are one list).
                    codings += (c.strip().lower() for c in value.split(b","))
                    chunked = True
                elif name == b"content-length":
                    try:
                        length = int(value)
                    except ValueError:
                        raise BadRequest("bad_content_length", "Content-Length is not a number") from None
                    if length < 0:
                        raise BadRequest("bad_content_length", "Content-Length is negative")
                continue
            out.append((name, value))
        if chunked and codings != [b"chunked"]:
            raise TransferCodingNotImplemented(detail="Transfer-Encoding other than chunked")
        if chunked and length is not None:
            # RFC 9112 6.3: both present is a request-smuggling signal; refuse.
            raise BadRequest("ambiguous_length", "both Transfer-Encoding and Content-Length were sent")
        host = request.host.encode()
        out.append((b"x-forwarded-for", request.forwarded_for.encode()))
        out.append((b"x-forwarded-proto", request.scheme.encode()))
        if host:
            out.append((b"x-forwarded-host", host))
        out.append((b"forwarded", forwarded_header(request.client_ip, request.scheme, request.host)))
        out.append((b"x-request-id", request.request_id.encode()))
        out.extend(extra)
        return out, length, chunked

    async def _relay(
        self,
        upstream: str,
        request: CanonicalRequest,
        response: Http11Response,
        receive: Receive,
        send: Send,
        added: list[tuple[bytes, bytes]],
        progress: _Progress,
    ) -> int:
        headers = response.headers
        status = response.status
        drop = _RESPONSE_DROP | _connection_tokens(headers)
        if status == 204 or status == 304:
            # No body follows these heads (RFC 9112 6.3); a length announced on them (a 304
            # may repeat the representation's) would make the server wait for a body.
            drop = drop | _NO_BODY_DROP
        out = [h for h in headers if h[0] not in drop and not (h[0] == b"set-cookie" and _sets_ours(h[1]))]
        out.extend(added)
        if response.complete or ((length := response.content_length()) is not None and length <= _SMALL_BODY):
            try:
                body = await response.read()
            except UpstreamIOError as exc:
                raise _translate(upstream, exc) from exc
            # The backend connection goes back before the client reads: a slow
            # reader holds no backend connection.
            response.release()
            try:
                await send({"type": "http.response.start", "status": status, "headers": out})
                await send({"type": "http.response.body", "body": body, "more_body": False})
            except OSError as exc:
                raise ClientGone from exc
            return status
        try:
            await send({"type": "http.response.start", "status": status, "headers": out})
        except OSError as exc:
            raise ClientGone from exc
        progress.status = status
        # A long answer: stop pulling from the backend as soon as the client is gone
        # (the server drops our sends silently then), and close that connection.
        gone = asyncio.ensure_future(_wait_disconnect(receive))
        idle = self.upstreams[upstream].settings.stream_idle_timeout_seconds
        try:
            async for chunk in response.iter_chunks():
                if gone.done():
                    raise ClientGone
                # The stream idle timeout counts both ways (as Envoy's does): a client that
                # stops reading would otherwise hold this backend connection until the
                # request deadline, and a few such clients every connection of the pool.
                try:
                    async with asyncio.timeout(idle):
                        await send({"type": "http.response.body", "body": chunk, "more_body": True})
                except TimeoutError:
                    if self.metrics is not None:
                        self.metrics.client_read_timeouts.labels(upstream).inc()
                    log.warning("client stopped reading: answer cut off upstream=%s path=%s request_id=%s",
                                upstream, request.path, request.request_id)
                    raise ClientGone from None
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        except UpstreamIOError as exc:
            # The head is out: ending without the final message makes the server
            # abort the client's connection. The backend failed, not the client.
            self._cut_off(upstream, request, exc.reason)
        except OSError as exc:
            raise ClientGone from exc
        finally:
            gone.cancel()
        return status

    def _cut_off(self, upstream: str, request: CanonicalRequest, reason: str) -> None:
        log.warning(
            "upstream %s failed after the answer started (%s); the client's connection is cut off",
            upstream, reason, extra={"request_id": request.request_id},
        )
        if self.metrics is not None:
            self.metrics.upstream_errors.labels(upstream, reason).inc()


class _ClientBody:
    """The client's request body: size limit, and an idle timeout between chunks.

    One `asyncio.Timeout` per body, re-armed per chunk and disarmed while the
    chunk is being written to the backend (that wait is the write timeout's).
    """

    __slots__ = ("_gen", "idle", "limit", "receive")

    def __init__(self, receive: Receive, limit: int, idle: float) -> None:
        self.receive = receive
        self.limit = limit
        self.idle = idle
        self._gen: AsyncIterator[bytes] | None = None

    async def read_all(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def chunks(self) -> AsyncIterator[bytes]:
        self._gen = self._chunks()
        return self._gen

    async def close(self) -> None:
        gen, self._gen = self._gen, None
        aclose = getattr(gen, "aclose", None)
        if aclose is not None:
            await aclose()

    async def _chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        seen = 0
        try:
            async with asyncio.timeout(self.idle) as timer:
                while True:
                    message = await self.receive()
                    if message["type"] == "http.disconnect":
                        raise ClientGone
                    chunk: bytes = message.get("body", b"")
                    more = message.get("more_body", False)
                    if chunk:
                        seen += len(chunk)
                        if seen > self.limit:
                            raise PayloadTooLarge(detail=f"the request body is larger than {self.limit} bytes")
                        timer.reschedule(None)
                        yield chunk
                    if not more:
                        return
                    timer.reschedule(loop.time() + self.idle)
        except TimeoutError:
            raise RequestTimeout(
                detail=f"the client sent no body bytes for {self.idle} seconds"
            ) from None


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
