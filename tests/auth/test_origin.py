"""The one cross-site check (`gateway.auth.origin`), table-driven: every rule with its reason."""

from __future__ import annotations

import pytest

from gateway.auth.origin import CrossSiteCheck, origin_of, uses_bearer
from gateway.errors import Forbidden

CHECK = CrossSiteCheck("https://portal.example.at/", ["__Host-pg_session"])
OWN = "https://portal.example.at"


def headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(k.replace("_", "-").encode(), v.encode()) for k, v in values.items()]


@pytest.mark.parametrize(
    ("given", "cookie", "reason"),
    [
        ({"sec_fetch_site": "same-origin"}, True, None),
        ({"sec_fetch_site": "none"}, True, None),
        ({"sec_fetch_site": "same-origin", "origin": "https://evil.example"}, True, None),
        ({"origin": OWN}, True, None),
        ({"sec_fetch_site": "same-site", "origin": OWN}, True, None),  # Origin names us: trusted
        ({"sec_fetch_site": "same-site", "origin": "https://shop.example.at"}, True, "cross_site_request"),
        ({"sec_fetch_site": "cross-site"}, True, "cross_site_request"),
        ({"origin": "https://evil.example"}, True, "cross_site_request"),
        ({"origin": "https://portal.example.at.evil.example"}, True, "cross_site_request"),
        ({"origin": "http://portal.example.at"}, True, "cross_site_request"),  # scheme differs
        ({"origin": "null"}, True, "origin_null"),
        ({"origin": "null", "sec_fetch_site": "cross-site"}, True, "origin_null"),
        ({}, True, "origin_missing"),
        ({}, False, None),  # no cookie credential: nothing a page could borrow
        ({"origin": "https://evil.example"}, False, "cross_site_request"),  # login CSRF
    ],
)
def test_rules(given: dict[str, str], cookie: bool, reason: str | None) -> None:
    if reason is None:
        CHECK.check("POST", headers(**given), cookie_credential=cookie)
        return
    with pytest.raises(Forbidden) as caught:
        CHECK.check("POST", headers(**given), cookie_credential=cookie)
    assert caught.value.reason == reason


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS", "TRACE", "get"])
def test_safe_methods_pass(method: str) -> None:
    CHECK.check(method, headers(origin="null", sec_fetch_site="cross-site"), cookie_credential=True)


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"])
def test_every_other_method_is_checked(method: str) -> None:
    with pytest.raises(Forbidden):
        CHECK.check(method, headers(sec_fetch_site="cross-site"), cookie_credential=True)


def test_bearer_requests_are_exempt_and_cookie_requests_are_not() -> None:
    forged = headers(origin="https://evil.example", sec_fetch_site="cross-site")
    CHECK.check_request("POST", forged, "Bearer pgs_abc", {"__Host-pg_session": "x"})
    CHECK.check_request("POST", forged, "bearer eyJhbGciOi", {})
    with pytest.raises(Forbidden):
        CHECK.check_request("POST", forged, "Basic dXNlcjpwdw==", {"__Host-pg_session": "x"})
    with pytest.raises(Forbidden) as caught:
        CHECK.check_request("POST", [], None, {"__Host-pg_session": "x"})
    assert caught.value.reason == "origin_missing"
    CHECK.check_request("POST", [], None, {"other": "x"})  # no session cookie: anonymous


def test_helpers() -> None:
    assert origin_of("https://Portal.Example.AT:443/auth/") == OWN
    assert origin_of("http://127.0.0.1:8080") == "http://127.0.0.1:8080"
    assert uses_bearer("Bearer x") and uses_bearer("  bearer x") and not uses_bearer("Basic x")
    assert not uses_bearer(None) and not uses_bearer("Bearerx")
