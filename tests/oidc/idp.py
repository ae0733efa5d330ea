"""Start the real test OpenID provider (tests/idp/server.mjs) on a free loopback port."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

IDP_DIR = Path(__file__).resolve().parent.parent / "idp"
RESOURCE = "urn:portal-gateway"
WEB_CLIENT = ("portal-web", "portal-web-secret")
API_CLIENT = ("portal-api", "portal-api-secret")


def ensure_installed() -> None:
    """`npm ci` in tests/idp is the one install step; done here when forgotten."""
    if (IDP_DIR / "node_modules" / "oidc-provider").is_dir():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("node/npm missing: install Node.js 20+ and run `npm ci` in tests/idp")
    subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=IDP_DIR, check=True)


def new_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(
        2048, parameters={"kid": kid, "alg": "RS256", "use": "sig"}, private=True
    )


def private_jwks(*keys: RSAKey) -> dict[str, Any]:
    return {"keys": [k.as_dict(private=True) for k in keys]}


@dataclass
class Idp:
    issuer: str
    process: subprocess.Popen[str]
    keys: list[RSAKey]
    gateway: str
    log: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def set_keys(self, *keys: RSAKey) -> None:
        """Rotate: the first key signs from now on; the provider keeps its sessions."""
        r = httpx.post(f"{self.issuer}/__test/jwks", json=private_jwks(*keys), timeout=10)
        r.raise_for_status()
        self.keys = list(keys)

    def client_credentials(self, scope: str = "portal:read") -> str:
        r = httpx.post(
            f"{self.issuer}/token",
            auth=API_CLIENT,
            data={"grant_type": "client_credentials", "scope": scope, "resource": RESOURCE},
            timeout=10,
        )
        r.raise_for_status()
        token: str = r.json()["access_token"]
        return token

    def mint(
        self,
        claims: dict[str, Any],
        *,
        key: RSAKey | None = None,
        header: dict[str, Any] | None = None,
    ) -> str:
        """A token signed with the provider's own key (or `key`), with any claims."""
        key = key or self.keys[0]
        now = int(time.time())
        body = {"iss": self.issuer, "aud": RESOURCE, "iat": now, "exp": now + 300, **claims}
        body = {k: v for k, v in body.items() if v is not None}
        hdr = {"alg": "RS256", "kid": key.kid, "typ": "at+jwt", **(header or {})}
        hdr = {k: v for k, v in hdr.items() if v is not None}
        return jwt.encode(hdr, body, key, algorithms=[hdr["alg"]])


def start_idp(
    tmp: Path,
    *,
    gateway: str = "http://127.0.0.1:9",
    keys: list[RSAKey] | None = None,
    at_ttl: int = 300,
    rt_ttl: int = 3600,
    jwks_max_age: int | None = None,
) -> Idp:
    ensure_installed()
    keys = keys or [new_key("k1")]
    jwks_file = tmp / "idp-jwks.json"
    jwks_file.write_text(json.dumps(private_jwks(*keys)))
    log = tmp / "idp.log"
    env = {**os.environ, "NODE_NO_WARNINGS": "1"}
    proc = subprocess.Popen(
        [
            "node",
            "server.mjs",
            "--port",
            "0",
            "--gateway",
            gateway,
            "--jwks",
            str(jwks_file),
            "--resource",
            RESOURCE,
            "--at-ttl",
            str(at_ttl),
            "--rt-ttl",
            str(rt_ttl),
            *(["--jwks-max-age", str(jwks_max_age)] if jwks_max_age is not None else []),
        ],
        cwd=IDP_DIR,
        stdout=subprocess.PIPE,
        stderr=log.open("w"),
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("listening "):
        proc.kill()
        raise RuntimeError(f"test IdP did not start: {line!r} {log.read_text()}")
    return Idp(issuer=line.split()[1], process=proc, keys=keys, gateway=gateway, log=log)
