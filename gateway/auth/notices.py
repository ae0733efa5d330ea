"""Notice SMS: the line(s) an account speaks for learn what was done in their name.

A notice goes out after a registration, after a TOTP enrolment (the step a
SIM-swap fraudster needs) and after a critical action (`critical_action`). It
goes through the same `SmsSender` as the SMS-TAN codes and never carries a
secret: no code, no password, no link to follow — only what happened, so a
customer who did not do it calls the hotline.

A notice that cannot be sent does not undo what it reports (the account exists,
the seed is active); the failure is logged and counted, never swallowed silently.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Protocol, cast

from prometheus_client import CollectorRegistry, Counter

from gateway.auth.accounts import Account
from gateway.auth.sms_senders import SmsSender
from gateway.directory.base import Directory
from gateway.middleware.context import PRINCIPAL_KEY, ROUTE_KEY

__all__ = ["NOTICE_TEXTS", "CriticalActionNotices", "Notices", "lines_of_account"]

log = logging.getLogger("gateway.auth.notices")

#: At most this many lines of one customer get a notice (a large contract is not flooded).
MAX_LINES = 10

NOTICE_TEXTS: dict[str, dict[str, str]] = {
    "registered": {
        "de": "Ihr Konto im Kundenportal wurde registriert ({login}). Waren Sie das nicht? "
        "Rufen Sie bitte unsere Hotline an.",
        "en": "Your customer portal account was registered ({login}). Not you? Please call our hotline.",
    },
    "totp_enrolled": {
        "de": "Für Ihr Konto im Kundenportal ({login}) wurde eine Authenticator-App eingerichtet. "
        "Waren Sie das nicht? Rufen Sie bitte unsere Hotline an.",
        "en": "An authenticator app was set up for your customer portal account ({login}). "
        "Not you? Please call our hotline.",
    },
    "critical": {
        "de": "Im Kundenportal wurde für Ihren Vertrag ausgeführt: {action}. Waren Sie das nicht? "
        "Rufen Sie bitte unsere Hotline an.",
        "en": "In the customer portal this was done for your contract: {action}. Not you? Please call our hotline.",
    },
}

#: How a critical action is named in a notice; unknown actions by their catalogue name.
ACTION_NAMES: dict[str, tuple[str, str]] = {
    "order_sim_swap": ("Eine Ersatz-SIM wurde bestellt", "a replacement SIM was ordered"),
    "view_puk": ("Der PUK wurde angezeigt", "the PUK was shown"),
    "lift_barring": ("Eine Sperre wurde aufgehoben", "a barring was lifted"),
}


class Bound(Protocol):
    """What an account and a principal share: the binding a notice is addressed by."""

    @property
    def bound_msisdn(self) -> str | None: ...
    @property
    def bound_customer(self) -> str | None: ...


async def lines_of_account(directory: Directory, account: Bound) -> list[str]:
    """The lines an account speaks for: its own line, else the lines of its customer."""
    if account.bound_msisdn is not None:
        return [account.bound_msisdn]
    if account.bound_customer is None:
        return []
    lines = await directory.lines_of_customer(account.bound_customer)
    return [line.msisdn for line in lines][:MAX_LINES]


class Notices:
    def __init__(self, *, sender: SmsSender, directory: Directory, registry: CollectorRegistry) -> None:
        self._sender = sender
        self._directory = directory
        self.sent = Counter(
            "portal_gateway_notice_sms",
            "Notice SMS by kind (registered, totp_enrolled, critical) and outcome (sent, failed, no_line)",
            ["kind", "outcome"],
            registry=registry,
        )

    async def registered(self, account: Account, *, language: str = "de") -> None:
        await self._to_lines(
            await lines_of_account(self._directory, account), "registered", language, login=account.login
        )

    async def totp_enrolled(self, account: Account, *, language: str = "de") -> None:
        await self._to_lines(
            await lines_of_account(self._directory, account), "totp_enrolled", language, login=account.login
        )

    async def critical_action(self, lines: list[str], action: str, *, language: str = "de") -> None:
        """After a critical action succeeded: a notice to the line(s) it concerned."""
        names = ACTION_NAMES.get(action, (action, action))
        await self._to_lines(lines[:MAX_LINES], "critical", language, action=names[0] if language == "de" else names[1])

    async def _to_lines(self, lines: list[str], kind: str, language: str, **values: str) -> None:
        if not lines:
            self.sent.labels(kind, "no_line").inc()
            return
        texts = NOTICE_TEXTS[kind]
        text = texts.get(language, texts["de"]).format(**values)
        for msisdn in dict.fromkeys(lines):
            try:
                await self._sender.send(msisdn, text)
            except Exception as exc:  # a notice never undoes what it reports
                self.sent.labels(kind, "failed").inc()
                log.error("notice %s to a line failed: %s", kind, type(exc).__name__)
                continue
            self.sent.labels(kind, "sent").inc()


class CriticalActionNotices:
    """Called by the proxy after the backend answered: a 2xx to a critical action → a notice.

    The notice goes to the lines of the person who acted (their line, or their customer's
    lines), so a fraudster's replacement SIM is announced on the phone it is meant to replace.
    """

    def __init__(
        self, notices: Notices, directory: Directory, permissions: Callable[[], Mapping[str, str]]
    ) -> None:
        self._notices = notices
        self._directory = directory
        self._permissions = permissions

    async def __call__(self, scope: Mapping[str, object], status: int) -> None:
        route = scope.get(ROUTE_KEY)
        principal = scope.get(PRINCIPAL_KEY)
        action = getattr(route, "action", None)
        if not 200 <= status < 300 or principal is None or not isinstance(action, str):
            return
        if self._permissions().get(action) != "critical":
            return
        bound = cast(Bound, principal)
        await self._notices.critical_action(await lines_of_account(self._directory, bound), action)
