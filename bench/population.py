"""The full-path benchmark's population: many people, each with a customer, a line and an account.

`make bench` needs thousands of real sessions (the cold mix: every request a different person
asking for their own line). Creating them the way customers do (registration with a proof,
argon2 at production cost) would take many minutes, so the bench:

1. writes a directory world: the demo world (demo/directory.yaml, proofs left out: nobody
   registers here) plus ``n`` private customers, one line each (`bench_world`);
2. loads it into the SQL directory and writes the accounts into the account store directly,
   Anna with her TOTP seed, the others with one shared password hashed at a low argon2 cost
   that the bench gateway is configured with too (`seed_database`);
3. logs everyone in through the gateway's own login API, as an API client would
   (`login_all`): the sessions are the gateway's real sessions, in its real store;
4. writes a wrk Lua script that cycles through ``(token, line)`` pairs (`wrk_script`).

Only the setup is shortcut; the requests measured are ordinary API calls.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import struct
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from argon2 import PasswordHasher

from gateway.auth.accounts import AccountRow, Accounts
from gateway.auth.crypto import SecretBox
from gateway.database import Database
from gateway.directory.importer import import_world
from gateway.directory.world import parse_world

ROOT = Path(__file__).resolve().parent.parent

ANNA_LOGIN = "anna.huber@example.at"
ANNA_PASSWORD = "anna-portal-2025"
ANNA_TOTP = "JBSWY3DPEHPK3PXP"
ANNA_LINE = "436641000001"
#: The shared password of the generated people (they are bench data, not secrets).
PEOPLE_PASSWORD = "bench-portal-password-2026"
#: Argon2id cost of the bench's password hashes; the bench gateway's [auth] uses the same,
#: so a login does not rehash. Logins are setup here, not what is measured.
ARGON2 = {"time_cost": 1, "memory_kib": 1024, "parallelism": 1}


@dataclass(frozen=True, slots=True)
class Person:
    login: str
    customer: str
    msisdn: str
    person_id: str


@dataclass(frozen=True, slots=True)
class Caller:
    """A logged-in session and the line it asks for."""

    token: str
    msisdn: str

    @property
    def path(self) -> str:
        return f"/api/lines/{self.msisdn}/usage"


def people(n: int) -> list[Person]:
    """``n`` private customers with one line each; ids do not collide with the demo world's."""
    if n > 9_999_999:
        raise ValueError("at most 9,999,999 people")
    return [
        Person(
            login=f"bench{i:07d}@example.at",
            customer=f"3{i:07d}",
            msisdn=f"43676{i:07d}",
            person_id=f"p-bench-{i:07d}",
        )
        for i in range(n)
    ]


def bench_world(crowd: list[Person]) -> dict[str, Any]:
    """The demo world without its proofs, plus `crowd` (a directory world as `parse_world` reads it)."""
    demo: dict[str, Any] = yaml.safe_load((ROOT / "demo" / "directory.yaml").read_text(encoding="utf-8"))
    for customer in demo.get("customers", []):
        customer.pop("kundenkennwort", None)
    for line in demo.get("lines", []):
        line.pop("puk", None)
    for p in crowd:
        demo["persons"].append({"id": p.person_id, "name": f"Bench {p.customer}"})
        demo["customers"].append({"number": p.customer, "name": f"Bench {p.customer}", "kind": "private",
                                  "holders": [p.person_id]})
        demo["contracts"].append({"id": f"ct-{p.customer}", "customer": p.customer, "kind": "private"})
        demo["lines"].append({"msisdn": p.msisdn, "contract": f"ct-{p.customer}", "customer": p.customer,
                              "user": p.person_id})
    return demo


def password_hash(password: str) -> str:
    return PasswordHasher(
        time_cost=ARGON2["time_cost"], memory_cost=ARGON2["memory_kib"], parallelism=ARGON2["parallelism"]
    ).hash(password)


async def seed_database(db: Database, crowd: list[Person], *, totp_key: str) -> None:
    """Migrate, load the world, create Anna (password + TOTP) and one account per person."""
    await db.migrate()
    await import_world(db, parse_world(bench_world(crowd), "bench world"))
    now = time.time()
    shared = password_hash(PEOPLE_PASSWORD)
    rows = [
        AccountRow(
            id="acc_" + secrets.token_hex(12), login=p.login, password_hash=shared, totp_secret=None,
            totp_pending=None, totp_enabled=False, role="customer", access_level="full",
            bound_customer=p.customer, bound_msisdn=None, person_id=p.person_id, registered_with="cli",
            identifier=p.customer, created_at=now, updated_at=now,
        )
        for p in crowd
    ]
    anna_id = "acc_" + secrets.token_hex(12)
    rows.append(
        AccountRow(
            id=anna_id, login=ANNA_LOGIN, password_hash=password_hash(ANNA_PASSWORD), totp_secret=None,
            totp_pending=None, totp_enabled=False, role="customer", access_level="full",
            bound_customer="1000001", bound_msisdn=None, person_id="p-anna-huber",
            registered_with="kundenkennwort", identifier="1000001", created_at=now, updated_at=now,
        )
    )
    async with db.session() as s:
        s.add_all(rows)
    await Accounts(db, box=SecretBox(totp_key), clock=time.time).set_totp_secret(anna_id, ANNA_TOTP)


def totp_now(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret)
    counter = int((at if at is not None else time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 15
    value = (struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF) % 10**6
    return f"{value:06d}"


class LoginFailed(RuntimeError):
    pass


def _token(response: httpx.Response, who: str) -> str:
    if response.status_code != 200:
        raise LoginFailed(f"login of {who}: HTTP {response.status_code} {response.text[:200]}")
    token = response.json().get("token")
    if not isinstance(token, str):
        raise LoginFailed(f"login of {who}: no token in the answer")
    return token


async def login_anna(client: httpx.AsyncClient) -> Caller:
    """Anna's full session: password, then TOTP, as the README shows."""
    r = await client.post("/auth/login/password", json={"login": ANNA_LOGIN, "password": ANNA_PASSWORD})
    pending = _token(r, ANNA_LOGIN)
    # A code is accepted once: a second gateway on the same store (the 2-worker run) within
    # the same 30 s gets the neighbouring time step's code, which the gateway's window allows.
    for step in (0, 30, -30):
        r = await client.post("/auth/login/totp", json={"code": totp_now(ANNA_TOTP, time.time() + step)},
                              headers={"authorization": f"Bearer {pending}"})
        if r.status_code != 401:
            break
    return Caller(_token(r, ANNA_LOGIN), ANNA_LINE)


async def login_all(base_url: str, crowd: list[Person], *, concurrency: int = 16) -> tuple[Caller, list[Caller]]:
    """Anna's session and one session per person, through the gateway's login API."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
        anna = await login_anna(client)
        gate = asyncio.Semaphore(concurrency)

        async def one(p: Person) -> Caller:
            async with gate:
                r = await client.post("/auth/login/password", json={"login": p.login, "password": PEOPLE_PASSWORD})
                return Caller(_token(r, p.login), p.msisdn)

        crowd_callers = await asyncio.gather(*(one(p) for p in crowd))
    return anna, list(crowd_callers)


def wrk_script(callers: list[Caller], path: Path) -> Path:
    """A wrk Lua script: every request the next caller's own line with that caller's session.

    Each wrk thread starts at its own offset (plus an optional start index given as the
    script's first argument, so consecutive runs continue where the last one stopped) and
    walks the list round-robin: with as many callers as requests per pass, every request
    is a different person, so directory, session and decision caches see a cold mix.
    """
    if not callers:
        raise ValueError("no callers")
    entries = ",\n".join(f"  {{{json.dumps(c.token)}, {json.dumps(c.path)}}}" for c in callers)
    path.write_text(f"""-- Generated by bench/population.py: {len(callers)} sessions, each asking for its own line.
local callers = {{
{entries}
}}
local threads = 0

function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

function init(args)
  local start = tonumber(args[1] or "0") or 0
  prepared = {{}}
  for i, c in ipairs(callers) do
    prepared[i] = wrk.format("GET", c[2], {{["Authorization"] = "Bearer " .. c[1]}})
  end
  local stride = math.floor(#prepared / 2)  -- the bench runs wrk with 2 threads
  position = (start + (tid or 0) * stride) % #prepared
end

function request()
  position = position % #prepared + 1
  return prepared[position]
end
""", encoding="utf-8")
    return path
