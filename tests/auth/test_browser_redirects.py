"""A browser without a session is sent to log in; one with a stale factor to a step-up it can finish.

Through the real gateway (sockets, demo backend): page loads get a 302 with a
safe ``next``, API clients keep the JSON 401, and the step-up page offers only
methods the person can finish.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from tests.integration.conftest import Portal, portal  # noqa: F401, F811 - the real gateway fixture
from tests.integration.test_roles import login_anna, register

PAGE = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8", "Sec-Fetch-Mode": "navigate"}
PUK = "/api/lines/436641000001/sim/puk"


async def test_a_page_load_without_a_session_goes_to_the_login_and_comes_back(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        r = await c.get(PUK + "?view=full", headers=PAGE)
        assert r.status_code == 302, r.text
        target = urlsplit(r.headers["location"])
        assert target.path == "/auth/login"
        assert parse_qs(target.query)["next"] == [PUK + "?view=full"]
        # The login page keeps it for after the login.
        page = await c.get(r.headers["location"], headers=PAGE)
        assert page.status_code == 200
        assert f'name="next" value="{PUK}?view=full"' in page.text


async def test_api_clients_and_scripts_keep_the_json_401(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        for headers in ({"Accept": "application/json"}, {}, {**PAGE, "Sec-Fetch-Mode": "cors"},
                        {**PAGE, "Authorization": "Bearer pgs_not-a-session"}):
            r = await c.get(PUK, headers=headers)
            assert r.status_code == 401, (headers, r.status_code)
            assert r.headers["content-type"].startswith("application/json") or "text/html" in headers.get(
                "Accept", "")
        r = await c.post(PUK, headers=PAGE)  # not a GET: no redirect
        assert r.status_code != 302


async def test_no_open_redirect_from_the_path(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        r = await c.get("//evil.example/api/lines/436641000001/sim/puk", headers=PAGE)
        assert r.status_code != 302 or urlsplit(r.headers["location"]).netloc == ""
        if r.status_code == 302:
            assert parse_qs(urlsplit(r.headers["location"]).query).get("next", ["/"])[0].startswith("/")
            assert not parse_qs(urlsplit(r.headers["location"]).query).get("next", ["/"])[0].startswith("//")


async def test_step_up_answer_carries_next_and_the_page_offers_the_lines_of_the_contract(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        # Markus, holder by Kundenkennwort, no TOTP: the step-up must be possible by SMS to his lines.
        h = await register(c, "markus@mayr-kg.at", "1000010", "kundenkennwort", "Mayr-KG-Kennwort")
        swap = "/api/lines/436641000010/sim/puk"
        r = await c.get(swap, headers=h)
        assert r.status_code == 401 and r.json()["error"] == "step_up_required"
        assert r.json()["step_up_url"] == "/auth/step-up?next=" + swap
        page = await c.get("/auth/step-up?next=" + swap, headers={**h, "Accept": "text/html"})
        assert page.status_code == 200
        assert 'value="436641000010"' in page.text and 'value="436641000011"' in page.text
        assert 'value="totp"' not in page.text  # no TOTP enrolled: not offered
        assert 'href="/auth/totp/enroll"' in page.text
        assert f'name="next" value="{swap}"' in page.text
        # The API finishes it with a code to one of his lines and the request succeeds when repeated.
        await c.post("/auth/sms/send", json={"msisdn": "0664 1000011"})
        r = await c.post("/auth/step-up", headers=h,
                         json={"method": "sms", "msisdn": "436641000011", "code": portal.last_sms_code("436641000011")})
        assert r.status_code == 200, r.text
        h = {"Authorization": "Bearer " + r.json()["token"]}
        assert (await c.get(swap, headers=h)).status_code == 200


async def test_the_html_step_up_returns_to_the_page(portal: Portal) -> None:  # noqa: F811
    async with portal.client() as c:
        await login_anna(c)  # cookie session, TOTP fresh
        r = await c.get("/auth/step-up?next=" + PUK, headers=PAGE)
        assert r.status_code == 200
        assert 'value="totp"' in r.text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', r.text).group(1)
        assert csrf
