"""Say what happened: a wrong SMS code offers a new one; TOTP pages never advise requesting a code."""

from __future__ import annotations

from .test_pages import form_post

LUKAS = "436641000040"


async def test_a_wrong_sms_code_offers_to_send_a_new_one_and_that_sends_it(env) -> None:
    r = await form_post(env, "/auth/login/sms", "/auth/sms/send", {"msisdn": "0664 1000040", "return_to": "login"})
    assert r.status_code == 303
    right = env.last_sms(LUKAS)
    wrong = "000000" if right != "000000" else "111111"
    page = await form_post(env, "/auth/login/sms?sent=1", "/auth/sms/verify", {"msisdn": LUKAS, "code": wrong})
    assert page.status_code == 401
    assert "Neuen Code senden" in page.text
    assert page.text.count("Der Code ist nicht gültig") == 1  # once, at the field
    env.clock.advance(31)
    r = await form_post(env, "/auth/login/sms?sent=1", "/auth/sms/send", {"msisdn": LUKAS, "return_to": "login"})
    assert r.status_code == 303
    assert env.sms_count(LUKAS) == 2 and env.last_sms(LUKAS) != right or env.sms_count(LUKAS) == 2


async def test_the_totp_page_does_not_advise_requesting_a_code(env) -> None:
    for lang, words in (("de", "fordern"), ("en", "request")):
        r = await env.client.post("/auth/login/totp", json={"code": "123456"})
        assert r.status_code == 401
        page = await env.client.get(f"/auth/login/totp?lang={lang}")
        assert words not in page.text.lower()
    from gateway.auth.texts import reason_text

    for lang in ("de", "en"):
        assert "neu" not in reason_text("invalid_code", lang).lower()
        assert "new one" not in reason_text("invalid_code", lang).lower()
