"""SMS-TAN codes: issue, limit and check them exactly as docs/domain.md section 1 says.

- 6 digits from a CSPRNG (`secrets`), valid 5 minutes, single use, 3 tries per code;
- a new code for the same number not before 30 s, at most 5 per number per hour
  (and a cap per client address, against pumping SMS to many numbers);
- the same answer whether the number exists or not: `send()` returns normally in
  every case the client must not tell apart (unknown number, too early, over the
  limit); only a provider outage surfaces (503).

The store keeps ``sms_code:<msisdn>`` = {"n": nonce, "h": sha256(nonce|code)}; the
try counter is per code (``sms_tries:<msisdn>:<nonce>``), so the 4th try fails
even with the right code, and a new code starts with fresh tries. Consuming the
code is a `pop`, so two replicas cannot both accept it. Wrong codes also go to
the regulator (kind "sms", per number).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter

from gateway.auth import phone
from gateway.auth.config import SmsSettings
from gateway.auth.phone import DEFAULT_COUNTRY_CODE
from gateway.auth.regulation import Regulator
from gateway.auth.sms_senders import SmsSender
from gateway.directory.base import Directory
from gateway.store.base import Store

__all__ = ["SmsCodes", "normalize_msisdn"]

log = logging.getLogger("gateway.auth.sms")

TEXTS = {
    "de": "Ihr Code für das Kundenportal: {code} (5 Minuten gültig). Geben Sie ihn nie weiter.",
    "en": "Your customer portal code: {code} (valid for 5 minutes). Never share it.",
}


def normalize_msisdn(value: str, country_code: str = DEFAULT_COUNTRY_CODE) -> str | None:
    """E.164 digits without '+', or None if not a number (`gateway.auth.phone`, the one normalizer)."""
    return phone.normalize(value, country_code)


def _digest(nonce: str, code: str) -> str:
    return hashlib.sha256(f"{nonce}|{code}".encode()).hexdigest()


class SmsCodes:
    def __init__(
        self,
        *,
        store: Store,
        sender: SmsSender,
        directory: Directory,
        regulator: Regulator,
        settings: SmsSettings,
        registry: CollectorRegistry,
        clock: Callable[[], float],
    ) -> None:
        self._store = store
        self.sender = sender
        self._directory = directory
        self._regulator = regulator
        self._s = settings
        self._clock = clock
        self.sent = Counter(
            "portal_gateway_sms",
            "SMS-TAN send requests by outcome (sent, unknown_number, too_early, number_limit, client_limit)",
            ["outcome"],
            registry=registry,
        )

    def normalize(self, msisdn: str) -> str | None:
        """A typed number in the directory's E.164 digits (the portal's country code for national ones)."""
        return normalize_msisdn(msisdn, self._s.country_code)

    async def send(self, msisdn: str, *, client_ip: str, language: str = "de") -> None:
        """Send a code if the rules allow; silent about every reason not to."""
        number = self.normalize(msisdn)
        outcome = await self._send(number, client_ip, language) if number else "unknown_number"
        self.sent.labels(outcome).inc()

    async def _send(self, number: str, client_ip: str, language: str) -> str:
        if await self._store.incr(f"sms_client:{client_ip}", 3600) > self._s.max_per_client_per_hour:
            return "client_limit"
        if await self._directory.line(number) is None:
            return "unknown_number"
        if not await self._store.set_if_absent(f"sms_wait:{number}", "1", self._s.resend_after_seconds):
            return "too_early"
        if await self._store.incr(f"sms_hour:{number}", 3600) > self._s.max_per_number_per_hour:
            return "number_limit"
        code = f"{secrets.randbelow(10**6):06d}"
        nonce = secrets.token_hex(8)
        record = json.dumps({"n": nonce, "h": _digest(nonce, code)})
        await self._store.set(f"sms_code:{number}", record, self._s.code_ttl_seconds)
        try:
            await self.sender.send(number, TEXTS.get(language, TEXTS["de"]).format(code=code))
        except Exception:
            await self._store.delete(f"sms_code:{number}")
            await self._store.delete(f"sms_wait:{number}")
            raise
        return "sent"

    async def verify(self, msisdn: str, code: str, *, client_ip: str) -> str | None:
        """The normalized number when `code` is the live code for it (consumed), else None."""
        number = self.normalize(msisdn)
        if number is None:
            return None
        code = code.strip()
        async with self._regulator.reserved("sms", number, client_ip=client_ip) as attempt:
            raw = await self._store.get(f"sms_code:{number}") if attempt.allowed else None
            ok = False
            if raw is not None:
                record = json.loads(raw)
                tries = await self._store.incr(f"sms_tries:{number}:{record['n']}", self._s.code_ttl_seconds)
                matches = hmac.compare_digest(_digest(record["n"], code), record["h"])
                if tries > self._s.max_tries:
                    await self._store.delete(f"sms_code:{number}")
                elif matches:
                    ok = await self._store.pop(f"sms_code:{number}") is not None
                    if ok:  # the 30 s pause guards against pumping, not the next step of a flow (enrolment)
                        await self._store.delete(f"sms_wait:{number}")
                elif tries >= self._s.max_tries:
                    await self._store.delete(f"sms_code:{number}")
            if not ok:
                await self._regulator.fail(attempt)
                return None
            await self._regulator.succeed(attempt)
            return number
