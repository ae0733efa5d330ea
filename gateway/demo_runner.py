"""`portal-gateway demo`: the gateway in front of the demo backend on embedded defaults.

Starts the demo portal backend (its own process, its own port), then the
gateway with ``config/demo.toml``, and prints what a person needs to try it.
Stops the backend when the gateway stops.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from gateway.settings import load_settings

__all__ = ["run_demo"]

GUIDE = """
portal-gateway demo
===================
  Gateway          {gw}            (login pages: {gw}/auth/login)
  Demo backend     http://{host}:{backend_port}  (only reachable with the gateway's signed assertion)
  Health           {gw}/_gateway/health
  Operations       {ops}/_gateway/ready   {ops}/_gateway/metrics   (loopback only)
  JWKS             {gw}/.well-known/jwks.json
  SMS-TAN outbox   {outbox}
                   (every SMS code the demo "sends" is appended there: tail -f it)
  Decision log     {decisions}

The demo people (docs/domain.md section 4):
  Anna Huber      holder, already registered: login anna.huber@example.at / anna-portal-2025,
                  TOTP secret JBSWY3DPEHPK3PXP (e.g. `oathtool --totp -b JBSWY3DPEHPK3PXP`)
  Markus Mayr     holder of Installateur Mayr KG: register with customer no. 1000010 + Kundenkennwort Mayr-KG-Kennwort
  Eva Lechner     authorised at Mayr KG: register with 1000010 + Mayr-KG-Kennwort (her own login name)
  Sophie Wagner   Business Member: register with 436641000020 + PUK 20202020 (or invoice RE-2026-110021)
  Thomas Gruber   invoice split: register the private part with 436641000030 + PUK 30303030
  Lukas Steiner   company phone: SMS-TAN login to 436641000040 (code in the outbox)
  Martin Berger   company administrator: no portal account (VPN lives in My Business Station)

Try it:
  curl -s {gw}/api/status
  curl -s -c /tmp/pg.jar -H 'content-type: application/json' \\
       -d '{{"login":"anna.huber@example.at","password":"anna-portal-2025"}}' {gw}/auth/login/password
  then POST {{"code": "<TOTP>"}} to {gw}/auth/login/totp with the same cookie jar and
  -H "Origin: {gw}" (cookie requests that change something must name their origin), and
  curl -s -b /tmp/pg.jar {gw}/api/lines/436641000001/usage

Press Ctrl-C to stop.
"""


def _wait_port(host: str, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return True
        time.sleep(0.1)
    return False


def _exit_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex((host, port)) != 0


def _project_root() -> Path | None:
    """The checkout that holds config/demo.toml: the working directory, else the package's parent."""
    for candidate in (Path.cwd(), Path(__file__).resolve().parent.parent):
        if (candidate / "config" / "demo.toml").is_file():
            return candidate
    return None


def run_demo(
    *, host: str = "127.0.0.1", port: int = 8080, backend_port: int = 8081, ops_port: int = 8082,
    config: str | None = None,
) -> int:
    import uvicorn

    from gateway.app import build_app

    root = _project_root()
    if root is None and config is None:
        print("portal-gateway demo: no config/demo.toml here or beside the installed package; run it from a "
              "checkout of portal-gateway (cd portal-gateway && portal-gateway demo) or pass --config FILE",
              file=sys.stderr)
        return 2
    config_path = Path(config).resolve() if config else None
    root = root or Path.cwd()
    # Paths in the demo configuration (var/demo, demo/directory.yaml, policies/) are relative to the
    # checkout, so the demo runs there whatever directory it was started from.
    os.chdir(root)
    config_path = config_path or root / "config" / "demo.toml"
    for p in (port, backend_port, ops_port):
        if not _port_free(host, p):
            print(f"portal-gateway demo: port {p} on {host} is already in use (stop what runs there first)",
                  file=sys.stderr)
            return 2
    settings = load_settings(
        config_path,
        overrides={
            "server.port": port,
            "server.host": host,
            "server.public_url": f"http://{host}:{port}",
            "server.ops_port": ops_port,
            "upstreams.portal": {"url": f"http://{host}:{backend_port}"},
        },
    )
    data_dir = settings.path(settings.server.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    app = build_app(settings, serve_ops=True)

    backend = subprocess.Popen(  # noqa: S603 - our own module, fixed arguments
        [sys.executable, "-m", "demo.backend", "--host", host, "--port", str(backend_port),
         "--jwks-url", f"http://{host}:{port}/.well-known/jwks.json", "--audience", "portal"],
        cwd=root,
    )
    try:
        if not _wait_port(host, backend_port, 20):
            print("portal-gateway demo: the demo backend did not start", file=sys.stderr)
            return 1
        outbox = settings.extra.get("sms", {}).get("outbox_path") or str(data_dir / "sms-outbox.jsonl")
        guide = GUIDE.format(
            gw=f"http://{host}:{port}", ops=f"http://{host}:{ops_port}", host=host, backend_port=backend_port,
            outbox=settings.path(outbox), decisions=settings.path(settings.policy.decision_log),
        )
        print(guide, flush=True)
        # uvicorn re-raises the signal that stopped it once it has shut down; with
        # this handler that ends in SystemExit, so the backend below is stopped too.
        signal.signal(signal.SIGTERM, _exit_on_signal)
        uvicorn.run(app, host=host, port=port, proxy_headers=False, server_header=False, access_log=False,
                    log_config=None,
                    log_level="info")
    finally:
        backend.terminate()
        try:
            backend.wait(10)
        except subprocess.TimeoutExpired:
            backend.kill()
    return 0
