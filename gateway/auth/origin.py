"""The gateway's one cross-site request (CSRF) check, for /api and /auth alike.

A browser attaches the session cookie to any request to the gateway, whichever
page made it (SameSite=Lax stops only cross-site subrequests, and never a sibling
host of the same site). So every unsafe request (not GET/HEAD/OPTIONS/TRACE)
that rides on a cookie must show that the gateway's own pages sent it:

1. ``Sec-Fetch-Site: same-origin`` or ``none`` (the browser says so; ``none`` is
   a request the person started, not a page) → allowed;
2. otherwise ``Origin`` must be exactly the origin of ``server.public_url`` →
   allowed;
3. ``Origin: null`` (sandboxed frames, ``data:`` pages, some redirects: an
   origin that cannot be named) → 403 ``origin_null``;
4. neither header → 403 ``origin_missing``: every browser the portal supports
   sends at least one of them on an unsafe request, so a cookie request with
   neither comes from something we cannot vouch for; OWASP's CSRF cheat sheet
   ("Verifying Origin With Standard Headers") says to block when the origin
   cannot be determined;
5. anything else (another origin, ``same-site``, ``cross-site``) → 403
   ``cross_site_request``.

Requests that carry no cookie credential cannot be forged this way, so they
are exempt: a ``Bearer`` (``pgs_`` session token, OIDC access token) decides
alone, and a client without the session cookie (an app logging in with curl) is
only refused when a browser header names another site (login CSRF) — never for
missing headers. The pages' double-submit token (`gateway.auth.web`) and the
JSON endpoints' ``Content-Type: application/json`` rule stay as second lines.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from gateway.errors import Forbidden

__all__ = ["CrossSiteCheck", "GuardsCookie", "origin_of", "uses_bearer"]

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
_TRUSTED_SITES = frozenset({"same-origin", "none"})


def origin_of(url: str) -> str:
    """``scheme://host[:port]`` of a URL, lowercased, default port dropped (RFC 6454 serialization)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or (scheme, port) in (("http", 80), ("https", 443)):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def uses_bearer(authorization: str | None) -> bool:
    """A ``Bearer`` credential decides alone (the authenticators' rule), so the cookie does not count."""
    return (authorization or "").strip()[:7].lower() == "bearer "


@runtime_checkable
class GuardsCookie(Protocol):
    """An authenticator whose cookie must be guarded (the session authenticator)."""

    cookie_name: str
    public_origin: str


class CrossSiteCheck:
    """The check, configured with the gateway's public origin and its credential cookies."""

    def __init__(self, public_url: str, cookie_names: Iterable[str]) -> None:
        self.public_origin = origin_of(public_url)
        self.cookie_names = tuple(sorted({n for n in cookie_names if n}))

    @classmethod
    def of(cls, authenticators: Sequence[object]) -> CrossSiteCheck | None:
        """The check for an authenticator chain; None when no authenticator reads a cookie."""
        guarded = [a for a in authenticators if isinstance(a, GuardsCookie)]
        if not guarded:
            return None
        return cls(guarded[0].public_origin, (a.cookie_name for a in guarded))

    def rides_on_cookie(self, authorization: str | None, cookies: Mapping[str, str]) -> bool:
        return not uses_bearer(authorization) and any(cookies.get(n) for n in self.cookie_names)

    def check(self, method: str, headers: Iterable[tuple[bytes, bytes]], *, cookie_credential: bool) -> None:
        """Raise `Forbidden` when an unsafe request may have been sent by another site's page."""
        if method.upper() in SAFE_METHODS:
            return
        site: str | None = None
        origin: str | None = None
        for name, value in headers:
            if name == b"sec-fetch-site":
                site = value.decode("latin-1").strip().lower()
            elif name == b"origin":
                origin = value.decode("latin-1").strip()
        if site in _TRUSTED_SITES:
            return
        if origin is not None and origin == self.public_origin:
            return  # browsers serialize Origin exactly (RFC 6454): compared as a string
        if origin is None and site is None:
            if cookie_credential:
                raise Forbidden("origin_missing", "an unsafe cookie request without Origin or Sec-Fetch-Site")
            return
        if origin == "null":
            raise Forbidden("origin_null", "an unsafe request from an opaque origin")
        raise Forbidden("cross_site_request", f"an unsafe request from another site (sec-fetch-site={site})")

    def check_request(
        self,
        method: str,
        headers: Iterable[tuple[bytes, bytes]],
        authorization: str | None,
        cookies: Mapping[str, str],
    ) -> None:
        """`check`, deciding from the request's own credentials whether it rides on a cookie.

        A Bearer request is exempt whatever its headers say: no browser attaches the
        token on its own, so no page can forge it.
        """
        if uses_bearer(authorization):
            return
        self.check(method, headers, cookie_credential=self.rides_on_cookie(authorization, cookies))
