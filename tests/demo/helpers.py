"""Test helpers for the demo backend: a tiny JWKS server and an assertion signer.

Reusable by other test suites: `JwksServer` serves keys on a free loopback port (a real
socket, in a thread), `Signer` makes assertions exactly as docs/deployment.md describes them
("Backends: verify X-Portal-Assertion").
"""

from __future__ import annotations

import json
import threading
import uuid
import warnings
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, OKPKey

from deploy.ports import free_port  # noqa: F401 - re-exported for the demo tests

JWKS_PATH = "/.well-known/jwks.json"




class JwksServer:
    """Serves `self.keys` (public JWKs) at /.well-known/jwks.json; counts hits; can fail on demand."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.hits = 0
        self.fail = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits += 1
                if outer.fail or self.path != JWKS_PATH:
                    self.send_response(500 if outer.fail else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"keys": outer.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self.url = f"http://127.0.0.1:{self.port}{JWKS_PATH}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> JwksServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def publish(self, *keys: OKPKey | ECKey) -> None:
        self.keys = [key.as_dict(private=False) for key in keys]


class Signer:
    """Signs assertions like the gateway: EdDSA, kid header, the claims docs/deployment.md lists."""

    def __init__(self, key: OKPKey | ECKey, *, alg: str = "EdDSA") -> None:
        self.key = key
        self.alg = alg

    def sign(
        self,
        method: str,
        path: str,
        *,
        now: float,
        subject: str = "acct-anna",
        access_level: str = "full",
        auth_methods: tuple[str, ...] = ("pwd", "otp"),
        request_id: str = "req-test-1",
        parts: list[str] | None = None,
        header: dict[str, Any] | None = None,
        **overrides: Any,
    ) -> str:
        claims: dict[str, Any] = {
            "iss": "portal-gateway",
            "aud": "portal",
            "sub": subject,
            "iat": int(now),
            "exp": int(now) + 60,
            "jti": uuid.uuid4().hex,
            "acl": access_level,
            "amr": list(auth_methods),
            "rid": request_id,
            "htm": method,
            "htu": path,
        }
        if parts is not None:
            claims["parts"] = parts
        for name, value in overrides.items():
            if value is None:
                claims.pop(name, None)
            else:
                claims[name] = value
        jws_header = {"alg": self.alg, "kid": self.key.kid, **(header or {})}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return jwt.encode(jws_header, claims, self.key, algorithms=[self.alg])


def new_ed25519(kid: str) -> OKPKey:
    return OKPKey.generate_key("Ed25519", parameters={"kid": kid})
