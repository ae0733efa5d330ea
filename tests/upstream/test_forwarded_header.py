"""RFC 7239 `Forwarded` as the gateway writes it: parseable, whatever the address or host."""

from __future__ import annotations

import pytest

from gateway.upstream import forwarded_header


@pytest.mark.parametrize(
    ("client_ip", "host", "expected"),
    [
        ("192.0.2.60", "portal.example.at", b'for="192.0.2.60";proto=https;host=portal.example.at'),
        ("2001:db8:cafe::17", "portal.example.at", b'for="[2001:db8:cafe::17]";proto=https;host=portal.example.at'),
        ("192.0.2.60", "portal.example.at:8443", b'for="192.0.2.60";proto=https;host="portal.example.at:8443"'),
        ("::1", "[::1]:8080", b'for="[::1]";proto=https;host="[::1]:8080"'),
        ("", "", b'for="unknown";proto=https'),
    ],
)
def test_forwarded_brackets_ipv6_and_quotes_hosts_with_a_port(client_ip: str, host: str, expected: bytes) -> None:
    assert forwarded_header(client_ip, "https", host) == expected


def test_a_quote_in_the_host_cannot_end_the_parameter() -> None:
    value = forwarded_header("192.0.2.1", "http", 'a"b;for=6.6.6.6')
    assert value == b'for="192.0.2.1";proto=http;host="a\\"b;for=6.6.6.6"'
