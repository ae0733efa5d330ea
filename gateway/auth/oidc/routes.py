"""The HTTP endpoints of OIDC (all under ``/auth/oidc/``).

    GET  /auth/oidc/providers           the login providers, for the login page (JSON)
    GET  /auth/oidc/login?provider=&next=   → 302 to the provider (PKCE, state, nonce)
    GET  /auth/oidc/callback            → 303 to ``next`` with a session, or to the link page
    GET  /auth/oidc/link                the form for the registration proof (unknown subject)
    POST /auth/oidc/link                JSON or form {identifier, proof_type, proof}: a NEW
                                        account; or {link_to: "account"}: the account this
                                        browser is logged in to (password + second factor)
    POST /auth/oidc/logout              ends the session; JSON {logout_url} or 303 to the provider
    POST /auth/oidc/backchannel-logout  Back-Channel Logout 1.0 (form field logout_token)

Failures raise the gateway's errors (one mapping renders them), except the
back-channel endpoint, whose answers the spec fixes (200 / 400 JSON).
"""

from __future__ import annotations

import hashlib
import html
import json
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from gateway.auth.base import Credentials
from gateway.auth.body import read_bounded
from gateway.auth.cookies import of_request
from gateway.auth.crypto import SecretBox, SecretBoxError
from gateway.auth.oidc.backchannel import BackchannelLogout
from gateway.auth.oidc.config import OidcSettings
from gateway.auth.oidc.errors import OidcLoginFailed, ProviderUnavailable, TokenRejected
from gateway.auth.oidc.flow import CompletedLogin, LoginFlow
from gateway.auth.oidc.lifetime import OidcSessionRecord, SessionRecords
from gateway.auth.oidc.ports import ExistingLink, LinkRequest, OidcAccounts, OidcSessions
from gateway.auth.oidc.state import random_token
from gateway.auth.origin import CrossSiteCheck, uses_bearer
from gateway.errors import BadRequest, Forbidden, GatewayError
from gateway.store.base import Store

__all__ = ["OidcEndpoints", "PendingLink"]

log = logging.getLogger("gateway.auth.oidc")

MAX_FORM_BYTES = 16 * 1024


@dataclass(frozen=True, slots=True)
class PendingLink:
    provider: str
    issuer: str
    subject: str
    sid: str | None
    email: str | None
    next: str
    id_token: str
    id_token_exp: float
    refresh_token: str | None
    grant_expires_at: float


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "replace")).hexdigest()


def credentials_of(request: Request) -> Credentials:
    return Credentials(
        authorization=request.headers.get("authorization"),
        cookies=of_request(request),
        client_ip=request.client.host if request.client else "unknown",
        method=request.method,
        path=request.url.path,
    )


def _client_ip(request: Request) -> str:
    from gateway.auth.web import client_ip

    return client_ip(request)


def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


_ALREADY_REGISTERED = (
    "Für diese Rufnummer gibt es bereits ein Konto. Melden Sie sich mit Passwort (und zweitem "
    "Faktor) an und verknüpfen Sie die Anmeldung auf der Kontoseite (/auth/account).",
    "There is already an account for this number. Log in to it with its password (and second "
    "factor) and link this login from the account page (/auth/account).",
)


def already_registered(as_json: bool) -> Response:
    """409 ``already_registered``, as password registration answers, plus how to link."""
    de, en = _ALREADY_REGISTERED
    if as_json:
        response: Response = JSONResponse(
            {
                "error": "conflict",
                "reason": "already_registered",
                "message": en,
                "message_de": de,
                "link_from": "/auth/account",
            },
            status_code=409,
        )
    else:
        response = HTMLResponse(
            '<!doctype html><html lang="de"><head><meta charset="utf-8"><title>409</title></head>'
            f"<body><main><h1>{html.escape(de)}</h1><p>{html.escape(en)}</p>"
            '<p><a href="/auth/login?next=/auth/account">Anmelden / Log in</a></p>'
            "<p><small>already_registered</small></p></main></body></html>",
            status_code=409,
        )
        response.headers["Content-Security-Policy"] = "default-src 'none'; frame-ancestors 'none'"
    return _no_store(response)


class OidcEndpoints:
    def __init__(
        self,
        *,
        settings: OidcSettings,
        flow: LoginFlow,
        accounts: OidcAccounts,
        sessions: OidcSessions,
        records: SessionRecords,
        backchannel: BackchannelLogout,
        store: Store,
        prefix: str,
        public_url: str,
        cookie_secure: bool,
        clock: Callable[[], float],
        box: SecretBox,
    ) -> None:
        self._box = box
        self._settings = settings
        self._flow = flow
        self._accounts = accounts
        self._sessions = sessions
        self._records = records
        self._backchannel = backchannel
        self._store = store
        self._prefix = prefix
        self._public_url = public_url.rstrip("/")
        self._secure = cookie_secure
        self._clock = clock
        self.state_cookie = "__Host-pg_oidc" if cookie_secure else "pg_oidc"
        self.link_cookie = "__Host-pg_oidc_link" if cookie_secure else "pg_oidc_link"

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/auth/oidc/providers", self.providers, methods=["GET"]),
            Route("/auth/oidc/login", self.login, methods=["GET"]),
            Route("/auth/oidc/callback", self.callback, methods=["GET"]),
            Route("/auth/oidc/link", self.link_page, methods=["GET"]),
            Route("/auth/oidc/link", self.link_submit, methods=["POST"]),
            Route("/auth/oidc/logout", self.logout, methods=["POST"]),
            Route("/auth/oidc/backchannel-logout", self.backchannel_logout, methods=["POST"]),
        ]

    def _set(self, response: Response, name: str, value: str, max_age: int) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/",
            secure=self._secure,
            httponly=True,
            samesite="lax",
        )

    def _clear(self, response: Response, name: str) -> None:
        response.delete_cookie(name, path="/", secure=self._secure, httponly=True, samesite="lax")

    # -- login page support -------------------------------------------------------------------

    def providers_for_login_page(self) -> list[dict[str, str]]:
        return [
            {
                "name": p.name,
                "display_name": p.display_name,
                "login_url": f"/auth/oidc/login?provider={p.name}",
            }
            for p in self._flow.login_providers()
        ]

    async def providers(self, request: Request) -> Response:
        return _no_store(JSONResponse({"providers": self.providers_for_login_page()}))

    # -- authorization request and callback ---------------------------------------------------

    async def login(self, request: Request) -> Response:
        url, binding = await self._flow.start(
            request.query_params.get("provider"), request.query_params.get("next")
        )
        response = RedirectResponse(url, status_code=302)
        self._set(response, self.state_cookie, binding, int(self._settings.login_timeout_seconds))
        return _no_store(response)

    async def callback(self, request: Request) -> Response:
        query = {k: v for k, v in request.query_params.items()}
        completed = await self._flow.finish(query, of_request(request).get(self.state_cookie))
        identity = completed.identity
        principal = await self._accounts.principal_for_subject(
            identity.issuer,
            identity.subject,
            provider=completed.provider.name,
            auth_methods=frozenset({"oidc"}),
        )
        if principal is None:
            response = await self._start_link(completed)
        else:
            response = RedirectResponse(completed.next, status_code=303)
            await self._open_session(response, completed, principal.subject, _client_ip(request))
            log.info(
                "oidc login provider=%s account=%s", completed.provider.name, principal.subject
            )
        self._clear(response, self.state_cookie)
        return _no_store(response)

    async def _open_session(
        self, response: Response, c: CompletedLogin | PendingLink, account_id: str, ip: str
    ) -> None:
        provider = c.provider if isinstance(c, PendingLink) else c.provider.name
        issuer = c.issuer if isinstance(c, PendingLink) else c.identity.issuer
        subject = c.subject if isinstance(c, PendingLink) else c.identity.subject
        sid = c.sid if isinstance(c, PendingLink) else c.identity.sid
        principal = await self._accounts.principal_for_subject(
            issuer, subject, provider=provider, auth_methods=frozenset({"oidc"})
        )
        if principal is None or principal.subject != account_id:
            raise OidcLoginFailed("oidc_link_missing", "link vanished during login")
        now = self._clock()
        cap = now + self._settings.max_session_seconds
        ends_at = cap if c.refresh_token else min(cap, c.grant_expires_at)
        issued = await self._sessions.create(
            principal, client_ip=ip, max_lifetime=max(0.0, ends_at - now)
        )
        await self._records.add(
            OidcSessionRecord(
                handle=issued.handle,
                provider=provider,
                issuer=issuer,
                subject=subject,
                sid=sid,
                login_at=now,
                id_token=c.id_token,
                refresh_token=c.refresh_token,
                grant_expires_at=min(c.grant_expires_at, ends_at),
                ends_at=ends_at,
            )
        )
        issued.set_cookie(response)

    # -- linking an unknown subject -----------------------------------------------------------

    async def _start_link(self, c: CompletedLogin) -> Response:
        token = random_token()
        pending = PendingLink(
            provider=c.provider.name,
            issuer=c.identity.issuer,
            subject=c.identity.subject,
            sid=c.identity.sid,
            email=c.identity.email if c.identity.email_verified else None,
            next=c.next,
            id_token=c.id_token,
            id_token_exp=c.id_token_exp,
            refresh_token=c.refresh_token,
            grant_expires_at=c.grant_expires_at,
        )
        ttl = self._settings.link_timeout_seconds
        body = asdict(pending)
        context = "oidc-link:" + _digest(token)
        body["id_token"] = self._box.encrypt(pending.id_token, context=context)
        if pending.refresh_token is not None:
            body["refresh_token"] = self._box.encrypt(pending.refresh_token, context=context)
        await self._store.set(self._prefix + "link:" + _digest(token), json.dumps(body), ttl)
        response = RedirectResponse(self._settings.link_page_path, status_code=303)
        self._set(response, self.link_cookie, token, int(ttl))
        log.info(
            "oidc login of an unlinked subject provider=%s: registration proof needed",
            c.provider.name,
        )
        return response

    async def _pending(self, request: Request) -> tuple[str, PendingLink]:
        token = of_request(request).get(self.link_cookie)
        raw = await self._store.get(self._prefix + "link:" + _digest(token)) if token else None
        if token is None or raw is None:
            raise OidcLoginFailed("oidc_link_expired", "no pending link for this browser")
        body = json.loads(raw)
        context = "oidc-link:" + _digest(token)
        try:
            body["id_token"] = self._box.decrypt(body["id_token"], context=context)
            if body.get("refresh_token") is not None:
                body["refresh_token"] = self._box.decrypt(body["refresh_token"], context=context)
        except SecretBoxError:
            raise OidcLoginFailed("oidc_link_expired", "pending link does not decrypt") from None
        return token, PendingLink(**body)

    async def link_page(self, request: Request) -> Response:
        _, pending = await self._pending(request)
        provider = html.escape(pending.provider)
        own = await self._sessions.logged_in_account(credentials_of(request))
        existing = ""
        if own is not None:
            who = html.escape(own.login or own.account_id)
            existing = f"""<section id="link-existing"><h2>Mit Ihrem Konto verknüpfen / Link to your account</h2>
<p>Sie sind als <strong>{who}</strong> angemeldet. / You are logged in as <strong>{who}</strong>.</p>
<form method="post" action="/auth/oidc/link"><input type="hidden" name="link_to" value="account">
<button type="submit">{provider} mit diesem Konto verknüpfen / Link {provider} to this account</button>
</form></section>"""
        body = f"""<!doctype html><html lang="de"><head><meta charset="utf-8">
<title>Konto verknüpfen / Link your account</title></head><body>
<h1>Konto verknüpfen / Link your account</h1>
<p>Ihre Anmeldung bei {provider} ist noch keinem Portal-Konto zugeordnet. / Your {provider}
login is not linked to a portal account yet.</p>
{existing}
<section id="link-new"><h2>Neues Konto / New account</h2>
<p>Weisen Sie einmal nach, wem der Vertrag gehört. Hat die Rufnummer schon ein Konto, melden
Sie sich damit an und verknüpfen Sie auf der Kontoseite. / Give the registration proof once. If the
number already has an account, log in to it and link from the account page.</p>
<form method="post" action="/auth/oidc/link">
<label>Rufnummer oder Kundennummer / Phone or customer number <input name="identifier" required></label>
<label>Nachweis / Proof <select name="proof_type">
<option value="kundenkennwort">Kundenkennwort</option><option value="puk">PUK</option>
<option value="invoice_number">Rechnungsnummer / Invoice number</option></select></label>
<label>Wert / Value <input name="proof" type="password" required autocomplete="off"></label>
<button type="submit">Verknüpfen / Link</button></form></section></body></html>"""
        response = HTMLResponse(body)
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["X-Frame-Options"] = "DENY"
        return _no_store(response)

    async def _read_link_form(self, request: Request) -> tuple[dict[str, Any], bool]:
        body = await read_bounded(request, MAX_FORM_BYTES)
        if body is None:
            raise BadRequest("bad_request", "body too large")
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                data = json.loads(body)
            except ValueError:
                raise BadRequest("bad_json") from None
            if not isinstance(data, dict):
                raise BadRequest("bad_json")
            return data, True
        if ctype == "application/x-www-form-urlencoded":
            form = await request.form()
            return {k: v for k, v in form.items() if isinstance(v, str)}, False
        raise BadRequest("unsupported_media_type")

    def _same_site_only(self, request: Request) -> None:
        """The gateway's one cross-site check (`gateway.auth.origin`); the link and session
        cookies are these endpoints' credentials, a Bearer request is exempt."""
        if not uses_bearer(request.headers.get("authorization")):
            CrossSiteCheck(self._public_url, ()).check(
                request.method, request.scope["headers"], cookie_credential=True
            )

    async def link_submit(self, request: Request) -> Response:
        self._same_site_only(request)
        token, pending = await self._pending(request)
        data, as_json = await self._read_link_form(request)
        ip = _client_ip(request)
        if data.get("link_to") == "account":
            return await self._link_to_own_account(request, token, pending, as_json)
        fields = {k: data.get(k) for k in ("identifier", "proof_type", "proof")}
        if not all(isinstance(v, str) and v and len(v) <= 256 for v in fields.values()):
            raise BadRequest("bad_request", "identifier, proof_type and proof are required")
        try:
            account_id = await self._accounts.link(
                LinkRequest(
                    provider=pending.provider,
                    issuer=pending.issuer,
                    subject=pending.subject,
                    identifier=str(fields["identifier"]),
                    proof_type=str(fields["proof_type"]),
                    proof=str(fields["proof"]),
                    client_ip=ip,
                    login_hint=pending.email,
                )
            )
        except GatewayError as exc:
            if exc.status_code == 409 and exc.reason == "already_registered":
                log.info("oidc link refused provider=%s: the line has its account", pending.provider)
                return already_registered(as_json)
            raise
        await self._store.delete(self._prefix + "link:" + _digest(token))
        log.info("oidc subject linked provider=%s account=%s", pending.provider, account_id)
        response: Response
        if as_json:
            response = JSONResponse({"linked": True, "next": pending.next})
        else:
            response = RedirectResponse(pending.next, status_code=303)
        await self._open_session(response, pending, account_id, ip)
        self._clear(response, self.link_cookie)
        return _no_store(response)

    async def _link_to_own_account(
        self, request: Request, token: str, pending: PendingLink, as_json: bool
    ) -> Response:
        """Link to the account this browser is logged in to (its own login, not a proof).

        The session stays as it is (it carries the account's password and second
        factor); from now on the provider's login opens this account too.
        """
        own = await self._sessions.logged_in_account(credentials_of(request))
        if own is None:
            raise Forbidden(
                "oidc_link_needs_login", "no password (+ second factor) login in this browser"
            )
        await self._accounts.link_existing(
            ExistingLink(
                provider=pending.provider,
                issuer=pending.issuer,
                subject=pending.subject,
                account_id=own.account_id,
            )
        )
        await self._store.delete(self._prefix + "link:" + _digest(token))
        log.info(
            "oidc subject linked to the logged-in account provider=%s account=%s",
            pending.provider,
            own.account_id,
        )
        response: Response
        if as_json:
            response = JSONResponse({"linked": True, "account": own.account_id, "next": "/auth/account"})
        else:
            response = RedirectResponse("/auth/account", status_code=303)
        self._clear(response, self.link_cookie)
        return _no_store(response)

    # -- logout -------------------------------------------------------------------------------

    async def end_session_url(self, handle: str) -> str | None:
        """Forget the session's OIDC record; the provider's logout URL when it has one.

        For auth's ``POST /auth/logout``: call this with the session's handle
        before revoking the session, and send the browser to the URL.
        """
        record = await self._records.get(handle)
        if record is None:
            return None
        await self._records.delete(handle)
        provider = self._flow.provider_any(record.provider)
        if provider is None:
            return None
        try:
            metadata = await provider.discovery.get()
        except ProviderUnavailable:  # logout must work while the provider is down
            log.warning(
                "oidc logout: provider %s unreachable, gateway session ended only", record.provider
            )
            return None
        if not metadata.end_session_endpoint:
            return None
        params = {
            "id_token_hint": record.id_token,
            "client_id": provider.settings.client_id,
            "post_logout_redirect_uri": self._public_url + self._settings.post_logout_path,
        }
        sep = "&" if "?" in metadata.end_session_endpoint else "?"
        return metadata.end_session_endpoint + sep + urlencode(params)

    async def logout(self, request: Request) -> Response:
        self._same_site_only(request)
        handle = self._sessions.session_handle(credentials_of(request))
        url = await self.end_session_url(handle) if handle else None
        if handle:
            await self._sessions.end_handle(handle)
        wants_json = "application/json" in request.headers.get("accept", "")
        response: Response
        if wants_json or url is None:
            response = JSONResponse({"logged_out": True, "logout_url": url})
        else:
            response = RedirectResponse(url, status_code=303)
        self._sessions.clear_cookie(response)
        return _no_store(response)

    async def backchannel_logout(self, request: Request) -> Response:
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        body = await read_bounded(request, MAX_FORM_BYTES) if ctype == "application/x-www-form-urlencoded" else None
        if body is None:
            return _no_store(JSONResponse({"error": "invalid_request"}, status_code=400))
        form = await request.form()
        token = form.get("logout_token")
        if not isinstance(token, str) or not token:
            return _no_store(JSONResponse({"error": "invalid_request"}, status_code=400))
        try:
            ended = await self._backchannel.handle(token)
        except TokenRejected as exc:
            log.warning("back-channel logout refused: %s (%s)", exc.reason, exc.detail)
            return _no_store(
                JSONResponse(
                    {"error": "invalid_request", "error_description": exc.reason}, status_code=400
                )
            )
        log.info("back-channel logout: %d gateway session(s) ended", ended)
        return _no_store(Response(status_code=200))
