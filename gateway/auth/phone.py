"""Phone numbers as people type them, to the directory's E.164 digits.

One normalizer for every place a number is entered (SMS login, registration,
OIDC linking, step-up, the line of a TOTP enrolment). Accepted:

- international: ``+43 664 1000040``, ``0043 664 1000040``, ``43 664 1000040``;
- national (a single leading ``0``): ``0664 1000040`` → the portal's country
  code (``[sms] country_code``, default 43 = Austria) in front;
- separators people use: spaces, ``-``, ``/``, ``.``, and one pair of
  parentheses (``(0664) 100 00 40``, ``+43 (0) 664 …`` — the trunk ``(0)`` is dropped).

Anything else (letters, a second ``+``, unbalanced parentheses, too few or too
many digits) is not a phone number: `normalize` answers None and the endpoint a
400 ``invalid_msisdn``. A well-formed number the directory does not know is
*not* refused here — that answer must look like a known one (no enumeration).
"""

from __future__ import annotations

import re

__all__ = ["DEFAULT_COUNTRY_CODE", "looks_like_phone_number", "normalize", "valid_country_code"]

DEFAULT_COUNTRY_CODE = "43"

_SEPARATORS = re.compile(r"[\s\-/.]+")
_SHAPE = re.compile(r"\+?[0-9]*(\([0-9]{1,5}\))?[0-9]+")
_COUNTRY = re.compile(r"[1-9][0-9]{0,2}")


def normalize(value: str, country_code: str = DEFAULT_COUNTRY_CODE) -> str | None:
    """E.164 digits without '+' (8 to 15 digits), or None when `value` is not a phone number."""
    if len(value) > 40 or not value.isascii():
        return None
    text = _SEPARATORS.sub("", value.strip())
    if not _SHAPE.fullmatch(text):
        return None
    if "(0)" in text and text.startswith(("+", "00")):
        text = text.replace("(0)", "")  # "+43 (0) 664 …": the trunk prefix is not dialled from abroad
    text = text.replace("(", "").replace(")", "")
    if text.startswith("+"):
        digits = text[1:]
    elif text.startswith("00"):
        digits = text[2:]
    elif text.startswith("0"):
        digits = country_code + text[1:]
    else:
        digits = text
    if not digits.isdigit() or digits.startswith("0") or not 8 <= len(digits) <= 15:
        return None
    return digits


def looks_like_phone_number(value: str) -> bool:
    """Whether a registration identifier is meant as a number (not a customer number).

    Customer numbers are bare digits without a leading 0; a number is written with
    '+', '00' or a national '0', or with the separators of a phone number.
    """
    text = value.strip()
    return text.startswith(("+", "0", "(")) or bool(re.search(r"[\s\-/.()]", text))


def valid_country_code(code: str) -> bool:
    return bool(_COUNTRY.fullmatch(code))
