"""One error tree, mapped to HTTP in one place (`gateway/middleware/errors.py`).

    GatewayError
    ├── BadRequest               400  malformed input (path, JSON, parameters)
    ├── AuthenticationFailed     401  a credential was present but bad
    ├── StepUpRequired           401  RFC 9470 challenge
    ├── Forbidden                403  policy denial with a reason code
    ├── NotFound                 404  no route, or a resource the actor may not see
    ├── MethodNotAllowed         405
    ├── RequestTimeout           408  the client stopped sending its request body
    ├── PayloadTooLarge          413
    ├── TooManyRequests          429
    ├── ServiceUnavailable       503  a dependency (store, directory, policy) cannot answer
    └── UpstreamError            502  an invalid answer, or a request head the gateway must not send
        ├── UpstreamUnavailable  502  connection refused / reset
        ├── UpstreamBusy         503  every connection in use and the wait queue full (or waited too long)
        └── UpstreamTimeout      504  connect, read, write or whole-request deadline
"""

from __future__ import annotations


class GatewayError(Exception):
    status_code = 500
    error = "internal"
    reason = "internal_error"

    def __init__(self, reason: str | None = None, detail: str | None = None) -> None:
        super().__init__(detail or reason or self.reason)
        if reason is not None:
            self.reason = reason
        self.detail = detail


class BadRequest(GatewayError):
    status_code = 400
    error = "bad_request"
    reason = "bad_request"


class AuthenticationFailed(GatewayError):
    status_code = 401
    error = "unauthenticated"
    reason = "authentication_failed"


class StepUpRequired(GatewayError):
    status_code = 401
    error = "step_up_required"
    reason = "step_up_required"


class Forbidden(GatewayError):
    status_code = 403
    error = "forbidden"
    reason = "forbidden"


class NotFound(GatewayError):
    status_code = 404
    error = "not_found"
    reason = "not_found"


class MethodNotAllowed(GatewayError):
    status_code = 405
    error = "method_not_allowed"
    reason = "method_not_allowed"


class RequestTimeout(GatewayError):
    status_code = 408
    error = "request_timeout"
    reason = "client_body_timeout"


class PayloadTooLarge(GatewayError):
    status_code = 413
    error = "payload_too_large"
    reason = "payload_too_large"


class TransferCodingNotImplemented(GatewayError):
    """A request body in a transfer coding other than exactly `chunked` (RFC 9112 6.1: 501).

    Relaying `gzip, chunked` as plain chunked would hand the backend gzip bytes it
    takes for the body itself; no backend of this gateway is asked to decode them.
    """

    status_code = 501
    error = "not_implemented"
    reason = "unsupported_transfer_coding"


class TooManyRequests(GatewayError):
    status_code = 429
    error = "too_many_requests"
    reason = "rate_limited"


class ServiceUnavailable(GatewayError):
    status_code = 503
    error = "unavailable"
    reason = "dependency_unavailable"


class UpstreamError(GatewayError):
    status_code = 502
    error = "bad_gateway"
    reason = "upstream_error"


class UpstreamUnavailable(UpstreamError):
    reason = "upstream_unavailable"


class UpstreamBusy(UpstreamError):
    status_code = 503
    error = "unavailable"
    reason = "upstream_busy"


class UpstreamTimeout(UpstreamError):
    status_code = 504
    error = "gateway_timeout"
    reason = "upstream_timeout"
