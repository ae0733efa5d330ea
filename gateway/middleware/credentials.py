"""The gateway's own credentials never reach a backend.

A session cookie or a bearer that the gateway checked works on every route, while
the signed assertion a backend receives is bound to one audience, method and path.
A backend (or its access log, or whoever breaks into it) that also got the
credential could replay it against every other route and backend, which undoes
the assertion. So before a request is forwarded, on public routes too:

* every cookie an authenticator reads (``__Host-pg_session``, whatever name the
  settings give) is cut out of ``Cookie``; the client's other cookies stay, byte
  for byte and in order, cut by the gateway's one cookie parser
  (`gateway.auth.cookies`);
* ``Authorization`` is not forwarded. A route that needs the client's own header
  says ``pass_authorization = true`` in routes.toml (e.g. a backend that checks an
  OIDC access token itself, Envoy's ``jwt_authn forward: true``); even there a
  value that holds a gateway session token (``pgs_``) is dropped: it is never
  anything a backend could need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, runtime_checkable

from gateway.auth import cookies
from gateway.routes import Route

__all__ = ["CredentialFilter", "ReadsCookie"]

_SESSION_TOKEN_PREFIX = b"pgs_"

Headers = list[tuple[bytes, bytes]]


def _holds_session_token(value: bytes) -> bool:
    # Any word, not only the one after "Bearer": "bearer\tpgs_…" or "Token pgs_…" is not
    # read as a session by the gateway, but it still carries one a backend could replay.
    return any(word.startswith(_SESSION_TOKEN_PREFIX) for word in value.split())


@runtime_checkable
class ReadsCookie(Protocol):
    """An authenticator that takes its credential from a cookie (the session authenticator)."""

    cookie_name: str


class CredentialFilter:
    """Removes the gateway's credentials from the headers a backend is sent."""

    def __init__(self, credential_cookies: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted({n for n in credential_cookies if n}))
        self._needles = tuple(n.encode("latin-1") for n in self.names)

    @classmethod
    def of(cls, authenticators: Sequence[object]) -> CredentialFilter:
        """The filter for an authenticator chain: every cookie one of them reads."""
        return cls(a.cookie_name for a in authenticators if isinstance(a, ReadsCookie))

    def headers_for(self, headers: Headers, route: Route) -> Headers:
        out: Headers = []
        for name, value in headers:
            if name == b"authorization":
                if not route.pass_authorization or _holds_session_token(value):
                    continue
            elif name == b"cookie" and self._needles:
                kept = self._cookie_without_ours(value)
                if kept is None:
                    continue
                value = kept
            out.append((name, value))
        return out

    def _cookie_without_ours(self, value: bytes) -> bytes | None:
        if not any(needle in value for needle in self._needles):
            return value  # a cookie read as ours has our name in it: nothing to cut
        kept = cookies.without(value, *self.names)
        if kept is not None and not set(self.names).isdisjoint(cookies.parse(kept.decode("latin-1"))):
            # Whatever the parser would still read as our cookie must not leave:
            # the header goes whole rather than the credential with it.
            return None
        return kept
