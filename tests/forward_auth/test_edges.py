"""The same decision through the gateway's own proxy path and through each edge proxy.

Every case runs four ways: straight to the gateway (it forwards), through nginx
(auth_request), through Caddy (forward_auth), and the Envoy ext_authz HTTP convention
performed with a real HTTP client (Envoy is not installable here). The answers must agree;
the backend (the real demo backend, which verifies the assertion's htm/htu against the path
it received) must see a request exactly when the gateway allowed one, with the path that
was decided and without the gateway's credentials.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import h11
import httpx
import pytest

from tests.forward_auth.conftest import World

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODES = ("gateway", "nginx", "caddy", "envoy")
#: What Envoy removes from / sets on the upstream request after a 200 (envoy.yaml's
#: allowed_upstream_headers and x-envoy-auth-headers-to-remove).
ENVOY_UPSTREAM = ("x-portal-", "x-request-id", "cookie")


async def envoy(w: World, method: str, target: bytes, headers: dict[str, str]) -> httpx.Response:
    """What Envoy's ext_authz HTTP filter does with path_prefix /_gateway/authz/envoy."""
    check_target = b"/_gateway/authz/envoy" + target
    if not target.isascii():
        check = await send_raw(w.gateway, method, check_target, headers)
    else:
        async with w.client(w.gateway) as c:
            check = await c.request(method, "/", headers=headers, extensions={"target": check_target})
    if check.status_code != 200:
        return check  # Envoy sends the authorization service's denial to the client as it is
    removed = {h.strip() for h in check.headers.get("x-envoy-auth-headers-to-remove", "").split(",") if h.strip()}
    upstream = {k: v for k, v in headers.items() if k.lower() not in removed}
    upstream.update({k: v for k, v in check.headers.items() if k.lower().startswith(ENVOY_UPSTREAM)})
    async with w.client(w.backend) as c:
        return await c.request(method, "/", headers=upstream, extensions={"target": target})


async def send_raw(base: str, method: str, target: bytes, headers: dict[str, str]) -> httpx.Response:
    """One request with a target httpx will not write (raw non-ASCII bytes), over a socket."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    conn = h11.Connection(h11.CLIENT)
    head = [("host", f"{host}:{port}"), ("connection", "close"), *headers.items()]
    writer.write(method.encode() + b" " + target + b" HTTP/1.1\r\n")
    writer.write(b"".join(f"{k}: {v}\r\n".encode() for k, v in head) + b"\r\n")
    conn._cstate.process_event(h11.CLIENT, h11.Request)  # the request went out by hand
    conn._cstate.process_event(h11.CLIENT, h11.EndOfMessage)
    status, response_headers, body = 0, [], b""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(65536))
        elif isinstance(event, h11.Response):
            status, response_headers = event.status_code, [(k.decode(), v.decode()) for k, v in event.headers]
        elif isinstance(event, h11.Data):
            body += bytes(event.data)
        elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
            break
    writer.close()
    return httpx.Response(status, headers=response_headers, content=body)


async def ask(w: World, mode: str, who: str, method: str, target: bytes, **headers: str) -> httpx.Response:
    sent = {**w.credentials[who], **{k.replace("_", "-"): v for k, v in headers.items()}}
    if mode == "envoy":
        return await envoy(w, method, target, sent)
    base = {"gateway": w.gateway, "nginx": w.nginx, "caddy": w.caddy}[mode]
    if not target.isascii():
        return await send_raw(base, method, target, sent)
    async with w.client(base) as c:
        return await c.request(method, "/", headers=sent, extensions={"target": target})


def outcome(r: httpx.Response) -> tuple[Any, ...]:
    """What a user notices: status, and the error/reason, or who the backend saw."""
    if r.headers.get("content-type", "").startswith("application/json"):
        body = r.json()
        if "asked_by" in body:
            asked = body["asked_by"]
            return r.status_code, "backend", asked["subject"] if asked else None
        return r.status_code, body.get("error"), body.get("reason"), body.get("hint_url")
    return r.status_code, "edge-native", r.headers.get("content-type", "")


ROLE_CASES = [
    ("anna", "GET", b"/api/lines/436641000001/usage", 200),
    ("anna", "GET", b"/api/lines/436641000001/usage?month=2026-10", 200),
    ("anna", "GET", b"/api/lines/436641000020/usage", 404),
    ("anna", "GET", b"/api/vpn/vpn-alpenblick-1", 403),
    ("anna", "GET", b"/api/nothing-here", 404),
    ("anna", "DELETE", b"/api/lines/436641000001/usage", 405),
    ("anonymous", "GET", b"/api/status", 200),
    ("anonymous", "GET", b"/api/lines/436641000001/usage", 401),
    ("markus", "GET", b"/api/lines/436641000011/usage", 200),
    ("markus", "PUT", b"/api/customers/1000010/payment-method", 401),
    ("lukas", "GET", b"/api/lines/436641000040/usage", 200),
    ("lukas", "PUT", b"/api/lines/436641000040/tariff", 403),
    ("lukas", "GET", b"/api/lines/436641000001/usage", 404),
]


@pytest.mark.parametrize(("who", "method", "target", "status"), ROLE_CASES, ids=lambda v: str(v))
async def test_roles_get_the_same_decision_through_every_edge(
    world: World, who: str, method: str, target: bytes, status: int
) -> None:
    answers = {}
    for mode in MODES:
        before = len(world.recorder.seen)
        r = await ask(world, mode, who, method, target)
        answers[mode] = outcome(r)
        reached = world.recorder.seen[before:]
        if r.status_code == 200:
            # Exactly the decided request reached the backend, and the backend verified
            # the assertion for that method and path (it answers 401 otherwise).
            assert [(s.method, s.target) for s in reached] == [(method, target)], mode
        else:
            assert reached == [], f"{mode}: a refused request reached the backend"
        if status == 401:
            assert "www-authenticate" in r.headers, mode
    assert answers["gateway"][0] == status, answers
    assert all(a == answers["gateway"] for a in answers.values()), answers


async def test_step_up_answer_is_the_same_with_its_challenge(world: World) -> None:
    for mode in MODES:
        r = await ask(world, mode, "markus", "PUT", b"/api/customers/1000010/payment-method")
        assert r.status_code == 401, mode
        assert 'error="insufficient_user_authentication"' in r.headers["www-authenticate"], mode
        # Where the sink knows the original path, the step-up page is told to return there.
        assert r.json()["step_up_url"] in (
            "/auth/step-up", "/auth/step-up?next=/api/customers/1000010/payment-method"), mode
        assert r.headers["x-decision-id"].startswith("dec_"), mode


async def test_a_browser_without_login_is_sent_to_the_same_login(world: World) -> None:
    """A page load without a session: 302 to the login with the path to come back to (issue 12,
    point 4). An edge that can only pass on a status (nginx auth_request) shows the login page
    with the same link instead."""
    login = "/auth/login?next=/api/lines/436641000001/usage"
    for mode in MODES:
        r = await ask(world, mode, "anonymous", "GET", b"/api/lines/436641000001/usage",
                      accept="text/html", accept_language="de")
        if r.status_code == 302:
            assert r.headers["location"] == login, mode
            continue
        assert r.status_code == 401, (mode, r.status_code)
        assert r.headers["content-type"].startswith("text/html"), mode
        assert r.headers["content-language"] == "de", mode
        assert "Bitte melden Sie sich an" in r.text and 'href="/auth/login' in r.text, mode
    r = await ask(world, "gateway", "anonymous", "GET", b"/api/lines/436641000001/usage",
                  accept="text/html", accept_language="de")
    assert r.status_code == 302


#: Paths a parser differential lives in. The gateway refuses what is not canonical;
#: each edge either refuses it itself (its own 400) or asks and passes on the refusal.
ATTACKS = [
    b"/api/lines/%2e%2e/x",
    b"/api/lines/%2E%2E/436641000020/usage",
    b"/api/lines/436641000001/..%2f..%2flines%2f436641000020/usage",
    b"/api/lines/436641000020%2fusage",
    b"/api/lines/436641000001/../436641000020/usage",
    b"/api/lines/436641000001/./usage",
    b"//api/lines/436641000001/usage",
    b"/api/lines//436641000001/usage",
    b"/api/lines/436641000001/usage;jsessionid=x",
    b"/api/lines/436641000001;x=1/usage",
    b"/API/lines/436641000001/usage",
    b"/api/lines/43664100000%31/usage",
    b"/%61pi/lines/436641000001/usage",
    b"/api/lines/436641000001/usage%00",
    b"/api/lines/436641000001/usage%2f",
    b"/api/lines/436641000001%5cusage",
    b"/api/lines/%c0%ae%c0%ae/usage",
    b"/api/lines/%C3%A4/usage",
    b"/api/lines/436641000001/usage%252f",
    b"/api/lines/436641000001/usage/",
    b"/api/lines/436641000001\\usage",
    b"/api/lines/\xc3\xa4/usage",
    b"/api/lines/436641000001/usage#x",
    b"/api/lines/436641000001/usage?a=1?b=/../x",
]


#: Where an edge reads the request line differently from the gateway's HTTP server, the
#: gateway decides on the edge's reading, which is also what that edge forwards.
EDGE_READINGS = {
    # Go keeps a raw '#' in the path (as %23) where httptools drops the fragment: Caddy
    # asks about ".../usage%23x", which is no route (and nothing is forwarded).
    ("caddy", b"/api/lines/436641000001/usage#x"): (404, "not_found", "route_not_found", None),
}


@pytest.mark.parametrize("target", ATTACKS, ids=lambda t: t.decode())
async def test_path_attacks_are_refused_the_same_or_by_the_edge(world: World, target: bytes) -> None:
    reference = None
    for mode in MODES:
        before = len(world.recorder.seen)
        r = await ask(world, mode, "anna", "GET", target)
        got = outcome(r)
        reached = world.recorder.seen[before:]
        if mode == "gateway":
            reference = got
            # The proxy path's HTTP server drops a fragment, so does forward-auth.
            assert r.status_code != 200 or [s.target for s in reached] == [target.partition(b"#")[0]]
            continue
        if (mode, target) in EDGE_READINGS:
            assert got == EDGE_READINGS[mode, target] and reached == [], (mode, got)
            continue
        if reference[1] == "edge-native":
            # The gateway's own HTTP server refused the request line (raw non-ASCII):
            # through an edge, the same bytes are refused by the edge or by the gateway
            # (Caddy percent-encodes them first: no such line, 404).
            assert r.status_code in (400, 404) and reached == [], (mode, got)
            continue
        if got[1] == "edge-native":
            # The edge refused the request itself; nothing was decided or forwarded.
            assert r.status_code == 400 and reached == [], (mode, got)
            assert reference is not None and reference[0] >= 400, (mode, reference)
            continue
        if got != reference:
            # Caddy (Go) re-encodes a raw '\\' as %5C before it asks: a different refusal
            # reason of the same canonicalization, never a different decision.
            assert got[:2] == reference[:2] == (400, "bad_request"), (mode, got, reference)
            assert str(got[2]).startswith("path_") and str(reference[2]).startswith("path_"), (mode, got)
        if r.status_code == 200:
            assert [s.target for s in reached] == [target.partition(b"#")[0]], mode
        else:
            assert reached == [], mode


async def test_the_client_cannot_choose_what_is_decided(world: World) -> None:
    """X-Original-* / X-Forwarded-* written by the client are overwritten or removed by the edge."""
    spoofs = [
        {"x-original-uri": "/api/status", "x-original-method": "GET"},
        {"x-forwarded-uri": "/api/status", "x-forwarded-method": "GET"},
        {"x-original-uri": "/api/status", "x-forwarded-uri": "/api/status", "x-forwarded-method": "GET",
         "x-original-method": "GET"},
    ]
    for mode in ("nginx", "caddy"):
        for spoof in spoofs:
            before = len(world.recorder.seen)
            r = await ask(world, mode, "anonymous", "GET", b"/api/lines/436641000001/usage", **spoof)
            assert (r.status_code, r.json()["reason"]) == (401, "login_required"), (mode, spoof, r.text)
            assert world.recorder.seen[before:] == [], (mode, spoof)
            # Anna asking for someone else's line while claiming her own: still 404.
            claim = {k: v.replace("/api/status", "/api/lines/436641000001/usage") for k, v in spoof.items()}
            r = await ask(world, mode, "anna", "GET", b"/api/lines/436641000020/usage", **claim)
            assert r.status_code == 404, (mode, claim, r.text)


async def test_spoofed_identity_headers_do_not_reach_the_backend(world: World) -> None:
    for mode in ("nginx", "caddy", "envoy"):
        r = await ask(world, mode, "anonymous", "GET", b"/api/status",
                      x_portal_subject="acc_db340e738d4e5094ae0c0fd9", x_portal_access_level="full",
                      x_portal_assertion="forged", x_portal_visible_parts="business")
        assert r.status_code == 200, mode
        received = r.json()["received"]
        assert received["x_portal_headers"] == {} and received["assertion_present"] is False, (mode, received)
        r = await ask(world, mode, "anna", "GET", b"/api/lines/436641000001/usage", x_portal_subject="somebody-else")
        assert r.json()["received"]["x_portal_headers"]["x-portal-subject"] != "somebody-else", mode


async def test_the_gateways_credentials_stay_at_the_edge(world: World) -> None:
    session = world.cookies["anna"]
    for mode in ("nginx", "caddy", "envoy"):
        before = len(world.recorder.seen)
        r = await ask(world, mode, "anonymous", "GET", b"/api/lines/436641000001/usage",
                      cookie=f"theme=dark; pg_session={session}; consent=yes")
        assert r.status_code == 200, (mode, r.text)
        (seen,) = world.recorder.seen[before:]
        assert seen.header("cookie") == ["theme=dark; consent=yes"], (mode, seen.headers)
        assert session not in json.dumps(seen.headers), mode

        before = len(world.recorder.seen)
        r = await ask(world, mode, "anna", "GET", b"/api/lines/436641000001/usage")
        assert r.status_code == 200, mode
        (seen,) = world.recorder.seen[before:]
        assert seen.header("authorization") == [], (mode, seen.headers)
        assert [c for c in seen.header("cookie") if c] == [], (mode, seen.headers)


async def test_decision_ids_logs_and_metrics_are_the_gateways(world: World) -> None:
    for mode in ("nginx", "caddy", "envoy"):
        r = await ask(world, mode, "anna", "GET", b"/api/lines/436641000020/usage")
        decision_id = r.headers["x-decision-id"]
        assert r.status_code == 404 and decision_id.startswith("dec_"), mode
        assert decision_id in world.decisions.read_text(), mode
        assert r.json()["request_id"] == r.headers["x-request-id"], mode
    lines = [json.loads(x) for x in world.access_log.getvalue().splitlines() if x.startswith("{")]
    decided = [x for x in lines if x.get("decision_id") == decision_id]
    # The access log names the decided request (not the check request) and its real status.
    assert decided and decided[0]["path"] == "/api/lines/436641000020/usage" and decided[0]["status"] == 404
    sample = world.registry.get_sample_value(
        "portal_gateway_requests_total", {"route": decided[0]["route"], "action": decided[0]["action"], "status": "404"}
    )
    assert sample is not None and sample >= 4


async def test_the_decision_endpoint_is_not_published_through_the_edge(world: World) -> None:
    for mode in ("nginx", "caddy"):
        for target in (b"/_gateway/authz", b"/_gateway/authz/answer", b"/_gateway/authz/envoy/api/status"):
            r = await ask(world, mode, "anna", "GET", target, x_original_uri="/api/status", x_original_method="GET")
            assert r.status_code == 404, (mode, target, r.text)
            assert "x-portal-assertion" not in r.headers, (mode, target)


async def test_an_untrusted_peer_cannot_ask(world: World) -> None:
    """Only configured edge peers may name the original request (the gateway trusts 127.0.0.1/32)."""
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=world.gateway, transport=transport, timeout=20) as c:
        for target, headers in (
            (b"/_gateway/authz", {"x-original-uri": "/api/status", "x-original-method": "GET"}),
            (b"/_gateway/authz", {"x-forwarded-uri": "/api/status", "x-forwarded-method": "GET"}),
            (b"/_gateway/authz/envoy/api/status", {}),
            (b"/_gateway/authz/answer", {"x-portal-answer": "e30"}),
        ):
            r = await c.get("/", headers={**headers, **world.credentials["anna"]}, extensions={"target": target})
            assert r.status_code == 403, (target, r.text)
            assert r.json()["reason"] == "forward_auth_untrusted_peer"
            assert "x-portal-assertion" not in r.headers
        # The same peer still reaches the portal through the gateway's own proxy path.
        r = await c.get("/api/lines/436641000001/usage", headers=world.credentials["anna"])
        assert r.status_code == 200


async def test_conflicting_or_missing_claims_are_refused(world: World) -> None:
    async with world.client(world.gateway) as c:
        r = await c.get("/_gateway/authz", headers={**world.credentials["anna"], "x-forwarded-uri": "/api/status",
                                                    "x-forwarded-method": "GET",
                                                    "x-original-uri": "/api/lines/436641000001/usage"})
        # An nginx-style claim is answered nginx-style: 403, the real answer beside it.
        assert r.status_code == 403 and "x-portal-answer" in r.headers
        a = await c.get("/_gateway/authz/answer", headers={"x-portal-answer": r.headers["x-portal-answer"]})
        assert (a.status_code, a.json()["reason"]) == (400, "forward_auth_ambiguous")
        r = await c.get("/_gateway/authz", headers={"x-forwarded-uri": "/api/status"})
        assert (r.status_code, r.json()["reason"]) == (400, "forward_auth_incomplete")
        r = await c.get("/_gateway/authz", headers={"x-forwarded-uri": "/api/status", "x-forwarded-method": "get x"})
        assert (r.status_code, r.json()["reason"]) == (400, "forward_auth_bad_method")
        r = await c.get("/_gateway/authz")
        assert (r.status_code, r.json()["reason"]) == (400, "forward_auth_no_original")
        r = await c.get("/_gateway/authz", headers={"x-forwarded-uri": "http://evil/api/status",
                                                    "x-forwarded-method": "GET"})
        assert (r.status_code, r.json()["reason"]) == (400, "path_not_absolute")
        r = await c.get("/_gateway/authz/answer", headers={"x-portal-answer": "not-base64-json!"})
        assert (r.status_code, r.json()["reason"]) == (400, "forward_auth_bad_answer")


async def test_a_request_body_goes_through_the_edge_after_the_decision(world: World) -> None:
    """The check carries no body; the edge streams the client's body to the backend afterwards."""
    body = {"method": "bank_transfer", "account_holder": "Anna Huber"}
    for mode in ("gateway", "nginx", "caddy"):
        before = len(world.recorder.seen)
        async with world.client({"gateway": world.gateway, "nginx": world.nginx, "caddy": world.caddy}[mode]) as c:
            r = await c.put("/api/customers/1000001/payment-method", json=body, headers=world.credentials["anna"])
        assert r.status_code == 200, (mode, r.text)
        assert r.json()["received"]["method"] == "PUT", mode
        assert [s.target for s in world.recorder.seen[before:]] == [b"/api/customers/1000001/payment-method"]


async def test_refused_paths_are_counted_like_on_the_proxy_path(world: World) -> None:
    def rejected() -> float:
        value = world.registry.get_sample_value("portal_gateway_rejected_requests_total", {"reason": "path_semicolon"})
        return value or 0.0

    for mode in MODES:
        before = rejected()
        r = await ask(world, mode, "anna", "GET", b"/api/lines/436641000001/usage;v=1")
        assert r.status_code == 400, mode
        assert rejected() == before + 1, mode
