"""The older auth mode: a password-grant token, cached per tenant and refreshed one at a time.

The token is fetched from `connect/token` through the gateway's own upstream client (so the call
is retried, logged as an `upstream.call` line and counted like any other; the form with the
password is a body, and bodies are never logged). It is reused until shortly before it expires
(`refresh_margin`), and dropped when the service answered 401 to it. However many requests wait,
one fetch runs at a time: the others find the new token when the lock is theirs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final

import aiohttp
import attrs

from gateway.plugin_api import (
    BoundUpstream,
    UpstreamCredentialsRejected,
    UpstreamRejected,
    UpstreamServerError,
)
from gateway_pictofit.config import PictofitConfig, TokenAuth

__all__ = ["IssuedToken", "TokenCache", "clock", "fetch_token", "refresh_margin"]

BACKEND: Final = "pictofit"

clock: Callable[[], float] = time.monotonic
"""The cache's clock (module level so that tests can move time forward)."""


def refresh_margin(lifetime: float) -> float:
    """How long before expiry a token is replaced: 60 s, or a fifth of a short lifetime."""
    return min(60.0, lifetime * 0.2)


@attrs.frozen
class IssuedToken:
    value: str = attrs.field(repr=False)
    refresh_at: float  # clock() time after which it is replaced


class TokenCache:
    """One tenant's token."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._token: IssuedToken | None = None

    def _usable(self, drop: str | None) -> IssuedToken | None:
        token = self._token
        if token is None or token.value == drop or clock() >= token.refresh_at:
            return None
        return token

    async def get(
        self,
        fetch: Callable[[], Awaitable[tuple[str, float]]],
        *,
        drop: str | None = None,
    ) -> IssuedToken:
        """The current token, fetched if there is none or it is due; `drop` is one the service
        refused (a token another request fetched since is kept).

        `fetch` answers (token, lifetime in seconds).
        """
        usable = self._usable(drop)
        if usable is not None:
            return usable
        async with self._lock:
            # Whoever held the lock before may have fetched a fresh token already.
            usable = self._usable(drop)
            if usable is not None:
                return usable
            value, lifetime = await fetch()
            self._token = IssuedToken(value, clock() + lifetime - refresh_margin(lifetime))
            return self._token


def _form(auth: TokenAuth) -> Callable[[], aiohttp.FormData]:
    def build() -> aiohttp.FormData:
        # Multipart, as the doc's walkthrough sends it; a fresh one per attempt.
        form = aiohttp.FormData(default_to_multipart=True)
        form.add_field("grant_type", "password")
        form.add_field("username", auth.username)
        form.add_field("password", auth.password.reveal())
        form.add_field("client_id", auth.client_id)
        form.add_field("client_secret", auth.client_secret.reveal())
        form.add_field("scope", auth.scope)
        return form

    return build


async def fetch_token(upstream: BoundUpstream, config: PictofitConfig) -> tuple[str, float]:
    """Ask `connect/token` for a token; its refusal is the gateway's credential problem (502).

    It goes out without the tenant's Bearer: credentials are never given for the token URL.
    """
    auth = config.token
    if auth is None:
        raise RuntimeError("fetch_token needs token auth")
    try:
        # A password grant has no effect besides issuing a token: safe to retry.
        answer = await upstream.request(
            "POST", auth.url, operation="connectToken", data=_form(auth), idempotent=True
        )
    except UpstreamRejected as exc:  # 400 invalid_client / invalid_grant / invalid_scope
        raise UpstreamCredentialsRejected(BACKEND, exc.upstream_status) from None
    try:
        body: Any = answer.json()
    except ValueError:
        body = None
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token:
        raise UpstreamServerError(BACKEND, answer.status, "the token answer has no access_token")
    lifetime = body.get("expires_in")
    if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
        lifetime = config.assumptions.token_default_lifetime_s
    return token, float(lifetime)
