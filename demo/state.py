"""Per-app mutable state of the demo backend, seeded from the frozen `demo.world`.

Each `create_app()` gets its own `PortalState`, so tests (and several demo processes) never
share changes; nothing here is module-level. A change (tariff, add-on, barring, SIM, profile,
payment method, contract) is applied at once and shows in every later GET of the same app.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from demo.world import Address, PaymentMethod, World

__all__ = ["ContractState", "CustomerState", "LineState", "PortalState", "SimSwapOrder", "VpnState"]


@dataclass(slots=True)
class SimSwapOrder:
    id: str
    sim_type: str
    ordered_at: str
    new_iccid: str
    status: str = "ordered"


@dataclass(slots=True)
class LineState:
    tariff_id: str
    addons: set[str]
    barrings: set[str]
    sim_status: str
    iccid: str
    esim: bool
    block_reason: str | None = None
    swap_orders: list[SimSwapOrder] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class CustomerState:
    contact_person: str
    email: str
    phone: str
    address: Address
    payment: PaymentMethod
    #: scrypt(salt, new Kundenkennwort) after a change through the portal; never logged or echoed
    customer_password_hash: bytes | None = None
    customer_password_salt: bytes | None = None
    customer_password_changed_at: str | None = None
    profile_changed_at: str | None = None


@dataclass(slots=True)
class ContractState:
    minimum_term_end: str
    status: str
    cancellation: dict[str, Any] | None = None
    extensions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(slots=True)
class VpnState:
    name: str
    sites: list[str]
    changed_at: str | None = None


def add_months(day: dt.date, months: int) -> dt.date:
    """Calendar month arithmetic, clamped to the month's last day (31 Jan + 1 → 28/29 Feb)."""
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class PortalState:
    """The demo world as it is now for one app instance."""

    def __init__(self, world: World, clock: Callable[[], float]) -> None:
        self.world = world
        self._clock = clock
        self.lines: dict[str, LineState] = {
            msisdn: LineState(
                tariff_id=line.tariff_id,
                addons=set(line.addons),
                barrings=set(line.barrings),
                sim_status=line.sim.status,
                iccid=line.sim.iccid,
                esim=line.sim.esim,
            )
            for msisdn, line in world.lines.items()
        }
        self.customers: dict[str, CustomerState] = {
            number: CustomerState(
                contact_person=c.contact_person,
                email=c.email,
                phone=c.phone,
                address=c.address,
                payment=c.payment,
            )
            for number, c in world.customers.items()
        }
        self.contracts: dict[str, ContractState] = {
            cid: ContractState(minimum_term_end=c.minimum_term_end, status=c.status)
            for cid, c in world.contracts.items()
        }
        self.vpns: dict[str, VpnState] = {
            vid: VpnState(name=v.name, sites=list(v.sites)) for vid, v in world.vpns.items()
        }
        self._order_counter = 0

    # ------------------------------------------------------------------ time
    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self._clock(), tz=dt.UTC)

    def now_iso(self) -> str:
        return self.now().isoformat(timespec="seconds").replace("+00:00", "Z")

    def today(self) -> dt.date:
        return self.now().date()

    def record(self, msisdn: str, event: str, **details: Any) -> None:
        self.lines[msisdn].history.append({"at": self.now_iso(), "event": event, **details})

    # ------------------------------------------------------------------ changes
    def next_order_id(self) -> str:
        self._order_counter += 1
        return f"SWP-{self.today():%Y%m%d}-{self._order_counter:04d}"

    def set_customer_password(self, number: str, new_password: str) -> None:
        salt = secrets.token_bytes(16)
        digest = hashlib.scrypt(new_password.encode("utf-8"), salt=salt, n=2**14, r=8, p=1)
        customer = self.customers[number]
        customer.customer_password_salt = salt
        customer.customer_password_hash = digest
        customer.customer_password_changed_at = self.now_iso()

    def check_customer_password(self, number: str, candidate: str) -> bool:
        """For tests and a future directory sync: does `candidate` match the changed password?"""
        customer = self.customers[number]
        if customer.customer_password_hash is None or customer.customer_password_salt is None:
            return False
        digest = hashlib.scrypt(
            candidate.encode("utf-8"), salt=customer.customer_password_salt, n=2**14, r=8, p=1
        )
        return hmac.compare_digest(digest, customer.customer_password_hash)

    def change_address(self, number: str, **fields: str) -> None:
        customer = self.customers[number]
        customer.address = replace(customer.address, **fields)
