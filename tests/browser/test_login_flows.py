"""Headless Chromium through the whole gateway: registration, TOTP, SMS-TAN, policy refusal."""

from __future__ import annotations

import json
import time

import pyotp

from gateway.policy.reasons import message

PASSWORD = "Sophies-Portal-Passwort-7"


class _Totp(pyotp.TOTP):
    min_secret_length_bits = 80


async def test_sophie_registers_with_puk_enrols_totp_and_sees_her_usage(gateway, browser) -> None:
    context = await browser.new_context(locale="de-AT")
    page = await context.new_page()
    await page.goto(gateway.url + "/auth/register")
    await page.get_by_role("link", name="Business Member").click()
    await page.get_by_label("Rufnummer", exact=True).fill("436641000020")
    await page.get_by_label("PUK der SIM-Karte").check()
    await page.locator("#f-proof").fill("20202020")
    await page.get_by_label("Anmeldename").fill("sophie.wagner@example.at")
    await page.get_by_label("Neues Portal-Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Konto anlegen").click()
    await page.wait_for_load_state()
    assert "/auth/account?registered=1" in page.url, (page.url, await page.content())
    assert "sophie.wagner@example.at" in await page.locator("#who").inner_text()

    await page.get_by_role("link", name="Authenticator-App einrichten").click()
    await page.get_by_role("button", name="Neuen Schlüssel erzeugen").click()
    assert await page.locator("figure.qr svg").count() == 1
    secret = (await page.locator("#totp-secret").inner_text()).strip()
    totp = _Totp(secret)
    step = int(time.time() // 30)
    await page.get_by_label("6-stelliger Code").fill(totp.generate_otp(step))
    # The first TOTP also proves the line: the code the SMS brought to Sophie's phone.
    assert "Code per SMS" in await page.locator("#sms-to-note").inner_text()
    await page.get_by_label("Code aus der SMS").fill(gateway.sms_code("436641000020"))
    await page.get_by_role("button", name="Bestätigen").click()
    await page.wait_for_url("**/auth/account?totp=1")
    assert "eingerichtet" in await page.locator("#totp-status").inner_text()

    await page.get_by_role("button", name="Abmelden", exact=True).click()
    await page.wait_for_url("**/auth/login?**")

    # A protected page opened without a session leads to the login and, after it, back.
    await page.goto(gateway.url + "/api/lines/436641000020/usage")
    await page.wait_for_url("**/auth/login?next=/api/lines/436641000020/usage")
    await page.get_by_label("Anmeldename").fill("sophie.wagner@example.at")
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url("**/auth/login/totp**")
    await page.get_by_label("6-stelliger Code").fill(totp.generate_otp(step + 1))  # a step not used yet
    await page.get_by_role("button", name="Bestätigen").click()
    await page.wait_for_url("**/api/lines/436641000020/usage")
    body = json.loads(await page.locator("body").inner_text())
    assert "436641000020" in json.dumps(body)
    await context.close()


async def test_lukas_logs_in_by_sms_and_is_refused_a_tariff_change_in_german(gateway, browser) -> None:
    context = await browser.new_context(locale="de-AT", extra_http_headers={"Accept-Language": "de-AT,de"})
    page = await context.new_page()
    await page.goto(gateway.url + "/auth/login")
    await page.get_by_role("link", name="Mit SMS-Code anmelden").click()
    await page.get_by_label("Rufnummer").fill("436641000040")
    await page.get_by_role("button", name="Code senden").click()
    await page.wait_for_url("**sent=1**")
    await page.get_by_label("Code aus der SMS").fill(gateway.sms_code("436641000040"))
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url("**/auth/account")
    assert "eingeschränkt" in await page.locator("#access").inner_text()

    usage = await page.goto(gateway.url + "/api/lines/436641000040/usage")
    assert usage is not None and usage.status == 200
    # the portal front-end's call, made from a page of the gateway's origin (auth pages forbid scripts)
    answer = await page.evaluate(
        """async () => {
            const r = await fetch('/api/lines/436641000040/tariff', {method: 'PUT',
                headers: {'Content-Type': 'application/json', 'Accept': 'application/json'},
                body: JSON.stringify({tariff: 'business-xl'})});
            return {status: r.status, body: await r.json()};
        }"""
    )
    assert answer["status"] == 403, answer
    assert answer["body"]["message"] == message(answer["body"]["reason"], "de")
    assert answer["body"]["message"] != message(answer["body"]["reason"], "en")
    await context.close()
