"""The login flows: password (+ pending TOTP), SMS-TAN, step-up and TOTP enrolment.

Guard clauses run in order and every failure of a flow raises the same error
(`SecretRejected` with one reason per flow) while the regulator counts it — the
client never learns whether the login exists, the password or the code was
wrong, a code was replayed, or the key is locked.

Privilege changes always produce a fresh session id (`Sessions.create` /
`Sessions.rotate`): password login, TOTP completion, SMS-TAN login, step-up.
The authentication level is computed from the recorded methods and the time of
the last second factor, never stored as a flag.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter

from gateway.auth.accounts import Account, Accounts, normalize_login
from gateway.auth.notices import Notices
from gateway.auth.outcomes import InvalidInput, SecretRejected
from gateway.auth.passwords import PasswordHashing
from gateway.auth.possession import Possession
from gateway.auth.regulation import Regulator
from gateway.auth.sessions import Session, SessionData, Sessions
from gateway.auth.sms import SmsCodes
from gateway.auth.totp import Enrolment, Totp
from gateway.directory.base import Directory
from gateway.errors import StepUpRequired

__all__ = ["LoginResult", "Logins", "session_data_for"]

log = logging.getLogger("gateway.auth.login")


@dataclass(frozen=True, slots=True)
class LoginResult:
    token: str
    session: Session

    @property
    def pending(self) -> bool:
        return self.session.data.pending


def session_data_for(
    account: Account,
    methods: tuple[str, ...],
    *,
    second_factor_at: float | None = None,
    pending: bool = False,
    provider: str | None = None,
) -> SessionData:
    """The session record of a login to `account` (OIDC uses this too)."""
    return SessionData(
        subject=account.id,
        access_level=account.access_level,
        methods=methods,
        account_id=account.id,
        login=account.login,
        person_id=account.person_id,
        role=account.role,
        bound_customer=account.bound_customer,
        bound_msisdn=account.bound_msisdn,
        second_factor_at=second_factor_at,
        pending=pending,
        provider=provider,
    )


class Logins:
    def __init__(
        self,
        *,
        accounts: Accounts,
        sessions: Sessions,
        hashing: PasswordHashing,
        totp: Totp,
        sms: SmsCodes,
        regulator: Regulator,
        directory: Directory,
        clock: Callable[[], float],
        possession: Possession | None = None,
        notices: Notices | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        #: Completed step-ups by second factor, whichever page or API asked (the decision
        #: page's completion rate: a browser's step-up answers 303, an API's 200).
        self.step_ups = Counter(
            "portal_gateway_step_up_completed",
            "Step-ups completed (the session raised to a fresh second factor), by method.",
            ["method"],
            registry=registry,
        ) if registry is not None else None
        self._possession = possession
        self._notices = notices
        self._accounts = accounts
        self._sessions = sessions
        self._hashing = hashing
        self._totp = totp
        self._sms = sms
        self._regulator = regulator
        self._directory = directory
        self._clock = clock

    async def password(self, login: str, password: str, *, client_ip: str) -> LoginResult:
        """Check the password; a full session, or a pending one when TOTP is enrolled."""
        key = normalize_login(login)
        failed = SecretRejected("invalid_credentials")
        if not key or not password or len(key) > 254 or len(password) > 1024:
            raise InvalidInput("bad_request", "login" if not key else "password")
        async with self._regulator.reserved("account", key, client_ip=client_ip) as attempt:
            if not attempt.allowed:
                # Refused before any hashing: a password flood against a locked login costs
                # no Argon2 at all. The answer is the one a wrong password gets.
                await self._regulator.fail(attempt)
                log.info("password login refused: attempts over the limit")
                raise failed
            account = await self._accounts.by_login(key)
            stored = await self._accounts.password_hash(account.id) if account else None
            ok = await self._hashing.verify(stored, password)  # always hashes: same time for unknown logins
            if account is None or not ok:
                await self._regulator.fail(attempt)
                log.info("password login failed login_known=%s", account is not None)
                raise failed
            if account.totp_enabled:
                # With TOTP the count is cleared only by the complete login: a known password
                # gives back its own reservation but must not reset the TOTP failures (else
                # codes could be guessed max_failures - 1 at a time).
                await self._regulator.release(attempt)
            else:
                await self._regulator.succeed(attempt)
            if stored is not None and self._hashing.needs_rehash(stored):
                await self._accounts.set_password_hash(account.id, await self._hashing.hash(password))
            if account.totp_enabled:
                data = session_data_for(account, ("password",), pending=True)
            else:
                data = session_data_for(account, ("password",))
            token, session = await self._sessions.create(data)
            return LoginResult(token, session)

    async def _check_totp(self, account_id: str, login: str, code: str, client_ip: str) -> bool:
        async with self._regulator.reserved("account", login, client_ip=client_ip) as attempt:
            if not attempt.allowed:
                await self._regulator.fail(attempt)
                return False
            secret = await self._accounts.totp_secret(account_id)
            if secret is None or not await self._totp.verify(account_id, secret, code):
                await self._regulator.fail(attempt)
                return False
            await self._regulator.succeed(attempt)
            return True

    async def totp(self, pending_token: str, code: str, *, client_ip: str) -> LoginResult:
        """Finish a pending password login with a TOTP code (new session id)."""
        failed = SecretRejected("invalid_code")
        session = await self._sessions.lookup(pending_token)
        if session is None or not session.data.pending or session.data.account_id is None:
            raise SecretRejected("session_required")
        data = session.data
        if not await self._check_totp(data.account_id or "", data.login or data.subject, code, client_ip):
            raise failed
        now = self._clock()
        rotated = await self._sessions.rotate(
            pending_token, pending=False, methods=(*data.methods, "totp"), second_factor_at=now
        )
        if rotated is None:
            raise failed
        return LoginResult(*rotated)

    async def sms(self, msisdn: str, code: str, *, client_ip: str) -> LoginResult:
        """SMS-TAN login: always a restricted Benutzer-Login session on that one line."""
        number = await self._sms.verify(msisdn, code, client_ip=client_ip)
        if number is None:
            raise SecretRejected("invalid_code")
        line = await self._directory.line(number)
        now = self._clock()
        data = SessionData(
            subject="line:" + number,
            access_level="restricted",
            methods=("sms_tan",),
            person_id=line.user_person_id if line else None,
            role="line_user",
            bound_msisdn=number,
            second_factor_at=now,
        )
        token, session = await self._sessions.create(data)
        return LoginResult(token, session)

    async def step_up(
        self, token: str, method: str, code: str, *, client_ip: str, msisdn: str | None = None
    ) -> LoginResult:
        """Raise a session to two-factor for the step-up window; the session id changes."""
        session = await self._sessions.lookup(token)
        if session is None or session.data.pending:
            raise SecretRejected("session_required")
        data = session.data
        key = data.login or data.subject
        if method == "totp":
            ok = data.account_id is not None and await self._check_totp(data.account_id, key, code, client_ip)
            used = "totp"
        elif method == "sms":
            ok = await self._check_sms_step_up(data, key, msisdn, code, client_ip)
            used = "sms_tan"
        else:
            raise InvalidInput("bad_method", "method")
        if not ok:
            raise SecretRejected("invalid_code")
        methods = data.methods if used in data.methods else (*data.methods, used)
        rotated = await self._sessions.rotate(token, methods=methods, second_factor_at=self._clock())
        if rotated is None:
            raise SecretRejected("session_required")
        if self.step_ups is not None:
            self.step_ups.labels(used).inc()
        return LoginResult(*rotated)

    async def _check_sms_step_up(
        self, data: SessionData, key: str, msisdn: str | None, code: str, client_ip: str
    ) -> bool:
        """An SMS step-up counts against the account as well as the number (reserved first)."""
        async with self._regulator.reserved("account", key, client_ip=None) as attempt:
            if not attempt.allowed:
                await self._regulator.fail(attempt)
                return False
            number = self._sms.normalize(msisdn or data.bound_msisdn or "")
            ok = number is not None and await self._may_use_line(data, number)
            ok = ok and await self._sms.verify(number or "", code, client_ip=client_ip) is not None
            if not ok:
                await self._regulator.fail(attempt)
                return False
            await self._regulator.succeed(attempt)
            return True

    async def _may_use_line(self, data: SessionData, number: str) -> bool:
        """SMS step-up goes to a line of the session's own binding."""
        if data.bound_msisdn is not None:
            return number == data.bound_msisdn
        if data.bound_customer is None:
            return False
        line = await self._directory.line(number)
        return line is not None and line.customer_number == data.bound_customer

    async def _may_replace_totp(self, session: Session) -> None:
        """Replacing an active TOTP needs a fresh second factor (StepUpRequired otherwise).

        Confirming an enrolment counts as a second factor; without this check a
        stolen session whose factor went stale could swap in a seed of its own and
        step itself up to the X actions (SIM swap, PUK) — and lock the owner's
        authenticator out.
        """
        account_id = session.data.account_id
        account = await self._accounts.get(account_id) if account_id else None
        if account is not None and account.totp_enabled and not session.principal().step_up_fresh(self._clock()):
            raise StepUpRequired("step_up_required")

    async def start_enrolment(self, session: Session) -> Enrolment:
        """A new TOTP seed for the session's account, pending until confirmed."""
        if session.data.account_id is None or session.data.login is None:
            raise SecretRejected("session_required")
        await self._may_replace_totp(session)
        enrolment = self._totp.enrolment(session.data.login)
        await self._accounts.set_pending_totp(session.data.account_id, enrolment.secret)
        return enrolment

    async def confirm_enrolment(
        self, token: str, code: str, *, client_ip: str, sms_code: str = "", language: str = "de"
    ) -> LoginResult:
        """A first correct code activates the pending seed; counts as a second factor (new id).

        The first TOTP of an account also needs the SMS-TAN sent to one of its lines
        (`gateway.auth.possession`): a Kundenkennwort alone must not become a second factor.
        """
        session = await self._sessions.lookup(token)
        if session is None or session.data.pending or session.data.account_id is None:
            raise SecretRejected("session_required")
        account_id = session.data.account_id
        await self._may_replace_totp(session)
        account = await self._accounts.get(account_id)
        first = account is not None and not account.totp_enabled and self._possession is not None
        if first and not sms_code.strip():
            raise SecretRejected("sms_code_required")
        key = session.data.login or account_id
        async with self._regulator.reserved("account", key, client_ip=client_ip) as attempt:
            secret = await self._accounts.pending_totp(account_id) if attempt.allowed else None
            if secret is None or not await self._totp.verify(account_id, secret, code):
                await self._regulator.fail(attempt)
                raise SecretRejected("invalid_code")
            if first and not await self._proves_possession(account, sms_code, client_ip):
                await self._regulator.fail(attempt)
                raise SecretRejected("invalid_sms_code")
            await self._regulator.succeed(attempt)
            await self._accounts.activate_totp(account_id)
            if self._notices is not None and account is not None:
                await self._notices.totp_enrolled(account, language=language)
            data = session.data
            methods = data.methods if "totp" in data.methods else (*data.methods, "totp")
            rotated = await self._sessions.rotate(token, methods=methods, second_factor_at=self._clock())
            if rotated is None:
                raise SecretRejected("session_required")
            return LoginResult(*rotated)

    async def _proves_possession(self, account: Account | None, sms_code: str, client_ip: str) -> bool:
        if account is None or self._possession is None:
            return False
        return await self._possession.verify(account, sms_code.strip(), client_ip=client_ip)

    async def send_possession_code(
        self, session: Session, *, client_ip: str, msisdn: str | None = None, language: str = "de"
    ) -> str | None:
        """For a first TOTP: an SMS-TAN to a line of the account; the masked number, else None."""
        account_id = session.data.account_id
        account = await self._accounts.get(account_id) if account_id else None
        if account is None or account.totp_enabled or self._possession is None:
            return None
        return await self._possession.send(account, client_ip=client_ip, msisdn=msisdn, language=language)
