"""The demo world: frozen, made-up data for the people of docs/domain.md section 4.

Every id (persons, customers, contracts, lines, invoices, VPN, add-ons, barrings) is the one
fixed in docs/domain.md section 7, so the directory, the policy tests, the docs and this
backend agree. Everything here is immutable; `demo.state.PortalState` makes the per-app
mutable copy that PUT/POST/DELETE change. Money is kept in euro cents (int), never float.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ADDON_IDS",
    "BARRING_IDS",
    "Addon",
    "Address",
    "Barring",
    "BillEntry",
    "Contract",
    "Customer",
    "Invoice",
    "InvoiceItem",
    "Line",
    "PaymentMethod",
    "Person",
    "Sim",
    "Tariff",
    "Usage",
    "Vpn",
    "World",
    "demo_world",
    "iban_with_check_digits",
    "luhn_check_digit",
    "mask_iban",
    "mask_number",
    "puk_for",
]

Segment = Literal["private", "business", "business_member"]
Part = Literal["private", "business"]

ADDON_IDS: tuple[str, ...] = ("eu-roaming-5gb", "data-10gb")
BARRING_IDS: tuple[str, ...] = ("roaming", "premium-sms", "third-party")
VAT_PERCENT = 20
BILLING_PERIOD = ("2026-11-01", "2026-11-30")


# --------------------------------------------------------------------------- helpers
def puk_for(msisdn: str) -> str:
    """The demo PUK rule: the line's last two digits four times (436641000020 → 20202020)."""
    return msisdn[-2:] * 4


def luhn_check_digit(digits: str) -> str:
    """Luhn check digit, as ICCIDs (ITU-T E.118) carry one."""
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return str((10 - total % 10) % 10)


def iban_with_check_digits(country: str, bban: str) -> str:
    """A syntactically valid IBAN (ISO 13616 mod 97) for a made-up account."""
    rearranged = bban + country + "00"
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    check = 98 - int(numeric) % 97
    return f"{country}{check:02d}{bban}"


def mask_iban(iban: str) -> str:
    """Country, check digits and the last four digits; the rest hidden (AT61 **** **** **** 9800)."""
    compact = iban.replace(" ", "")
    hidden = len(compact) - 8
    groups = " ".join("****" for _ in range(max(1, (hidden + 3) // 4)))
    return f"{compact[:4]} {groups} {compact[-4:]}"


def mask_number(number: str) -> str:
    """Called numbers in an itemized bill lose their last three digits (verkürzte Zielrufnummer)."""
    if not number.startswith("+") or len(number) < 8:
        return number
    return number[:-3] + "xxx"


# --------------------------------------------------------------------------- records
@dataclass(frozen=True, slots=True)
class Person:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class Address:
    street: str
    postal_code: str
    city: str
    country: str = "AT"


@dataclass(frozen=True, slots=True)
class PaymentMethod:
    #: "sepa_direct_debit" (Einzugsermächtigung / SEPA-Lastschrift) or "bank_transfer" (Zahlschein)
    method: Literal["sepa_direct_debit", "bank_transfer"]
    account_holder: str
    iban: str | None = None
    mandate_reference: str | None = None


@dataclass(frozen=True, slots=True)
class Customer:
    number: str
    name: str
    kind: Literal["private", "business", "business_member", "split_private", "framework"]
    contact_person: str
    address: Address
    email: str
    phone: str
    payment: PaymentMethod
    framework_customer: str | None = None
    vat_id: str | None = None
    company_register_no: str | None = None


@dataclass(frozen=True, slots=True)
class Tariff:
    id: str
    name: str
    segment: Segment
    #: Private tariffs are quoted with VAT, business tariffs without (as Austrian price lists do).
    monthly_fee_cents: int
    vat_included: bool
    data_mb: int
    minutes: int | None  # None = unlimited (fair use)
    sms: int | None
    eu_roaming_mb: int


@dataclass(frozen=True, slots=True)
class Addon:
    id: str
    name: str
    monthly_fee_cents: int
    extra_data_mb: int = 0
    extra_eu_roaming_mb: int = 0


@dataclass(frozen=True, slots=True)
class Barring:
    id: str
    name_de: str
    name_en: str


@dataclass(frozen=True, slots=True)
class Sim:
    iccid: str
    esim: bool
    status: Literal["active", "blocked"] = "active"


@dataclass(frozen=True, slots=True)
class Usage:
    data_mb_used: int
    minutes_used: int
    sms_used: int
    eu_roaming_mb_used: int


@dataclass(frozen=True, slots=True)
class BillEntry:
    at: str  # local time with offset
    kind: Literal["call", "sms", "mms", "data", "roaming_data", "roaming_call"]
    destination: str  # full number; masked on output
    zone: Literal["national", "eu", "switzerland", "premium", "internet"]
    duration_s: int = 0
    volume_kb: int = 0
    cost_cents: int = 0


@dataclass(frozen=True, slots=True)
class Line:
    msisdn: str
    contract_id: str
    customer_number: str
    part: Part | None
    user_person_id: str | None
    label: str
    tariff_id: str
    sim: Sim
    usage: Usage
    addons: frozenset[str]
    barrings: frozenset[str]
    itemized: tuple[BillEntry, ...]

    @property
    def puk(self) -> str:
        return puk_for(self.msisdn)


@dataclass(frozen=True, slots=True)
class Contract:
    id: str
    customer_number: str
    kind: Literal["private", "business", "business_member", "invoice_split", "company"]
    framework_customer: str | None
    start_date: str
    minimum_term_end: str
    notice_period_months: int
    status: Literal["active", "cancellation_pending"] = "active"


@dataclass(frozen=True, slots=True)
class InvoiceItem:
    description: str
    net_cents: int


@dataclass(frozen=True, slots=True)
class Invoice:
    number: str
    contract_id: str
    customer_number: str
    part: Part | None
    issued_on: str
    due_on: str
    period_start: str
    period_end: str
    current: bool
    status: Literal["paid", "open"]
    items: tuple[InvoiceItem, ...]

    @property
    def net_cents(self) -> int:
        return sum(item.net_cents for item in self.items)

    @property
    def vat_cents(self) -> int:
        return (self.net_cents * VAT_PERCENT + 50) // 100

    @property
    def gross_cents(self) -> int:
        return self.net_cents + self.vat_cents


@dataclass(frozen=True, slots=True)
class Vpn:
    id: str
    customer_number: str
    name: str
    apn: str
    ip_pool: str
    sites: tuple[str, ...]
    member_lines: tuple[str, ...]
    monthly_fee_cents: int
    contract_end: str


@dataclass(frozen=True, slots=True)
class World:
    persons: MappingProxyType[str, Person]
    customers: MappingProxyType[str, Customer]
    contracts: MappingProxyType[str, Contract]
    lines: MappingProxyType[str, Line]
    invoices: MappingProxyType[str, Invoice]
    tariffs: MappingProxyType[str, Tariff]
    addons: MappingProxyType[str, Addon]
    barrings: MappingProxyType[str, Barring]
    vpns: MappingProxyType[str, Vpn]
    billing_period: tuple[str, str]


# --------------------------------------------------------------------------- data
def _persons() -> tuple[Person, ...]:
    return (
        Person("p-anna-huber", "Anna Huber"),
        Person("p-markus-mayr", "Markus Mayr"),
        Person("p-eva-lechner", "Eva Lechner"),
        Person("p-sophie-wagner", "Sophie Wagner"),
        Person("p-thomas-gruber", "Thomas Gruber"),
        Person("p-lukas-steiner", "Lukas Steiner"),
        Person("p-martin-berger", "Martin Berger"),
    )


def _sepa(holder: str, bank_code: str, account: str, mandate: str) -> PaymentMethod:
    return PaymentMethod(
        method="sepa_direct_debit",
        account_holder=holder,
        iban=iban_with_check_digits("AT", bank_code + account),
        mandate_reference=mandate,
    )


def _customers() -> tuple[Customer, ...]:
    return (
        Customer(
            number="1000001",
            name="Anna Huber",
            kind="private",
            contact_person="Anna Huber",
            address=Address("Mariahilfer Straße 45/12", "1060", "Wien"),
            email="anna.huber@example.at",
            phone="+43 664 1000001",
            payment=_sepa("Anna Huber", "20111", "82221219800", "MNDT-1000001-01"),
        ),
        Customer(
            number="1000010",
            name="Installateur Mayr KG",
            kind="business",
            contact_person="Markus Mayr",
            address=Address("Linzer Straße 18", "4600", "Wels"),
            email="office@mayr-installateur.example.at",
            phone="+43 7242 4711",
            payment=_sepa("Installateur Mayr KG", "34600", "00004711815", "MNDT-1000010-01"),
            vat_id="ATU12345678",
            company_register_no="FN 412345a",
        ),
        Customer(
            number="1000020",
            name="Alpenblick GmbH",
            kind="framework",
            contact_person="Martin Berger",
            address=Address("Innrain 25", "6020", "Innsbruck"),
            email="it@alpenblick.example.at",
            phone="+43 512 58 2020",
            payment=PaymentMethod(method="bank_transfer", account_holder="Alpenblick GmbH"),
            vat_id="ATU87654321",
            company_register_no="FN 298765k",
        ),
        Customer(
            number="1000021",
            name="Sophie Wagner",
            kind="business_member",
            contact_person="Sophie Wagner",
            address=Address("Linzer Gasse 22/4", "5020", "Salzburg"),
            email="sophie.wagner@example.at",
            phone="+43 664 1000020",
            payment=_sepa("Sophie Wagner", "35000", "00012345678", "MNDT-1000021-01"),
            framework_customer="1000020",
        ),
        Customer(
            number="1000030",
            name="Thomas Gruber",
            kind="split_private",
            contact_person="Thomas Gruber",
            address=Address("Sporgasse 14", "8010", "Graz"),
            email="thomas.gruber@example.at",
            phone="+43 664 1000030",
            payment=_sepa("Thomas Gruber", "38000", "00000734562", "MNDT-1000030-01"),
            framework_customer="1000020",
        ),
    )


def _contracts() -> tuple[Contract, ...]:
    return (
        Contract("ct-1000001", "1000001", "private", None, "2025-03-15", "2027-03-14", 1),
        Contract("ct-1000010", "1000010", "business", None, "2024-01-01", "2026-12-31", 3),
        Contract("ct-1000020", "1000020", "company", None, "2023-01-01", "2027-12-31", 3),
        Contract("ct-1000021", "1000021", "business_member", "1000020", "2025-02-01", "2027-01-31", 1),
        Contract("ct-1000030", "1000030", "invoice_split", "1000020", "2024-09-01", "2026-08-31", 1),
    )


def _tariffs() -> tuple[Tariff, ...]:
    return (
        Tariff("mobil-s", "Mobil S", "private", 1590, True, 10_240, 1000, 1000, 6_144),
        Tariff("mobil-m", "Mobil M", "private", 2490, True, 20_480, None, None, 11_264),
        Tariff("mobil-l", "Mobil L Unlimitiert", "private", 3490, True, 102_400, None, None, 16_384),
        Tariff("business-s", "Business Mobil S", "business", 1200, False, 10_240, 1000, 1000, 5_120),
        Tariff("business-m", "Business Mobil M", "business", 2200, False, 40_960, None, None, 12_288),
        Tariff("business-l", "Business Mobil L", "business", 3200, False, 61_440, None, None, 20_480),
        Tariff("member-m", "Business Member M", "business_member", 1990, True, 30_720, None, None, 10_240),
        Tariff("member-l", "Business Member L", "business_member", 2990, True, 81_920, None, None, 15_360),
    )


def _addons() -> tuple[Addon, ...]:
    return (
        Addon("eu-roaming-5gb", "EU-Roaming 5 GB", 490, extra_eu_roaming_mb=5_120),
        Addon("data-10gb", "Datenpaket 10 GB", 790, extra_data_mb=10_240),
    )


def _barrings() -> tuple[Barring, ...]:
    return (
        Barring("roaming", "Roamingsperre", "Roaming barring"),
        Barring("premium-sms", "Mehrwertnummern- und Mehrwert-SMS-Sperre", "Premium-rate numbers and SMS"),
        Barring("third-party", "Drittanbietersperre", "Third-party billing barring"),
    )


_DESTINATIONS: tuple[str, ...] = (
    "+4315874311",  # Wien, landline
    "+436641234567",
    "+436761112233",
    "+4366098765432",
    "+437322785146",  # Linz
    "+43512583421",  # Innsbruck
    "+436505554321",
    "+4331681234567",  # Graz
)


def _itemized(seed: int, roaming: bool) -> tuple[BillEntry, ...]:
    """A few deterministic entries of the running period; different per line by `seed`."""
    entries: list[BillEntry] = []
    for i in range(6):
        day = 2 + (seed * 3 + i * 4) % 25
        hour = 8 + (seed + i * 5) % 11
        minute = (seed * 7 + i * 13) % 60
        at = f"2026-11-{day:02d}T{hour:02d}:{minute:02d}:00+01:00"
        destination = _DESTINATIONS[(seed + i) % len(_DESTINATIONS)]
        if i % 3 == 2:
            entries.append(BillEntry(at, "sms", destination, "national"))
        else:
            duration = 37 + (seed * 61 + i * 97) % 900
            entries.append(BillEntry(at, "call", destination, "national", duration_s=duration))
    entries.append(BillEntry("2026-11-03T12:00:00+01:00", "data", "internet", "internet", volume_kb=512_000))
    if roaming:
        entries.append(
            BillEntry("2026-11-12T09:41:00+01:00", "roaming_data", "internet", "eu", volume_kb=230_400)
        )
        entries.append(
            BillEntry(
                "2026-11-13T18:05:00+01:00",
                "roaming_call",
                "+41442345678",
                "switzerland",
                duration_s=312,
                cost_cents=468,
            )
        )
    if seed == 11:
        entries.append(
            BillEntry("2026-11-20T21:15:00+01:00", "sms", "+430900123456", "premium", cost_cents=300)
        )
    entries.sort(key=lambda entry: entry.at)
    return tuple(entries)


def _iccid(msisdn: str) -> str:
    body = "894301" + "0000" + msisdn[-9:]
    return body + luhn_check_digit(body)


def _line(
    msisdn: str,
    contract_id: str,
    customer_number: str,
    part: Part | None,
    user: str | None,
    label: str,
    tariff_id: str,
    usage: Usage,
    *,
    esim: bool = False,
    addons: frozenset[str] = frozenset(),
    barrings: frozenset[str] = frozenset(),
    roaming: bool = False,
) -> Line:
    return Line(
        msisdn=msisdn,
        contract_id=contract_id,
        customer_number=customer_number,
        part=part,
        user_person_id=user,
        label=label,
        tariff_id=tariff_id,
        sim=Sim(iccid=_iccid(msisdn), esim=esim),
        usage=usage,
        addons=addons,
        barrings=barrings,
        itemized=_itemized(int(msisdn[-2:]), roaming),
    )


def _lines() -> tuple[Line, ...]:
    return (
        _line(
            "436641000001",
            "ct-1000001",
            "1000001",
            None,
            "p-anna-huber",
            "Anna privat",
            "mobil-m",
            Usage(7_340, 412, 38, 0),
            esim=True,
            barrings=frozenset({"premium-sms"}),
        ),
        _line(
            "436641000010",
            "ct-1000010",
            "1000010",
            None,
            "p-markus-mayr",
            "Markus Mayr (Chef)",
            "business-l",
            Usage(23_110, 1_290, 12, 850),
            addons=frozenset({"eu-roaming-5gb"}),
            barrings=frozenset({"third-party"}),
            roaming=True,
        ),
        _line(
            "436641000011",
            "ct-1000010",
            "1000010",
            None,
            None,
            "Werkstatt / Bereitschaft",
            "business-s",
            Usage(2_200, 85, 3, 0),
        ),
        _line(
            "436641000020",
            "ct-1000021",
            "1000021",
            None,
            "p-sophie-wagner",
            "Sophie Wagner",
            "member-m",
            Usage(11_800, 640, 57, 0),
            esim=True,
            addons=frozenset({"data-10gb"}),
        ),
        _line(
            "436641000030",
            "ct-1000030",
            "1000030",
            "private",
            "p-thomas-gruber",
            "Thomas Gruber privat",
            "mobil-s",
            Usage(4_100, 233, 120, 0),
        ),
        _line(
            "436641000031",
            "ct-1000030",
            "1000020",
            "business",
            "p-thomas-gruber",
            "Thomas Gruber dienstlich",
            "business-m",
            Usage(16_500, 980, 9, 1_200),
            roaming=True,
        ),
        _line(
            "436641000040",
            "ct-1000020",
            "1000020",
            None,
            "p-lukas-steiner",
            "Lukas Steiner (Außendienst)",
            "business-m",
            Usage(9_800, 1_720, 4, 0),
            barrings=frozenset({"premium-sms", "third-party"}),
        ),
    )


def _net(tariff: Tariff) -> int:
    if tariff.vat_included:
        return (tariff.monthly_fee_cents * 100 + 60) // (100 + VAT_PERCENT)
    return tariff.monthly_fee_cents


_PERIODS = (
    # (number prefix, issued, due, period start, period end, current, status)
    ("RE-2026-10", "2026-09-30", "2026-10-14", "2026-09-01", "2026-09-30", False, "paid"),
    ("RE-2026-11", "2026-10-31", "2026-11-14", "2026-10-01", "2026-10-31", True, "open"),
)

# (contract, customer billed, part, number suffix, extra items of the older and of the current invoice)
_Items = tuple[InvoiceItem, ...]
_INVOICE_SETS: tuple[tuple[str, str, Part | None, str, _Items, _Items], ...] = (
    ("ct-1000001", "1000001", None, "0001", (InvoiceItem("Roaming Schweiz, 14 Min.", 583),), ()),
    ("ct-1000010", "1000010", None, "0010", (), (InvoiceItem("Anrufe ins Ausland (Deutschland)", 312),)),
    ("ct-1000020", "1000020", None, "0020", (), ()),
    ("ct-1000021", "1000021", None, "0021", (), ()),
    ("ct-1000030", "1000030", "private", "0030", (), (InvoiceItem("Mehrwert-SMS 0900", 250),)),
    ("ct-1000030", "1000020", "business", "0031", (InvoiceItem("Roaming Schweiz, 22 Min.", 915),), ()),
)


def _invoices(
    lines: tuple[Line, ...], tariffs: dict[str, Tariff], addons: dict[str, Addon], vpn: Vpn
) -> tuple[Invoice, ...]:
    invoices: list[Invoice] = []
    for contract_id, customer, part, suffix, old_extra, current_extra in _INVOICE_SETS:
        base: list[InvoiceItem] = []
        for line in lines:
            if line.contract_id != contract_id or line.part != part:
                continue
            tariff = tariffs[line.tariff_id]
            base.append(InvoiceItem(f"Grundgebühr {tariff.name} ({line.msisdn})", _net(tariff)))
            for addon_id in sorted(line.addons):
                addon = addons[addon_id]
                net = (addon.monthly_fee_cents * 100) // (100 + VAT_PERCENT)
                base.append(InvoiceItem(f"{addon.name} ({line.msisdn})", net))
        if contract_id == "ct-1000020":
            base.append(InvoiceItem(f"Business VPN {vpn.name}", vpn.monthly_fee_cents))
        for (prefix, issued, due, start, end, current, status), extra in zip(
            _PERIODS, (old_extra, current_extra), strict=True
        ):
            invoices.append(
                Invoice(
                    number=f"{prefix}{suffix}",
                    contract_id=contract_id,
                    customer_number=customer,
                    part=part,
                    issued_on=issued,
                    due_on=due,
                    period_start=start,
                    period_end=end,
                    current=current,
                    status=status,  # type: ignore[arg-type]
                    items=(*base, *extra),
                )
            )
    return tuple(invoices)


def _vpn() -> Vpn:
    return Vpn(
        id="vpn-alpenblick-1",
        customer_number="1000020",
        name="Alpenblick Standortvernetzung",
        apn="alpenblick.corp.magenta.at",
        ip_pool="10.42.16.0/24",
        sites=("Zentrale Innsbruck, Innrain 25", "Hotel Alpenblick Seefeld, Münchner Straße 120"),
        member_lines=("436641000031", "436641000040"),
        monthly_fee_cents=4900,
        contract_end="2027-12-31",
    )


@functools.cache
def demo_world() -> World:
    """The one demo world (immutable, so caching it shares nothing mutable)."""
    tariffs = {t.id: t for t in _tariffs()}
    addons = {a.id: a for a in _addons()}
    lines = _lines()
    vpn = _vpn()
    return World(
        persons=MappingProxyType({p.id: p for p in _persons()}),
        customers=MappingProxyType({c.number: c for c in _customers()}),
        contracts=MappingProxyType({c.id: c for c in _contracts()}),
        lines=MappingProxyType({line.msisdn: line for line in lines}),
        invoices=MappingProxyType({i.number: i for i in _invoices(lines, tariffs, addons, vpn)}),
        tariffs=MappingProxyType(tariffs),
        addons=MappingProxyType(addons),
        barrings=MappingProxyType({b.id: b for b in _barrings()}),
        vpns=MappingProxyType({vpn.id: vpn}),
        billing_period=BILLING_PERIOD,
    )
