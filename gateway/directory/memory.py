"""`MemoryDirectory`: a checked `World` held in dicts (tests, the reference HTTP server).

The same protocol as the SQL directory, with every lookup a dict access. Proofs are hashed
once at construction with the same argon2id profiles, so checking behaves as in SQL.
"""

from __future__ import annotations

from collections import defaultdict

from gateway.directory.proofs import ProofHashers
from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)
from gateway.directory.world import World

__all__ = ["MemoryDirectory"]

_FIELDS = {
    "holder": "holder_of",
    "authorised": "authorised_for",
    "member": "member_of",
    "split_private": "split_private_of",
    "admin": "administers",
}


class MemoryDirectory:
    def __init__(self, world: World, *, hashers: ProofHashers | None = None) -> None:
        self.hashers = hashers or ProofHashers()
        self._persons = {p.id: p for p in world.persons}
        self._customers = {c.record.number: c.record for c in world.customers}
        self._contracts = {k.id: k for k in world.contracts}
        self._lines = {x.record.msisdn: x.record for x in world.lines}
        self._invoices = {i.number: i for i in world.invoices}
        self._vpns = {v.id: v for v in world.vpns}
        self._kk = {
            c.record.number: c.kundenkennwort_hash
            or (self.hashers.kundenkennwort.hash(c.kundenkennwort) if c.kundenkennwort else None)
            for c in world.customers
        }
        self._puk = {
            x.record.msisdn: x.puk_hash or (self.hashers.puk.hash(x.puk) if x.puk else None)
            for x in world.lines
        }
        rel: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        for c in world.customers:
            for relation, person in c.relations:
                rel[person][_FIELDS[relation]].add(c.record.number)
        for x in world.lines:
            if x.record.user_person_id:
                rel[x.record.user_person_id]["uses_lines"].add(x.record.msisdn)
        self._relations = {
            person: PersonRelations(person_id=person, **{k: frozenset(v) for k, v in fields.items()})
            for person, fields in rel.items()
        }
        by_customer_lines: dict[str, list[LineRecord]] = defaultdict(list)
        for line in sorted(self._lines.values(), key=lambda r: r.msisdn):
            by_customer_lines[line.customer_number].append(line)
        by_customer_contracts: dict[str, list[ContractRecord]] = defaultdict(list)
        for contract in sorted(self._contracts.values(), key=lambda r: r.id):
            by_customer_contracts[contract.customer_number].append(contract)
        by_contract_invoices: dict[str, list[InvoiceRecord]] = defaultdict(list)
        for inv in sorted(self._invoices.values(), key=lambda r: r.number):
            by_contract_invoices[inv.contract_id].append(inv)
        for invoices in by_contract_invoices.values():
            invoices.sort(key=lambda r: r.issued_on, reverse=True)
        self._lines_of = dict(by_customer_lines)
        self._contracts_of = dict(by_customer_contracts)
        self._invoices_of = dict(by_contract_invoices)

    async def person(self, person_id: str) -> PersonRecord | None:
        return self._persons.get(person_id)

    async def relations(self, person_id: str) -> PersonRelations:
        return self._relations.get(person_id) or PersonRelations(person_id=person_id)

    async def customer(self, number: str) -> CustomerRecord | None:
        return self._customers.get(number)

    async def contract(self, contract_id: str) -> ContractRecord | None:
        return self._contracts.get(contract_id)

    async def line(self, msisdn: str) -> LineRecord | None:
        return self._lines.get(msisdn)

    async def invoice(self, number: str) -> InvoiceRecord | None:
        return self._invoices.get(number)

    async def invoices_of_contract(self, contract_id: str) -> list[InvoiceRecord]:
        return list(self._invoices_of.get(contract_id, ()))

    async def vpn(self, vpn_id: str) -> VpnRecord | None:
        return self._vpns.get(vpn_id)

    async def lines_of_customer(self, number: str) -> list[LineRecord]:
        return list(self._lines_of.get(number, ()))

    async def contracts_of_customer(self, number: str) -> list[ContractRecord]:
        return list(self._contracts_of.get(number, ()))

    async def verify_kundenkennwort(self, customer_number: str, candidate: str) -> bool:
        return await self.hashers.kundenkennwort.verify(self._kk.get(customer_number), candidate)

    async def verify_puk(self, msisdn: str, candidate: str) -> bool:
        return await self.hashers.puk.verify(self._puk.get(msisdn), candidate)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None
