"""How the Artifi sandbox reads query parameters, the credentials first.

2. Credentials (api/2 and api/3) are query parameters; every query parameter name is matched
   case-insensitively (the docs write ``WebsiteId`` and ``websiteId``), the first value wins.
   Checked in this order: ``websiteId`` absent or empty -> ``372``; not an integer or not a
   configured website -> ``221`` (``"221,234"`` with the ``multi_error_codes`` quirk);
   ``webApiClientKey`` empty or not that website's key -> ``226``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Final

import attrs
from aiohttp import web

from gateway_artifi.sandbox.envelope import error, validation_error
from gateway_artifi.sandbox.settings import ArtifiWebsite
from gateway_artifi.sandbox.state import SANDBOX_STATE, ArtifiSandboxState

__all__ = [
    "MAX_USER_ID_LENGTH",
    "Call",
    "Handler",
    "authenticate",
    "flag",
    "int_or_none",
    "query",
    "user_call",
    "user_id",
    "website_call",
]

Handler = Callable[[web.Request], Awaitable[web.Response]]

MAX_USER_ID_LENGTH: Final = 128


def query(request: web.Request) -> dict[str, str]:
    """Query parameters keyed by lower-cased name; the first value of a repeated name wins."""
    params: dict[str, str] = {}
    for key, value in request.query.items():
        params.setdefault(key.lower(), value)
    return params


def authenticate(
    state: ArtifiSandboxState, params: Mapping[str, str]
) -> ArtifiWebsite | web.Response:
    """The website the credentials name, else the envelope that refuses them."""
    raw_id = params.get("websiteid", "").strip()
    if not raw_id:
        return error(state, "372", "WebsiteId is required.")
    invalid_code = "221,234" if state.faults.multi_error_codes else "221"
    try:
        website = state.websites.get(int(raw_id))
    except ValueError:
        website = None
    if website is None:
        return error(state, invalid_code, "Invalid WebsiteId.")
    key = params.get("webapiclientkey", "")
    if not key or key != website.client_key:
        return error(state, "226", "WebApiClientKey is empty or invalid.")
    return website


def user_id(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name.lower(), "")
    if not value or len(value) > MAX_USER_ID_LENGTH:
        return None
    return value


def flag(params: Mapping[str, str], name: str) -> bool:
    return params.get(name.lower(), "").strip().lower() in {"true", "1"}


def int_or_none(raw: str | None) -> int | None:
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        return None


@attrs.frozen
class Call:
    """A call whose credentials name a website: its request and parameters, the website."""

    request: web.Request
    state: ArtifiSandboxState
    params: Mapping[str, str]
    website: ArtifiWebsite

    def user_id(self, name: str) -> str | web.Response:
        """The user id parameter ``name``, else the ``261`` answer."""
        value = user_id(self.params, name)
        if value is None:
            return validation_error(self.state, "261", name, f"Invalid {name}.")
        return value


def website_call(serve: Callable[[Call], Awaitable[web.Response]]) -> Handler:
    """The handler of a call that names a website; it answers refused credentials itself."""

    async def handle(request: web.Request) -> web.Response:
        state = request.app[SANDBOX_STATE]
        params = query(request)
        website = authenticate(state, params)
        if isinstance(website, web.Response):
            return website
        return await serve(Call(request, state, params, website))

    return handle


def user_call(name: str) -> Callable[[Callable[[Call, str], Awaitable[web.Response]]], Handler]:
    """The handler of a call about the user id parameter ``name`` (checked after credentials)."""

    def decorate(serve: Callable[[Call, str], Awaitable[web.Response]]) -> Handler:
        async def handle(call: Call) -> web.Response:
            user = call.user_id(name)
            return user if isinstance(user, web.Response) else await serve(call, user)

        return website_call(handle)

    return decorate
