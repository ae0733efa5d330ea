"""The auth cookies: session id, CSRF token, language.

With ``server.cookie_secure`` (the default) the session and CSRF cookies carry the
``__Host-`` prefix (Secure, Path=/, no Domain: a sibling host cannot set or
overwrite them). A plain-HTTP demo turns that off and the prefix goes with it,
because browsers refuse ``__Host-`` cookies without Secure.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

__all__ = ["CookiePolicy"]


@dataclass(frozen=True, slots=True)
class CookiePolicy:
    secure: bool = True
    session_max_age: int = 43200

    @property
    def session_name(self) -> str:
        return "__Host-pg_session" if self.secure else "pg_session"

    @property
    def csrf_name(self) -> str:
        return "__Host-pg_csrf" if self.secure else "pg_csrf"

    def set_session(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.session_name,
            token,
            max_age=self.session_max_age,
            path="/",
            secure=self.secure,
            httponly=True,
            samesite="lax",
        )

    def clear_session(self, response: Response) -> None:
        response.delete_cookie(self.session_name, path="/", secure=self.secure, httponly=True, samesite="lax")

    def session_token(self, request: Request) -> str | None:
        return request.cookies.get(self.session_name) or None

    def set_csrf(self, response: Response, token: str) -> None:
        response.set_cookie(
            self.csrf_name, token, path="/", secure=self.secure, httponly=True, samesite="lax"
        )

    def set_language(self, response: Response, language: str) -> None:
        response.set_cookie(
            "pg_lang", language, max_age=365 * 86400, path="/", secure=self.secure, samesite="lax"
        )
