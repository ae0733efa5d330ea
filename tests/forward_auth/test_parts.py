"""The pure parts of forward-auth and its configuration, without edge proxies."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from gateway.app import build_app
from gateway.errors import BadRequest, NotFound, StepUpRequired
from gateway.middleware.forward_auth import _answer_token, _parse_answer, original_request
from gateway.settings import SettingsError
from tests.integration.conftest import portal_settings


def test_each_convention_names_the_original_request() -> None:
    nginx = original_request(b"/_gateway/authz", "GET", b"",
                             [(b"x-original-method", b"PUT"), (b"x-original-uri", b"/api/x?a=1?b")])
    assert nginx == ("nginx", "PUT", b"/api/x", b"a=1?b")
    caddy = original_request(b"/_gateway/authz", "GET", b"",
                             [(b"x-forwarded-method", b"DELETE"), (b"x-forwarded-uri", b"/api/y#frag")])
    assert caddy == ("forwarded", "DELETE", b"/api/y", b"")
    envoy = original_request(b"/_gateway/authz/envoy/api/z", "POST", b"q=1", [])
    assert envoy == ("envoy", "POST", b"/api/z", b"q=1")


@pytest.mark.parametrize(
    ("path", "headers", "reason"),
    [
        (b"/_gateway/authz", [(b"x-original-uri", b"/a"), (b"x-original-uri", b"/b"), (b"x-original-method", b"GET")],
         "forward_auth_ambiguous"),
        (b"/_gateway/authz", [(b"x-original-uri", b"/a"), (b"x-original-method", b"GET"),
                              (b"x-forwarded-uri", b"/b"), (b"x-forwarded-method", b"GET")], "forward_auth_ambiguous"),
        (b"/_gateway/authz/envoy/api", [(b"x-forwarded-uri", b"/b"), (b"x-forwarded-method", b"GET")],
         "forward_auth_ambiguous"),
        (b"/_gateway/authz", [(b"x-original-uri", b"/a")], "forward_auth_incomplete"),
        (b"/_gateway/authz", [(b"x-original-uri", b"/a"), (b"x-original-method", b"GET\n")], "forward_auth_bad_method"),
        (b"/_gateway/authz", [(b"x-original-uri", b"/a"), (b"x-original-method", b"get")], "forward_auth_bad_method"),
        (b"/_gateway/authz", [], "forward_auth_no_original"),
    ],
)
def test_unclear_claims_are_refused(path: bytes, headers: list[tuple[bytes, bytes]], reason: str) -> None:
    with pytest.raises(BadRequest) as caught:
        original_request(path, "GET", b"", headers)
    assert caught.value.reason == reason


def test_other_paths_under_authz_are_not_found() -> None:
    with pytest.raises(NotFound):
        original_request(b"/_gateway/authz/other", "GET", b"", [(b"x-original-uri", b"/a")])


def test_an_answer_survives_the_edge_and_a_forged_one_is_refused() -> None:
    token = _answer_token(StepUpRequired("step_up_required"), "dec_1", None)
    exc, answer = _parse_answer(token)
    assert isinstance(exc, StepUpRequired) and exc.reason == "step_up_required" and answer.decision_id == "dec_1"
    import base64
    import json

    def forged(fields: dict[str, object]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(fields).encode())

    for fields in (
        {"s": 200, "e": "forbidden", "r": "x"},  # status not of that error class
        {"s": 500, "e": "internal", "r": "x"},  # not a client-facing error
        {"s": 403, "e": "forbidden", "r": "<script>"},
        {"s": 403, "e": "forbidden", "r": "vpn", "h": "javascript:alert(1)"},
        {"s": 403, "e": "forbidden", "r": "x", "d": "dec\r\nSet-Cookie: a=b"},
        [],
    ):
        with pytest.raises(BadRequest):
            _parse_answer(forged(fields))  # type: ignore[arg-type]


def test_enabled_without_peers_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match=r"forward_auth\.enabled = true needs forward_auth\.trusted_peers"):
        portal_settings(tmp_path, 8080, "http://127.0.0.1:9", **{"forward_auth.enabled": True})
    with pytest.raises(SettingsError, match=r"forward_auth\.trusted_peers\[0\]: not an IP address"):
        portal_settings(tmp_path, 8080, "http://127.0.0.1:9", **{"forward_auth.trusted_peers": ["edge.local"]})


async def test_disabled_means_not_there(tmp_path: Path) -> None:
    app = build_app(portal_settings(tmp_path, 8080, "http://127.0.0.1:9"), registry=CollectorRegistry())
    transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 4000))
    async with httpx.AsyncClient(transport=transport, base_url="http://gw") as c:
        r = await c.get("/_gateway/authz", headers={"x-original-uri": "/api/status", "x-original-method": "GET"})
        assert r.status_code == 404
        assert "x-portal-assertion" not in r.headers
