"""The gateway's one Cookie parser and `without` (used to keep credentials from backends)."""

from __future__ import annotations

import pytest

from gateway.auth.cookies import of_headers, parse, without

SESSION = "__Host-pg_session"


@pytest.mark.parametrize(
    "header",
    [
        f'x={{"a":1}}; {SESSION}=tok',
        f"{SESSION}=tok; theme=dark mode",
        f"bare; {SESSION}=tok; =nameless",
        f'q="unterminated; {SESSION}=tok',
        f"a=1,b=2;{SESSION}=tok;",
        f"  {SESSION} = tok  ",
        f'{SESSION}="tok"',
    ],
)
def test_an_odd_cookie_never_hides_the_session(header: str) -> None:
    assert parse(header)[SESSION] == "tok"


def test_last_of_a_repeated_name_wins_and_headers_join() -> None:
    assert parse(f"{SESSION}=first; {SESSION}=second")[SESSION] == "second"
    jar = of_headers([(b"cookie", b"a=1"), (b"x-other", b"b=2"), (b"cookie", f"{SESSION}=tok".encode())])
    assert jar == {"a": "1", SESSION: "tok"}
    assert of_headers([]) == {}


def test_without_keeps_the_rest_byte_for_byte() -> None:
    assert without(f'theme=dark; {SESSION}=tok; consent={{"a":1}}'.encode(), SESSION) == b'theme=dark; consent={"a":1}'
    assert without(f"{SESSION}=a; {SESSION}=b", SESSION) is None
    assert without(b"a=1;b=2", SESSION) == b"a=1; b=2"
    assert without(f"a=1; pg_csrf=c; {SESSION}=t", SESSION, "pg_csrf") == b"a=1"
    assert without(b"bare; x=1", "x") == b"bare"


def test_without_reads_names_as_parse_does() -> None:
    """A name `parse` takes for the session cookie (here with a leading no-break space) is cut too."""
    from gateway.auth.cookies import parse, without

    header = b"\xa0__Host-pg_session=secret; consent=yes"
    assert parse(header.decode("latin-1"))["__Host-pg_session"] == "secret"
    assert without(header, "__Host-pg_session") == b"consent=yes"
