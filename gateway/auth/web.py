"""HTTP helpers shared by auth's JSON endpoints and pages.

- `safe_next`: only same-origin relative paths ("/x"), never "//host", "/\\host",
  schemes, or control characters — the open-redirect rules.
- CSRF for forms: a random token in a ``__Host-`` cookie (HttpOnly, SameSite=Lax)
  that the form repeats in a hidden field (double submit, compared in constant
  time), *and* the gateway's one cross-site check (`gateway.auth.origin`:
  Sec-Fetch-Site / Origin). JSON endpoints need ``Content-Type: application/json``
  (a cross-site form can not send that without a CORS preflight, which the gateway
  never grants) and the same cross-site check.
- Security headers for every auth answer: no-store, nosniff, same-origin referrers, and on
  HTML a CSP with ``frame-ancestors 'none'`` (and X-Frame-Options for old browsers).
- `ErrorResponse`: a `GatewayError` rendered by the gateway's one error mapping
  (`gateway.middleware.errors.send_error`), with auth's texts.
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from gateway.auth.body import read_bounded
from gateway.auth.cookies import of_request
from gateway.auth.origin import CrossSiteCheck, uses_bearer
from gateway.auth.outcomes import InvalidInput
from gateway.auth.texts import reason_text
from gateway.errors import Forbidden, GatewayError, ServiceUnavailable
from gateway.middleware.canonicalize import REQUEST_ID_KEY, SCOPE_KEY
from gateway.middleware.errors import pick_language, send_error

__all__ = [
    "CSP",
    "ErrorResponse",
    "check_origin",
    "client_ip",
    "dependency_error",
    "language_of",
    "message_lookup",
    "read_json",
    "safe_next",
    "secure_headers",
]

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_JSON_BYTES = 16 * 1024


def safe_next(value: str | None, default: str) -> str:
    """`value` when it is a same-origin relative path, else `default`."""
    if not value or len(value) > 2048:
        return default
    if any(ord(ch) < 0x21 or ch == "\\" or ord(ch) == 0x7F for ch in value):
        return default
    if not value.startswith("/") or value.startswith("//"):
        return default
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return default
    return value


def secure_headers(response: Response, *, html: bool) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if html:
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Frame-Options"] = "DENY"
    return response


def client_ip(request: Request) -> str:
    canonical = request.scope.get(SCOPE_KEY)
    ip = getattr(canonical, "client_ip", None)
    if isinstance(ip, str) and ip:
        return ip
    return request.client.host if request.client else "unknown"


def language_of(request: Request, default: str = "de", form: Mapping[str, Any] | None = None) -> str:
    for candidate in (
        (form or {}).get("lang"),
        request.query_params.get("lang"),
        of_request(request).get("pg_lang"),
    ):
        if candidate in ("de", "en"):
            return str(candidate)
    header = request.headers.get("accept-language", "")
    if any(tag.strip().lower()[:2] in ("de", "en") for tag in header.split(",")):
        return pick_language(header)
    return default


#: /auth endpoints that start a login or a registration: they never act on the
#: session a request already carries, so a leftover cookie does not make them cookie
#: requests (a curl client with an old jar may log in without Origin). A browser's
#: cross-site post to them is still refused by its Sec-Fetch-Site / Origin (login CSRF).
STARTS_A_LOGIN = frozenset({"/auth/register", "/auth/login/password", "/auth/sms/send", "/auth/sms/verify"})


def check_origin(request: Request, check: CrossSiteCheck) -> None:
    """The gateway's one cross-site check (`gateway.auth.origin`) for an /auth request."""
    headers = request.scope.get("headers", [])
    authorization = request.headers.get("authorization")
    if request.url.path in STARTS_A_LOGIN and not uses_bearer(authorization):
        check.check(request.method, headers, cookie_credential=False)
        return
    check.check_request(request.method, headers, authorization, of_request(request))


def check_csrf(request: Request, form_token: str | None, cookie_name: str, check: CrossSiteCheck) -> None:
    check_origin(request, check)
    cookie = of_request(request).get(cookie_name)
    if not cookie or not form_token or not hmac.compare_digest(cookie.encode(), form_token.encode()):
        raise Forbidden("csrf_failed")


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


async def read_json(request: Request) -> dict[str, Any]:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise InvalidInput("json_required")
    body = await read_bounded(request, MAX_JSON_BYTES)
    if body is None:
        raise InvalidInput("bad_request")
    try:
        data = json.loads(body or b"{}")
    except (ValueError, UnicodeDecodeError, RecursionError):
        # RecursionError: "[[[[..." nested deeper than the interpreter's limit (was a 500).
        raise InvalidInput("bad_request") from None
    if not isinstance(data, dict):
        raise InvalidInput("bad_request")
    return data


def field(data: Mapping[str, Any], name: str, *, required: bool = True, limit: int = 1024) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise InvalidInput("bad_request", name)
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput("bad_request", name)
    return value


def message_lookup(reason: str, language: str) -> str | None:
    """Auth's texts first, then the policy's catalogue (registration refusals)."""
    found = reason_text(reason, language)
    if found is not None:
        return found
    from gateway.policy.reasons import REASONS, message

    return message(reason, language) if reason in REASONS else None


def dependency_error(exc: Exception) -> GatewayError | None:
    """Store, database or directory down → 503 (fail closed); anything else: not ours to map."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.database import DatabaseError
    from gateway.directory.base import DirectoryUnavailable
    from gateway.store.base import StoreUnavailable

    # OSError: a connection refused or reset on the way to the database (asyncpg raises it
    # from connect, outside SQLAlchemy's error tree) is a dependency down, not a bug.
    if isinstance(exc, (StoreUnavailable, DatabaseError, DirectoryUnavailable, SQLAlchemyError, OSError)):
        return ServiceUnavailable("dependency_unavailable", f"{type(exc).__name__}: {exc}")
    return None


class ErrorResponse(Response):
    """Render a GatewayError through the gateway's one error mapping."""

    def __init__(self, exc: GatewayError, *, extra_headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status_code=exc.status_code)
        self.exc = exc
        self.extra = dict(extra_headers or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers: dict[str, str] = {}
        for name, value in scope.get("headers", []):
            if name in (b"accept", b"accept-language"):
                headers[name.decode()] = value.decode("latin-1")
        request_id = scope.get(REQUEST_ID_KEY) or secrets.token_hex(16)
        extra = [(k.lower().encode(), v.encode("latin-1")) for k, v in self.extra.items()]
        extra += [(b"referrer-policy", b"same-origin"), (b"x-frame-options", b"DENY")]
        await send_error(
            send,
            self.exc,
            request_id=request_id,
            accept=headers.get("accept", ""),
            accept_language=headers.get("accept-language", "") or "de",
            lookup=message_lookup,
            hint_url=getattr(self.exc, "hint_url", None),
            extra_headers=extra,
        )
