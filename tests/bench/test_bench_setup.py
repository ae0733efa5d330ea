"""The benchmark's setup on a tiny population, so that `make bench` cannot rot unnoticed.

It seeds a real SQLite directory and account store the way the bench does, starts the real
gateway in front of the bench's upstream, logs everyone in through the login API, probes the
full path and drives it with the generated wrk Lua script. Nothing here measures time.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry

from bench import upstream
from bench.fullpath import Deployment, binding_of, binding_section, gateway_config, probe
from bench.harness import parse_wrk
from bench.population import ANNA_LINE, login_all, people, wrk_script
from bench.scenarios import judge_flat, summarise_profile
from gateway.app import build_app
from gateway.settings import load_settings
from tests.servers.gateway import serve_asgi
from tests.servers.misbehaving import free_port


async def test_seeded_people_log_in_and_each_reads_only_their_own_line(tmp_path: Path) -> None:
    crowd = people(5)
    dep = Deployment("tiny", shared=False, work=tmp_path)
    await dep.open(crowd)
    async with serve_asgi(upstream.app) as upstream_url:
        port = free_port()
        cfg = gateway_config(dep, port, int(upstream_url.rsplit(":", 1)[1]))
        app = build_app(load_settings(cfg, environ={}), registry=CollectorRegistry())
        async with serve_asgi(app, port_override=port) as url:
            anna, callers = await login_all(url, crowd, concurrency=2)
            assert anna.msisdn == ANNA_LINE
            assert [c.msisdn for c in callers] == [p.msisdn for p in crowd]
            assert len({c.token for c in [anna, *callers]}) == 6
            assert await probe(url, anna) == "request"
            async with httpx.AsyncClient(base_url=url) as client:
                for caller in callers:
                    own = await client.get(caller.path, headers={"authorization": f"Bearer {caller.token}"})
                    assert own.status_code == 200
                # The people are separate customers: someone else's line is not found.
                other = await client.get(callers[1].path, headers={"authorization": f"Bearer {callers[0].token}"})
                assert other.status_code == 404

            script = wrk_script(callers, tmp_path / "mix.lua")
            text = script.read_text()
            assert all(c.token in text and c.path in text for c in callers)
            if shutil.which("wrk") is None:
                pytest.fail("wrk is not installed (apt-get install wrk): make bench needs it")
            # In a thread: the gateway under test runs on this event loop.
            done = await asyncio.to_thread(
                subprocess.run,
                ["wrk", "-t2", "-c2", "-d1s", "--latency", "-s", str(script), url + "/", "--", "3"],
                capture_output=True, text=True, check=True, timeout=30,
            )
            out = done.stdout
            result = parse_wrk("mix", out, 2)
            assert result.requests > 0
            assert result.errors == 0  # every scripted request was allowed and forwarded


def test_the_session_binding_setting_is_found_where_the_gateway_takes_it(tmp_path: Path) -> None:
    section, problem = binding_section(tmp_path, 8081)
    assert section == "signing", problem  # docs/configuration.md: [signing] binding
    cfg = gateway_config(Deployment("b", shared=False, work=tmp_path), 8080, 8081, binding="session", section=section)
    assert load_settings(cfg, environ={}).signing.binding == "session"


def test_rss_is_judged_after_the_warm_up() -> None:
    flat = [(0, 50_000), (50_000, 80_000), (100_000, 81_000), (150_000, 79_500), (200_000, 82_000)]
    assert "→ flat" in judge_flat(flat, warmup_requests=50_000)
    growing = [*flat[:-1], (200_000, 90_000)]
    assert "NOT flat" in judge_flat(growing, warmup_requests=50_000)


def test_profile_summary_ranks_own_and_inclusive_time() -> None:
    collapsed = (
        "run (uvicorn/main.py:1);__call__ (/repo/gateway/app.py:10);sign (/repo/gateway/assertion.py:5) 30\n"
        "run (uvicorn/main.py:1);__call__ (/repo/gateway/app.py:10);_exchange (/repo/gateway/http11.py:7) 70\n"
    )
    text = "\n".join(summarise_profile(collapsed))
    assert "100 samples" in text
    assert "70.0%  _exchange (gateway/http11.py)" in text
    assert "100.0%  __call__ (gateway/app.py)" in text



def test_the_probe_tells_a_session_bound_assertion_from_a_request_bound_one() -> None:
    first = {"sub": "a", "htm": "GET", "htu": "/x", "jti": "1"}
    assert binding_of(first, {**first, "jti": "2"}) == "request"
    reused = {"sub": "a", "aud": "portal", "exp": 100}
    assert binding_of(reused, dict(reused)) == "session"
    assert binding_of({"sub": "a", "jti": "1"}, {"sub": "a", "jti": "2"}) == "request"
