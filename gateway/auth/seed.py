"""The demo's registered account (docs/domain.md sections 4 and 7): Anna Huber.

Only Anna is registered in the demo: login ``anna.huber@example.at``, password
``anna-portal-2025``, TOTP seed ``JBSWY3DPEHPK3PXP``, role "customer" bound to
customer 1000001 (she proved her Kundenkennwort). Idempotent: an existing login
is left alone, so a restarted demo keeps its state. Demo data, not secrets.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auth.accounts import NewAccount
from gateway.auth.services import AuthServices
from gateway.database import Database
from gateway.principal import AccessLevel, Role

__all__ = ["DEMO_ACCOUNTS", "DemoAccount", "seed_demo_accounts"]


@dataclass(frozen=True, slots=True)
class DemoAccount:
    login: str
    password: str
    totp_secret: str | None
    role: Role
    access_level: AccessLevel
    identifier: str
    registered_with: str
    bound_customer: str | None = None
    bound_msisdn: str | None = None
    person_id: str | None = None


DEMO_ACCOUNTS = (
    DemoAccount(
        login="anna.huber@example.at",
        password="anna-portal-2025",
        totp_secret="JBSWY3DPEHPK3PXP",
        role="customer",
        access_level="full",
        identifier="1000001",
        registered_with="kundenkennwort",
        bound_customer="1000001",
        person_id="p-anna-huber",
    ),
)


async def seed_demo_accounts(
    db: Database, *, services: AuthServices, accounts: tuple[DemoAccount, ...] = DEMO_ACCOUNTS
) -> list[str]:
    """Create the demo accounts that do not exist yet (tables must be migrated); the logins created."""
    del db  # the accounts service holds the same database; kept for the agreed call shape
    created: list[str] = []
    for demo in accounts:
        if await services.accounts.by_login(demo.login) is not None:
            continue
        account = await services.accounts.create(
            NewAccount(
                login=demo.login,
                role=demo.role,
                access_level=demo.access_level,
                registered_with=demo.registered_with,
                identifier=demo.identifier,
                password_hash=await services.hashing.hash(demo.password),
                bound_customer=demo.bound_customer,
                bound_msisdn=demo.bound_msisdn,
                person_id=demo.person_id,
            )
        )
        if demo.totp_secret:
            await services.accounts.set_totp_secret(account.id, demo.totp_secret)
        created.append(account.login)
    return created
