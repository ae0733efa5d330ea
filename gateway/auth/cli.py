"""``portal-gateway accounts list|create|delete|reset-totp``: operator tools for accounts.

`register(subparsers)` adds the ``accounts`` command to the gateway's CLI. The
database and the TOTP key are the configuration's (``--config`` or
``PORTAL_GATEWAY_CONFIG``). ``create`` is for operators (support desk, tests): it
binds an account without a registration proof, so it asks for the binding
explicitly and still applies the password rules. Passwords are read from stdin
(``--password-stdin``) or prompted, never taken from the command line.
Exit status: 0 done; 1 not found / database down; 2 invalid input.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import sys
from typing import Any, cast

from gateway.auth.accounts import AccountExists, Accounts, NewAccount
from gateway.auth.config import load_auth_config
from gateway.auth.crypto import SecretBox, resolve_encryption_key
from gateway.auth.passwords import PasswordHashing, PasswordPolicy, load_common_passwords
from gateway.auth.registration import valid_login
from gateway.database import Database, DatabaseError
from gateway.principal import Role
from gateway.settings import Settings, load_settings

__all__ = ["register"]

_LEVEL = {"customer": "full", "business_member": "full", "split_private": "full", "line_user": "restricted"}


def register(subparsers: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "accounts", help="list, create and delete portal accounts"
    )
    commands = parser.add_subparsers(dest="accounts_command", metavar="COMMAND")
    commands.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=None, help="gateway configuration file (TOML)")

    ls = commands.add_parser("list", help="list accounts (no secrets)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    common(ls)
    ls.set_defaults(func=_run(_list))

    create = commands.add_parser("create", help="create an account with an explicit binding")
    create.add_argument("login")
    create.add_argument("--role", required=True, choices=sorted(_LEVEL))
    create.add_argument("--customer", help="bound customer number")
    create.add_argument("--msisdn", help="bound line (MSISDN digits)")
    create.add_argument("--person", help="person id, if known")
    create.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    common(create)
    create.set_defaults(func=_run(_create))

    delete = commands.add_parser("delete", help="delete an account")
    delete.add_argument("login")
    common(delete)
    delete.set_defaults(func=_run(_delete))

    reset = commands.add_parser("reset-totp", help="remove an account's TOTP enrolment")
    reset.add_argument("login")
    common(reset)
    reset.set_defaults(func=_run(_reset_totp))
    return parser


def _run(action: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        settings = load_settings(args.config)
        try:
            return asyncio.run(_with_accounts(settings, action, args))
        except DatabaseError as exc:
            print(f"portal-gateway accounts: {exc}", file=sys.stderr)
            return 1

    return run


async def _with_accounts(settings: Settings, action: Any, args: argparse.Namespace) -> int:
    config = load_auth_config(settings)
    key = resolve_encryption_key(
        config.totp.encryption_key,
        demo=config.auth.demo,
        data_dir=settings.path(settings.server.data_dir),
        source=settings.source,
    )
    db = Database.from_settings(settings.database, base_dir=settings.base_dir)
    try:
        await db.migrate()
        accounts = Accounts(db, box=SecretBox(key), clock=_now)
        return int(await action(accounts, settings, args))
    finally:
        await db.close()


def _now() -> float:
    import time

    return time.time()


async def _list(accounts: Accounts, settings: Settings, args: argparse.Namespace) -> int:
    for a in await accounts.all():
        row = {
            "id": a.id,
            "login": a.login,
            "role": a.role,
            "access_level": a.access_level,
            "bound_customer": a.bound_customer,
            "bound_msisdn": a.bound_msisdn,
            "registered_with": a.registered_with,
            "totp": a.totp_enabled,
        }
        if args.json:
            print(json.dumps(row))
        else:
            binding = a.bound_customer or "-"
            if a.bound_msisdn:
                binding += f" / {a.bound_msisdn}"
            totp = "totp" if a.totp_enabled else "-"
            print(f"{a.login:32} {a.role:16} {a.access_level:10} {binding:28} {totp:4} {a.id}")
    return 0


async def _create(accounts: Accounts, settings: Settings, args: argparse.Namespace) -> int:
    role = cast(Role, args.role)
    if not valid_login(args.login):
        print("portal-gateway accounts: invalid login name", file=sys.stderr)
        return 2
    if role == "customer" and not args.customer:
        print("portal-gateway accounts: --customer is required for role customer", file=sys.stderr)
        return 2
    if role != "customer" and not args.msisdn:
        print(f"portal-gateway accounts: --msisdn is required for role {role}", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass("Password: ")
    config = load_auth_config(settings)
    policy = PasswordPolicy(common=load_common_passwords(), min_length=config.auth.password_min_length)
    problem = policy.problem(password, identifier=args.customer or args.msisdn, login=args.login)
    if problem:
        print(f"portal-gateway accounts: password refused: {problem}", file=sys.stderr)
        return 2
    hashing = PasswordHashing(
        time_cost=config.auth.argon2_time_cost,
        memory_kib=config.auth.argon2_memory_kib,
        parallelism=config.auth.argon2_parallelism,
    )
    try:
        account = await accounts.create(
            NewAccount(
                login=args.login,
                role=role,
                access_level="full" if _LEVEL[role] == "full" else "restricted",
                registered_with="cli",
                identifier=args.msisdn or args.customer,
                password_hash=await hashing.hash(password),
                bound_customer=args.customer,
                bound_msisdn=args.msisdn,
                person_id=args.person,
            )
        )
    except AccountExists as exc:
        print(f"portal-gateway accounts: {exc.reason}", file=sys.stderr)
        return 2
    print(account.id)
    return 0


async def _delete(accounts: Accounts, settings: Settings, args: argparse.Namespace) -> int:
    account = await accounts.by_login(args.login)
    if account is None or not await accounts.delete(account.id):
        print(f"portal-gateway accounts: no account {args.login!r}", file=sys.stderr)
        return 1
    from gateway.auth.config import SessionSettings
    from gateway.auth.sessions import Sessions
    from gateway.store import build_store

    store = build_store(settings, clock=_now)
    try:
        await Sessions(store, settings.section(SessionSettings, "sessions"), _now).revoke_account(account.id)
        ended = "its sessions are ended"
    except Exception as exc:  # the account is gone either way; say what did not work
        ended = f"could not end its sessions ({type(exc).__name__}): they end at their timeout"
    finally:
        await store.close()
    print(f"deleted {account.login} ({account.id}); {ended}")
    return 0


async def _reset_totp(accounts: Accounts, settings: Settings, args: argparse.Namespace) -> int:
    account = await accounts.by_login(args.login)
    if account is None:
        print(f"portal-gateway accounts: no account {args.login!r}", file=sys.stderr)
        return 1
    await accounts.reset_totp(account.id)
    print(f"TOTP removed from {account.login}")
    return 0
