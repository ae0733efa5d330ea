"""The whole gateway (config/demo.toml: policy, SQLite directory, auth, OIDC) in front of the
demo backend, logging in at the real test IdP (tests/idp) — all on loopback sockets.

`oidc_portal(tmp_path, idp, gw_port)` is an async context manager; the IdP must have
been started with ``gateway=f"http://127.0.0.1:{gw_port}"`` so its redirect and
back-channel URIs point here.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from prometheus_client import CollectorRegistry

from demo.backend import create_app as create_backend
from gateway.app import build_app
from tests.integration.conftest import portal_settings, totp_now
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port

from .gateway_app import forms_of
from .idp import RESOURCE, Idp

ANNA = ("anna.huber@example.at", "anna-portal-2025", "JBSWY3DPEHPK3PXP")


def provider_table(idp: Idp, **extra: Any) -> dict[str, Any]:
    return {
        "issuer": idp.issuer,
        "client_id": "portal-web",
        "client_secret": "portal-web-secret",
        "audience": RESOURCE,
        "allowed_algorithms": ["RS256"],
        "display_name": "Kunden-IdP",
        "scopes": ["openid", "email", "profile"],
        **extra,
    }


@dataclass
class OidcPortal:
    url: str
    idp: Idp

    def client(self, **kw: Any) -> httpx.AsyncClient:
        headers = {"origin": self.url, **kw.pop("headers", {})}
        return httpx.AsyncClient(base_url=self.url, timeout=20, headers=headers, **kw)


@asynccontextmanager
async def oidc_portal(
    tmp_path: Any,
    idp: Idp,
    gw_port: int,
    *,
    providers: dict[str, Any] | None = None,
    clock: Callable[[], float] | None = None,
    settings_overrides: dict[str, Any] | None = None,
    **oidc: Any,
) -> AsyncIterator[OidcPortal]:
    backend_port = free_port()
    overrides: dict[str, Any] = {
        # Cheap Argon2 for the accounts these tests make (the seeded ones keep theirs).
        "auth.argon2_time_cost": 1,
        "auth.argon2_memory_kib": 1024,
        "auth.argon2_parallelism": 1,
        "oidc.enabled": True,
        "oidc.providers": providers or {"customer": provider_table(idp)},
        **{f"oidc.{k}": v for k, v in oidc.items()},
        **(settings_overrides or {}),
    }
    settings = portal_settings(tmp_path, gw_port, f"http://127.0.0.1:{backend_port}", **overrides)
    extra = {"clock": clock} if clock is not None else {}
    app = build_app(
        settings, registry=CollectorRegistry(), access_log_stream=io.StringIO(), **extra
    )
    backend = create_backend(
        jwks_url=f"http://127.0.0.1:{gw_port}/.well-known/jwks.json", audience="portal"
    )
    async with serve_asgi(backend, port_override=backend_port):
        async with serve_asgi(app, port_override=gw_port) as url:
            yield OidcPortal(url, idp)


async def idp_login(
    client: httpx.AsyncClient,
    gateway: str,
    login: str,
    password: str,
    *,
    start: str = "/auth/oidc/login",
    params: dict[str, str] | None = None,
) -> httpx.Response:
    """Start the login at the gateway, sign in at the IdP's pages like a browser, and
    return the gateway's answer to the callback (not followed)."""
    response = await (
        client.get(f"{gateway}{start}", params=params) if params else client.get(f"{gateway}{start}")
    )
    for _ in range(20):
        if response.status_code in (302, 303):
            target = urljoin(str(response.url), response.headers["location"])
            response = await client.get(target)
            if target.startswith(f"{gateway}/auth/oidc/callback"):
                return response
            continue
        assert response.status_code == 200, (response.url, response.status_code, response.text)
        forms = forms_of(response.text)
        assert forms, response.text
        fields = dict(forms[0]["fields"])
        if fields.get("prompt") == "login":
            fields.update(login=login, password=password)
        response = await client.post(urljoin(str(response.url), forms[0]["action"]), data=fields)
    raise AssertionError("the login did not come back to the gateway")


async def password_login(client: httpx.AsyncClient, login: str, password: str) -> dict[str, Any]:
    r = await client.post("/auth/login/password", json={"login": login, "password": password})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def anna_full_login(client: httpx.AsyncClient) -> dict[str, Any]:
    login, password, seed = ANNA
    first = await password_login(client, login, password)
    assert first["status"] == "pending"
    r = await client.post("/auth/login/totp", json={"code": totp_now(seed)})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


__all__ = [
    "ANNA",
    "OidcPortal",
    "anna_full_login",
    "free_port",
    "idp_tokens",
    "idp_login",
    "oidc_portal",
    "password_login",
    "provider_table",
]


async def idp_tokens(
    idp: Idp, gateway: str, login: str, password: str, *, resource: str | None = RESOURCE
) -> dict[str, Any]:
    """A real token response of the IdP for the web client, got like any RP would (code
    flow with PKCE, no nonce), stopping before the gateway's callback: ID token included."""
    import base64
    import hashlib
    import secrets
    from urllib.parse import parse_qs, urlsplit

    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=")
    callback = f"{gateway}/auth/oidc/callback"
    params = {
        "client_id": "portal-web",
        "response_type": "code",
        "redirect_uri": callback,
        "scope": "openid email",
        "state": secrets.token_urlsafe(8),
        "code_challenge": challenge.decode(),
        "code_challenge_method": "S256",
        **({"resource": resource} if resource else {}),
    }
    async with httpx.AsyncClient(timeout=20) as c:
        response = await c.get(f"{idp.issuer}/auth", params=params)
        for _ in range(20):
            if response.status_code in (302, 303):
                target = urljoin(str(response.url), response.headers["location"])
                if target.startswith(callback):
                    code = parse_qs(urlsplit(target).query)["code"][0]
                    break
                response = await c.get(target)
                continue
            forms = forms_of(response.text)
            assert forms, response.text
            fields = dict(forms[0]["fields"])
            if fields.get("prompt") == "login":
                fields.update(login=login, password=password)
            response = await c.post(urljoin(str(response.url), forms[0]["action"]), data=fields)
        else:
            raise AssertionError("no code")
        token = await c.post(
            f"{idp.issuer}/token",
            auth=("portal-web", "portal-web-secret"),
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": callback,
                "code_verifier": verifier,
                **({"resource": resource} if resource else {}),
            },
        )
        assert token.status_code == 200, token.text
        body: dict[str, Any] = token.json()
        return body
