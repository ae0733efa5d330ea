"""The OIDC ports implemented over the auth component's real classes.

`AuthOidcAccounts`: links live in `links.OidcLinks`; accounts in
`gateway.auth.accounts.Accounts`; the proof is checked by
`gateway.auth.registration.Registrar.check_proof` (same regulator, same policy
``can_register``, same proofs as a registration). The account's binding comes
from the policy's verdict, never from a claim.

`AuthOidcSessions`: sessions are `gateway.auth.sessions.Sessions`; the cookie is
auth's session cookie (name and flags handed in by the composition root).
"""

from __future__ import annotations

import hashlib

from starlette.responses import Response

from gateway.auth.accounts import Account, AccountExists, Accounts, NewAccount, normalize_login
from gateway.auth.base import Credentials
from gateway.auth.cookies import CookiePolicy
from gateway.auth.login import session_data_for
from gateway.auth.oidc.links import OidcLinks
from gateway.auth.oidc.ports import IssuedSession, LinkRequest
from gateway.auth.outcomes import Conflict
from gateway.auth.registration import Registrar, valid_login
from gateway.auth.sessions import Sessions, session_handle, token_from_bearer
from gateway.directory.base import Directory
from gateway.principal import AccessLevel, Principal, Role

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
        target, verdict = await self._registrar.check_proof(
            request.identifier, request.proof_type, request.proof, client_ip=request.client_ip
        )
        assert verdict.role is not None and verdict.access_level is not None
        account: Account | None = None
        if verdict.role != "customer" and verdict.bound_msisdn is not None:
            # The line already has its account (registered with the same kind of
            # proof): the subject is linked to it instead of making a second one.
            existing = await self._accounts.find_bound(
                verdict.role, bound_msisdn=verdict.bound_msisdn
            )
            account = existing[0] if len(existing) == 1 else None
            if len(existing) > 1:
                raise Conflict("already_registered")
        if account is None:
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
            raise Conflict("oidc_already_linked")
        return account.id

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
            except AccountExists:
                continue
        raise Conflict("login_taken")


class AuthOidcSessions:
    def __init__(
        self,
        *,
        sessions: Sessions,
        accounts: Accounts,
        cookies: CookiePolicy,
    ) -> None:
        self._sessions = sessions
        self._accounts = accounts
        self._cookies = cookies

    async def create(
        self, principal: Principal, *, client_ip: str, max_lifetime: float
    ) -> IssuedSession:
        account = await self._accounts.get(principal.subject)
        if account is None:
            raise Conflict("account_gone")
        data = session_data_for(account, ("oidc",), provider=principal.provider)
        token, session = await self._sessions.create(data)
        cookies = self._cookies

        def set_cookie(response: Response) -> None:
            cookies.set_session(response, token)

        return IssuedSession(handle=session.handle, set_cookie=set_cookie)

    async def end_handle(self, handle: str) -> None:
        await self._sessions.revoke_handle(handle)

    def session_handle(self, credentials: Credentials) -> str | None:
        # Same precedence as auth's SessionAuthenticator: a bearer header wins.
        token: str | None
        if credentials.authorization:
            scheme, _, value = credentials.authorization.strip().partition(" ")
            token = token_from_bearer(value.strip()) if scheme.lower() == "bearer" else None
        else:
            token = credentials.cookies.get(self._cookies.session_name)
        return session_handle(token) if token else None

    def clear_cookie(self, response: Response) -> None:
        self._cookies.clear_session(response)
