"""Every row of the docs/domain.md section 5 API answers as documented; state changes stick."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.demo.conftest import Api

ANNA = "436641000001"
MAYR = "436641000010"


# (method, path, JSON body or None, expected status, a key the answer has)
ROWS: list[tuple[str, str, dict[str, Any] | None, int, str]] = [
    ("GET", f"/api/lines/{ANNA}/usage", None, 200, "data_mb"),
    ("GET", f"/api/lines/{ANNA}/tariff", None, 200, "tariff"),
    ("PUT", f"/api/lines/{ANNA}/tariff", {"tariff": "mobil-l"}, 200, "previous_tariff"),
    ("POST", f"/api/lines/{ANNA}/addons", {"addon": "data-10gb"}, 201, "booked"),
    ("DELETE", f"/api/lines/{MAYR}/addons/eu-roaming-5gb", None, 200, "cancelled"),
    ("POST", f"/api/lines/{ANNA}/barrings", {"barring": "roaming"}, 201, "barrings"),
    ("DELETE", f"/api/lines/{ANNA}/barrings/premium-sms", None, 200, "lifted"),
    ("POST", f"/api/lines/{ANNA}/sim/block", {"reason": "lost"}, 200, "sim"),
    ("POST", f"/api/lines/{ANNA}/sim/unblock", None, 409, "error"),
    ("POST", f"/api/lines/{ANNA}/sim/swap", {"sim_type": "esim"}, 202, "order"),
    ("GET", f"/api/lines/{ANNA}/sim/puk", None, 200, "puk"),
    ("GET", f"/api/lines/{ANNA}/itemized-bill", None, 200, "entries"),
    ("GET", "/api/contracts/ct-1000001/invoices", None, 200, "invoices"),
    ("GET", "/api/invoices/RE-2026-110001", None, 200, "items"),
    ("POST", "/api/contracts/ct-1000001/extension", {"term_months": 24}, 200, "contract"),
    ("POST", "/api/contracts/ct-1000001/cancellation", {"reason": "Umzug ins Ausland"}, 202, "contract"),
    ("GET", "/api/customers/1000001/profile", None, 200, "payment_method"),
    ("PUT", "/api/customers/1000001/profile", {"email": "anna@example.at"}, 200, "email"),
    (
        "PUT",
        "/api/customers/1000001/payment-method",
        {"method": "sepa_direct_debit", "iban": "AT48 3200 0000 1234 5864", "account_holder": "Anna Huber"},
        200,
        "payment_method",
    ),
    ("PUT", "/api/customers/1000001/customer-password", {"new_password": "Neues-Kennwort-7"}, 200, "changed"),
    ("GET", "/api/vpn/vpn-alpenblick-1", None, 200, "apn"),
    ("PUT", "/api/vpn/vpn-alpenblick-1", {"name": "Alpenblick Netz"}, 200, "sites"),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "field"), ROWS, ids=[f"{r[0]} {r[1]}" for r in ROWS]
)
async def test_every_row(
    api: Api, method: str, path: str, body: dict[str, Any] | None, status: int, field: str
) -> None:
    response = await api.request(method, path, json=body)
    assert response.status_code == status, response.text
    data = response.json()
    assert field in data
    assert data["asked_by"]["subject"] == "acct-anna"
    assert data["received"]["method"] == method
    assert data["received"]["path"] == path


async def test_pdf_row(api: Api) -> None:
    response = await api.get("/api/invoices/RE-2026-110030/pdf")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="RE-2026-110030.pdf"'
    pdf = response.content
    assert pdf.startswith(b"%PDF-")
    assert pdf.endswith(b"%%EOF")
    # the cross-reference table points at the objects
    startxref = int(pdf.rsplit(b"startxref", 1)[1].split()[0])
    assert pdf[startxref:].startswith(b"xref")
    table = pdf[startxref:].split(b"\n")
    count = int(table[1].split()[1])
    for number in range(1, count):
        offset = int(table[2 + number].split()[0])
        assert pdf[offset:].startswith(b"%d 0 obj" % number)
    length = int(re.search(rb"/Length (\d+)", pdf).group(1))  # type: ignore[union-attr]
    stream_at = pdf.index(b"stream\n") + len(b"stream\n")
    assert pdf[stream_at + length :].startswith(b"endstream")
    assert b"RE-2026-110030" in pdf


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/lines/436649999999/usage"),
        ("GET", "/api/lines/436649999999/tariff"),
        ("GET", "/api/lines/436649999999/sim/puk"),
        ("DELETE", f"/api/lines/{ANNA}/addons/eu-roaming-5gb"),  # not booked
        ("DELETE", f"/api/lines/{ANNA}/addons/no-such-addon"),
        ("DELETE", f"/api/lines/{ANNA}/barrings/no-such-barring"),
        ("DELETE", f"/api/lines/{ANNA}/barrings/roaming"),  # not set
        ("GET", "/api/contracts/ct-9999999/invoices"),
        ("GET", "/api/invoices/RE-2026-999999"),
        ("GET", "/api/invoices/RE-2026-999999/pdf"),
        ("POST", "/api/contracts/ct-9999999/extension"),
        ("GET", "/api/customers/9999999/profile"),
        ("GET", "/api/vpn/vpn-nowhere"),
        ("GET", "/api/nothing-here"),
    ],
)
async def test_unknown_ids_are_404_json(api: Api, method: str, path: str) -> None:
    response = await api.request(method, path)
    assert response.status_code == 404, response.text
    assert response.json()["error"] == "not_found"
    assert response.json()["asked_by"]["subject"] == "acct-anna"


async def test_wrong_method_is_405_json(api: Api) -> None:
    response = await api.request("DELETE", f"/api/lines/{ANNA}/usage")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"


@pytest.mark.parametrize(
    ("method", "path", "content", "status"),
    [
        ("PUT", f"/api/lines/{ANNA}/tariff", b"", 400),
        ("PUT", f"/api/lines/{ANNA}/tariff", b"{not json", 400),
        ("PUT", f"/api/lines/{ANNA}/tariff", b"[1, 2]", 400),
        ("PUT", f"/api/lines/{ANNA}/tariff", b"{}", 422),
        ("PUT", f"/api/lines/{ANNA}/tariff", b'{"tariff": 5}', 422),
        ("PUT", f"/api/lines/{ANNA}/tariff", b'{"tariff": "no-such"}', 422),
        ("PUT", f"/api/lines/{ANNA}/tariff", b'{"tariff": "business-l"}', 422),  # other segment
        ("PUT", f"/api/lines/{ANNA}/tariff", b'{"tariff": "mobil-m"}', 409),  # already
        ("PUT", f"/api/lines/{ANNA}/tariff", b'{"tariff": "mobil-l", "x": 1}', 422),
        ("POST", f"/api/lines/{ANNA}/addons", b'{"addon": "free-iphone"}', 422),
        ("POST", f"/api/lines/{MAYR}/addons", b'{"addon": "eu-roaming-5gb"}', 409),
        ("POST", f"/api/lines/{ANNA}/barrings", b'{"barring": "everything"}', 422),
        ("POST", f"/api/lines/{ANNA}/sim/block", b'{"reason": "bored"}', 422),
        ("POST", f"/api/lines/{ANNA}/sim/swap", b"{}", 422),
        ("POST", f"/api/lines/{ANNA}/sim/swap", b'{"sim_type": "nano"}', 422),
        ("POST", "/api/contracts/ct-1000001/extension", b'{"term_months": 36}', 422),
        ("PUT", "/api/customers/1000001/profile", b"{}", 422),
        ("PUT", "/api/customers/1000001/profile", b'{"email": "not-an-address"}', 422),
        ("PUT", "/api/customers/1000001/profile", b'{"address": {"postal_code": "99"}}', 422),
        ("PUT", "/api/customers/1000001/profile", b'{"name": "Someone Else"}', 422),
        (
            "PUT",
            "/api/customers/1000001/payment-method",
            b'{"method": "sepa_direct_debit", "iban": "AT00 0000 0000 0000 0000", "account_holder": "A"}',
            422,
        ),
        ("PUT", "/api/customers/1000001/payment-method", b'{"method": "cash", "account_holder": "A"}', 422),
        ("PUT", "/api/customers/1000001/payment-method", b'{"method": "sepa_direct_debit"}', 422),
        ("PUT", "/api/customers/1000001/customer-password", b'{"new_password": "short"}', 422),
        ("PUT", "/api/customers/1000001/customer-password", b"{}", 422),
        ("PUT", "/api/vpn/vpn-alpenblick-1", b'{"sites": []}', 422),
    ],
)
async def test_bodies_are_validated(api: Api, method: str, path: str, content: bytes, status: int) -> None:
    response = await api.request(method, path, content=content, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] in {"bad_request", "invalid_request", "conflict"}
    assert body["detail"]


async def test_oversized_body_is_413(api: Api) -> None:
    response = await api.request("PUT", "/api/customers/1000001/profile", content=b" " * 70_000)
    assert response.status_code == 413


async def test_usage_numbers(api: Api) -> None:
    data = (await api.get(f"/api/lines/{ANNA}/usage")).json()
    assert data["contract_id"] == "ct-1000001"
    assert data["tariff"] == {"id": "mobil-m", "name": "Mobil M"}
    assert data["data_mb"] == {"used": 7340, "included": 20480, "remaining": 13140, "unlimited": False}
    assert data["minutes"]["unlimited"] is True
    sophie = (await api.get("/api/lines/436641000020/usage")).json()
    assert sophie["data_mb"]["included"] == 30720 + 10240  # tariff + data-10gb


async def test_tariff_change_is_visible(api: Api) -> None:
    await api.request("PUT", f"/api/lines/{ANNA}/tariff", json={"tariff": "mobil-s"})
    tariff = (await api.get(f"/api/lines/{ANNA}/tariff")).json()
    assert tariff["tariff"]["id"] == "mobil-s"
    assert tariff["history"][-1]["event"] == "tariff_changed"
    usage = (await api.get(f"/api/lines/{ANNA}/usage")).json()
    assert usage["data_mb"]["included"] == 10240


async def test_addon_and_barring_changes_are_visible(api: Api) -> None:
    assert (
        await api.request("POST", f"/api/lines/{ANNA}/addons", json={"addon": "eu-roaming-5gb"})
    ).status_code == 201
    assert (
        await api.request("POST", f"/api/lines/{ANNA}/barrings", json={"barring": "roaming"})
    ).status_code == 201
    again = await api.request("POST", f"/api/lines/{ANNA}/barrings", json={"barring": "roaming"})
    assert again.status_code == 200 and again.json()["already_set"] is True
    assert (await api.request("DELETE", f"/api/lines/{ANNA}/barrings/premium-sms")).status_code == 200
    tariff = (await api.get(f"/api/lines/{ANNA}/tariff")).json()
    assert [a["id"] for a in tariff["addons"]] == ["eu-roaming-5gb"]
    assert [b["id"] for b in tariff["barrings"]] == ["roaming"]
    usage = (await api.get(f"/api/lines/{ANNA}/usage")).json()
    assert usage["eu_roaming_mb"]["included"] == 11264 + 5120
    assert (await api.request("DELETE", f"/api/lines/{ANNA}/addons/eu-roaming-5gb")).status_code == 200
    assert (await api.get(f"/api/lines/{ANNA}/tariff")).json()["addons"] == []


async def test_sim_block_unblock_swap(api: Api) -> None:
    blocked = await api.request("POST", f"/api/lines/{ANNA}/sim/block")  # empty body: reason defaults to lost
    assert blocked.status_code == 200
    assert blocked.json()["sim"]["status"] == "blocked"
    assert (await api.get(f"/api/lines/{ANNA}/usage")).json()["sim_status"] == "blocked"
    assert (await api.request("POST", f"/api/lines/{ANNA}/sim/unblock")).json()["sim"]["status"] == "active"
    swap = await api.request("POST", f"/api/lines/{ANNA}/sim/swap", json={"sim_type": "physical"})
    assert swap.status_code == 202
    assert swap.json()["delivery"]["channel"] == "post"
    pending = (await api.get(f"/api/lines/{ANNA}/tariff")).json()["sim"]["pending_swap"]
    assert pending["id"] == swap.json()["order"]["id"]
    assert len(pending["new_iccid"]) == 20
    again = await api.request("POST", f"/api/lines/{ANNA}/sim/swap", json={"sim_type": "esim"})
    assert again.status_code == 409


@pytest.mark.parametrize("msisdn", ["436641000001", "436641000020", "436641000031", "436641000040"])
async def test_puk_is_last_two_digits_four_times(api: Api, msisdn: str) -> None:
    response = await api.get(f"/api/lines/{msisdn}/sim/puk")
    assert response.json()["puk"] == msisdn[-2:] * 4
    assert response.headers["cache-control"] == "no-store"


async def test_puk_not_shown_elsewhere(api: Api) -> None:
    tariff = await api.get("/api/lines/436641000020/tariff")
    assert "20202020" not in tariff.text


async def test_itemized_bill_masks_numbers(api: Api) -> None:
    data = (await api.get(f"/api/lines/{MAYR}/itemized-bill")).json()
    numbers = [e["destination"] for e in data["entries"] if e["destination"].startswith("+")]
    assert numbers and all(n.endswith("xxx") for n in numbers)
    assert "+4315874311" not in str(data)


async def test_profile_change_is_visible_and_iban_masked(api: Api) -> None:
    response = await api.request(
        "PUT",
        "/api/customers/1000001/profile",
        json={"phone": "+43 664 5550001", "address": {"street": "Neubaugasse 8/3", "postal_code": "1070"}},
    )
    assert response.status_code == 200, response.text
    profile = (await api.get("/api/customers/1000001/profile")).json()
    assert profile["phone"] == "+43 664 5550001"
    assert profile["address"] == {
        "street": "Neubaugasse 8/3",
        "postal_code": "1070",
        "city": "Wien",
        "country": "AT",
    }
    assert profile["profile_changed_at"] is not None
    iban = profile["payment_method"]["iban"]
    assert iban.startswith("AT") and "****" in iban
    pm = await api.request(
        "PUT",
        "/api/customers/1000001/payment-method",
        json={
            "method": "sepa_direct_debit",
            "iban": "AT48 3200 0000 1234 5864",
            "account_holder": "Anna Huber",
        },
    )
    assert pm.json()["payment_method"]["iban"] == "AT48 **** **** **** 5864"
    assert "3200000012345864" not in pm.text
    profile = (await api.get("/api/customers/1000001/profile")).json()
    assert profile["payment_method"]["iban"] == "AT48 **** **** **** 5864"


async def test_customer_password_is_never_echoed(api: Api, app: Any) -> None:
    response = await api.request(
        "PUT", "/api/customers/1000010/customer-password", json={"new_password": "Mayr-KG-Kennwort-2"}
    )
    assert response.status_code == 200
    assert "Mayr-KG-Kennwort-2" not in response.text
    assert app.state.portal.check_customer_password("1000010", "Mayr-KG-Kennwort-2")
    assert not app.state.portal.check_customer_password("1000010", "Mayr-KG-Kennwort")
    profile = (await api.get("/api/customers/1000010/profile")).json()
    assert profile["customer_password_changed_at"] is not None


async def test_contract_extension_and_cancellation(api: Api) -> None:
    extended = (
        await api.request("POST", "/api/contracts/ct-1000010/extension", json={"term_months": 12})
    ).json()
    assert extended["previous_minimum_term_end"] == "2026-12-31"
    assert extended["contract"]["minimum_term_end"] == "2027-12-31"
    cancelled = await api.request("POST", "/api/contracts/ct-1000010/cancellation")
    assert cancelled.status_code == 202
    assert cancelled.json()["contract"]["status"] == "cancellation_pending"
    assert cancelled.json()["contract"]["cancellation"]["effective_on"] == "2027-12-31"
    tariff = (await api.get(f"/api/lines/{MAYR}/tariff")).json()
    assert tariff["contract"]["status"] == "cancellation_pending"
    assert (await api.request("POST", "/api/contracts/ct-1000010/cancellation")).status_code == 409
    assert (await api.request("POST", "/api/contracts/ct-1000010/extension")).status_code == 409


async def test_invoice_detail(api: Api) -> None:
    data = (await api.get("/api/invoices/RE-2026-110031")).json()
    assert data["contract_id"] == "ct-1000030"
    assert data["part"] == "business"
    assert data["billed_to"] == {"customer": "1000020", "name": "Alpenblick GmbH"}
    assert data["current"] is True and data["status"] == "open"
    net = sum(int(i["net"]["amount"].replace(".", "")) for i in data["items"])
    assert int(data["net"]["amount"].replace(".", "")) == net
    assert int(data["total"]["amount"].replace(".", "")) == net + int(data["vat"]["amount"].replace(".", ""))


async def test_vpn_change_is_visible(api: Api) -> None:
    await api.request("PUT", "/api/vpn/vpn-alpenblick-1", json={"sites": ["Innsbruck", "Seefeld", "Lech"]})
    data = (await api.get("/api/vpn/vpn-alpenblick-1")).json()
    assert data["sites"] == ["Innsbruck", "Seefeld", "Lech"]
    assert data["customer"] == "1000020"


def numbers(response: httpx.Response) -> list[str]:
    return [i["number"] for i in response.json()["invoices"]]


async def test_invoice_list_without_parts_shows_all(api: Api) -> None:
    response = await api.get("/api/contracts/ct-1000030/invoices")
    assert numbers(response) == ["RE-2026-110030", "RE-2026-110031", "RE-2026-100030", "RE-2026-100031"]
    assert response.json()["visible_parts"] is None


async def test_invoice_list_filtered_by_parts_claim(api: Api) -> None:
    response = await api.get("/api/contracts/ct-1000030/invoices", parts=["private"])
    assert numbers(response) == ["RE-2026-110030", "RE-2026-100030"]
    assert response.json()["visible_parts"] == ["private"]
    response = await api.get("/api/contracts/ct-1000030/invoices", parts=["business"])
    assert numbers(response) == ["RE-2026-110031", "RE-2026-100031"]


async def test_invoice_list_filtered_by_header(api: Api) -> None:
    response = await api.get(
        "/api/contracts/ct-1000030/invoices", headers={"X-Portal-Visible-Parts": "private"}
    )
    assert numbers(response) == ["RE-2026-110030", "RE-2026-100030"]
    assert response.json()["received"]["x_portal_headers"] == {"x-portal-visible-parts": "private"}


async def test_invoice_list_header_and_claim_narrowest_wins(api: Api) -> None:
    response = await api.get(
        "/api/contracts/ct-1000030/invoices",
        parts=["private"],
        headers={"X-Portal-Visible-Parts": "private,business"},
    )
    assert numbers(response) == ["RE-2026-110030", "RE-2026-100030"]


async def test_invoice_list_empty_parts_shows_nothing(api: Api) -> None:
    response = await api.get("/api/contracts/ct-1000001/invoices", parts=[])
    assert numbers(response) == []
    response = await api.get("/api/contracts/ct-1000001/invoices", parts=["private"])
    assert numbers(response) == ["RE-2026-110001", "RE-2026-100001"]


async def test_state_is_per_app(jwks: Any, signer: Any, clock: Any) -> None:
    from demo.backend import create_app

    first, second = (create_app(jwks_url=jwks.url, clock=clock) for _ in range(2))
    for app, expected in ((first, "mobil-s"), (second, "mobil-m")):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
            api = Api(c, signer, clock)
            if app is first:
                await api.request("PUT", f"/api/lines/{ANNA}/tariff", json={"tariff": "mobil-s"})
            assert (await api.get(f"/api/lines/{ANNA}/tariff")).json()["tariff"]["id"] == expected
