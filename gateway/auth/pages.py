"""The HTML login pages (German and English), built on the same services as the JSON API.

Every form post is CSRF-checked (`web.check_csrf`: double-submit token in a
``__Host-`` cookie plus the Origin / Sec-Fetch-Site check); a failed check is a
403 page and nothing else happens. ``next`` is kept through every step and only
followed when it is a same-origin relative path (`web.safe_next`). Every page is
``no-store`` with a CSP that forbids framing. Errors are shown at the top
(``role="alert"``) and tied to the field (``aria-invalid`` + ``aria-describedby``).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.auth.cookies import of_request
from gateway.auth.login import LoginResult, session_data_for
from gateway.auth.notices import lines_of_account
from gateway.auth.outcomes import InvalidInput
from gateway.auth.services import AuthServices
from gateway.auth.sessions import Session
from gateway.auth.texts import text
from gateway.auth.web import (
    ErrorResponse,
    check_csrf,
    check_origin,
    client_ip,
    dependency_error,
    language_of,
    message_lookup,
    new_csrf_token,
    safe_next,
    secure_headers,
)
from gateway.errors import Forbidden, GatewayError

__all__ = ["TEMPLATES_DIR", "Pages"]

log = logging.getLogger("gateway.auth")

TEMPLATES_DIR = Path(__file__).resolve().parent.parent / "web" / "templates"
Handler = Callable[[Request], Awaitable[Response]]

ROLES: dict[str, tuple[str, tuple[str, ...]]] = {
    "holder": ("role_holder", ("kundenkennwort",)),
    "member": ("role_member", ("puk", "invoice_number")),
    "split": ("role_split", ("puk", "invoice_number")),
    "line": ("role_line", ("sms_tan",)),
}



#: The text fields the templates render with `field()`: an error named for one is shown there.
_TEXT_FIELDS = frozenset({"login", "password", "code", "sms_code", "msisdn", "identifier", "proof"})

class Pages:
    def __init__(self, services: AuthServices) -> None:
        self.s = services
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=select_autoescape(["html"]),
            auto_reload=False,
        )
        self.default_next = services.config.auth.default_next

    # ------------------------------------------------------------------ plumbing
    def guarded(self, handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except GatewayError as exc:
                return ErrorResponse(exc, extra_headers={"Content-Security-Policy": "frame-ancestors 'none'"})
            except Exception as exc:
                mapped = dependency_error(exc)
                if mapped is None:
                    raise
                log.error("auth dependency failed: %s", mapped.detail)
                return ErrorResponse(
                    mapped, extra_headers={"Content-Security-Policy": "frame-ancestors 'none'"}
                )
            return secure_headers(response, html=True)

        return run

    def _lang(self, request: Request, form: Mapping[str, Any] | None = None) -> str:
        return language_of(request, self.s.config.web.default_language, form)

    def _csrf(self, request: Request) -> tuple[str, bool]:
        existing = of_request(request).get(self.s.cookies.csrf_name)
        if existing and 20 <= len(existing) <= 100:
            return existing, False
        return new_csrf_token(), True

    def render(
        self,
        request: Request,
        template: str,
        title_key: str,
        *,
        status: int = 200,
        form: Mapping[str, Any] | None = None,
        **ctx: Any,
    ) -> Response:
        lang = self._lang(request, form)
        csrf, fresh = self._csrf(request)
        source = form.get("next") if form is not None else request.query_params.get("next")
        nxt = safe_next(str(source) if source else None, self.default_next)

        def t(key: str) -> str:
            return text(key, lang)

        ctx.setdefault("error", None)
        ctx.setdefault("error_field", None)
        ctx.setdefault("info", None)
        ctx.setdefault("hint_url", None)
        # An error is said once: at its field when the page has that field, else in the banner.
        ctx["error_at_field"] = ctx["error_field"] in _TEXT_FIELDS and not ctx["hint_url"]
        body = self.env.get_template(template).render(
            lang=lang, t=t, title=t(title_key), csrf=csrf, next=nxt, next_q=quote(nxt, safe=""), **ctx
        )
        response = HTMLResponse(body, status_code=status)
        response.headers["Content-Language"] = lang
        if fresh:
            self.s.cookies.set_csrf(response, csrf)
        if request.query_params.get("lang") in ("de", "en"):
            self.s.cookies.set_language(response, lang)
        return response

    async def _form(self, request: Request) -> FormData:
        check_origin(request, self.s.cross_site)  # before the body is read
        form = await request.form(max_files=0, max_fields=20, max_part_size=16 * 1024)
        token = form.get("csrf_token")
        check_csrf(
            request, token if isinstance(token, str) else None, self.s.cookies.csrf_name, self.s.cross_site
        )
        return form

    @staticmethod
    def _str(form: FormData, name: str, limit: int = 1024) -> str:
        value = form.get(name)
        return value[:limit] if isinstance(value, str) else ""

    def _next(self, form: FormData) -> str:
        return safe_next(self._str(form, "next", 2048) or None, self.default_next)

    def _error(self, exc: GatewayError, lang: str) -> tuple[str, str | None]:
        message = message_lookup(exc.reason, lang) or text("error", lang)
        return message, getattr(exc, "field", None)

    def _redirect(self, url: str, result: LoginResult | None = None) -> Response:
        response = RedirectResponse(url, status_code=303)
        if result is not None:
            self.s.cookies.set_session(response, result.token)
        return response

    async def _end_previous(self, request: Request) -> None:
        old = self.s.cookies.session_token(request)
        if old is not None:
            await self.s.sessions.revoke(old)

    # ------------------------------------------------------------------ login
    async def login_page(self, request: Request) -> Response:
        info = text("logged_out", self._lang(request)) if request.query_params.get("logged_out") else None
        return self.render(
            request,
            "login.html",
            "login_title",
            login_value="",
            info=info,
            oidc_url=self.s.config.auth.oidc_login_url,
            oidc_providers=self.s.login_providers,
        )

    async def login_post(self, request: Request) -> Response:
        form = await self._form(request)
        lang = self._lang(request, form)
        login = self._str(form, "login", 254)
        try:
            result = await self.s.logins.password(
                login, self._str(form, "password"), client_ip=client_ip(request)
            )
        except GatewayError as exc:
            message, fld = self._error(exc, lang)
            return self.render(
                request,
                "login.html",
                "login_title",
                status=exc.status_code,
                form=form,
                error=message,
                error_field=fld or "password",
                login_value=login,
                oidc_url=self.s.config.auth.oidc_login_url,
                oidc_providers=self.s.login_providers,
            )
        await self._end_previous(request)
        nxt = self._next(form)
        if result.pending:
            return self._redirect("/auth/login/totp?" + urlencode({"next": nxt, "lang": lang}), result)
        return self._redirect(nxt, result)

    async def totp_page(self, request: Request) -> Response:
        return self.render(request, "totp.html", "totp_title", action="/auth/login/totp")

    async def totp_post(self, request: Request) -> Response:
        form = await self._form(request)
        token = self.s.cookies.session_token(request) or ""
        try:
            result = await self.s.logins.totp(
                token, self._str(form, "code", 16), client_ip=client_ip(request)
            )
        except GatewayError as exc:
            message, _ = self._error(exc, self._lang(request, form))
            return self.render(
                request,
                "totp.html",
                "totp_title",
                status=exc.status_code,
                form=form,
                error=message,
                error_field="code",
                action="/auth/login/totp",
            )
        return self._redirect(self._next(form), result)

    # ------------------------------------------------------------------ SMS
    async def sms_page(self, request: Request) -> Response:
        sent = request.query_params.get("sent") == "1"
        msisdn = self.s.sms.normalize(request.query_params.get("msisdn", "")) or ""
        info = text("sms_sent", self._lang(request)) if sent else None
        return self.render(request, "sms.html", "sms_login", sent=sent, msisdn=msisdn, info=info)

    async def sms_send_post(self, request: Request) -> Response:
        form = await self._form(request)
        lang = self._lang(request, form)
        raw = self._str(form, "msisdn", 32)
        number = self.s.sms.normalize(raw)
        back_to = self._str(form, "return_to", 16)
        nxt = self._next(form)
        if number is None:
            exc = InvalidInput("invalid_msisdn", "msisdn")
            message, fld = self._error(exc, lang)
            if back_to == "register":
                return await self._register_form(
                    request, "line", form=form, status=400, error=message, error_field="msisdn"
                )
            return self.render(
                request,
                "sms.html",
                "sms_login",
                status=400,
                form=form,
                sent=False,
                msisdn=raw,
                error=message,
                error_field=fld,
            )
        await self.s.sms.send(number, client_ip=client_ip(request), language=lang)
        if back_to == "register":
            return self._redirect(
                "/auth/register?"
                + urlencode({"role": "line", "identifier": number, "sent": "1", "lang": lang})
            )
        if back_to == "step-up":
            return self._redirect(
                "/auth/step-up?"
                + urlencode({"method": "sms", "sent": "1", "msisdn": number, "next": nxt, "lang": lang})
            )
        return self._redirect(
            "/auth/login/sms?" + urlencode({"msisdn": number, "sent": "1", "next": nxt, "lang": lang})
        )

    async def sms_verify_post(self, request: Request) -> Response:
        form = await self._form(request)
        msisdn = self._str(form, "msisdn", 32)
        try:
            result = await self.s.logins.sms(
                msisdn, self._str(form, "code", 16), client_ip=client_ip(request)
            )
        except GatewayError as exc:
            message, _ = self._error(exc, self._lang(request, form))
            return self.render(
                request,
                "sms.html",
                "sms_login",
                status=exc.status_code,
                form=form,
                sent=True,
                msisdn=msisdn,
                error=message,
                error_field="code",
            )
        await self._end_previous(request)
        return self._redirect(self._next(form), result)

    # ------------------------------------------------------------------ registration
    async def register_page(self, request: Request) -> Response:
        role = request.query_params.get("role", "")
        if role not in ROLES:
            return self.render(request, "register_choose.html", "register_title")
        info = None
        if request.query_params.get("sent") == "1":
            info = text("sms_sent", self._lang(request))
        return await self._register_form(request, role, info=info)

    async def _register_form(
        self, request: Request, role: str, *, form: FormData | None = None, status: int = 200, **ctx: Any
    ) -> Response:
        label, proofs = ROLES[role]
        source = form if form is not None else request.query_params
        identifier = str(source.get("identifier") or source.get("msisdn") or "")[:64]
        proof_type = str(source.get("proof_type") or proofs[0])
        return self.render(
            request,
            "register.html",
            "register_title",
            status=status,
            form=form,
            role=role,
            role_label=label,
            proof_types=proofs,
            proof_type=proof_type,
            identifier=identifier,
            login_value=str(source.get("login") or "")[:254],
            **ctx,
        )

    async def register_post(self, request: Request) -> Response:
        form = await self._form(request)
        role = self._str(form, "role", 16)
        role = role if role in ROLES else "holder"
        try:
            registered = await self.s.registrar.register(
                login=self._str(form, "login", 254),
                identifier=self._str(form, "identifier", 64),
                proof_type=self._str(form, "proof_type", 32),
                proof=self._str(form, "proof", 256),
                password=self._str(form, "password"),
                client_ip=client_ip(request),
                language=self._lang(request, form),
            )
        except GatewayError as exc:
            message, fld = self._error(exc, self._lang(request, form))
            return await self._register_form(
                request,
                role,
                form=form,
                status=exc.status_code,
                error=message,
                error_field=fld or "proof",
                hint_url=getattr(exc, "hint_url", None),
            )
        await self._end_previous(request)
        token, session = await self.s.sessions.create(session_data_for(registered.account, ("password",)))
        return self._redirect("/auth/account?registered=1", LoginResult(token, session))

    # ------------------------------------------------------------------ account, TOTP enrolment
    async def _session_or_login(self, request: Request) -> Session | Response:
        session = await self.s.request_session(request)
        if session is None:
            back = request.url.path + (("?" + request.url.query) if request.url.query else "")
            return self._redirect("/auth/login?" + urlencode({"next": back}))
        return session

    async def account_page(self, request: Request) -> Response:
        session = await self._session_or_login(request)
        if isinstance(session, Response):
            return session
        account = await self.s.accounts.get(session.data.account_id) if session.data.account_id else None
        lang = self._lang(request)
        info = None
        if request.query_params.get("registered"):
            info = text("registered", lang)
        elif request.query_params.get("totp"):
            info = text("enroll_done", lang)
        return self.render(
            request,
            "account.html",
            "account_title",
            info=info,
            who=session.data.login or session.data.bound_msisdn or session.data.subject,
            access=session.data.access_level,
            has_account=account is not None,
            totp_enabled=bool(account and account.totp_enabled),
            oidc_providers=self.s.login_providers,
        )

    async def enroll_page(self, request: Request) -> Response:
        session = await self._session_or_login(request)
        if isinstance(session, Response):
            return session
        return self.render(request, "enroll.html", "enroll_title", enrolment=None)

    async def enroll_post(self, request: Request) -> Response:
        form = await self._form(request)
        session = await self.s.request_session(request)
        if session is None:
            return self._redirect("/auth/login?next=/auth/totp/enroll")
        enrolment = await self.s.logins.start_enrolment(session)
        sms_to = await self.s.logins.send_possession_code(
            session, client_ip=client_ip(request), language=self._lang(request, form)
        )
        return self.render(
            request, "enroll.html", "enroll_title", form=form, enrolment=enrolment, sms_to=sms_to
        )

    async def confirm_post(self, request: Request) -> Response:
        form = await self._form(request)
        session = await self.s.request_session(request)
        token = self.s.cookies.session_token(request)
        if session is None or token is None:
            return self._redirect("/auth/login?next=/auth/totp/enroll")
        try:
            result = await self.s.logins.confirm_enrolment(
                token,
                self._str(form, "code", 16),
                client_ip=client_ip(request),
                sms_code=self._str(form, "sms_code", 16),
                language=self._lang(request, form),
            )
        except GatewayError as exc:
            message, _ = self._error(exc, self._lang(request, form))
            sms_field = exc.reason in ("sms_code_required", "invalid_sms_code")
            assert session.data.account_id is not None
            secret = await self.s.accounts.pending_totp(session.data.account_id)
            enrolment = self.s.totp.enrolment(session.data.login or "", secret) if secret else None
            return self.render(
                request,
                "enroll.html",
                "enroll_title",
                status=exc.status_code,
                form=form,
                enrolment=enrolment,
                sms_to=form.get("sms_to") or None,
                error=message,
                error_field="sms_code" if sms_field else "code",
            )
        return self._redirect("/auth/account?totp=1", result)

    # ------------------------------------------------------------------ step-up, logout
    async def _step_up_context(self, session: Session) -> dict[str, Any]:
        account = await self.s.accounts.get(session.data.account_id) if session.data.account_id else None
        # The methods this person can finish: TOTP when enrolled, an SMS-TAN to a line of the
        # account's own contract (the same rule `Logins.step_up` checks), else enrolling.
        lines = await lines_of_account(self.s.directory, account) if account else []
        if not lines and session.data.bound_msisdn:
            lines = [session.data.bound_msisdn]
        return {
            "totp_enabled": bool(account and account.totp_enabled),
            "sms_number": lines[0] if len(lines) == 1 else "",
            "sms_lines": lines,
            "can_enrol": account is not None,
        }

    async def step_up_page(self, request: Request) -> Response:
        session = await self._session_or_login(request)
        if isinstance(session, Response):
            return session
        info = text("sms_sent", self._lang(request)) if request.query_params.get("sent") == "1" else None
        return self.render(
            request,
            "step_up.html",
            "step_up_title",
            info=info,
            method=request.query_params.get("method", ""),
            sent_to=self.s.sms.normalize(request.query_params.get("msisdn", "")),
            **await self._step_up_context(session),
        )

    async def step_up_post(self, request: Request) -> Response:
        form = await self._form(request)
        session = await self.s.request_session(request)
        token = self.s.cookies.session_token(request)
        if session is None or token is None:
            return self._redirect("/auth/login?" + urlencode({"next": self._next(form)}))
        method = self._str(form, "method", 8) or "totp"
        try:
            result = await self.s.logins.step_up(
                token,
                method,
                self._str(form, "code", 16),
                client_ip=client_ip(request),
                msisdn=self._str(form, "msisdn", 32) or None,
            )
        except GatewayError as exc:
            message, _ = self._error(exc, self._lang(request, form))
            return self.render(
                request,
                "step_up.html",
                "step_up_title",
                status=exc.status_code,
                form=form,
                error=message,
                error_field="code",
                method=method,
                **await self._step_up_context(session),
            )
        return self._redirect(self._next(form), result)

    async def logout_post(self, request: Request) -> Response:
        form = await self._form(request)
        token = self.s.cookies.session_token(request)
        logout_url = None
        if token is not None:
            session = await self.s.sessions.lookup(token)
            logout_url = await self.s.end_session(token)
            if self._str(form, "everywhere", 4) == "1" and session is not None and session.data.account_id:
                await self.s.sessions.revoke_account(session.data.account_id)
        response: Response
        if logout_url:
            # An OIDC login also ends at its provider, which sends the browser back to the login page.
            response = self.render(
                request, "provider_logout.html", "logout", form=form, provider_logout_url=logout_url
            )
        else:
            response = self._redirect(
                "/auth/login?" + urlencode({"logged_out": "1", "lang": self._lang(request, form)})
            )
        self.s.cookies.clear_session(response)
        return response


def forbidden_page() -> GatewayError:
    return Forbidden("csrf_failed")
