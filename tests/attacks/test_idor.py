"""Every demo person against every resource of every other person, on every route:
404 (invariant 2: existence does not leak; not 403, and not a step-up challenge either),
and the private/business parts of the split contract stay apart (invariant 3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from tests.integration.conftest import Portal
from tests.integration.test_roles import login_anna, register

LINES = ["436641000001", "436641000010", "436641000011", "436641000020", "436641000030", "436641000031",
         "436641000040"]
CONTRACTS = ["ct-1000001", "ct-1000010", "ct-1000020", "ct-1000021", "ct-1000030"]
INVOICES = [f"RE-2026-{p}{s}" for s in ("001", "010", "020", "021", "030", "031") for p in ("100", "110")]
CUSTOMERS = ["1000001", "1000010", "1000020", "1000021", "1000030"]

LINE_ROUTES = [
    ("GET", "/api/lines/{}/usage", None), ("GET", "/api/lines/{}/tariff", None),
    ("PUT", "/api/lines/{}/tariff", {"tariff": "business-l"}), ("POST", "/api/lines/{}/addons", {"addon": "data-10gb"}),
    ("DELETE", "/api/lines/{}/addons/data-10gb", None), ("POST", "/api/lines/{}/barrings", {"barring": "roaming"}),
    ("DELETE", "/api/lines/{}/barrings/roaming", None), ("POST", "/api/lines/{}/sim/block", {}),
    ("POST", "/api/lines/{}/sim/unblock", {}), ("POST", "/api/lines/{}/sim/swap", {"sim_type": "esim"}),
    ("GET", "/api/lines/{}/sim/puk", None), ("GET", "/api/lines/{}/itemized-bill", None),
]
CONTRACT_ROUTES = [
    ("GET", "/api/contracts/{}/invoices", None), ("POST", "/api/contracts/{}/extension", {}),
    ("POST", "/api/contracts/{}/cancellation", {}),
]
INVOICE_ROUTES = [("GET", "/api/invoices/{}", None), ("GET", "/api/invoices/{}/pdf", None)]
CUSTOMER_ROUTES = [
    ("GET", "/api/customers/{}/profile", None), ("PUT", "/api/customers/{}/profile", {"email": "x@evil.example"}),
    ("PUT", "/api/customers/{}/payment-method", {"method": "sepa", "iban": "AT611904300234573201"}),
    ("PUT", "/api/customers/{}/customer-password", {"new_password": "Evil-Kennwort-1"}),
]


async def _anna(c: httpx.AsyncClient, portal: Portal) -> dict[str, str]:
    return await login_anna(c)


async def _markus(c: httpx.AsyncClient, portal: Portal) -> dict[str, str]:
    return await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")


async def _sophie(c: httpx.AsyncClient, portal: Portal) -> dict[str, str]:
    return await register(c, "sophie.wagner@example.at", "436641000020", "puk", "20202020")


async def _thomas(c: httpx.AsyncClient, portal: Portal) -> dict[str, str]:
    return await register(c, "thomas.gruber@example.at", "436641000030", "puk", "30303030")


async def _lukas(c: httpx.AsyncClient, portal: Portal) -> dict[str, str]:
    r = await c.post("/auth/sms/send", json={"msisdn": "436641000040"})
    assert r.status_code == 202
    r = await c.post("/auth/sms/verify", json={"msisdn": "436641000040", "code": portal.last_sms_code("436641000040")})
    assert r.status_code == 200, r.text
    return {"Authorization": "Bearer " + r.json()["token"]}


Login = Callable[[httpx.AsyncClient, Portal], Awaitable[dict[str, str]]]

# person → (login, own ids (any answer allowed), related-but-not-permitted ids (403 or 404 allowed))
PEOPLE: dict[str, tuple[Login, set[str], set[str]]] = {
    "anna": (_anna, {"436641000001", "ct-1000001", "RE-2026-100001", "RE-2026-110001", "1000001"}, set()),
    "markus": (_markus, {"436641000010", "436641000011", "ct-1000010", "RE-2026-100010", "RE-2026-110010",
                         "1000010"}, set()),
    "sophie": (_sophie, {"436641000020", "ct-1000021", "RE-2026-100021", "RE-2026-110021", "1000021"}, set()),
    # Thomas registered on the private part: the business line, its invoices and the
    # framework customer are invisible (invariant 3); his split contract is his own.
    "thomas": (_thomas, {"436641000030", "ct-1000030", "RE-2026-100030", "RE-2026-110030", "1000030"}, set()),
    # Lukas (restricted, company phone): his line; the company's contract and invoices he
    # is related to may answer 403 instead of 404.
    "lukas": (_lukas, {"436641000040"}, {"ct-1000020", "RE-2026-100020", "RE-2026-110020", "1000020"}),
}


def _variants(resource: str) -> list[str]:
    """The id itself and spellings a lax lookup might fold into it."""
    out = [resource]
    if resource.startswith("RE-"):
        out += [resource.lower(), resource.replace("-", "%2D")]
    elif resource.startswith("ct-"):
        out += [resource.upper(), resource + "%20"]
    elif len(resource) == 7:
        out += ["0" + resource, resource + "%20", "+" + resource]
    else:
        out += ["0" + resource, "43" + resource, "%2B" + resource]
    return out


@pytest.mark.parametrize("person", list(PEOPLE))
async def test_nobody_sees_or_touches_other_peoples_resources(portal: Portal, person: str) -> None:
    login, own, related = PEOPLE[person]
    failures: list[str] = []
    async with portal.client() as c:
        h = await login(c, portal)
        table = [(LINES, LINE_ROUTES), (CONTRACTS, CONTRACT_ROUTES), (INVOICES, INVOICE_ROUTES),
                 (CUSTOMERS, CUSTOMER_ROUTES)]
        for ids, routes in table:
            for resource in ids:
                for variant in _variants(resource):
                    if variant == resource and resource in own:
                        continue
                    for method, template, body in routes:
                        path = template.format(variant)
                        r = await c.request(method, path, headers=h, json=body)
                        allowed = {400, 404}
                        if variant == resource and resource in related:
                            allowed.add(403)
                        if r.status_code not in allowed:
                            failures.append(f"{method} {path} → {r.status_code} {r.text[:120]}")
    assert not failures, "\n".join(failures)


async def test_thomas_contract_invoice_list_hides_the_business_part(portal: Portal) -> None:
    async with portal.client() as c:
        h = await _thomas(c, portal)
        r = await c.get("/api/contracts/ct-1000030/invoices", headers=h)
        assert r.status_code == 200
        assert "RE-2026-110031" not in r.text and "RE-2026-100031" not in r.text
        assert r.json()["received"]["x_portal_headers"].get("x-portal-visible-parts") == "private"
        # Spoofing the visible parts does not widen them.
        r = await c.get("/api/contracts/ct-1000030/invoices",
                        headers={**h, "X-Portal-Visible-Parts": "private,business"})
        assert "RE-2026-110031" not in r.text
