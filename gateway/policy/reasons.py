"""Reason codes and their German / English texts (invariant 6).

A reason tells a portal front-end *why* without revealing secrets or the
existence of other people's data: "not_found" is the same text whether the
thing does not exist or belongs to someone else. The order of `REASONS` is the
priority when several ``deny_reason`` rules match (most specific first).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["GENERIC", "HINT_REASONS", "REASONS", "best_reason", "message"]

#: code → (de, en); in priority order.
REASONS: dict[str, tuple[str, str]] = {
    "allowed": (
        "Erlaubt.",
        "Allowed.",
    ),
    "vpn_in_business_station": (
        "VPN-Verträge werden in My Business Station verwaltet.",
        "VPN contracts are managed in My Business Station.",
    ),
    "company_in_business_station": (
        "Firmenkunden und Firmenadministratoren verwenden My Business Station.",
        "Company customers and company administrators use My Business Station.",
    ),
    "restricted_session": (
        "Mit einem Benutzer-Login oder SMS-TAN-Login ist diese Änderung nicht möglich. "
        "Bitte melden Sie sich mit Ihrem Portal-Passwort an.",
        "This change is not possible with a user login or SMS-TAN login. "
        "Please log in with your portal password.",
    ),
    "line_user_scope": (
        "Mit einem Benutzer-Login sehen Sie nur Verbrauch und Tarif Ihrer Rufnummer.",
        "A user login shows only the usage and tariff of your own number.",
    ),
    "service_client_not_permitted": (
        "Dienst-Clients (Client-Credentials-Token) sind für diese Aktion nicht freigegeben.",
        "Service clients (client-credentials tokens) are not permitted this action.",
    ),
    "step_up_required": (
        "Bitte bestätigen Sie diese Aktion mit einem zweiten Faktor.",
        "Please confirm this action with a second factor.",
    ),
    "not_found": (
        "Nicht gefunden.",
        "Not found.",
    ),
    "unknown_action": (
        "Diese Aktion ist nicht vorgesehen.",
        "This action is not available.",
    ),
    "not_permitted": (
        "Diese Aktion ist für Ihr Konto nicht erlaubt.",
        "This action is not permitted for your account.",
    ),
    "policy_error": (
        "Die Berechtigung konnte nicht geprüft werden; die Anfrage wurde abgelehnt.",
        "Permission could not be checked; the request was refused.",
    ),
    "directory_unavailable": (
        "Der Dienst ist vorübergehend nicht verfügbar. Bitte versuchen Sie es später erneut.",
        "The service is temporarily unavailable. Please try again later.",
    ),
    # Registration verdicts.
    "registration_allowed": (
        "Die Registrierung ist möglich.",
        "Registration is possible.",
    ),
    "no_full_account": (
        "Für diese Rufnummer ist nur ein Benutzer-Login (per SMS-TAN) möglich.",
        "Only a user login (by SMS-TAN) is possible for this number.",
    ),
    "proof_not_accepted": (
        "Mit diesem Nachweis ist keine Registrierung möglich.",
        "Registration is not possible with this proof.",
    ),
    "registration_not_possible": (
        "Eine Registrierung ist mit diesen Angaben nicht möglich.",
        "Registration is not possible with these details.",
    ),
}

#: Reasons whose answer carries the My Business Station pointer.
HINT_REASONS = frozenset({"vpn_in_business_station", "company_in_business_station"})

GENERIC: tuple[str, str] = (
    "Die Anfrage wurde abgelehnt.",
    "The request was refused.",
)

_ORDER = {code: i for i, code in enumerate(REASONS)}


def message(reason: str, language: str) -> str:
    """The text for `reason` in "de" or "en" (anything else: German); unknown code → generic."""
    de, en = REASONS.get(reason, GENERIC)
    return en if language.lower().startswith("en") else de


def best_reason(candidates: Iterable[str], default: str = "not_permitted") -> str:
    """The highest-priority known reason among `candidates` (unknown codes rank last)."""
    ranked = sorted(set(candidates), key=lambda c: (_ORDER.get(c, len(_ORDER)), c))
    return ranked[0] if ranked else default
