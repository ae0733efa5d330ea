"""The JSON endpoints under /auth (ARCHITECTURE.md "The HTTP surface").

Each handler reads a JSON object (``Content-Type: application/json`` required),
calls one service, and answers JSON. A new session is returned both ways: as the
``__Host-`` cookie (browsers) and as ``token: "pgs_..."`` (apps). Errors are
`GatewayError`s rendered by the gateway's one mapping (`web.ErrorResponse`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.auth.login import LoginResult, session_data_for
from gateway.auth.outcomes import InvalidInput, SecretRejected
from gateway.auth.services import AuthServices
from gateway.auth.sessions import Session, bearer_token
from gateway.auth.web import (
    ErrorResponse,
    check_origin,
    client_ip,
    dependency_error,
    field,
    language_of,
    read_json,
    secure_headers,
)
from gateway.errors import GatewayError
from gateway.principal import STEP_UP_WINDOW_SECONDS

__all__ = ["JsonApi"]

log = logging.getLogger("gateway.auth")

Handler = Callable[[Request], Awaitable[Response]]


def session_view(session: Session, now: float) -> dict[str, Any]:
    d = session.data
    step_up_until = d.second_factor_at + STEP_UP_WINDOW_SECONDS if d.second_factor_at else None
    return {
        "subject": d.subject,
        "login": d.login,
        "access_level": d.access_level,
        "role": d.role,
        "bound_customer": d.bound_customer,
        "bound_msisdn": d.bound_msisdn,
        "auth_methods": list(d.methods),
        "second_factor_fresh": session.principal().step_up_fresh(now),
        "step_up_until": step_up_until,
        "expires_at": session.expires_at,
        "provider": d.provider,
    }


class JsonApi:
    def __init__(self, services: AuthServices) -> None:
        self.s = services

    def guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if request.method == "POST":
                    check_origin(request, self.s.cross_site)
                response = await handler(request)
            except GatewayError as exc:
                return ErrorResponse(exc)
            except Exception as exc:
                mapped = dependency_error(exc)
                if mapped is None:
                    raise
                log.error("auth dependency failed: %s", mapped.detail)
                return ErrorResponse(mapped)
            return secure_headers(response, html=False)

        return run

    def _session_answer(self, result: LoginResult, status: int = 200, **extra: Any) -> JSONResponse:
        body: dict[str, Any] = {
            "status": "pending" if result.pending else "ok",
            "token": bearer_token(result.token),
            "expires_at": result.session.expires_at,
            **extra,
        }
        if result.pending:
            body["next"] = "totp"
        else:
            body["session"] = session_view(result.session, self.s.clock())
        response = JSONResponse(body, status_code=status)
        self.s.cookies.set_session(response, result.token)
        return response

    async def _token(self, request: Request) -> str:
        token = self.s.request_token(request)
        if token is None:
            raise SecretRejected("session_required")
        return token

    async def login_password(self, request: Request) -> Response:
        data = await read_json(request)
        result = await self.s.logins.password(
            field(data, "login", limit=254), field(data, "password"), client_ip=client_ip(request)
        )
        await self._end_previous(request)
        return self._session_answer(result)

    async def _end_previous(self, request: Request) -> None:
        """A login replaces whatever session the client carried (no fixation, no leftovers)."""
        old = self.s.request_token(request)
        if old is not None:
            await self.s.sessions.revoke(old)

    async def login_totp(self, request: Request) -> Response:
        data = await read_json(request)
        token = await self._token(request)
        result = await self.s.logins.totp(token, field(data, "code", limit=16), client_ip=client_ip(request))
        return self._session_answer(result)

    async def sms_send(self, request: Request) -> Response:
        data = await read_json(request)
        msisdn = field(data, "msisdn", limit=32)
        if self.s.sms.normalize(msisdn) is None:  # not a number at all; an unknown one is answered as known
            raise InvalidInput("invalid_msisdn", "msisdn")
        await self.s.sms.send(msisdn, client_ip=client_ip(request), language=language_of(request))
        return JSONResponse({"status": "accepted"}, status_code=202)

    async def sms_verify(self, request: Request) -> Response:
        data = await read_json(request)
        result = await self.s.logins.sms(
            field(data, "msisdn", limit=32), field(data, "code", limit=16), client_ip=client_ip(request)
        )
        await self._end_previous(request)
        return self._session_answer(result)

    async def register(self, request: Request) -> Response:
        data = await read_json(request)
        registered = await self.s.registrar.register(
            login=field(data, "login", limit=254),
            identifier=field(data, "identifier", limit=64),
            proof_type=field(data, "proof_type", limit=32),
            proof=field(data, "proof", limit=256),
            password=field(data, "password"),
            client_ip=client_ip(request),
            language=language_of(request),
        )
        await self._end_previous(request)
        account = registered.account
        token, session = await self.s.sessions.create(session_data_for(account, ("password",)))
        return self._session_answer(
            LoginResult(token, session),
            status=201,
            account={
                "id": account.id,
                "login": account.login,
                "role": account.role,
                "access_level": account.access_level,
                "bound_customer": account.bound_customer,
                "bound_msisdn": account.bound_msisdn,
            },
        )

    async def totp_enroll(self, request: Request) -> Response:
        session = await self.s.request_session(request)
        if session is None:
            raise SecretRejected("session_required")
        msisdn = None
        if request.headers.get("content-type", "").startswith("application/json"):
            msisdn = field(await read_json(request), "msisdn", required=False, limit=32) or None
        enrolment = await self.s.logins.start_enrolment(session)
        # The first TOTP also needs an SMS-TAN to a line of the account (gateway.auth.possession).
        sms_to = await self.s.logins.send_possession_code(
            session, client_ip=client_ip(request), msisdn=msisdn, language=language_of(request)
        )
        return JSONResponse(
            {"secret": enrolment.secret, "uri": enrolment.uri, "qr_svg": enrolment.qr_svg, "sms_to": sms_to}
        )

    async def totp_confirm(self, request: Request) -> Response:
        data = await read_json(request)
        token = await self._token(request)
        result = await self.s.logins.confirm_enrolment(
            token,
            field(data, "code", limit=16),
            client_ip=client_ip(request),
            sms_code=field(data, "sms_code", required=False, limit=16),
            language=language_of(request),
        )
        return self._session_answer(result, totp="active")

    async def step_up(self, request: Request) -> Response:
        data = await read_json(request)
        token = await self._token(request)
        method = field(data, "method", limit=8)
        if method not in ("totp", "sms"):
            raise InvalidInput("bad_method", "method")
        result = await self.s.logins.step_up(
            token,
            method,
            field(data, "code", limit=16),
            client_ip=client_ip(request),
            msisdn=field(data, "msisdn", required=False, limit=32) or None,
        )
        return self._session_answer(result)

    async def logout(self, request: Request) -> Response:
        everywhere = False
        if request.headers.get("content-type", "").startswith("application/json"):
            data = await read_json(request)
            everywhere = data.get("everywhere") is True
        token = self.s.request_token(request)
        logout_url = None
        if token is not None:
            session = await self.s.sessions.lookup(token)
            logout_url = await self.s.end_session(token)
            if everywhere and session is not None and session.data.account_id:
                await self.s.sessions.revoke_account(session.data.account_id)
        # logout_url: the OIDC provider's end-session URL, for the client to open.
        response = JSONResponse({"status": "logged_out", "everywhere": everywhere, "logout_url": logout_url})
        self.s.cookies.clear_session(response)
        return response

    async def me(self, request: Request) -> Response:
        session = await self.s.request_session(request)
        if session is None:
            raise SecretRejected("session_required")
        view = session_view(session, self.s.clock())
        if session.data.account_id:
            account = await self.s.accounts.get(session.data.account_id)
            view["totp_enabled"] = bool(account and account.totp_enabled)
        return JSONResponse(view)
