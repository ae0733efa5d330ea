"""Proof of possession before the first second factor (the SIM-swap fraud defence).

Knowing a Kundenkennwort is enough to register; were it also enough to enrol
the first TOTP, the same person could step up and order a replacement SIM
minutes later. So the first TOTP of an account is confirmed only with an
SMS-TAN sent to one of the account's lines (`lines_of_account`: its own line,
else a line of its customer's contract). The line the code went to is
remembered per account for the life of a code, so the confirmation cannot name
another number; the code itself is checked by `SmsCodes.verify` (reserved
attempt, three tries, single use).
"""

from __future__ import annotations

from gateway.auth.accounts import Account
from gateway.auth.notices import lines_of_account
from gateway.auth.outcomes import InvalidInput
from gateway.auth.sms import SmsCodes
from gateway.directory.base import Directory
from gateway.store.base import Store

__all__ = ["Possession", "masked"]


def masked(msisdn: str) -> str:
    """A number as shown to the person: country code and last three digits only."""
    return f"+{msisdn[:2]} … {msisdn[-3:]}"


class Possession:
    def __init__(self, *, sms: SmsCodes, directory: Directory, store: Store, ttl_seconds: int) -> None:
        self._sms = sms
        self._directory = directory
        self._store = store
        self._ttl = ttl_seconds

    async def lines(self, account: Account) -> list[str]:
        return await lines_of_account(self._directory, account)

    async def send(
        self, account: Account, *, client_ip: str, msisdn: str | None = None, language: str = "de"
    ) -> str:
        """Send a code to `msisdn` (one of the account's lines) or its first line; the masked number."""
        lines = await self.lines(account)
        if not lines:
            raise InvalidInput("no_line_for_possession")
        number = self._sms.normalize(msisdn) if msisdn else lines[0]
        if number not in lines:
            raise InvalidInput("line_not_of_account", "msisdn")
        await self._store.set(f"possession_line:{account.id}", number, self._ttl)
        await self._sms.send(number, client_ip=client_ip, language=language)
        return masked(number)

    async def verify(self, account: Account, code: str, *, client_ip: str) -> bool:
        """True when `code` is the live SMS-TAN of the line the enrolment code went to (consumed)."""
        number = await self._store.get(f"possession_line:{account.id}")
        if number is None or not code or number not in await self.lines(account):
            return False
        if await self._sms.verify(number, code, client_ip=client_ip) is None:
            return False
        await self._store.delete(f"possession_line:{account.id}")
        return True
