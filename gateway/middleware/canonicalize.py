"""Stage 1: one canonical path per request, or 400; spoofable headers removed.

The classic gateway bypass is a parser difference: the gateway checks one path
and the backend serves another (``/api/lines/1/..%2f2/usage``, ``//``,
``%2e%2e``, ``;``, overlong UTF-8). We do not normalise such paths into
something else: a path that is not already canonical is refused, so the raw
bytes we match are exactly the bytes we forward. Decoding happens once, here.

Headers a client could use to pose as someone (``X-Portal-*`` in any case or
with ``_``), to change the method after the check (``X-HTTP-Method-Override``)
or the path (``X-Original-URL``), and forwarding headers from untrusted peers
are removed before any other stage runs. So is every header whose name holds
an ``_``: CGI/WSGI-style backends fold ``Transfer_Encoding`` into
``HTTP_TRANSFER_ENCODING`` and would frame or trust what the gateway ignored
(nginx drops them by default, ``underscores_in_headers off``). Two Host headers
(RFC 9112 section 3.2) and header blocks larger than `MAX_HEADER_BYTES` (uvicorn's
httptools protocol sets no limit) are refused with 400.
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from collections.abc import Iterable
from typing import NamedTuple

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.errors import BadRequest

__all__ = ["CanonicalRequest", "CanonicalizeMiddleware", "TrustedProxies", "canonical_segments"]

SCOPE_KEY = "gateway.request"
REQUEST_ID_KEY = "gateway.request_id"

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
_CACHE_SIZE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")
# Raw bytes allowed in a path: RFC 3986 pchar minus ';' (matrix parameters are a
# known bypass vector on Java backends) plus '/' and '%'.
_PATH_BYTES = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,=:@/%")
#: "/" and segments of unreserved and sub-delim characters, none empty (a trailing "/"
#: is allowed), none "." or "..": such a path is canonical as it stands.
#: Security patterns are used with `fullmatch` and end with ``\Z``, never ``$``: ``$`` also
#: matches before a trailing "\n", so ``host\n`` would pass a ``^…$`` check.
_PLAIN_PATH = re.compile(rb"(?:/(?!\.\.?(?:/|\Z))[A-Za-z0-9\-._~!$&'()*+,=:@]+)*/?")
_HOST = re.compile(r"[a-z0-9.-]+(?::[0-9]{1,5})?|\[[0-9a-f:.]+\](?::[0-9]{1,5})?")

#: Headers removed from every request, compared after lowercasing and '_' → '-'.
_STRIP_EXACT = frozenset(
    {
        "x-http-method-override",
        "x-http-method",
        "x-method-override",
        "x-original-method",
        "x-original-url",
        "x-rewrite-url",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-forwarded-server",
        "x-real-ip",
        "x-client-ip",
        "forwarded",
        "x-request-id",
    }
)
_STRIP_PREFIX = "x-portal-"
#: Sum of header name and value lengths a request may carry (nginx: 4 x 8 KiB by default).
MAX_HEADER_BYTES = 64 * 1024


class TrustedProxies:
    """Peers whose forwarding headers we believe (IPs or networks)."""

    def __init__(self, networks: Iterable[str]) -> None:
        self._networks = tuple(ipaddress.ip_network(n, strict=False) for n in networks)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self._networks)


class CanonicalRequest(NamedTuple):
    """The request as every later stage sees it (immutable; a NamedTuple because a
    frozen dataclass costs microseconds to build on every request)."""

    method: str
    #: The path exactly as received and as it will be forwarded (ASCII).
    path: str
    #: Percent-decoded segments of `path`, used for matching only.
    segments: tuple[str, ...]
    query: bytes
    client_ip: str
    scheme: str
    host: str
    request_id: str
    #: X-Forwarded-For value to send on (the trusted chain plus the peer).
    forwarded_for: str


def _bad(reason: str, detail: str) -> BadRequest:
    return BadRequest(reason, detail)


def canonical_segments(raw_path: bytes, max_bytes: int) -> tuple[str, ...]:
    """Decode a raw path into segments, refusing anything not already canonical."""
    if len(raw_path) > max_bytes:
        raise _bad("path_too_long", f"the path is longer than {max_bytes} bytes")
    if not raw_path.startswith(b"/"):
        raise _bad("path_not_absolute", "the path must start with '/'")
    if _PLAIN_PATH.fullmatch(raw_path):
        # The common case, checked in one C-level match: no escapes, no dot segment,
        # no empty segment. Nothing to decode; the segments are the path's own text.
        return tuple(raw_path[1:].decode("ascii").split("/")) if raw_path != b"/" else ()
    if not _PATH_BYTES.issuperset(raw_path):
        if b"\\" in raw_path:
            raise _bad("path_backslash", "'\\' is not allowed in a path")
        if b";" in raw_path:
            raise _bad("path_semicolon", "';' (path parameters) is not allowed in a path")
        raise _bad("path_bad_character", "the path contains a character that must be percent-encoded")
    if raw_path == b"/":
        return ()
    parts = raw_path[1:].split(b"/")
    out: list[str] = []
    for part in parts:
        if not part and len(out) < len(parts) - 1:
            raise _bad("path_empty_segment", "'//' (an empty segment) is not allowed in a path")
        if b"%" in part:
            part = _percent_decode(part)
        try:
            seg = part.decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("path_invalid_utf8", "the path does not decode to valid UTF-8") from None
        if seg in (".", ".."):
            raise _bad("path_dot_segment", "'.' and '..' segments are not allowed in a path")
        out.append(seg)
    return tuple(out)


def _percent_decode(part: bytes) -> bytes:
    buf = bytearray()
    i = 0
    n = len(part)
    while i < n:
        c = part[i]
        if c != 0x25:  # '%'
            buf.append(c)
            i += 1
            continue
        if i + 2 >= n:
            raise _bad("path_bad_escape", "a '%' in the path is not followed by two hex digits")
        h1, h2 = part[i + 1], part[i + 2]
        if h1 not in _HEX or h2 not in _HEX:
            raise _bad("path_bad_escape", "a '%' in the path is not followed by two hex digits")
        b = int(part[i + 1 : i + 3], 16)
        if b == 0x2F:
            raise _bad("path_encoded_slash", "an encoded '/' (%2F) is not allowed in a path")
        if b == 0x5C:
            raise _bad("path_encoded_backslash", "an encoded '\\' (%5C) is not allowed in a path")
        if b == 0x25:
            raise _bad("path_double_encoding", "an encoded '%' (%25) is not allowed in a path")
        if b < 0x20 or b == 0x7F:
            raise _bad("path_control_character", "control characters (e.g. NUL) are not allowed in a path")
        if b in _UNRESERVED:
            raise _bad(
                "path_needless_escape",
                "letters, digits and '-._~' must not be percent-encoded in a path",
            )
        buf.append(b)
        i += 3
    return bytes(buf)


class CanonicalizeMiddleware:
    """Builds the `CanonicalRequest`, rewrites the headers, or answers 400."""

    def __init__(self, app: ASGIApp, *, trusted_proxies: TrustedProxies, max_path_bytes: int = 2048) -> None:
        self.app = app
        self.trusted = trusted_proxies
        self.max_path_bytes = max_path_bytes
        #: Decoded segments of recently seen canonical paths (only paths that passed).
        self._segments: dict[bytes, tuple[str, ...]] = {}

    def _client_from_chain(self, xff: bytes, peer: str) -> tuple[str, str]:
        """The client address and the chain to forward, read right to left from a trusted peer.

        Each hop is checked with `ipaddress` before it can become `client_ip`, which
        rate limits, the policy and the backend all believe. A hop that is no IP
        address where we still trust the chain (the peer or a trusted proxy wrote
        it) is a 400: guessing would either lump every client under the proxy's
        address or let the text pass as an address. Hops left of the client were
        written by the client itself: they are neither judged nor forwarded.
        """
        hops = [h.strip() for h in xff.decode("latin-1").split(",")]
        kept: list[str] = []
        for hop in reversed(hops):
            try:
                ip = ipaddress.ip_address(hop)
            except ValueError:
                raise _bad(
                    "bad_forwarded_for", "a trusted proxy sent an X-Forwarded-For hop that is not an IP address"
                ) from None
            if isinstance(ip, ipaddress.IPv6Address):
                if ip.scope_id is not None:
                    # A zone ("%eth0") is free text and means nothing beyond the proxy's host.
                    raise _bad("bad_forwarded_for", "an X-Forwarded-For hop carries an IPv6 zone")
                # One spelling per client: ::ffff:192.0.2.1 is 192.0.2.1 (rate limits, trust).
                ip = ip.ipv4_mapped or ip
            address = str(ip)
            kept.append(address)
            if not self.trusted.trusts(address):
                break
        # Every hop trusted: the leftmost is as close to the client as we can name.
        client_ip = kept[-1]
        return client_ip, ", ".join([*reversed(kept), peer])

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("ascii", "replace")
        # Servers that keep the query in raw_path (the ASGI spec says they must not)
        # would otherwise let "?" take part in matching.
        if b"?" in raw_path or b"#" in raw_path:
            raise _bad("path_bad_character", "'?' or '#' in the path part")
        kept: list[tuple[bytes, bytes]] = []
        xff: bytes | None = None
        xfp: bytes | None = None
        xfh: bytes | None = None
        host = b""
        hosts = 0
        size = 0
        for name, value in scope["headers"]:
            size += len(name) + len(value)
            if b"_" in name:
                continue
            if name.startswith(b"x-") or name == b"forwarded":
                norm = name.decode("latin-1").lower().replace("_", "-")
                if norm.startswith(_STRIP_PREFIX) or norm in _STRIP_EXACT:
                    if norm == "x-forwarded-for" and name == b"x-forwarded-for":
                        xff = value if xff is None else xff + b"," + value
                    elif norm == "x-forwarded-proto" and name == b"x-forwarded-proto":
                        xfp = value
                    elif norm == "x-forwarded-host" and name == b"x-forwarded-host":
                        xfh = value
                    continue
            elif name == b"host":
                host = value
                hosts += 1
            kept.append((name, value))
        if size > MAX_HEADER_BYTES:
            raise _bad("headers_too_large", f"the request headers are larger than {MAX_HEADER_BYTES} bytes")
        if hosts > 1:
            raise _bad("bad_host", "more than one Host header")

        segments = self._segments.get(raw_path)
        if segments is None:
            segments = canonical_segments(raw_path, self.max_path_bytes)
            if len(self._segments) >= _CACHE_SIZE:
                self._segments.clear()  # bounded: unique paths cannot grow it without end
            self._segments[raw_path] = segments
        peer = scope["client"][0] if scope.get("client") else "0.0.0.0"  # noqa: S104
        client_ip = peer
        scheme: str = scope.get("scheme", "http")
        chain = peer
        if self.trusted and self.trusted.trusts(peer):
            if xff and xff.strip():
                client_ip, chain = self._client_from_chain(xff, peer)
            if xfp in (b"http", b"https"):
                scheme = xfp.decode()
            if xfh:
                host = xfh
        host_str = host.decode("latin-1").strip().lower()
        if host_str and not _HOST.fullmatch(host_str):
            raise _bad("bad_host", "the Host header is not a valid host name")
        request_id: str = scope.get(REQUEST_ID_KEY) or secrets.token_hex(16)
        scope["headers"] = kept
        scope[SCOPE_KEY] = CanonicalRequest(
            method=scope.get("method", "GET"),
            path=raw_path.decode("ascii"),
            segments=segments,
            query=scope.get("query_string", b""),
            client_ip=client_ip,
            scheme=scheme,
            host=host_str,
            request_id=request_id,
            forwarded_for=chain,
        )
        await self.app(scope, receive, send)
