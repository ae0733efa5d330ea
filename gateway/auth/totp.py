"""TOTP (RFC 6238) the way Authelia does it: check the shape, verify against the
injected clock, refuse a step that was already used, and let the caller count
every failure with the regulator.

Parameters (docs/domain.md section 1): 30 s step, 6 digits, SHA-1 (what authenticator
apps expect), ±1 step. A used step is recorded in the store with
`set_if_absent` under ``totp_used:<account>:<step>``: exactly one request (on any
replica) can use a given step of an account, so a replayed code always fails.
The record lives until the step can no longer be accepted anyway.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass

import pyotp
import segno

from gateway.auth.config import TotpSettings
from gateway.store.base import Store

__all__ = ["Enrolment", "Totp"]


@dataclass(frozen=True, slots=True)
class Enrolment:
    secret: str
    uri: str
    qr_svg: str


class _Totp(pyotp.TOTP):
    """pyotp >= 2.10 refuses seeds under 112 bits; verifying older 80-bit seeds (the demo's
    ``JBSWY3DPEHPK3PXP``, many existing apps) stays possible. New seeds are 160 bits."""

    min_secret_length_bits = 80


class Totp:
    def __init__(self, store: Store, settings: TotpSettings, clock: Callable[[], float]) -> None:
        self._store = store
        self._s = settings
        self._clock = clock

    def _otp(self, secret: str) -> pyotp.TOTP:
        return _Totp(secret, digits=self._s.digits, interval=self._s.period_seconds)

    def enrolment(self, login: str, secret: str | None = None) -> Enrolment:
        """A new random seed (160 bit) with its ``otpauth://`` URI and the URI as an SVG QR code."""
        secret = secret or pyotp.random_base32(32)
        uri = self._otp(secret).provisioning_uri(name=login, issuer_name=self._s.issuer)
        qr = segno.make(uri, error="m")
        svg = qr.svg_inline(scale=4, title="QR code: " + self._s.issuer, border=2)
        return Enrolment(secret=secret, uri=uri, qr_svg=svg)

    def code_at(self, secret: str, when: float) -> str:
        """The code for the step containing `when` (tests, the CLI)."""
        return str(self._otp(secret).generate_otp(int(when // self._s.period_seconds)))

    def _matching_step(self, secret: str, code: str) -> int | None:
        otp = self._otp(secret)
        now_step = int(self._clock() // self._s.period_seconds)
        found: int | None = None
        for step in range(now_step - self._s.valid_window, now_step + self._s.valid_window + 1):
            if hmac.compare_digest(str(otp.generate_otp(step)).encode(), code.encode()):
                found = step
        return found

    async def verify(self, account_key: str, secret: str, code: str) -> bool:
        """True once per (account, step) for a correct code; False for wrong, malformed or replayed."""
        code = code.strip()
        if len(code) != self._s.digits or not code.isascii() or not code.isdigit():
            return False
        step = self._matching_step(secret, code)
        if step is None:
            return False
        keep = self._s.period_seconds * (2 * self._s.valid_window + 2)
        return await self._store.set_if_absent(f"totp_used:{account_key}:{step}", "1", keep)
