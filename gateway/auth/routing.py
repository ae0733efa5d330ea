"""The /auth route table: JSON endpoints and HTML pages on the same paths.

A POST with a form body (``application/x-www-form-urlencoded`` or
``multipart/form-data``) is a page's form and gets the HTML flow (CSRF-checked,
answers with redirects or the page again); any other POST is the JSON API.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from gateway.auth.api import JsonApi
from gateway.auth.pages import Pages
from gateway.auth.services import AuthServices

__all__ = ["STATIC_DIR", "auth_routes"]

Handler = Callable[[Request], Awaitable[Response]]
STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def _is_form(request: Request) -> bool:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return content_type in ("application/x-www-form-urlencoded", "multipart/form-data")


def _either(json_handler: Handler, form_handler: Handler) -> Handler:
    async def dispatch(request: Request) -> Response:
        if _is_form(request):
            return await form_handler(request)
        return await json_handler(request)

    return dispatch


def auth_routes(services: AuthServices) -> list[BaseRoute]:
    api = JsonApi(services)
    pages = Pages(services)
    g = api.guarded
    p = pages.guarded
    return [
        Route("/auth/register", _either(g(api.register), p(pages.register_post)), methods=["POST"]),
        Route("/auth/register", p(pages.register_page), methods=["GET"]),
        Route("/auth/login", p(pages.login_page), methods=["GET"]),
        Route("/auth/login/password", _either(g(api.login_password), p(pages.login_post)), methods=["POST"]),
        Route("/auth/login/totp", _either(g(api.login_totp), p(pages.totp_post)), methods=["POST"]),
        Route("/auth/login/totp", p(pages.totp_page), methods=["GET"]),
        Route("/auth/login/sms", p(pages.sms_page), methods=["GET"]),
        Route("/auth/sms/send", _either(g(api.sms_send), p(pages.sms_send_post)), methods=["POST"]),
        Route("/auth/sms/verify", _either(g(api.sms_verify), p(pages.sms_verify_post)), methods=["POST"]),
        Route("/auth/totp/enroll", _either(g(api.totp_enroll), p(pages.enroll_post)), methods=["POST"]),
        Route("/auth/totp/enroll", p(pages.enroll_page), methods=["GET"]),
        Route("/auth/totp/confirm", _either(g(api.totp_confirm), p(pages.confirm_post)), methods=["POST"]),
        Route("/auth/step-up", _either(g(api.step_up), p(pages.step_up_post)), methods=["POST"]),
        Route("/auth/step-up", p(pages.step_up_page), methods=["GET"]),
        Route("/auth/logout", _either(g(api.logout), p(pages.logout_post)), methods=["POST"]),
        Route("/auth/me", g(api.me), methods=["GET"]),
        Route("/auth/account", p(pages.account_page), methods=["GET"]),
        Mount("/auth/static", app=StaticFiles(directory=STATIC_DIR), name="auth-static"),
    ]
