"""`python -m demo.backend` runs as its own process and verifies assertions over real sockets."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.demo.helpers import JwksServer, Signer, free_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def backend(jwks: JwksServer) -> Iterator[str]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "demo.backend",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--jwks-url",
            jwks.url,
            "--audience",
            "portal",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                output = process.stdout.read().decode() if process.stdout else ""
                pytest.fail(f"backend exited with {process.returncode}: {output}")
            try:
                if httpx.get(f"{base}/api/status", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("backend did not start within 20 s")
            time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


async def test_real_process(backend: str, signer: Signer) -> None:
    path = "/api/lines/436641000020/usage"
    async with httpx.AsyncClient(base_url=backend, timeout=5) as client:
        status = await client.get("/api/status")
        assert status.status_code == 200
        assert "server" not in status.headers

        assert (await client.get(path)).status_code == 401

        token = signer.sign("GET", path, now=time.time(), subject="acct-sophie", request_id="req-proc")
        response = await client.get(
            path + "?from=app", headers={"X-Portal-Assertion": token, "X-Forwarded-For": "198.51.100.4"}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["asked_by"]["subject"] == "acct-sophie"
        assert body["received"]["path"] == path  # uvicorn's raw_path, no query
        assert body["received"]["query"] == "from=app"
        assert body["received"]["forwarded"]["x_forwarded_for"] == "198.51.100.4"

        # the same assertion on another path is refused
        other = await client.get("/api/lines/436641000001/usage", headers={"X-Portal-Assertion": token})
        assert other.status_code == 401

        # a state change in the process is visible later
        put_path = "/api/lines/436641000020/tariff"
        token = signer.sign("PUT", put_path, now=time.time())
        changed = await client.put(
            put_path, json={"tariff": "member-l"}, headers={"X-Portal-Assertion": token}
        )
        assert changed.status_code == 200, changed.text
        token = signer.sign("GET", put_path, now=time.time())
        assert (await client.get(put_path, headers={"X-Portal-Assertion": token})).json()["tariff"][
            "id"
        ] == "member-l"

        pdf_path = "/api/invoices/RE-2026-110021/pdf"
        token = signer.sign("GET", pdf_path, now=time.time())
        pdf = await client.get(pdf_path, headers={"X-Portal-Assertion": token})
        assert pdf.status_code == 200
        assert pdf.content.startswith(b"%PDF-") and pdf.content.endswith(b"%%EOF")
