"""``portal-gateway directory import FILE [--replace]`` and ``portal-gateway directory show ID``.

`register(subparsers)` adds the ``directory`` command to the gateway's CLI; each parsed
command carries ``func(args) -> int`` (the exit status). `main(argv)` runs it stand-alone.
Exit status: 0 done; 1 not found, or the database/directory does not answer; 2 invalid input
(the world file's problems are listed with their path in the file, never a traceback).
The database is the one of the configuration (``--config`` or ``PORTAL_GATEWAY_CONFIG``),
or ``--database-url``; without either, the default SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from typing import Any, TextIO

from gateway.database import Database, DatabaseError
from gateway.directory.base import Directory, DirectoryUnavailable
from gateway.directory.factory import build_directory
from gateway.directory.importer import DirectoryNotEmpty, import_world
from gateway.directory.wire import encode
from gateway.directory.world import WorldError, load_world
from gateway.settings import ENV_PREFIX, Settings, SettingsError, load_settings

__all__ = ["main", "register"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add ``directory`` (with ``import`` and ``show``) to an argparse subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "directory", help="load and inspect the directory (customers, contracts, lines)"
    )
    commands = parser.add_subparsers(dest="directory_command", metavar="COMMAND")
    commands.required = True

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--config", default=argparse.SUPPRESS, help="gateway configuration file (TOML)")
        p.add_argument("--database-url", default=None, help="SQLAlchemy URL; overrides [database] url")

    imp = commands.add_parser("import", help="load a YAML or JSON world into the SQL directory")
    imp.add_argument("file", help="world file (.yaml, .yml or .json)")
    imp.add_argument("--replace", action="store_true", help="overwrite a directory that holds data")
    common(imp)
    imp.set_defaults(func=_run_import)

    show = commands.add_parser("show", help="show what the directory knows about an id")
    show.add_argument("id", help="person id, customer number, contract id, MSISDN, invoice number or VPN id")
    common(show)
    show.set_defaults(func=_run_show)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="portal-gateway")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    status: int = args.func(args)
    return status


def _settings(args: argparse.Namespace) -> Settings:
    path = getattr(args, "config", None) or os.environ.get(ENV_PREFIX + "CONFIG")
    settings = load_settings(path) if path else Settings()
    return settings


def _database(args: argparse.Namespace, settings: Settings) -> Database:
    if args.database_url:
        return Database(args.database_url)
    return Database.from_settings(settings.database, base_dir=settings.base_dir)


def _error(message: str, out: TextIO | None = None) -> None:
    print(f"portal-gateway directory: {message}", file=out or sys.stderr)


def _run_import(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        world = load_world(args.file)
    except (SettingsError, WorldError) as exc:
        _error(str(exc))
        return 2
    return asyncio.run(_import(args, settings, world))


async def _import(args: argparse.Namespace, settings: Settings, world: Any) -> int:
    try:
        database = _database(args, settings)
    except (DatabaseError, ValueError) as exc:
        _error(str(exc))
        return 2
    try:
        await database.migrate()
        summary = await import_world(database, world, replace=args.replace)
    except DirectoryNotEmpty as exc:
        _error(str(exc))
        return 2
    except (DatabaseError, DirectoryUnavailable) as exc:
        _error(str(exc))
        return 1
    finally:
        await database.close()
    print(f"imported {args.file} into {database.safe_url}: {summary}")
    return 0


def _run_show(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
    except SettingsError as exc:
        _error(str(exc))
        return 2
    return asyncio.run(_show(args, settings))


async def describe(directory: Directory, key: str) -> dict[str, Any] | None:
    """Everything the directory knows about `key` (no proofs or hashes), or None."""
    found: dict[str, Any] = {}
    person = await directory.person(key)
    if person is not None:
        found["person"] = encode(person)
        found["relations"] = encode(await directory.relations(key))
    customer = await directory.customer(key)
    if customer is not None:
        found["customer"] = encode(customer)
        found["contracts"] = [encode(c) for c in await directory.contracts_of_customer(key)]
        found["lines"] = [encode(x) for x in await directory.lines_of_customer(key)]
    contract = await directory.contract(key)
    if contract is not None:
        found["contract"] = encode(contract)
        found["invoices"] = [encode(i) for i in await directory.invoices_of_contract(key)]
    for name, lookup in (("line", directory.line), ("invoice", directory.invoice), ("vpn", directory.vpn)):
        record = await lookup(key)
        if record is not None:
            found[name] = encode(record)
    return found or None


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    database: Database | None = None
    try:
        if settings.directory.backend == "sql" or args.database_url:
            database = _database(args, settings)
        if args.database_url:  # an explicit database means the SQL directory in it
            settings = dataclasses.replace(
                settings, directory=dataclasses.replace(settings.directory, backend="sql")
            )
        directory = await build_directory(settings, database)
        try:
            found = await describe(directory, args.id)
        finally:
            await directory.close()
    except (DatabaseError, DirectoryUnavailable) as exc:
        _error(str(exc))
        return 1
    except (WorldError, ValueError) as exc:
        _error(str(exc))
        return 2
    finally:
        if database is not None:
            await database.close()
    if found is None:
        _error(f"nothing in the directory has the id {args.id!r}")
        return 1
    print(json.dumps(found, indent=2, ensure_ascii=False))
    return 0
