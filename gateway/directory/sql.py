"""`SqlDirectory`: the directory in the gateway's SQL database (SQLite or PostgreSQL).

Every method is one or two indexed queries on a pooled connection (see
`gateway.directory.tables` for the indexes), so a lookup costs O(log n) whatever the number
of customers or lines. Any database error becomes `DirectoryUnavailable` with the cause
chained: the gateway then fails closed (503) instead of deciding on missing facts.
The tables are created by ``Database.migrate()``; `gateway.directory.importer` fills them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any, cast

from sqlalchemy import Row, func, select
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection

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


def _invoice(row: Row[Any]) -> InvoiceRecord:
    return InvoiceRecord(number=row.number, contract_id=row.contract_id, customer_number=row.customer_number,
                         part=cast(Part | None, row.part), issued_on=row.issued_on.isoformat(),
                         current=bool(row.current))


class SqlDirectory:
    """The `Directory` protocol over `Database`; hashing profiles injectable for tests."""

    def __init__(self, database: Database, *, hashers: ProofHashers | None = None) -> None:
        self.database = database
        self.hashers = hashers or ProofHashers()

    @asynccontextmanager
    async def _connect(self) -> AsyncIterator[AsyncConnection]:
        try:
            async with self.database.reader.connect() as conn:
                yield conn
        except (SQLAlchemyError, OSError, TimeoutError) as exc:
            raise DirectoryUnavailable(f"SQL directory does not answer: {type(exc).__name__}") from exc

    async def _read(self, statement: Any, many: bool) -> Any:
        """One autocommit statement on the reader (no ping, no BEGIN/ROLLBACK).

        Without a ping, a pooled connection that the server closed (restart, idle
        timeout) fails its next read; the pool invalidates it, and the read is tried once
        more on a fresh connection, so that a restart costs no request a 503.
        """
        for attempt in (1, 2):
            try:
                async with self.database.reader.connect() as conn:
                    result = await conn.execute(statement)
                    return result.all() if many else result.first()
            except DBAPIError as exc:
                if attempt == 1 and exc.connection_invalidated:
                    continue
                raise DirectoryUnavailable(f"SQL directory does not answer: {type(exc).__name__}") from exc
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                raise DirectoryUnavailable(f"SQL directory does not answer: {type(exc).__name__}") from exc
        raise AssertionError("unreachable")

    async def _one(self, statement: Any) -> Row[Any] | None:
        row: Row[Any] | None = await self._read(statement, False)
        return row

    async def _all(self, statement: Any) -> Sequence[Row[Any]]:
        rows: Sequence[Row[Any]] = await self._read(statement, True)
        return rows

    async def person(self, person_id: str) -> PersonRecord | None:
        row = await self._one(select(_persons.c.id, _persons.c.name).where(_persons.c.id == person_id))
        return PersonRecord(id=row.id, name=row.name) if row else None

    async def relations(self, person_id: str) -> PersonRelations:
        async with self._connect() as conn:
            rels = (await conn.execute(
                select(_relations.c.relation, _relations.c.customer_number)
                .where(_relations.c.person_id == person_id)
            )).all()
            used = (await conn.execute(
                select(_lines.c.msisdn).where(_lines.c.user_person_id == person_id)
            )).scalars().all()
        sets: dict[str, set[str]] = {name: set() for name in _RELATION_FIELDS.values()}
        for row in rels:
            field_name = _RELATION_FIELDS.get(row.relation)
            if field_name is not None:
                sets[field_name].add(row.customer_number)
        frozen = {name: frozenset(values) for name, values in sets.items()}
        return PersonRelations(person_id=person_id, uses_lines=frozenset(used), **frozen)

    async def customer(self, number: str) -> CustomerRecord | None:
        row = await self._one(select(*_CUSTOMER_COLUMNS).where(_customers.c.number == number))
        if row is None:
            return None
        return CustomerRecord(number=row.number, name=row.name, kind=cast(CustomerKind, row.kind))

    async def contract(self, contract_id: str) -> ContractRecord | None:
        row = await self._one(select(_contracts).where(_contracts.c.id == contract_id))
        return _contract(row) if row else None

    async def line(self, msisdn: str) -> LineRecord | None:
        row = await self._one(select(*_LINE_COLUMNS).where(_lines.c.msisdn == msisdn))
        return _line(row) if row else None

    async def invoice(self, number: str) -> InvoiceRecord | None:
        row = await self._one(select(_invoices).where(_invoices.c.number == number))
        return _invoice(row) if row else None

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        rows = await self._all(
            select(_invoices).where(_invoices.c.contract_id == contract_id)
            .order_by(_invoices.c.issued_on.desc(), _invoices.c.number)
        )
        return [_invoice(r) for r in rows]

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        row = await self._one(select(_vpns).where(_vpns.c.id == vpn_id))
        return VpnRecord(id=row.id, customer_number=row.customer_number) if row else None

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        rows = await self._all(
            select(*_LINE_COLUMNS).where(_lines.c.customer_number == number).order_by(_lines.c.msisdn)
        )
        return [_line(r) for r in rows]

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        rows = await self._all(
            select(_contracts).where(_contracts.c.customer_number == number).order_by(_contracts.c.id)
        )
        return [_contract(r) for r in rows]

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        row = await self._one(
            select(_customers.c.kundenkennwort_hash).where(_customers.c.number == customer_number)
        )
        return await self.hashers.kundenkennwort.verify(row.kundenkennwort_hash if row else None, candidate)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        row = await self._one(select(_lines.c.puk_hash).where(_lines.c.msisdn == msisdn))
        return await self.hashers.puk.verify(row.puk_hash if row else None, candidate)

    async def ping(self) -> None:
        await self._one(select(func.count()).select_from(_persons).where(_persons.c.id == ""))

    async def is_empty(self) -> bool:
        """True when no customer is stored (the factory then loads ``seed_file``)."""
        row = await self._one(select(_customers.c.number).limit(1))
        return row is None

    async def close(self) -> None:
        """Nothing to do: the `Database` belongs to the caller, which closes it."""
