"""`CredentialFilter` on its own: which headers leave for the backend.

The attack itself, through the whole gateway to a recording backend, is in
tests/attacks/test_forwarded_credentials.py; these pin the edges quickly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.auth import cookies
from gateway.middleware.credentials import CredentialFilter
from gateway.routes import Route, RouteTableError, load_routes
from tests.attacks.test_forwarded_credentials import opted_in_routes
from tests.integration.conftest import ROOT

PLAIN = Route(name="r", methods=frozenset({"GET"}), path="/r", upstream="u")
OPTED_IN = Route(name="o", methods=frozenset({"GET"}), path="/o", upstream="u", pass_authorization=True)
NAME = "__Host-pg_session"


@dataclass
class CookieAuthenticator:
    id: str = "session"
    cookie_name: str = NAME


@dataclass
class BearerOnly:
    id: str = "oidc_bearer"


def test_the_filter_takes_the_cookie_names_of_the_authenticator_chain() -> None:
    assert CredentialFilter.of([BearerOnly(), CookieAuthenticator()]).names == (NAME,)
    assert CredentialFilter.of([BearerOnly()]).names == ()


def test_no_cookie_authenticator_keeps_cookies_but_still_drops_authorization() -> None:
    f = CredentialFilter.of([BearerOnly()])
    headers = [(b"cookie", f"{NAME}=x".encode()), (b"authorization", b"Bearer pgs_x"), (b"accept", b"*/*")]
    assert f.headers_for(headers, PLAIN) == [(b"cookie", f"{NAME}=x".encode()), (b"accept", b"*/*")]


@pytest.mark.parametrize(
    ("route", "value", "kept"),
    [
        (PLAIN, b"Basic dXNlcjpwdw==", False),
        (PLAIN, b"Bearer eyJ.eyJ.sig", False),
        (OPTED_IN, b"Basic dXNlcjpwdw==", True),
        (OPTED_IN, b"Bearer eyJ.eyJ.sig", True),
        (OPTED_IN, b"Bearer pgs_abc", False),
        (OPTED_IN, b"bearer  pgs_abc ", False),
        (OPTED_IN, b"Token pgs_abc", False),
        (OPTED_IN, b"Bearer\tpgs_abc", False),
    ],
)
def test_authorization(route: Route, value: bytes, kept: bool) -> None:
    out = CredentialFilter([NAME]).headers_for([(b"authorization", value)], route)
    assert out == ([(b"authorization", value)] if kept else [])


def test_every_authorization_header_is_judged() -> None:
    headers = [(b"authorization", b"Basic a"), (b"authorization", b"Bearer pgs_x")]
    assert CredentialFilter([NAME]).headers_for(headers, OPTED_IN) == [(b"authorization", b"Basic a")]


def test_a_cookie_header_without_our_name_is_passed_as_it_is() -> None:
    value = b'a=1;b="two words"; consent={"a":1}'
    assert CredentialFilter([NAME]).headers_for([(b"cookie", value)], PLAIN) == [(b"cookie", value)]


def test_a_cookie_the_cut_would_miss_takes_the_header_with_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Whatever the cut keeps is read back by the one parser: if the session is still
    # in it (a spelling the cut and the parser see differently), the header goes whole.
    monkeypatch.setattr(cookies, "without", lambda value, *names: value)
    out = CredentialFilter([NAME]).headers_for([(b"cookie", f"a=1; {NAME}=x".encode())], PLAIN)
    assert out == []


_cookie_name = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, blacklist_characters=";="), max_size=6)


@settings(max_examples=300, deadline=None)
@given(
    before=st.lists(st.tuples(_cookie_name, _cookie_name), max_size=3),
    pad=st.sampled_from(["", " ", "\t", "\xa0", " \xa0 ", "\x85"]),
    after=st.lists(st.tuples(_cookie_name, _cookie_name), max_size=3),
)
def test_no_spelling_of_the_session_cookie_is_read_back_after_the_filter(
    before: list[tuple[str, str]], pad: str, after: list[tuple[str, str]]
) -> None:
    pairs = [f"{k}={v}" for k, v in before] + [f"{pad}{NAME}{pad}={pad}secret"] + [f"{k}={v}" for k, v in after]
    value = "; ".join(pairs).encode("latin-1")
    out = CredentialFilter([NAME]).headers_for([(b"cookie", value)], PLAIN)
    for _, sent in out:
        assert NAME not in cookies.parse(sent.decode("latin-1"))


# ------------------------------------------------------------------ the route file
@pytest.mark.parametrize("value", ['"yes"', "1"])
def test_pass_authorization_must_be_a_boolean(tmp_path: Path, value: str) -> None:
    text = opted_in_routes(tmp_path).read_text().replace("pass_authorization = true", f"pass_authorization = {value}")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RouteTableError, match=r"bad\.toml.*tariff.*pass_authorization must be true or false"):
        load_routes(path)


def test_pass_authorization_is_off_unless_a_route_says_so() -> None:
    table = load_routes(ROOT / "config" / "routes.toml")
    assert not [r.name for r in table.routes if r.pass_authorization]
