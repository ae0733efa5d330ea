# ruff: noqa: E501  (table-driven cases read best one per line)
"""The Directory protocol, run against every implementation with the demo world
(SqlDirectory on SQLite and on PostgreSQL, HttpDirectory against the reference service
over a real socket, MemoryDirectory)."""

from __future__ import annotations

import pytest

from gateway.directory.base import Directory
from gateway.directory.records import (
    ContractRecord,
    CustomerRecord,
    InvoiceRecord,
    LineRecord,
    PersonRecord,
    PersonRelations,
    VpnRecord,
)


async def test_is_a_directory(directory: Directory) -> None:
    assert isinstance(directory, Directory)
    await directory.ping()


async def test_person(directory: Directory) -> None:
    assert await directory.person("p-sophie-wagner") == PersonRecord("p-sophie-wagner", "Sophie Wagner")
    assert await directory.person("p-nobody") is None


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("p-anna-huber", {"holder_of": {"1000001"}, "uses_lines": {"436641000001"}}),
        ("p-markus-mayr", {"holder_of": {"1000010"}, "uses_lines": {"436641000010"}}),
        ("p-eva-lechner", {"authorised_for": {"1000010"}}),
        ("p-sophie-wagner", {"member_of": {"1000021"}, "uses_lines": {"436641000020"}}),
        (
            "p-thomas-gruber",
            {"split_private_of": {"1000030"}, "uses_lines": {"436641000030", "436641000031"}},
        ),
        ("p-lukas-steiner", {"uses_lines": {"436641000040"}}),
        ("p-martin-berger", {"administers": {"1000020"}}),
        ("p-nobody", {}),
    ],
)
async def test_relations(directory: Directory, person: str, expected: dict[str, set[str]]) -> None:
    want = PersonRelations(person_id=person, **{k: frozenset(v) for k, v in expected.items()})
    assert await directory.relations(person) == want


async def test_customers(directory: Directory) -> None:
    assert await directory.customer("1000001") == CustomerRecord("1000001", "Anna Huber", "private")
    assert await directory.customer("1000020") == CustomerRecord("1000020", "Alpenblick GmbH", "framework")
    assert await directory.customer("1000030") == CustomerRecord("1000030", "Thomas Gruber", "split_private")
    assert await directory.customer("9999999") is None


async def test_contracts(directory: Directory) -> None:
    assert await directory.contract("ct-1000021") == ContractRecord(
        "ct-1000021", "1000021", "business_member", "1000020"
    )
    assert await directory.contract("ct-1000030") == ContractRecord(
        "ct-1000030", "1000030", "invoice_split", "1000020"
    )
    assert await directory.contract("ct-1000001") == ContractRecord("ct-1000001", "1000001", "private", None)
    assert await directory.contract("ct-9") is None


async def test_lines(directory: Directory) -> None:
    assert await directory.line("436641000031") == LineRecord(
        "436641000031", "ct-1000030", "1000020", "business", "p-thomas-gruber"
    )
    assert await directory.line("436641000030") == LineRecord(
        "436641000030", "ct-1000030", "1000030", "private", "p-thomas-gruber"
    )
    assert await directory.line("436641000011") == LineRecord(
        "436641000011", "ct-1000010", "1000010", None, None
    )
    assert await directory.line("436641999999") is None


async def test_invoices(directory: Directory) -> None:
    assert await directory.invoice("RE-2026-110021") == InvoiceRecord(
        "RE-2026-110021", "ct-1000021", "1000021", None, "2026-10-31", True
    )
    assert await directory.invoice("RE-2026-100021") == InvoiceRecord(
        "RE-2026-100021", "ct-1000021", "1000021", None, "2026-09-30", False
    )
    assert await directory.invoice("RE-2026-110031") == InvoiceRecord(
        "RE-2026-110031", "ct-1000030", "1000020", "business", "2026-10-31", True
    )
    assert await directory.invoice("RE-0000") is None


async def test_invoices_of_contract_newest_first_with_both_parts(directory: Directory) -> None:
    invoices = await directory.invoices_of_contract("ct-1000030")
    assert [i.number for i in invoices] == [
        "RE-2026-110030",
        "RE-2026-110031",
        "RE-2026-100030",
        "RE-2026-100031",
    ]
    current = {i.part: i.number for i in invoices if i.current}
    assert current == {"private": "RE-2026-110030", "business": "RE-2026-110031"}
    assert await directory.invoices_of_contract("ct-9") == []


async def test_vpn(directory: Directory) -> None:
    assert await directory.vpn("vpn-alpenblick-1") == VpnRecord("vpn-alpenblick-1", "1000020")
    assert await directory.vpn("vpn-x") is None


async def test_lines_and_contracts_of_customer(directory: Directory) -> None:
    lines = await directory.lines_of_customer("1000020")
    assert [x.msisdn for x in lines] == ["436641000031", "436641000040"]
    assert [x.msisdn for x in await directory.lines_of_customer("1000010")] == [
        "436641000010",
        "436641000011",
    ]
    assert [c.id for c in await directory.contracts_of_customer("1000020")] == ["ct-1000020"]
    assert await directory.lines_of_customer("9999999") == []
    assert await directory.contracts_of_customer("9999999") == []


@pytest.mark.parametrize(
    ("customer", "candidate", "ok"),
    [
        ("1000001", "Huber-Kennwort-1", True),
        ("1000010", "Mayr-KG-Kennwort", True),
        ("1000020", "Alpenblick-Kennwort", True),
        ("1000001", "huber-kennwort-1", False),
        ("1000001", "Huber-Kennwort-1 ", False),
        ("1000001", "", False),
        ("1000010", "Huber-Kennwort-1", False),
        ("1000021", "anything", False),  # no Kundenkennwort stored
        ("9999999", "Huber-Kennwort-1", False),
    ],
)
async def test_verify_kundenkennwort(directory: Directory, customer: str, candidate: str, ok: bool) -> None:
    assert await directory.verify_kundenkennwort(customer, candidate) is ok


@pytest.mark.parametrize(
    ("msisdn", "candidate", "ok"),
    [
        ("436641000020", "20202020", True),
        ("436641000030", "30303030", True),
        ("436641000031", "31313131", True),
        ("436641000001", "01010101", True),
        ("436641000020", "20202021", False),
        ("436641000020", "30303030", False),
        ("436641999999", "99999999", False),
    ],
)
async def test_verify_puk(directory: Directory, msisdn: str, candidate: str, ok: bool) -> None:
    assert await directory.verify_puk(msisdn, candidate) is ok


@pytest.mark.parametrize(
    "odd", ["", ".", "..", "../lines/436641000020", "436641000020/..", "a/b", "%2e%2e", "ä"]
)
async def test_odd_ids_are_unknown(directory: Directory, odd: str) -> None:
    assert await directory.line(odd) is None
    assert await directory.customer(odd) is None
    assert await directory.lines_of_customer(odd) == []
    assert await directory.relations(odd) == PersonRelations(person_id=odd)
    assert await directory.verify_puk(odd, "20202020") is False
