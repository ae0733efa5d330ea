"""/_gateway/health, /_gateway/ready, /_gateway/metrics, the JWKS and the access log,
on the whole gateway (the integration `portal`)."""

from __future__ import annotations

import json

from tests.integration.conftest import Portal
from tests.integration.test_roles import login_anna


async def test_health(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.get("/_gateway/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["x-request-id"]


async def test_ready_names_every_dependency(portal: Portal) -> None:
    async with portal.ops_client() as o:
        r = await o.get("/_gateway/ready")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "ready"
    assert {"policy", "directory", "database", "auth_store"} <= set(body["checks"])
    assert all(check["ok"] for check in body["checks"].values())
    assert r.headers["cache-control"] == "no-store"


async def test_health_and_ready_are_not_proxied_or_routed(portal: Portal) -> None:
    async with portal.client() as c:
        assert (await c.post("/_gateway/health")).status_code == 405
        assert (await c.get("/_gateway/nothing")).status_code == 404


async def test_metrics_count_requests_by_route_action_status(portal: Portal) -> None:
    async with portal.client() as c:
        assert (await c.get("/api/status")).status_code == 200
        assert (await c.get("/api/nothing")).status_code == 404
        assert (await c.get("/api/lines/436641000001/usage")).status_code == 401
        h = await login_anna(c)
        assert (await c.get("/api/lines/436641000001/usage", headers=h)).status_code == 200
        assert (await c.get("/api/lines/%2e%2e/usage")).status_code == 400
    async with portal.ops_client() as o:
        await o.get("/_gateway/ready")
        r = await o.get("/_gateway/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    text = r.text
    lines = [x for x in text.splitlines() if x.startswith("portal_gateway_requests_total{")]

    def count(**labels: str) -> float:
        for line in lines:
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                return float(line.rsplit(" ", 1)[1])
        raise AssertionError(f"no sample with {labels} in {lines}")

    assert count(route="GET /api/status", status="200") >= 1
    assert count(route="GET /api/lines/{msisdn}/usage", action="view_usage", status="200") >= 1
    assert count(route="GET /api/lines/{msisdn}/usage", action="view_usage", status="401") >= 1
    assert any('status="404"' in x for x in lines)
    assert "portal_gateway_request_duration_seconds_bucket" in text
    assert 'portal_gateway_dependency_ready{dependency="policy"} 1.0' in text
    assert "portal_gateway_rejected_requests_total" in text
    # Raw paths (with customer data) never become label values.
    assert "436641000001" not in text


async def test_jwks(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.get("/.well-known/jwks.json")
    assert r.status_code == 200
    keys = r.json()["keys"]
    assert len(keys) == 1 and keys[0]["alg"] == "EdDSA" and "d" not in keys[0]
    key_file = next((portal.data_dir / "keys").glob("signing-*.json"))
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


async def test_access_log_is_json_with_request_id(portal: Portal) -> None:
    async with portal.client() as c:
        r = await c.get("/api/status", headers={"X-Request-Id": "ops-test-1"})
        assert r.headers["x-request-id"] == "ops-test-1"
    records = [json.loads(x) for x in portal.decisions.getvalue().splitlines() if x.strip()]
    mine = [x for x in records if "ops-test-1" in json.dumps(x)]
    assert mine, records
    assert mine[-1]["status"] == 200


async def test_client_port_keeps_only_liveness(portal: Portal) -> None:
    """Readiness details (database, policy errors) and metrics are not public on the client port."""
    async with portal.client() as c:
        assert (await c.get("/_gateway/health")).json() == {"status": "ok"}
        for path in ("/_gateway/ready", "/_gateway/metrics"):
            r = await c.get(path)
            assert r.status_code == 404, path
            assert "portal_gateway" not in r.text and "sqlite" not in r.text
    async with portal.ops_client() as o:
        assert (await o.get("/_gateway/health")).status_code == 200
        assert (await o.get("/_gateway/ready")).status_code == 200


async def test_auth_traffic_is_labelled_by_endpoint(portal: Portal) -> None:
    async with portal.client() as c:
        await login_anna(c)
        await c.get("/auth/no-such-page")
    async with portal.ops_client() as o:
        text = (await o.get("/_gateway/metrics")).text
    counted = [x for x in text.splitlines() if x.startswith("portal_gateway_requests_total{")]
    assert any('route="/auth/login/password"' in x and 'action="control"' in x for x in counted), counted
    assert any('route="/auth/login/totp"' in x for x in counted), counted
    # An unknown control path does not mint a label of its own.
    assert not any("no-such-page" in x for x in counted)
