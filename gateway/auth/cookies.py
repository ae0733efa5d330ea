"""The auth cookies: session id, CSRF token, language.

With ``server.cookie_secure`` (the default) the session and CSRF cookies carry the
``__Host-`` prefix (Secure, Path=/, no Domain: a sibling host cannot set or
overwrite them). A plain-HTTP demo turns that off and the prefix goes with it,
because browsers refuse ``__Host-`` cookies without Secure.

The gateway's one Cookie-header parser lives here too (`parse`, `of_headers`,
`of_request`): the data plane (/api) and /auth must see the same person on the
same request, so both read cookies through it. It is tolerant the way browsers
are: each ``;``-separated pair stands alone, so one odd cookie (a consent banner's
``x={"a":1}``, a value with spaces or commas) never hides the others — the
stdlib's `SimpleCookie` drops the whole header on such a pair. When a name occurs
twice the last one wins, as it did for both parsers this one replaces (Starlette's
and `SimpleCookie`): with equal paths the browser sends the newest cookie last, so
the one the gateway set at login beats an older one a client brought. Which of two
same-named cookies a sibling host could plant is not something to rely on either
way; the ``__Host-`` prefix is what stops planting.

`without` rebuilds a Cookie header minus named cookies, so the gateway's own
credentials never reach a backend. `is_gateways` names the gateway's cookies (all
``pg_…``, with or without ``__Host-``): a backend's Set-Cookie for one is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CookiePolicy", "is_gateways", "of_headers", "of_request", "parse", "without"]


def _unquote(value: str) -> str:
    # Starlette's `set_cookie` quotes values with special characters; tokens have none,
    # but a quoted value must read back as what was set.
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return value[1:-1]
    return value


def _pairs(header: str) -> Iterable[tuple[str, str]]:
    for chunk in header.split(";"):
        name, eq, value = chunk.partition("=")
        name = name.strip()
        if not eq or not name:
            continue  # a bare word or "=x" names no cookie
        yield name, _unquote(value.strip())


def parse(header: str) -> dict[str, str]:
    """Every cookie of a Cookie header value; the last of a repeated name wins."""
    return dict(_pairs(header))


def of_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The cookies of raw ASGI headers (several Cookie headers are one list, RFC 9113 8.2.3)."""
    parts = [value.decode("latin-1") for name, value in headers if name == b"cookie"]
    return parse("; ".join(parts)) if parts else {}


#: Every cookie the gateway sets is named pg_… (session, CSRF, OIDC state and link), with
#: the __Host- prefix when cookies are Secure; backends keep out of this name space.
_GATEWAY_PREFIX = "pg_"


def is_gateways(name: str) -> bool:
    """Whether a cookie of this name is one of the gateway's (browsers ignore the prefix's case)."""
    lowered = name.lower()
    for prefix in ("__host-", "__secure-"):
        if lowered.startswith(prefix):
            lowered = lowered[len(prefix):]
            break
    return lowered.startswith(_GATEWAY_PREFIX)


def of_request(request: Request) -> dict[str, str]:
    """`of_headers` for a Starlette request: use this, never ``request.cookies``."""
    return of_headers(request.scope.get("headers", []))


def without(header_value: bytes | str, *names: str) -> bytes | None:
    """The Cookie header with every cookie called one of `names` removed; None when nothing is left.

    The other pairs are kept byte for byte and in order (a backend may depend on
    either), joined with ``"; "``. A pair the parser ignores (a bare word) is kept:
    it is not ours to judge.
    """
    raw = header_value.encode("latin-1") if isinstance(header_value, str) else header_value
    drop = set(names)
    # A name is read exactly as `parse` reads it (str.strip: also NBSP and other Unicode
    # spaces), so no spelling that `parse` would take for a session cookie survives the cut.
    kept = [
        chunk.strip()
        for chunk in raw.split(b";")
        if chunk.strip() and chunk.partition(b"=")[0].decode("latin-1").strip() not in drop
    ]
    return b"; ".join(kept) if kept else None


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    secure: bool = True
    session_max_age: int = 43200

    @property
    def session_name(self) -> str:
        return "__Host-pg_session" if self.secure else "pg_session"

    @property
    def csrf_name(self) -> str:
        return "__Host-pg_csrf" if self.secure else "pg_csrf"

    def set_session(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.session_name,
            token,
            max_age=self.session_max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def session_token(self, request: Request) -> str | None:
        return of_request(request).get(self.session_name) or None

    def set_csrf(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.csrf_name, token, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def set_language(self, response: Response, language: str) -> None:
        response.set_cookie(
            "pg_lang", language, max_age=365 * 86400, path="/", secure=self.secure, samesite="lax"
        )
