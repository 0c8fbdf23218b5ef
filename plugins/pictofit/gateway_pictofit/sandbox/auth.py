"""The PICTOFiT sandbox's authentication: Bearer keys and tokens, and ``POST /connect/token``.

Auth
- Every call except ``POST /connect/token``, result downloads (``GET /_files/results/{token}``)
  and the ``/_sandbox/*`` control endpoints needs ``Authorization: Bearer <key>``, where the key is
  one of ``settings.api_keys`` or a live token issued by ``/connect/token``. All keys and tokens
  belong to the single customer ``settings.customer_id``.
- ``POST /connect/token`` takes a multipart or urlencoded form and answers the usual OAuth2 JSON
  ``{access_token, expires_in, token_type: "Bearer"}``. Errors are 400 with ``{"error": ...}``:
  ``invalid_client`` (client_id / client_secret), ``invalid_grant`` (grant_type, username,
  password), ``invalid_scope`` (scope must be exactly the set ``openid contentserviceapi``).
  Tokens expire after ``token_lifetime_s`` (monotonic clock); an expired token gets 401.
"""

from __future__ import annotations

import secrets
import time
from typing import Final

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler

from gateway.plugin_api import SandboxProblem, is_control
from gateway_pictofit.sandbox.records import IssuedToken
from gateway_pictofit.sandbox.results import RESULT_FILE_ROUTE
from gateway_pictofit.sandbox.state import SANDBOX_STATE, PictofitSandboxState

__all__ = ["CONNECT_ROUTE", "auth", "connect_token", "is_authorized"]

CONNECT_ROUTE: Final = "connect-token"
_CLIENT_ID: Final = "contentserviceapi.service.client"
_SCOPES: Final = frozenset({"openid", "contentserviceapi"})
# Routes that need no Bearer token (by route name).
_PUBLIC_ROUTES: Final = frozenset({CONNECT_ROUTE, RESULT_FILE_ROUTE})


def is_authorized(state: PictofitSandboxState, bearer: str) -> bool:
    if bearer in state.settings.api_keys:
        return True
    token = state.tokens.get(bearer)
    return token is not None and time.monotonic() < token.expires_at


@web.middleware
async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.match_info.route.name in _PUBLIC_ROUTES or is_control(request):
        return await handler(request)
    scheme, _, credential = request.headers.get(hdrs.AUTHORIZATION, "").partition(" ")
    challenge: dict[str, str] = {hdrs.WWW_AUTHENTICATE: "Bearer"}
    if scheme.lower() != "bearer" or not credential.strip():
        raise SandboxProblem(401, "missing Bearer credentials", headers=challenge)
    if not is_authorized(request.app[SANDBOX_STATE], credential.strip()):
        raise SandboxProblem(401, "invalid or expired credentials", headers=challenge)
    return await handler(request)


async def connect_token(request: web.Request) -> web.Response:
    state = request.app[SANDBOX_STATE]
    settings = state.settings
    form = await request.post()

    def field(name: str) -> str:
        value = form.get(name)
        return value if isinstance(value, str) else ""

    def oauth_error(error: str) -> web.Response:
        return web.json_response({"error": error}, status=400)

    if field("client_id") != _CLIENT_ID or not secrets.compare_digest(
        field("client_secret"), settings.client_secret
    ):
        return oauth_error("invalid_client")
    if field("grant_type") != "password":
        return oauth_error("invalid_grant")
    expected = settings.token_users.get(field("username"))
    if expected is None or not secrets.compare_digest(field("password"), expected):
        return oauth_error("invalid_grant")
    if frozenset(field("scope").split()) != _SCOPES:
        return oauth_error("invalid_scope")
    access_token = secrets.token_urlsafe(32)
    lifetime = settings.token_lifetime_s
    state.tokens[access_token] = IssuedToken(
        access_token, field("username"), time.monotonic() + lifetime
    )
    return web.json_response(
        {"access_token": access_token, "expires_in": lifetime, "token_type": "Bearer"}
    )
