"""The data plane over real sockets: streaming, headers, errors, timeouts, cancellation."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx
import pytest

from tests.upstream.conftest import Gateway


async def get(gw: Gateway, path: str, **kw: object) -> httpx.Response:
    async with httpx.AsyncClient(base_url=gw.url, timeout=10) as c:
        return await c.get(path, **kw)  # type: ignore[arg-type]


def received_headers(resp: httpx.Response) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in resp.json()["headers"]:
        out.setdefault(k.lower(), []).append(v)
    return out


async def test_public_route_forwards_and_keeps_query(gateway: Gateway) -> None:
    r = await get(gateway, "/echo?x=1&y=%2F")
    assert r.status_code == 200
    assert r.json()["raw_path"] == "/echo?x=1&y=%2F"
    assert r.headers["x-request-id"]


async def test_request_id_generated_and_kept(gateway: Gateway) -> None:
    r = await get(gateway, "/echo")
    generated = r.headers["x-request-id"]
    assert 16 <= len(generated) <= 64
    assert received_headers(r)["x-request-id"] == [generated]
    r = await get(gateway, "/echo", headers={"X-Request-Id": "client-abc.123"})
    assert r.headers["x-request-id"] == "client-abc.123"
    assert received_headers(r)["x-request-id"] == ["client-abc.123"]
    # A request id that could inject into logs is replaced, not passed on.
    r = await get(gateway, "/echo", headers={"X-Request-Id": "bad id\"{}"})
    assert r.headers["x-request-id"] != 'bad id"{}'


async def test_forwarded_headers_from_untrusted_peer_are_replaced(gateway: Gateway) -> None:
    r = await get(gateway, "/echo", headers={"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6",
                                              "X-Forwarded-Host": "evil.example", "X-Real-IP": "6.6.6.6"})
    h = received_headers(r)
    assert h["x-forwarded-for"] == ["127.0.0.1"]
    assert h["x-forwarded-proto"] == ["http"]
    assert h["forwarded"] == ['for="127.0.0.1";proto=http;host="' + gateway.url.split("//")[1] + '"']
    assert "x-real-ip" not in h
    assert h["x-forwarded-host"] == [gateway.url.split("//")[1]]


async def test_hop_by_hop_request_headers_removed(gateway: Gateway) -> None:
    r = await get(gateway, "/echo", headers={"Connection": "X-Drop-Me", "X-Drop-Me": "1", "TE": "trailers",
                                              "Proxy-Authorization": "Basic Zm9vOmJhcg==", "X-Keep": "1"})
    h = received_headers(r)
    assert "x-drop-me" not in h and "te" not in h and "proxy-authorization" not in h
    assert h["x-keep"] == ["1"]


async def test_hop_by_hop_response_headers_removed(gateway: Gateway) -> None:
    r = await get(gateway, "/headers")
    assert r.text == "ok"
    assert "x-secret-hop" not in r.headers
    assert "proxy-authenticate" not in r.headers
    assert r.headers["x-kept"] == "yes"


@pytest.mark.parametrize(
    "name",
    ["X-Portal-Subject", "x-portal-subject", "X-PORTAL-ACCESS-LEVEL", "X_Portal_Subject", "x_portal_assertion",
     "X-Portal-Auth-Methods", "X-Portal-Visible-Parts", "X-Portal-Anything-New"],
)
async def test_spoofed_identity_headers_never_reach_the_backend(gateway: Gateway, name: str) -> None:
    r = await get(gateway, "/echo", headers={name: "anna"})
    h = received_headers(r)
    assert not [k for k in h if k.replace("_", "-").startswith("x-portal-")]


@pytest.mark.parametrize(
    "name",
    ["X-HTTP-Method-Override", "X-Http-Method", "X-Method-Override", "x_http_method_override",
     "X-Original-URL", "X-Rewrite-URL", "X-Original-Method"],
)
async def test_method_and_url_override_headers_removed(gateway: Gateway, name: str) -> None:
    r = await get(gateway, "/echo", headers={name: "DELETE"})
    assert r.json()["method"] == "GET"
    assert name.lower().replace("_", "-") not in received_headers(r)


async def test_streaming_upload_with_content_length(gateway: Gateway) -> None:
    body = b"a" * 300_000
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.post("/upload", content=body)
    assert r.status_code == 200
    assert r.json()["size"] == len(body)
    assert r.json()["sha256"] == hashlib.sha256(body).hexdigest()


async def test_streaming_upload_chunked(gateway: Gateway) -> None:
    async def gen():  # type: ignore[no-untyped-def]
        for _ in range(10):
            yield b"b" * 50_000

    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.post("/upload", content=gen())
    assert r.status_code == 200
    assert r.json()["size"] == 500_000


async def test_body_over_limit_by_content_length_is_413(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.post("/upload", content=b"z" * (1024 * 1024 + 1))
    assert r.status_code == 413
    assert r.json()["error"] == "payload_too_large"


async def test_chunked_body_over_limit_is_413(gateway: Gateway) -> None:
    async def gen():  # type: ignore[no-untyped-def]
        for _ in range(30):
            yield b"c" * 65536

    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.post("/upload", content=gen())
    assert r.status_code == 413


async def test_both_content_length_and_chunked_refused(gateway: Gateway) -> None:
    host, port = gateway.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"4\r\nabcd\r\n0\r\n\r\n")
    await writer.drain()
    status = await reader.readline()
    writer.close()
    assert b" 400 " in status


async def test_huge_response_streams(gateway: Gateway) -> None:
    total = 0
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as c:
        async with c.stream("GET", "/huge?mb=20") as r:
            assert r.status_code == 200
            assert r.headers["content-length"] == str(20 * 1024 * 1024)
            async for chunk in r.aiter_raw():
                total += len(chunk)
    assert total == 20 * 1024 * 1024


async def test_chunked_response_passes(gateway: Gateway) -> None:
    r = await get(gateway, "/chunked")
    assert r.text == "".join(f"chunk-{i}\n" for i in range(5))


@pytest.mark.parametrize("code", [500, 502, 503, 418, 404])
async def test_upstream_status_passed_through(gateway: Gateway, code: int) -> None:
    r = await get(gateway, f"/status/{code}")
    assert r.status_code == code
    assert r.json() == {"status": code}


async def test_timeout_is_504(gateway: Gateway) -> None:
    r = await get(gateway, "/slow?s=3")
    assert r.status_code == 504
    assert r.json()["reason"] == "upstream_timeout"
    # Metrics live on the operations listener; read the same registry it serves.
    from prometheus_client import generate_latest

    metrics = generate_latest(gateway.registry).decode()
    assert 'portal_gateway_upstream_errors_total{kind="timeout",upstream="bad"} 1.0' in metrics


async def test_connection_refused_is_502(gateway: Gateway) -> None:
    r = await get(gateway, "/down")
    assert r.status_code == 502
    assert r.json()["reason"] == "upstream_unavailable"


async def test_reset_is_502(gateway: Gateway) -> None:
    r = await get(gateway, "/reset")
    assert r.status_code == 502


async def test_garbage_is_502(gateway: Gateway) -> None:
    r = await get(gateway, "/garbage")
    assert r.status_code == 502


async def test_truncated_body_aborts_the_client_connection(gateway: Gateway) -> None:
    with pytest.raises(httpx.RemoteProtocolError):
        await get(gateway, "/truncated")


async def test_client_going_away_cancels_the_upstream_request(gateway: Gateway) -> None:
    host, port = gateway.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /hang HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    for _ in range(100):
        if gateway.upstream_app["hangs"]:
            break
        await asyncio.sleep(0.02)
    writer.close()
    for _ in range(100):
        if gateway.upstream_app["cancelled"]:
            break
        await asyncio.sleep(0.02)
    assert gateway.upstream_app["cancelled"] == ["/hang"]


async def test_keep_alive_reuses_upstream_connections(gateway: Gateway) -> None:
    ports = set()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        for _ in range(10):
            r = await c.get("/echo")
            assert r.status_code == 200
            ports.add(r.json()["peer_port"])
    assert len(ports) == 1


async def test_head_request_gets_headers_only(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.head("/echo")
        assert r.status_code == 200 and r.content == b""
        r = await c.get("/echo")
        assert r.status_code == 200 and r.json()["method"] == "GET"


async def test_idle_connection_closed_by_backend_is_retried_transparently(gateway: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as c:
        r = await c.get("/echo")
        assert r.status_code == 200
        # The backend drops its keep-alive sockets (as servers do after an idle timeout).
        for proto in list(gateway.upstream_app["connections"]):
            proto.transport.close()
        await asyncio.sleep(0.05)
        r = await c.get("/echo")
        assert r.status_code == 200


async def test_websocket_upgrade_refused_clearly(gateway: Gateway) -> None:
    host, port = gateway.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
    await writer.drain()
    data = await asyncio.wait_for(reader.read(4096), 5)
    writer.close()
    assert data.startswith(b"HTTP/1.1 501") or data.startswith(b"HTTP/1.1 403")
    assert b"101" not in data.split(b"\r\n")[0]


async def test_access_log_is_json_with_request_id(gateway: Gateway) -> None:
    r = await get(gateway, "/echo", headers={"Authorization": "Bearer secret-token-value"})
    lines = [json.loads(line) for line in gateway.log.getvalue().splitlines()]
    rec = [x for x in lines if x["request_id"] == r.headers["x-request-id"]][0]
    assert rec["status"] == 200 and rec["path"] == "/echo" and rec["route"].endswith("/echo")
    assert "secret-token-value" not in gateway.log.getvalue()


async def test_unknown_path_404_and_wrong_method_405(gateway: Gateway) -> None:
    r = await get(gateway, "/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "not_found"
    async with httpx.AsyncClient(base_url=gateway.url) as c:
        r = await c.delete("/slow")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET, HEAD"


async def test_protected_route_needs_login(gateway: Gateway) -> None:
    r = await get(gateway, "/echo/lines/1234567/usage")
    assert r.status_code == 401
    assert r.json()["error"] == "unauthenticated"
    assert gateway.authorizer.calls == []


async def test_bad_credential_is_401_not_anonymous(gateway: Gateway) -> None:
    r = await get(gateway, "/echo/lines/1234567/usage", headers={"Authorization": "Bearer forged"})
    assert r.status_code == 401
    assert r.json()["reason"] == "invalid_token"


async def test_allowed_request_carries_identity(gateway: Gateway) -> None:
    r = await get(gateway, "/echo/lines/1234567/usage", headers={"Authorization": "Bearer good-acc_anna",
                                                                  "X-Portal-Subject": "acc_root"})
    assert r.status_code == 200
    h = received_headers(r)
    assert h["x-portal-subject"] == ["acc_anna"]
    assert h["x-portal-access-level"] == ["full"]
    assert h["x-portal-auth-methods"] == ["password,totp"]
    assert len(h["x-portal-assertion"]) == 1
    assert r.headers["x-decision-id"] == "dec-1"
    assert gateway.authorizer.calls == [("acc_anna", "view_usage", "line", "1234567")]


@pytest.mark.parametrize(("msisdn", "status", "error"), [
    ("9999999", 404, "not_found"), ("7777777", 401, "step_up_required"), ("5555555", 403, "forbidden")])
async def test_decisions_map_to_status(gateway: Gateway, msisdn: str, status: int, error: str) -> None:
    r = await get(gateway, f"/echo/lines/{msisdn}/usage", headers={"Authorization": "Bearer good-acc_anna"})
    assert r.status_code == status
    assert r.json()["error"] == error
    if status == 401:
        assert r.headers["www-authenticate"].startswith('Bearer error="insufficient_user_authentication"')
        # The step-up page brings the browser back to the action afterwards.
        assert r.json()["step_up_url"] == f"/auth/step-up?next=/echo/lines/{msisdn}/usage"


async def test_error_messages_in_german(gateway: Gateway) -> None:
    r = await get(gateway, "/nothing", headers={"Accept-Language": "de-AT,de;q=0.9,en;q=0.5"})
    assert r.headers["content-language"] == "de"
    assert "Adresse" in r.json()["message"]


async def test_errors_are_html_for_browsers(gateway: Gateway) -> None:
    r = await get(gateway, "/nothing", headers={"Accept": "text/html,application/xhtml+xml"})
    assert r.headers["content-type"].startswith("text/html")
    assert "<h1>" in r.text


async def test_idle_connections_older_than_keepalive_are_not_reused() -> None:
    from gateway.http11 import Http11Pool
    from tests.servers.misbehaving import serve_misbehaving

    async with serve_misbehaving() as (url, _app):
        host, port = url.split("//")[1].split(":")
        pool = Http11Pool(host, int(port), keepalive=0.2)
        ports = []
        for pause in (0, 0, 0.4):
            await asyncio.sleep(pause)
            r = await pool.request("GET", b"/echo", [(b"host", b"x")])
            ports.append(json.loads(await r.read())["peer_port"])
            r.release()
        await pool.close()
    assert ports[0] == ports[1] != ports[2]


async def test_body_delimited_by_close_is_relayed_whole(gateway: Gateway) -> None:
    r = await get(gateway, "/until-close")
    assert r.status_code == 200
    assert r.content == b"z" * 100_000


async def test_client_leaving_a_long_answer_stops_the_backend_transfer(gateway: Gateway) -> None:
    host, port = gateway.url.split("//")[1].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /huge?mb=400 HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    await reader.readexactly(2 * 1024 * 1024)
    writer.close()
    for _ in range(200):
        if gateway.upstream_app["huge_aborted"]:
            break
        await asyncio.sleep(0.02)
    aborted = gateway.upstream_app["huge_aborted"]
    assert aborted and aborted[0] < 400
