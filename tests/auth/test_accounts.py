"""Accounts: persistence on the shared database, encrypted TOTP seed, passwords."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from gateway.auth.accounts import AccountExists, Accounts, NewAccount
from gateway.auth.crypto import SecretBox, SecretBoxError
from gateway.auth.passwords import PasswordHashing, PasswordPolicy, load_common_passwords
from gateway.database import Database, DatabaseError

from .helpers import Clock

KEY = "k" * 40


async def test_create_get_and_login_unique(db: Database, clock: Clock) -> None:
    accounts = Accounts(db, box=SecretBox(KEY), clock=clock)
    acc = await accounts.create(
        NewAccount(
            login="Anna.Huber@Example.at",
            role="customer",
            access_level="full",
            registered_with="kundenkennwort",
            identifier="1000001",
            bound_customer="1000001",
            password_hash="h",
        )
    )
    assert acc.id.startswith("acc_") and acc.login == "anna.huber@example.at"
    assert (await accounts.by_login(" ANNA.huber@example.at ")) == acc
    with pytest.raises(AccountExists) as exc:
        await accounts.create(
            NewAccount(
                login="anna.huber@example.at",
                role="customer",
                access_level="full",
                registered_with="kundenkennwort",
                identifier="1000001",
            )
        )
    assert exc.value.reason == "login_taken"
    assert [a.id for a in await accounts.all()] == [acc.id]


async def test_totp_secret_encrypted_at_rest(db: Database, clock: Clock) -> None:
    accounts = Accounts(db, box=SecretBox(KEY), clock=clock)
    acc = await accounts.create(
        NewAccount(
            login="x@example.at",
            role="customer",
            access_level="full",
            registered_with="seed",
            identifier="1000001",
        )
    )
    await accounts.set_pending_totp(acc.id, "JBSWY3DPEHPK3PXP")
    assert await accounts.totp_secret(acc.id) is None  # not active before confirmation
    await accounts.activate_totp(acc.id)
    assert await accounts.totp_secret(acc.id) == "JBSWY3DPEHPK3PXP"
    async with db.session() as s:
        raw = (await s.execute(text("SELECT totp_secret FROM auth_accounts"))).scalar_one()
    assert "JBSWY3DPEHPK3PXP" not in raw and raw.startswith("v1:")
    other = Accounts(db, box=SecretBox("z" * 40), clock=clock)
    with pytest.raises(SecretBoxError):
        await other.totp_secret(acc.id)


def test_secret_box_binds_context() -> None:
    box = SecretBox(KEY)
    sealed = box.encrypt("SECRET", context="acc_1")
    assert box.decrypt(sealed, context="acc_1") == "SECRET"
    with pytest.raises(SecretBoxError):
        box.decrypt(sealed, context="acc_2")


def test_missing_key_refuses_start_and_names_key(tmp_path) -> None:
    from gateway.auth.crypto import resolve_encryption_key
    from gateway.settings import SettingsError

    with pytest.raises(SettingsError, match="totp.encryption_key"):
        resolve_encryption_key("", demo=False, data_dir=tmp_path, source="gateway.toml")
    with pytest.raises(SettingsError, match="totp.encryption_key"):
        resolve_encryption_key("short", demo=False, data_dir=tmp_path, source="gateway.toml")
    key = resolve_encryption_key("", demo=True, data_dir=tmp_path, source="x")
    assert len(key) >= 32 and resolve_encryption_key("", demo=True, data_dir=tmp_path, source="x") == key


POLICY = PasswordPolicy(common=load_common_passwords())


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("elf-chars-1", "password_too_short"),  # 11 characters
        ("436641000020", "password_is_identifier"),
        ("sophie@example.at", "password_is_identifier"),
        ("password1234", "password_too_common"),
        ("Passwort2025!!", "password_too_common"),
        ("qwertyuiop123", "password_too_common"),
        ("anna-portal-2025", None),
        ("twelve-chars", None),
    ],
)
def test_password_rules(password: str, reason: str | None) -> None:
    assert POLICY.problem(password, identifier="436641000020", login="sophie@example.at") == reason


async def test_argon2id_hash_and_verify() -> None:
    hashing = PasswordHashing(time_cost=1, memory_kib=1024, parallelism=1)
    stored = await hashing.hash("anna-portal-2025")
    assert stored.startswith("$argon2id$")
    assert await hashing.verify(stored, "anna-portal-2025")
    assert not await hashing.verify(stored, "anna-portal-2026")
    assert not await hashing.verify(None, "anything")


def _line_account(login: str, role: str = "business_member", msisdn: str = "436641000020") -> NewAccount:
    return NewAccount(
        login=login, role=role, access_level="full", registered_with="puk",  # type: ignore[arg-type]
        identifier=msisdn, bound_customer="1000021", bound_msisdn=msisdn,
    )


async def _only_one_account_per_line(db: Database, clock: Clock) -> None:
    accounts = Accounts(db, box=SecretBox(KEY), clock=clock)
    results = await asyncio.gather(
        *(accounts.create(_line_account(f"racer{i}@example.at")) for i in range(8)), return_exceptions=True
    )
    created = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, AccountExists)]
    assert len(created) == 1 and len(refused) == 7, results
    assert {r.reason for r in refused} == {"already_registered"}
    # The same login elsewhere is still told apart from the line rule.
    with pytest.raises(AccountExists) as exc:
        await accounts.create(_line_account(created[0].login, msisdn="436641000030"))
    assert exc.value.reason == "login_taken"
    # Other roles on the line, other lines, and customer accounts are not covered by the rule.
    await accounts.create(_line_account("user@example.at", role="line_user"))
    await accounts.create(_line_account("other-line@example.at", msisdn="436641000030"))
    for i in range(2):
        await accounts.create(NewAccount(login=f"holder{i}@example.at", role="customer", access_level="full",
                                         registered_with="kundenkennwort", identifier="1000021",
                                         bound_customer="1000021"))


async def test_the_database_keeps_one_account_per_line_and_role_on_sqlite(db: Database, clock: Clock) -> None:
    await _only_one_account_per_line(db, clock)


async def test_the_database_keeps_one_account_per_line_and_role_on_postgres(clock: Clock) -> None:
    from tests.directory.conftest import pg_database

    async with pg_database() as pg:
        await pg.migrate()
        await _only_one_account_per_line(pg, clock)


async def test_the_upgrade_names_duplicates_made_before_the_rule(tmp_path: Path) -> None:
    """A database raced before revision 0102: the upgrade stops and names the line; nothing is deleted."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'p.db'}")
    try:
        await db.migrate("0101_accounts")
        async with db.engine.begin() as conn:
            for i in range(2):
                await conn.execute(text(
                    "INSERT INTO auth_accounts (id, login, totp_enabled, role, access_level, bound_msisdn,"
                    " registered_with, identifier, created_at, updated_at) VALUES"
                    f" ('acc_{i}', 'r{i}@example.at', 0, 'business_member', 'full', '436641000020', 'puk',"
                    " '436641000020', 0, 0)"))
        with pytest.raises(DatabaseError, match="business_member on line 436641000020"):
            await db.migrate()
        async with db.engine.connect() as conn:
            assert (await conn.execute(text("SELECT COUNT(*) FROM auth_accounts"))).scalar() == 2
    finally:
        await db.close()
