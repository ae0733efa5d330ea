"""`SqlDirectory`: the directory in the gateway's SQL database (SQLite or PostgreSQL).

Every method is one or two indexed queries (see `gateway.directory.tables` for the
indexes), so a lookup costs O(log n) whatever the number of customers or lines, and each
query is one round trip on the database's autocommit reader (`Database.reader`; on SQLite
one hop to aiosqlite's thread, `gateway.directory.sqlite_reads`). Any database error
becomes `DirectoryUnavailable` with the cause chained: the gateway then fails closed (503)
instead of deciding on missing facts.
The tables are created by ``Database.migrate()``; `gateway.directory.importer` fills them.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import BindParameter, Row, Select, String, bindparam, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from gateway.database import Database
from gateway.directory.base import DirectoryUnavailable
from gateway.directory.proofs import ProofHashers
from gateway.directory.records import (
    ContractKind,
    ContractRecord,
    CustomerKind,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    Part,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)
from gateway.directory.sqlite_reads import SqliteReader
from gateway.directory.tables import (
    ContractRow,
    CustomerRelationRow,
    CustomerRow,
    InvoiceRow,
    LineRow,
    PersonRow,
    VpnRow,
)

__all__ = ["SqlDirectory"]

_persons = PersonRow.__table__
_customers = CustomerRow.__table__
_relations = CustomerRelationRow.__table__
_contracts = ContractRow.__table__
_lines = LineRow.__table__
_invoices = InvoiceRow.__table__
_vpns = VpnRow.__table__

_LINE_COLUMNS = (_lines.c.msisdn, _lines.c.contract_id, _lines.c.customer_number, _lines.c.part,
                 _lines.c.user_person_id)
_CUSTOMER_COLUMNS = (_customers.c.number, _customers.c.name, _customers.c.kind)
_KEY: BindParameter[str] = bindparam("key", type_=String())

# Every read is one of these fixed statements with the id as the bind parameter "key":
# compiled once (SQLAlchemy's cache; `SqliteReader`), prepared once per connection (asyncpg).
_PERSON = select(_persons.c.id, _persons.c.name).where(_persons.c.id == _KEY)
_RELATIONS_OF = select(_relations.c.relation, _relations.c.customer_number).where(_relations.c.person_id == _KEY)
_LINES_USED_BY = select(_lines.c.msisdn).where(_lines.c.user_person_id == _KEY)
_CUSTOMER = select(*_CUSTOMER_COLUMNS).where(_customers.c.number == _KEY)
_CONTRACT = select(_contracts).where(_contracts.c.id == _KEY)
_LINE = select(*_LINE_COLUMNS).where(_lines.c.msisdn == _KEY)
_INVOICE = select(_invoices).where(_invoices.c.number == _KEY)
_INVOICES_OF = (select(_invoices).where(_invoices.c.contract_id == _KEY)
                .order_by(_invoices.c.issued_on.desc(), _invoices.c.number))
_VPN = select(_vpns).where(_vpns.c.id == _KEY)
_LINES_OF = select(*_LINE_COLUMNS).where(_lines.c.customer_number == _KEY).order_by(_lines.c.msisdn)
_CONTRACTS_OF = select(_contracts).where(_contracts.c.customer_number == _KEY).order_by(_contracts.c.id)
_KUNDENKENNWORT = select(_customers.c.kundenkennwort_hash).where(_customers.c.number == _KEY)
_PUK = select(_lines.c.puk_hash).where(_lines.c.msisdn == _KEY)
_PING = select(func.count()).select_from(_persons).where(_persons.c.id == _KEY)
_ANY_CUSTOMER = select(_customers.c.number).where(_customers.c.number != _KEY).limit(1)
_RELATION_FIELDS = {
    "holder": "holder_of",
    "authorised": "authorised_for",
    "member": "member_of",
    "split_private": "split_private_of",
    "admin": "administers",
}


def _contract(row: Row[Any]) -> ContractRecord:
    return ContractRecord(id=row.id, customer_number=row.customer_number, kind=cast(ContractKind, row.kind),
                          framework_customer=row.framework_customer)


def _line(row: Row[Any]) -> LineRecord:
    return LineRecord(msisdn=row.msisdn, contract_id=row.contract_id, customer_number=row.customer_number,
                      part=cast(Part | None, row.part), user_person_id=row.user_person_id)


def _iso(value: dt.date | str) -> str:
    """A date column: a `date` from PostgreSQL, ISO text from SQLite's one-hop reader."""
    return value if isinstance(value, str) else value.isoformat()


def _invoice(row: Row[Any]) -> InvoiceRecord:
    return InvoiceRecord(number=row.number, contract_id=row.contract_id, customer_number=row.customer_number,
                         part=cast(Part | None, row.part), issued_on=_iso(row.issued_on),
                         current=bool(row.current))


class SqlDirectory:
    """The `Directory` protocol over `Database`; hashing profiles injectable for tests."""

    def __init__(self, database: Database, *, hashers: ProofHashers | None = None) -> None:
        self.database = database
        self.hashers = hashers or ProofHashers()
        self._sqlite = SqliteReader(database.reader) if database.dialect == "sqlite" else None

    async def _read(self, statement: Select[Any], key: str) -> Sequence[Any]:
        """Every row of one fixed statement: one round trip (no ping, no BEGIN/ROLLBACK).

        Without a ping, a pooled connection that the server closed (restart, idle
        timeout) fails its next read; the pool invalidates it, and the read is tried once
        more on a fresh connection, so that a restart costs no request a 503.
        """
        params = {"key": key}
        for attempt in (1, 2):
            try:
                if self._sqlite is not None:
                    return await self._sqlite.read(statement, params)
                async with self.database.reader.connect() as conn:
                    rows: Sequence[Any] = (await conn.execute(statement, params)).all()
                    return rows
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise DirectoryUnavailable(f"SQL directory does not answer: {type(exc).__name__}") from exc
            except (SQLAlchemyError, sqlite3.Error, OSError, TimeoutError) as exc:
                raise DirectoryUnavailable(f"SQL directory does not answer: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    async def _one(self, statement: Select[Any], key: str) -> Any:
        rows = await self._read(statement, key)
        return rows[0] if rows else None

    async def person(self, person_id: str) -> PersonRecord | None:
        row = await self._one(_PERSON, person_id)
        return PersonRecord(id=row.id, name=row.name) if row else None

    async def relations(self, person_id: str) -> PersonRelations:
        rels = await self._read(_RELATIONS_OF, person_id)
        used = [row.msisdn for row in await self._read(_LINES_USED_BY, person_id)]
        sets: dict[str, set[str]] = {name: set() for name in _RELATION_FIELDS.values()}
        for row in rels:
            field_name = _RELATION_FIELDS.get(row.relation)
            if field_name is not None:
                sets[field_name].add(row.customer_number)
        frozen = {name: frozenset(values) for name, values in sets.items()}
        return PersonRelations(person_id=person_id, uses_lines=frozenset(used), **frozen)

    async def customer(self, number: str) -> CustomerRecord | None:
        row = await self._one(_CUSTOMER, number)
        if row is None:
            return None
        return CustomerRecord(number=row.number, name=row.name, kind=cast(CustomerKind, row.kind))

    async def contract(self, contract_id: str) -> ContractRecord | None:
        row = await self._one(_CONTRACT, contract_id)
        return _contract(row) if row else None

    async def line(self, msisdn: str) -> LineRecord | None:
        row = await self._one(_LINE, msisdn)
        return _line(row) if row else None

    async def invoice(self, number: str) -> InvoiceRecord | None:
        row = await self._one(_INVOICE, number)
        return _invoice(row) if row else None

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        return [_invoice(r) for r in await self._read(_INVOICES_OF, contract_id)]

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        row = await self._one(_VPN, vpn_id)
        return VpnRecord(id=row.id, customer_number=row.customer_number) if row else None

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        return [_line(r) for r in await self._read(_LINES_OF, number)]

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        return [_contract(r) for r in await self._read(_CONTRACTS_OF, number)]

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        row = await self._one(_KUNDENKENNWORT, customer_number)
        return await self.hashers.kundenkennwort.verify(row.kundenkennwort_hash if row else None, candidate)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        row = await self._one(_PUK, msisdn)
        return await self.hashers.puk.verify(row.puk_hash if row else None, candidate)

    async def ping(self) -> None:
        await self._one(_PING, "")

    async def is_empty(self) -> bool:
        """True when no customer is stored (the factory then loads ``seed_file``)."""
        return await self._one(_ANY_CUSTOMER, "") is None

    async def close(self) -> None:
        """Nothing to do: the `Database` belongs to the caller, which closes it."""
