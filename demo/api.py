"""The portal API of docs/domain.md section 5, every row, over one `PortalState`.

The backend trusts the gateway to have decided *whether* the caller may do this (that is the
gateway's job); it checks *what* is asked: ids exist (else 404), bodies are JSON objects with
the required, well-typed fields (else 400/422), the change makes sense now (else 409).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from demo.assertion import VerifiedAssertion
from demo.pdf import render_text_pdf
from demo.responses import (
    SCOPE_KEY,
    ApiError,
    answer,
    optional_str,
    read_json_object,
    reject_unknown_fields,
    require_str,
)
from demo.state import LineState, PortalState, SimSwapOrder, add_months
from demo.world import Invoice, PaymentMethod, Tariff, luhn_check_digit, mask_iban, mask_number

__all__ = ["PortalApi", "error_response", "visible_parts"]

_SEGMENT_OF_CONTRACT = {
    "private": "private",
    "business": "business",
    "company": "business",
    "business_member": "business_member",
}
_BLOCK_REASONS = ("lost", "stolen", "damaged", "other")
_SIM_TYPES = ("esim", "physical")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
_PHONE = re.compile(r"\+?[0-9][0-9 /-]{5,20}")


def money(cents: int, *, vat_included: bool | None = None) -> dict[str, Any]:
    sign = "-" if cents < 0 else ""
    value: dict[str, Any] = {"amount": f"{sign}{abs(cents) // 100}.{abs(cents) % 100:02d}", "currency": "EUR"}
    if vat_included is not None:
        value["vat_included"] = vat_included
    return value


def _euro_text(cents: int) -> str:
    return f"{cents // 100:,}".replace(",", ".") + f",{cents % 100:02d} €"


def visible_parts(request: Request) -> frozenset[str] | None:
    """Which invoice parts the gateway lets this caller see, or None for "no restriction".

    The signed `parts` claim counts; the `X-Portal-Visible-Parts` header (comma list) is honoured
    too. When both are present only parts named by both are shown (the narrower wins).
    """
    sets: list[frozenset[str]] = []
    verified = request.scope.get(SCOPE_KEY)
    if isinstance(verified, VerifiedAssertion) and verified.parts is not None:
        sets.append(frozenset(verified.parts))
    header = request.headers.get("x-portal-visible-parts")
    if header is not None:
        sets.append(frozenset(p.strip() for p in header.split(",") if p.strip()))
    if not sets:
        return None
    result = sets[0]
    for other in sets[1:]:
        result &= other
    return result


def _iban_valid(iban: str) -> bool:
    compact = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{10,30}", compact):
        return False
    if compact.startswith("AT") and len(compact) != 20:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


class PortalApi:
    """Handlers of the portal API; `routes()` lists them exactly as docs/domain.md section 5."""

    def __init__(self, state: PortalState) -> None:
        self.state = state
        self.world = state.world

    def routes(self) -> list[Route]:
        line = "/api/lines/{msisdn}"
        return [
            Route("/api/status", self.status, methods=["GET"]),
            Route(f"{line}/usage", self.usage, methods=["GET"]),
            Route(f"{line}/tariff", self.tariff, methods=["GET"]),
            Route(f"{line}/tariff", self.change_tariff, methods=["PUT"]),
            Route(f"{line}/addons", self.book_addon, methods=["POST"]),
            Route(f"{line}/addons/{{addon}}", self.cancel_addon, methods=["DELETE"]),
            Route(f"{line}/barrings", self.set_barring, methods=["POST"]),
            Route(f"{line}/barrings/{{barring}}", self.lift_barring, methods=["DELETE"]),
            Route(f"{line}/sim/block", self.block_sim, methods=["POST"]),
            Route(f"{line}/sim/unblock", self.unblock_sim, methods=["POST"]),
            Route(f"{line}/sim/swap", self.order_sim_swap, methods=["POST"]),
            Route(f"{line}/sim/puk", self.view_puk, methods=["GET"]),
            Route(f"{line}/itemized-bill", self.itemized_bill, methods=["GET"]),
            Route("/api/contracts/{contract}/invoices", self.contract_invoices, methods=["GET"]),
            Route("/api/invoices/{invoice}", self.invoice, methods=["GET"]),
            Route("/api/invoices/{invoice}/pdf", self.invoice_pdf, methods=["GET"]),
            Route("/api/contracts/{contract}/extension", self.extend_contract, methods=["POST"]),
            Route("/api/contracts/{contract}/cancellation", self.cancel_contract, methods=["POST"]),
            Route("/api/customers/{customer}/profile", self.profile, methods=["GET"]),
            Route("/api/customers/{customer}/profile", self.change_profile, methods=["PUT"]),
            Route("/api/customers/{customer}/payment-method", self.change_payment_method, methods=["PUT"]),
            Route(
                "/api/customers/{customer}/customer-password", self.change_customer_password, methods=["PUT"]
            ),
            Route("/api/vpn/{vpn}", self.vpn, methods=["GET"]),
            Route("/api/vpn/{vpn}", self.change_vpn, methods=["PUT"]),
        ]

    # ------------------------------------------------------------------ lookups
    def _line(self, request: Request) -> tuple[str, LineState]:
        msisdn = request.path_params["msisdn"]
        state = self.state.lines.get(msisdn)
        if state is None:
            raise ApiError(404, "not_found", f"unknown line {msisdn}")
        return msisdn, state

    def _customer_number(self, request: Request) -> str:
        number = request.path_params["customer"]
        if number not in self.state.customers:
            raise ApiError(404, "not_found", f"unknown customer {number}")
        return str(number)

    def _contract_id(self, request: Request) -> str:
        contract_id = request.path_params["contract"]
        if contract_id not in self.state.contracts:
            raise ApiError(404, "not_found", f"unknown contract {contract_id}")
        return str(contract_id)

    def _invoice(self, request: Request) -> Invoice:
        invoice = self.world.invoices.get(request.path_params["invoice"])
        if invoice is None:
            raise ApiError(404, "not_found", f"unknown invoice {request.path_params['invoice']}")
        return invoice

    def _segment(self, msisdn: str) -> str:
        line = self.world.lines[msisdn]
        contract = self.world.contracts[line.contract_id]
        if contract.kind == "invoice_split":
            return "private" if line.part == "private" else "business"
        return _SEGMENT_OF_CONTRACT[contract.kind]

    # ------------------------------------------------------------------ views
    def _tariff_view(self, tariff: Tariff) -> dict[str, Any]:
        return {
            "id": tariff.id,
            "name": tariff.name,
            "monthly_fee": money(tariff.monthly_fee_cents, vat_included=tariff.vat_included),
            "included": {
                "data_mb": tariff.data_mb,
                "minutes": tariff.minutes,
                "sms": tariff.sms,
                "eu_roaming_mb": tariff.eu_roaming_mb,
            },
        }

    def _sim_view(self, msisdn: str, state: LineState) -> dict[str, Any]:
        pending = [o for o in state.swap_orders if o.status == "ordered"]
        return {
            "iccid": state.iccid,
            "status": state.sim_status,
            "esim": state.esim,
            "block_reason": state.block_reason,
            "pending_swap": None if not pending else self._order_view(pending[-1]),
        }

    @staticmethod
    def _order_view(order: SimSwapOrder) -> dict[str, Any]:
        return {
            "id": order.id,
            "sim_type": order.sim_type,
            "status": order.status,
            "ordered_at": order.ordered_at,
            "new_iccid": order.new_iccid,
        }

    def _contract_view(self, contract_id: str) -> dict[str, Any]:
        contract = self.world.contracts[contract_id]
        state = self.state.contracts[contract_id]
        return {
            "id": contract.id,
            "customer": contract.customer_number,
            "kind": contract.kind,
            "framework_customer": contract.framework_customer,
            "start_date": contract.start_date,
            "minimum_term_end": state.minimum_term_end,
            "notice_period_months": contract.notice_period_months,
            "status": state.status,
            "cancellation": state.cancellation,
        }

    def _invoice_summary(self, invoice: Invoice) -> dict[str, Any]:
        return {
            "number": invoice.number,
            "contract_id": invoice.contract_id,
            "customer": invoice.customer_number,
            "part": invoice.part,
            "issued_on": invoice.issued_on,
            "due_on": invoice.due_on,
            "period": {"from": invoice.period_start, "to": invoice.period_end},
            "current": invoice.current,
            "status": invoice.status,
            "net": money(invoice.net_cents),
            "vat": money(invoice.vat_cents),
            "total": money(invoice.gross_cents),
            "pdf_url": f"/api/invoices/{invoice.number}/pdf",
        }

    def _profile_view(self, number: str) -> dict[str, Any]:
        customer = self.world.customers[number]
        state = self.state.customers[number]
        payment = state.payment
        return {
            "customer": number,
            "name": customer.name,
            "kind": customer.kind,
            "contact_person": state.contact_person,
            "address": {
                "street": state.address.street,
                "postal_code": state.address.postal_code,
                "city": state.address.city,
                "country": state.address.country,
            },
            "email": state.email,
            "phone": state.phone,
            "vat_id": customer.vat_id,
            "company_register_no": customer.company_register_no,
            "framework_customer": customer.framework_customer,
            "payment_method": {
                "method": payment.method,
                "account_holder": payment.account_holder,
                "iban": None if payment.iban is None else mask_iban(payment.iban),
                "mandate_reference": payment.mandate_reference,
            },
            "customer_password_changed_at": state.customer_password_changed_at,
            "profile_changed_at": state.profile_changed_at,
            "contracts": sorted(c.id for c in self.world.contracts.values() if c.customer_number == number),
        }

    # ------------------------------------------------------------------ handlers: public
    async def status(self, request: Request) -> Response:
        return answer(
            request,
            {
                "status": "ok",
                "checked_at": self.state.now_iso(),
                "network": [
                    {"region": "Wien", "mobile": "ok", "5g": "ok"},
                    {"region": "Oberösterreich", "mobile": "ok", "5g": "ok"},
                    {
                        "region": "Tirol",
                        "mobile": "degraded",
                        "5g": "ok",
                        "note": "Wartungsarbeiten Sender Seefeld, 02:00-04:00",
                    },
                    {"region": "Steiermark", "mobile": "ok", "5g": "ok"},
                ],
            },
        )

    # ------------------------------------------------------------------ handlers: lines
    async def usage(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        line = self.world.lines[msisdn]
        tariff = self.world.tariffs[state.tariff_id]
        addons = [self.world.addons[a] for a in sorted(state.addons)]
        data_included = tariff.data_mb + sum(a.extra_data_mb for a in addons)
        roaming_included = tariff.eu_roaming_mb + sum(a.extra_eu_roaming_mb for a in addons)
        used = line.usage

        def units(used_value: int, included: int | None) -> dict[str, Any]:
            return {
                "used": used_value,
                "included": included,
                "remaining": None if included is None else max(0, included - used_value),
                "unlimited": included is None,
            }

        start, end = self.world.billing_period
        return answer(
            request,
            {
                "msisdn": msisdn,
                "contract_id": line.contract_id,
                "period": {"from": start, "to": end},
                "tariff": {"id": tariff.id, "name": tariff.name},
                "data_mb": units(used.data_mb_used, data_included),
                "minutes": units(used.minutes_used, tariff.minutes),
                "sms": units(used.sms_used, tariff.sms),
                "eu_roaming_mb": units(used.eu_roaming_mb_used, roaming_included),
                "addons": [a.id for a in addons],
                "sim_status": state.sim_status,
            },
        )

    async def tariff(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        line = self.world.lines[msisdn]
        segment = self._segment(msisdn)
        return answer(
            request,
            {
                "msisdn": msisdn,
                "label": line.label,
                "part": line.part,
                "tariff": self._tariff_view(self.world.tariffs[state.tariff_id]),
                "contract": self._contract_view(line.contract_id),
                "addons": [
                    {
                        "id": a,
                        "name": self.world.addons[a].name,
                        "monthly_fee": money(self.world.addons[a].monthly_fee_cents, vat_included=True),
                    }
                    for a in sorted(state.addons)
                ],
                "barrings": [
                    {
                        "id": b,
                        "name_de": self.world.barrings[b].name_de,
                        "name_en": self.world.barrings[b].name_en,
                    }
                    for b in sorted(state.barrings)
                ],
                "sim": self._sim_view(msisdn, state),
                "available_tariffs": sorted(
                    t.id for t in self.world.tariffs.values() if t.segment == segment
                ),
                "available_addons": sorted(self.world.addons),
                "history": list(state.history),
            },
        )

    async def change_tariff(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("tariff",))
        tariff_id = require_str(body, "tariff")
        tariff = self.world.tariffs.get(tariff_id)
        if tariff is None:
            raise ApiError(422, "invalid_request", f"unknown tariff '{tariff_id}'")
        if tariff.segment != self._segment(msisdn):
            raise ApiError(422, "invalid_request", f"tariff '{tariff_id}' is not available for this line")
        if self.state.contracts[self.world.lines[msisdn].contract_id].status != "active":
            raise ApiError(409, "conflict", "the contract is being cancelled")
        if tariff_id == state.tariff_id:
            raise ApiError(409, "conflict", f"line already has tariff '{tariff_id}'")
        previous, state.tariff_id = state.tariff_id, tariff_id
        self.state.record(msisdn, "tariff_changed", previous=previous, tariff=tariff_id)
        return answer(
            request,
            {
                "msisdn": msisdn,
                "previous_tariff": previous,
                "tariff": self._tariff_view(tariff),
                "effective_from": self.state.today().isoformat(),
            },
        )

    async def book_addon(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("addon",))
        addon_id = require_str(body, "addon")
        addon = self.world.addons.get(addon_id)
        if addon is None:
            raise ApiError(422, "invalid_request", f"unknown add-on '{addon_id}'")
        if addon_id in state.addons:
            raise ApiError(409, "conflict", f"add-on '{addon_id}' is already booked")
        state.addons.add(addon_id)
        self.state.record(msisdn, "addon_booked", addon=addon_id)
        return answer(
            request,
            {
                "msisdn": msisdn,
                "booked": {
                    "id": addon.id,
                    "name": addon.name,
                    "monthly_fee": money(addon.monthly_fee_cents, vat_included=True),
                },
                "addons": sorted(state.addons),
            },
            status_code=201,
        )

    async def cancel_addon(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        addon_id = request.path_params["addon"]
        if addon_id not in state.addons:
            raise ApiError(404, "not_found", f"add-on '{addon_id}' is not booked on this line")
        state.addons.discard(addon_id)
        self.state.record(msisdn, "addon_cancelled", addon=addon_id)
        return answer(request, {"msisdn": msisdn, "cancelled": addon_id, "addons": sorted(state.addons)})

    async def set_barring(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("barring",))
        barring_id = require_str(body, "barring")
        if barring_id not in self.world.barrings:
            raise ApiError(422, "invalid_request", f"unknown barring '{barring_id}'")
        already = barring_id in state.barrings
        state.barrings.add(barring_id)
        if not already:
            self.state.record(msisdn, "barring_set", barring=barring_id)
        return answer(
            request,
            {
                "msisdn": msisdn,
                "barring": barring_id,
                "already_set": already,
                "barrings": sorted(state.barrings),
            },
            status_code=200 if already else 201,
        )

    async def lift_barring(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        barring_id = request.path_params["barring"]
        if barring_id not in self.world.barrings or barring_id not in state.barrings:
            raise ApiError(404, "not_found", f"barring '{barring_id}' is not set on this line")
        state.barrings.discard(barring_id)
        self.state.record(msisdn, "barring_lifted", barring=barring_id)
        return answer(request, {"msisdn": msisdn, "lifted": barring_id, "barrings": sorted(state.barrings)})

    async def block_sim(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request, optional=True)
        reject_unknown_fields(body, ("reason",))
        reason = optional_str(body, "reason") or "lost"
        if reason not in _BLOCK_REASONS:
            raise ApiError(422, "invalid_request", f"reason must be one of {', '.join(_BLOCK_REASONS)}")
        already = state.sim_status == "blocked"
        if not already:
            state.sim_status, state.block_reason = "blocked", reason
            self.state.record(msisdn, "sim_blocked", reason=reason)
        return answer(
            request, {"msisdn": msisdn, "already_blocked": already, "sim": self._sim_view(msisdn, state)}
        )

    async def unblock_sim(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request, optional=True)
        reject_unknown_fields(body, ())
        if state.sim_status != "blocked":
            raise ApiError(409, "conflict", "the SIM is not blocked")
        state.sim_status, state.block_reason = "active", None
        self.state.record(msisdn, "sim_unblocked")
        return answer(request, {"msisdn": msisdn, "sim": self._sim_view(msisdn, state)})

    async def order_sim_swap(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("sim_type",))
        sim_type = require_str(body, "sim_type")
        if sim_type not in _SIM_TYPES:
            raise ApiError(422, "invalid_request", "sim_type must be 'esim' or 'physical'")
        if any(o.status == "ordered" for o in state.swap_orders):
            raise ApiError(409, "conflict", "a replacement SIM is already on its way")
        body_digits = "894301" + "0001" + msisdn[-7:] + f"{len(state.swap_orders) + 1:02d}"
        order = SimSwapOrder(
            id=self.state.next_order_id(),
            sim_type=sim_type,
            ordered_at=self.state.now_iso(),
            new_iccid=body_digits + luhn_check_digit(body_digits),
        )
        state.swap_orders.append(order)
        self.state.record(msisdn, "sim_swap_ordered", order=order.id, sim_type=sim_type)
        customer = self.state.customers[self.world.lines[msisdn].customer_number]
        delivery = (
            {"channel": "email", "to": customer.email}
            if sim_type == "esim"
            else {
                "channel": "post",
                "to": f"{customer.address.street}, {customer.address.postal_code} {customer.address.city}",
            }
        )
        return answer(
            request,
            {"msisdn": msisdn, "order": self._order_view(order), "delivery": delivery},
            status_code=202,
        )

    async def view_puk(self, request: Request) -> Response:
        msisdn, state = self._line(request)
        return answer(
            request,
            {"msisdn": msisdn, "iccid": state.iccid, "puk": self.world.lines[msisdn].puk},
            headers={"Cache-Control": "no-store"},
        )

    async def itemized_bill(self, request: Request) -> Response:
        msisdn, _ = self._line(request)
        line = self.world.lines[msisdn]
        start, end = self.world.billing_period
        entries = [
            {
                "at": e.at,
                "kind": e.kind,
                "destination": mask_number(e.destination),
                "zone": e.zone,
                "duration_s": e.duration_s,
                "volume_kb": e.volume_kb,
                "cost": money(e.cost_cents, vat_included=True),
            }
            for e in line.itemized
        ]
        return answer(
            request,
            {
                "msisdn": msisdn,
                "period": {"from": start, "to": end},
                "masking": "the last three digits of called numbers are hidden",
                "entries": entries,
                "total_cost": money(sum(e.cost_cents for e in line.itemized), vat_included=True),
            },
        )

    # ------------------------------------------------------------------ handlers: invoices
    async def contract_invoices(self, request: Request) -> Response:
        contract_id = self._contract_id(request)
        parts = visible_parts(request)
        invoices = [
            i
            for i in self.world.invoices.values()
            if i.contract_id == contract_id and (parts is None or _part_visible(i, parts))
        ]
        invoices.sort(key=lambda i: i.issued_on, reverse=True)
        return answer(
            request,
            {
                "contract_id": contract_id,
                "visible_parts": None if parts is None else sorted(parts),
                "invoices": [self._invoice_summary(i) for i in invoices],
            },
        )

    async def invoice(self, request: Request) -> Response:
        invoice = self._invoice(request)
        customer = self.world.customers[invoice.customer_number]
        return answer(
            request,
            {
                **self._invoice_summary(invoice),
                "billed_to": {"customer": customer.number, "name": customer.name},
                "items": [{"description": i.description, "net": money(i.net_cents)} for i in invoice.items],
                "vat_rate_percent": 20,
            },
        )

    async def invoice_pdf(self, request: Request) -> Response:
        invoice = self._invoice(request)
        customer = self.world.customers[invoice.customer_number]
        state = self.state.customers[invoice.customer_number]
        lines = [
            customer.name,
            state.address.street,
            f"{state.address.postal_code} {state.address.city}",
            "",
            f"Kundennummer: {customer.number}    Vertrag: {invoice.contract_id}"
            + (f"    Teil: {invoice.part}" if invoice.part else ""),
            f"Rechnungsdatum: {invoice.issued_on}    Fällig: {invoice.due_on}",
            f"Leistungszeitraum: {invoice.period_start} bis {invoice.period_end}",
            "",
        ]
        lines += [f"{item.description}: {_euro_text(item.net_cents)}" for item in invoice.items]
        lines += [
            "",
            f"Summe netto: {_euro_text(invoice.net_cents)}",
            f"USt. 20 %: {_euro_text(invoice.vat_cents)}",
            f"Gesamtbetrag: {_euro_text(invoice.gross_cents)}",
            "",
            "Demo-Rechnung, erstellt vom Portal-Demo-Backend. Keine echte Forderung.",
        ]
        pdf = render_text_pdf(f"Rechnung {invoice.number}", lines)
        return Response(
            pdf,
            media_type="application/pdf",
            headers={
                "Content-Disposition": f'attachment; filename="{invoice.number}.pdf"',
                "Cache-Control": "private, no-store",
            },
        )

    # ------------------------------------------------------------------ handlers: contracts
    async def extend_contract(self, request: Request) -> Response:
        contract_id = self._contract_id(request)
        body = await read_json_object(request, optional=True)
        reject_unknown_fields(body, ("term_months",))
        term = body.get("term_months", 24)
        if isinstance(term, bool) or term not in (12, 24):
            raise ApiError(422, "invalid_request", "term_months must be 12 or 24")
        state = self.state.contracts[contract_id]
        if state.status != "active":
            raise ApiError(409, "conflict", "a contract being cancelled cannot be extended")
        current_end = dt.date.fromisoformat(state.minimum_term_end)
        new_end = add_months(max(current_end, self.state.today()), int(term))
        previous, state.minimum_term_end = state.minimum_term_end, new_end.isoformat()
        state.extensions.append({"at": self.state.now_iso(), "term_months": term, "previous_end": previous})
        return answer(
            request,
            {
                "contract": self._contract_view(contract_id),
                "previous_minimum_term_end": previous,
                "term_months": term,
            },
        )

    async def cancel_contract(self, request: Request) -> Response:
        contract_id = self._contract_id(request)
        body = await read_json_object(request, optional=True)
        reject_unknown_fields(body, ("reason",))
        reason = optional_str(body, "reason", max_length=500)
        state = self.state.contracts[contract_id]
        if state.status != "active":
            raise ApiError(409, "conflict", "the contract is already being cancelled")
        contract = self.world.contracts[contract_id]
        notice_end = add_months(self.state.today(), contract.notice_period_months)
        term_end = dt.date.fromisoformat(state.minimum_term_end)
        effective_on = max(notice_end, term_end)  # the notice period, but not before the minimum term
        state.status = "cancellation_pending"
        state.cancellation = {
            "received_at": self.state.now_iso(),
            "effective_on": effective_on.isoformat(),
            "reason": reason,
        }
        return answer(request, {"contract": self._contract_view(contract_id)}, status_code=202)

    # ------------------------------------------------------------------ handlers: customers
    async def profile(self, request: Request) -> Response:
        number = self._customer_number(request)
        return answer(request, self._profile_view(number))

    async def change_profile(self, request: Request) -> Response:
        number = self._customer_number(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("email", "phone", "contact_person", "address"))
        if not body:
            raise ApiError(
                422, "invalid_request", "nothing to change: give email, phone, contact_person or address"
            )
        state = self.state.customers[number]
        email = optional_str(body, "email", max_length=254)
        if email is not None and not _EMAIL.fullmatch(email):
            raise ApiError(422, "invalid_request", "email is not a valid address")
        phone = optional_str(body, "phone", max_length=30)
        if phone is not None and not _PHONE.fullmatch(phone):
            raise ApiError(422, "invalid_request", "phone is not a valid phone number")
        contact = optional_str(body, "contact_person")
        address_fields: dict[str, str] = {}
        if "address" in body:
            address = body["address"]
            if not isinstance(address, Mapping) or not address:
                raise ApiError(422, "invalid_request", "address must be a non-empty object")
            reject_unknown_fields(address, ("street", "postal_code", "city", "country"))
            for key in address:
                address_fields[key] = require_str(address, key, max_length=120)
            country = address_fields.get("country", state.address.country)
            postal = address_fields.get("postal_code", state.address.postal_code)
            if country == "AT" and not re.fullmatch(r"[1-9][0-9]{3}", postal):
                raise ApiError(422, "invalid_request", "an Austrian postal code has four digits")
        if email is not None:
            state.email = email
        if phone is not None:
            state.phone = phone
        if contact is not None:
            state.contact_person = contact
        if address_fields:
            self.state.change_address(number, **address_fields)
        state.profile_changed_at = self.state.now_iso()
        return answer(request, self._profile_view(number))

    async def change_payment_method(self, request: Request) -> Response:
        number = self._customer_number(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("method", "iban", "account_holder"))
        method = require_str(body, "method")
        holder = require_str(body, "account_holder")
        state = self.state.customers[number]
        if method == "sepa_direct_debit":
            iban = require_str(body, "iban", max_length=42).replace(" ", "").upper()
            if not _iban_valid(iban):
                raise ApiError(422, "invalid_request", "iban is not a valid IBAN")
            mandate = f"MNDT-{number}-{self.state.today():%Y%m%d}"
            state.payment = PaymentMethod("sepa_direct_debit", holder, iban, mandate)
        elif method == "bank_transfer":
            if "iban" in body:
                raise ApiError(422, "invalid_request", "bank_transfer takes no iban")
            state.payment = PaymentMethod("bank_transfer", holder)
        else:
            raise ApiError(422, "invalid_request", "method must be 'sepa_direct_debit' or 'bank_transfer'")
        return answer(
            request, {"customer": number, "payment_method": self._profile_view(number)["payment_method"]}
        )

    async def change_customer_password(self, request: Request) -> Response:
        number = self._customer_number(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("new_password",))
        value = body.get("new_password")
        if not isinstance(value, str):
            raise ApiError(422, "invalid_request", "field 'new_password' is required")
        if not 8 <= len(value) <= 64:
            raise ApiError(422, "invalid_request", "new_password must have 8 to 64 characters")
        self.state.set_customer_password(number, value)
        return answer(
            request,
            {
                "customer": number,
                "changed": True,
                "changed_at": self.state.customers[number].customer_password_changed_at,
            },
        )

    # ------------------------------------------------------------------ handlers: VPN
    def _vpn_view(self, vpn_id: str) -> dict[str, Any]:
        vpn = self.world.vpns[vpn_id]
        state = self.state.vpns[vpn_id]
        return {
            "id": vpn.id,
            "customer": vpn.customer_number,
            "name": state.name,
            "apn": vpn.apn,
            "ip_pool": vpn.ip_pool,
            "sites": list(state.sites),
            "member_lines": list(vpn.member_lines),
            "monthly_fee": money(vpn.monthly_fee_cents, vat_included=False),
            "contract_end": vpn.contract_end,
            "changed_at": state.changed_at,
        }

    def _vpn_id(self, request: Request) -> str:
        vpn_id = str(request.path_params["vpn"])
        if vpn_id not in self.state.vpns:
            raise ApiError(404, "not_found", f"unknown VPN contract {vpn_id}")
        return vpn_id

    async def vpn(self, request: Request) -> Response:
        return answer(request, self._vpn_view(self._vpn_id(request)))

    async def change_vpn(self, request: Request) -> Response:
        vpn_id = self._vpn_id(request)
        body = await read_json_object(request)
        reject_unknown_fields(body, ("name", "sites"))
        if not body:
            raise ApiError(422, "invalid_request", "nothing to change: give name or sites")
        state = self.state.vpns[vpn_id]
        name = optional_str(body, "name")
        sites = body.get("sites")
        if sites is not None and (
            not isinstance(sites, list)
            or not sites
            or not all(isinstance(s, str) and s.strip() for s in sites)
        ):
            raise ApiError(422, "invalid_request", "sites must be a non-empty list of strings")
        if name is not None:
            state.name = name
        if sites is not None:
            state.sites = [s.strip() for s in sites]
        state.changed_at = self.state.now_iso()
        return answer(request, self._vpn_view(vpn_id))


def _part_visible(invoice: Invoice, parts: frozenset[str]) -> bool:
    """An invoice of an undivided contract has no part: it shows unless nothing may be seen."""
    if invoice.part is None:
        return bool(parts)
    return invoice.part in parts


def error_response(error: ApiError, request: Request) -> JSONResponse:
    return answer(request, {"error": error.error, "detail": error.detail}, status_code=error.status_code)
