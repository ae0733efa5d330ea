"""deploy/compose.yaml against the Compose specification and deploy/kubernetes/ against the
Kubernetes schemas, offline; and what the schemas cannot see: the configurations they carry
pass `config check`, the probes reach the operations listener, the backend trusts the gateways'
JWKS, nothing exposes the operations port."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
#: The Compose specification's JSON schema, as Debian's docker-compose package ships it.
COMPOSE_SCHEMA = Path("/usr/lib/python3/dist-packages/compose/config/compose_spec.json")
KUBERNETES_VERSION = "1.30.0"
MANIFESTS = sorted(p for p in (DEPLOY / "kubernetes").glob("*.yaml") if p.name != "kustomization.yaml")


def _compose() -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(data, dict)
    return data


def test_compose_file_follows_the_compose_specification() -> None:
    if not COMPOSE_SCHEMA.is_file():
        pytest.skip(f"{COMPOSE_SCHEMA} is missing (Debian: apt-get install docker-compose)")
    import jsonschema

    validator = jsonschema.Draft201909Validator(json.loads(COMPOSE_SCHEMA.read_text()))
    validator.validate(_compose())
    broken = _compose()
    broken["services"]["nginx"]["depends_on"] = {"gateway-a": {"condition": "when_it_feels_like_it"}}
    with pytest.raises(jsonschema.ValidationError):
        validator.validate(broken)


def test_compose_topology(monkeypatch: pytest.MonkeyPatch) -> None:
    services = _compose()["services"]
    gateways = [name for name, s in services.items() if "serve" in s.get("command", [])]
    assert sorted(gateways) == ["gateway-a", "gateway-b"]
    for name in gateways:
        check = " ".join(services[name]["healthcheck"]["test"])
        assert "9090/_gateway/ready" in check
        assert "ports" not in services[name], "a replica must not publish its ports"
    assert services["nginx"]["ports"] == ["8080:8080"]
    assert "http://nginx:8080/.well-known/jwks.json" in services["backend"]["command"]
    nginx = (DEPLOY / "nginx.conf").read_text()
    assert "server gateway-a:8080" in nginx and "server gateway-b:8080" in nginx
    monkeypatch.chdir(ROOT)
    settings = load_settings(DEPLOY / "gateway.toml", environ={})
    assert settings.store.backend == "redis" and settings.server.ops_port == 9090


def _manifest(name: str) -> dict[str, Any]:
    data = yaml.safe_load((DEPLOY / "kubernetes" / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_kubernetes_manifest_follows_the_schema(path: Path) -> None:
    import kubernetes_validate

    for resource in yaml.safe_load_all(path.read_text()):
        kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)


def test_a_broken_manifest_is_refused() -> None:
    import kubernetes_validate

    broken = _manifest("deployment.yaml")
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["portt"] = 9090
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = set(_manifest("kustomization.yaml")["resources"])
    assert listed == {p.name for p in MANIFESTS}


def test_kubernetes_probes_reach_the_operations_listener(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = _manifest("configmap.yaml")["data"]["gateway.toml"]
    ops_port = tomllib.loads(config)["server"]["ops_port"]
    monkeypatch.chdir(ROOT)
    (tmp_path / "gateway.toml").write_text(config)
    settings = load_settings(tmp_path / "gateway.toml", environ={})
    assert settings.server.ops_port == ops_port and settings.server.workers == 2
    pod = _manifest("deployment.yaml")["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["ops"] == ops_port
    assert container["readinessProbe"]["httpGet"] == {"path": "/_gateway/ready", "port": "ops"}
    assert container["livenessProbe"]["httpGet"]["port"] == "ops"
    assert "preStop" in container["lifecycle"]
    secrets = {e["name"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert {"PORTAL_GATEWAY_TOTP__ENCRYPTION_KEY", "PORTAL_GATEWAY_DATABASE__URL"} <= secrets
    service_ports = {p["targetPort"] for p in _manifest("service.yaml")["spec"]["ports"]}
    assert service_ports == {"http"}, "the Service must not expose the operations port"
    assert _manifest("pdb.yaml")["spec"]["minAvailable"] == 1
    assert _manifest("hpa.yaml")["spec"]["minReplicas"] >= 2
