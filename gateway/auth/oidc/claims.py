"""The claims of an ID token that the gateway looks at, checked strictly.

Claims never grant portal rights: rights come from the account's binding (made
with a registration proof) plus the directory and the policy. The mapped claims
(e-mail, name, phone number) are display values and hints only. Still, a
malformed or surprising claim makes the whole login fail clearly: a provider
that sends a ``phone_number`` with bidi overrides, several numbers or letters
in it is either broken or being abused, and neither should reach an account page.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.auth.oidc.config import ClaimMapping
from gateway.auth.oidc.errors import OidcLoginFailed

__all__ = ["IdentityClaims", "map_claims"]

#: E.164: '+' and 8 to 15 ASCII digits, nothing else (no spaces, no separators, no
#: second number, no Unicode digits or format characters).
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_EMAIL = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
)


@dataclass(frozen=True, slots=True)
class IdentityClaims:
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str | None
    #: E.164 digits without '+', as the directory writes MSISDNs.
    phone_number: str | None
    sid: str | None


def _clean_text(value: object, claim: str, max_len: int) -> str:
    if not isinstance(value, str) or not value or len(value) > max_len:
        raise OidcLoginFailed("oidc_claims_invalid", f"claim {claim}: not a string of 1..{max_len}")
    for ch in value:
        if unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs", "Zl", "Zp"):
            raise OidcLoginFailed(
                "oidc_claims_invalid", f"claim {claim}: control or format character"
            )
    return value


def map_claims(claims: Mapping[str, Any], mapping: ClaimMapping) -> IdentityClaims:
    """Check and pick the claims; `OidcLoginFailed` ("oidc_claims_invalid") on anything odd."""
    sub = claims.get("sub")
    if not isinstance(sub, str) or not sub:
        raise OidcLoginFailed("oidc_claims_invalid", "claim sub missing")
    subject = _clean_text(sub, "sub", 255)
    if subject != subject.strip():
        raise OidcLoginFailed("oidc_claims_invalid", "claim sub: surrounding whitespace")

    email: str | None = None
    raw_email = claims.get(mapping.email)
    if raw_email is not None:
        email = _clean_text(raw_email, mapping.email, 254)
        if not _EMAIL.fullmatch(email):
            raise OidcLoginFailed(
                "oidc_claims_invalid", f"claim {mapping.email}: not an e-mail address"
            )
    verified = claims.get("email_verified", False)
    if not isinstance(verified, bool):
        raise OidcLoginFailed("oidc_claims_invalid", "claim email_verified: not a boolean")

    name: str | None = None
    if claims.get(mapping.name) is not None:
        name = _clean_text(claims[mapping.name], mapping.name, 200)

    phone: str | None = None
    raw_phone = claims.get(mapping.phone_number)
    if raw_phone is not None:
        if not isinstance(raw_phone, str) or not _E164.fullmatch(raw_phone):
            raise OidcLoginFailed(
                "oidc_claims_invalid", f"claim {mapping.phone_number}: not one E.164 number"
            )
        phone = raw_phone[1:]

    sid: str | None = None
    if claims.get("sid") is not None:
        sid = _clean_text(claims["sid"], "sid", 255)
    iss = claims.get("iss")
    if not isinstance(iss, str):
        raise OidcLoginFailed("oidc_claims_invalid", "claim iss missing")
    return IdentityClaims(
        issuer=iss,
        subject=subject,
        email=email,
        email_verified=verified,
        name=name,
        phone_number=phone,
        sid=sid,
    )
