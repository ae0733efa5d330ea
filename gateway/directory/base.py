"""The Directory protocol: who is related to which customer, contract and line.

Implementations: `sql.SqlDirectory` (SQLite embedded default, PostgreSQL in
production) and `http.HttpDirectory` (asks a backend). All methods are async,
return frozen records or None, and raise `DirectoryUnavailable` when the
source cannot answer (the gateway then fails closed with 503).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)


class DirectoryUnavailable(Exception):
    """The directory's backing store did not answer; callers fail closed."""


@runtime_checkable
class Directory(Protocol):
    async def person(self, person_id: str) -> PersonRecord | None: ...
    async def relations(self, person_id: str) -> PersonRelations: ...
    async def customer(self, number: str) -> CustomerRecord | None: ...
    async def contract(self, contract_id: str) -> ContractRecord | None: ...
    async def line(self, msisdn: str) -> LineRecord | None: ...
    async def invoice(self, number: str) -> InvoiceRecord | None: ...
    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]: ...
    async def vpn(self, vpn_id: str) -> VpnRecord | None: ...
    async def lines_of_customer(self, number: str) -> list[LineRecord]: ...
    async def contracts_of_customer(self, number: str) -> list[ContractRecord]: ...

    # Registration proofs: compared against stored hashes, in constant time.
    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool: ...
    async def verify_puk(self, msisdn: str, candidate: str) -> bool: ...

    async def ping(self) -> None:
        """Raise DirectoryUnavailable when the source cannot answer."""
        ...

    async def close(self) -> None: ...
