"""Registration by contract proof (docs/domain.md section 1).

Order of checks, chosen so that nothing leaks before a correct proof:

1. input shape and the password rules (they depend only on what was typed);
2. the regulator: the attempt is reserved first; one over the limit (or a locked
   identifier or client address) fails like a wrong proof;
3. what the identifier names (`resolve_registration_target`); an unknown one
   fails like a wrong proof;
4. the policy verdict (`can_register`, decided in portal.polar). A refusal that
   carries a pointer (the company customer → My Business Station) is given
   whatever the proof, as DOMAIN says; other refusals only after a correct proof;
5. the proof itself: Kundenkennwort and PUK against the directory's hashes, the
   invoice number must be the *current* invoice of that line's contract (and
   part), the SMS code must be the live code sent to that line;
6. duplicates: the login name must be free; a second account of the same role on
   the same line is refused ("already_registered").

The binding recorded on the account comes from the verdict (role, access level,
customer, line). OIDC linking reuses `check_proof` with the same rules.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.auth.accounts import Account, AccountExists, Accounts, NewAccount, normalize_login
from gateway.auth.notices import Notices
from gateway.auth.outcomes import Conflict, InvalidInput, RegistrationRefused, SecretRejected
from gateway.auth.passwords import PasswordHashing, PasswordPolicy
from gateway.auth.phone import looks_like_phone_number
from gateway.auth.regulation import Regulator
from gateway.auth.sms import SmsCodes
from gateway.directory.base import Directory
from gateway.policy.registration import (
    PROOF_TYPES,
    RegistrationTarget,
    RegistrationVerdict,
    normalize_identifier,
)

__all__ = ["Registered", "Registrar", "RegistrationPolicy", "TargetResolver", "valid_login"]

# fullmatch only: `$` also matches before a trailing "\n".
_LOGIN = re.compile(r"[a-z0-9][a-z0-9._%+@-]{2,253}")

TargetResolver = Callable[[Directory, str], Awaitable[RegistrationTarget | None]]


class RegistrationPolicy(Protocol):
    """What auth needs from the policy engine (the Authorizer provides it)."""

    def can_register(self, target: RegistrationTarget, proof_type: str) -> RegistrationVerdict: ...


def valid_login(login: str) -> bool:
    return bool(_LOGIN.fullmatch(normalize_login(login)))


@dataclass(frozen=True, slots=True)
class Registered:
    account: Account
    target: RegistrationTarget
    verdict: RegistrationVerdict


class Registrar:
    def __init__(
        self,
        *,
        directory: Directory,
        policy: RegistrationPolicy,
        resolve: TargetResolver,
        accounts: Accounts,
        hashing: PasswordHashing,
        password_policy: PasswordPolicy,
        sms: SmsCodes,
        regulator: Regulator,
        notices: Notices | None = None,
    ) -> None:
        self._notices = notices
        self._directory = directory
        self._policy = policy
        self._resolve = resolve
        self._accounts = accounts
        self._hashing = hashing
        self._password_policy = password_policy
        self._sms = sms
        self._regulator = regulator

    async def check_proof(
        self, identifier: str, proof_type: str, proof: str, *, client_ip: str
    ) -> tuple[RegistrationTarget, RegistrationVerdict]:
        """Steps 2-5: the verdict for a correct proof; raises SecretRejected / RegistrationRefused."""
        ident = normalize_identifier(self.typed_identifier(identifier))
        if proof_type not in PROOF_TYPES:
            raise InvalidInput("bad_proof_type", "proof_type")
        if not ident or not proof:
            raise InvalidInput("bad_request", "identifier" if not ident else "proof")
        failed = SecretRejected("registration_failed")
        # Reserved before anything is looked up or compared: parallel guesses of a PUK,
        # an invoice number or a Kundenkennwort each take a count of their own.
        async with self._regulator.reserved("proof", ident, client_ip=client_ip) as attempt:
            if not attempt.allowed:
                await self._regulator.fail(attempt)
                raise failed
            target = await self._resolve(self._directory, ident)
            if target is None:
                await self._regulator.fail(attempt)
                raise failed
            verdict = self._policy.can_register(target, proof_type)
            if not verdict.allowed and verdict.hint_url:
                await self._regulator.release(attempt)  # refused whatever the proof: none was compared
                raise RegistrationRefused(verdict.reason, verdict.hint_url)
            # The secret's owner counts too: a line's PUK reached as the line and again
            # as its customer's only line is one secret, with one count of guesses.
            owner, msisdn = await self._secret_owner(target, proof_type)
            if owner is None:
                await self._regulator.fail(attempt)
                raise failed
            async with self._regulator.reserved("proof_secret", owner) as owner_attempt:
                if not owner_attempt.allowed:
                    await self._regulator.fail(owner_attempt)
                    await self._regulator.fail(attempt)
                    raise failed
                if not await self._proof_holds(target, proof_type, proof, client_ip, msisdn):
                    await self._regulator.fail(owner_attempt)
                    await self._regulator.fail(attempt)
                    raise failed
                await self._regulator.succeed(owner_attempt)
            await self._regulator.succeed(attempt)
        if not verdict.allowed or verdict.role is None or verdict.access_level is None:
            raise RegistrationRefused(verdict.reason or "registration_not_possible", verdict.hint_url)
        return target, verdict

    def typed_identifier(self, identifier: str) -> str:
        """A number as typed ("0664 …", "+43 (664) …") in the directory's digits; customer numbers as they are."""
        if not looks_like_phone_number(identifier):
            return identifier
        number = self._sms.normalize(identifier)
        if number is None:
            raise InvalidInput("invalid_msisdn", "identifier")
        return number

    async def _secret_owner(self, target: RegistrationTarget, proof_type: str) -> tuple[str | None, str | None]:
        """Whose secret the proof is compared with: the key its guesses count under, and the line.

        A Kundenkennwort belongs to the customer; a PUK, an invoice number and an SMS-TAN to a
        line (the one named, or a customer's only line). (None, None): nothing to compare with.
        """
        if proof_type == "kundenkennwort":
            return "customer:" + target.customer_number, None
        msisdn = target.msisdn or await self._only_line(target.customer_number)
        return (None, None) if msisdn is None else ("line:" + msisdn, msisdn)

    async def _proof_holds(
        self, target: RegistrationTarget, proof_type: str, proof: str, ip: str, msisdn: str | None
    ) -> bool:
        if proof_type == "kundenkennwort":
            return await self._directory.verify_kundenkennwort(target.customer_number, proof)
        if msisdn is None:
            return False
        if proof_type == "puk":
            return await self._directory.verify_puk(msisdn, "".join(proof.split()))
        if proof_type == "invoice_number":
            return await self._current_invoice_of_line(msisdn, proof.strip().upper())
        if proof_type == "sms_tan":
            return await self._sms.verify(msisdn, proof, client_ip=ip) is not None
        return False

    async def _only_line(self, customer_number: str) -> str | None:
        lines = await self._directory.lines_of_customer(customer_number)
        return lines[0].msisdn if len(lines) == 1 else None

    async def _current_invoice_of_line(self, msisdn: str, number: str) -> bool:
        line = await self._directory.line(msisdn)
        invoice = await self._directory.invoice(number)
        if line is None or invoice is None or not invoice.current:
            return False
        if invoice.contract_id != line.contract_id:
            return False
        return line.part is None or invoice.part == line.part

    async def register(
        self,
        *,
        login: str,
        identifier: str,
        proof_type: str,
        proof: str,
        password: str,
        client_ip: str,
        language: str = "de",
    ) -> Registered:
        """The whole registration; the created account (its session is the caller's job)."""
        login_n = normalize_login(login)
        if not valid_login(login_n):
            raise InvalidInput("bad_login", "login")
        problem = self._password_policy.problem(
            password, identifier=normalize_identifier(self.typed_identifier(identifier)), login=login_n
        )
        if problem:
            raise InvalidInput(problem, "password")
        target, verdict = await self.check_proof(identifier, proof_type, proof, client_ip=client_ip)
        assert verdict.role is not None and verdict.access_level is not None
        if await self.already_registered(verdict):
            raise Conflict("already_registered")
        person_id = None if verdict.role == "customer" else await self._person_of(target)
        password_hash = await self._hashing.hash(password)
        try:
            # The check above answers the common case; a parallel registration or OIDC link
            # of the same line is refused by the database (one account per line and role).
            account = await self._accounts.create(
                NewAccount(
                    login=login_n,
                    role=verdict.role,
                    access_level=verdict.access_level,
                    registered_with=proof_type,
                    identifier=target.identifier,
                    password_hash=password_hash,
                    bound_customer=verdict.bound_customer,
                    bound_msisdn=verdict.bound_msisdn,
                    person_id=person_id,
                )
            )
        except AccountExists as exc:
            raise Conflict(exc.reason) from exc
        if self._notices is not None:  # the line(s) learn of it: a fraudster's account does not stay silent
            await self._notices.registered(account, language=language)
        return Registered(account, target, verdict)

    async def already_registered(self, verdict: RegistrationVerdict) -> bool:
        """Step 6's duplicate rule: the line already has an account of that role.

        Customers (Kundenkennwort: holder and authorised persons) may have several
        accounts; a line-bound role has one. OIDC linking asks the same question,
        because a proof shows the contract, never who owns the account made with it.
        """
        if verdict.role is None or verdict.role == "customer" or verdict.bound_msisdn is None:
            return False
        return bool(await self._accounts.find_bound(verdict.role, bound_msisdn=verdict.bound_msisdn))

    async def _person_of(self, target: RegistrationTarget) -> str | None:
        """The person using the line, when the line names one (Kundenkennwort: unknown)."""
        if target.msisdn is None:
            return None
        line = await self._directory.line(target.msisdn)
        return None if line is None else line.user_person_id
