"""The one place where a GatewayError becomes an HTTP answer.

JSON for API clients, a small HTML page for browsers; German or English after
Accept-Language. Clients get the error class, a stable reason code and a
message; the details stay in the logs.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from urllib.parse import quote

from starlette.types import Scope, Send

from gateway.errors import GatewayError, MethodNotAllowed, StepUpRequired

__all__ = ["GATEWAY_MESSAGES", "browser_redirect", "pick_language", "return_to", "send_error", "wants_html"]

#: Texts for the reason codes the gateway itself produces (policy reasons have
#: their own catalogue in gateway/policy/reasons.py and are looked up through `lookup`).
GATEWAY_MESSAGES: dict[str, tuple[str, str]] = {
    "not_found": ("Not found.", "Nicht gefunden."),
    "route_not_found": ("There is nothing at this address.", "Unter dieser Adresse gibt es nichts."),
    "method_not_allowed": ("This method is not allowed here.", "Diese Methode ist hier nicht erlaubt."),
    "bad_request": ("The request is malformed.", "Die Anfrage ist fehlerhaft."),
    "path_not_canonical": ("The request path is ambiguous.", "Der Anfragepfad ist mehrdeutig."),
    "payload_too_large": ("The request body is too large.", "Der Inhalt der Anfrage ist zu groß."),
    "unsupported_transfer_coding": (
        "The request body is sent in a coding this service does not take.",
        "Der Inhalt der Anfrage ist in einer Kodierung gesendet, die dieser Dienst nicht annimmt.",
    ),
    "unauthenticated": ("Please log in.", "Bitte melden Sie sich an."),
    "login_required": (
        "Please log in to use this part of the portal.",
        "Bitte melden Sie sich an, um diesen Teil des Portals zu nutzen.",
    ),
    "policy_unavailable": (
        "The portal cannot check permissions right now. Please try again shortly.",
        "Das Portal kann Berechtigungen gerade nicht prüfen. Bitte versuchen Sie es gleich noch einmal.",
    ),
    "authentication_failed": ("The credentials are not valid.", "Die Anmeldedaten sind ungültig."),
    "step_up_required": (
        "Please confirm this action with a second factor.",
        "Bitte bestätigen Sie diese Aktion mit einem zweiten Faktor.",
    ),
    "upstream_unavailable": ("The service is not reachable.", "Der Dienst ist nicht erreichbar."),
    "upstream_timeout": ("The service did not answer in time.", "Der Dienst hat nicht rechtzeitig geantwortet."),
    "upstream_error": ("The service failed.", "Der Dienst ist fehlgeschlagen."),
    "upstream_busy": (
        "The service is busy. Please try again shortly.",
        "Der Dienst ist ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
    ),
    "upstream_pool_timeout": (
        "The service is busy. Please try again shortly.",
        "Der Dienst ist ausgelastet. Bitte versuchen Sie es gleich noch einmal.",
    ),
    "client_body_timeout": (
        "The request body did not arrive in time.",
        "Der Inhalt der Anfrage ist nicht rechtzeitig angekommen.",
    ),
    "dependency_unavailable": (
        "The portal is temporarily unavailable. Please try again shortly.",
        "Das Portal ist vorübergehend nicht verfügbar. Bitte versuchen Sie es gleich noch einmal.",
    ),
    "websocket_not_supported": (
        "WebSocket connections are not supported.",
        "WebSocket-Verbindungen werden nicht unterstützt.",
    ),
    "rate_limited": ("Too many requests. Please wait.", "Zu viele Anfragen. Bitte warten Sie."),
}


def pick_language(accept_language: str) -> str:
    """'de' or 'en' by the first supported tag in Accept-Language (q-values honoured)."""
    best, best_q = "en", -1.0
    for i, item in enumerate(accept_language.split(",")):
        tag, _, params = item.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        lang = tag.strip().lower()[:2]
        if lang in ("de", "en") and q - i * 1e-6 > best_q:
            best, best_q = lang, q - i * 1e-6
    return best


def wants_html(accept: str) -> bool:
    return "text/html" in accept and "application/json" not in accept


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key == name:
            return str(value.decode("latin-1"))
    return ""


def return_to(scope: Scope | None) -> str | None:
    """The path (and query) a browser asked for, when it is a safe place to come back to."""
    if scope is None or scope.get("type") != "http":
        return None
    from gateway.auth.web import safe_next  # the one rule for `next` (auth imports this module)

    query = scope.get("query_string", b"").decode("latin-1")
    target = str(scope.get("path", "")) + ("?" + query if query else "")
    if target.startswith(("/auth/", "/_gateway/")):  # the control plane is no place to return to
        return None
    return safe_next(target, "") or None


def browser_redirect(exc: GatewayError, scope: Scope | None, accept: str) -> str | None:
    """Where a browser's page load is sent instead of an error page, or None.

    A person opening a protected page without a session is sent to log in, one whose
    second factor went stale to the step-up page — both with ``next`` so they come back
    (what oauth2-proxy and Pomerium do). Only a GET navigation that asks for HTML and
    carries no Authorization header: API clients and scripts keep the JSON 401.
    """
    if scope is None or exc.status_code != 401 or scope.get("method") not in ("GET", "HEAD"):
        return None
    if not wants_html(accept) or _header(scope, b"authorization"):
        return None
    if _header(scope, b"sec-fetch-mode") not in ("", "navigate"):
        return None
    target = return_to(scope)
    if target is None:
        return None
    page = "/auth/step-up" if isinstance(exc, StepUpRequired) else "/auth/login"
    return page + "?next=" + quote(target, safe="/")


def _message(
    reason: str, error: str, language: str, lookup: Callable[[str, str], str | None] | None
) -> str:
    if reason in GATEWAY_MESSAGES:
        en, de = GATEWAY_MESSAGES[reason]
        return de if language == "de" else en
    if reason.startswith("upstream_") and reason.endswith(("_timeout", "_deadline")) and reason not in GATEWAY_MESSAGES:
        en, de = GATEWAY_MESSAGES["upstream_timeout"]
        return de if language == "de" else en
    if reason.startswith("path_") or reason in ("bad_host", "bad_content_length", "ambiguous_length"):
        en, de = GATEWAY_MESSAGES["path_not_canonical" if reason.startswith("path_") else "bad_request"]
        return de if language == "de" else en
    if lookup is not None:
        text = lookup(reason, language)
        if text:
            return text
    # An unknown code still gets the text of its error class, never a misleading one.
    en, de = GATEWAY_MESSAGES.get(error) or GATEWAY_MESSAGES.get(
        {"forbidden": "not_found", "bad_gateway": "upstream_error"}.get(error, ""), ("Error.", "Fehler.")
    )
    if error == "forbidden":
        en, de = "This action is not permitted.", "Diese Aktion ist nicht erlaubt."
    return de if language == "de" else en


async def send_error(
    send: Send,
    exc: GatewayError,
    *,
    request_id: str,
    accept: str = "",
    accept_language: str = "",
    lookup: Callable[[str, str], str | None] | None = None,
    hint_url: str | None = None,
    decision_id: str | None = None,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    scope: Scope | None = None,
) -> None:
    language = pick_language(accept_language)
    redirect = browser_redirect(exc, scope, accept)
    if redirect is not None:
        await send(
            {
                "type": "http.response.start",
                "status": 302,
                "headers": [
                    (b"location", redirect.encode("latin-1")),
                    (b"x-request-id", request_id.encode()),
                    (b"cache-control", b"no-store"),
                    (b"content-length", b"0"),
                    *(extra_headers or []),
                ],
            }
        )
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    message = _message(exc.reason, exc.error, language, lookup)
    headers: list[tuple[bytes, bytes]] = [
        (b"x-request-id", request_id.encode()),
        (b"cache-control", b"no-store"),
        (b"content-language", language.encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    if decision_id:
        headers.append((b"x-decision-id", decision_id.encode()))
    if isinstance(exc, StepUpRequired):
        headers.append(
            (
                b"www-authenticate",
                b'Bearer error="insufficient_user_authentication", '
                b'error_description="A second factor within the last 10 minutes is required", '
                b'acr_values="2fa", max_age=600',
            )
        )
    elif exc.status_code == 401:
        headers.append((b"www-authenticate", b'Bearer realm="portal"'))
    if isinstance(exc, MethodNotAllowed) and exc.detail:
        headers.append((b"allow", exc.detail.encode()))
    headers.extend(extra_headers or [])
    payload: dict[str, str] = {
        "error": exc.error,
        "reason": exc.reason,
        "message": message,
        "request_id": request_id,
    }
    if hint_url:
        payload["hint_url"] = hint_url
    back = return_to(scope)
    step_up_url = "/auth/step-up" + ("?next=" + quote(back, safe="/") if back else "")
    if isinstance(exc, StepUpRequired):
        # The client opens this, then repeats its request itself (docs/authentication.md).
        payload["step_up_url"] = step_up_url
    if wants_html(accept):
        link = ""
        if hint_url:
            link = f'<p><a href="{html.escape(hint_url)}">My Business Station</a></p>'
        if isinstance(exc, StepUpRequired):
            link = f'<p><a href="{html.escape(step_up_url)}">' + ("Bestätigen" if language == "de" else "Confirm")
            link += "</a></p>"
        elif exc.status_code == 401:
            login_url = "/auth/login" + ("?next=" + quote(back, safe="/") if back else "")
            link = f'<p><a href="{html.escape(login_url)}">' + ("Anmelden" if language == "de" else "Log in")
            link += "</a></p>"
        body = (
            f'<!doctype html><html lang="{language}"><head><meta charset="utf-8">'
            f"<title>{exc.status_code}</title></head><body><main><h1>{html.escape(message)}</h1>"
            f"{link}<p><small>{html.escape(exc.reason)} · {html.escape(request_id)}</small></p>"
            "</main></body></html>"
        ).encode()
        headers.append((b"content-type", b"text/html; charset=utf-8"))
        headers.append((b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"))
    else:
        body = json.dumps(payload, ensure_ascii=False).encode()
        headers.append((b"content-type", b"application/json"))
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": exc.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})
