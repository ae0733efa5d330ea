"""The OIDC ports implemented over the auth component's real classes.

`AuthOidcAccounts`: links live in `links.OidcLinks`; accounts in
`gateway.auth.accounts.Accounts`; the proof is checked by
`gateway.auth.registration.Registrar.check_proof` (same regulator, same policy
``can_register``, same proofs and the same duplicate rule as a registration). The
account's binding comes from the policy's verdict, never from a claim. A proof only
ever makes a NEW account; an existing one is linked only from its own login
(`AuthOidcSessions.logged_in_account`, then `AuthOidcAccounts.link_existing`).

`AuthOidcSessions`: sessions are `gateway.auth.sessions.Sessions`; the cookie is
auth's session cookie (name and flags handed in by the composition root).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable

from starlette.responses import Response

from gateway.auth.accounts import Account, AccountExists, Accounts, NewAccount, normalize_login
from gateway.auth.base import Credentials
from gateway.auth.cookies import CookiePolicy
from gateway.auth.login import session_data_for
from gateway.auth.oidc.links import OidcLinks
from gateway.auth.oidc.ports import ExistingLink, IssuedSession, LinkRequest, LoggedInAccount
from gateway.auth.outcomes import Conflict
from gateway.auth.registration import Registrar, valid_login
from gateway.auth.sessions import ENDS_AT, Sessions, session_handle, token_from_bearer
from gateway.directory.base import Directory
from gateway.principal import SECOND_FACTORS, AccessLevel, Principal, Role

__all__ = ["AuthOidcAccounts", "AuthOidcSessions", "principal_of"]


def principal_of(account: Account, *, auth_methods: frozenset[str], provider: str) -> Principal:
    return Principal(
        subject=account.id,
        kind="account",
        login=account.login,
        person_id=account.person_id,
        access_level=account.access_level,
        auth_methods=auth_methods,
        role=account.role,
        bound_customer=account.bound_customer,
        bound_msisdn=account.bound_msisdn,
        provider=provider,
    )


class AuthOidcAccounts:
    def __init__(
        self, *, accounts: Accounts, links: OidcLinks, registrar: Registrar, directory: Directory
    ) -> None:
        self._accounts = accounts
        self._links = links
        self._registrar = registrar
        self._directory = directory

    async def principal_for_subject(
        self, issuer: str, subject: str, *, provider: str, auth_methods: frozenset[str]
    ) -> Principal | None:
        account_id = await self._links.account_of(issuer, subject)
        if account_id is None:
            return None
        account = await self._accounts.get(account_id)
        if account is None:
            return None
        return principal_of(account, auth_methods=auth_methods, provider=provider)

    async def link(self, request: LinkRequest) -> str:
        """A NEW account for a correct proof, where password registration would make one.

        A registration proof (PUK, invoice number, Kundenkennwort, SMS-TAN) proves a
        contract, not an account: when the line already has its account, the answer
        is the same 409 ``already_registered`` as registration, never that account.
        Its owner links from the account page (`link_existing`), after its own login.
        """
        target, verdict = await self._registrar.check_proof(
            request.identifier, request.proof_type, request.proof, client_ip=request.client_ip
        )
        assert verdict.role is not None and verdict.access_level is not None
        if await self._registrar.already_registered(verdict):
            raise Conflict("already_registered")
        if await self._links.account_of(request.issuer, request.subject) is not None:
            raise Conflict("oidc_already_linked")
        person_id = None
        if verdict.role != "customer" and target.msisdn is not None:
            line = await self._directory.line(target.msisdn)
            person_id = None if line is None else line.user_person_id
        account = await self._create(
            request,
            verdict.role,
            verdict.access_level,
            target.identifier,
            verdict.bound_customer,
            verdict.bound_msisdn,
            person_id,
        )
        if not await self._links.add(request.issuer, request.subject, account.id, request.provider):
            await self._accounts.delete(account.id)
            raise Conflict("oidc_already_linked")
        return account.id

    async def link_existing(self, request: ExistingLink) -> None:
        if await self._accounts.get(request.account_id) is None:
            raise Conflict("account_gone")
        if not await self._links.add(
            request.issuer, request.subject, request.account_id, request.provider
        ):
            raise Conflict("oidc_already_linked")

    async def _create(
        self,
        request: LinkRequest,
        role: Role,
        access_level: AccessLevel,
        identifier: str,
        bound_customer: str | None,
        bound_msisdn: str | None,
        person_id: str | None,
    ) -> Account:
        digest = hashlib.sha256(f"{request.issuer}\x00{request.subject}".encode()).hexdigest()[:16]
        candidates = []
        if request.login_hint and valid_login(request.login_hint):
            candidates.append(normalize_login(request.login_hint))
        candidates.append(f"oidc.{request.provider.lower()}.{digest}")
        for login in candidates:
            try:
                return await self._accounts.create(
                    NewAccount(
                        login=login,
                        role=role,
                        access_level=access_level,
                        registered_with=f"oidc:{request.proof_type}",
                        identifier=identifier,
                        password_hash=None,
                        bound_customer=bound_customer,
                        bound_msisdn=bound_msisdn,
                        person_id=person_id,
                    )
                )
            except AccountExists as exc:
                if exc.reason == "already_registered":  # a parallel registration or link won the line
                    raise Conflict("already_registered") from exc
                continue
        raise Conflict("login_taken")


class AuthOidcSessions:
    def __init__(
        self,
        *,
        sessions: Sessions,
        accounts: Accounts,
        cookies: CookiePolicy,
        clock: Callable[[], float],
    ) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._cookies = cookies
        self._clock = clock

    async def create(
        self, principal: Principal, *, client_ip: str, max_lifetime: float
    ) -> IssuedSession:
        account = await self._accounts.get(principal.subject)
        if account is None:
            raise Conflict("account_gone")
        data = dataclasses.replace(
            session_data_for(account, ("oidc",), provider=principal.provider),
            # Ends with the provider's grant (no refresh token) or the configured cap:
            # every lookup, the store TTL and /auth/me's expires_at say the same.
            extra={ENDS_AT: repr(self._clock() + max_lifetime)},
        )
        token, session = await self._sessions.create(data)
        cookies = self._cookies

        def set_cookie(response: Response) -> None:
            cookies.set_session(response, token)

        return IssuedSession(handle=session.handle, set_cookie=set_cookie)

    async def end_handle(self, handle: str) -> None:
        await self._sessions.revoke_handle(handle)

    async def logged_in_account(self, credentials: Credentials) -> LoggedInAccount | None:
        token = self._token(credentials)
        session = await self._sessions.lookup(token) if token else None
        if session is None or session.data.pending or session.data.account_id is None:
            return None
        account = await self._accounts.get(session.data.account_id)
        if account is None or not account.has_password:
            return None
        methods = set(session.data.methods)
        if "password" not in methods:
            return None  # an OIDC or SMS-TAN session is not the account's own login
        if account.totp_enabled and not methods & SECOND_FACTORS:
            return None
        return LoggedInAccount(account_id=account.id, login=account.login)

    def _token(self, credentials: Credentials) -> str | None:
        # Same precedence as auth's SessionAuthenticator: a bearer header wins.
        if credentials.authorization:
            scheme, _, value = credentials.authorization.strip().partition(" ")
            return token_from_bearer(value.strip()) if scheme.lower() == "bearer" else None
        return credentials.cookies.get(self._cookies.session_name)

    def session_handle(self, credentials: Credentials) -> str | None:
        token = self._token(credentials)
        return session_handle(token) if token else None

    def clear_cookie(self, response: Response) -> None:
        self._cookies.clear_session(response)
