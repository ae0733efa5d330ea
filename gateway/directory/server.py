"""A small HTTP directory service over any `Directory`: the reference of the HTTP API.

`HttpDirectory` (``gateway/directory/http.py``) speaks exactly this API, so a backend team
can implement it in their own stack and test it against the adapter. All answers are JSON;
ids are single path segments (percent-encoded by the client).

====== ====================================== ==================================================
Method Path                                   Answer
====== ====================================== ==================================================
GET    /health                                200 {"status": "ok"} (503 when the source fails)
GET    /persons/{id}                          PersonRecord | 404
GET    /persons/{id}/relations                PersonRelations (sets as lists; unknown → empty)
GET    /customers/{number}                    CustomerRecord | 404
GET    /customers/{number}/lines              [LineRecord] (unknown customer → [])
GET    /customers/{number}/contracts          [ContractRecord]
GET    /contracts/{id}                        ContractRecord | 404
GET    /contracts/{id}/invoices               [InvoiceRecord], newest first
GET    /lines/{msisdn}                        LineRecord | 404
GET    /invoices/{number}                     InvoiceRecord | 404
GET    /vpns/{id}                             VpnRecord | 404
POST   /customers/{number}/kundenkennwort/verify  {"candidate": "..."} → {"valid": bool}
POST   /lines/{msisdn}/puk/verify             {"candidate": "..."} → {"valid": bool}
====== ====================================== ==================================================

Proof checks are POSTs so that candidates never appear in URLs or access logs, and the
service answers ``{"valid": false}`` for unknown identifiers (no existence oracle).
A record's JSON is the dataclass's fields (`gateway.directory.wire`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from gateway.directory.base import Directory, DirectoryUnavailable
from gateway.directory.wire import encode

__all__ = ["directory_app"]

Handler = Callable[[Request], Awaitable[Response]]
_NOT_FOUND = {"error": "not_found"}


def _record(value: Any) -> Response:
    if value is None:
        return JSONResponse(_NOT_FOUND, status_code=404)
    return JSONResponse(encode(value))


def directory_app(directory: Directory) -> Starlette:
    """A Starlette app serving `directory` with the API above."""

    def get(lookup: Callable[[str], Awaitable[Any]], param: str) -> Handler:
        async def handler(request: Request) -> Response:
            value = await lookup(request.path_params[param])
            if isinstance(value, list):
                return JSONResponse([encode(v) for v in value])
            return _record(value)

        return handler

    def verify(check: Callable[[str, str], Awaitable[bool]], param: str) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                body = await request.json()
            except ValueError:
                body = None
            candidate = body.get("candidate") if isinstance(body, dict) else None
            if not isinstance(candidate, str):
                return JSONResponse({"error": "candidate (string) required"}, status_code=400)
            return JSONResponse({"valid": await check(request.path_params[param], candidate)})

        return handler

    async def relations(request: Request) -> Response:
        return JSONResponse(encode(await directory.relations(request.path_params["id"])))

    async def health(request: Request) -> Response:
        await directory.ping()
        return JSONResponse({"status": "ok"})

    async def unavailable(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": "unavailable"}, status_code=503)

    routes = [
        Route("/health", health),
        Route("/persons/{id}", get(directory.person, "id")),
        Route("/persons/{id}/relations", relations),
        Route("/customers/{number}", get(directory.customer, "number")),
        Route("/customers/{number}/lines", get(directory.lines_of_customer, "number")),
        Route("/customers/{number}/contracts", get(directory.contracts_of_customer, "number")),
        Route("/customers/{number}/kundenkennwort/verify", verify(directory.verify_kundenkennwort, "number"),
              methods=["POST"]),
        Route("/contracts/{id}", get(directory.contract, "id")),
        Route("/contracts/{id}/invoices", get(directory.invoices_of_contract, "id")),
        Route("/lines/{msisdn}", get(directory.line, "msisdn")),
        Route("/lines/{msisdn}/puk/verify", verify(directory.verify_puk, "msisdn"), methods=["POST"]),
        Route("/invoices/{number}", get(directory.invoice, "number")),
        Route("/vpns/{id}", get(directory.vpn, "id")),
    ]
    return Starlette(routes=routes, exception_handlers={DirectoryUnavailable: unavailable})
