"""Load a checked `World` into the SQL directory, in one transaction.

Why one transaction: a half-imported world would give the policy half the relations (a
holder without their lines), so either the whole file is in the database or nothing
changed. A non-empty directory is only overwritten with ``replace=True`` (the account
tables are never touched). Plaintext proofs are hashed here, in a worker thread, with the
profiles of `gateway.directory.proofs` (cheap for PUKs, so 1,000 lines take about a second).
The import bumps the directory revision (`gateway.directory.revision`) in the same
transaction, so every gateway drops its cached facts when the new world becomes visible.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from gateway.database import Base, Database
from gateway.directory.base import DirectoryUnavailable
from gateway.directory.proofs import ProofHashers
from gateway.directory.revision import bump_revision
from gateway.directory.tables import (
    ContractRow,
    CustomerRelationRow,
    CustomerRow,
    InvoiceRow,
    LineRow,
    PersonRow,
    VpnRow,
)
from gateway.directory.world import World

__all__ = ["DirectoryNotEmpty", "ImportSummary", "import_world"]

#: Children first, so deletes respect the foreign keys.
_TABLES_DELETE_ORDER: tuple[type[Base], ...] = (
    InvoiceRow, VpnRow, LineRow, ContractRow, CustomerRelationRow, CustomerRow, PersonRow,
)
_BATCH = 500


class DirectoryNotEmpty(Exception):
    """The directory already holds data and ``replace`` was not given."""


@dataclass(frozen=True, slots=True)
class ImportSummary:
    persons: int
    customers: int
    contracts: int
    lines: int
    invoices: int
    vpns: int

    def __str__(self) -> str:
        return (f"{self.persons} persons, {self.customers} customers, {self.contracts} contracts, "
                f"{self.lines} lines, {self.invoices} invoices, {self.vpns} VPN contracts")


def _hash_all(world: World, hashers: ProofHashers) -> tuple[list[str | None], list[str | None]]:
    customer_hashes = [
        c.kundenkennwort_hash or (hashers.kundenkennwort.hash(c.kundenkennwort) if c.kundenkennwort else None)
        for c in world.customers
    ]
    line_hashes = [
        line.puk_hash or (hashers.puk.hash(line.puk) if line.puk else None) for line in world.lines
    ]
    return customer_hashes, line_hashes


async def import_world(
    database: Database, world: World, *, replace: bool = False, hashers: ProofHashers | None = None
) -> ImportSummary:
    """Write `world` into the (migrated) database; raise `DirectoryNotEmpty` unless empty or `replace`."""
    hashers = hashers or ProofHashers()
    customer_hashes, line_hashes = await asyncio.to_thread(_hash_all, world, hashers)
    rows: list[tuple[type[Base], list[dict[str, Any]]]] = [
        (PersonRow, [{"id": p.id, "name": p.name} for p in world.persons]),
        (CustomerRow, [
            {"number": c.record.number, "name": c.record.name, "kind": c.record.kind,
             "kundenkennwort_hash": h}
            for c, h in zip(world.customers, customer_hashes, strict=True)
        ]),
        (CustomerRelationRow, [
            {"person_id": person, "relation": relation, "customer_number": c.record.number}
            for c in world.customers for relation, person in c.relations
        ]),
        (ContractRow, [
            {"id": k.id, "customer_number": k.customer_number, "kind": k.kind,
             "framework_customer": k.framework_customer}
            for k in world.contracts
        ]),
        (LineRow, [
            {"msisdn": x.record.msisdn, "contract_id": x.record.contract_id,
             "customer_number": x.record.customer_number, "part": x.record.part,
             "user_person_id": x.record.user_person_id, "puk_hash": h}
            for x, h in zip(world.lines, line_hashes, strict=True)
        ]),
        (InvoiceRow, [
            {"number": i.number, "contract_id": i.contract_id, "customer_number": i.customer_number,
             "part": i.part, "issued_on": dt.date.fromisoformat(i.issued_on), "current": i.current}
            for i in world.invoices
        ]),
        (VpnRow, [{"id": v.id, "customer_number": v.customer_number} for v in world.vpns]),
    ]
    try:
        async with database.engine.begin() as conn:
            existing = (await conn.execute(select(func.count()).select_from(CustomerRow))).scalar_one()
            persons = (await conn.execute(select(func.count()).select_from(PersonRow))).scalar_one()
            if (existing or persons) and not replace:
                raise DirectoryNotEmpty(
                    f"the directory already holds {existing} customers and {persons} persons; "
                    "use --replace to overwrite it"
                )
            for table in _TABLES_DELETE_ORDER:
                await conn.execute(delete(table))
            for table, values in rows:
                for start in range(0, len(values), _BATCH):
                    await conn.execute(insert(table), values[start : start + _BATCH])
            # The triggers bumped it already; bumping here too keeps "an import is a new
            # revision" true even for an import that changed nothing.
            await bump_revision(conn)
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        raise DirectoryUnavailable(f"importing into {database.safe_url} failed: {exc}") from exc
    return ImportSummary(
        persons=len(world.persons), customers=len(world.customers), contracts=len(world.contracts),
        lines=len(world.lines), invoices=len(world.invoices), vpns=len(world.vpns),
    )
