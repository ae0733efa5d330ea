"""JSON answers of the demo backend: the echo of what arrived, errors, and body validation.

Every JSON answer carries `asked_by` (from the verified assertion) and `received` (method,
raw path, query, the `X-Portal-*` headers except the assertion itself, and the forwarding
headers), so gateway tests can see exactly what the gateway forwarded.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from demo.assertion import InvalidAssertion, VerifiedAssertion, raw_request_path

__all__ = [
    "ASSERTION_HEADER",
    "SCOPE_KEY",
    "ApiError",
    "answer",
    "asked_by",
    "error_body",
    "optional_str",
    "read_json_object",
    "received",
    "reject_unknown_fields",
    "require_str",
]

ASSERTION_HEADER = "x-portal-assertion"
#: where the middleware leaves the `VerifiedAssertion` in the ASGI scope
SCOPE_KEY = "demo.assertion"
MAX_BODY_BYTES = 64 * 1024


class ApiError(Exception):
    """An expected error answer (404 unknown id, 400 bad JSON, 422 bad field, 409 conflict)."""

    def __init__(self, status_code: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.error = error
        self.detail = detail


def asked_by(scope: Mapping[str, Any]) -> dict[str, Any] | None:
    verified = scope.get(SCOPE_KEY)
    if not isinstance(verified, VerifiedAssertion):
        return None
    return {
        "subject": verified.subject,
        "access_level": verified.access_level,
        "auth_methods": list(verified.auth_methods),
        "request_id": verified.request_id,
        "parts": None if verified.parts is None else list(verified.parts),
    }


def _joined(values: Iterable[str]) -> str | None:
    collected = list(values)
    return ", ".join(collected) if collected else None


def received(request: Request) -> dict[str, Any]:
    headers = request.headers
    try:
        path = raw_request_path(request.scope)
    except InvalidAssertion:  # non-ASCII raw path: show the decoded one instead
        path = request.url.path
    portal_headers: dict[str, str] = {}
    for name, value in headers.items():  # lower-case names; repeated headers joined
        if name.startswith("x-portal-") and name != ASSERTION_HEADER:
            portal_headers[name] = f"{portal_headers[name]}, {value}" if name in portal_headers else value
    return {
        "method": request.method,
        "path": path,
        "query": request.scope.get("query_string", b"").decode("latin-1"),
        "x_portal_headers": portal_headers,
        "x_request_id": headers.get("x-request-id"),
        "assertion_present": ASSERTION_HEADER in headers,
        "forwarded": {
            "x_forwarded_for": _joined(headers.getlist("x-forwarded-for")),
            "x_forwarded_proto": _joined(headers.getlist("x-forwarded-proto")),
            "x_forwarded_host": _joined(headers.getlist("x-forwarded-host")),
            "forwarded": _joined(headers.getlist("forwarded")),
        },
    }


def answer(
    request: Request,
    payload: Mapping[str, Any],
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {**payload, "asked_by": asked_by(request.scope), "received": received(request)}
    return JSONResponse(body, status_code=status_code, headers=dict(headers or {}))


def error_body(error: str, detail: str) -> dict[str, Any]:
    return {"error": error, "detail": detail}


async def read_json_object(request: Request, *, optional: bool = False) -> dict[str, Any]:
    """The body as a JSON object; 400 when it is not JSON or not an object, 413 when too big.

    `optional=True` accepts an empty body as `{}` (for actions whose fields all have defaults).
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, "payload_too_large", f"body larger than {MAX_BODY_BYTES} bytes")
    chunks = bytearray()
    async for chunk in request.stream():
        chunks += chunk
        if len(chunks) > MAX_BODY_BYTES:
            raise ApiError(413, "payload_too_large", f"body larger than {MAX_BODY_BYTES} bytes")
    if not chunks.strip():
        if optional:
            return {}
        raise ApiError(400, "bad_request", "a JSON object body is required")
    try:
        value = json.loads(bytes(chunks))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ApiError(400, "bad_request", "body is not valid JSON") from error
    if not isinstance(value, dict):
        raise ApiError(400, "bad_request", "body must be a JSON object")
    return value


def reject_unknown_fields(body: Mapping[str, Any], allowed: Iterable[str]) -> None:
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise ApiError(422, "invalid_request", f"unknown fields: {', '.join(unknown)}")


def require_str(body: Mapping[str, Any], name: str, *, max_length: int = 200) -> str:
    if name not in body:
        raise ApiError(422, "invalid_request", f"field '{name}' is required")
    value = body[name]
    if not isinstance(value, str) or not value.strip():
        raise ApiError(422, "invalid_request", f"field '{name}' must be a non-empty string")
    if len(value) > max_length:
        raise ApiError(422, "invalid_request", f"field '{name}' is longer than {max_length} characters")
    return value.strip()


def optional_str(body: Mapping[str, Any], name: str, *, max_length: int = 200) -> str | None:
    if name not in body or body[name] is None:
        return None
    return require_str(body, name, max_length=max_length)
